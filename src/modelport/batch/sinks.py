"""Where a batch job writes: the :class:`Sink` protocol, shared by files and SQL tables.

A sink commits each scored chunk *together with its checkpoint*: a SQL sink in one database
transaction, a file sink by renaming the chunk's part into place and then atomically rewriting a
manifest of committed parts. The sink's own record of committed chunks is therefore the truth a
resumed run starts from (:meth:`Sink.open` returns it); the run store mirrors it, in the same
transaction when the output database is the registry's own. Implementations:
:mod:`.file_sink` and :mod:`.sql_sink`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from modelport.batch.options import WriteMode
from modelport.batch.scoring import ScoredChunk
from modelport.core.errors import Unsupported
from modelport.registry.runs import ChunkCommit, RunStore


@dataclass(frozen=True)
class SinkContext:
    """What a sink needs to know about the run it writes for.

    Attributes:
        run_id: The run.
        mode: The write mode, already resolved (see :func:`resolve_mode`).
        key: Key columns (primary key of created tables; upsert target).
        store: The run store, so a sink on the registry database can commit checkpoints with rows.
    """

    run_id: str
    mode: WriteMode
    key: tuple[str, ...]
    store: RunStore


class Sink(Protocol):
    """Output of a batch job.

    Attributes:
        description: Where the predictions go, for run records and messages (passwords hidden).
        default_mode: The mode used when the job sets none.
        modes: The modes this sink supports.
    """

    description: str
    default_mode: WriteMode
    modes: frozenset[WriteMode]

    @property
    def rejects_location(self) -> str:
        """Where rejected rows are written (passwords hidden)."""
        ...

    def open(self, context: SinkContext) -> list[ChunkCommit]:
        """Prepare to write for ``context.run_id``; return the chunks of that run already committed.

        The list includes a :data:`~modelport.registry.runs.FINAL_CHUNK` marker when the sink was
        finalised already (a crash after :meth:`finish` and before the run was marked completed).
        """
        ...

    def write(self, chunk: ScoredChunk, commit: ChunkCommit) -> bool:
        """Commit ``chunk`` and its checkpoint atomically.

        Returns:
            True when the run store's checkpoint was written in the same transaction (the output
            is the registry database); False when the caller must mirror it into the store.
        """
        ...

    def finish(self) -> None:
        """Make the whole output visible (swap a replaced table, assemble a single file)."""
        ...

    def close(self) -> None:
        """Release resources; after a successful :meth:`finish`, remove staging leftovers."""
        ...


def resolve_mode(sink: Sink, mode: WriteMode | None, key: tuple[str, ...]) -> WriteMode:
    """The effective write mode, or :class:`Unsupported` when ``sink`` cannot do it."""
    resolved = mode or sink.default_mode
    if resolved not in sink.modes:
        raise Unsupported(
            f"Write mode {resolved!r} is not supported for {sink.description}.",
            hint=f"Use one of: {', '.join(sorted(sink.modes))}"
            + ("; write to a SQL table to upsert" if resolved == "upsert" else "")
            + ("; write to a folder to append" if resolved == "append" else "")
            + ".",
        )
    if resolved == "upsert" and not key:
        raise Unsupported("Write mode 'upsert' needs a key.", hint="Name the key column(s) with --key COLUMN.")
    return resolved
