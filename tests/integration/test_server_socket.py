"""The server on a real socket under uvicorn: the same predictions over V2, V1 and MLflow as
``Predictor.predict``, worker processes through the factory (each one's /metrics counting every
worker's requests), and a clean shutdown on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelport.bundle.io import load_bundle
from modelport.runtime.predictor import Predictor
from modelport.server.config import ServerConfig
from server.support import FEATURES, rows, save_iris, v2_body

pytestmark = pytest.mark.integration

LAUNCH = """
import sys
from modelport.server.app import create_app
from modelport.server.config import ServerConfig
from modelport.server.run import run
config = ServerConfig.from_json(sys.argv[1])
run(config, app=create_app(config, registry=None) if config.workers == 1 else None, log_level="info")
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_iris(tmp_path_factory.mktemp("socket") / "iris", c=1.0)


@contextmanager
def _running(config: ServerConfig) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, config.to_json()],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        start_new_session=True,  # its own process group: a failed test kills the workers too
    )
    base = f"http://127.0.0.1:{config.port}"
    deadline = time.monotonic() + 90
    while True:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            if httpx.get(f"{base}/v2/health/ready", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "server did not become ready"
        time.sleep(0.2)
    try:
        yield proc, base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the workers hold the output pipe open as well
            proc.communicate()


def test_one_worker_serves_every_protocol_and_exits_cleanly_on_sigterm(bundle: Path) -> None:
    config = ServerConfig(models=(str(bundle),), port=_free_port(), poll_interval_s=0)
    records = rows(5, start=45)
    expected = Predictor(load_bundle(bundle)).predict(records).tolist()
    with _running(config) as (proc, base), httpx.Client(base_url=base, timeout=10) as client:
        v2 = client.post("/v2/models/iris/infer", json=v2_body(records, ("predict",)))
        assert v2.json()["outputs"][0]["data"] == expected
        v1 = client.post("/v1/models/iris:predict", json={"instances": records})
        assert v1.json()["predictions"] == expected
        split = {"columns": list(FEATURES), "data": [[r[f] for f in FEATURES] for r in records]}
        mlflow = client.post("/invocations", json={"dataframe_split": split})
        assert mlflow.json() == {"predictions": expected}
        assert "x-request-id" in v2.headers
        assert "server" not in v2.headers
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
    assert proc.returncode in (0, -signal.SIGTERM), output  # uvicorn re-raises the signal after a clean shutdown
    assert "Application shutdown complete." in output
    assert "Traceback" not in output
    assert "serving iris:1 natively" in output
    assert '"path":"/v2/models/iris/infer","status":200' in output


def _worker_of(response: httpx.Response) -> str:
    """The answering worker: request ids start with a random per-app prefix of 12 hex digits."""
    return response.headers["x-request-id"][:12]


def _predict_on_a_new_connection(base: str) -> str:
    with httpx.Client(base_url=base, timeout=10) as client:
        response = client.post("/v1/models/iris:predict", json={"instances": rows(1)})
    assert response.status_code == 200
    return _worker_of(response)


def _predictions_counted(text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "modelport_requests_total" and sample.labels["route"] == "v1_predict"
    )


def test_two_workers_through_the_factory_and_every_scrape_counts_both(bundle: Path) -> None:
    config = ServerConfig(models=(str(bundle),), port=_free_port(), poll_interval_s=0, workers=2, access_log=False)
    with _running(config) as (proc, base):
        workers: set[str] = set()
        sent = 0
        with ThreadPoolExecutor(8) as pool:  # concurrent connections: the kernel hands them to both workers
            while len(workers) < 2 or sent < 24:
                assert sent < 400, f"every connection went to one worker: {workers}"
                workers.update(pool.map(lambda _: _predict_on_a_new_connection(base), range(8)))
                sent += 8
        time.sleep(1.5)  # each worker shares a snapshot every second
        for _ in range(6):
            with httpx.Client(base_url=base, timeout=10) as client:  # a new connection each time
                scrape = client.get("/metrics")
            assert scrape.status_code == 200
            assert _predictions_counted(scrape.text) == sent, f"scrape through worker {_worker_of(scrape)}"
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
    assert proc.returncode in (0, -signal.SIGTERM), output
    assert output.count("Application startup complete.") == 2
    assert "Traceback" not in output
