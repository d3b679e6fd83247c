"""Shared-slot request deadlines: TimeoutError past the deadline, never early, other cancellations kept."""

from __future__ import annotations

import asyncio

import pytest

from modelport.server.deadlines import Deadlines

pytestmark = pytest.mark.anyio


async def test_a_block_past_its_deadline_raises_timeout_error() -> None:
    deadlines = Deadlines(0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError), deadlines.start():
        await asyncio.sleep(10)
    assert loop.time() - started >= 0.05  # never early


async def test_a_block_within_its_deadline_is_untouched_and_later_awaits_are_not_cancelled() -> None:
    deadlines = Deadlines(0.05)
    with deadlines.start() as deadline:
        await asyncio.sleep(0)
    assert not deadline.expired
    await asyncio.sleep(0.12)  # the slot's timer fires meanwhile: it must not cancel this task
    assert asyncio.current_task() is not None


async def test_many_blocks_share_slots_and_each_one_times_out() -> None:
    deadlines = Deadlines(0.05)

    async def slow() -> str:
        try:
            with deadlines.start():
                await asyncio.sleep(10)
        except TimeoutError:
            return "timeout"
        return "done"

    async def fast() -> str:
        with deadlines.start():
            await asyncio.sleep(0)
        return "done"

    results = await asyncio.gather(*(slow() for _ in range(20)), *(fast() for _ in range(20)))
    assert results == ["timeout"] * 20 + ["done"] * 20


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    deadlines = Deadlines(5.0)

    async def work() -> None:
        with deadlines.start():
            await asyncio.sleep(10)

    task = asyncio.get_running_loop().create_task(work())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_slots_are_short_for_short_timeouts_and_a_small_share_of_long_ones() -> None:
    assert Deadlines(0.2).slot_s == 0.01
    assert Deadlines(30.0).slot_s == pytest.approx(0.15)
