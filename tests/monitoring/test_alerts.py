"""Alerts: a crossing is posted to the webhook (retried) and logged; its recovery is reported once."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from modelport.core.errors import ConfigError
from modelport.monitoring.alerts import (
    AlertConfig,
    AlertRule,
    AlertSources,
    AlertState,
    Notifier,
    check,
)
from modelport.monitoring.drift import DriftThresholds
from modelport.monitoring.feedback import FeedbackRecord, FeedbackStore
from modelport.monitoring.logview import LogReader
from modelport.monitoring.profiles import ModelProfile

from .support import SIGNATURE, features, log_traffic, reference

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
WEBHOOK = "https://hooks.example.com/modelport"


class Receiver:
    """A webhook endpoint behind httpx.MockTransport: records bodies, fails the first ``failures`` calls."""

    def __init__(self, failures: int = 0, status: int = 500) -> None:
        self.failures = failures
        self.status = status
        self.bodies: list[dict[str, Any]] = []
        self.attempts = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        if self.attempts <= self.failures:
            return httpx.Response(self.status)
        self.bodies.append(json.loads(request.content))
        return httpx.Response(202)

    def notifier(self, sleeps: list[float] | None = None, retries: int = 3) -> Notifier:
        waits = sleeps if sleeps is not None else []
        return Notifier(
            url=WEBHOOK, retries=retries, backoff_s=0.5, transport=httpx.MockTransport(self), sleep=waits.append
        )


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An hour with 10 % errors and slow requests ending at NOW - 2h, then a clean, fast hour ending at NOW."""
    root = tmp_path_factory.mktemp("alerts")
    rng = np.random.default_rng(0)
    log_traffic(root, features(200, rng), start=NOW - timedelta(hours=3), error_every=10, latency_ms=300.0, seed=1)
    log_traffic(root, features(200, rng), start=NOW - timedelta(hours=1), latency_ms=5.0, seed=2, prefix="late-")
    return root


def config(**rule: Any) -> AlertConfig:
    return AlertConfig(rules=(AlertRule(model="churn", window="1h", **rule),), webhook_url=WEBHOOK)


