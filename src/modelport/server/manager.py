"""The model manager: which versions serve, under which names and aliases, and hot swaps between them.

The server is asked to serve *targets* (``churn@production``, ``churn:3``, a bundle folder; with
none, every model with a ``production`` alias). Each target is bound to one loaded
:class:`ServedVersion`. A poller watches ``registry.revision()``; when a target now resolves to
another version, that version is loaded and warmed in the background while the old one keeps
serving, then the binding switches in one step on the event loop, and the old version is retired:
it unloads when its last in-flight request finishes. A version that fails to load leaves the old
binding in place and is reported (readiness, the repository index, the log); other models are not
affected. The version-less route of a model goes to its ``production`` target, else its bare-name
target, else the only (or newest) version served.

Hooks for releases and governance: ``on_revision`` callbacks run whenever the registry revision
moves (before the targets are refreshed); ``extra_versions`` names versions to load beside the
targets (a release's canary and shadow: never defaults, never counted in readiness); ``clearance``
is asked before a version is served under an alias, and a refusal keeps the previous version
serving (or the model not ready, with the reason).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from modelport.core.errors import Conflict, NotFound, PermissionDenied, ServiceUnavailable
from modelport.core.names import validate_name
from modelport.core.refs import ModelRef
from modelport.server.loading import Resolved, VersionLoader, describe
from modelport.server.metrics import ServerMetrics
from modelport.server.served import ServedVersion

logger = logging.getLogger("modelport.server")

RETRY_FAILED_AFTER_S = 60.0


@dataclass(eq=False)
class Target:
    """One reference the server was asked to serve, and what it is bound to now."""

    ref: ModelRef
    name: str | None
    bound: ServedVersion | None = None
    error: str | None = None
    failed_version: int | None = None
    failed_at: float = 0.0
    failed_revision: int | None = None
    loading: int | None = None
    extra: bool = False

    @property
    def alias(self) -> str | None:
        """The alias this target follows (``production`` for a bare registry name)."""
        if self.ref.alias is not None:
            return self.ref.alias
        return "production" if self.ref.name is not None and self.ref.version is None else None


class ModelManager:
    """Owns every served version.

    Args:
        loader: Resolves references and loads versions.
        refs: References to serve; empty means every model with a ``production`` alias.
        poll_interval_s: Registry polling period; 0 disables hot swap.
        metrics: Where readiness and load counts are published.
    """

    def __init__(
        self, loader: VersionLoader, *, refs: tuple[str, ...], poll_interval_s: float, metrics: ServerMetrics
    ) -> None:
        self.loader = loader
        self.refs = refs
        self.poll_interval_s = poll_interval_s
        self.metrics = metrics
        self.draining = False
        self.started = False
        self._targets: list[Target] = []
        self._versions: dict[str, dict[int, ServedVersion]] = {}
        self._defaults: dict[str, ServedVersion] = {}
        self._aliases: dict[str, dict[str, ServedVersion]] = {}
        self._pending: dict[tuple[str, int], asyncio.Future[ServedVersion]] = {}
        self._revision: int | None = None
        self._lock: asyncio.Lock | None = None
        self._poller: asyncio.Task[None] | None = None
        self._unloaded: set[str] = set()
        self.on_loaded: Callable[[ServedVersion], None] | None = None
        self.on_revision: list[Callable[[], Awaitable[None]]] = []
        self.extra_versions: Callable[[], Mapping[str, tuple[int, ...]]] | None = None
        self.clearance: Callable[[str, str, int], Awaitable[str | None]] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Bring every target up (failures are recorded, not raised) and start the poller."""
        self._lock = asyncio.Lock()
        self.draining = self.started = False
        self._targets = [Target(ModelRef.parse(r), None) for r in self.refs]
        try:
            self._revision = await self.loader.revision()
            if not self.refs:
                self._targets = [
                    Target(ModelRef(name=n, alias="production"), n) for n in await self.loader.list_production()
                ]
        except Exception as exc:  # the registry may come back: the poller retries
            logger.error("Registry unavailable at start-up: %s", describe(exc))
        await self._revision_moved()
        await asyncio.gather(*(self._bring_up(t) for t in self._targets))
        self.started = True
        if self.poll_interval_s > 0 and self.loader.registry is not None:
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    def begin_drain(self) -> None:
        """Turn readiness off at once (shutdown has begun)."""
        self.draining = True

    async def stop(self, timeout_s: float | None = None) -> None:
        """Stop polling and unload every version (queued requests get at most ``timeout_s``)."""
        self.draining = True
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        versions = [v for by_version in self._versions.values() for v in by_version.values()]
        self._versions, self._defaults, self._aliases = {}, {}, {}
        await asyncio.gather(*(v.stop(timeout_s) for v in versions), return_exceptions=True)

    # --- the hot path --------------------------------------------------------------------------

    def lookup(self, name: str, version: str | None = None) -> ServedVersion:
        """The version answering ``name`` (and ``version``: a number or an alias), acquired.

        The caller must call ``release()`` on the result when the request is done.

        Raises:
            NotFound: The model or version is not served (the message lists what is).
            ServiceUnavailable: The model is being loaded or failed to load.
        """
        served = self._defaults.get(name) if version is None else self._find_version(name, version)
        if served is None:
            raise self._not_served(name, version)
        return served.acquire()

    def _find_version(self, name: str, version: str) -> ServedVersion | None:
        by_version = self._versions.get(name)
        if by_version is None:
            return None
        if version.isdigit():
            return by_version.get(int(version))
        return self._aliases.get(name, {}).get(version)

    def _waiting_reason(self, name: str, version: str | None) -> str | None:
        """Why ``name`` (``version``) does not serve yet when it is being loaded or failed to load."""
        waiting = [t for t in self._targets if t.name == name and t.bound is None and not t.extra]
        if waiting and (name not in self._versions or (version is None and name not in self._defaults)):
            return waiting[0].error or "loading"
        return None

    def _not_served(self, name: str, version: str | None) -> Exception:
        reason = self._waiting_reason(name, version)
        if reason is not None:
            return ServiceUnavailable(
                f"Model {name!r} is not ready: {reason}.",
                hint="Retry shortly; the operator can see the reason in /v2/repository/index and the server log.",
            )
        if name in self._versions:
            served = ", ".join(str(v) for v in sorted(self._versions[name]))
            aliases = ", ".join(sorted(self._aliases.get(name, {})))
            return NotFound(
                f"Version {version!r} of model {name!r} is not served.",
                hint=f"Served versions of {name!r}: {served}" + (f"; aliases: {aliases}." if aliases else "."),
            )
        return NotFound(f"Model {name!r} is not served.", hint=f"Served models: {', '.join(self.names()) or 'none'}.")

    def names(self) -> list[str]:
        """Names of the models that serve now, sorted."""
        return sorted(self._versions)

    def versions(self, name: str) -> list[int]:
        """Versions of ``name`` that serve now."""
        return sorted(self._versions.get(name, {}))

    def only_model(self) -> str | None:
        """The one served model's name, when exactly one is served."""
        return next(iter(self._versions)) if len(self._versions) == 1 else None

    # --- readiness -----------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, list[str]]:
        """Whether every target serves (and not draining), with the reasons when not."""
        reasons = [f"{t.ref}: {t.error or 'loading'}" for t in self._targets if t.bound is None and not t.extra]
        if self.draining:
            reasons.insert(0, "shutting down")
        elif not self.started:
            reasons.insert(0, "starting")
        return not reasons, reasons

    def model_readiness(self, name: str, version: str | None) -> tuple[bool, str | None]:
        """Whether ``name`` (``version``) serves, else the reason.

        Raises:
            NotFound: The server knows nothing of that model or version.
        """
        try:
            self.lookup(name, version).release()
        except ServiceUnavailable:
            return False, self._waiting_reason(name, version) or "not serving"
        except NotFound:
            failed = [
                t for t in self._targets if t.name == name and t.error and version in (None, str(t.failed_version))
            ]
            if failed:
                return False, failed[0].error
            raise
        return True, None

    def index(self) -> list[dict[str, Any]]:
        """The V2 repository index: every served, loading or failed model version."""
        rows: list[dict[str, Any]] = []
        for name in sorted(self._versions):
            for version, served in sorted(self._versions[name].items()):
                rows.append({"name": name, "version": str(version), "state": "READY", "reason": served.note})
        for t in self._targets:
            label = t.name or str(t.ref)
            if t.loading is not None:
                rows.append({"name": label, "version": str(t.loading), "state": "LOADING", "reason": ""})
            if t.error is not None:
                failed = "" if t.failed_version is None else str(t.failed_version)
                rows.append({"name": label, "version": failed, "state": "UNAVAILABLE", "reason": t.error})
        return rows

    # --- loading and swapping ------------------------------------------------------------------

    async def _bring_up(self, target: Target) -> None:
        try:
            resolved = await self.loader.resolve(target.ref)
        except Exception as exc:
            self._fail(target, None, exc, "resolve_failed")
            return
        target.name = resolved.name
        if target.bound is not None and target.bound.version == resolved.version:
            target.error = None
            return
        if self._skip_retry(target, resolved.version):
            return
        if self.clearance is not None and target.alias is not None and target.ref.path is None:
            refusal = await self.clearance(resolved.name, target.alias, resolved.version)
            if refusal is not None:
                hint = "Promote it through the workflow (`modelport promote`), then the server serves it."
                self._fail(target, resolved.version, PermissionDenied(refusal, hint=hint), "not_cleared")
                return
        target.loading = resolved.version
        try:
            served = await self._load(resolved)
        except Exception as exc:
            self._fail(target, resolved.version, exc, "load_failed")
            return
        finally:
            target.loading = None
        old, target.bound = target.bound, served
        target.error = target.failed_version = None
        self._rebuild()
        if old is not None and old is not served:
            logger.info(
                "Switched %s from %s:%s to %s:%s", target.ref, old.name, old.version, served.name, served.version
            )

    def _skip_retry(self, target: Target, version: int) -> bool:
        if target.failed_version != version or target.error is None:
            return False
        recent = time.monotonic() - target.failed_at < RETRY_FAILED_AFTER_S
        return recent and target.failed_revision == self._revision

    def _fail(self, target: Target, version: int | None, exc: BaseException, status: str) -> None:
        target.error = f"{status}: {describe(exc)}"
        target.failed_version = version
        target.failed_at = time.monotonic()
        target.failed_revision = self._revision
        keeps = f"; {target.bound.name}:{target.bound.version} keeps serving" if target.bound is not None else ""
        logger.error("Cannot serve %s: %s%s", target.ref, target.error, keeps)

    async def _load(self, resolved: Resolved) -> ServedVersion:
        existing = self._versions.get(resolved.name, {}).get(resolved.version)
        if existing is not None and not existing.retired:
            if existing.origin != resolved.origin:
                raise Conflict(
                    f"Two bundles claim {resolved.label}: {existing.origin} and {resolved.origin}.",
                    hint="Serve bundles with distinct names (save_bundle(name=...)) or register them.",
                )
            return existing
        key = (resolved.name, resolved.version)
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ServedVersion] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            served = await self.loader.load(resolved)
        except BaseException as exc:
            self.metrics.model_loads.labels(resolved.name, "failed").inc()
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._pending[key]
        self.metrics.model_loads.labels(resolved.name, "loaded").inc()
        if self.on_loaded is not None:
            self.on_loaded(served)
        future.set_result(served)
        return served

    def _rebuild(self) -> None:
        """Recompute versions, defaults and aliases from the bindings; retire unbound versions."""
        versions: dict[str, dict[int, ServedVersion]] = {}
        aliases: dict[str, dict[str, ServedVersion]] = {}
        own: dict[str, dict[int, ServedVersion]] = {}  # bound by targets the server was asked for
        for t in self._targets:
            if t.bound is None:
                continue
            versions.setdefault(t.bound.name, {})[t.bound.version] = t.bound
            if not t.extra:
                own.setdefault(t.bound.name, {})[t.bound.version] = t.bound
            if t.alias is not None:
                aliases.setdefault(t.bound.name, {})[t.alias] = t.bound
        defaults = {name: self._default(by_version, aliases.get(name, {})) for name, by_version in own.items()}
        retired = [v for n, by in self._versions.items() for k, v in by.items() if versions.get(n, {}).get(k) is not v]
        self._versions, self._aliases, self._defaults = versions, aliases, defaults
        for name, by_version in versions.items():
            for version in by_version:
                self.metrics.set_ready(name, version, True)
        for old in retired:
            self.metrics.set_ready(old.name, old.version, False)
            old.retire()

    @staticmethod
    def _default(by_version: dict[int, ServedVersion], aliases: dict[str, ServedVersion]) -> ServedVersion:
        if "production" in aliases:
            return aliases["production"]
        return by_version[max(by_version)]

    async def _poll(self) -> None:
        assert self._lock is not None
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                revision = await self.loader.revision()
                stale = any(t.bound is None or t.error for t in self._targets)
                if revision != self._revision or stale:
                    moved, self._revision = revision != self._revision, revision
                    async with self._lock:
                        if moved:
                            await self._revision_moved()
                        await self._refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep polling: the registry may come back
                logger.warning("Registry poll failed: %s", describe(exc))

    async def _revision_moved(self) -> None:
        """Run the ``on_revision`` hooks, then add or drop the targets of ``extra_versions``."""
        for hook in self.on_revision:
            try:
                await hook()
            except Exception as exc:  # forget the revision: the next poll runs the hooks again
                self._revision = None
                logger.warning("Registry change not applied: %s", describe(exc))
        if self.extra_versions is None:
            return
        wanted = {(name, v) for name, versions in self.extra_versions().items() for v in versions}
        kept = [t for t in self._targets if not t.extra or (t.name, t.ref.version) in wanted]
        have = {(t.name, t.ref.version) for t in kept if t.extra}
        for name, version in sorted(wanted - have):
            kept.append(Target(ModelRef(name=name, version=version), name, extra=True))
        if len(kept) != len(self._targets) or have != wanted:
            self._targets = kept
            self._rebuild()

    async def _refresh(self) -> None:
        if not self.refs:
            known = {t.name for t in self._targets}
            for name in await self.loader.list_production():
                if name not in known and name not in self._unloaded:
                    self._targets.append(Target(ModelRef(name=name, alias="production"), name))
        for target in list(self._targets):
            if target.ref.path is None or target.bound is None:
                await self._bring_up(target)

    # --- the repository extension --------------------------------------------------------------

    async def load_model(self, name: str) -> list[dict[str, Any]]:
        """(Re)load ``name``: re-resolve its targets, or add ``name`` (production/latest) as a target.

        Raises:
            InvalidName: ``name`` is not a model name (a path is never accepted here).
            NotFound: The registry has no such model.
            ServiceUnavailable: Loading failed (the reason is in the message).
        """
        assert self._lock is not None
        validate_name(name)
        async with self._lock:
            self._unloaded.discard(name)
            targets = [t for t in self._targets if t.name == name]
            if not targets:
                ref = ModelRef(name=name)
                await self.loader.resolve(ref)
                targets = [Target(ref, name)]
                self._targets.extend(targets)
            for target in targets:
                target.failed_revision = None
                target.failed_at = 0.0
                await self._bring_up(target)
            failed = [t for t in targets if t.error is not None]
        if failed:
            raise ServiceUnavailable(
                f"Loading {name!r} failed: {failed[0].error}.", hint="Fix the model version, then load it again."
            )
        return [row for row in self.index() if row["name"] == name]

    async def unload_model(self, name: str) -> None:
        """Stop serving ``name``; in-flight requests finish first.

        Raises:
            NotFound: ``name`` is not served.
        """
        assert self._lock is not None
        async with self._lock:
            targets = [t for t in self._targets if t.name == name]
            if not targets:
                raise NotFound(
                    f"Model {name!r} is not served.", hint=f"Served models: {', '.join(self.names()) or 'none'}."
                )
            self._targets = [t for t in self._targets if t.name != name]
            self._unloaded.add(name)
            self._rebuild()
            logger.info("Unloading %s (in-flight requests finish first)", name)
