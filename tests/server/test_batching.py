"""Safety under load: batching merges concurrent requests, bounded queues answer 503 + Retry-After,
deadlines answer 504, and shutdown drains in-flight requests while readiness turns 503 at once."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from .support import Gated, Lifespan, client_for, gated_app, rows, serving, v2_body

pytestmark = pytest.mark.anyio


ONE = v2_body(rows(1), ("predict",))


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics")


async def test_concurrent_requests_are_merged_into_batches(iris_bundles: dict[int, Path]) -> None:
    box: list[Gated] = []
    app = gated_app(iris_bundles[1], box, delay_s=0.05, max_batch_size=32, max_batch_delay_ms=5)
    async with serving(app) as client:
        replies = await asyncio.gather(*(client.post("/v2/models/iris/infer", json=ONE) for _ in range(24)))
        assert {r.status_code for r in replies} == {200}
        text = (await client.get("/metrics")).text
    batches = _sample(text, 'modelport_batch_size_count{model="iris"}')
    merged = _sample(text, 'modelport_batch_size_sum{model="iris"}')
    singles = _sample(text, 'modelport_batch_size_bucket{le="1.0",model="iris"}')
    assert merged == 24
    assert batches < 24
    assert singles < batches
    assert box[0].calls == batches


async def test_a_lone_request_is_a_batch_of_one(iris_bundles: dict[int, Path]) -> None:
    box: list[Gated] = []
    async with serving(gated_app(iris_bundles[1], box, max_batch_delay_ms=50)) as client:
        for _ in range(3):
            assert (await client.post("/v2/models/iris/infer", json=ONE)).status_code == 200
        text = (await client.get("/metrics")).text
    assert _sample(text, 'modelport_batch_size_bucket{le="1.0",model="iris"}') == 3


async def test_full_queue_is_503_with_retry_after(iris_bundles: dict[int, Path]) -> None:
    gate = threading.Event()
    box: list[Gated] = []
    app = gated_app(iris_bundles[1], box, gate=gate, max_batch_size=1, max_queue=2, retry_after_s=3)
    async with serving(app) as client:
        tasks = [asyncio.ensure_future(client.post("/v2/models/iris/infer", json=ONE)) for _ in range(8)]
        await asyncio.to_thread(box[0].entered.wait, 5)
        await asyncio.sleep(0.05)
        gate.set()
        replies = await asyncio.gather(*tasks)
        statuses = sorted(r.status_code for r in replies)
        assert set(statuses) == {200, 503}
        assert statuses.count(200) >= 2
        refused = next(r for r in replies if r.status_code == 503)
        assert refused.headers["retry-after"] == "3"
        assert "queue for model iris:1 is full" in refused.json()["error"]
        text = (await client.get("/metrics")).text
    assert _sample(text, 'modelport_refused_total{model="iris",reason="overloaded"}') == statuses.count(503)


async def test_request_past_its_deadline_is_504(iris_bundles: dict[int, Path]) -> None:
    box: list[Gated] = []
    app = gated_app(iris_bundles[1], box, delay_s=0.5, request_timeout_s=0.1)
    async with serving(app) as client:
        resp = await client.post("/v2/models/iris/infer", json=ONE)
        assert resp.status_code == 504
        assert resp.json()["type"] == "DeadlineExceeded"
        text = (await client.get("/metrics")).text
    assert _sample(text, 'modelport_refused_total{model="iris",reason="timeout"}') == 1


async def test_shutdown_turns_readiness_off_and_drains_in_flight_requests(iris_bundles: dict[int, Path]) -> None:
    gate = threading.Event()
    box: list[Gated] = []
    app = gated_app(iris_bundles[1], box, gate=gate, drain_timeout_s=10)
    driver = Lifespan(app)
    await driver.startup()
    async with client_for(app) as client:
        assert (await client.get("/v2/health/ready")).status_code == 200
        in_flight = asyncio.ensure_future(client.post("/v2/models/iris/infer", json=ONE))
        await asyncio.to_thread(box[0].entered.wait, 5)
        stopping = asyncio.ensure_future(driver.shutdown())
        await asyncio.sleep(0.05)
        ready = await client.get("/v2/health/ready")
        assert ready.status_code == 503
        assert "shutting down" in ready.json()["error"]
        assert not stopping.done()
        gate.set()
        reply = await in_flight
        assert reply.status_code == 200
        await stopping


async def test_drain_gives_up_after_its_timeout(iris_bundles: dict[int, Path]) -> None:
    gate = threading.Event()
    box: list[Gated] = []
    app = gated_app(iris_bundles[1], box, gate=gate, drain_timeout_s=0.1)
    driver = Lifespan(app)
    await driver.startup()
    async with client_for(app) as client:
        in_flight = asyncio.ensure_future(client.post("/v2/models/iris/infer", json=ONE))
        await asyncio.to_thread(box[0].entered.wait, 5)
        await driver.shutdown()
        gate.set()
        reply = await in_flight
        assert reply.status_code in (200, 503)


async def test_an_infinity_fails_only_its_own_request_in_a_batch(tmp_path: Path) -> None:
    """The infinity check of ready float tensors runs once per batch; a batch that fails it is
    checked request by request, so only the request holding the infinity is refused, with the
    message a lone request gets."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from modelport.bundle.io import save_bundle

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(x, y)
    save_bundle(model, tmp_path / "tensor", name="flowers", sample_input=x[:50])  # a tensor signature
    box: list[Gated] = []
    app = gated_app(tmp_path / "tensor", box, delay_s=0.05, max_batch_size=32, max_batch_delay_ms=5)
    good = [{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": list(x[i])}]} for i in range(24)]
    bad_body = b'{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 1e999, 1.4, 0.2]}]}'
    headers = {"content-type": "application/json"}
    async with serving(app) as client:
        lone = await client.post("/v2/models/flowers/infer", content=bad_body, headers=headers)
        calls = [
            client.post("/v2/models/flowers/infer", content=bad_body, headers=headers)
            if i in (5, 17)
            else client.post("/v2/models/flowers/infer", json=good[i])
            for i in range(24)
        ]
        replies = await asyncio.gather(*calls)
        text = (await client.get("/metrics")).text
    assert 400 <= lone.status_code < 500
    assert "infinit" in lone.json()["error"]
    for i, reply in enumerate(replies):
        if i in (5, 17):
            assert (reply.status_code, reply.json()["error"]) == (lone.status_code, lone.json()["error"])
        else:
            assert reply.status_code == 200, reply.text
            assert reply.json()["outputs"][0]["data"] == [int(model.predict(x[i : i + 1])[0])]
    assert _sample(text, 'modelport_batch_size_count{model="flowers"}') < 25  # requests were merged
    assert not box[0].saw_infinity  # checked before the model call, not left to the model to reject
