"""``ReleaseRouting``: the server's side of releases (canary, sticky users, shadow, automatic rollback).

The pure logic lives in :mod:`modelport.server.releases`; this module keeps it in step with the
registry and the event loop. Whenever ``registry.revision()`` moves, the model manager calls
:meth:`ReleaseRouting.refresh`, which re-reads ``registry.releases.active_releases()`` and holds,
per active release, a :class:`~modelport.server.releases.Router`, a
:class:`~modelport.server.releases.RollbackMonitor`, a :class:`~modelport.server.releases.ReleaseStats`
and, with a shadow version, a started :class:`~modelport.server.releases.ShadowQueue`. The manager
loads the canary and shadow versions beside the primary (:meth:`ReleaseRouting.extra_versions`).
A background task checks the rollback rule every ``check_interval_s`` (a failing canary stops
receiving traffic at once, and the rollback is recorded with ``registry.releases.end`` in a thread,
audited) and reports each release's traffic every ``report_interval_s``. Every registry call runs
in a thread, never on the event loop. Shadow counters and rollbacks are exported in ``/metrics``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from modelport.core.errors import ModelportError, NotFound
from modelport.registry.registry import Registry
from modelport.registry.releases import ReleaseConfig, Route
from modelport.server.loading import describe
from modelport.server.metrics import ServerMetrics
from modelport.server.releases import (
    DEFAULT_SHADOW_QUEUE,
    DEFAULT_SHADOW_TIMEOUT_S,
    ReleaseStats,
    RollbackDecision,
    RollbackMonitor,
    Router,
    ShadowQueue,
)

logger = logging.getLogger("modelport.server")

DEFAULT_CHECK_INTERVAL_S = 0.5
DEFAULT_REPORT_INTERVAL_S = 5.0


def server_id() -> str:
    """This server process's name in the audit log and traffic reports: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class ReleaseSettings:
    """Knobs of :class:`ReleaseRouting` (the defaults suit production; tests shorten them).

    Attributes:
        check_interval_s: How often the rollback rule is checked.
        report_interval_s: How often traffic is reported to the registry.
        shadow_queue: Request copies waiting for a shadow version at most (more are dropped, counted).
        shadow_timeout_s: Longest one shadow call may take.
        reporter: This server's name in reports (default ``host:pid``).
        seed: Seed of the canary split's random draws (``None``: unseeded).
    """

    check_interval_s: float = DEFAULT_CHECK_INTERVAL_S
    report_interval_s: float = DEFAULT_REPORT_INTERVAL_S
    shadow_queue: int = DEFAULT_SHADOW_QUEUE
    shadow_timeout_s: float = DEFAULT_SHADOW_TIMEOUT_S
    reporter: str | None = None
    seed: int | None = None


def clearance_check(registry: Registry) -> Callable[[str, str, int], Awaitable[str | None]]:
    """An async check for the model manager: ``None`` when ``model:version`` may serve as ``model@alias``,
    else why not (the registry's promotion policy; an unreachable registry refuses too)."""

    async def check(model: str, alias: str, version: int) -> str | None:
        try:
            cleared = await asyncio.to_thread(registry.promotions.clearance, model, alias, version)
        except Exception as exc:  # fail closed: never serve what could not be checked
            return f"cannot check the promotion policy of {model}@{alias}: {describe(exc)}"
        return None if cleared.allowed else cleared.reason

    return check


def is_failure(error: BaseException | None) -> bool:
    """Whether an answer counts against a version: any server-side error (a caller's 4xx does not)."""
    if error is None:
        return False
    return not (isinstance(error, ModelportError) and error.http_status < 500)


@dataclass(frozen=True, slots=True)
class ShadowCopy:
    """A request copy for the shadow version, with the primary's answer to compare against.

    Attributes:
        request_id: The original request's id (the shadow's log records share it).
        data: The parsed request data.
        outputs: Outputs the primary computed.
        primary: The primary's results.
        size: The request body's size in bytes.
    """

    request_id: str
    data: Any
    outputs: tuple[str, ...]
    primary: dict[str, Any]
    size: int


ShadowRunner = Callable[["ActiveRelease", ShadowCopy], Awaitable[None]]
"""Runs the shadow version on one copy (provided by the endpoints, which know how to score)."""


@dataclass(eq=False)
class ActiveRelease:
    """The server's state for one active release."""

    config: ReleaseConfig
    router: Router
    monitor: RollbackMonitor
    stats: ReleaseStats
    shadow: ShadowQueue[ShadowCopy] | None = None
    rolled_back: bool = False
    ending: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def model(self) -> str:
        """The model whose traffic is split."""
        return self.config.model


