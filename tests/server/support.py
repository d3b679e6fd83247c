"""Helpers for server tests: tiny real models saved as bundles, and an in-process client with the lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from starlette.types import ASGIApp, Message

from modelport.bundle.io import save_bundle

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
