"""One model version being served: its predictor, its micro-batcher, and its in-flight count.

Requests :meth:`ServedVersion.acquire` a version before using it and release it after; a retired
version (replaced by a hot swap, or unloaded) stops its batcher only when its last in-flight
request has finished, so a swap never fails a request. A batch that fails as a whole is scored
again request by request, so one bad request cannot fail the others merged with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from modelport.bundle.flavors.base import ModelInput
from modelport.core.errors import ValidationError
from modelport.core.types import Signature
from modelport.runtime.batcher import MicroBatcher
from modelport.runtime.observe import RuntimeObserver
from modelport.runtime.predictor import Predictor
from modelport.server.protocols.v2 import ResponseEncoder

logger = logging.getLogger("modelport.server")

Results = dict[str, np.ndarray]


class BatchItem(NamedTuple):
    """One request's share of a batch: its coerced input and the outputs it asked for."""

    model_input: ModelInput
    outputs: tuple[str, ...]
    checked: bool = True
    """Whether the input is fully checked; if not, its batch is checked for infinities before the call."""


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """Micro-batching knobs of every served version.

    Attributes:
        max_batch_size: Most requests per model call.
        max_batch_delay_ms: Longest wait for stragglers once several requests are queued.
        max_queue: Requests waiting before 503.
        inline_below_ms: A batch expected (from the warm-up timings) to take less than this runs on
            the event loop: a thread hop would cost more than the call. Others run in the thread
            pool so the loop keeps accepting requests.
    """

    max_batch_size: int
    max_batch_delay_ms: float
    max_queue: int
    inline_below_ms: float = 0.0


