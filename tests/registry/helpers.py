"""Helpers shared by the registry tests on SQLite and on PostgreSQL.

Bundles are real ones, written by ``modelport.bundle.io.save_bundle`` from a tiny scikit-learn
model trained on the iris data that sklearn ships. The concurrency helper registers from several
spawned processes that start together behind a barrier.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
import traceback
from pathlib import Path
from typing import Any

from modelport.bundle.io import save_bundle
from modelport.registry.registry import Registry

WORKER_TIMEOUT_S = 180.0


def build_bundle(path: Path, *, name: str = "iris", c: float = 1.0) -> Path:
    """Write a bundle of a logistic regression on iris (``c`` changes the weights, hence the files)."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, target = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=500, C=c).fit(features, target)
    save_bundle(
        model,
        path,
        name=name,
        sample_input=features.head(20),
        metrics={"accuracy": float(model.score(features, target))},
        tags={"team": "tests"},
        description=f"iris logistic regression, C={c}",
    )
    return path


def _register_many(
    db_url: str,
    artifacts_url: str,
    home: str,
    bundle: str,
    count: int,
    barrier: Any,
    results: Any,
) -> None:
    """Process body: wait for the others, then register ``bundle`` ``count`` times."""
    try:
        registry = Registry.from_urls(db_url, artifacts_url, actor=f"worker-{os.getpid()}", home=Path(home))
        barrier.wait(timeout=WORKER_TIMEOUT_S)
        versions = [registry.register(Path(bundle), reason="concurrency test").version for _ in range(count)]
        registry.close()
        results.put(("ok", versions))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def register_concurrently(
    db_url: str, artifacts_url: str, home: Path, bundle: Path, *, processes: int, per_process: int
) -> list[int]:
    """Register ``bundle`` from ``processes`` spawned processes at once; return every version they got."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    workers = [
        ctx.Process(
            target=_register_many,
            args=(db_url, artifacts_url, str(home), str(bundle), per_process, barrier, results),
        )
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        outcomes = _collect(results, workers)
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    errors = [detail for status, detail in outcomes if status == "error"]
    assert not errors, "a worker failed:\n" + "\n".join(errors)
    assert all(worker.exitcode == 0 for worker in workers)
    return sorted(version for _, versions in outcomes for version in versions)


def _collect(results: Any, workers: list[Any]) -> list[tuple[str, Any]]:
    """One outcome per worker; fails at once when a worker died without reporting."""
    outcomes: list[tuple[str, Any]] = []
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    while len(outcomes) < len(workers):
        try:
            outcomes.append(results.get(timeout=0.5))
        except queue.Empty:
            dead = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            assert not dead, f"a worker died with exit code {dead[0]} before reporting"
            assert time.monotonic() < deadline, f"the workers did not finish within {WORKER_TIMEOUT_S} s"
    return outcomes
