"""Turn one chunk of input rows into output rows and rejected rows.

The output of a batch job has, in this order: the key column(s), any ``include`` columns, the
prediction (``prediction``, or ``prediction_0``... for multi-output models), the class
probabilities when asked (``proba_<class>``), then ``model``, ``version``, ``run_id`` and
``scored_at``. Rows the model cannot take, and rows whose key is missing or repeated within the
chunk, become *rejects* with the reason and the original values as JSON (:data:`REJECTS_SCHEMA`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import joblib
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from modelport.batch.options import JobOptions
from modelport.batch.screening import prepare_inputs, screen
from modelport.batch.sources import Position, SourceChunk
from modelport.core.errors import Unsupported, ValidationError
from modelport.core.names import SQL_IDENTIFIER_PATTERN
from modelport.runtime.predictor import PREDICT, PREDICT_PROBA, Predictor

META_COLUMNS = ("model", "version", "run_id", "scored_at")
TIMESTAMP = pa.timestamp("us", tz="UTC")
REJECTS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("chunk", pa.int32(), nullable=False),
        pa.field("row", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("values", pa.string(), nullable=False),
        pa.field("rejected_at", TIMESTAMP, nullable=False),
    ]
)
"""Columns of the rejects table or file; ``row`` is the 0-based row number in the whole input."""

_ROW_IN_MESSAGE = re.compile(r"\bat row \d+")


@dataclass(frozen=True)
class ScoredChunk:
    """A chunk after scoring, ready to be committed.

    Attributes:
        index: The chunk number (0-based, in the whole run).
        rows_read: Input rows in the chunk.
        output: The output rows.
        rejects: The rejected rows (:data:`REJECTS_SCHEMA`).
        position: The source position after this chunk.
        scored_at: When it was scored.
        score_ms: Time spent validating and predicting.
        sample: A few scored rows as ``(input row number, inputs, outputs)`` for the prediction log.
    """

    index: int
    rows_read: int
    output: pa.Table
    rejects: pa.Table
    position: Position = field(hash=False)
    scored_at: datetime
    score_ms: float
    sample: tuple[tuple[int, dict[str, Any], dict[str, Any]], ...] = field(default=(), hash=False)


class ChunkScorer:
    """Scores chunks with one Predictor, under one job's options.

    Args:
        predictor: The model.
        options: The job options (key, include, proba).
        run_id: Written into every output and reject row.
        clock: Returns the current UTC time (``scored_at``).
        timer: A monotonic clock in seconds.
        sample_per_chunk: Scored rows per chunk to keep as a sample for the prediction log.
        parallel_chunks: Several chunks are scored at once (in threads). Models that spread one call
            over joblib threads (scikit-learn forests with ``n_jobs``) then score each call in the
            calling thread: the chunks already keep the cores busy, and a thread pool started per
            call only adds GIL contention (about 10% fewer rows/s on two cores). Same predictions.
    """

    def __init__(
        self,
        predictor: Predictor,
        options: JobOptions,
        *,
        run_id: str,
        clock: Callable[[], datetime],
        timer: Callable[[], float],
        sample_per_chunk: int = 0,
        parallel_chunks: bool = False,
    ) -> None:
        if predictor.signature.kind != "tabular":
            raise Unsupported(
                f"Model {predictor.name!r} takes tensors; batch jobs score tabular models.",
                hint="Score tensor models through the server or load_model(...).predict.",
            )
        if options.proba and not predictor.has_proba:
            raise Unsupported(
                f"Model {predictor.name!r} has no class probabilities.", hint="Drop --proba for this model."
            )
        self.predictor = predictor
        self.options = options
        self.run_id = run_id
        self._clock = clock
        self._timer = timer
        self.sample_per_chunk = sample_per_chunk
        self.parallel_chunks = parallel_chunks
        self.features = predictor.signature.columns
        self.outputs = (PREDICT, PREDICT_PROBA) if options.proba else (PREDICT,)
        self.proba_columns = proba_column_names(predictor.classes or ()) if options.proba else ()
        passthrough = [*options.key, *options.include]
        reserved = {"prediction", *self.proba_columns, *META_COLUMNS}
        clash = [c for c in passthrough if c in reserved or c.startswith("prediction_")]
        if clash:
            raise ValidationError(
                f"Input column {clash[0]!r} would clash with an output column of the same name.",
                hint="Rename the column in the input (e.g. with --query 'SELECT prediction AS old_prediction ...').",
            )

    @property
    def columns(self) -> list[str]:
        """The input columns to read: key, include, then the model's features."""
        return list(dict.fromkeys([*self.options.key, *self.options.include, *(c.name for c in self.features)]))

    @property
    def text_columns(self) -> list[str]:
        """Feature columns best read as raw text from untyped formats (so bad values reject a row)."""
        return [c.name for c in self.features if c.type in ("float", "int", "bool", "datetime")]

    def score(self, index: int, chunk: SourceChunk) -> ScoredChunk:
        """Validate and score ``chunk``."""
        started = self._timer()
        table = chunk.table
        key_rejects = self._key_rejects(table)
        keep = np.arange(table.num_rows)
        if key_rejects:
            keep = np.setdiff1d(keep, np.fromiter(key_rejects, np.int64, len(key_rejects)))
        kept = table if len(keep) == table.num_rows else table.take(pa.array(keep))
        if kept.num_rows:
            with self._model_threads():
                screened = screen(self.predictor, prepare_inputs(kept, self.features), self.outputs)
            good = keep[screened.rows]
            reasons = key_rejects | {int(keep[i]): r for i, r in screened.rejected}
            outputs = screened.outputs
        else:
            good, reasons, outputs = keep, key_rejects, {}
        now = self._clock()
        output = self._output(table if len(good) == table.num_rows else table.take(pa.array(good)), outputs, now)
        rejects = self._rejects(index, chunk, reasons, now)
        sample = self._sample(chunk, good, outputs)
        return ScoredChunk(
            index=index,
            rows_read=table.num_rows,
            output=output,
            rejects=rejects,
            position=chunk.position,
            scored_at=now,
            score_ms=(self._timer() - started) * 1000.0,
            sample=sample,
        )

    def _model_threads(self) -> contextlib.AbstractContextManager[Any]:
        """joblib's sequential backend for this thread's model calls when chunks run in parallel."""
        if self.parallel_chunks:
            sequential: contextlib.AbstractContextManager[Any] = joblib.parallel_config(backend="sequential")
            return sequential  # thread-local: other threads keep their joblib settings
        return contextlib.nullcontext()

    def _sample(
        self, chunk: SourceChunk, good: np.ndarray, outputs: dict[str, np.ndarray]
    ) -> tuple[tuple[int, dict[str, Any], dict[str, Any]], ...]:
        """Evenly spaced scored rows: their input values and outputs, as plain Python values."""
        if self.sample_per_chunk <= 0 or len(good) == 0:
            return ()
        picks = np.unique(np.linspace(0, len(good) - 1, num=min(self.sample_per_chunk, len(good))).astype(np.int64))
        names = [c.name for c in self.features]
        inputs = chunk.table.select(names).take(pa.array(good[picks])).to_pylist()
        sampled = {name: values[picks].tolist() for name, values in outputs.items()}
        return tuple(
            (chunk.start_row + int(good[p]), inputs[i], {name: sampled[name][i] for name in sampled})
            for i, p in enumerate(picks)
        )

    def _key_rejects(self, table: pa.Table) -> dict[int, str]:
        key = self.options.key
        if not key:
            return {}
        if len(key) == 1:
            column = table.column(key[0])
            if column.null_count == 0 and pc.count_distinct(column).as_py() == table.num_rows:
                return {}  # the usual case, decided without leaving Arrow
        frame = table.select(list(key)).to_pandas()
        reasons: dict[int, str] = {}
        missing = frame.isna().any(axis=1).to_numpy()
        for row in np.flatnonzero(missing):
            reasons[int(row)] = f"missing key ({', '.join(key)})."
        repeated = frame.duplicated(keep="first").to_numpy() & ~missing
        for row in np.flatnonzero(repeated):
            reasons[int(row)] = f"duplicate key {tuple(frame.iloc[row])!r} within the same chunk."
        return reasons

    def _output(self, rows: pa.Table, outputs: dict[str, np.ndarray], now: datetime) -> pa.Table:
        n = rows.num_rows
        columns: dict[str, pa.Array | pa.ChunkedArray] = {
            name: rows.column(name) for name in [*self.options.key, *self.options.include]
        }
        prediction = outputs.get(PREDICT)
        if prediction is None:
            prediction = np.empty(0, dtype=self._predict_dtype())
        if prediction.ndim == 1:
            columns["prediction"] = _to_arrow(prediction)
        else:
            flat = prediction.reshape(prediction.shape[0], -1)
            for j in range(flat.shape[1]):
                columns[f"prediction_{j}"] = _to_arrow(flat[:, j])
        if self.options.proba:
            proba = outputs.get(PREDICT_PROBA, np.empty((0, len(self.proba_columns))))
            for j, name in enumerate(self.proba_columns):
                columns[name] = pa.array(np.asarray(proba[:, j], dtype=np.float64))
        # Constant columns from one scalar: converting a list of n datetimes holds the GIL ~0.2 µs a row.
        columns["model"] = pa.repeat(pa.scalar(self.predictor.name, pa.string()), n)
        columns["version"] = pa.repeat(pa.scalar(self.predictor.version, pa.int64()), n)
        columns["run_id"] = pa.repeat(pa.scalar(self.run_id, pa.string()), n)
        columns["scored_at"] = pa.repeat(pa.scalar(now, TIMESTAMP), n)
        return pa.table(columns)

    def _predict_dtype(self) -> Any:
        spec = self.predictor.signature.output(PREDICT)
        try:
            return np.dtype(spec.dtype) if spec is not None else np.float64
        except TypeError:
            return object

    def _rejects(self, index: int, chunk: SourceChunk, reasons: dict[int, str], now: datetime) -> pa.Table:
        if not reasons:
            return REJECTS_SCHEMA.empty_table()
        positions = sorted(reasons)
        originals = chunk.table.take(pa.array(positions)).to_pylist()
        rows = [chunk.start_row + p for p in positions]
        return pa.table(
            {
                "run_id": [self.run_id] * len(positions),
                "chunk": [index] * len(positions),
                "row": rows,
                "reason": [
                    _ROW_IN_MESSAGE.sub(f"at row {r}", reasons[p]) for p, r in zip(positions, rows, strict=True)
                ],
                "values": [orjson.dumps(o, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode() for o in originals],
                "rejected_at": [now] * len(positions),
            },
            schema=REJECTS_SCHEMA,
        )


def _to_arrow(values: np.ndarray) -> pa.Array:
    if values.dtype == object:
        return pa.array(pd.Series(values, dtype=object).where(pd.notna(values), None).tolist())
    return pa.array(values)


def proba_column_names(classes: Sequence[Any]) -> tuple[str, ...]:
    """``proba_<class>`` per class; ``proba_<i>`` for all when a label does not make a clean column name."""
    names = tuple(f"proba_{re.sub(r'[^A-Za-z0-9_]', '_', str(c))}" for c in classes)
    if len(set(names)) != len(names) or not all(SQL_IDENTIFIER_PATTERN.fullmatch(n) for n in names):
        return tuple(f"proba_{i}" for i in range(len(classes)))
    return names
