"""MicroBatcher: merging, no delay for a lone request, backpressure, per-item errors, cancellation, stop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from modelport.core.errors import ModelportError, Overloaded, ServiceUnavailable
from modelport.runtime.batcher import MicroBatcher
from modelport.runtime.observe import NullObserver, RuntimeObserver


class Recorder(NullObserver):
    def __init__(self) -> None:
        self.batches: list[int] = []
        self.queue_times: list[float] = []
        self.overloads: list[int] = []

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batches.append(size)

    def observe_queue_time(self, seconds: float) -> None:
        self.queue_times.append(seconds)

    def observe_overload(self, waiting: int) -> None:
        self.overloads.append(waiting)


class Gate:
    """A process function that blocks until released, recording every batch it saw."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.seen: list[list[int]] = []

    def __call__(self, items: list[int]) -> list[int]:
        self.seen.append(list(items))
        self.entered.set()
        assert self.release.wait(10), "test gate never released"
        return [i * 10 for i in items]


async def wait_for(predicate: Callable[[], bool]) -> None:
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never became true")


def test_the_observer_protocol_is_satisfied() -> None:
    assert isinstance(NullObserver(), RuntimeObserver)
    assert isinstance(Recorder(), RuntimeObserver)


def test_concurrent_submits_are_merged_and_results_match_items() -> None:
    observer = Recorder()

    def slow_double(items: list[int]) -> list[int]:
        time.sleep(0.02)
        return [i * 2 for i in items]

    async def main() -> list[int]:
        batcher = MicroBatcher(slow_double, max_batch_size=8, max_batch_delay_ms=1, observer=observer, name="m:1")
        batcher.start()
        try:
            return list(await asyncio.gather(*(batcher.submit(i) for i in range(30))))
        finally:
            await batcher.stop()

    assert asyncio.run(main()) == [i * 2 for i in range(30)]
    assert max(observer.batches) > 1
    assert max(observer.batches) <= 8
    assert sum(observer.batches) == 30
    assert len(observer.queue_times) == 30
    assert all(t >= 0 for t in observer.queue_times)


def test_requests_arriving_during_a_batch_join_the_next_one() -> None:
    gate = Gate()

    async def main() -> None:
        batcher = MicroBatcher(gate, max_batch_size=16, max_batch_delay_ms=0)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(0))
        await wait_for(gate.entered.is_set)
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 6)]
        await wait_for(lambda: batcher.waiting == 5)
        gate.release.set()
        assert await first == 0
        assert await asyncio.gather(*rest) == [10, 20, 30, 40, 50]
        await batcher.stop()

    asyncio.run(main())
    assert gate.seen == [[0], [1, 2, 3, 4, 5]]


def test_a_lone_request_is_not_delayed_by_max_batch_delay() -> None:
    async def main() -> float:
        batcher = MicroBatcher(lambda xs: xs, max_batch_delay_ms=5000)
        batcher.start()
        started = time.monotonic()
        assert await batcher.submit(7) == 7
        elapsed = time.monotonic() - started
        await batcher.stop()
        return elapsed

    # Generous bound: a lone request must come back long before the 5 s batch delay would elapse.
    assert asyncio.run(main()) < 2.5


def test_full_queue_is_overloaded_with_a_hint() -> None:
    gate = Gate()
    observer = Recorder()

    async def main() -> None:
        batcher = MicroBatcher(gate, max_batch_size=1, max_queue=2, observer=observer, name="churn:2")
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(1))
        await wait_for(gate.entered.is_set)  # item 1 is being processed, the queue is empty
        queued = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 3)]
        await asyncio.sleep(0)
        with pytest.raises(Overloaded, match=r"queue for model churn:2 is full \(2 waiting\)") as info:
            await batcher.submit(4)
        assert info.value.hint is not None
        assert "Retry later" in info.value.hint
        assert info.value.http_status == 503
        gate.release.set()
        assert await first == 10
        assert await asyncio.gather(*queued) == [20, 30]
        await batcher.stop()

    asyncio.run(main())
    assert observer.overloads == [2]


def test_exceptions_are_delivered_per_item() -> None:
    def picky(items: list[int]) -> Sequence[int | BaseException]:
        return [ValueError(f"bad item {i}") if i % 2 else i for i in items]

    async def main() -> list[Any]:
        batcher = MicroBatcher(picky, max_batch_size=8)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit(i) for i in range(6)), return_exceptions=True)
        await batcher.stop()
        return results

    results = asyncio.run(main())
    assert results[0::2] == [0, 2, 4]
    assert [str(e) for e in results[1::2]] == ["bad item 1", "bad item 3", "bad item 5"]


def test_an_exception_raised_by_process_fails_its_whole_batch_only() -> None:
    calls = {"n": 0}

    def flaky(items: list[int]) -> list[int]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("model crashed")
        return items

    async def main() -> None:
        batcher = MicroBatcher(flaky)
        batcher.start()
        with pytest.raises(RuntimeError, match="model crashed"):
            await batcher.submit(1)
        assert await batcher.submit(2) == 2  # the batcher keeps serving
        await batcher.stop()

    asyncio.run(main())


