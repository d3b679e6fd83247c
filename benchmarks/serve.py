"""Serving benchmark: modelport against the HTTP ceiling and a hand-written FastAPI app, in one run.

Workloads (one row per request, 32 concurrent connections, wrk as the load generator):

* W1: StandardScaler + LogisticRegression on ``load_breast_cancer`` (30 features).
* W2: RandomForestClassifier(100 trees, max_depth 12) on ``make_classification(20000, 20, random_state=0)``.

Servers, each in its own process under uvicorn (``--workers`` processes each, 1 by default, same
uvicorn settings):

* ``noop``: a raw ASGI app that answers a fixed JSON body without reading the model, on stock
  uvicorn: the HTTP ceiling the targets are measured against.
* ``noop-mp``: the same app on modelport's HTTP protocol (uvicorn's, with each response's header
  and body writes coalesced into one send, see ``modelport.server.http_protocol``; the no-op app
  has no prediction routes, so none of its requests take modelport's direct path): shown so that
  the share of the ceiling that comes from that protocol is visible.
* ``naive``: FastAPI + pydantic, ``model.predict`` per request in an ``async def`` endpoint (what
  people write by hand).
* ``modelport``: ``create_app`` with the ONNX Runtime fast path from ``modelport.edge`` when it is
  available (the table says which path served), micro-batching on, default limits, run by
  ``modelport.server.run`` (its HTTP protocol answers V2/V1 predictions without an ASGI cycle:
  ``modelport.server.direct``).

All servers run at once and are loaded one after the other in interleaved rounds; the table shows
each server's medians, so a slow spell of this shared machine falls on every server alike.

Run: ``python benchmarks/serve.py [--duration 20] [--rounds 5] [--connections 32] [--workloads W1,W2]
[--workers 1]``. Needs ``wrk`` (Debian: ``apt-get install -y wrk``); the script tries to install it
when missing and says so when it cannot. Prints req/s, p50 and p99 per server and the ratios
against the targets.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import pickle
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from pydantic import BaseModel

SERVERS = ("noop", "noop-mp", "naive", "modelport")


class Features(BaseModel):
    """The naive app's request body."""

    features: list[float]


TARGETS = "targets: modelport >= 50% of noop on both, >= 5x naive on W1, >= 20x naive on W2, p99 <= 3x p50"


# --- workloads ---------------------------------------------------------------------------------


def build_workload(name: str) -> tuple[Any, np.ndarray]:
    """The fitted model and its data for W1 or W2."""
    from sklearn.datasets import load_breast_cancer, make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "W1":
        x, y = load_breast_cancer(return_X_y=True)
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y), x
    x, y = make_classification(n_samples=20000, n_features=20, random_state=0)
    return RandomForestClassifier(n_estimators=100, max_depth=12, random_state=0, n_jobs=1).fit(x, y), x


def prepare(name: str, root: Path) -> dict[str, Any]:
    """Fit the workload, save it as a modelport bundle and as a pickle for the naive app."""
    from modelport.bundle.io import save_bundle

    model, x = build_workload(name)
    bundle = root / f"{name.lower()}-bundle"
    save_bundle(model, bundle, name=name.lower(), sample_input=x[:200])
    pickled = root / f"{name.lower()}.pkl"
    pickled.write_bytes(pickle.dumps(model))  # our own model, for the hand-written baseline only
    row = [float(v) for v in x[0]]
    return {"bundle": str(bundle), "pickle": str(pickled), "row": row, "name": name.lower()}


# --- the servers (run in subprocesses) ----------------------------------------------------------


def noop_app() -> Any:
    """The HTTP ceiling: answer a fixed body, read nothing."""
    body = b'{"predictions":[0]}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def naive_app(spec: dict[str, Any]) -> Any:
    """What people write by hand: FastAPI, a pydantic body, ``model.predict`` per request."""
    from fastapi import FastAPI

    model = pickle.loads(Path(spec["pickle"]).read_bytes())  # the benchmark's own file
    app = FastAPI()

    @app.post("/predict")
    async def predict(body: Features) -> dict[str, Any]:
        return {"predictions": model.predict(np.array([body.features])).tolist()}

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    return app


def modelport_app(spec: dict[str, Any]) -> tuple[Any, Any]:
    """modelport's app with the fast path when ``modelport.edge`` provides one."""
    from modelport.server.app import create_app
    from modelport.server.config import ServerConfig

    accelerate = None
    with contextlib.suppress(ImportError, AttributeError):
        accelerate = importlib.import_module("modelport.edge.accelerate").accelerate
    config = ServerConfig(models=(spec["bundle"],), port=spec["port"], poll_interval_s=0)
    return create_app(config, registry=None, accelerate=accelerate), config