class _ReleaseCollector(Collector):
    """Exports shadow-queue counters and rollbacks at scrape time."""

    def __init__(self, routing: ReleaseRouting) -> None:
        self._routing = routing

    def collect(self) -> Iterator[CounterMetricFamily]:
        names = ("offered", "dropped", "processed", "failed")
        families = {
            n: CounterMetricFamily(f"modelport_shadow_{n}", f"Shadow request copies {n}.", labels=["model"])
            for n in names
        }
        for model, counts in sorted(self._routing.shadow_counts().items()):
            for n in names:
                families[n].add_metric([model], counts[n])
        rollbacks = CounterMetricFamily("modelport_release_rollbacks", "Automatic canary rollbacks.", labels=["model"])
        for model, count in sorted(self._routing.rollbacks.items()):
            rollbacks.add_metric([model], count)
        yield from families.values()
        yield rollbacks


class ReleaseRouting:
    """Active releases, kept in step with the registry.

    Args:
        registry: Where releases are read, ended and reported.
        metrics: The app's metrics (shadow counters and rollbacks are added to its registry).
        settings: Intervals, the shadow queue and the reporter's name; the audit actor of a
            rollback is ``server:<reporter>``.
    """

    def __init__(self, registry: Registry, *, metrics: ServerMetrics, settings: ReleaseSettings | None = None) -> None:
        settings = settings or ReleaseSettings()
        self.registry = registry
        self.reporter = settings.reporter or server_id()
        self.check_interval_s = settings.check_interval_s
        self.report_interval_s = settings.report_interval_s
        self.shadow_queue = settings.shadow_queue
        self.shadow_timeout_s = settings.shadow_timeout_s
        self.rng = random.Random(settings.seed)
        self.rollbacks: dict[str, int] = {}
        self.run_shadow: ShadowRunner | None = None
        self._releases: dict[str, ActiveRelease] = {}
        self._shadow_totals: dict[str, dict[str, int]] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Task[None]] = set()
        metrics.registry.register(_ReleaseCollector(self))

    @property
    def actor(self) -> str:
        """Who the audit log names when this server rolls a canary back."""
        return f"server:{self.reporter}"

    # --- the hot path --------------------------------------------------------------------------

    def lookup(self, model: str, alias: str = "production") -> ActiveRelease | None:
        """The active release splitting ``model@alias``, or ``None``."""
        release = self._releases.get(model)
        return release if release is not None and release.config.alias == alias else None

    def observe(self, release: ActiveRelease, version: int, route: Route, latency_ms: float, ok: bool) -> None:
        """One answer of ``version`` on ``route`` (statistics and the rollback window)."""
        release.stats.record(version, route, latency_ms, ok)
        if route != "shadow":
            release.monitor.record(version, latency_ms, ok)

    def extra_versions(self) -> dict[str, tuple[int, ...]]:
        """Versions to load beside the alias targets: each release's canary (until rolled back) and shadow."""
        extra: dict[str, tuple[int, ...]] = {}
        for model, release in self._releases.items():
            config = release.router.config
            versions = tuple(v for v in (config.canary_version, config.shadow_version) if v is not None)
            if versions:
                extra[model] = versions
        return extra

    def shadow_counts(self) -> dict[str, dict[str, int]]:
        """Shadow counters per model, including those of releases already ended."""
        counts = {model: dict(totals) for model, totals in self._shadow_totals.items()}
        for model, release in self._releases.items():
            if release.shadow is not None:
                stats = release.shadow.stats()
                into = counts.setdefault(model, {"offered": 0, "dropped": 0, "processed": 0, "failed": 0})
                for name in into:
                    into[name] += getattr(stats, name)
        return counts

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the periodic rollback check and traffic report (releases are read by :meth:`refresh`)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._periodic())

    async def stop(self) -> None:
        """Stop the periodic task and the shadow queues; report the traffic one last time."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        releases, self._releases = list(self._releases.values()), {}
        for release in releases:
            await self._retire(release)
        await asyncio.gather(*self._stopping, return_exceptions=True)
        await asyncio.gather(*(r.ending for r in releases if r.ending is not None), return_exceptions=True)
        await asyncio.gather(*(self._report(r) for r in releases))

    async def refresh(self) -> None:
        """Re-read the active releases from the registry and bring the routing state in step."""
        configs = await asyncio.to_thread(self.registry.releases.active_releases)
        wanted = {c.model: c for c in configs}
        for model, release in list(self._releases.items()):
            config = wanted.get(model)
            if config is None or config.id != release.config.id:
                del self._releases[model]
                await self._retire(release)
                await self._report(release)
        for model, config in wanted.items():
            current = self._releases.get(model)
            if current is not None and current.config == config:
                continue
            self._releases[model] = self._activate(config, current)
            logger.info("Release %s of %s: %s", config.id, model, _describe(config))

    def _activate(self, config: ReleaseConfig, current: ActiveRelease | None) -> ActiveRelease:
        same = current is not None and current.config.id == config.id
        stats = current.stats if same and current is not None else ReleaseStats(config)
        keep_monitor = same and current is not None and current.config.canary_version == config.canary_version
        monitor = current.monitor if keep_monitor and current is not None else RollbackMonitor(config)
        router = Router(config, rng=self.rng)
        rolled_back = keep_monitor and current is not None and current.rolled_back
        if rolled_back:
            router = router.without_canary()
        shadow: ShadowQueue[ShadowCopy] | None = None
        if current is not None and current.shadow is not None:
            if same and current.config.shadow_version == config.shadow_version:
                shadow = current.shadow
            else:
                queue = self._retire_shadow(current)
                if queue is not None:
                    task = asyncio.get_running_loop().create_task(queue.stop())
                    self._stopping.add(task)
                    task.add_done_callback(self._stopping.discard)
        release = ActiveRelease(config, router, monitor, stats, shadow, rolled_back=rolled_back)
        if release.shadow is None and config.shadow_version is not None:
            release.shadow = ShadowQueue(
                lambda copy: self._shadow(release, copy), maxsize=self.shadow_queue, timeout_s=self.shadow_timeout_s
            )
            release.shadow.start()
        return release

    async def _shadow(self, release: ActiveRelease, copy: ShadowCopy) -> None:
        if self.run_shadow is None:
            raise RuntimeError("no shadow runner")
        await self.run_shadow(release, copy)

    def _retire_shadow(self, release: ActiveRelease) -> ShadowQueue[ShadowCopy] | None:
        """Detach ``release``'s shadow queue (its counters go to the totals); the caller stops it."""
        queue, release.shadow = release.shadow, None
        if queue is None:
            return None
        stats = queue.stats()
        totals = self._shadow_totals.setdefault(
            release.model, {"offered": 0, "dropped": 0, "processed": 0, "failed": 0}
        )
        for name in totals:
            totals[name] += getattr(stats, name)
        return queue

    async def _retire(self, release: ActiveRelease) -> None:
        queue = self._retire_shadow(release)
        if queue is not None:
            await queue.stop()

    # --- rollback and reports ------------------------------------------------------------------

    async def _periodic(self) -> None:
        loop = asyncio.get_running_loop()
        next_report = loop.time() + self.report_interval_s
        while True:
            await asyncio.sleep(self.check_interval_s)
            try:
                for release in list(self._releases.values()):
                    self.check(release)
                if loop.time() >= next_report:
                    next_report = loop.time() + self.report_interval_s
                    await asyncio.gather(*(self._report(r) for r in list(self._releases.values())))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep checking: one bad round must not end rollbacks
                logger.warning("Release check failed: %s", describe(exc))

    def check(self, release: ActiveRelease) -> RollbackDecision | None:
        """Apply the rollback rule to ``release`` now; on a decision, stop routing to its canary at once."""
        if release.rolled_back:
            return None
        decision = release.monitor.check()
        if decision is None:
            return None
        release.rolled_back = True
        release.router = release.router.without_canary()
        self.rollbacks[release.model] = self.rollbacks.get(release.model, 0) + 1
        logger.warning(
            "ALERT: rolled back canary %s:%s of release %s: %s",
            release.model,
            decision.canary_version,
            decision.release_id,
            decision.reason,
        )
        release.ending = asyncio.get_running_loop().create_task(self._record_rollback(decision))
        return decision

    async def _record_rollback(self, decision: RollbackDecision) -> None:
        try:
            await asyncio.to_thread(
                self.registry.releases.end,
                decision.model,
                "rolled_back",
                actor=self.actor,
                reason=decision.reason,
                details=decision.to_dict(),
            )
        except NotFound:
            logger.info("Release of %s had already ended when the rollback was recorded.", decision.model)
        except Exception as exc:  # routing already stopped; the operator sees this in the log
            logger.error("Could not record the rollback of %s in the registry: %s", decision.model, describe(exc))

    async def _report(self, release: ActiveRelease) -> None:
        if release.config.id is None:
            return
        snapshot = release.stats.snapshot()
        if not snapshot:
            return
        try:
            await asyncio.to_thread(self.registry.releases.report_traffic, release.config.id, self.reporter, snapshot)
        except Exception as exc:  # reports are best effort; the next one carries the same counters
            logger.warning("Could not report traffic of release %s: %s", release.config.id, describe(exc))


def _describe(config: ReleaseConfig) -> str:
    parts = [f"primary {config.primary_version}"]
    if config.canary_version is not None:
        sticky = f" sticky on {config.sticky_header}" if config.sticky_header else ""
        parts.append(f"canary {config.canary_version} at {config.canary_weight:g}%{sticky}")
    if config.shadow_version is not None:
        parts.append(f"shadow {config.shadow_version}")
    return ", ".join(parts)
