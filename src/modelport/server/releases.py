"""Release routing for the server: canary split, sticky users, shadow queue, automatic rollback, traffic stats.

Pure logic, no web framework: the server wires it in. For each active
:class:`~modelport.registry.releases.ReleaseConfig` (``registry.releases.active_releases()``,
re-read whenever ``registry.revision()`` moves) the server holds one of each:

- :class:`Router`: ``version, route = router.choose(request.headers)`` picks the version that
  answers a request for the model's alias (``primary`` or ``canary``); with a sticky header,
  one header value always gets the same version. The response names the version.
- :class:`ShadowQueue`: after the primary answered, ``queue.offer(request)`` hands a copy to the
  shadow version. It never waits: when the bounded queue is full the copy is dropped and counted.
  A worker task (started in the lifespan) runs the shadow; its errors and slowness are counted,
  never seen by callers.
- :class:`RollbackMonitor`: ``monitor.record(version, latency_ms, ok)`` per answer;
  ``monitor.check()`` returns a :class:`RollbackDecision` once the canary's error rate or p99
  exceeds the primary's beyond the release's :class:`~modelport.registry.releases.RollbackRule`
  over its window. The server then routes everything to the primary (:meth:`Router.without_canary`),
  records it with ``registry.releases.end(name, "rolled_back", actor=<server id>,
  reason=decision.reason, details=decision.to_dict())`` (audited) and alerts.
- :class:`ReleaseStats`: per version and route, requests, errors, a latency histogram, agreement
  of canary/shadow predictions with the primary's, and live accuracy from feedback;
  ``registry.releases.report_traffic(config.id, <server id>, stats.snapshot())`` every few
  seconds feeds ``modelport release status``.

Before serving a version under a protected alias, the server asks
``registry.promotions.clearance(name, alias, version)`` and refuses versions that never went
through the promotion workflow.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Literal, TypeVar

import numpy as np

from modelport.registry.releases import (
    LATENCY_BUCKETS_MS,
    ReleaseConfig,
    RollbackRule,
    Route,
    TrafficSummary,
    latency_bucket,
)

__all__ = [
    "ReleaseConfig",
    "ReleaseStats",
    "RollbackDecision",
    "RollbackMonitor",
    "RollbackRule",
    "Router",
    "ShadowQueue",
    "ShadowStats",
]

T = TypeVar("T")
Answer = Literal["primary", "canary"]
Headers = Mapping[str, str] | Iterable[tuple[bytes, bytes]]

DEFAULT_SHADOW_QUEUE = 1_000
DEFAULT_SHADOW_TIMEOUT_S = 30.0
MAX_WINDOW_SAMPLES = 100_000
"""Most answers a rollback window keeps per version (the oldest go first)."""


def header_value(headers: Headers | None, name: str) -> str | None:
    """The value of header ``name`` (case-insensitive) in a mapping or raw ASGI header pairs, or ``None``."""
    if headers is None:
        return None
    wanted = name.lower()
    if isinstance(headers, Mapping):
        for key, value in headers.items():
            if key.lower() == wanted:
                return str(value)
        return None
    for raw_key, raw_value in headers:
        if raw_key.decode("latin-1").lower() == wanted:
            return raw_value.decode("latin-1")
    return None


def sticky_draw(model: str, value: str) -> float:
    """A number in [0, 1) fixed by the model and the sticky header value (sha256, so evenly spread)."""
    digest = hashlib.sha256(f"{model}\x00{value}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class Router:
    """Chooses, per request, whether the primary or the canary answers.

    A request carrying the sticky header is placed by a hash of its value (the same caller always
    lands on the same side; raising the weight only moves callers from primary to canary); any
    other request by a random draw.

    Args:
        config: The active release.
        rng: The random source for requests without a sticky value (seed it in tests).
    """

    def __init__(self, config: ReleaseConfig, *, rng: random.Random | None = None) -> None:
        self._config = config
        self._rng = rng if rng is not None else random.Random()
        self._share = config.canary_weight / 100.0 if config.canary_version is not None else 0.0

    @property
    def config(self) -> ReleaseConfig:
        """The release routed by."""
        return self._config

    @property
    def shadow_version(self) -> int | None:
        """The version fed copies of requests, if any."""
        return self._config.shadow_version

    def choose(self, headers: Headers | None = None) -> tuple[int, Answer]:
        """The version that answers a request with ``headers``, and its route (``primary`` or ``canary``)."""
        config = self._config
        if config.canary_version is None or self._share <= 0.0:
            return config.primary_version, "primary"
        value = header_value(headers, config.sticky_header) if config.sticky_header else None
        draw = sticky_draw(config.model, value) if value else self._rng.random()
        if draw < self._share:
            return config.canary_version, "canary"
        return config.primary_version, "primary"

    def without_canary(self) -> Router:
        """A router that sends everything to the primary (after a rollback), keeping any shadow."""
        return Router(replace(self._config, canary_version=None, canary_weight=0.0), rng=self._rng)


@dataclass(frozen=True)
class ShadowStats:
    """Counters of a shadow queue: offered = accepted + dropped; accepted = processed + failed + waiting."""

    offered: int
    accepted: int
    dropped: int
    processed: int
    failed: int
    waiting: int


class ShadowQueue(Generic[T]):
    """A bounded queue of request copies for a shadow version, drained by one worker task.

    :meth:`offer` never blocks and never raises: a full (or stopped) queue drops the copy and
    counts it. The worker awaits ``process(item)`` for each copy, bounded by ``timeout_s``; an
    error or a timeout is counted, never propagated.

    Args:
        process: Runs the shadow on one request copy (and logs/compares its output).
        maxsize: Copies waiting at most.
        timeout_s: Longest one shadow call may take.
    """

    def __init__(
        self,
        process: Callable[[T], Awaitable[None]],
        *,
        maxsize: int = DEFAULT_SHADOW_QUEUE,
        timeout_s: float = DEFAULT_SHADOW_TIMEOUT_S,
    ) -> None:
        if maxsize < 1 or timeout_s <= 0:
            raise ValueError("maxsize must be >= 1 and timeout_s > 0")
        self._process = process
        self._maxsize = maxsize
        self._timeout_s = timeout_s
        self._queue: asyncio.Queue[T] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._offered = self._accepted = self._dropped = self._processed = self._failed = 0

    def start(self) -> None:
        """Create the queue and its worker in the running event loop (call it from the lifespan)."""
        if self._worker is None:
            self._queue = asyncio.Queue(self._maxsize)
            self._worker = asyncio.get_running_loop().create_task(self._run(self._queue))

    def offer(self, item: T) -> bool:
        """Hand ``item`` to the shadow without waiting; ``False`` (and counted) when it was dropped."""
        self._offered += 1
        if self._queue is None or self._worker is None or self._worker.done():
            self._dropped += 1
            return False
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._dropped += 1
            return False
        self._accepted += 1
        return True

    async def _run(self, queue: asyncio.Queue[T]) -> None:
        while True:
            item = await queue.get()
            try:
                await asyncio.wait_for(self._process(item), self._timeout_s)
                self._processed += 1
            except asyncio.CancelledError:
                raise
            except Exception:  # a failing or slow shadow is counted, never seen by callers
                self._failed += 1
            finally:
                queue.task_done()

    async def stop(self) -> None:
        """Cancel the worker and drop whatever still waits (shadow copies are best effort)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._queue = None

    def stats(self) -> ShadowStats:
        """The counters so far."""
        waiting = self._queue.qsize() if self._queue is not None else 0
        return ShadowStats(self._offered, self._accepted, self._dropped, self._processed, self._failed, waiting)


