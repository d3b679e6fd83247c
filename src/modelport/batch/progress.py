"""Progress of a running batch job, reported to a callback (the CLI draws it with Rich).

The job calls the callback with a :class:`ProgressEvent` once when it starts (after resolving the
model and any resumed position), once per committed chunk, and once at the end. Events are plain
frozen values; batch itself never draws anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

ProgressKind = Literal["start", "chunk", "end"]


@dataclass(frozen=True)
class ProgressEvent:
    """Where a run stands.

    Attributes:
        kind: ``start``, ``chunk`` (a chunk was committed) or ``end``.
        run_id: The run.
        rows_read: Input rows committed so far, including those of earlier attempts.
        rows_written: Output rows so far.
        rows_rejected: Rejected rows so far.
        chunks: Chunks committed so far.
        total_rows: Input rows in all, when the source knows (``None`` otherwise).
        resumed_rows: Rows committed by earlier attempts (0 for a fresh run).
        elapsed_s: Seconds since this attempt started.
        status: ``completed`` or ``failed`` on the ``end`` event, else ``None``.
    """

    kind: ProgressKind
    run_id: str
    rows_read: int
    rows_written: int
    rows_rejected: int
    chunks: int
    total_rows: int | None
    resumed_rows: int
    elapsed_s: float
    status: str | None = None

    @property
    def rows_per_s(self) -> float:
        """Input rows per second in this attempt."""
        done = self.rows_read - self.resumed_rows
        return done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the current rate, when the total is known."""
        if self.total_rows is None or self.rows_per_s <= 0:
            return None
        return max(0.0, (self.total_rows - self.rows_read) / self.rows_per_s)


ProgressCallback = Callable[[ProgressEvent], None]
"""What the CLI (or any caller) passes to follow a run."""