SPEC_ENV = "MODELPORT_BENCH_SPEC"


def app_factory(kind: str) -> Any:
    """Build one server's app in a worker process (several workers), from the spec in the environment."""
    spec = json.loads(os.environ[SPEC_ENV])
    if kind == "modelport":
        return modelport_app(spec)[0]
    return naive_app(spec) if kind == "naive" else noop_app()


def noop_factory() -> Any:
    """uvicorn worker factory: the no-op app."""
    return app_factory("noop")


def noop_mp_factory() -> Any:
    """uvicorn worker factory: the no-op app (served with modelport's HTTP protocol)."""
    return app_factory("noop")


def naive_factory() -> Any:
    """uvicorn worker factory: the naive FastAPI app."""
    return app_factory("naive")


def modelport_factory() -> Any:
    """uvicorn worker factory: modelport's app."""
    return app_factory("modelport")


def serve(kind: str, spec: dict[str, Any]) -> None:
    """Run one server until SIGTERM: one process, or ``spec["workers"]`` uvicorn worker processes."""
    import uvicorn

    workers = int(spec.get("workers", 1))
    # the settings modelport's own run() uses where they touch the hot path: no Server header, no access log,
    # no X-Forwarded-* rewriting (modelport believes those headers only from proxies its config names)
    options = {
        "host": "127.0.0.1",
        "port": spec["port"],
        "log_level": "warning",
        "access_log": False,
        "server_header": False,
        "proxy_headers": False,
    }
    if workers > 1:
        os.environ[SPEC_ENV] = json.dumps(spec)  # read back by the factory in each worker
        sys.path.insert(0, str(Path(__file__).parent))  # workers import this file as the module "serve"
    if kind == "modelport":
        from modelport.server.run import run

        app, config = modelport_app(spec)
        if workers > 1:
            config = config.model_copy(update={"workers": workers})
            run(config, factory="serve:modelport_factory", log_level="warning")
        else:
            run(config, app=app, log_level="warning")
        return
    if kind == "noop-mp":
        from modelport.server.http_protocol import HTTP_PROTOCOL

        options["http"] = HTTP_PROTOCOL
    if workers > 1:
        uvicorn.run(f"serve:{kind.replace('-', '_')}_factory", factory=True, workers=workers, **options)
        return
    app = naive_app(spec) if kind == "naive" else noop_app()
    uvicorn.run(app, **options)


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Result:
    """One wrk run."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def find_wrk() -> str:
    """The wrk binary, installing Debian's package when possible."""
    found = shutil.which("wrk")
    if found:
        return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        print("wrk not found: installing Debian's package (apt-get install -y wrk) ...", flush=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, capture_output=True)
        found = shutil.which("wrk")
        if found:
            return found
    sys.exit(
        "This benchmark needs wrk (a C load generator) and could not find or install it.\n"
        "Install it with: sudo apt-get install -y wrk   (or build it from https://github.com/wg/wrk)."
    )


def request_for(kind: str, spec: dict[str, Any]) -> tuple[str, bytes]:
    """The path and body each server is sent (one row)."""
    row = spec["row"]
    if kind == "modelport":
        body = {
            "inputs": [{"name": "input", "shape": [1, len(row)], "datatype": "FP64", "data": row}],
            "outputs": [{"name": "predict"}],
        }
        return f"/v2/models/{spec['name']}/infer", json.dumps(body).encode()
    return "/predict", json.dumps({"features": row}).encode()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"cannot read latency {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def run_wrk(wrk: str, url: str, body: bytes, *, duration_s: int, connections: int, threads: int) -> Result:
    """Drive ``url`` with POSTs of ``body`` and parse wrk's report."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write('wrk.method = "POST"\n')
        script.write('wrk.headers["Content-Type"] = "application/json"\n')
        script.write(f"wrk.body = {json.dumps(body.decode())}\n")
    try:
        out = subprocess.run(
            [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--latency", "-s", script.name, url],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out)[1])  # type: ignore[index]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out)[1])  # type: ignore[index]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non2xx[1]) if non2xx else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return Result(rps, p50, p99, errors)


def free_port() -> int:
    """An unused local TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Running:
    """A started server: its process, the URL to load and the body to send."""

    proc: subprocess.Popen[bytes]
    url: str
    body: bytes


