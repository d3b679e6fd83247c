"""Helpers for server tests: tiny real models saved as bundles, and an in-process client with the lifespan."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from starlette.types import ASGIApp, Message

from modelport.bundle.io import load_bundle, save_bundle
from modelport.bundle.loaded import LoadedBundle
from modelport.server.app import create_app
from modelport.server.config import ServerConfig

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def iris_frame() -> tuple[pd.DataFrame, Any]:
    """The iris features (named columns) and targets."""
    from sklearn.datasets import load_iris

    data = load_iris()
    return pd.DataFrame(data.data, columns=list(FEATURES)), data.target


def save_iris(path: Path, *, c: float, name: str = "iris") -> Path:
    """Fit a logistic regression on iris with regularisation ``c`` and save it as a bundle."""
    from sklearn.linear_model import LogisticRegression

    x, y = iris_frame()
    model = LogisticRegression(C=c, max_iter=500).fit(x, y)
    save_bundle(model, path, name=name, sample_input=x.iloc[:40])
    return path


def rows(n: int = 2, start: int = 0) -> list[dict[str, float]]:
    """``n`` iris records."""
    x, _ = iris_frame()
    return [{k: float(v) for k, v in r.items()} for r in x.iloc[start : start + n].to_dict("records")]


class Lifespan:
    """Drives an app's ASGI lifespan like a server does: ``startup`` then, later, ``shutdown``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        await self.inbox.put({"type": "lifespan.startup"})
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        self.task = asyncio.get_running_loop().create_task(self.app(scope, self.inbox.get, self.outbox.put))
        started = await self.outbox.get()
        if started["type"] != "lifespan.startup.complete":
            await self.task
            raise RuntimeError(f"startup failed: {started.get('message')}")

    async def shutdown(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        done = await self.outbox.get()
        assert self.task is not None
        await self.task
        if done["type"] != "lifespan.shutdown.complete":
            raise RuntimeError(f"shutdown failed: {done.get('message')}")


@asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Run the app's ASGI lifespan around the block."""
    driver = Lifespan(app)
    await driver.startup()
    try:
        yield
    finally:
        await driver.shutdown()


def client_for(app: ASGIApp, **headers: str) -> httpx.AsyncClient:
    """An httpx client talking to ``app`` in-process (the lifespan is the caller's business)."""
    transport = httpx.ASGITransport(app=app, client=("10.1.1.1", 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers)


@asynccontextmanager
async def serving(app: ASGIApp, **headers: str) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to ``app`` in-process, with the lifespan running."""
    async with lifespan(app), client_for(app, **headers) as client:
        yield client


def v2_body(records: list[dict[str, float]], outputs: tuple[str, ...] | None = None, **extra: Any) -> dict[str, Any]:
    """A V2 infer request with one input per column."""
    doc: dict[str, Any] = {
        "inputs": [
            {"name": name, "shape": [len(records)], "datatype": "FP64", "data": [r[name] for r in records]}
            for name in FEATURES
        ],
        **extra,
    }
    if outputs is not None:
        doc["outputs"] = [{"name": o} for o in outputs]
    return doc


class Gated:
    """Wraps a real adapter: each call waits for ``gate`` (when set up) and sleeps ``delay_s``."""

    def __init__(self, inner: Any, *, delay_s: float = 0.0, gate: threading.Event | None = None) -> None:
        self.inner = inner
        self.input_format, self.classes, self.has_proba = inner.input_format, inner.classes, inner.has_proba
        self.delay_s = delay_s
        self.gate = gate
        self.calls = 0
        self.entered = threading.Event()
        self.saw_infinity = False

    def _look(self, data: Any) -> None:
        values = np.asarray(data)
        if values.dtype.kind == "f" and np.isinf(values).any():
            self.saw_infinity = True

    def _wait(self) -> None:
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        time.sleep(self.delay_s)

    def predict(self, data: Any) -> np.ndarray:
        self._look(data)
        self._wait()
        return np.asarray(self.inner.predict(data))

    def predict_proba(self, data: Any) -> np.ndarray:
        self._look(data)
        self._wait()
        return np.asarray(self.inner.predict_proba(data))


def gated_app(bundle: Path, adapter_box: list[Gated], *, gate: threading.Event | None = None, delay_s: float = 0.0,
              **config: Any) -> Any:  # fmt: skip
    """An app serving ``bundle`` whose model is wrapped in :class:`Gated` (appended to ``adapter_box``)."""

    def loader(path: Path) -> LoadedBundle:
        loaded = load_bundle(path)
        adapter = Gated(loaded.adapter, delay_s=delay_s, gate=gate)
        adapter_box.append(adapter)
        return dataclasses.replace(loaded, adapter=adapter)

    settings = {"models": (str(bundle),), "poll_interval_s": 0, "warmup_rows": 0, **config}
    return create_app(ServerConfig(**settings), registry=None, loader=loader)
