"""The common prediction log: one versioned record format, and the writer that never slows a prediction.

Every prediction, online or batch, becomes a :class:`PredictionRecord` (schema version 1; the
format is documented field by field in ``docs/prediction-log.md``). Online, a request of N rows
gives N records sharing its request id (``row`` tells them apart); batch runs write one
``kind="run"`` record per run plus a bounded sample of rows.

:class:`PredictionLogWriter` takes records through a bounded queue: :meth:`~PredictionLogWriter.log`
never blocks, applies the redaction rules at once (raw values of redacted columns never reach the
queue), and drops and counts a record when the queue is full. A background thread appends the
records to Parquet files partitioned ``model=<name>/date=<YYYY-MM-DD>/``: each file is written as
a hidden ``.part-*.parquet.tmp`` and renamed to ``part-<UTC time>-<writer>-<seq>.parquet`` when it
is complete (by size, by age, or on stop), so readers (DuckDB) only ever see whole files. A write
error, a full disk included, drops that batch (counted, with a rate-limited warning) and the
writer carries on; nothing is ever raised to the caller. Retention deletes whole days.

Each file holds the record fields (``inputs``/``outputs`` as JSON text) plus, for speed in DuckDB,
one flattened typed column per scalar input and output: ``inputs.<column>`` and
``outputs.<name>`` (DOUBLE for numbers, BOOLEAN, VARCHAR, or a list of DOUBLE for vectors such as
``predict_proba``). A key whose values mix types in one file is left to the JSON column.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import re
import secrets
import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from modelport.core.errors import ModelportError
from modelport.core.names import NAME_PATTERN
from modelport.runtime._logtable import build_table, conform
from modelport.runtime.observe import NullObserver, RuntimeObserver
from modelport.runtime.redaction import Redactor

SCHEMA_VERSION = 1
logger = logging.getLogger("modelport.predlog")

WARN_INTERVAL_S = 60.0
MAINTENANCE_INTERVAL_S = 60.0
MAX_ERROR_CHARS = 2000
_DATE_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictionRecord:
    """One logged prediction (or, with ``kind="run"``, one batch run). Schema version 1.

    Attributes:
        model: Model name (a valid name: it becomes the ``model=`` partition).
        version: Model version, ``None`` for an unregistered bundle.
        request_id: Request id (online) or run id (batch); rows of one request share it.
        row: Position of the row within its request (0-based).
        ts: When the prediction was made (timezone-aware; stored as UTC).
        route: ``primary``, ``canary`` or ``shadow``.
        source: ``online``, or ``batch:<run id>``.
        kind: ``prediction`` (one row) or ``run`` (a batch run's summary).
        inputs: The row's inputs, column → value (redacted before it is queued).
        outputs: The row's outputs, name → value (``predict`` label/value, ``predict_proba`` list).
        latency_ms: Time the request (or run) took, in milliseconds.
        status: ``ok`` or ``error``.
        error_type: The error's type (e.g. ``ValidationError``) when ``status`` is ``error``.
        error: The error's message (scrubbed of redacted values).
    """

    model: str
    version: int | None
    request_id: str
    row: int = 0
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))
    route: str = "primary"
    source: str = "online"
    kind: str = "prediction"
    inputs: Mapping[str, Any] | None = None
    outputs: Mapping[str, Any] | None = None
    latency_ms: float | None = None
    status: str = "ok"
    error_type: str | None = None
    error: str | None = None


def error_fields(error: BaseException) -> tuple[str, str]:
    """``(error_type, error)`` for a record: a modelport error's own message, else only its type.

    Messages of unexpected exceptions may hold paths or internals, so they are not logged here
    (the server logs the traceback under the request id).
    """
    if isinstance(error, ModelportError):
        return error.type, error.message[:MAX_ERROR_CHARS]
    return type(error).__name__, "internal error"


def rows_of(data: Any, *, columns: Sequence[str] | None = None) -> list[dict[str, Any]] | None:
    """Split request data into one dict per row, or ``None`` when its shape is not understood.

    Accepts records, a dict of columns, a DataFrame, or rows / a 2-D array (named by ``columns``;
    tensors are logged whole under ``input``).
    """
    if isinstance(data, pd.DataFrame):
        return data.to_dict("records")  # type: ignore[return-value]
    if isinstance(data, Mapping):
        values = list(data.values())
        if values and all(isinstance(v, list | tuple | np.ndarray) for v in values):
            lengths = {len(v) for v in values}
            if len(lengths) == 1:
                n = lengths.pop()
                return [{str(k): v[i] for k, v in data.items()} for i in range(n)]
            return None
        return [{str(k): v for k, v in data.items()}]
    if isinstance(data, np.ndarray):
        if data.ndim == 2 and columns is not None and data.shape[1] == len(columns):
            return [dict(zip(columns, row, strict=True)) for row in data.tolist()]
        return [{"input": item} for item in data] if data.ndim >= 1 else None
    if isinstance(data, list | tuple) and data:
        if all(isinstance(r, Mapping) for r in data):
            return [{str(k): v for k, v in r.items()} for r in data]
        if columns is not None and all(isinstance(r, list | tuple) and len(r) == len(columns) for r in data):
            return [dict(zip(columns, r, strict=True)) for r in data]
    return None


def request_records(
    *,
    model: str,
    version: int | None,
    request_id: str,
    inputs: Any,
    outputs: Mapping[str, Any] | None = None,
    latency_ms: float | None = None,
    error: BaseException | None = None,
    route: str = "primary",
    source: str = "online",
    columns: Sequence[str] | None = None,
    ts: datetime | None = None,
) -> list[PredictionRecord]:
    """The records of one request: one per row (sharing ``request_id``), or one for a failed request.

    Args:
        inputs: The request's data as the caller sent it (records, columns, frame, rows, arrays).
        outputs: Output name → array with one entry per row (``None`` on error).
        error: The exception the request failed with, if it did.
        columns: Column names for positional rows (the signature's column order).
    """
    when = ts if ts is not None else datetime.now(UTC)
    rows = rows_of(inputs, columns=columns) if inputs is not None else None

    def record(row: int, **fields: Any) -> PredictionRecord:
        return PredictionRecord(
            model=model, version=version, request_id=request_id, row=row, ts=when, route=route, source=source,
            latency_ms=latency_ms, **fields,
        )  # fmt: skip

    if error is not None:
        error_type, message = error_fields(error)
        row_inputs: list[dict[str, Any] | None] = list(rows) if rows else [None]
        return [
            record(i, inputs=row, status="error", error_type=error_type, error=message)
            for i, row in enumerate(row_inputs)
        ]
    outs = dict(outputs or {})
    n = len(next(iter(outs.values()))) if outs else len(rows or ())
    if rows is not None and len(rows) != n:
        rows = None
    return [
        record(i, inputs=rows[i] if rows is not None else None, outputs={k: v[i] for k, v in outs.items()})
        for i in range(n)
    ]


@dataclass
class _OpenFile:
    tmp: Path
    final: Path
    writer: pq.ParquetWriter
    schema: pa.Schema
    opened: float
    rows: int = 0


class PredictionLogWriter:
    """Writes prediction records to partitioned Parquet files from a background thread.

    Args:
        directory: Log root; files go to ``directory/model=<name>/date=<YYYY-MM-DD>/``.
        max_queue: Most records waiting; beyond it :meth:`log` drops (and counts) records.
        flush_interval_s: How often queued records are written.
        max_file_bytes: A file is completed (renamed into place) once it reaches this size...
        max_file_age_s: ...or this age, so readers see records within about this delay.
        retention_days: When set, days older than this are deleted periodically.
        max_total_bytes: When set, the oldest files are deleted while the log is larger.
        redactor: Redaction rules applied in :meth:`log`, before a record is queued.
        observer: Receives drop and write counts.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        max_queue: int = 10_000,
        flush_interval_s: float = 1.0,
        max_file_bytes: int = 64 * 1024 * 1024,
        max_file_age_s: float = 60.0,
        retention_days: float | None = None,
        max_total_bytes: int | None = None,
        redactor: Redactor | None = None,
        observer: RuntimeObserver | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.max_queue = max_queue
        self.flush_interval_s = flush_interval_s
        self.max_file_bytes = max_file_bytes
        self.max_file_age_s = max_file_age_s
        self.retention_days = retention_days
        self.max_total_bytes = max_total_bytes
        self.redactor = redactor
        self._observer: RuntimeObserver = observer if observer is not None else NullObserver()
        self._queue: queue.Queue[PredictionRecord] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._flushed = threading.Condition(self._lock)
        self._flush_requests = 0
        self._flushes_done = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._files: dict[tuple[str, str], _OpenFile] = {}
        self._token = secrets.token_hex(4)
        self._seq = 0
        self._valid_models: set[str] = set()
        self._dropped: dict[str, int] = {}
        self._unwarned = 0
        self._last_warning = -math.inf
        self._last_maintenance = -math.inf
        self.written = 0
        """Records written to files so far."""

    # --- caller side (any thread; never blocks, never raises) ----------------------------------

    @property
    def dropped(self) -> int:
        """Records dropped so far, for any reason."""
        with self._lock:
            return sum(self._dropped.values())

    @property
    def dropped_by_reason(self) -> dict[str, int]:
        """Dropped records by reason: ``queue_full``, ``write_error``, ``stopped``, ``invalid``."""
        with self._lock:
            return dict(self._dropped)

    def log(self, record: PredictionRecord) -> bool:
        """Queue ``record`` (redacted first); ``False`` when it was dropped (counted and warned)."""
        try:
            if self._stopping:
                self._drop(1, "stopped")
                return False
            if record.model not in self._valid_models:
                if not NAME_PATTERN.fullmatch(record.model) or ".." in record.model:
                    self._drop(1, "invalid")
                    return False
                self._valid_models.add(record.model)
            if self.redactor is not None and self.redactor.is_active(record.model):
                record = self._redact(record, self.redactor)
            self._queue.put_nowait(record)
            return True
        except queue.Full:
            self._drop(1, "queue_full")
        except Exception as exc:  # logging never fails a prediction
            self._drop(1, "invalid", detail=type(exc).__name__)
        return False

    def log_many(self, records: Sequence[PredictionRecord]) -> int:
        """Queue several records; returns how many were accepted."""
        return sum(self.log(r) for r in records)

    @staticmethod
    def _redact(record: PredictionRecord, redactor: Redactor) -> PredictionRecord:
        model = record.model
        error = record.error
        if error:
            error = redactor.scrub_text(model, error, record.inputs, record.outputs)
        inputs = redactor.redact_values(model, record.inputs) if record.inputs is not None else None
        outputs = redactor.redact_values(model, record.outputs) if record.outputs is not None else None
        return replace(record, inputs=inputs, outputs=outputs, error=error)

    def _drop(self, count: int, reason: str, *, detail: str = "") -> None:
        now = time.monotonic()
        with self._lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + count
            self._unwarned += count
            warn = now - self._last_warning >= WARN_INTERVAL_S
            if warn:
                unwarned, self._unwarned, self._last_warning = self._unwarned, 0, now
        try:
            self._observer.log_dropped(count, reason)
        except Exception:  # an observer must never break logging
            logger.debug("prediction-log observer failed", exc_info=True)
        if warn:
            extra = f" ({detail})" if detail else ""
            logger.warning(
                "Prediction log: dropped %d record(s) since the last warning, latest because %s%s; "
                "predictions continue.",
                unwarned, reason, extra,
            )  # fmt: skip

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background thread (creates the log folder)."""
        if self._thread is not None:
            raise RuntimeError("PredictionLogWriter is already started")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            logger.warning("Prediction log: cannot create %s (%s); records will be dropped.", self.directory, exc)
        self._thread = threading.Thread(target=self._run, name="modelport-predlog", daemon=True)
        self._thread.start()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Write every queued record and complete every open file; ``False`` on timeout or when stopped."""
        if self._thread is None or not self._thread.is_alive():
            return False
        deadline = time.monotonic() + timeout_s
        with self._lock:
            self._flush_requests += 1
            target = self._flush_requests
        self._wake.set()
        with self._flushed:
            while self._flushes_done < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._flushed.wait(remaining):
                    return self._flushes_done >= target
        return True

    def stop(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, complete the files, and stop the thread (idempotent)."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                logger.warning("Prediction log: writer did not stop within %.0f s.", timeout_s)

    # --- background thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            stopping = self._stopping
            with self._lock:
                flush_target = self._flush_requests
            self._write_queued()
            self._rotate(force=stopping or flush_target > self._flushes_done)
            self._maintain()
            with self._flushed:
                self._flushes_done = max(self._flushes_done, flush_target)
                self._flushed.notify_all()
            if stopping and self._queue.empty():
                return

    def _write_queued(self) -> None:
        batch: list[PredictionRecord] = []
        while len(batch) < self.max_queue:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        groups: dict[tuple[str, str], list[PredictionRecord]] = {}
        for record in batch:
            key = (record.model, record.ts.astimezone(UTC).date().isoformat())
            groups.setdefault(key, []).append(record)
        for key, records in groups.items():
            try:
                self._append(key, records)
            except Exception as exc:  # disk full, permissions, encoding: degrade, never raise
                self._discard(key)
                self._drop(len(records), "write_error", detail=f"{type(exc).__name__}: {exc}")

    def _append(self, key: tuple[str, str], records: list[PredictionRecord]) -> None:
        table = build_table(records, SCHEMA_VERSION)
        current = self._files.get(key)
        if current is not None:
            conformed = conform(table, current.schema)
            if conformed is None:
                self._finish(key)
                current = None
            else:
                table = conformed
        if current is None:
            current = self._open(key, table.schema)
        before = _size(current.tmp)
        current.writer.write_table(table)
        current.rows += table.num_rows
        nbytes = max(_size(current.tmp) - before, 0)
        with self._lock:
            self.written += table.num_rows
        self._observer.log_written(table.num_rows, nbytes)
        if _size(current.tmp) >= self.max_file_bytes:
            self._finish(key)

    def _open(self, key: tuple[str, str], schema: pa.Schema) -> _OpenFile:
        model, day = key
        folder = self.directory / f"model={model}" / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        name = f"part-{stamp}-{self._token}-{self._seq:06d}.parquet"
        tmp = folder / f".{name}.tmp"
        writer = pq.ParquetWriter(tmp, schema, compression="zstd")
        opened = _OpenFile(tmp=tmp, final=folder / name, writer=writer, schema=schema, opened=time.monotonic())
        self._files[key] = opened
        return opened

    def _finish(self, key: tuple[str, str]) -> None:
        """Close the file of ``key`` and rename it into place (readers see it from now on)."""
        current = self._files.pop(key)
        try:
            current.writer.close()
            os.replace(current.tmp, current.final)
        except Exception as exc:
            _unlink(current.tmp)
            self._drop(current.rows, "write_error", detail=f"{type(exc).__name__}: {exc}")

    def _discard(self, key: tuple[str, str]) -> None:
        current = self._files.pop(key, None)
        if current is None:
            return
        try:
            current.writer.close()
        except Exception:
            logger.debug("closing a failed prediction-log file", exc_info=True)
        _unlink(current.tmp)
        with self._lock:
            self.written -= current.rows
        if current.rows:
            self._drop(current.rows, "write_error", detail="file discarded after a write error")

    def _rotate(self, *, force: bool) -> None:
        now = time.monotonic()
        for key in list(self._files):
            if force or now - self._files[key].opened >= self.max_file_age_s:
                self._finish(key)

    def _maintain(self) -> None:
        now = time.monotonic()
        if now - self._last_maintenance < MAINTENANCE_INTERVAL_S:
            return
        self._last_maintenance = now
        try:
            if self.retention_days is not None:
                self.purge_older_than(self.retention_days)
            if self.max_total_bytes is not None:
                self.enforce_size(self.max_total_bytes)
        except Exception as exc:
            logger.warning("Prediction log: retention failed (%s: %s).", type(exc).__name__, exc)

    # --- retention -------------------------------------------------------------------------------

    def purge_older_than(self, days: float, *, now: datetime | None = None) -> int:
        """Delete the log days older than ``days`` (whole ``date=`` partitions); returns files deleted."""
        cutoff = ((now or datetime.now(UTC)) - timedelta(days=days)).date().isoformat()
        open_dirs = {f.tmp.parent for f in self._files.values()}
        removed = 0
        for folder in self.directory.glob("model=*/date=*"):
            match = _DATE_DIR.match(folder.name)
            if match is None or match.group(1) >= cutoff or folder in open_dirs or not folder.is_dir():
                continue
            removed += sum(1 for p in folder.iterdir() if p.name.endswith((".parquet", ".tmp")))
            shutil.rmtree(folder, ignore_errors=True)
        return removed

    def enforce_size(self, max_total_bytes: int) -> int:
        """Delete the oldest completed files while the log is larger than ``max_total_bytes``."""
        files = [(p.stat().st_mtime, p.stat().st_size, p) for p in self.directory.glob("model=*/date=*/part-*.parquet")]
        total = sum(size for _, size, _ in files)
        removed = 0
        for _, size, path in sorted(files):
            if total <= max_total_bytes:
                break
            _unlink(path)
            total -= size
            removed += 1
        return removed


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        logger.debug("cannot remove %s", path, exc_info=True)
