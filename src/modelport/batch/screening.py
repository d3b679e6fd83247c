"""Score a chunk row by row where it must: find the rows the model cannot take, score the rest.

The fast path scores the whole chunk in one call. When the Predictor refuses it
(:class:`~modelport.core.errors.ValidationError`: an uncastable value, a missing value where the
signature forbids one, an infinity, a category the model rejects), the bad rows are isolated
without giving up speed: vectorised checks that mirror the runtime's coercion rules flag suspect
rows, each suspect is confirmed by coercing it alone (so its reason is the runtime's own message),
and whatever still fails is found by bisection, scoring the good halves as it goes. Only the
Predictor decides what is valid; the checks here only make the search fast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from modelport.core.errors import ValidationError
from modelport.core.types import ColumnSpec
from modelport.runtime.predictor import Predictor

_BOOL_TEXT = frozenset({"true", "false", "1", "0", "1.0", "0.0"})


@dataclass(frozen=True)
class Screened:
    """The outcome of scoring one chunk.

    Attributes:
        rows: Positions (in the chunk) of the rows that were scored, ascending.
        outputs: Output name → values, one per scored row, in ``rows`` order.
        rejected: ``(position, reason)`` of every row the model could not take, ascending.
    """

    rows: np.ndarray
    outputs: dict[str, np.ndarray] = field(hash=False)
    rejected: list[tuple[int, str]] = field(hash=False)


def prepare_inputs(table: pa.Table, columns: Sequence[ColumnSpec]) -> pa.Table:
    """The signature's columns of ``table``, with text holding numbers cast to float where it can."""
    prepared = table.select([c.name for c in columns])
    for spec in columns:
        column = prepared.column(spec.name)
        if spec.type in ("float", "int") and (pa.types.is_string(column.type) or pa.types.is_decimal(column.type)):
            try:
                cast = pc.cast(column, pa.float64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
            prepared = prepared.set_column(prepared.schema.get_field_index(spec.name), spec.name, cast)
    return prepared


def screen(predictor: Predictor, inputs: pa.Table, outputs: Sequence[str]) -> Screened:
    """Score ``inputs`` (a prepared chunk), isolating the rows the Predictor refuses."""
    everything = np.arange(inputs.num_rows)

    def attempt(rows: np.ndarray) -> dict[str, np.ndarray]:
        part = inputs if len(rows) == inputs.num_rows else inputs.take(pa.array(rows))
        return predictor.run(predictor.coerce(part), outputs)

    try:
        return Screened(everything, attempt(everything), [])
    except ValidationError:
        pass
    rejected: dict[int, str] = {}
    for row in np.flatnonzero(suspects(inputs, predictor.signature.columns)):
        try:
            predictor.coerce(inputs.take(pa.array([row])))
        except ValidationError as exc:
            rejected[int(row)] = exc.message
    remaining = np.setdiff1d(everything, np.fromiter(rejected, dtype=np.int64, count=len(rejected)))
    segments: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
    _bisect(remaining, attempt, segments, rejected)
    segments.sort(key=lambda seg: int(seg[0][0]))
    rows = np.concatenate([seg[0] for seg in segments]) if segments else np.empty(0, dtype=np.int64)
    merged = {name: np.concatenate([seg[1][name] for seg in segments]) for name in outputs} if segments else {}
    return Screened(rows, merged, sorted(rejected.items()))


def _bisect(
    rows: np.ndarray,
    attempt: Callable[[np.ndarray], dict[str, np.ndarray]],
    segments: list[tuple[np.ndarray, dict[str, np.ndarray]]],
    rejected: dict[int, str],
) -> None:
    if len(rows) == 0:
        return
    try:
        segments.append((rows, attempt(rows)))
        return
    except ValidationError as exc:
        if len(rows) == 1:
            rejected[int(rows[0])] = exc.message
            return
    middle = len(rows) // 2
    _bisect(rows[:middle], attempt, segments, rejected)
    _bisect(rows[middle:], attempt, segments, rejected)


def suspects(inputs: pa.Table, columns: Sequence[ColumnSpec]) -> np.ndarray:
    """A boolean mask of rows that probably break the signature's rules (to be confirmed)."""
    mask = np.zeros(inputs.num_rows, dtype=bool)
    for spec in columns:
        column = inputs.column(spec.name)
        missing = column.is_null().to_numpy(zero_copy_only=False)
        if not spec.nullable:
            mask |= missing
        if spec.type in ("float", "int"):
            mask |= _bad_numbers(column, spec, missing)
        elif spec.type == "bool" and pa.types.is_string(column.type):
            text = pd.Series(column.to_numpy(zero_copy_only=False), dtype=object).str.lower()
            mask |= ~text.isin(_BOOL_TEXT).to_numpy() & ~missing
        elif spec.type == "datetime" and pa.types.is_string(column.type):
            parsed = pd.to_datetime(pd.Series(column.to_numpy(zero_copy_only=False)), errors="coerce", utc=True)
            mask |= parsed.isna().to_numpy() & ~missing
    return mask


def _bad_numbers(column: pa.ChunkedArray, spec: ColumnSpec, missing: np.ndarray) -> np.ndarray:
    if pa.types.is_string(column.type):
        values = pd.to_numeric(pd.Series(column.to_numpy(zero_copy_only=False), dtype=object), errors="coerce")
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.asarray(np.isnan(numbers) & ~missing, dtype=bool)
    elif pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
        numbers = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
        bad = np.zeros(len(numbers), dtype=bool)
    else:
        return np.asarray(~missing)
    with np.errstate(invalid="ignore"):
        bad |= np.isinf(numbers)
        if not spec.nullable:
            bad |= np.isnan(numbers)
        if spec.type == "int":
            bad |= np.isfinite(numbers) & (numbers != np.trunc(numbers))
    return bad