@dataclass(frozen=True)
class WindowStats:
    """Answers of one version over a rollback window."""

    requests: int
    errors: int
    p99_ms: float | None

    @property
    def error_rate(self) -> float:
        """Errors per request (0 without requests)."""
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class RollbackDecision:
    """Why a server rolls a canary back, with the numbers it compared."""

    release_id: int | None
    model: str
    primary_version: int
    canary_version: int
    reason: str
    primary: WindowStats
    canary: WindowStats
    window_s: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (recorded in the audit log)."""
        return {
            "release_id": self.release_id,
            "primary_version": self.primary_version,
            "canary_version": self.canary_version,
            "window_s": self.window_s,
            "primary": {**vars(self.primary), "error_rate": self.primary.error_rate},
            "canary": {**vars(self.canary), "error_rate": self.canary.error_rate},
        }


class RollbackMonitor:
    """Sliding windows of errors and latency for the primary and the canary, and the rollback rule.

    Args:
        config: The active release (its ``rollback`` rule and versions).
        clock: Seconds, monotonic (inject a fake one in tests).
    """

    def __init__(self, config: ReleaseConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._rule: RollbackRule = config.rollback
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[int, deque[tuple[float, float, bool]]] = {
            v: deque(maxlen=MAX_WINDOW_SAMPLES) for v in (config.primary_version, config.canary_version) if v
        }
        self._decision: RollbackDecision | None = None

    def record(self, version: int, latency_ms: float, ok: bool) -> None:
        """One answer of ``version`` (ignored unless it is the primary or the canary)."""
        window = self._windows.get(version)
        if window is not None:
            with self._lock:
                window.append((self._clock(), float(latency_ms), bool(ok)))

    def window(self, version: int) -> WindowStats:
        """What ``version`` did over the last ``window_s`` seconds."""
        horizon = self._clock() - self._rule.window_s
        with self._lock:
            window = self._windows.get(version, deque())
            while window and window[0][0] < horizon:
                window.popleft()
            samples = list(window)
        if not samples:
            return WindowStats(0, 0, None)
        latencies = np.fromiter((s[1] for s in samples), dtype=np.float64, count=len(samples))
        errors = sum(1 for s in samples if not s[2])
        return WindowStats(len(samples), errors, float(np.percentile(latencies, 99)))

    def check(self) -> RollbackDecision | None:
        """The decision to roll the canary back, or ``None`` while it holds up (once made, it stays)."""
        config, rule = self._config, self._rule
        if self._decision is not None or config.canary_version is None:
            return self._decision
        canary, primary = self.window(config.canary_version), self.window(config.primary_version)
        if canary.requests < rule.min_requests:
            return None
        reasons = []
        if canary.error_rate - primary.error_rate > rule.max_error_rate_increase:
            reasons.append(
                f"canary error rate {canary.error_rate:.1%} exceeds the primary's {primary.error_rate:.1%} "
                f"by more than {rule.max_error_rate_increase:.1%}"
            )
        if canary.p99_ms is not None and primary.p99_ms is not None:
            limit = max(primary.p99_ms * rule.max_p99_ratio, primary.p99_ms + rule.min_p99_increase_ms)
            if canary.p99_ms > limit:
                reasons.append(
                    f"canary p99 {canary.p99_ms:.1f} ms exceeds the primary's {primary.p99_ms:.1f} ms "
                    f"x {rule.max_p99_ratio:g} (+{rule.min_p99_increase_ms:g} ms at least)"
                )
        if not reasons:
            return None
        self._decision = RollbackDecision(
            release_id=config.id,
            model=config.model,
            primary_version=config.primary_version,
            canary_version=config.canary_version,
            reason=f"automatic rollback over the last {rule.window_s:g} s: " + "; ".join(reasons),
            primary=primary,
            canary=canary,
            window_s=rule.window_s,
        )
        return self._decision


@dataclass
class _Counters:
    requests: int = 0
    errors: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    compared: int = 0
    agreed: int = 0
    labelled: int = 0
    correct: int = 0


class ReleaseStats:
    """Counters per version and route since the release started, reported as traffic summaries.

    Thread-safe: record from the event loop or from executor threads.

    Args:
        config: The active release.
    """

    def __init__(self, config: ReleaseConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._counters: dict[tuple[int, Route], _Counters] = {}

    def _get(self, version: int, route: Route) -> _Counters:
        return self._counters.setdefault((version, route), _Counters())

    def record(self, version: int, route: Route, latency_ms: float, ok: bool) -> None:
        """One answer (or shadow run) of ``version`` on ``route``."""
        with self._lock:
            counters = self._get(version, route)
            counters.requests += 1
            counters.errors += 0 if ok else 1
            counters.latency[latency_bucket(latency_ms)] += 1

    def record_comparison(self, version: int, route: Route, agreed: bool) -> None:
        """Whether ``version``'s prediction on ``route`` equalled the primary's for the same request."""
        with self._lock:
            counters = self._get(version, route)
            counters.compared += 1
            counters.agreed += 1 if agreed else 0

    def record_outcome(self, version: int, route: Route, correct: bool) -> None:
        """Feedback on one prediction of ``version``: was it right?"""
        with self._lock:
            counters = self._get(version, route)
            counters.labelled += 1
            counters.correct += 1 if correct else 0

    def snapshot(self) -> list[TrafficSummary]:
        """Every counter so far, as summaries to send with ``registry.releases.report_traffic``."""
        with self._lock:
            return [
                TrafficSummary(
                    version=version,
                    route=route,
                    requests=c.requests,
                    errors=c.errors,
                    latency_counts=tuple(c.latency),
                    compared=c.compared,
                    agreed=c.agreed,
                    labelled=c.labelled,
                    correct=c.correct,
                )
                for (version, route), c in sorted(self._counters.items())
            ]
