"""The server's release logic: canary split within binomial bounds, sticky users, shadow queue, rollback monitor."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Iterator

import pytest

from modelport.registry.releases import LATENCY_BUCKETS_MS, ReleaseConfig, RollbackRule
from modelport.server.releases import ReleaseStats, RollbackMonitor, Router, ShadowQueue, header_value, sticky_draw


def _config(weight: float = 10.0, **kwargs: object) -> ReleaseConfig:
    return ReleaseConfig(model="iris", primary_version=1, canary_version=2, canary_weight=weight, id=7, **kwargs)  # type: ignore[arg-type]


def _within_binomial_bounds(hits: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(hits - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_the_canary_gets_its_weight_within_binomial_bounds() -> None:
    router = Router(_config(10.0), rng=random.Random(20251124))
    n = 20_000
    answers = [router.choose({}) for _ in range(n)]
    canary = sum(1 for version, route in answers if route == "canary")
    assert all(version == (2 if route == "canary" else 1) for version, route in answers)
    assert _within_binomial_bounds(canary, n, 0.10), canary


@pytest.mark.parametrize("weight", [1.0, 50.0, 100.0])
def test_other_weights(weight: float) -> None:
    router = Router(_config(weight), rng=random.Random(7))
    canary = sum(1 for _ in range(10_000) if router.choose()[1] == "canary")
    if weight == 100.0:
        assert canary == 10_000
    else:
        assert _within_binomial_bounds(canary, 10_000, weight / 100)


def test_sticky_users_always_see_the_same_version_and_split_by_weight() -> None:
    router = Router(_config(10.0, sticky_header="X-User-Id"))
    users = [f"user-{i}" for i in range(5_000)]
    first = {user: router.choose({"x-user-id": user}) for user in users}
    for user in users[:500]:
        for headers in ({"X-User-Id": user}, [(b"x-user-id", user.encode())]):
            assert router.choose(headers) == first[user]
    canary_users = {u for u, (_, route) in first.items() if route == "canary"}
    assert _within_binomial_bounds(len(canary_users), len(users), 0.10)
    wider = Router(_config(30.0, sticky_header="X-User-Id"))
    assert all(wider.choose({"X-User-Id": u})[1] == "canary" for u in canary_users)  # raising the weight keeps them
    assert 0.0 <= sticky_draw("iris", "user-1") < 1.0


def test_without_a_canary_or_after_a_rollback_the_primary_answers() -> None:
    router = Router(_config(50.0, shadow_version=3), rng=random.Random(1)).without_canary()
    assert {router.choose() for _ in range(200)} == {(1, "primary")}
    assert router.shadow_version == 3
    assert header_value(None, "x") is None
    assert header_value({"A": "1"}, "a") == "1"


def test_a_slow_shadow_never_blocks_the_primary_and_drops_are_counted() -> None:
    async def scenario() -> tuple[list[bool], list[str]]:
        release = asyncio.Event()

        async def slow_shadow(item: int) -> None:
            await release.wait()  # a shadow that hangs

        queue: ShadowQueue[int] = ShadowQueue(slow_shadow, maxsize=3, timeout_s=60)
        queue.start()
        await asyncio.sleep(0)
        answered = []

        async def primary(i: int) -> str:
            answer = f"primary answered {i}"
            accepted.append(queue.offer(i))  # after the primary answered; never awaits
            return answer

        accepted: list[bool] = []
        for i in range(10):
            answered.append(await primary(i))
        await asyncio.sleep(0)
        stats = queue.stats()
        assert (stats.offered, stats.accepted, stats.dropped) == (10, 3, 7)
        await queue.stop()
        assert queue.offer(99) is False  # a stopped queue drops too
        return accepted, answered

    accepted, answered = asyncio.run(scenario())
    assert accepted == [True] * 3 + [False] * 7
    assert len(answered) == 10


def test_a_failing_or_timing_out_shadow_is_counted_never_raised() -> None:
    async def scenario() -> tuple[int, int]:
        async def failing(item: int) -> None:
            if item % 2:
                raise RuntimeError("shadow model crashed")
            await asyncio.sleep(10 if item == 4 else 0)

        queue: ShadowQueue[int] = ShadowQueue(failing, maxsize=100, timeout_s=0.05)
        queue.start()
        for i in range(6):
            assert queue.offer(i)
        while queue.stats().processed + queue.stats().failed < 6:
            await asyncio.sleep(0.01)
        stats = queue.stats()
        await queue.stop()
        return stats.processed, stats.failed

    assert asyncio.run(scenario()) == (2, 4)  # 1, 3, 5 raised; 4 timed out


@pytest.fixture
def clock() -> Iterator[list[float]]:
    return [1000.0]


def _monitor(clock: list[float], **rule: object) -> RollbackMonitor:
    config = _config(10.0, rollback=RollbackRule(window_s=60, min_requests=20, **rule))  # type: ignore[arg-type]
    return RollbackMonitor(config, clock=lambda: clock[0])


def test_a_healthy_canary_is_kept(clock: list[float]) -> None:
    monitor = _monitor(clock)
    for i in range(200):
        monitor.record(1, 5.0, ok=i % 50 != 0)
    for i in range(40):
        monitor.record(2, 5.5, ok=i != 0)
    assert monitor.check() is None


def test_an_erroring_canary_is_rolled_back(clock: list[float]) -> None:
    monitor = _monitor(clock)
    for _ in range(200):
        monitor.record(1, 5.0, ok=True)
    for i in range(19):
        monitor.record(2, 5.0, ok=i % 3 != 0)
    assert monitor.check() is None  # below min_requests: no verdict yet
    monitor.record(2, 5.0, ok=False)
    decision = monitor.check()
    assert decision is not None
    assert "error rate" in decision.reason
    assert (decision.release_id, decision.canary_version, decision.primary_version) == (7, 2, 1)
    assert decision.canary.requests == 20
    assert decision.canary.error_rate == pytest.approx(8 / 20)
    assert decision.to_dict()["canary"]["errors"] == 8
    for _ in range(500):
        monitor.record(2, 5.0, ok=True)
    assert monitor.check() is decision  # the verdict stays


def test_a_slow_canary_is_rolled_back(clock: list[float]) -> None:
    monitor = _monitor(clock, max_p99_ratio=1.5, min_p99_increase_ms=5.0)
    for _ in range(100):
        monitor.record(1, 10.0, ok=True)
        monitor.record(2, 14.0, ok=True)  # 1.4x: within the ratio
    assert monitor.check() is None
    for _ in range(100):
        monitor.record(2, 40.0, ok=True)
    decision = monitor.check()
    assert decision is not None
    assert "p99" in decision.reason
    assert "error rate" not in decision.reason


def test_old_answers_leave_the_window(clock: list[float]) -> None:
    monitor = _monitor(clock)
    for _ in range(50):
        monitor.record(2, 5.0, ok=False)
        monitor.record(1, 5.0, ok=True)
    clock[0] += 61.0
    for _ in range(30):
        monitor.record(2, 5.0, ok=True)
        monitor.record(1, 5.0, ok=True)
    assert monitor.window(2).requests == 30
    assert monitor.check() is None
    monitor.record(99, 1.0, ok=False)  # neither primary nor canary: ignored
    assert monitor.window(99).requests == 0


def test_release_stats_snapshot() -> None:
    stats = ReleaseStats(_config())
    for i in range(10):
        stats.record(1, "primary", 2.0, ok=i != 0)
    stats.record(2, "canary", 300.0, ok=True)
    stats.record_comparison(2, "canary", agreed=True)
    stats.record_comparison(3, "shadow", agreed=False)
    stats.record_outcome(2, "canary", correct=True)
    primary, canary, shadow = stats.snapshot()
    assert (primary.requests, primary.errors, primary.error_rate) == (10, 1, 0.1)
    assert primary.latency_ms(0.99) == min(b for b in LATENCY_BUCKETS_MS if b >= 2.0)
    assert (canary.agreement, canary.accuracy) == (1.0, 1.0)
    assert canary.latency_ms(0.5) >= 300.0
    assert (shadow.version, shadow.route, shadow.requests, shadow.agreement) == (3, "shadow", 0, 0.0)
