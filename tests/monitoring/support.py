"""Shared helpers of the monitoring tests: reference data, a tiny model, and logged traffic.

Traffic is written through the real :class:`~modelport.runtime.predlog.PredictionLogWriter`, so
every reader is tested on the files the server and batch jobs produce.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelport.bundle.reference import compute_reference
from modelport.core.types import ColumnSpec, OutputSpec, Signature
from modelport.runtime.predlog import PredictionLogWriter, PredictionRecord

PLANS = ("basic", "plus", "pro")
PLAN_SHARES = (0.5, 0.3, 0.2)

SIGNATURE = Signature(
    kind="tabular",
    columns=(
        ColumnSpec(name="age", type="float", dtype="float64"),
        ColumnSpec(name="income", type="float", dtype="float64", nullable=True),
        ColumnSpec(name="visits", type="int", dtype="int64"),
        ColumnSpec(name="plan", type="string", dtype="object"),
    ),
    outputs=(
        OutputSpec(name="predict", kind="label", dtype="int64", classes=(0, 1)),
        OutputSpec(name="predict_proba", kind="probabilities", dtype="float64", shape=(-1, 2), classes=(0, 1)),
    ),
)


def features(
    n: int, rng: np.random.Generator, *, age_shift: float = 0.0, plan_shares: Sequence[float] = PLAN_SHARES
) -> pd.DataFrame:
    """``n`` rows of the reference distribution (optionally with ``age`` shifted by ``age_shift`` years)."""
    income = rng.lognormal(10.5, 0.4, size=n)
    income[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "age": rng.normal(40.0, 10.0, size=n) + age_shift,
            "income": income,
            "visits": rng.poisson(3.0, size=n).astype("int64"),
            "plan": rng.choice(np.array(PLANS, dtype=object), p=list(plan_shares), size=n),
        }
    )


def score(frame: pd.DataFrame) -> np.ndarray:
    """A fixed "model": probability of churn from age and visits."""
    z = (frame["age"].to_numpy() - 40.0) / 10.0 - 0.3 * (frame["visits"].to_numpy() - 3.0)
    return 1.0 / (1.0 + np.exp(-z))


def reference(n: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Reference statistics of ``n`` rows of the reference distribution, with the model's predictions."""
    frame = features(n, np.random.default_rng(seed))
    proba = score(frame)
    predictions = (proba > 0.5).astype("int64")
    return compute_reference(
        frame, SIGNATURE, predictions=predictions, probabilities=np.column_stack([1 - proba, proba])
    )


@dataclass(frozen=True)
class Logged:
    """What :func:`log_traffic` wrote: the frame, predictions and request ids, row by row."""

    frame: pd.DataFrame
    proba: np.ndarray
    predictions: np.ndarray
    request_ids: list[str]
    times: list[datetime]


def log_traffic(
    directory: Path,
    frame: pd.DataFrame,
    *,
    model: str = "churn",
    version: int = 1,
    start: datetime | None = None,
    span: timedelta = timedelta(hours=1),
    route: str = "primary",
    error_every: int = 0,
    latency_ms: float = 8.0,
    seed: int = 0,
    prefix: str = "",
    drop_inputs: Sequence[str] = (),
) -> Logged:
    """Log one single-row request per row of ``frame``, spread evenly over ``span`` from ``start``."""
    rng = np.random.default_rng(seed)
    begin = start or datetime.now(UTC) - span
    step = span / max(len(frame), 1)
    proba = score(frame)
    predictions = (proba > 0.5).astype("int64")
    records: list[PredictionRecord] = []
    ids, times = [], []
    rows = frame.drop(columns=list(drop_inputs)).to_dict("records")
    for i, row in enumerate(rows):
        ts = begin + step * i
        request_id = f"{prefix}{model}-{version}-{i}"
        ids.append(request_id)
        times.append(ts)
        latency = float(rng.gamma(4.0, latency_ms / 4.0))
        if error_every and i % error_every == error_every - 1:
            records.append(
                PredictionRecord(
                    model=model, version=version, request_id=request_id, ts=ts, route=route, inputs=row,
                    latency_ms=latency, status="error", error_type="ValidationError", error="bad input",
                )
            )  # fmt: skip
            continue
        records.append(
            PredictionRecord(
                model=model, version=version, request_id=request_id, ts=ts, route=route, inputs=row,
                outputs={"predict": int(predictions[i]), "predict_proba": [1 - float(proba[i]), float(proba[i])]},
                latency_ms=latency,
            )
        )  # fmt: skip
    write_records(directory, records)
    return Logged(frame=frame, proba=proba, predictions=predictions, request_ids=ids, times=times)


def write_records(directory: Path, records: Iterable[PredictionRecord]) -> None:
    """Write ``records`` with the real writer and wait until every file is in place."""
    batch = list(records)
    writer = PredictionLogWriter(directory, max_queue=max(len(batch), 1), flush_interval_s=0.05)
    writer.start()
    try:
        accepted = writer.log_many(batch)
        assert accepted == len(batch), f"the writer dropped {len(batch) - accepted} records"
    finally:
        writer.stop()
    assert writer.dropped == 0
