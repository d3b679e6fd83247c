"""Frozen value types shared by every layer: the input/output signature of a model.

A signature is either *tabular* (named, typed columns: what a DataFrame-trained model takes) or
*tensor* (named arrays with a dtype and a shape, ``-1`` for a free dimension).
"""

from __future__ import annotations

from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict

ColumnType = Literal["float", "int", "bool", "string", "category", "datetime"]
OutputKind = Literal["label", "probabilities", "regression", "tensor"]
SignatureKind = Literal["tabular", "tensor"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ColumnSpec(_Frozen):
    """One input column of a tabular model.

    Attributes:
        name: Column name as the model saw it in training.
        type: Logical type; ``dtype`` is the exact numpy/pandas dtype name it is coerced to.
        dtype: e.g. ``float64``, ``int64``, ``bool``, ``object``, ``datetime64[ns]``.
        nullable: Whether missing values (None/NaN) are accepted.
        categories: Observed categories for ``string``/``category`` columns (informational:
            unseen values are accepted and left to the model's own handling).
    """

    name: str
    type: ColumnType
    dtype: str
    nullable: bool = False
    categories: tuple[str, ...] | None = None


class TensorSpec(_Frozen):
    """One input tensor: dtype and shape, where ``-1`` marks a free dimension (the batch, usually)."""

    name: str
    dtype: str
    shape: tuple[int, ...]


class OutputSpec(_Frozen):
    """One output of a model.

    ``predict`` is always present; ``predict_proba`` exists for classifiers that have it.
    """

    name: str
    kind: OutputKind
    dtype: str
    shape: tuple[int, ...] = (-1,)
    classes: tuple[str | int | float | bool, ...] | None = None


class Signature(_Frozen):
    """What a model takes and returns."""

    kind: SignatureKind
    columns: tuple[ColumnSpec, ...] = ()
    tensors: tuple[TensorSpec, ...] = ()
    outputs: tuple[OutputSpec, ...] = ()

    @cached_property
    def column_names(self) -> tuple[str, ...]:
        """Input column names in signature order (empty for tensor signatures)."""
        return tuple(c.name for c in self.columns)

    @cached_property
    def column_set(self) -> frozenset[str]:
        """Input column names, for membership tests on hot paths."""
        return frozenset(self.column_names)

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of the outputs, e.g. ``("predict", "predict_proba")``."""
        return tuple(o.name for o in self.outputs)

    def output(self, name: str) -> OutputSpec | None:
        """The output called ``name``, or ``None``."""
        return next((o for o in self.outputs if o.name == name), None)

    @property
    def classes(self) -> tuple[str | int | float | bool, ...] | None:
        """Class labels of a classifier, from its ``predict_proba`` output when it has one."""
        proba = self.output("predict_proba")
        if proba is not None and proba.classes is not None:
            return proba.classes
        label = self.output("predict")
        return label.classes if label is not None else None
