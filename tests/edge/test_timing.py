"""Timing helpers: repeated inputs and bounded measurement loops."""

from __future__ import annotations

import numpy as np
import pandas as pd

from modelport.edge.timing import BATCH_ROWS, measure, rows


def test_rows_repeats_frames_arrays_and_dicts() -> None:
    frame = pd.DataFrame({"a": [1, 2, 3]})
    assert rows(frame, 7)["a"].tolist() == [1, 2, 3, 1, 2, 3, 1]
    assert rows(np.arange(2), 5).tolist() == [0, 1, 0, 1, 0]
    assert rows({"x": np.arange(3)}, 4)["x"].tolist() == [0, 1, 2, 0]  # type: ignore[index]


def test_measure_counts_calls_and_reports_positive_figures() -> None:
    calls: list[int] = []
    timing = measure(lambda data: calls.append(len(data)), [0], [0] * BATCH_ROWS, repeats=20, batch_repeats=6)
    assert timing.single_repeats == 20
    assert timing.batch_repeats == 6
    assert calls.count(1) == 3 + 20
    assert timing.latency_p99_us >= timing.latency_median_us > 0
    assert timing.throughput_rows_s > 0
