"""Signature compatibility: which changes break the callers of the version being replaced."""

from __future__ import annotations

from modelport.core.types import ColumnSpec, OutputSpec, Signature, TensorSpec
from modelport.governance.compatibility import breaking_changes

LABEL = OutputSpec(name="predict", kind="label", dtype="int64", classes=(0, 1))
PROBA = OutputSpec(name="predict_proba", kind="probabilities", dtype="float64", shape=(-1, 2), classes=(0, 1))


def _tabular(*columns: ColumnSpec, outputs: tuple[OutputSpec, ...] = (LABEL, PROBA)) -> Signature:
    return Signature(kind="tabular", columns=columns, outputs=outputs)


AGE = ColumnSpec(name="age", type="int", dtype="int64")
PLAN = ColumnSpec(name="plan", type="string", dtype="object", nullable=True)


def test_identical_and_widened_signatures_are_compatible() -> None:
    old = _tabular(AGE, PLAN)
    assert breaking_changes(old, old) == []
    wider = _tabular(ColumnSpec(name="age", type="float", dtype="float64", nullable=True), PLAN)
    assert breaking_changes(old, wider) == []
    assert breaking_changes(old, _tabular(PLAN)) == []  # a dropped column is ignored by coercion


def test_new_columns_narrower_types_and_lost_nullability_break() -> None:
    old = _tabular(AGE, PLAN)
    new = _tabular(
        ColumnSpec(name="age", type="string", dtype="object"),
        ColumnSpec(name="plan", type="string", dtype="object", nullable=False),
        ColumnSpec(name="region", type="string", dtype="object"),
    )
    assert breaking_changes(old, new) == [
        "input column 'age' changed type from int to string",
        "input column 'plan' no longer accepts missing values",
        "new required input column 'region'",
    ]


def test_output_changes_break() -> None:
    old = _tabular(AGE)
    regression = OutputSpec(name="predict", kind="regression", dtype="float64")
    assert breaking_changes(old, _tabular(AGE, outputs=(regression,))) == [
        "output 'predict' changed kind from label to regression",
        "output 'predict_proba' removed",
    ]
    three = OutputSpec(name="predict", kind="label", dtype="int64", classes=(0, 1, 2))
    assert breaking_changes(old, _tabular(AGE, outputs=(three, PROBA))) == [
        "output 'predict' changed classes from [0, 1] to [0, 1, 2]"
    ]


def test_tensor_signatures_compare_names_dtypes_and_shapes() -> None:
    image = TensorSpec(name="image", dtype="float32", shape=(-1, 28, 28))
    out = (OutputSpec(name="predict", kind="tensor", dtype="float32", shape=(-1, 10)),)
    old = Signature(kind="tensor", tensors=(image,), outputs=out)
    bigger = Signature(
        kind="tensor", tensors=(TensorSpec(name="image", dtype="float32", shape=(-1, 32, 32)),), outputs=out
    )
    assert breaking_changes(old, old) == []
    assert breaking_changes(old, bigger) == [
        "input tensor 'image' changed from float32[-1, 28, 28] to float32[-1, 32, 32]"
    ]
    assert breaking_changes(old, _tabular(AGE)) == ["input kind changed from tensor to tabular"]
