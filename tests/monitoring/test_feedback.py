"""Ground truth: validation that names the bad record, normalised labels, atomic Parquet files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from modelport.core.errors import InvalidName, ValidationError
from modelport.monitoring.feedback import FeedbackRecord, FeedbackStore, normalise_label, parse_feedback


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, ("1", 1.0)),
        (1.0, ("1", 1.0)),
        ("1", ("1", 1.0)),
        (" 1.50 ", ("1.5", 1.5)),
        (True, ("true", 1.0)),
        ("False", ("false", None)),
        ("spam", ("spam", None)),
        (np.int64(3), ("3", 3.0)),
        ("nan", ("nan", None)),
    ],
)
def test_labels_are_normalised(value: object, expected: tuple[str, float | None]) -> None:
    assert normalise_label(value) == expected


@pytest.mark.parametrize("value", [float("nan"), "", [1], None])
def test_bad_labels_are_refused(value: object) -> None:
    with pytest.raises(ValidationError):
        normalise_label(value)


def test_parse_feedback_accepts_ids_rows_and_keys() -> None:
    records = parse_feedback(
        [{"request_id": "r1", "label": 1}, {"request_id": "r2", "row": 3, "label": "no"}, {"key": 17, "label": 0.5}],
        key_column="customer_id",
    )
    assert records == [
        FeedbackRecord(key="r1", label=1),
        FeedbackRecord(key="r2", label="no", row=3),
        FeedbackRecord(key="17", label=0.5, key_kind="key", key_column="customer_id"),
    ]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"label": 1}, "exactly one of 'request_id' or 'key'"),
        ({"request_id": "r", "key": "k", "label": 1}, "exactly one of"),
        ({"request_id": "r"}, "has no 'label'"),
        ({"key": "k", "label": 1}, "no key column"),
        ({"request_id": ["r"], "label": 1}, "key of type list"),
        ({"request_id": "r", "row": -1, "label": 1}, "invalid 'row'"),
        ("r1", "not an object"),
    ],
)
def test_bad_feedback_names_the_record(item: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        parse_feedback([{"request_id": "ok", "label": 1}, item])  # type: ignore[list-item]
    assert "record 1" in info.value.message
    assert info.value.hint


def test_store_writes_one_parquet_file_per_call(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path)
    assert not store.has_feedback("churn")
    when = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    receipt = store.add("churn", parse_feedback([{"request_id": "r1", "label": True}]), received_at=when)
    assert receipt.accepted == 1
    assert receipt.to_dict() == {"model": "churn", "accepted": 1}
    assert receipt.path is not None
    assert receipt.path.parent == tmp_path / "model=churn" / "date=2024-05-01"
    table = pq.read_table(receipt.path).to_pylist()
    assert table == [
        {
            "received_at": when,
            "model": "churn",
            "key_kind": "request_id",
            "key_column": None,
            "key": "r1",
            "row": None,
            "label": "true",
            "value": 1.0,
        }
    ]
    assert store.has_feedback("churn")
    assert not list(tmp_path.rglob("*.tmp"))
    assert store.add("churn", []).accepted == 0
    with pytest.raises(InvalidName):
        store.add("../x", [])


def test_add_frame_reads_a_labels_file(tmp_path: Path) -> None:
    frame = pd.DataFrame({"customer_id": pd.array([17, 18, None], dtype="Int64"), "churned": ["yes", None, "no"]})
    receipt = FeedbackStore(tmp_path).add_frame("churn", frame, key="customer_id", label="churned")
    assert receipt.accepted == 1  # rows without a key or a label are skipped
    with pytest.raises(ValidationError, match="no column 'label'") as info:
        FeedbackStore(tmp_path).add_frame("churn", frame, key="customer_id")
    assert "--label" in (info.value.hint or "")
    by_id = FeedbackStore(tmp_path).add_frame(
        "churn",
        pd.DataFrame({"request_id": ["a", "b"], "row": [0, 3], "label": [1, 0]}),
        key="request_id",
        by_request_id=True,
    )
    assert by_id.accepted == 2
    assert by_id.path is not None
    assert pq.read_table(by_id.path).column("row").to_pylist() == [0, 3]
