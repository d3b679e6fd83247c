"""Adaptive micro-batching: requests that arrive together are processed in one call.

A :class:`MicroBatcher` is an asyncio component, created and started inside the running event
loop (the server's lifespan) and stopped on shutdown. Callers ``await submit(item)``; one
background task takes items from a bounded queue and hands them, as a list, to a synchronous
``process`` function that runs in an executor thread, so the event loop never blocks on a model
(or, when the caller's ``inline`` check says a batch is cheaper than a thread hop, right on the
loop). The queue is a deque and a single wake-up future, not an ``asyncio.Queue``: an item costs
one append and one future on the request path.

Batching adapts to load. A lone request is processed at once, with no added delay. While a
batch is being processed, new arrivals accumulate in the queue; the next batch takes all of them
(up to ``max_batch_size``), and only when the queue already held more than one item does it wait,
at most ``max_batch_delay_ms``, for stragglers to fill the batch. A full queue refuses new items
with :class:`~modelport.core.errors.Overloaded` instead of growing without bound.

``process`` returns one result per item, in order; an exception *instance* in that list fails
only its own item (so one bad request cannot fail the others merged with it), and an exception
raised by ``process`` itself fails every item of that batch. A cancelled waiter's item is skipped
when possible and its result discarded otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Generic, TypeVar

from modelport.core.errors import ModelportError, Overloaded, ServiceUnavailable
from modelport.runtime.observe import NullObserver, RuntimeObserver

T = TypeVar("T")
R = TypeVar("R")

QUEUE_BATCHES = 8
"""Default queue bound, in batches: ``max_queue = max_batch_size * QUEUE_BATCHES``."""


class _Pending(Generic[T, R]):
    __slots__ = ("enqueued", "future", "item")

    def __init__(self, item: T, future: asyncio.Future[R], enqueued: float) -> None:
        self.item = item
        self.future = future
        self.enqueued = enqueued


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class MicroBatcher(Generic[T, R]):
    """Merges concurrent :meth:`submit` calls into batches for ``process``.

    Args:
        process: Called (in the executor) with a list of items; returns one result per item, in
            order. A result that is an exception instance is raised to that item's caller alone.
        max_batch_size: Most items per call.
        max_batch_delay_ms: Longest wait for more items, only when several are already queued.
        max_queue: Most items waiting (excluding the batch being processed); default
            ``max_batch_size * 8``.
        executor: Runs ``process``; default a dedicated single-thread executor owned (and shut
            down) by this batcher.
        inline: Says whether a batch is cheap enough to process on the event loop itself (a thread
            hop costs tens of microseconds); by default every batch goes to the executor.
        observer: Receives batch sizes, latencies, queue times and overloads.
        name: Names the model in messages (e.g. ``"churn:3"``).

    Example:
        >>> batcher = MicroBatcher(lambda xs: [x * 2 for x in xs])  # doctest: +SKIP
        >>> batcher.start()  # inside the running loop  # doctest: +SKIP
        >>> await batcher.submit(21)  # doctest: +SKIP
        42
    """

    def __init__(
        self,
        process: Callable[[list[T]], Sequence[R | BaseException]],
        *,
        max_batch_size: int = 64,
        max_batch_delay_ms: float = 2.0,
        max_queue: int | None = None,
        executor: Executor | None = None,
        inline: Callable[[list[T]], bool] | None = None,
        observer: RuntimeObserver | None = None,
        name: str = "model",
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_batch_delay_ms < 0:
            raise ValueError(f"max_batch_delay_ms must not be negative, got {max_batch_delay_ms}")
        self.process = process
        self.max_batch_size = max_batch_size
        self.max_batch_delay_s = max_batch_delay_ms / 1000.0
        self.max_queue = max_queue if max_queue is not None else max_batch_size * QUEUE_BATCHES
        if self.max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {self.max_queue}")
        self.name = name
        self._executor = executor
        self._owns_executor = executor is None
        self._inline = inline
        self._observer: RuntimeObserver = observer if observer is not None else NullObserver()
        self._queue: deque[_Pending[T, R]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Future[None] | None = None  # what the batch task awaits while the queue is empty
        self._task: asyncio.Task[None] | None = None
        self._in_flight: list[_Pending[T, R]] = []
        self._unfinished = 0  # queued or in a batch, not yet answered
        self._all_done: asyncio.Event | None = None
        self._stopping = False

    @property
    def is_running(self) -> bool:
        """Whether the batcher is started and not stopping."""
        return self._task is not None and not self._task.done() and not self._stopping

    @property
    def waiting(self) -> int:
        """Items queued and not yet taken into a batch."""
        return len(self._queue)

    def start(self) -> None:
        """Create the queue and the background task; call from inside the running event loop."""
        if self._task is not None:
            raise RuntimeError(f"MicroBatcher for {self.name} is already started")
        loop = self._loop = asyncio.get_running_loop()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"modelport-batch-{self.name}")
        self._task = loop.create_task(self._run(), name=f"modelport-batcher-{self.name}")

    def submit(self, item: T) -> asyncio.Future[R]:
        """Queue ``item`` now; the returned future resolves to its result once its batch ran.

        A plain function handing back the future (not a coroutine): awaiting it costs the
        caller no extra frame. Cancelling the future gives up on the item.

        Raises:
            Overloaded: The queue is full.
            ServiceUnavailable: The batcher is not running (not started, or stopping).
            BaseException: Whatever ``process`` raised, or returned, for this item.
        """
        loop = self._loop
        if loop is None or self._stopping:
            raise ServiceUnavailable(
                f"Model {self.name} is not accepting requests (stopped or not started).",
                hint="Retry in a moment; the model is being loaded, swapped or shut down.",
            )
        queue = self._queue
        if len(queue) >= self.max_queue:
            waiting = len(queue)
            self._observer.observe_overload(waiting)
            raise Overloaded(
                f"queue for model {self.name} is full ({waiting} waiting).",
                hint="Retry later with backoff; the model is at capacity (or raise max_queue / add workers).",
            )
        future: asyncio.Future[R] = loop.create_future()
        queue.append(_Pending(item, future, time.monotonic()))
        self._unfinished += 1
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)
        return future

    async def stop(self, *, drain: bool = True, timeout_s: float | None = None) -> None:
        """Stop taking items, then finish (``drain``) or fail the queued ones, and await the task.

        Args:
            drain: Process every queued item first; otherwise queued items fail with
                :class:`ServiceUnavailable` at once.
            timeout_s: With ``drain``, the longest wait before the rest are failed.
        """
        if self._task is None:
            return
        self._stopping = True
        if drain and self._unfinished:
            self._all_done = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_done.wait(), timeout_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        stopped = self._stopped_error()
        for pending in self._in_flight:
            _fail(pending, stopped)
        self._in_flight = []
        while self._queue:
            _fail(self._queue.popleft(), stopped)
        self._unfinished = 0
        if self._owns_executor and self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def _stopped_error(self) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"Model {self.name} stopped before this request was processed.",
            hint="Retry; another instance or version will answer.",
        )

    async def _run(self) -> None:
        while True:
            batch = await self._collect()
            try:
                if batch:
                    await self._process(batch)
            finally:
                self._finished(len(batch))

    def _finished(self, count: int) -> None:
        self._unfinished -= count
        if self._unfinished <= 0 and self._all_done is not None:
            self._all_done.set()

    async def _arrival(self, timeout_s: float | None = None) -> None:
        """Wait until an item is queued (or ``timeout_s`` passes)."""
        assert self._loop is not None
        waiter = self._wakeup = self._loop.create_future()
        handle = None if timeout_s is None else self._loop.call_later(timeout_s, _wake, waiter)
        try:
            await waiter
        finally:
            self._wakeup = None
            if handle is not None:
                handle.cancel()

    async def _collect(self) -> list[_Pending[T, R]]:
        """The next batch: everything queued (up to the limit), waiting for more only if several were queued."""
        queue = self._queue
        while not queue:
            await self._arrival()
        limit = self.max_batch_size
        batch = [queue.popleft() for _ in range(min(limit, len(queue)))]
        self._in_flight = batch  # failed by stop() if the task is cancelled while collecting
        if 1 < len(batch) < limit and self.max_batch_delay_s > 0:
            deadline = time.monotonic() + self.max_batch_delay_s
            while len(batch) < limit:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if not queue:
                    await self._arrival(remaining)
                while queue and len(batch) < limit:
                    batch.append(queue.popleft())
        live = [p for p in batch if not p.future.done()]  # cancelled waiters are skipped
        self._finished(len(batch) - len(live))
        return live

    async def _process(self, batch: list[_Pending[T, R]]) -> None:
        started = time.monotonic()
        for pending in batch:
            self._observer.observe_queue_time(started - pending.enqueued)
        self._in_flight = batch
        items = [p.item for p in batch]
        try:
            results = await self._call(items)
        except asyncio.CancelledError:
            for pending in batch:
                _fail(pending, self._stopped_error())
            raise
        except Exception as exc:  # every waiter of this batch gets it
            for pending in batch:
                _fail(pending, exc)
            return
        finally:
            self._observer.observe_batch(len(batch), time.monotonic() - started)
            self._in_flight = []
        self._deliver(batch, results)

    async def _call(self, items: list[T]) -> Sequence[R | BaseException]:
        """``process(items)``: on the loop when ``inline`` says it is cheap, else in the executor."""
        if self._inline is not None and self._inline(items):
            return self.process(items)
        assert self._executor is not None
        assert self._loop is not None
        return await self._loop.run_in_executor(self._executor, self.process, items)

    def _deliver(self, batch: list[_Pending[T, R]], results: Sequence[R | BaseException]) -> None:
        if len(results) != len(batch):
            mismatch = ModelportError(
                f"The batch function of {self.name} returned {len(results)} results for {len(batch)} items.",
                hint="process must return exactly one result (or exception) per item, in order.",
            )
            for pending in batch:
                _fail(pending, mismatch)
            return
        for pending, result in zip(batch, results, strict=True):
            if pending.future.done():
                continue  # the caller gave up (cancelled)
            if isinstance(result, BaseException):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)


def _fail(pending: _Pending[T, R], exc: BaseException) -> None:
    if not pending.future.done():
        pending.future.set_exception(exc)