class ServedVersion:
    """A loaded, warmed model version.

    Args:
        predictor: The model.
        version: Its version number (1 for a bundle that was never registered).
        note: How it is served, e.g. ``"onnxruntime"`` or ``"native (no ONNX converter)"``.
        origin: The bundle folder or registry digest it was loaded from.
        settings: Batching knobs.
        executor: Threads that run model calls.
        observer: Receives batch sizes, queue times and latencies.
    """

    def __init__(
        self,
        predictor: Predictor,
        *,
        version: int,
        note: str,
        origin: str,
        settings: BatchSettings,
        executor: Executor,
        observer: RuntimeObserver,
    ) -> None:
        self.predictor = predictor
        self.name = predictor.name
        self.version = version
        self.note = note
        self.origin = origin
        self.signature: Signature = predictor.signature
        self.output_names = predictor.output_names
        self.classes = predictor.classes
        self.flavor = predictor.manifest.flavor
        self.answer_headers = ((b"x-model-name", self.name.encode()), (b"x-model-version", str(version).encode()))
        """The response headers that name the version that answered."""
        self.coerce: Callable[[Any], ModelInput] = predictor.coercer.coerce
        """Validate caller data against the signature (the predictor's own, bound once)."""
        self.coerce_for_batch: Callable[[Any], tuple[ModelInput, bool]] = predictor.coercer.coerce_for_batch
        """:meth:`Coercer.coerce_for_batch <modelport.runtime.coercion.Coercer.coerce_for_batch>`, bound once:
        pass its flag on to :meth:`submit`."""
        self.v2_encoder = ResponseEncoder(self.name, version, self.classes)
        """Encodes this version's V2 ``infer`` responses (their fixed parts encoded once)."""
        self._outputs_checked: dict[tuple[str, ...], tuple[str, ...]] = {}
        self.in_flight = 0
        self.retired = False
        self._settings = settings
        self._executor = executor
        self._observer = observer
        self.call_s: float | None = None
        self.row_s = 0.0
        self._batcher: MicroBatcher[BatchItem, Results] | None = None
        self._stopped: asyncio.Event | None = None
        self._stop_task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"ServedVersion({self.name}:{self.version}, {self.note})"

    def estimate_s(self, rows: int) -> float | None:
        """Expected seconds of one model call on ``rows`` rows (from the warm-up), if measured."""
        if self.call_s is None:
            return None
        return self.call_s + self.row_s * max(0, rows - 1)

    def is_cheap(self, items: list[BatchItem]) -> bool:
        """Whether this batch is expected to finish within ``inline_below_ms`` (see :class:`BatchSettings`)."""
        rows = sum(self.predictor.n_rows(item.model_input) for item in items)
        estimate = self.estimate_s(rows)
        return estimate is not None and estimate * 1e3 < self._settings.inline_below_ms

    def start(self) -> None:
        """Create and start the batcher (inside the running event loop)."""
        self._stopped = asyncio.Event()
        self._batcher = MicroBatcher(
            self._process,
            max_batch_size=self._settings.max_batch_size,
            max_batch_delay_ms=self._settings.max_batch_delay_ms,
            max_queue=self._settings.max_queue,
            executor=self._executor,
            inline=self.is_cheap,
            observer=self._observer,
            name=f"{self.name}:{self.version}",
        )
        self._batcher.start()

    def check_outputs(self, outputs: Sequence[str] | None) -> tuple[str, ...]:
        """The outputs to compute: the given ones (validated) or every output."""
        if outputs is None:
            return self.output_names
        key = tuple(outputs)
        checked = self._outputs_checked.get(key)
        if checked is None:
            checked = self.predictor.check_outputs(key)
            if len(self._outputs_checked) < 64:  # the few selections clients actually send
                self._outputs_checked[key] = checked
        return checked

    def submit(self, model_input: ModelInput, outputs: tuple[str, ...], checked: bool = True) -> Awaitable[Results]:
        """Score one request through the batcher (await the result).

        ``checked=False`` (from :attr:`coerce_for_batch`) has the batch checked for infinities
        before the model call; a request holding one then gets the :class:`ValidationError` that
        :attr:`coerce` raises for it, and the others are scored.

        Raises:
            Overloaded: The queue is full.
            ModelportError: What the model raised for this request.
        """
        if self._batcher is None:
            raise RuntimeError(f"{self!r} is not started")
        return self._batcher.submit(BatchItem(model_input, outputs, checked))

    def _process(self, items: list[BatchItem]) -> list[Results | BaseException]:
        """Score a batch in one model call (run in the executor)."""
        if len(items) == 1:
            item = items[0]
            try:
                model_input = item.model_input if item.checked else self.coerce(item.model_input)
                return [self.predictor.run(model_input, item.outputs)]
            except Exception as exc:  # handed to the waiting request
                return [exc]
        wanted = tuple(dict.fromkeys(name for item in items for name in item.outputs))
        try:
            merged = self.predictor.concat([item.model_input for item in items])
            if not all(item.checked for item in items) and not self.predictor.coercer.finite(merged):
                return [self._process([item])[0] for item in items]  # find the one(s) holding infinities
            results = self.predictor.run(merged, wanted)
        except Exception:
            return [self._process([item])[0] for item in items]
        out: list[Results | BaseException] = []
        start = 0
        for item in items:
            end = start + self.predictor.n_rows(item.model_input)
            out.append({name: results[name][start:end] for name in item.outputs})
            start = end
        return out

    def warm(self, sample: ModelInput | None, rows: int) -> None:
        """Score the reference sample (``rows`` rows, then one row) three times, keeping the best timings.

        The timings estimate a full batch's cost, which decides :attr:`runs_inline`. Runs in a
        loader thread.
        """
        if sample is None or rows <= 0:
            return
        try:
            inputs = [self.predictor.coerce(_head(sample, n)) for n in (rows, 1)]
            best = [float("inf"), float("inf")]
            for _ in range(3):
                for i, model_input in enumerate(inputs):
                    started = time.perf_counter()
                    self.predictor.run(model_input, self.output_names)
                    best[i] = min(best[i], time.perf_counter() - started)
        except ValidationError as exc:
            logger.warning("Warm-up of %s:%s skipped: %s", self.name, self.version, exc.message)
            return
        many, one = best
        self.row_s = max(0.0, many - one) / max(1, self.predictor.n_rows(inputs[0]) - 1)
        self.call_s = one
        logger.debug(
            "Warmed %s:%s: one row %.3f ms, %.4f ms per extra row", self.name, self.version, one * 1e3, self.row_s * 1e3
        )

    def acquire(self) -> ServedVersion:
        """Count one more in-flight request."""
        self.in_flight += 1
        return self

    def release(self) -> None:
        """Count one request finished; stop a retired version when it was the last."""
        self.in_flight -= 1
        if self.retired and self.in_flight == 0:
            self._schedule_stop()

    def retire(self) -> None:
        """Stop taking new requests; unload once in-flight requests finish."""
        if self.retired:
            return
        self.retired = True
        if self.in_flight == 0:
            self._schedule_stop()

    def _schedule_stop(self) -> None:
        if self._stop_task is None:
            self._stop_task = asyncio.get_running_loop().create_task(self.stop())

    async def stop(self, timeout_s: float | None = None) -> None:
        """Stop the batcher (idempotent), finishing queued requests for at most ``timeout_s``."""
        batcher, self._batcher = self._batcher, None
        if batcher is not None:
            await batcher.stop(drain=True, timeout_s=timeout_s)
            logger.info("Unloaded %s:%s", self.name, self.version)
        if self._stopped is not None:
            self._stopped.set()

    async def wait_stopped(self) -> None:
        """Wait until :meth:`stop` has run."""
        if self._stopped is not None:
            await self._stopped.wait()


def _head(sample: ModelInput, n: int) -> ModelInput:
    """The first ``n`` rows of a frame, an array or a dict of arrays."""
    if isinstance(sample, pd.DataFrame):
        return sample.iloc[:n]
    if isinstance(sample, dict):
        return {name: arr[:n] for name, arr in sample.items()}
    return sample[:n]
