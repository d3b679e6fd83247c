"""Files as batch output: CSV or Parquet, one file or a folder of parts, committed chunk by chunk.

Every chunk becomes one *part* file, written under a hidden temporary name, flushed to disk and
renamed into place; then the folder's manifest (``_modelport_manifest.json``) is rewritten
atomically (temporary file, fsync, ``os.replace``) with the part, its row counts and the source
position after it. The manifest rewrite is the commit: a part it does not list is from an
interrupted attempt and is deleted when that run resumes. Rejected rows are appended to a CSV
file next to the output; the manifest records its length after each chunk, and a resumed run cuts
it back to the last committed length.

Layouts, by mode: a folder in ``append`` mode gets the parts of each run added (named with the run
id); a folder in ``replace`` mode is built as a hidden sibling folder and swapped in at the end; a
single ``.csv``/``.parquet`` file is built from parts in a hidden sibling folder and assembled
into a temporary file that replaces the output at the end. Readers never see half a file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from modelport.batch.options import WriteMode
from modelport.batch.scoring import ScoredChunk
from modelport.batch.sinks import SinkContext
from modelport.core.errors import Conflict, Unsupported
from modelport.registry.runs import FINAL_CHUNK, ChunkCommit

MANIFEST = "_modelport_manifest.json"
OutputFormat = Literal["csv", "parquet"]
_FILE_SUFFIXES: dict[str, OutputFormat] = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class FileSink:
    """CSV or Parquet output.

    Args:
        location: A ``.csv``/``.parquet`` file, or a folder (created when missing).
        format: ``csv`` or ``parquet``; by default from the suffix (folders: ``parquet``).
        rejects: Path of the rejects CSV (default: next to the output, see :attr:`rejects_location`).
    """

    default_mode: WriteMode = "replace"

    def __init__(self, location: str | Path, *, format: str | None = None, rejects: str | Path | None = None) -> None:
        self.path = Path(location)
        suffix_format = _FILE_SUFFIXES.get(self.path.suffix.lower())
        self.single = suffix_format is not None and not self.path.is_dir()
        if format is not None and format not in ("csv", "parquet"):
            raise Unsupported(f"Unknown output format {format!r}.", hint="Use csv or parquet.")
        self.format: OutputFormat = format or suffix_format or "parquet"  # type: ignore[assignment]
        self.modes: frozenset[WriteMode] = frozenset({"replace"} if self.single else {"replace", "append"})
        self.description = os.path.abspath(self.path)
        self._rejects_given = Path(rejects) if rejects is not None else None
        self._context: SinkContext | None = None
        self._work = self.path
        self._manifest: dict[str, Any] = {"format": 1, "commits": [], "finalized": []}
        self._rejects_file: Path | None = None
        self._finalized = False

    @property
    def rejects_location(self) -> str:
        """The rejects CSV: ``<name>.rejects.csv`` beside a file, ``<folder>.rejects/<run>.csv`` for a folder."""
        return str(self._rejects_path())

    def _rejects_path(self) -> Path:
        if self._rejects_given is not None:
            return self._rejects_given
        if self.single:
            return self.path.with_name(f"{self.path.stem}.rejects.csv")
        run = self._context.run_id if self._context else "RUN_ID"
        return self.path.with_name(f"{self.path.name}.rejects") / f"{run}.csv"

    # --- open ---------------------------------------------------------------------------------

    def open(self, context: SinkContext) -> list[ChunkCommit]:
        """Find (or create) the working folder and return this run's committed chunks."""
        self._context = context
        run = context.run_id
        if self.single:
            self._work = self.path.with_name(f".{self.path.name}.{run}.parts")
        elif context.mode == "replace":
            self._work = self.path.with_name(f".{self.path.name}.{run}.staging")
            if not self._work.exists() and self._swapped_already(run):
                self._work = self.path
            elif self.path.exists() and any(self.path.iterdir()) and not (self.path / MANIFEST).exists():
                raise Conflict(
                    f"{self.path} is a non-empty folder that modelport did not write; it will not replace it.",
                    hint="Write to a new or empty folder, or to a file path ending in .csv or .parquet.",
                )
        if self.path.is_file() and not self.single:
            raise Conflict(f"{self.path} is a file, not a folder.", hint="Give a folder path or a .csv/.parquet file.")
        self._work.mkdir(parents=True, exist_ok=True)
        manifest_path = self._work / MANIFEST
        if manifest_path.exists():
            self._manifest = orjson.loads(manifest_path.read_bytes())
        mine = [c for c in self._manifest["commits"] if c["run_id"] == run]
        self._finalized = run in self._manifest["finalized"]
        self._clean_orphans(run, {c["file"] for c in mine})
        self._rejects_file = self._rejects_path()
        self._reset_rejects(mine[-1]["rejects_bytes"] if mine else 0)
        commits = [_commit_of(c) for c in mine]
        if self._finalized:
            commits.append(ChunkCommit(FINAL_CHUNK, 0, 0, 0, {}, _parse_time(self._manifest["finalized_at"][run])))
        return commits

    def _swapped_already(self, run: str) -> bool:
        manifest_path = self.path / MANIFEST
        if not manifest_path.exists():
            return False
        return any(c["run_id"] == run for c in orjson.loads(manifest_path.read_bytes())["commits"])

    def _part_name(self, index: int) -> str:
        run = self._context.run_id if self._context else ""
        suffix = "csv" if self.format == "csv" else "parquet"
        return f"part-{run[:12]}-{index:06d}.{suffix}"

    def _clean_orphans(self, run: str, committed: set[str]) -> None:
        prefix = f"part-{run[:12]}-"
        for entry in self._work.iterdir():
            orphan = entry.name.startswith(prefix) and entry.name not in committed
            if orphan or entry.name.startswith(".tmp-"):
                entry.unlink()

    def _reset_rejects(self, length: int) -> None:
        path = self._rejects_file
        assert path is not None
        if path.exists():
            if length == 0:
                path.unlink()
            else:
                with path.open("r+b") as handle:
                    handle.truncate(length)

    # --- write --------------------------------------------------------------------------------

    def write(self, chunk: ScoredChunk, commit: ChunkCommit) -> bool:
        """Write the part, append rejects, then commit by rewriting the manifest."""
        assert self._context is not None
        name = self._part_name(chunk.index)
        tmp = self._work / f".tmp-{name}"
        if self.format == "csv":
            pacsv.write_csv(chunk.output, tmp, pacsv.WriteOptions(include_header=False))
        else:
            pq.write_table(chunk.output, tmp)
        _fsync(tmp)
        os.replace(tmp, self._work / name)
        rejects_bytes = self._append_rejects(chunk.rejects)
        entry = {
            "file": name,
            "run_id": self._context.run_id,
            "chunk": commit.index,
            "rows_read": commit.rows_read,
            "rows_written": commit.rows_written,
            "rows_rejected": commit.rows_rejected,
            "position": dict(commit.position),
            "committed_at": commit.committed_at.isoformat(),
            "rejects_bytes": rejects_bytes,
            "columns": chunk.output.schema.names,
        }
        self._manifest["commits"].append(entry)
        _write_atomic(self._work / MANIFEST, orjson.dumps(self._manifest))
        return False

    def _append_rejects(self, rejects: pa.Table) -> int:
        path = self._rejects_file
        assert path is not None
        if rejects.num_rows:
            path.parent.mkdir(parents=True, exist_ok=True)
            new = not path.exists() or path.stat().st_size == 0
            with path.open("ab") as handle:
                pacsv.write_csv(rejects, handle, pacsv.WriteOptions(include_header=new))
                handle.flush()
                os.fsync(handle.fileno())
        return path.stat().st_size if path.exists() else 0

    # --- finish -------------------------------------------------------------------------------

    def finish(self) -> None:
        """Assemble a single file, or swap a replaced folder into place; then mark the run final."""
        assert self._context is not None
        if self._finalized:
            return
        run = self._context.run_id
        if self.single:
            self._assemble()
        elif self._context.mode == "replace" and self._work != self.path:
            old = self.path.with_name(f".{self.path.name}.{run}.old")
            if self.path.exists():
                os.replace(self.path, old)
            os.replace(self._work, self.path)
            self._work = self.path
            shutil.rmtree(old, ignore_errors=True)
        self._manifest["finalized"].append(run)
        self._manifest.setdefault("finalized_at", {})[run] = datetime.now().astimezone().isoformat()
        _write_atomic(self._work / MANIFEST, orjson.dumps(self._manifest))
        self._finalized = True

    def _parts(self) -> Iterator[Path]:
        run = self._context.run_id if self._context else ""
        for entry in sorted(
            (c for c in self._manifest["commits"] if c["run_id"] == run), key=lambda c: int(c["chunk"])
        ):
            yield self._work / entry["file"]

    def _assemble(self) -> None:
        tmp = self.path.with_name(f".tmp-{self.path.name}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        parts = list(self._parts())
        if self.format == "csv":
            with tmp.open("wb") as out:
                if parts:
                    columns = self._manifest["commits"][-1]["columns"]
                    pacsv.write_csv(pa.table({c: pa.array([], pa.null()) for c in columns}), out)
                for part in parts:
                    with part.open("rb") as handle:
                        shutil.copyfileobj(handle, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
        else:
            _concat_parquet(parts, tmp)
            _fsync(tmp)
        os.replace(tmp, self.path)

    def close(self) -> None:
        """Remove the hidden working folder of a finished single-file output."""
        if self._finalized and self.single and self._work.exists():
            shutil.rmtree(self._work, ignore_errors=True)


def _concat_parquet(parts: list[Path], target: Path) -> None:
    if not parts:
        pq.write_table(pa.table({}), target)
        return
    schema = pq.read_schema(parts[0])
    with pq.ParquetWriter(target, schema) as writer:
        for part in parts:
            table = pq.read_table(part)
            writer.write_table(table if table.schema.equals(schema) else table.cast(schema))


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _commit_of(entry: dict[str, Any]) -> ChunkCommit:
    return ChunkCommit(
        index=int(entry["chunk"]),
        rows_read=int(entry["rows_read"]),
        rows_written=int(entry["rows_written"]),
        rows_rejected=int(entry["rows_rejected"]),
        position=entry["position"],
        committed_at=_parse_time(entry["committed_at"]),
    )
