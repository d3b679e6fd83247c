"""Alerts: thresholds per model on drift, error rate, latency p99 and live accuracy, sent to a webhook.

An :class:`AlertConfig` (a YAML/JSON file or a dict) names, per model, the window to look at and
the limits. :func:`check` evaluates every rule once — the server calls it periodically and
``modelport monitor check`` once — compares each verdict with the previous one, kept in a small
JSON state file, and reports *changes* only: a crossing (``firing``) and, once, its recovery
(``resolved``). Each change is a log line and, when a webhook is configured, a JSON ``POST``
retried with exponential backoff on network errors, 5xx and 429. A change whose delivery failed
is not recorded, so the next check sends it again. Config file::

    webhook: https://hooks.example.com/modelport    # optional
    retries: 3                                       # optional, default 3
    models:
      churn:
        window: 1h              # default 1h
        error_rate: 0.05        # alert above 5 % failed predictions
        latency_p99_ms: 250     # alert above 250 ms p99
        accuracy: 0.8           # alert below 80 % live accuracy (needs feedback)
        drift: true             # alert when a feature drifts (or a mapping of drift thresholds)
        min_predictions: 20     # fewer in the window: no verdict on error rate and latency
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import yaml

from modelport.core.errors import ConfigError, ModelportError, ValidationError
from modelport.core.names import validate_name
from modelport.core.redact import redact_url
from modelport.monitoring.drift import DriftThresholds, detect_drift
from modelport.monitoring.feedback import FeedbackStore
from modelport.monitoring.logview import LogReader
from modelport.monitoring.performance import live_metrics
from modelport.monitoring.profiles import ProfileSource
from modelport.monitoring.traffic import traffic
from modelport.monitoring.window import Window, parse_duration

logger = logging.getLogger("modelport.alerts")

AlertName = Literal["drift", "error_rate", "latency_p99_ms", "accuracy"]
_RULE_KEYS = {
    "window",
    "version",
    "error_rate",
    "latency_p99_ms",
    "accuracy",
    "drift",
    "min_predictions",
    "min_labelled",
}


@dataclass(frozen=True, slots=True)
class AlertRule:
    """The limits of one model.

    Attributes:
        model: Model name.
        version: Only this version's traffic; default every version (drift: the version the model resolves to).
        window: How far back each check looks (e.g. ``"1h"``).
        max_error_rate: Alert when the share of failed predictions is above this.
        max_latency_p99_ms: Alert when the 99th-percentile latency is above this.
        min_accuracy: Alert when live accuracy (from feedback) is below this.
        drift: Drift thresholds; ``None`` means no drift alert.
        min_predictions: Fewer predictions in the window give no verdict on error rate and latency.
        min_labelled: Fewer labelled predictions give no verdict on accuracy.
    """

    model: str
    version: int | None = None
    window: str = "1h"
    max_error_rate: float | None = None
    max_latency_p99_ms: float | None = None
    min_accuracy: float | None = None
    drift: DriftThresholds | None = None
    min_predictions: int = 20
    min_labelled: int = 20

    @classmethod
    def from_mapping(cls, model: str, values: Mapping[str, Any]) -> AlertRule:
        """Build from the config entry of ``model``.

        Raises:
            ConfigError: An unknown key or an invalid value, named.
        """
        where = f"alert rule for {model!r}"
        if not isinstance(values, Mapping):
            raise ConfigError(f"{where} is not a mapping.", hint="e.g. churn: {error_rate: 0.05, window: 1h}")
        unknown = sorted(set(values) - _RULE_KEYS)
        if unknown:
            raise ConfigError(
                f"{where}: unknown key {unknown[0]!r}.", hint=f"Known keys: {', '.join(sorted(_RULE_KEYS))}."
            )
        try:
            validate_name(model)
            window = str(values.get("window", "1h"))
            parse_duration(window)
            drift = _drift_setting(values.get("drift", False))
        except ValidationError as exc:
            raise ConfigError(f"{where}: {exc.message}", hint=exc.hint) from exc
        return cls(
            model=model,
            version=_optional_int(values.get("version"), f"{where}: version", minimum=1),
            window=window,
            max_error_rate=_optional_number(values.get("error_rate"), f"{where}: error_rate", upper=1.0),
            max_latency_p99_ms=_optional_number(values.get("latency_p99_ms"), f"{where}: latency_p99_ms"),
            min_accuracy=_optional_number(values.get("accuracy"), f"{where}: accuracy", upper=1.0),
            drift=drift,
            min_predictions=_optional_int(values.get("min_predictions"), f"{where}: min_predictions", minimum=1) or 20,
            min_labelled=_optional_int(values.get("min_labelled"), f"{where}: min_labelled", minimum=1) or 20,
        )


def _drift_setting(value: object) -> DriftThresholds | None:
    if value is True:
        return DriftThresholds()
    if value is False or value is None:
        return None
    if isinstance(value, Mapping):
        return DriftThresholds.from_mapping(value)
    raise ValidationError(
        f"drift: {value!r} is not true, false or a mapping of thresholds.", hint="e.g. drift: {psi: 0.3}"
    )


def _optional_number(value: object, where: str, *, upper: float | None = None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where} = {value!r} is not a non-negative number.", hint="e.g. 0.05")
    if upper is not None and value > upper:
        raise ConfigError(
            f"{where} = {value!r} is above {upper}.", hint="Rates and accuracies are fractions, e.g. 0.05."
        )
    return float(value)


def _retries(value: object) -> int:
    retries = _optional_int(value, "retries", minimum=0)
    return 3 if retries is None else retries


def _optional_int(value: object, where: str, *, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where} = {value!r} is not an integer of at least {minimum}.", hint="e.g. 20")
    return value


@dataclass(frozen=True, slots=True)
class AlertConfig:
    """The alert rules and where to send alerts.

    Attributes:
        rules: One rule per model.
        webhook_url: Where alert changes are POSTed as JSON; ``None`` logs them only.
        retries: Retries after a failed delivery (so at most ``retries + 1`` attempts).
        backoff_s: First wait between attempts; doubled after each.
        timeout_s: Timeout of one delivery attempt.
    """

    rules: tuple[AlertRule, ...]
    webhook_url: str | None = None
    retries: int = 3
    backoff_s: float = 1.0
    timeout_s: float = 5.0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> AlertConfig:
        """Build from a mapping in the documented format.

        Raises:
            ConfigError: The mapping does not follow the format.
        """
        if not isinstance(data, Mapping):
            raise ConfigError("The alert configuration is not a mapping.", hint="See modelport.monitoring.alerts.")
        unknown = sorted(set(data) - {"webhook", "retries", "backoff_s", "timeout_s", "models"})
        if unknown:
            raise ConfigError(
                f"Unknown alert configuration key {unknown[0]!r}.",
                hint="Top-level keys: webhook, retries, backoff_s, timeout_s, models.",
            )
        models = data.get("models") or {}
        if not isinstance(models, Mapping):
            raise ConfigError("'models' in the alert configuration is not a mapping.", hint="models: {churn: {...}}")
        webhook = data.get("webhook")
        if webhook is not None and (not isinstance(webhook, str) or not webhook.startswith(("http://", "https://"))):
            raise ConfigError(
                f"Alert webhook {redact_url(str(webhook))!r} is not an http(s) URL.", hint="e.g. https://..."
            )
        return cls(
            rules=tuple(AlertRule.from_mapping(str(name), values) for name, values in models.items()),
            webhook_url=webhook,
            retries=_retries(data.get("retries")),
            backoff_s=_optional_number(data.get("backoff_s"), "backoff_s") or 1.0,
            timeout_s=_optional_number(data.get("timeout_s"), "timeout_s") or 5.0,
        )

    @classmethod
    def from_file(cls, path: Path) -> AlertConfig:
        """Read a YAML (or JSON) configuration file.

        Raises:
            ConfigError: The file is missing, unparseable or not in the format.
        """
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(
                f"Cannot read the alert configuration {path}: {exc.strerror}.", hint="Check the path."
            ) from exc
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"The alert configuration {path} is not valid YAML: {exc}", hint="Fix the syntax."
            ) from exc
        return cls.from_mapping(data or {})


@dataclass(frozen=True, slots=True)
class AlertCheck:
    """One evaluated limit.

    Attributes:
        model: Model name.
        alert: Which limit (``drift``, ``error_rate``, ``latency_p99_ms``, ``accuracy``).
        value: The measured value (drift: the number of drifting features); ``None`` without data.
        threshold: The limit.
        firing: Whether the limit is crossed; ``None`` when there was too little data to tell.
        detail: A human explanation.
    """

    model: str
    alert: AlertName
    value: float | None
    threshold: float
    firing: bool | None
    detail: str

    @property
    def key(self) -> str:
        """The state key ``<model>/<alert>``."""
        return f"{self.model}/{self.alert}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "model": self.model,
            "alert": self.alert,
            "value": self.value,
            "threshold": self.threshold,
            "firing": self.firing,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A change of an alert: it started firing, or it resolved.

    Attributes:
        status: ``firing`` or ``resolved``.
        check: The check that changed.
        window: The rule's window.
        at: When the change was seen.
        delivered: Whether the webhook accepted it (``None`` without a webhook).
    """

    status: Literal["firing", "resolved"]
    check: AlertCheck
    window: str
    at: datetime
    delivered: bool | None = None

    def payload(self) -> dict[str, Any]:
        """The webhook body."""
        return {
            "source": "modelport",
            "status": self.status,
            "model": self.check.model,
            "alert": self.check.alert,
            "value": self.check.value,
            "threshold": self.check.threshold,
            "window": self.window,
            "message": self.message,
            "at": self.at.isoformat(),
        }

    @property
    def message(self) -> str:
        """One line for people: what changed, with the value and the limit."""
        verb = "crossed its limit" if self.status == "firing" else "is back within its limit"
        return f"{self.check.model}: {self.check.alert} {verb} ({self.check.detail})."

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the payload plus whether it was delivered)."""
        return {**self.payload(), "delivered": self.delivered}


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Outcome of :func:`check`: every evaluated limit, and the changes among them."""

    checks: tuple[AlertCheck, ...]
    events: tuple[AlertEvent, ...]

    @property
    def firing(self) -> list[AlertCheck]:
        """The limits crossed now."""
        return [c for c in self.checks if c.firing]

    def to_dict(self) -> dict[str, Any]:
        """``{"checks": [...], "events": [...], "firing": n}``."""
        return {
            "checks": [c.to_dict() for c in self.checks],
            "events": [e.to_dict() for e in self.events],
            "firing": len(self.firing),
        }


