"""Loading one model version for serving: resolve, fetch, verify, load, accelerate, warm, with retries.

Everything slow runs in a loader thread, never on the event loop. A load is retried with
exponential backoff (``load_retries`` attempts, ``load_backoff_s`` doubling); the caller keeps
serving the old version meanwhile. The fast path (e.g. ONNX Runtime for scikit-learn models) comes
from the ``accelerate`` callable injected by the composition root; whether it is used, and why not,
is logged as ``serving NAME:V via onnxruntime`` or ``serving NAME:V natively (reason)``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelport.bundle.flavors.base import ModelAdapter
from modelport.bundle.io import load_bundle, read_reference_sample
from modelport.bundle.loaded import LoadedBundle
from modelport.bundle.manifest import read_manifest
from modelport.core.errors import ConfigError, ModelportError
from modelport.core.refs import ModelRef
from modelport.registry.records import ModelVersion
from modelport.registry.registry import Registry
from modelport.runtime.observe import RuntimeObserver
from modelport.runtime.predictor import Predictor
from modelport.server.served import BatchSettings, ServedVersion

logger = logging.getLogger("modelport.server")

Accelerate = Callable[[LoadedBundle], tuple[ModelAdapter, str] | None]
"""Returns a faster adapter and its name (e.g. ``"onnxruntime"``) for a bundle, or ``None``."""

BundleLoader = Callable[[Path], LoadedBundle]
"""Loads a verified bundle folder (default :func:`modelport.bundle.io.load_bundle`)."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a reference points at right now.

    Attributes:
        name: Model name.
        version: Version number (1 for a bundle folder that was never registered).
        source: The registry version, or the bundle folder.
    """

    name: str
    version: int
    source: ModelVersion | Path

    @property
    def label(self) -> str:
        """``name:version``."""
        return f"{self.name}:{self.version}"

    @property
    def origin(self) -> str:
        """What identifies the bundle: its folder, or the registry digest."""
        return str(self.source.resolve()) if isinstance(self.source, Path) else self.source.digest


def describe(exc: BaseException) -> str:
    """A one-line reason for logs, readiness and the repository index (no traceback)."""
    if isinstance(exc, ModelportError):
        return f"{exc.type}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


class VersionLoader:
    """Turns references into started :class:`ServedVersion` objects.

    Args:
        registry: Where ``name``/``name:3``/``name@alias`` references resolve (``None``: paths only).
        loader: Loads a bundle folder.
        accelerate: Optional fast-path factory.
        settings: Batching knobs for the versions it builds.
        inference_threads: Threads running model calls (created by :meth:`open`).
        observer_for: Builds the runtime observer of one model.
        retries: Attempts per load.
        backoff_s: First retry delay (doubled each time).
        warmup_rows: Reference rows scored before a version serves.
    """

    def __init__(
        self,
        *,
        registry: Registry | None,
        loader: BundleLoader,
        accelerate: Accelerate | None,
        settings: BatchSettings,
        inference_threads: int,
        observer_for: Callable[[str], RuntimeObserver],
        retries: int,
        backoff_s: float,
        warmup_rows: int,
    ) -> None:
        self.registry = registry
        self.loader = loader
        self.accelerate = accelerate
        self.settings = settings
        self.inference_threads = inference_threads
        self._inference: ThreadPoolExecutor | None = None
        self._loading: ThreadPoolExecutor | None = None
        self.observer_for = observer_for
        self.retries = retries
        self.backoff_s = backoff_s
        self.warmup_rows = warmup_rows

    def open(self) -> None:
        """Create the thread pools: one for model calls, one for loads (so loads never starve inference)."""
        self._inference = ThreadPoolExecutor(self.inference_threads, thread_name_prefix="modelport-infer")
        self._loading = ThreadPoolExecutor(2, thread_name_prefix="modelport-load")

    def close(self) -> None:
        """Shut the thread pools down (running calls finish in the background)."""
        for pool in (self._inference, self._loading):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        self._inference = self._loading = None

    @property
    def inference_executor(self) -> Executor:
        """Threads running model calls (also used for coercing large requests)."""
        if self._inference is None:
            raise RuntimeError("VersionLoader.open() was not called")
        return self._inference

    async def _in_thread(self, func: Callable[..., Any], *args: Any) -> Any:
        if self._loading is None:
            raise RuntimeError("VersionLoader.open() was not called")
        return await asyncio.get_running_loop().run_in_executor(self._loading, func, *args)

    async def resolve(self, ref: ModelRef) -> Resolved:
        """Resolve ``ref`` now (a registry query, or reading a bundle's manifest)."""
        if ref.path is not None:
            path = Path(ref.path)
            manifest = await self._in_thread(read_manifest, path)
            return Resolved(manifest.name, manifest.version or 1, path)
        if self.registry is None:
            raise ConfigError(
                f"Cannot serve {str(ref)!r} without a registry.",
                hint="Give a bundle folder path, or start the server with a registry.",
            )
        mv: ModelVersion = await self._in_thread(self.registry.resolve, ref)
        return Resolved(mv.name, mv.version, mv)

    async def list_production(self) -> list[str]:
        """Names of registered models that have a ``production`` alias."""
        if self.registry is None:
            return []
        summaries = await self._in_thread(self.registry.list_models)
        return [s.name for s in summaries if "production" in s.aliases]

    async def revision(self) -> int | None:
        """The registry's change counter (``None`` without a registry)."""
        if self.registry is None:
            return None
        value: int = await self._in_thread(self.registry.revision)
        return value

    async def load(self, resolved: Resolved) -> ServedVersion:
        """Load, warm and start ``resolved``, retrying with backoff.

        Raises:
            Exception: The last attempt's error when every attempt failed.
        """
        delay = self.backoff_s
        for attempt in range(1, self.retries + 1):
            try:
                served: ServedVersion = await self._in_thread(self._load_once, resolved)
            except Exception as exc:
                logger.warning(
                    "Loading %s failed (attempt %d of %d): %s", resolved.label, attempt, self.retries, describe(exc)
                )
                if attempt == self.retries:
                    raise
                await asyncio.sleep(delay)
                delay *= 2
            else:
                served.start()
                return served
        raise AssertionError("unreachable")  # pragma: no cover

    def _load_once(self, resolved: Resolved) -> ServedVersion:
        source = resolved.source
        if isinstance(source, Path):
            folder = source
        else:
            assert self.registry is not None
            folder = self.registry.fetch(source)
        bundle = self.loader(folder)
        adapter, note = self._fast_path(bundle, resolved.label)
        predictor = Predictor(bundle, adapter=adapter, accelerated=note if adapter is not None else None)
        served = ServedVersion(
            predictor,
            version=resolved.version,
            note=note,
            origin=resolved.origin,
            settings=self.settings,
            executor=self.inference_executor,
            observer=self.observer_for(resolved.name),
        )
        served.warm(read_reference_sample(bundle.path), self.warmup_rows)
        if adapter is not None:
            logger.info("serving %s via %s", resolved.label, note)
        else:
            logger.info("serving %s natively (%s)", resolved.label, note)
        return served

    def _fast_path(self, bundle: LoadedBundle, label: str) -> tuple[ModelAdapter | None, str]:
        if self.accelerate is None:
            return None, "native: no accelerator configured"
        try:
            fast = self.accelerate(bundle)
        except Exception as exc:  # a broken fast path must not stop the model from serving
            logger.warning("Fast path for %s failed: %s", label, describe(exc))
            return None, f"native: fast path failed ({describe(exc)})"
        if fast is None:
            return None, "native: no faster runtime for this model (conversion or parity check declined)"
        return fast


def default_loader(trusted_pickle: bool) -> BundleLoader:
    """A loader calling :func:`load_bundle` with the operator's pickle trust."""

    def load(path: Path) -> LoadedBundle:
        return load_bundle(path, trusted_pickle=trusted_pickle)

    return load
