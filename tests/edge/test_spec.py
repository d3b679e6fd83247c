"""The edge spec: its JSON form, and the feeds it builds from frames, arrays and dicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelport.core.errors import IntegrityError, ValidationError
from modelport.edge.spec import EdgeInput, EdgeSpec

COLUMNS = EdgeSpec(
    layout="columns",
    inputs=(EdgeInput("age", "float32", ("age",)), EdgeInput("plan", "string", ("plan",))),
    task="classifier",
    classes=("no", "yes"),
    label_output="label",
    proba_output="probabilities",
)
MATRIX = EdgeSpec(
    layout="matrix", inputs=(EdgeInput("input", "float64", ("b", "a")),), task="regressor", value_output="y"
)


def test_json_round_trip() -> None:
    assert EdgeSpec.from_json(COLUMNS.to_json()) == COLUMNS
    assert EdgeSpec.from_json(MATRIX.to_json()) == MATRIX


@pytest.mark.parametrize("text", ["not json", '{"format": 99}', '{"format": 1, "layout": "columns"}'])
def test_invalid_json_is_an_integrity_error(text: str) -> None:
    with pytest.raises(IntegrityError, match="not a valid edge spec"):
        EdgeSpec.from_json(text)


def test_column_feed_casts_each_column_and_fills_missing_text() -> None:
    feed = COLUMNS.feed(pd.DataFrame({"plan": ["pro", None], "age": [30, np.nan]}))
    assert feed["age"].dtype == np.float32
    assert feed["age"].shape == (2, 1)
    assert np.isnan(feed["age"][1, 0])
    assert feed["plan"].tolist() == [["pro"], [""]]


def test_matrix_feed_follows_the_spec_order() -> None:
    feed = MATRIX.feed({"a": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0])})
    assert feed["input"].tolist() == [[3.0, 1.0], [4.0, 2.0]]
    assert MATRIX.feed(np.array([[3.0, 1.0]]))["input"].tolist() == [[3.0, 1.0]]


def test_feed_errors_name_what_is_missing() -> None:
    with pytest.raises(ValidationError, match="'plan'"):
        COLUMNS.feed(pd.DataFrame({"age": [1.0]}))
    with pytest.raises(ValidationError, match="has 3 columns; the model takes 2"):
        MATRIX.feed(np.zeros((1, 3)))
    with pytest.raises(ValidationError, match="cannot feed"):
        COLUMNS.feed(np.zeros((1, 2)))


def test_outputs_flatten_single_values() -> None:
    values, proba = MATRIX.outputs({"y": np.array([[1.0], [2.0]])})
    assert values.shape == (2,)
    assert proba is None