@dataclass(frozen=True, slots=True)
class AlertSources:
    """Where the checks read from: the log, and optionally feedback and reference profiles."""

    logs: LogReader
    feedback: FeedbackStore | None = None
    profiles: ProfileSource | None = None


def evaluate(rule: AlertRule, sources: AlertSources, *, now: datetime | None = None) -> list[AlertCheck]:
    """Evaluate every limit of ``rule`` over its window ending at ``now``."""
    window = Window.last(rule.window, now=now)
    checks: list[AlertCheck] = []
    if rule.max_error_rate is not None or rule.max_latency_p99_ms is not None:
        checks.extend(_traffic_checks(rule, sources, window))
    if rule.min_accuracy is not None:
        checks.append(_accuracy_check(rule, sources, window))
    if rule.drift is not None:
        checks.append(_drift_check(rule, sources, window))
    return checks


def _traffic_checks(rule: AlertRule, sources: AlertSources, window: Window) -> list[AlertCheck]:
    totals = traffic(sources.logs, model=rule.model, version=rule.version, window=window).totals
    enough = totals.predictions >= rule.min_predictions
    checks = []
    if rule.max_error_rate is not None:
        rate = totals.error_rate
        checks.append(
            AlertCheck(
                model=rule.model,
                alert="error_rate",
                value=rate,
                threshold=rule.max_error_rate,
                firing=(rate is not None and rate > rule.max_error_rate) if enough else None,
                detail=f"{totals.errors} of {totals.predictions} predictions failed in the last {rule.window}"
                + ("" if enough else f" (fewer than {rule.min_predictions}: no verdict)"),
            )
        )
    if rule.max_latency_p99_ms is not None:
        p99 = totals.p99_ms
        checks.append(
            AlertCheck(
                model=rule.model,
                alert="latency_p99_ms",
                value=p99,
                threshold=rule.max_latency_p99_ms,
                firing=(p99 is not None and p99 > rule.max_latency_p99_ms) if enough else None,
                detail=f"p99 latency {_fmt(p99)} ms over {totals.predictions} predictions in the last {rule.window}",
            )
        )
    return checks


