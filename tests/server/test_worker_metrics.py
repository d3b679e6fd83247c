"""Metrics shared between worker processes: every worker's /metrics shows the sum over workers."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from modelport.server import run as run_module
from modelport.server.app import create_app
from modelport.server.config import ServerConfig
from modelport.server.metrics import ServerMetrics
from modelport.server.run import WORKER_ENV, run, worker_spec_from_environment
from modelport.server.worker_metrics import RETIRED, WorkerMetrics, collect_families, write_snapshot

from .support import rows, serving

REQUESTS = "modelport_requests_total"
OK = {"route": "v1_predict", "model": "iris", "status": "200"}


def _samples(text: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _worker(requests: int, *, latency: float, ready: float, in_flight: float) -> ServerMetrics:
    metrics = ServerMetrics()
    for _ in range(requests):
        metrics.observe_request("v1_predict", "iris", 200, latency)
    metrics.set_ready("iris", 1, bool(ready))
    metrics.in_flight.set(in_flight)
    metrics.count_cache("iris", "hit")
    return metrics


def _snapshot(folder: Path, metrics: ServerMetrics, pid: int, *, age_s: float = 0.0) -> Path:
    path = folder / f"{pid}-{os.urandom(4).hex()}.json"
    write_snapshot(path, collect_families(metrics.registry), pid=pid)
    if age_s:
        then = time.time() - age_s
        os.utime(path, (then, then))
    return path


def _exited_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_counters_and_histograms_sum_in_flight_sums_model_ready_takes_the_minimum(tmp_path: Path) -> None:
    own = _worker(2, latency=0.002, ready=1, in_flight=2)
    own.set_ready("iris", 2, True)  # a version only this worker serves: not ready for the server
    own.share(tmp_path)
    _snapshot(tmp_path, _worker(3, latency=0.2, ready=1, in_flight=1), os.getppid())
    _snapshot(tmp_path, _worker(5, latency=0.2, ready=0, in_flight=4), os.getppid())
    samples = _samples(own.render())
    assert _value(samples, REQUESTS, **OK) == 10
    assert _value(samples, "modelport_request_latency_seconds_count", route="v1_predict") == 10
    assert _value(samples, "modelport_request_latency_seconds_bucket", route="v1_predict", le="0.0025") == 2
    assert _value(samples, "modelport_request_latency_seconds_bucket", route="v1_predict", le="+Inf") == 10
    assert _value(samples, "modelport_request_latency_seconds_sum", route="v1_predict") == pytest.approx(1.604)
    assert _value(samples, "modelport_cache_total", model="iris", result="hit") == 3
    assert _value(samples, "modelport_requests_in_flight") == 7
    assert _value(samples, "modelport_model_ready", model="iris", version="1") == 0
    assert _value(samples, "modelport_model_ready", model="iris", version="2") == 0
    assert not any(name.endswith("_created") for name, _ in samples)


def test_model_ready_is_one_when_every_worker_serves_the_version(tmp_path: Path) -> None:
    own = _worker(1, latency=0.01, ready=1, in_flight=0)
    own.share(tmp_path)
    _snapshot(tmp_path, _worker(1, latency=0.01, ready=1, in_flight=0), os.getppid())
    assert _value(_samples(own.render()), "modelport_model_ready", model="iris", version="1") == 1


def test_a_stale_snapshot_keeps_its_counts_but_not_its_gauges(tmp_path: Path) -> None:
    own = _worker(2, latency=0.01, ready=1, in_flight=1)
    own.share(tmp_path)
    _snapshot(tmp_path, _worker(3, latency=0.01, ready=0, in_flight=5), os.getppid(), age_s=30)
    samples = _samples(own.render())
    assert _value(samples, REQUESTS, **OK) == 5  # a stuck worker's counts stay: totals never go down
    assert _value(samples, "modelport_requests_in_flight") == 1
    assert _value(samples, "modelport_model_ready", model="iris", version="1") == 1


def test_the_own_snapshot_is_not_counted_twice(tmp_path: Path) -> None:
    own = _worker(4, latency=0.01, ready=1, in_flight=1)
    shared = own.share(tmp_path)
    shared.publish()
    assert shared.path.is_file()
    assert shared.path.name.startswith(f"{os.getpid()}-")
    samples = _samples(own.render())
    assert _value(samples, REQUESTS, **OK) == 4
    assert _value(samples, "modelport_requests_in_flight") == 1
    assert _value(samples, "modelport_model_ready", model="iris", version="1") == 1


def test_corrupt_partial_or_foreign_files_are_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    own = _worker(2, latency=0.01, ready=1, in_flight=0)
    own.share(tmp_path)
    good = _snapshot(tmp_path, _worker(3, latency=0.01, ready=1, in_flight=0), os.getppid())
    text = good.read_text()
    (tmp_path / "11-aa.json").write_text(text[: len(text) // 2])  # cut short
    (tmp_path / "12-bb.json").write_bytes(b"\xff\x00 not json")
    (tmp_path / "13-cc.json").write_text(json.dumps({"families": [["x", "counter", "X.", [["x_total", {}, "1"]]]]}))
    (tmp_path / "14-dd.json").write_text(json.dumps({"families": [["bad name", "counter", "X.", []]]}))
    (tmp_path / "15-ee.json").write_text(json.dumps([1, 2]))
    (tmp_path / "notes.txt").write_text("not a snapshot")
    (tmp_path / f".{good.name}.tmp").write_text("{")  # a write in progress
    samples = _samples(own.render())
    assert _value(samples, REQUESTS, **OK) == 5
    assert "Ignoring the metrics snapshot" in caplog.text


def test_an_exited_workers_counts_are_retired_without_a_drop(tmp_path: Path) -> None:
    own = _worker(1, latency=0.01, ready=1, in_flight=0)
    shared = own.share(tmp_path)
    first = _snapshot(tmp_path, _worker(3, latency=0.01, ready=0, in_flight=2), _exited_pid())
    second = _snapshot(tmp_path, _worker(5, latency=0.01, ready=0, in_flight=2), _exited_pid())
    alive = _snapshot(tmp_path, _worker(7, latency=0.01, ready=1, in_flight=1), os.getppid())
    before = _samples(own.render())
    assert _value(before, REQUESTS, **OK) == 16
    shared.retire_exited()
    assert not first.exists()
    assert not second.exists()
    assert alive.exists()
    assert (tmp_path / RETIRED).is_file()
    after = _samples(own.render())
    assert _value(after, REQUESTS, **OK) == 16
    assert _value(after, "modelport_cache_total", model="iris", result="hit") == 4
    assert _value(after, "modelport_requests_in_flight") == 1  # the exited workers' gauges are gone
    assert _value(after, "modelport_model_ready", model="iris", version="1") == 1
    _snapshot(tmp_path, _worker(10, latency=0.01, ready=0, in_flight=0), _exited_pid())
    shared.retire_exited()  # retirements accumulate
    assert _value(_samples(own.render()), REQUESTS, **OK) == 26


def test_an_older_snapshot_never_replaces_a_newer_one(tmp_path: Path) -> None:
    metrics = _worker(1, latency=0.01, ready=1, in_flight=0)
    shared = WorkerMetrics(tmp_path, metrics.registry)
    older = shared._take()
    metrics.observe_request("v1_predict", "iris", 200, 0.01)
    newer = shared._take()
    shared._write(*newer)
    shared._write(*older)  # e.g. the periodic write finishing after a scrape's
    families = json.loads(shared.path.read_text())["families"]
    requests = next(f for f in families if f[0] == "modelport_requests")
    assert requests[3][0][2] == 2


def test_one_worker_renders_its_registry_as_before() -> None:
    metrics = _worker(2, latency=0.01, ready=1, in_flight=0)
    assert metrics.shared is None
    assert metrics.render() == generate_latest(metrics.registry)


@pytest.mark.anyio
async def test_the_sharing_task_publishes_every_interval_and_once_more_when_cancelled(tmp_path: Path) -> None:
    metrics = _worker(1, latency=0.01, ready=1, in_flight=0)
    shared = metrics.share(tmp_path)
    task = asyncio.create_task(shared.run(interval_s=0.01))
    for _ in range(200):
        if shared.path.exists():
            break
        await asyncio.sleep(0.01)
    assert shared.path.exists()
    metrics.observe_request("v1_predict", "iris", 200, 0.01)
    metrics.observe_request("v1_predict", "iris", 200, 0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    other = ServerMetrics()
    other.share(tmp_path)
    assert _value(_samples(other.render()), REQUESTS, **OK) == 3


@pytest.mark.anyio
async def test_a_worker_app_shares_its_metrics_while_it_runs(tmp_path: Path, iris_bundles: dict[int, Path]) -> None:
    config = ServerConfig(models=(str(iris_bundles[1]),), poll_interval_s=0, worker_metrics_dir=tmp_path)
    peer = _worker(4, latency=0.01, ready=1, in_flight=0)
    _snapshot(tmp_path, peer, os.getppid())
    app: Any = create_app(config, registry=None)
    async with serving(app) as client:
        assert (await client.post("/v1/models/iris:predict", json={"instances": rows(1)})).status_code == 200
        samples = _samples((await client.get("/metrics")).content)
        assert _value(samples, REQUESTS, **OK) == 5
        assert _value(samples, "modelport_requests_in_flight") == 1  # the scrape itself
        assert _value(samples, "modelport_model_ready", model="iris", version="1") == 1
    own = list(tmp_path.glob(f"{os.getpid()}-*.json"))
    assert len(own) == 1  # written while serving, and once more at shutdown
    families = json.loads(own[0].read_text())["families"]
    requests = next(f for f in families if f[0] == "modelport_requests")
    routes = {labels["route"]: value for _, labels, value in requests[3]}
    assert routes == {"v1_predict": 1, "metrics": 1}  # the scrape too: its last snapshot came after it


def test_several_workers_get_a_private_folder_removed_on_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_uvicorn_run(app: str, **options: Any) -> None:
        spec = worker_spec_from_environment()
        folder = spec.config.worker_metrics_dir
        assert folder is not None
        seen["folder"] = folder
        seen["mode"] = stat.S_IMODE(folder.stat().st_mode)
        seen["workers"] = options["workers"]

    monkeypatch.setattr(run_module.uvicorn, "run", fake_uvicorn_run)
    monkeypatch.setenv(WORKER_ENV, "")  # restored after the test: run() sets it
    run(ServerConfig(models=("./x",), workers=3))
    assert seen["workers"] == 3
    assert seen["mode"] == 0o700
    assert not seen["folder"].exists()
