"""The server on a real socket under uvicorn: the same predictions over V2, V1 and MLflow as
``Predictor.predict``, worker processes through the factory, and a clean shutdown on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

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
            proc.kill()
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


def test_two_workers_through_the_factory(bundle: Path) -> None:
    config = ServerConfig(models=(str(bundle),), port=_free_port(), poll_interval_s=0, workers=2, access_log=False)
    with _running(config) as (proc, base), httpx.Client(base_url=base, timeout=10) as client:
        for _ in range(10):
            assert client.post("/v1/models/iris:predict", json={"instances": rows(1)}).status_code == 200
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
    assert proc.returncode in (0, -signal.SIGTERM), output
    assert output.count("Application startup complete.") == 2
    assert "Traceback" not in output
