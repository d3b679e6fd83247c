"""``Deadlines``: per-request timeouts that share one event-loop timer per time slot.

``asyncio.timeout`` schedules (and cancels) one timer per request, a few microseconds each on the
prediction path. :class:`Deadlines` rounds every deadline *up* to the end of a short slot (a
two-hundredth of the timeout, at least 10 ms) and schedules one timer per slot; a request only
joins its slot's set on entry and leaves it on exit. A deadline therefore never fires early, and
fires at most one slot late. When it fires, the request's task is cancelled and the
cancellation leaves the ``with`` block as :class:`TimeoutError`, exactly as with
``asyncio.timeout`` (a cancellation from elsewhere stays a cancellation). The block is a plain
(synchronous) ``with`` inside the request's coroutine: entering and leaving it awaits nothing.

A request handled without a task (:mod:`modelport.server.direct`) uses :meth:`Deadlines.watch`
instead: at expiry its target's ``cancel()`` is called, and :meth:`Deadline.clear` ends the watch.
"""

from __future__ import annotations

import asyncio
import math
from types import TracebackType
from typing import Protocol

MIN_SLOT_S = 0.01
SLOTS_PER_TIMEOUT = 200


class Cancellable(Protocol):
    """What a deadline stops when it passes: a task, or a request handled without one."""

    def cancel(self) -> object:
        """Stop the work (its result is no longer wanted)."""


class Deadlines:
    """Deadlines of ``timeout_s`` seconds for the requests of one app.

    Args:
        timeout_s: How long a request may take.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.slot_s = max(MIN_SLOT_S, timeout_s / SLOTS_PER_TIMEOUT)
        self._slots: dict[int, set[Deadline]] = {}

    def start(self) -> Deadline:
        """A deadline ``timeout_s`` from when its ``with`` block is entered (inside a task)."""
        return Deadline(self)

    def watch(self, target: Cancellable, loop: asyncio.AbstractEventLoop) -> Deadline:
        """A deadline ``timeout_s`` from now that calls ``target.cancel()`` when it passes.

        Its :attr:`Deadline.expired` tells, afterwards, whether it did; call :meth:`Deadline.clear`
        once the work is done.
        """
        entry = Deadline(self)
        entry._task = target
        entry._slot = self._join(entry, loop)
        return entry

    def _join(self, entry: Deadline, loop: asyncio.AbstractEventLoop) -> int:
        slot = math.ceil((loop.time() + self.timeout_s) / self.slot_s)
        entries = self._slots.get(slot)
        if entries is None:
            entries = self._slots[slot] = set()
            loop.call_at(slot * self.slot_s, self._expire, slot)
        entries.add(entry)
        return slot

    def _leave(self, entry: Deadline, slot: int) -> None:
        entries = self._slots.get(slot)
        if entries is not None:
            entries.discard(entry)

    def _expire(self, slot: int) -> None:
        for entry in self._slots.pop(slot, ()):
            entry.expire()


class Deadline:
    """One request's deadline: ``with deadlines.start(): ...`` raises :class:`TimeoutError` past it."""

    __slots__ = ("_cancelling", "_owner", "_slot", "_task", "expired")

    def __init__(self, owner: Deadlines) -> None:
        self._owner = owner
        self._task: Cancellable | None = None
        self._slot = 0
        self._cancelling = 0
        self.expired = False

    def expire(self) -> None:
        """Cancel the task inside the block (called by the slot's timer)."""
        if self._task is not None:
            self.expired = True
            self._task.cancel()

    def clear(self) -> None:
        """End a :meth:`Deadlines.watch`: the target's work is done (or given up)."""
        self._owner._leave(self, self._slot)
        self._task = None

    def __enter__(self) -> Deadline:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("Deadline should be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._slot = self._owner._join(self, loop)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._owner._leave(self, self._slot)
        task, self._task = self._task, None
        assert task is None or isinstance(task, asyncio.Task)
        # uncancel() first, whatever the exception: the expiry's cancel request is ours to take back
        if (
            self.expired
            and task is not None
            and task.uncancel() <= self._cancelling
            and exc_type is asyncio.CancelledError
        ):
            raise TimeoutError from exc
