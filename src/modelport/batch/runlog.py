"""Batch traffic in the prediction log, so monitoring sees batch runs as it sees online requests.

A run writes, through the runtime's :class:`~modelport.runtime.predlog.PredictionLogWriter`:

- a bounded sample of scored rows (``kind="prediction"``, inputs and outputs), a few evenly
  spaced rows from each chunk until ``sample_rows`` are logged;
- rejected rows (``status="error"`` with the reason and the original values), at most
  ``max_error_rows`` per run;
- one ``kind="run"`` record at the end, with the row counts as outputs, the run's duration as
  latency, and the error when it failed.

Every record has the run id as ``request_id`` and ``source="batch:<run id>"``. Logging never
blocks or fails the job: the writer drops and counts records when its queue is full.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any, Protocol

import orjson

from modelport.batch.scoring import ScoredChunk
from modelport.runtime.predictor import Predictor
from modelport.runtime.predlog import PredictionRecord, error_fields


class RecordWriter(Protocol):
    """Where records go (a started :class:`~modelport.runtime.predlog.PredictionLogWriter`)."""

    def log(self, record: PredictionRecord) -> bool:
        """Queue one record; never blocks."""
        ...


class RunLog:
    """Writes one run's records to the prediction log.

    Args:
        writer: The prediction-log writer (started and stopped by the caller).
        sample_rows: Most scored rows logged per run attempt.
        max_error_rows: Most rejected rows logged per run attempt.
    """

    def __init__(self, writer: RecordWriter, *, sample_rows: int = 100, max_error_rows: int = 100) -> None:
        self.writer = writer
        self.sample_rows = sample_rows
        self.max_error_rows = max_error_rows
        self._lock = threading.Lock()
        self._sampled = 0
        self._errors = 0

    def _source(self, run_id: str) -> str:
        return f"batch:{run_id}"

    def chunk(self, run_id: str, predictor: Predictor, scored: ScoredChunk) -> None:
        """Log the sample of ``scored`` and its rejected rows, within the run's budgets."""
        with self._lock:
            take = max(0, min(len(scored.sample), self.sample_rows - self._sampled))
            self._sampled += take
            errors = max(0, min(scored.rejects.num_rows, self.max_error_rows - self._errors))
            self._errors += errors
        for row, inputs, outputs in scored.sample[:take]:
            self.writer.log(
                PredictionRecord(
                    model=predictor.name,
                    version=predictor.version,
                    request_id=run_id,
                    row=row,
                    ts=scored.scored_at,
                    source=self._source(run_id),
                    inputs=inputs,
                    outputs=outputs,
                )
            )
        if errors:
            rejects = scored.rejects.slice(0, errors).to_pylist()
            for reject in rejects:
                self.writer.log(
                    PredictionRecord(
                        model=predictor.name,
                        version=predictor.version,
                        request_id=run_id,
                        row=int(reject["row"]),
                        ts=scored.scored_at,
                        source=self._source(run_id),
                        inputs=orjson.loads(reject["values"]),
                        status="error",
                        error_type="ValidationError",
                        error=str(reject["reason"]),
                    )
                )

    def run(
        self,
        run_id: str,
        *,
        model: str,
        version: int | None,
        counts: dict[str, int],
        elapsed_s: float,
        ended_at: datetime,
        error: BaseException | None = None,
    ) -> None:
        """Log the run-level record (``kind="run"``)."""
        fields: dict[str, Any] = {}
        if error is not None:
            error_type, message = error_fields(error)
            fields = {"status": "error", "error_type": error_type, "error": message}
        self.writer.log(
            PredictionRecord(
                model=model,
                version=version,
                request_id=run_id,
                ts=ended_at,
                source=self._source(run_id),
                kind="run",
                outputs=dict(counts),
                latency_ms=elapsed_s * 1000.0,
                **fields,
            )
        )