def test_a_crossing_fires_once_and_recovers_once(
    log_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = Receiver()
    state = AlertState(tmp_path / "state.json")
    sources = AlertSources(logs=LogReader(log_dir))
    rules = config(max_error_rate=0.05, max_latency_p99_ms=100.0)
    with caplog.at_level(logging.INFO, logger="modelport.alerts"):
        first = check(rules, sources, state, notifier=receiver.notifier(), now=NOW - timedelta(hours=2))
    assert {(e.status, e.check.alert) for e in first.events} == {("firing", "error_rate"), ("firing", "latency_p99_ms")}
    assert all(e.delivered for e in first.events)
    body = next(b for b in receiver.bodies if b["alert"] == "error_rate")
    assert body["status"] == "firing"
    assert body["model"] == "churn"
    assert body["threshold"] == 0.05
    assert body["value"] == pytest.approx(0.1)
    assert body["window"] == "1h"
    assert body["source"] == "modelport"
    assert "ALERT firing model=churn alert=error_rate" in caplog.text
    assert len(first.firing) == 2

    again = check(rules, sources, state, notifier=receiver.notifier(), now=NOW - timedelta(hours=2))
    assert again.events == ()
    assert len(receiver.bodies) == 2

    recovered = check(rules, sources, state, notifier=receiver.notifier(), now=NOW)
    assert {(e.status, e.check.alert) for e in recovered.events} == {
        ("resolved", "error_rate"),
        ("resolved", "latency_p99_ms"),
    }
    assert [b["status"] for b in receiver.bodies[2:]] == ["resolved", "resolved"]
    assert check(rules, sources, state, notifier=receiver.notifier(), now=NOW).events == ()
    assert json.loads((tmp_path / "state.json").read_text())["churn/error_rate"]["firing"] is False


def test_delivery_is_retried_with_backoff(log_dir: Path, tmp_path: Path) -> None:
    receiver = Receiver(failures=2)
    sleeps: list[float] = []
    result = check(
        config(max_error_rate=0.05), AlertSources(logs=LogReader(log_dir)), AlertState(tmp_path / "s.json"),
        notifier=receiver.notifier(sleeps), now=NOW - timedelta(hours=2),
    )  # fmt: skip
    assert result.events[0].delivered is True
    assert receiver.attempts == 3
    assert sleeps == [0.5, 1.0]


def test_an_undelivered_alert_is_sent_again_next_time(log_dir: Path, tmp_path: Path) -> None:
    state = AlertState(tmp_path / "s.json")
    sources = AlertSources(logs=LogReader(log_dir))
    down = Receiver(failures=100)
    first = check(
        config(max_error_rate=0.05), sources, state, notifier=down.notifier(retries=1), now=NOW - timedelta(hours=2)
    )
    assert first.events[0].delivered is False
    assert down.attempts == 2
    up = Receiver()
    second = check(config(max_error_rate=0.05), sources, state, notifier=up.notifier(), now=NOW - timedelta(hours=2))
    assert [e.status for e in second.events] == ["firing"]
    assert len(up.bodies) == 1


def test_client_errors_are_not_retried(log_dir: Path, tmp_path: Path) -> None:
    receiver = Receiver(failures=5, status=404)
    check(
        config(max_error_rate=0.05), AlertSources(logs=LogReader(log_dir)), AlertState(tmp_path / "s.json"),
        notifier=receiver.notifier(), now=NOW - timedelta(hours=2),
    )  # fmt: skip
    assert receiver.attempts == 1


def test_too_little_traffic_gives_no_verdict(log_dir: Path, tmp_path: Path) -> None:
    receiver = Receiver()
    result = check(
        config(max_error_rate=0.05, min_predictions=500), AlertSources(logs=LogReader(log_dir)),
        AlertState(tmp_path / "s.json"), notifier=receiver.notifier(), now=NOW - timedelta(hours=2),
    )  # fmt: skip
    assert result.checks[0].firing is None
    assert result.events == ()
    assert receiver.attempts == 0


def test_drift_and_accuracy_alerts(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logged = log_traffic(
        logs,
        features(300, np.random.default_rng(3), age_shift=10.0),
        start=NOW - timedelta(minutes=50),
        span=timedelta(minutes=40),
    )
    store = FeedbackStore(tmp_path / "fb")
    store.add("churn", [FeedbackRecord(key=rid, label=0) for rid in logged.request_ids])  # everyone stayed
    ref = reference()

    def profiles(name: str, version: int | None) -> ModelProfile:
        return ModelProfile(name=name, version=1, reference=ref, signature=SIGNATURE)

    receiver = Receiver()
    result = check(
        config(drift=DriftThresholds(), min_accuracy=0.9),
        AlertSources(logs=LogReader(logs), feedback=store, profiles=profiles),
        AlertState(tmp_path / "s.json"), notifier=receiver.notifier(), now=NOW,
    )  # fmt: skip
    by_alert = {c.alert: c for c in result.checks}
    assert by_alert["drift"].firing
    assert "age" in by_alert["drift"].detail
    accuracy = 1 - logged.predictions.mean()
    assert by_alert["accuracy"].value == pytest.approx(accuracy)
    assert by_alert["accuracy"].firing == bool(accuracy < 0.9)
    assert {b["alert"] for b in receiver.bodies} >= {"drift"}


def test_without_a_webhook_alerts_are_logged(log_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rules = AlertConfig(rules=(AlertRule(model="churn", max_error_rate=0.05),))
    with caplog.at_level(logging.WARNING, logger="modelport.alerts"):
        result = check(
            rules, AlertSources(logs=LogReader(log_dir)), AlertState(tmp_path / "s.json"), now=NOW - timedelta(hours=2)
        )
    assert result.events[0].delivered is None
    assert "ALERT firing" in caplog.text
    assert result.to_dict()["firing"] == 1


def test_config_file_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(
        "webhook: https://hooks.example.com/x\nretries: 1\nmodels:\n"
        "  churn:\n    window: 30m\n    error_rate: 0.05\n    latency_p99_ms: 250\n    accuracy: 0.8\n"
        "    drift: {psi: 0.3}\n"
    )
    loaded = AlertConfig.from_file(path)
    assert loaded.webhook_url == "https://hooks.example.com/x"
    assert loaded.retries == 1
    rule = loaded.rules[0]
    assert (rule.model, rule.window, rule.max_error_rate, rule.max_latency_p99_ms, rule.min_accuracy) == (
        "churn", "30m", 0.05, 250.0, 0.8,
    )  # fmt: skip
    assert rule.drift == DriftThresholds(psi=0.3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"models": {"churn": {"eror_rate": 0.1}}}, "unknown key 'eror_rate'"),
        ({"models": {"churn": {"error_rate": 5}}}, "above 1.0"),
        ({"models": {"churn": {"window": "soon"}}}, "Invalid duration"),
        ({"models": {"churn": {"drift": "yes"}}}, "drift"),
        ({"models": {"Churn!": {}}}, "Invalid model name"),
        ({"webhook": "ftp://x"}, "not an http"),
        ({"models": ["churn"]}, "not a mapping"),
        ({"hooks": 1}, "Unknown alert configuration key"),
    ],
)
def test_bad_configuration_teaches(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        AlertConfig.from_mapping(data)
    assert info.value.hint


def test_unreadable_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Cannot read"):
        AlertConfig.from_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        AlertConfig.from_file(bad)


def test_a_corrupt_state_file_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{oops")
    assert AlertState(path).load() == {}
    AlertState(path).save({"churn/drift": {"firing": True}})
    assert AlertState(path).load() == {"churn/drift": {"firing": True}}
