"""The engine that moves chunks through a job: read → score → commit.

The job hands an :class:`Engine` three things: an iterator of numbered input chunks, a function
that scores one, and a function that commits one. :class:`LocalEngine` runs them on this machine
as a three-stage pipeline: a reader thread reads ahead (a bounded queue of ``prefetch`` chunks),
``workers`` threads score, and a writer thread commits strictly in chunk order (a queue of one),
so reading, scoring and writing overlap while memory stays at a few chunks. Arrow, the database
drivers and most model code release the GIL, so the overlap is real. Another engine (e.g. Ray
Data, for users who outgrow one machine) only has to honour the same contract: commits happen in
chunk order, and an error stops the pipeline after the commits already under way.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from modelport.batch.scoring import ScoredChunk
from modelport.batch.sources import SourceChunk

NumberedChunks = Iterator[tuple[int, SourceChunk]]
_POLL_S = 0.05


class Engine(Protocol):
    """Runs read → score → commit over a job's chunks."""

    def run(
        self,
        chunks: NumberedChunks,
        score: Callable[[int, SourceChunk], ScoredChunk],
        commit: Callable[[ScoredChunk], None],
    ) -> None:
        """Score every chunk and commit each, in order; raise the first error after stopping."""
        ...


@dataclass(frozen=True)
class _Failure:
    error: BaseException


_DONE = object()


def _put(target: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            target.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def _get(source: queue.Queue[Any], stop: threading.Event) -> Any:
    while not stop.is_set():
        try:
            return source.get(timeout=_POLL_S)
        except queue.Empty:
            continue
    return _DONE


class LocalEngine:
    """Pipelined, in-process engine.

    Args:
        prefetch: Chunks read ahead of scoring; ``0`` runs everything in the calling thread.
        workers: Chunks scored at the same time (threads); commits still happen in chunk order.
            Worth more than one when the model itself runs on one core (ONNX Runtime's batch
            sessions, most linear models), since prediction releases the GIL.
    """

    def __init__(self, *, prefetch: int = 2, workers: int = 1) -> None:
        self.prefetch = prefetch
        self.workers = max(1, workers)

    def run(
        self,
        chunks: NumberedChunks,
        score: Callable[[int, SourceChunk], ScoredChunk],
        commit: Callable[[ScoredChunk], None],
    ) -> None:
        """Score every chunk and commit each, in order; raise the first error after stopping."""
        if self.prefetch == 0 and self.workers == 1:
            for index, chunk in chunks:
                commit(score(index, chunk))
            return
        stop = threading.Event()
        writer_done = threading.Event()
        read_queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, self.prefetch))
        write_queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        errors: list[BaseException] = []
        reader = threading.Thread(
            target=_read_ahead, args=(chunks, read_queue, stop), name="modelport-batch-reader", daemon=True
        )
        writer = threading.Thread(
            target=_write_behind,
            args=(write_queue, commit, writer_done, stop, errors),
            name="modelport-batch-writer",
            daemon=True,
        )
        reader.start()
        writer.start()
        failure: BaseException | None = None
        try:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="modelport-batch-scorer") as pool:
                failure = _score_loop(read_queue, write_queue, score, stop, pool, self.workers)
        except BaseException as exc:
            failure = exc
        finally:
            if not stop.is_set():
                _put(write_queue, _DONE, stop)  # the writer commits what is queued, then exits
                writer.join()
            stop.set()
            writer_done.set()
            writer.join()
            reader.join()
        if errors:
            raise errors[0]
        if failure is not None:
            raise failure


def _score_loop(
    read_queue: queue.Queue[Any],
    write_queue: queue.Queue[Any],
    score: Callable[[int, SourceChunk], ScoredChunk],
    stop: threading.Event,
    pool: ThreadPoolExecutor,
    workers: int,
) -> BaseException | None:
    """Score up to ``workers`` chunks at once; hand them to the writer in chunk order."""
    pending: deque[Future[ScoredChunk]] = deque()
    failure: BaseException | None = None
    while failure is None:
        item = _get(read_queue, stop)
        if item is _DONE:
            break
        if isinstance(item, _Failure):
            failure = item.error
            break
        pending.append(pool.submit(score, *item))
        if len(pending) >= workers and not _put(write_queue, pending.popleft().result(), stop):
            return None
    while pending:  # chunks already being scored are still committed, in order
        if not _put(write_queue, pending.popleft().result(), stop):
            return None
    return failure


def _read_ahead(chunks: NumberedChunks, read_queue: queue.Queue[Any], stop: threading.Event) -> None:
    try:
        for item in chunks:
            if not _put(read_queue, item, stop):
                break
        else:
            _put(read_queue, _DONE, stop)
    except BaseException as exc:  # handed to the scoring thread, which raises it
        _put(read_queue, _Failure(exc), stop)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _write_behind(
    write_queue: queue.Queue[Any],
    commit: Callable[[ScoredChunk], None],
    done: threading.Event,
    stop: threading.Event,
    errors: list[BaseException],
) -> None:
    try:
        while True:
            item = _get(write_queue, done)
            if item is _DONE:
                return
            commit(item)
    except BaseException as exc:  # re-raised by LocalEngine.run after the pipeline stops
        errors.append(exc)
        stop.set()