def _accuracy_check(rule: AlertRule, sources: AlertSources, window: Window) -> AlertCheck:
    assert rule.min_accuracy is not None
    accuracy: float | None = None
    labelled = 0
    if sources.feedback is not None:
        report = live_metrics(sources.logs, sources.feedback, model=rule.model, version=rule.version, window=window)
        if report.task == "classification":
            labelled = sum(p.n for p in report.overall)
            correct = sum((p.metrics.get("accuracy") or 0.0) * p.n for p in report.overall)
            accuracy = correct / labelled if labelled else None
    enough = labelled >= rule.min_labelled and accuracy is not None
    return AlertCheck(
        model=rule.model,
        alert="accuracy",
        value=accuracy,
        threshold=rule.min_accuracy,
        firing=(accuracy is not None and accuracy < rule.min_accuracy) if enough else None,
        detail=f"live accuracy {_fmt(accuracy)} over {labelled} labelled predictions in the last {rule.window}",
    )


def _drift_check(rule: AlertRule, sources: AlertSources, window: Window) -> AlertCheck:
    assert rule.drift is not None
    profile = sources.profiles(rule.model, rule.version) if sources.profiles is not None else None
    if profile is None or profile.reference is None:
        return AlertCheck(
            model=rule.model, alert="drift", value=None, threshold=1, firing=None,
            detail="no reference statistics for this model version",
        )  # fmt: skip
    report = detect_drift(
        sources.logs,
        profile.reference,
        model=rule.model,
        version=profile.version,
        window=window,
        thresholds=rule.drift,
        signature=profile.signature,
        exclude=profile.redacted,
    )
    measured = [f for f in report.features if f.status in ("ok", "drift")]
    drifted = report.drifted_features
    return AlertCheck(
        model=rule.model,
        alert="drift",
        value=float(len(drifted)),
        threshold=1,
        firing=bool(drifted) if measured else None,
        detail=(f"drifting: {', '.join(drifted)}" if drifted else "no feature drifts")
        + f" over {report.rows} predictions in the last {rule.window}",
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


class AlertState:
    """Which alerts are firing, kept in a JSON file between checks (written atomically).

    Args:
        path: The state file (created on first save).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, dict[str, Any]]:
        """The stored state: ``{"<model>/<alert>": {"firing": bool, "since": iso, "value": v}}``."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            logger.warning("Alert state %s is unreadable (%s); starting afresh.", self.path, exc)
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, state: Mapping[str, Mapping[str, Any]]) -> None:
        """Replace the stored state."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = self.path.with_name(f".{self.path.name}.tmp")
        staging.write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(staging, self.path)


@dataclass(frozen=True)
class Notifier:
    """Posts alert events to a webhook with retries and exponential backoff.

    Attributes:
        url: The webhook URL; ``None`` delivers nothing.
        retries: Retries after the first attempt.
        backoff_s: First wait; doubled after each failed attempt.
        timeout_s: Per-attempt timeout.
        transport: An httpx transport (tests use ``httpx.MockTransport``).
        sleep: How to wait between attempts.
    """

    url: str | None
    retries: int = 3
    backoff_s: float = 1.0
    timeout_s: float = 5.0
    transport: httpx.BaseTransport | None = None
    sleep: Callable[[float], None] = field(default=time.sleep)

    def deliver(self, event: AlertEvent) -> bool | None:
        """POST ``event``; ``True`` on a 2xx, ``False`` when every attempt failed, ``None`` without a URL."""
        if self.url is None:
            return None
        with httpx.Client(transport=self.transport, timeout=self.timeout_s, follow_redirects=False) as client:
            for attempt in range(self.retries + 1):
                if attempt:
                    self.sleep(self.backoff_s * 2 ** (attempt - 1))
                try:
                    response = client.post(self.url, json=event.payload())
                except httpx.HTTPError as exc:
                    reason = type(exc).__name__
                else:
                    if response.is_success:
                        return True
                    reason = f"HTTP {response.status_code}"
                    if response.status_code < 500 and response.status_code != 429:
                        break
                logger.info("Alert webhook attempt %d failed: %s", attempt + 1, reason)
        logger.error("Alert webhook %s did not accept %s; it will be sent again.", redact_url(self.url), event.message)
        return False


def check(
    config: AlertConfig,
    sources: AlertSources,
    state: AlertState,
    *,
    notifier: Notifier | None = None,
    now: datetime | None = None,
) -> CheckResult:
    """Evaluate every rule, report changes since the last check, and remember the new state.

    Args:
        config: The rules and the webhook.
        sources: The log, feedback and reference profiles to read.
        state: Where the firing/resolved state is kept between checks.
        notifier: Delivers the changes; default one built from ``config`` (its webhook, retries, backoff).
        now: End of every window; default the current time.
    """
    moment = now or datetime.now(UTC)
    notify = notifier or Notifier(
        url=config.webhook_url, retries=config.retries, backoff_s=config.backoff_s, timeout_s=config.timeout_s
    )
    previous = state.load()
    current = dict(previous)
    checks: list[AlertCheck] = []
    events: list[AlertEvent] = []
    for rule in config.rules:
        try:
            rule_checks = evaluate(rule, sources, now=moment)
        except ModelportError as exc:
            logger.warning("Alert rule for %s could not be evaluated: %s", rule.model, exc)
            continue
        for item in rule_checks:
            checks.append(item)
            was_firing = bool(previous.get(item.key, {}).get("firing"))
            if item.firing is None or item.firing == was_firing:
                continue
            event = AlertEvent(
                status="firing" if item.firing else "resolved", check=item, window=rule.window, at=moment
            )
            _log(event)
            delivered = notify.deliver(event)
            events.append(
                AlertEvent(status=event.status, check=item, window=rule.window, at=moment, delivered=delivered)
            )
            if delivered is not False:
                current[item.key] = {"firing": item.firing, "since": moment.isoformat(), "value": item.value}
    state.save(current)
    return CheckResult(checks=tuple(checks), events=tuple(events))


def _log(event: AlertEvent) -> None:
    level = logging.WARNING if event.status == "firing" else logging.INFO
    logger.log(
        level,
        "ALERT %s model=%s alert=%s value=%s threshold=%s window=%s: %s",
        event.status,
        event.check.model,
        event.check.alert,
        _fmt(event.check.value),
        _fmt(event.check.threshold),
        event.window,
        event.check.detail,
    )