def start_server(kind: str, spec: dict[str, Any], workers: int = 1) -> Running:
    """Start one server subprocess and wait until it answers."""
    spec = {**spec, "port": free_port(), "workers": workers}
    proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--spec", json.dumps(spec)])
    path, body = request_for(kind, spec)
    url = f"http://127.0.0.1:{spec['port']}{path}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{kind} server exited with code {proc.returncode}")
        try:
            reply = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=2)
            if reply.status_code == 200:
                return Running(proc, url, body)
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.kill()
    sys.exit(f"{kind} server did not answer within 120 s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then wait."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def served_by(spec: dict[str, Any]) -> str:
    """Which path modelport uses for this workload, from its metadata route."""
    return spec.get("runtime", "?")


def measure(workload: str, spec: dict[str, Any], wrk: str, args: argparse.Namespace) -> dict[str, Result]:
    """Every server on one workload, in interleaved rounds (the median of each server's rounds).

    All servers run at once (idle ones cost nothing) and each round loads them one after the
    other, so a slow spell of this shared machine falls on every server rather than on one.
    """
    results: dict[str, list[Result]] = {kind: [] for kind in SERVERS}
    servers: dict[str, Running] = {}
    load = {"connections": args.connections, "threads": args.threads}
    seconds = max(1, round(args.duration / args.rounds))
    try:
        for kind in SERVERS:
            servers[kind] = start_server(kind, spec, args.workers)
        meta_url = servers["modelport"].url.rsplit("/infer", 1)[0]
        spec["runtime"] = httpx.get(meta_url, timeout=5).json()["serving"]["runtime"]
        for server in servers.values():
            run_wrk(wrk, server.url, server.body, duration_s=2, **load)  # warm-up
        for round_no in range(1, args.rounds + 1):
            for kind, server in servers.items():
                r = run_wrk(wrk, server.url, server.body, duration_s=seconds, **load)
                results[kind].append(r)
                print(f"  {workload} round {round_no} {kind:<10} {r.rps:>10,.0f} req/s  p50 {r.p50_ms:7.2f} ms"
                      f"  p99 {r.p99_ms:7.2f} ms  errors {r.errors}", flush=True)  # fmt: skip
    finally:
        for server in servers.values():
            stop_server(server.proc)
    return {kind: median_result(runs) for kind, runs in results.items()}


def median_result(runs: list[Result]) -> Result:
    """The median of each figure over the rounds (errors summed)."""
    return Result(
        rps=statistics.median(r.rps for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        errors=sum(r.errors for r in runs),
    )


def report(
    all_results: dict[str, dict[str, Result]], specs: dict[str, dict[str, Any]], args: argparse.Namespace
) -> None:
    """Print the table and the ratios."""
    print()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    seconds = max(1, round(args.duration / args.rounds))
    print(f"{os.cpu_count()} CPU core(s) visible, shared by wrk ({args.threads} threads) and the server "
          f"({args.workers} worker process(es) each);"
          f" {args.connections} connections; {args.rounds} interleaved rounds of {seconds} s"
          f" per server, medians shown; load average now {load}.")  # fmt: skip
    print(f"{'workload':<9}{'server':<11}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for workload, results in all_results.items():
        for kind, r in results.items():
            print(f"{workload:<9}{kind:<11}{r.rps:>10,.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{r.errors:>8}")
    print()
    for workload, results in all_results.items():
        mp, noop, naive = results["modelport"], results["noop"], results["naive"]
        print(
            f"{workload}: modelport = {mp.rps / noop.rps:.0%} of the no-op ceiling, {mp.rps / naive.rps:.1f}x the "
            f"naive FastAPI app, p99/p50 = {mp.p99_ms / mp.p50_ms:.1f} (no-op: {noop.p99_ms / noop.p50_ms:.1f}); "
            f"served via {served_by(specs[workload])}"
        )
        ceiling_mp = results["noop-mp"]
        print(
            f"{workload}: the no-op app on modelport's HTTP protocol: {ceiling_mp.rps / noop.rps:.2f}x stock uvicorn; "
            f"modelport = {mp.rps / ceiling_mp.rps:.0%} of it"
        )
    print(TARGETS)


def main() -> None:
    """Parse arguments; either run one server (internal) or the whole benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=20, help="measured seconds per server, split over the rounds")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians are reported)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workloads", default="W1,W2")
    parser.add_argument("--workers", type=int, default=1, help="worker processes per server (all three alike)")
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, json.loads(args.spec))
        return
    wrk = find_wrk()
    all_results: dict[str, dict[str, Result]] = {}
    specs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="modelport-bench-") as tmp:
        for workload in args.workloads.split(","):
            print(f"{workload}: training and saving ...", flush=True)
            specs[workload] = prepare(workload, Path(tmp))
            all_results[workload] = measure(workload, specs[workload], wrk, args)
    report(all_results, specs, args)


if __name__ == "__main__":
    main()
