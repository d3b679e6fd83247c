"""Timing a model: single-row latency (median, p99) and the throughput of 1,024-row batches.

Inputs are prepared once, outside the timed calls, so the figures are the model's own cost:
the native adapter's ``predict`` on a one-row input, and ONNX Runtime's ``run`` on a ready feed
(what ``predict.py`` and an embedding application pay). Repeats stop at a count or a time
budget, whichever comes first, so a slow model never stalls an export.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from modelport.bundle.flavors.base import ModelInput

BATCH_ROWS = 1024


@dataclass(frozen=True)
class Timing:
    """Speed of one model.

    Attributes:
        latency_median_us: Median single-row call, microseconds.
        latency_p99_us: 99th percentile single-row call, microseconds.
        throughput_rows_s: Rows per second predicting 1,024-row batches (median batch time).
        single_repeats: Single-row calls timed.
        batch_repeats: Batch calls timed.
    """

    latency_median_us: float
    latency_p99_us: float
    throughput_rows_s: float
    single_repeats: int
    batch_repeats: int


def measure(
    call: Callable[[Any], object],
    one_row: Any,
    batch: Any,
    *,
    repeats: int = 300,
    batch_repeats: int = 20,
    budget_s: float = 2.0,
) -> Timing:
    """Time ``call`` on ``one_row`` (single-row latency) and on ``batch`` (1,024 rows).

    Args:
        call: The prediction call, given a prepared input.
        one_row: A prepared one-row input.
        batch: A prepared 1,024-row input.
        repeats: Most single-row calls timed.
        batch_repeats: Most batch calls timed.
        budget_s: Time budget for each of the two loops (at least 5 calls are always made).
    """
    for _ in range(3):
        call(one_row)
    call(batch)
    singles = _loop(call, one_row, repeats, budget_s)
    batches = _loop(call, batch, batch_repeats, budget_s)
    return Timing(
        latency_median_us=float(np.median(singles) * 1e6),
        latency_p99_us=float(np.percentile(singles, 99) * 1e6),
        throughput_rows_s=float(BATCH_ROWS / max(float(np.median(batches)), 1e-9)),
        single_repeats=len(singles),
        batch_repeats=len(batches),
    )


def _loop(call: Callable[[Any], object], data: Any, repeats: int, budget_s: float) -> list[float]:
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < repeats and (len(times) < 5 or time.perf_counter() < deadline):
        start = time.perf_counter()
        call(data)
        times.append(time.perf_counter() - start)
    return times


def rows(data: ModelInput, count: int) -> ModelInput:
    """``count`` rows of ``data``, repeating it as needed (a DataFrame, an array or a dict of arrays)."""
    if isinstance(data, pd.DataFrame):
        reps = -(-count // max(len(data), 1))
        return pd.concat([data] * reps, ignore_index=True).iloc[:count].reset_index(drop=True)
    if isinstance(data, dict):
        return {k: _tile(np.asarray(v), count) for k, v in data.items()}
    return _tile(np.asarray(data), count)


def _tile(array: np.ndarray, count: int) -> np.ndarray:
    reps = -(-count // max(array.shape[0], 1))
    return np.concatenate([array] * reps)[:count]