def test_wrong_number_of_results_is_an_error_for_every_item() -> None:
    async def main() -> None:
        batcher = MicroBatcher(lambda xs: [], name="m")
        batcher.start()
        with pytest.raises(ModelportError, match="returned 0 results for 1 items"):
            await batcher.submit(1)
        await batcher.stop()

    asyncio.run(main())


def test_cancelled_waiters_are_skipped_or_ignored() -> None:
    gate = Gate()

    async def main() -> None:
        batcher = MicroBatcher(gate, max_batch_size=16, max_batch_delay_ms=0)
        batcher.start()
        in_flight = asyncio.ensure_future(batcher.submit(1))
        await wait_for(gate.entered.is_set)
        queued = asyncio.ensure_future(batcher.submit(2))
        kept = asyncio.ensure_future(batcher.submit(3))
        await wait_for(lambda: batcher.waiting == 2)
        in_flight.cancel()  # its result is discarded
        queued.cancel()  # never reaches process
        await asyncio.sleep(0)
        gate.release.set()
        assert await kept == 30
        assert in_flight.cancelled()
        assert queued.cancelled()
        await batcher.stop()

    asyncio.run(main())
    assert gate.seen == [[1], [3]]


def test_a_timeout_around_submit_cancels_cleanly() -> None:
    gate = Gate()

    async def main() -> None:
        batcher = MicroBatcher(gate)
        batcher.start()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(batcher.submit(1), 0.05)
        gate.release.set()
        assert await batcher.submit(2) == 20
        await batcher.stop()

    asyncio.run(main())


def test_stop_drains_queued_items_then_refuses_new_ones() -> None:
    gate = Gate()

    async def main() -> None:
        batcher = MicroBatcher(gate, max_batch_size=2, max_batch_delay_ms=0)
        batcher.start()
        futures = [asyncio.ensure_future(batcher.submit(i)) for i in range(5)]
        await wait_for(gate.entered.is_set)
        stopping = asyncio.ensure_future(batcher.stop())
        await asyncio.sleep(0.01)
        assert not batcher.is_running
        with pytest.raises(ServiceUnavailable, match="not accepting requests"):
            await batcher.submit(99)
        gate.release.set()
        await stopping
        assert await asyncio.gather(*futures) == [0, 10, 20, 30, 40]
        assert not batcher.is_running

    asyncio.run(main())


def test_stop_without_drain_fails_queued_and_in_flight_items() -> None:
    gate = Gate()

    async def main() -> None:
        batcher = MicroBatcher(gate, max_batch_size=1)
        batcher.start()
        futures = [asyncio.ensure_future(batcher.submit(i)) for i in range(3)]
        await wait_for(gate.entered.is_set)
        await batcher.stop(drain=False)
        results = await asyncio.gather(*futures, return_exceptions=True)
        assert all(isinstance(r, ServiceUnavailable) for r in results)
        gate.release.set()

    asyncio.run(main())


def test_stop_with_drain_timeout_fails_the_rest() -> None:
    gate = Gate()

    async def main() -> None:
        batcher = MicroBatcher(gate, max_batch_size=1)
        batcher.start()
        futures = [asyncio.ensure_future(batcher.submit(i)) for i in range(2)]
        await wait_for(gate.entered.is_set)
        await batcher.stop(timeout_s=0.05)
        results = await asyncio.gather(*futures, return_exceptions=True)
        assert all(isinstance(r, ServiceUnavailable) for r in results)
        gate.release.set()

    asyncio.run(main())


def test_lifecycle_misuse() -> None:
    async def main() -> None:
        batcher: MicroBatcher[int, int] = MicroBatcher(lambda xs: xs)
        await batcher.stop()  # never started: nothing to do
        with pytest.raises(ServiceUnavailable):
            await batcher.submit(1)
        batcher.start()
        with pytest.raises(RuntimeError, match="already started"):
            batcher.start()
        assert batcher.is_running
        await batcher.stop()
        await batcher.stop()  # idempotent

    asyncio.run(main())


def test_a_caller_supplied_executor_is_used_and_not_shut_down() -> None:
    from concurrent.futures import ThreadPoolExecutor

    names: list[str] = []

    def record(items: list[int]) -> list[int]:
        names.append(threading.current_thread().name)
        return items

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="shared") as pool:

        async def main() -> None:
            batcher = MicroBatcher(record, executor=pool)
            batcher.start()
            await batcher.submit(1)
            await batcher.stop()

        asyncio.run(main())
        assert pool.submit(lambda: 5).result() == 5  # still usable
    assert names[0].startswith("shared")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"max_batch_delay_ms": -1}, "max_batch_delay_ms"),
        ({"max_queue": 0}, "max_queue"),
    ],
)
def test_invalid_settings(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MicroBatcher(lambda xs: xs, **kwargs)
