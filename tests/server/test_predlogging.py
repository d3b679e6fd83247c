"""Every prediction (and every failure) reaches the prediction log with route "primary"; logging never
fails a request, and redacted columns are never written raw."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression

from modelport.bundle.io import save_bundle
from modelport.runtime.predlog import PredictionLogWriter, PredictionRecord
from modelport.server.app import create_app
from modelport.server.config import ServerConfig

from .support import iris_frame, rows, serving, v2_body

pytestmark = pytest.mark.anyio


def _records(directory: Path) -> list[dict[str, Any]]:
    files = sorted(directory.rglob("*.parquet"))
    return [row for f in files for row in pq.read_table(f).to_pylist()]


async def test_predictions_and_errors_are_logged(iris_bundles: dict[int, Path], tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    config = ServerConfig(models=(str(iris_bundles[1]),), poll_interval_s=0, prediction_log_dir=logs)
    async with serving(create_app(config, registry=None)) as client:
        ok = await client.post("/v2/models/iris/infer", json=v2_body(rows(3), ("predict",)))
        bad = await client.post("/v1/models/iris:predict", json={"instances": [{"sepal_length": 1.0}]})
        assert ok.status_code == 200
        assert bad.status_code == 422
    records = _records(logs)
    good = [r for r in records if r["request_id"] == ok.headers["x-request-id"]]
    assert [r["row"] for r in good] == [0, 1, 2]
    assert {r["route"] for r in records} == {"primary"}
    assert {r["model"] for r in records} == {"iris"}
    assert all(r["status"] == "ok" and r["version"] == 1 for r in good)
    failed = [r for r in records if r["request_id"] == bad.headers["x-request-id"]]
    assert len(failed) == 1
    assert failed[0]["status"] == "error"
    assert failed[0]["error_type"] == "ValidationError"


class _Broken(PredictionLogWriter):
    def log_many(self, records: Any) -> int:
        raise OSError("disk on fire")


async def test_a_failing_log_never_fails_a_request(iris_bundles: dict[int, Path], tmp_path: Path) -> None:
    config = ServerConfig(models=(str(iris_bundles[1]),), poll_interval_s=0)
    writer = _Broken(tmp_path / "logs")
    async with serving(create_app(config, registry=None, prediction_log=writer)) as client:
        resp = await client.post("/v2/models/iris/infer", json=v2_body(rows(1)))
        assert resp.status_code == 200


class _Capture(PredictionLogWriter):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.seen: list[PredictionRecord] = []

    def log_many(self, records: Any) -> int:
        self.seen.extend(records)
        return len(records)


async def test_redacted_inputs_are_not_logged_without_a_redactor(tmp_path: Path) -> None:
    x, y = iris_frame()
    bundle = tmp_path / "redacted"
    model = LogisticRegression(max_iter=300).fit(x, y)
    save_bundle(model, bundle, name="secret-iris", sample_input=x.iloc[:20], redaction={"sepal_length": "hash"})
    writer = _Capture(tmp_path / "logs")
    config = ServerConfig(models=(str(bundle),), poll_interval_s=0)
    async with serving(create_app(config, registry=None, prediction_log=writer)) as client:
        resp = await client.post("/v2/models/secret-iris/infer", json=v2_body(rows(2)))
        assert resp.status_code == 200
    assert len(writer.seen) == 2
    assert all(r.inputs is None for r in writer.seen)
    assert all(r.outputs is not None for r in writer.seen)
