"""Input coercion: every accepted input form, every cast, every refusal with a message that teaches."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from modelport.core.errors import Unsupported, ValidationError
from modelport.core.types import ColumnSpec, Signature, TensorSpec
from modelport.runtime.coercion import CAST_HINT, Coercer, ExtraColumnsWarning, coerce_input

MIXED = Signature(
    kind="tabular",
    columns=(
        ColumnSpec(name="age", type="int", dtype="int64"),
        ColumnSpec(name="income", type="float", dtype="float64", nullable=True),
        ColumnSpec(name="city", type="string", dtype="str", categories=("Lima", "Oslo")),
        ColumnSpec(name="member", type="bool", dtype="bool"),
        ColumnSpec(name="when", type="datetime", dtype="datetime64[ns]"),
    ),
)
RECORDS: list[dict[str, Any]] = [
    {"age": 31, "income": 1200.5, "city": "Oslo", "member": True, "when": "2024-01-01"},
    {"age": 45, "income": None, "city": "Lima", "member": False, "when": "2024-02-03T10:30:00"},
    {"age": 52, "income": 80.0, "city": "Oslo", "member": True, "when": "2024-03-04"},
]
NUMERIC = Signature(
    kind="tabular",
    columns=(
        ColumnSpec(name="a", type="float", dtype="float64"),
        ColumnSpec(name="b", type="int", dtype="int64"),
        ColumnSpec(name="c", type="float", dtype="float64", nullable=True),
    ),
)


def expected_mixed() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": np.array([31, 45, 52], dtype=np.int64),
            "income": [1200.5, np.nan, 80.0],
            "city": ["Oslo", "Lima", "Oslo"],
            "member": [True, False, True],
            "when": pd.to_datetime(["2024-01-01", "2024-02-03 10:30:00", "2024-03-04"], format="ISO8601").as_unit("ns"),
        }
    )


def frame_of(data: Any, signature: Signature = MIXED) -> pd.DataFrame:
    out = Coercer(signature, "frame").coerce(data)
    assert isinstance(out, pd.DataFrame)
    return out


# --- accepted input forms --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(RECORDS, id="records"),
        pytest.param(pd.DataFrame(RECORDS), id="dataframe"),
        pytest.param({k: [r[k] for r in RECORDS] for k in RECORDS[0]}, id="dict-of-lists"),
        pytest.param({k: np.array([r[k] for r in RECORDS], dtype=object) for k in RECORDS[0]}, id="dict-of-arrays"),
        pytest.param([list(r.values()) for r in RECORDS], id="list-of-rows"),
        pytest.param(np.array([list(r.values()) for r in RECORDS], dtype=object), id="object-ndarray"),
        pytest.param(pa.Table.from_pylist(RECORDS), id="arrow-table"),
    ],
)
def test_every_tabular_form_gives_the_same_frame(data: Any) -> None:
    pd.testing.assert_frame_equal(frame_of(data), expected_mixed(), check_dtype=False)
    out = frame_of(data)
    assert list(out.columns) == list(MIXED.column_names)
    assert out["age"].dtype == np.int64
    assert out["member"].dtype == bool
    assert out["when"].dtype == "datetime64[ns]"


def test_single_record_forms() -> None:
    one = frame_of(RECORDS[0])
    assert len(one) == 1
    assert one.loc[0, "city"] == "Oslo"
    series = frame_of(pd.Series(RECORDS[2]))
    assert series.loc[0, "age"] == 52


def test_one_row_as_flat_array_and_one_column_models() -> None:
    coercer = Coercer(NUMERIC, "array")
    np.testing.assert_array_equal(coercer.coerce(np.array([1.5, 2, 3])), [[1.5, 2.0, 3.0]])
    single = Signature(kind="tabular", columns=(ColumnSpec(name="x", type="float", dtype="float64"),))
    np.testing.assert_array_equal(Coercer(single, "array").coerce([1, 2, 3]), [[1.0], [2.0], [3.0]])
    np.testing.assert_array_equal(Coercer(single, "array").coerce([{"x": 4}]), [[4.0]])


def test_column_of_shape_n_by_1_is_accepted() -> None:
    data = {"a": np.array([[1.0], [2.0]]), "b": [1, 2], "c": [None, 3.0]}
    out = Coercer(NUMERIC, "array").coerce(data)
    np.testing.assert_array_equal(out, [[1.0, 1.0, np.nan], [2.0, 2.0, 3.0]])


# --- output formats --------------------------------------------------------------------------------


def test_array_format_is_float_2d_in_signature_order() -> None:
    out = Coercer(NUMERIC, "array").coerce([{"c": 3, "b": 2, "a": 1}])
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[1.0, 2.0, 3.0]])


def test_array_format_float32_when_every_column_is_float32() -> None:
    sig = Signature(kind="tabular", columns=tuple(ColumnSpec(name=n, type="float", dtype="float32") for n in "xy"))
    out = Coercer(sig, "array").coerce([[1, 2]])
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.float32


def test_arrays_format_is_n_by_1_per_column_with_column_dtype() -> None:
    out = Coercer(MIXED, "arrays").coerce(RECORDS)
    assert isinstance(out, dict)
    assert list(out) == list(MIXED.column_names)
    assert all(v.shape == (3, 1) for v in out.values())
    assert out["age"].dtype == np.int64
    assert out["city"].dtype == object
    assert out["city"][0, 0] == "Oslo"
    assert out["member"].dtype == bool


def test_array_format_with_text_and_datetime_columns() -> None:
    out = Coercer(MIXED, "array").coerce(RECORDS)
    assert isinstance(out, np.ndarray)
    assert out.shape == (3, 5)
    assert out.dtype == object
    assert out[0, 2] == "Oslo"
    assert out[0, 4] == pd.Timestamp("2024-01-01").value  # datetimes as ns since the epoch


def test_frame_keeps_pandas_dtypes_recorded_in_the_signature() -> None:
    sig = Signature(
        kind="tabular",
        columns=(
            ColumnSpec(name="n", type="int", dtype="Int64", nullable=True),
            ColumnSpec(name="flag", type="bool", dtype="boolean", nullable=True),
            ColumnSpec(name="plan", type="category", dtype="category", categories=("basic", "pro")),
            ColumnSpec(name="note", type="string", dtype="object"),
            ColumnSpec(name="at", type="datetime", dtype="datetime64[ns, UTC]"),
        ),
    )
    out = frame_of(
        [
            {"n": None, "flag": None, "plan": "pro", "note": "x", "at": "2024-01-01T02:00:00+02:00"},
            {"n": 3, "flag": "false", "plan": "enterprise", "note": 7, "at": "2024-01-01T00:00:00"},
        ],
        sig,
    )
    assert str(out["n"].dtype) == "Int64"
    assert out["n"].isna().tolist() == [True, False]
    assert str(out["flag"].dtype) == "boolean"
    assert out["flag"].tolist()[1] is False
    assert isinstance(out["plan"].dtype, pd.CategoricalDtype)
    # Known categories keep their codes; an unseen value is kept, appended after them.
    assert list(out["plan"].cat.categories) == ["basic", "pro", "enterprise"]
    assert out["note"].dtype == object
    assert out["note"].tolist() == ["x", "7"]
    assert str(out["at"].dtype) == "datetime64[ns, UTC]"
    assert out["at"].tolist() == [pd.Timestamp("2024-01-01", tz="UTC")] * 2


# --- casts -----------------------------------------------------------------------------------------


def test_ints_from_integral_floats_and_numeric_text() -> None:
    out = Coercer(NUMERIC, "frame").coerce({"a": [1], "b": [4.0], "c": [None]})
    assert isinstance(out, pd.DataFrame)
    assert out["b"].tolist() == [4]
    assert out["b"].dtype == np.int64
    out = Coercer(NUMERIC, "frame").coerce({"a": ["1.5"], "b": ["45"], "c": [1]})
    assert isinstance(out, pd.DataFrame)
    assert out["a"].tolist() == [1.5]
    assert out["b"].tolist() == [45]


@pytest.mark.parametrize("form", ["records", "rows", "columns"])
def test_big_ints_are_exact(form: str) -> None:
    sig = Signature(
        kind="tabular",
        columns=(ColumnSpec(name="id", type="int", dtype="int64"), ColumnSpec(name="x", type="float", dtype="float64")),
    )
    big = 2**62 + 1
    data: Any = {"records": [{"id": big, "x": 1.0}], "rows": [[big, 1.0]], "columns": {"id": [big], "x": [1.0]}}[form]
    out = Coercer(sig, "arrays").coerce(data)
    assert isinstance(out, dict)
    assert int(out["id"][0, 0]) == big


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (0, False), (1.0, True), ("true", True), ("FALSE", False), ("1", True), (np.True_, True)],
)
def test_bools_from_01_and_text(value: Any, expected: bool) -> None:
    out = frame_of([{**RECORDS[0], "member": value}])
    assert out["member"].tolist() == [expected]


def test_bool_from_numeric_array() -> None:
    sig = Signature(kind="tabular", columns=(ColumnSpec(name="f", type="bool", dtype="bool"),))
    out = Coercer(sig, "arrays").coerce({"f": np.array([0, 1, 1])})
    assert isinstance(out, dict)
    assert out["f"].ravel().tolist() == [False, True, True]
    with pytest.raises(ValidationError, match=r"column 'f': expected bool, got int \(2\) at row 1"):
        Coercer(sig, "arrays").coerce({"f": np.array([0, 2])})


def test_strings_from_numbers_and_bytes() -> None:
    out = frame_of([{**RECORDS[0], "city": 12}, {**RECORDS[0], "city": b"Lima"}])
    assert out["city"].tolist() == ["12", "Lima"]


def test_nullable_string_column_keeps_missing_values() -> None:
    sig = Signature(kind="tabular", columns=(ColumnSpec(name="s", type="string", dtype="object", nullable=True),))
    out = Coercer(sig, "arrays").coerce({"s": ["a", None, 3]})
    assert isinstance(out, dict)
    assert out["s"][0, 0] == "a"
    assert out["s"][2, 0] == "3"
    assert pd.isna(out["s"][1, 0])


def test_datetimes_from_objects_and_numpy() -> None:
    ts = pd.Timestamp("2024-05-06 07:08:09")
    out = frame_of([{**RECORDS[0], "when": ts.to_pydatetime()}, {**RECORDS[0], "when": np.datetime64(ts)}])
    assert out["when"].tolist() == [ts, ts]
    out = frame_of([{**RECORDS[0], "when": "06/05/2024"}])  # not ISO: parsed leniently
    assert out["when"].notna().all()


def test_numeric_dataframe_with_nullable_extension_dtype() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": pd.array([1, 2], dtype="Int64"), "c": pd.array([None, 2.5])})
    out = Coercer(NUMERIC, "array").coerce(frame)
    np.testing.assert_array_equal(out, [[1.0, 1.0, np.nan], [2.0, 2.0, 2.5]])


def test_int_column_range_is_checked() -> None:
    sig = Signature(kind="tabular", columns=(ColumnSpec(name="i", type="int", dtype="int8"),))
    with pytest.raises(ValidationError, match=r"column 'i': expected int within int8, got int \(300\) at row 1"):
        Coercer(sig, "arrays").coerce({"i": np.array([1, 300])})


# --- refusals --------------------------------------------------------------------------------------


def with_value(column: str, value: Any, row: int = 1) -> list[dict[str, Any]]:
    records = [dict(r) for r in RECORDS]
    records[row][column] = value
    return records


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (with_value("age", "forty", 2), r"column 'age': expected int, got str \('forty'\) at row 2\."),
        (with_value("age", 2.5), r"column 'age': expected int, got float \(2.5\) at row 1\."),
        (with_value("age", None), r"column 'age': expected int, got a missing value .* at row 1"),
        (with_value("age", [1, 2]), r"column 'age': expected int, got list \(\[1, 2\]\) at row 1"),
        (with_value("income", "lots"), r"column 'income': expected float, got str \('lots'\) at row 1"),
        (with_value("income", float("inf"), 0), r"column 'income': expected a finite float, got inf at row 0"),
        (with_value("income", -np.inf, 2), r"column 'income': expected a finite float, got -inf at row 2"),
        (with_value("member", "maybe"), r"column 'member': expected bool, got str \('maybe'\) at row 1"),
        (with_value("member", None), r"column 'member': expected bool, got a missing value"),
        (with_value("city", None, 0), r"column 'city': expected string, got a missing value \(None\) at row 0"),
        (with_value("city", {"x": 1}), r"column 'city': expected string, got dict"),
        (with_value("when", "not a date"), r"column 'when': expected datetime, got str \('not a date'\) at row 1"),
        (with_value("when", 1700000000), r"column 'when': expected datetime, got int \(1700000000\) at row 1"),
        (with_value("when", None), r"column 'when': expected datetime, got a missing value"),
    ],
)
def test_bad_values_name_column_row_and_expectation(data: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        frame_of(data)
    assert info.value.hint


def test_cast_error_hint_and_full_message() -> None:
    with pytest.raises(ValidationError) as info:
        frame_of(with_value("age", "forty", 3) if len(RECORDS) > 3 else with_value("age", "forty", 2))
    assert info.value.hint == CAST_HINT
    assert str(info.value) == (
        "column 'age': expected int, got str ('forty') at row 2. "
        "Hint: Cast the column or re-save the bundle with a new signature."
    )


def test_nan_in_a_non_nullable_float_column_is_refused_but_allowed_where_nullable() -> None:
    coercer = Coercer(NUMERIC, "array")
    with pytest.raises(ValidationError, match=r"column 'a': expected float, got a missing value \(nan\) at row 1"):
        coercer.coerce([[1, 1, 1], [np.nan, 1, 1]])
    out = coercer.coerce([[1, 1, np.nan]])
    assert np.isnan(out[0, 2])


def test_refusals_from_the_fast_numeric_path_name_the_column() -> None:
    coercer = Coercer(NUMERIC, "array")
    with pytest.raises(ValidationError, match=r"column 'b': expected int, got float \(1.5\) at row 0"):
        coercer.coerce(np.array([[1.0, 1.5, 1.0]]))
    with pytest.raises(ValidationError, match=r"column 'c': expected a finite float, got inf at row 0"):
        coercer.coerce(np.array([[1.0, 1.0, np.inf]]))
    with pytest.raises(ValidationError, match=r"column 'a': expected float, got str \('x'\) at row 1"):
        coercer.coerce([[1, 1, 1], ["x", 1, 1]])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([{"a": 1, "b": 2}], r"Missing column 'c'"),
        ({"a": [1], "b": [1]}, r"Missing column 'c'"),
        (pd.DataFrame({"a": [1.0]}), r"Missing column 'b' \(and 1 more\)"),
        ([{"a": 1, "b": 1, "c": 1}, {"a": 1, "b": 1}], r"Missing column 'c' in row 1"),
        ([[1, 2, 3], [1, 2]], r"Row 1 has 2 values; the model takes 3"),
        ([[1, 2, 3], 5], r"Row 1 has 1 values; the model takes 3"),
        (np.zeros((2, 4)), r"Input array has shape \(2, 4\); the model takes 3 column\(s\) per row"),
        (np.zeros((2, 3, 1)), r"Input array has shape \(2, 3, 1\)"),
        (np.zeros(5), r"Input array has shape \(5,\)"),
        ({"a": [1, 2], "b": [1], "c": [1, 2]}, r"column 'b' has 1 values but column 'a' has 2"),
        ({"a": np.zeros((2, 2)), "b": [1, 2], "c": [1, 2]}, r"column 'a' has shape \(2, 2\)"),
        ([{"a": 1, "b": 1, "c": 1}, [1, 1, 1]], r"Row 1 is a list, not a record"),
        ([], r"The input has no rows"),
        (np.zeros((0, 3)), r"The input has no rows"),
        (pd.DataFrame({"a": [], "b": [], "c": []}), r"The input has no rows"),
        ("a,b,c", r"Input of type str is not supported"),
    ],
)
def test_shape_and_column_refusals(data: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        Coercer(NUMERIC, "array").coerce(data)
    assert info.value.hint


def test_extra_columns_are_ignored_with_a_warning() -> None:
    coercer = Coercer(NUMERIC, "frame")
    with pytest.warns(ExtraColumnsWarning, match=r"Ignoring 1 column\(s\) the model does not use: 'secret'"):
        out = coercer.coerce([{"a": 1, "b": 2, "c": 3, "secret": "x"}])
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["a", "b", "c"]
    with pytest.warns(ExtraColumnsWarning):
        coercer.coerce(pd.DataFrame({"z": [0], "c": [3.0], "b": [2], "a": [1.0]}))


def test_no_warning_without_extra_columns() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Coercer(NUMERIC, "frame").coerce([{"a": 1, "b": 2, "c": 3}])


# --- tensors ---------------------------------------------------------------------------------------

IMAGE = Signature(kind="tensor", tensors=(TensorSpec(name="input", dtype="float32", shape=(-1, 2, 2)),))
TWO = Signature(
    kind="tensor",
    tensors=(
        TensorSpec(name="ids", dtype="int64", shape=(-1, 3)),
        TensorSpec(name="mask", dtype="bool", shape=(-1, 3)),
    ),
)


def test_tensor_cast_and_single_sample_gets_a_batch_dimension() -> None:
    out = Coercer(IMAGE, "array").coerce([[1, 2], [3, 4]])
    assert isinstance(out, np.ndarray)
    assert out.shape == (1, 2, 2)
    assert out.dtype == np.float32
    out = Coercer(IMAGE, "array").coerce(np.zeros((5, 2, 2), dtype=np.float64))
    assert isinstance(out, np.ndarray)
    assert out.shape == (5, 2, 2)
    assert out.dtype == np.float32


def test_tensor_dict_and_formats() -> None:
    data = {"ids": [[1.0, 2.0, 3.0]], "mask": [[1, 0, 1]]}
    out = Coercer(TWO, "arrays").coerce(data)
    assert isinstance(out, dict)
    assert out["ids"].dtype == np.int64
    assert out["mask"].dtype == bool
    assert out["mask"].tolist() == [[True, False, True]]
    with pytest.raises(Unsupported, match="cannot take 2 tensors"):
        Coercer(TWO, "array").coerce(data)
    frame = Coercer(IMAGE, "frame").coerce(np.ones((3, 2, 2)))
    assert isinstance(frame, pd.DataFrame)
    assert frame.shape == (3, 4)
    flat = Signature(kind="tensor", tensors=(TensorSpec(name="input", dtype="float64", shape=(-1, 2)),))
    np.testing.assert_array_equal(Coercer(flat, "array").coerce(pd.DataFrame({"p": [1], "q": [2]})), [[1.0, 2.0]])


def test_string_tensor() -> None:
    sig = Signature(kind="tensor", tensors=(TensorSpec(name="text", dtype="str", shape=(-1,)),))
    out = Coercer(sig, "array").coerce(["a", "b"])
    assert isinstance(out, np.ndarray)
    assert out.dtype == object
    with pytest.raises(ValidationError, match="tensor 'text': expected string"):
        Coercer(sig, "array").coerce([1.0, 2.0])


@pytest.mark.parametrize(
    ("signature", "data", "message"),
    [
        (IMAGE, np.zeros((2, 3, 2)), r"tensor 'input': expected shape \(N, 2, 2\), got \(2, 3, 2\)"),
        (IMAGE, np.zeros(4), r"tensor 'input': expected shape \(N, 2, 2\), got \(4,\)"),
        (IMAGE, [[[1, 2], [3]]], r"tensor 'input': ragged nested lists"),
        (IMAGE, [[[1, 2], [3, np.inf]]], r"expected finite float32, got float \(inf\) at index \(0, 1, 1\)"),
        (IMAGE, [[["a", 2], [3, 4]]], r"tensor 'input': expected float32, got str \('a'\) at index \(0, 0, 0\)"),
        (
            TWO,
            {"ids": [[1, 2, 3.5]], "mask": [[1, 0, 1]]},
            r"'ids': expected int64, got float \(3.5\) at index \(0, 2\)",
        ),
        (TWO, {"ids": [[1, 2, np.nan]], "mask": [[1, 0, 1]]}, r"tensor 'ids': expected finite int64"),
        (TWO, {"ids": [[1, 2, 3]], "mask": [[1, 0, 2]]}, r"tensor 'mask': expected bool \(0 or 1\), got int \(2\)"),
        (TWO, {"ids": [[1, 2, 3]]}, r"Missing input tensor 'mask'"),
        (TWO, {"ids": [[1, 2, 3]], "mask": [[1, 0, 1], [1, 1, 1]]}, r"Tensors have different batch sizes"),
        (TWO, np.zeros((1, 3)), r"The model takes 2 tensors \(ids, mask\); got one ndarray"),
        (IMAGE, np.zeros((0, 2, 2)), r"The input has no rows"),
    ],
)
def test_tensor_refusals(signature: Signature, data: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        Coercer(signature, "arrays").coerce(data)
    assert info.value.hint


def test_tensor_int_range_and_extra_tensor() -> None:
    sig = Signature(kind="tensor", tensors=(TensorSpec(name="x", dtype="uint8", shape=(-1,)),))
    with pytest.raises(ValidationError, match=r"expected uint8 within range, got int \(256\) at index \(1,\)"):
        Coercer(sig, "array").coerce(np.array([1, 256]))
    with pytest.warns(ExtraColumnsWarning, match="'extra'"):
        Coercer(sig, "arrays").coerce({"x": [1], "extra": [2]})


def test_nan_is_allowed_in_float_tensors() -> None:
    out = Coercer(IMAGE, "array").coerce(np.full((1, 2, 2), np.nan))
    assert isinstance(out, np.ndarray)
    assert np.isnan(out).all()


def test_coerce_input_one_off() -> None:
    out = coerce_input([{"a": 1, "b": 2, "c": 3}], NUMERIC, "array")
    np.testing.assert_array_equal(out, [[1.0, 2.0, 3.0]])


# --- properties ------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 6), st.just(3)),
        elements=st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: float(round(v))),
    )
)
def test_every_form_of_the_same_numbers_coerces_identically(matrix: np.ndarray) -> None:
    coercer = Coercer(NUMERIC, "array")
    names = NUMERIC.column_names
    records = [dict(zip(names, row, strict=True)) for row in matrix.tolist()]
    columns = {n: matrix[:, j].tolist() for j, n in enumerate(names)}
    reference = coercer.coerce(matrix)
    for data in (records, columns, matrix.tolist(), pd.DataFrame(matrix, columns=list(names))):
        np.testing.assert_array_equal(coercer.coerce(data), reference)
