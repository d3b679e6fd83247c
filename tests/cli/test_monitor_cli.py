"""Monitoring from the command line, end to end: a registered model serves traffic through the real
server (``api.serving.build_app`` in-process, with its lifespan), then ``modelport logs``,
``monitor drift``, ``monitor feedback``, ``monitor metrics``, ``monitor check`` and ``dashboard``
read what it logged. Also the server's periodic alert task, and the errors users meet."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message

from modelport.api import save_model
from modelport.api.serving import build_app, server_config
from modelport.core.settings import Settings
from modelport.registry.registry import Registry

from .conftest import CliRunner

NAME = "bc"
SHIFTED = "mean radius"
DEADLINE_S = 30.0
"""Longest wait for the server's background alert task (a bound, not a timing assertion)."""


@dataclass(frozen=True)
class Data:
    model: Any
    x_train: pd.DataFrame
    x_test: pd.DataFrame
    y_test: np.ndarray


@dataclass(frozen=True)
class Served:
    """One request's answer: its id and the predictions of its rows."""

    request_id: str
    predictions: list[int]


@pytest.fixture(scope="module")
def data() -> Data:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    bunch = load_breast_cancer(as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(bunch.data, bunch.target, test_size=0.25, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x_train, y_train)
    return Data(model=model, x_train=x_train, x_test=x_test.reset_index(drop=True), y_test=y_test.to_numpy())


@pytest.fixture
def registered(cli: CliRunner, settings: Settings, data: Data) -> Settings:
    """``bc`` version 1 (with reference statistics) registered and promoted to production."""
    registry = Registry(settings)
    try:
        mv = save_model(
            data.model, NAME, sample_input=data.x_train.head(50), reference_data=data.x_train, registry=registry
        )
        registry.set_alias(NAME, "production", mv.version)
    finally:
        registry.close()
    return settings


@asynccontextmanager
async def running(app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    """Drive ``app``'s ASGI lifespan as uvicorn does, with an in-process client while it runs."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    task = asyncio.ensure_future(app(scope, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    assert started["type"] == "lifespan.startup.complete", started
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            yield client
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        stopped = await outbox.get()
        await task
        assert stopped["type"] == "lifespan.shutdown.complete", stopped


async def _predict(
    client: httpx.AsyncClient, frame: pd.DataFrame, batch: int, *, name: str = NAME, probabilities: bool = False
) -> list[Served]:
    answers = []
    for start in range(0, len(frame), batch):
        records = frame.iloc[start : start + batch].to_dict("records")
        body = {"instances": records, "probabilities": True} if probabilities else {"instances": records}
        response = await client.post(f"/v1/models/{name}:predict", json=body)
        assert response.status_code == 200, response.text
        answers.append(Served(response.headers["x-request-id"], [int(p) for p in response.json()["predictions"]]))
    return answers


def serve_traffic(
    settings: Settings,
    frame: pd.DataFrame,
    *,
    batch: int = 40,
    alerts: Path | None = None,
    wait_for_alert: str | None = None,
    name: str = NAME,
    probabilities: bool = False,
) -> list[Served]:
    """Send ``frame`` to the composed server in requests of ``batch`` rows; the log is flushed on shutdown.

    ``name@production`` answers; with ``probabilities``, the requests ask for (and so log) class probabilities.

    With ``alerts``, the server evaluates those rules every 50 ms; ``wait_for_alert`` (``model/alert``)
    waits, while the server still runs, until its background task has recorded that alert firing.
    """

    async def scenario() -> list[Served]:
        config = server_config((f"{name}@production",), settings=settings, poll_interval_s=0, access_log=False)
        registry = Registry(settings)
        app = build_app(
            config, settings=settings, registry=registry, accelerate=False, alerts_config=alerts, alerts_interval_s=0.05
        )
        try:
            async with running(app) as client:
                answers = await _predict(client, frame, batch, name=name, probabilities=probabilities)
                if wait_for_alert is not None:
                    await _until_firing(settings, wait_for_alert)
        finally:
            registry.close()
        return answers

    return asyncio.run(scenario())


async def _until_firing(settings: Settings, key: str) -> None:
    from modelport.api.alerting import alert_state_path

    path = alert_state_path(settings)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while loop.time() < deadline:
        if path.is_file() and json.loads(path.read_text()).get(key, {}).get("firing"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the server's alert task never recorded {key} firing")


def shifted(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out[SHIFTED] = out[SHIFTED] + 1.5 * float(frame[SHIFTED].std())
    return out


def test_shifted_feature_is_flagged_alone_and_alerts_fire(
    registered: Settings, cli: CliRunner, data: Data, tmp_path: Path
) -> None:
    alerts = tmp_path / "alerts.yaml"
    alerts.write_text(
        f"models:\n  {NAME}:\n    window: 1h\n    drift: true\n    error_rate: 0.5\n    min_predictions: 10\n"
    )
    serve_traffic(registered, shifted(data.x_test))
    # A server with alert rules evaluates them in the background (log files appear on rotation or stop,
    # so this second run sees the first one's traffic at once).
    serve_traffic(registered, data.x_test.head(0), alerts=alerts, wait_for_alert=f"{NAME}/drift")

    result = cli("monitor", "drift", NAME, "--window", "1h", "--json")
    assert result.exit_code == 1, result.stderr
    report = result.json()
    assert report["rows"] == len(data.x_test)
    assert report["drifted_features"] == [SHIFTED]
    by_name = {f["feature"]: f for f in report["features"]}
    assert len(by_name) == data.x_train.shape[1]
    assert by_name[SHIFTED]["drift"] is True
    assert {"psi", "ks_statistic", "psi_threshold", "ks_critical_value"} <= set(by_name[SHIFTED])
    assert all(f["status"] == "ok" for name, f in by_name.items() if name != SHIFTED)

    human = cli("monitor", "drift", f"{NAME}@production", "--window", "1h")
    assert human.exit_code == 1
    assert "DRIFT" in human.stdout
    assert SHIFTED in human.stdout

    # The server's alert task already reported the crossing: the CLI sees it firing, with no new event.
    checked = cli("monitor", "check", "--config", str(alerts), "--json")
    assert checked.exit_code == 1, checked.stderr
    outcome = checked.json()
    states = {c["alert"]: c["firing"] for c in outcome["checks"]}
    assert states == {"drift": True, "error_rate": False}
    assert outcome["events"] == []
    assert "FIRING" in cli("monitor", "check", "--config", str(alerts)).stdout


def test_unshifted_traffic_does_not_drift(registered: Settings, cli: CliRunner, data: Data) -> None:
    serve_traffic(registered, data.x_test)
    result = cli("monitor", "drift", NAME, "--window", "1h", "--json")
    assert result.exit_code == 0, result.stdout
    report = result.json()
    assert report["drift"] is False
    assert report["drifted_features"] == []
    assert {f["status"] for f in report["features"]} == {"ok"}
    assert report["prediction"]["drift"] is False
    human = cli("monitor", "drift", NAME, "--window", "1h")
    assert human.exit_code == 0
    assert "No drift" in human.stdout


def test_feedback_gives_live_accuracy_of_sklearn(
    registered: Settings, cli: CliRunner, data: Data, tmp_path: Path
) -> None:
    answers = serve_traffic(registered, data.x_test, batch=25)
    labelled = 100
    rows = [(a.request_id, i, p) for a in answers for i, p in enumerate(a.predictions)][:labelled]
    truth = data.y_test[:labelled]
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": [r[0] for r in rows], "row": [r[1] for r in rows], "truth": truth}).to_csv(
        labels, index=False
    )
    predicted = [r[2] for r in rows]

    result = cli(
        "monitor", "feedback", NAME, "--file", str(labels), "--key", "request_id", "--label", "truth", "--json"
    )
    assert result.exit_code == 0, result.stderr
    out = result.json()
    assert out["feedback"] == {"model": NAME, "accepted": labelled}
    [overall] = out["metrics"]["overall"]
    assert overall["n"] == labelled
    assert overall["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert overall["precision"] == pytest.approx(precision_score(truth, predicted))
    assert overall["recall"] == pytest.approx(recall_score(truth, predicted))
    assert overall["f1"] == pytest.approx(f1_score(truth, predicted))

    again = cli("monitor", "metrics", f"{NAME}:1", "--window", "1h", "--json")
    assert again.exit_code == 0, again.stderr
    assert again.json()["overall"][0]["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    human = cli("monitor", "metrics", NAME)
    assert "accuracy" in human.stdout
    assert f"{accuracy_score(truth, predicted):.3g}" in human.stdout

    missing = cli("monitor", "feedback", NAME, "--file", str(labels), "--key", "customer_id")
    assert missing.exit_code == 2
    assert "customer_id" in missing.stderr


def test_multiclass_feedback_gives_one_vs_rest_roc_auc_of_sklearn(
    settings: Settings, cli: CliRunner, tmp_path: Path
) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    iris = load_iris(as_frame=True)
    features = iris.data[["sepal length (cm)", "sepal width (cm)"]]  # overlapping classes: an AUC below 1
    x_train, x_test, y_train, y_test = train_test_split(features, iris.target, test_size=0.5, random_state=0)
    model = LogisticRegression(max_iter=1000).fit(x_train, y_train)
    registry = Registry(settings)
    try:
        mv = save_model(model, "iris", sample_input=x_train.head(20), registry=registry)
        registry.set_alias("iris", "production", mv.version)
    finally:
        registry.close()
    x_test = x_test.reset_index(drop=True)
    answers = serve_traffic(settings, x_test, batch=15, name="iris", probabilities=True)
    rows = [(a.request_id, i) for a in answers for i in range(len(a.predictions))]
    truth = y_test.to_numpy()
    labels = pd.DataFrame({"request_id": [r[0] for r in rows], "row": [r[1] for r in rows], "truth": truth})
    first, rest = tmp_path / "first.csv", tmp_path / "rest.csv"
    labels[truth != 2].to_csv(first, index=False)
    labels[truth == 2].to_csv(rest, index=False)

    def feedback(path: Path) -> dict[str, Any]:
        result = cli("monitor", "feedback", "iris", "--file", str(path), "--key", "request_id", "--label", "truth")
        assert result.exit_code == 0, result.stderr
        metrics = cli("monitor", "metrics", "iris", "--json")
        assert metrics.exit_code == 0, metrics.stderr
        [overall] = metrics.json()["overall"]
        return dict(overall)

    # Labels of setosa and versicolor only: virginica is never the truth, so no one-vs-rest AUC yet.
    partial = feedback(first)
    assert partial["n"] == int((truth != 2).sum())
    assert partial["roc_auc"] is None
    assert "n/a" in cli("monitor", "metrics", "iris").stdout

    overall = feedback(rest)
    expected = roc_auc_score(truth, model.predict_proba(x_test), multi_class="ovr", average="macro", labels=[0, 1, 2])
    assert 0.6 < expected < 0.99
    assert overall["n"] == len(truth)
    assert overall["roc_auc"] == pytest.approx(expected)
    human = cli("monitor", "metrics", "iris")
    assert "roc_auc" in human.stdout
    assert f"{expected:.3g}" in human.stdout
    assert "n/a" not in human.stdout

    # The dashboard's quality panel reads the same report (its chart draws every roc_auc point).
    from modelport.api.monitoring import dashboard_app

    async def performance() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=dashboard_app(settings, registry=registry))
        async with httpx.AsyncClient(transport=transport, base_url="http://dash") as client:
            response = await client.get("/api/models/iris/performance", params={"window": "1h"})
        assert response.status_code == 200, response.text
        return dict(response.json())

    registry = Registry(settings)
    try:
        panel = asyncio.run(performance())
    finally:
        registry.close()
    assert panel["overall"][0]["roc_auc"] == pytest.approx(expected)
    assert any(point["roc_auc"] is not None for point in panel["points"])


def test_logs_query_and_where_errors(registered: Settings, cli: CliRunner, data: Data) -> None:
    serve_traffic(registered, data.x_test.head(30), batch=10)

    result = cli("logs", NAME, "--since", "1h", "--json")
    assert result.exit_code == 0, result.stderr
    rows = result.json()["rows"]
    assert len(rows) == 30
    assert {r["model"] for r in rows} == {NAME}
    assert {r["status"] for r in rows} == {"ok"}
    assert len({r["request_id"] for r in rows}) == 3
    assert rows[0]["inputs"][SHIFTED] in set(data.x_test.head(30)[SHIFTED])

    limited = cli("logs", f"{NAME}@production", "--since", "1h", "--limit", "5", "--json").json()
    assert len(limited["rows"]) == 5
    assert limited["truncated"] is True
    assert cli("logs", NAME, "--where", "status <> 'ok'", "--json").json()["rows"] == []
    assert "Prediction log" in cli("logs", NAME).stdout

    for where, message in [
        ("no_such_column > 1", "Invalid --where expression"),
        ("1=1); COPY predictions TO 'stolen.csv'; --", "--where"),
    ]:
        bad = cli("logs", NAME, "--where", where)
        assert bad.exit_code == 2, bad.stdout
        assert message in bad.stderr
        assert "hint:" in bad.stderr
        assert "Traceback" not in bad.stderr
    assert cli("logs", NAME, "--since", "yesterday").exit_code == 2


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("monitor", "drift", "ghost"), "'ghost'"),
        (("monitor", "drift", f"{NAME}:7"), "7"),
        (("monitor", "metrics", "ghost"), "'ghost'"),
        (("logs", "ghost", "--json"), "'ghost'"),
        (("monitor", "feedback", "ghost", "--file", "labels.csv", "--key", "request_id"), "'ghost'"),
    ],
)
def test_unknown_models_get_a_clear_error(
    registered: Settings, cli: CliRunner, args: Sequence[str], named: str
) -> None:
    result = cli(*args)
    assert result.exit_code == 3, result.stdout
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error:")
    assert named in lines[0]
    assert any(line.startswith("hint:") for line in lines)
    assert "Traceback" not in result.stderr


def test_bad_drift_and_check_options_are_refused(registered: Settings, cli: CliRunner) -> None:
    assert cli("monitor", "drift", NAME, "--window", "3 fortnights").exit_code == 2
    bad = cli("monitor", "drift", NAME, "--threshold", "psy=0.3")
    assert bad.exit_code == 2
    assert "psy" in bad.stderr
    assert cli("monitor", "drift", NAME, "--threshold", "psi").exit_code == 2
    quiet = cli("monitor", "drift", NAME, "--threshold", "psi=0.3", "--json")
    assert quiet.exit_code == 0
    assert quiet.json()["rows"] == 0
    assert quiet.json()["thresholds"]["psi"] == 0.3
    missing = cli("monitor", "check", "--config", "nowhere.yaml")
    assert missing.exit_code == 2
    assert "nowhere.yaml" in missing.stderr


def test_dashboard_serves_the_page_and_refuses_public_binds(
    registered: Settings, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    seen: dict[str, Any] = {}

    def fake_run(server: uvicorn.Server, sockets: Any = None) -> None:
        async def visit() -> None:
            app = server.config.app
            assert isinstance(app, Starlette)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://dash") as client:
                seen["page"] = await client.get("/")
                seen["models"] = await client.get("/api/models")

        seen["bind"] = (server.config.host, server.config.port)
        asyncio.run(visit())

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    result = cli("dashboard", "--port", "8123")
    assert result.exit_code == 0, result.stderr
    assert "http://127.0.0.1:8123/" in result.stdout
    assert seen["bind"] == ("127.0.0.1", 8123)
    assert seen["page"].status_code == 200
    assert "<html" in seen["page"].text.lower()
    assert NAME in [m["name"] for m in seen["models"].json()["models"]]

    seen.clear()
    refused = cli("dashboard", "--host", "0.0.0.0")
    assert refused.exit_code == 2
    assert "no authentication" in refused.stderr
    assert seen == {}  # refused before anything was served
