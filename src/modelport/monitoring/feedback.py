"""Ground truth: feedback records (the true label or value of a prediction), stored for later joins.

Feedback arrives by request id (``{"request_id": "...", "label": 1}``) or by a business key
(``{"key": "c-17", "label": 1}`` with ``key_column="customer_id"``: the value the prediction's
logged input column had), often days after the prediction. It is stored, append-only, as Parquet
beside the prediction log::

    <feedback_dir>/model=<name>/date=<YYYY-MM-DD of arrival>/part-<time>-<id>.parquet

with the columns ``received_at`` (UTC timestamp), ``model``, ``key_kind`` (``request_id`` or
``key``), ``key_column`` (null for request ids), ``key`` (text, as sent; a number as
:func:`normalise_label` writes it; joins normalise both sides), ``row`` (for a request id: the
row within the request, null for all its rows), ``label`` (the truth as text, normalised so that
``1``, ``1.0`` and ``"1"`` agree and booleans read ``true``/``false``) and ``value`` (the truth as
a number when it is one: regression targets, numeric classes). When one key receives feedback
twice, the newest record wins. :mod:`modelport.monitoring.performance`
joins these files to the prediction log with DuckDB.

A request id identifies the logged predictions of one request: one per row, told apart by
``row`` (the 0-based position in the request). Feedback without ``row`` labels every row of the
request, which is right for single-row requests; label the rows of a batched request with
``row``, or by a key column.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelport.core.errors import ValidationError
from modelport.core.names import validate_name
from modelport.runtime.redaction import Redactor

MAX_RECORDS = 100_000
"""Most feedback records accepted in one call (split larger files)."""
MAX_KEY_LENGTH = 512
KEY_KINDS = ("request_id", "key")


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """One piece of ground truth.

    Attributes:
        key: The request id or the key value it labels (as text).
        label: The true label or value (a JSON scalar: str, int, float or bool).
        key_kind: ``"request_id"`` or ``"key"``.
        key_column: For ``key_kind="key"``, the logged input column the key matches.
        row: For a request id, the row within the request (``None``: every row of the request).
    """

    key: str
    label: str | int | float | bool
    key_kind: str = "request_id"
    key_column: str | None = None
    row: int | None = None


@dataclass(frozen=True, slots=True)
class FeedbackReceipt:
    """What :meth:`FeedbackStore.add` stored: how many records, and in which file."""

    model: str
    accepted: int
    path: Path | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``{"model", "accepted"}``; the file path stays server-side)."""
        return {"model": self.model, "accepted": self.accepted}


def normalise_label(value: object) -> tuple[str, float | None]:
    """The ``(label, value)`` pair stored for a truth ``value``.

    Numbers compare by value (``1``, ``1.0`` and ``"1"`` all give ``"1"``), booleans as
    ``"true"``/``"false"``, other text as is. The same normalisation is applied to logged
    predictions before comparing them.

    Raises:
        ValidationError: ``value`` is missing, not a scalar, or not a finite number.
    """
    if isinstance(value, bool):
        return ("true" if value else "false"), float(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if not math.isfinite(number):
            raise ValidationError(f"Feedback label {value!r} is not a finite number.", hint="Send a finite value.")
        return _number_text(number), number
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValidationError("Empty feedback label.", hint="Send the true label or value of the prediction.")
        try:
            number = float(text)
        except ValueError:
            lowered = text.lower()
            return (lowered if lowered in ("true", "false") else text), None
        if math.isfinite(number):
            return _number_text(number), number
        return text, None
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return normalise_label(value.item())
    raise ValidationError(
        f"Feedback label {value!r} of type {type(value).__name__} is not a scalar.",
        hint="Send a string, number or boolean as the label.",
    )


def _number_text(number: float) -> str:
    return str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)


def parse_feedback(items: Iterable[Mapping[str, Any]], *, key_column: str | None = None) -> list[FeedbackRecord]:
    """Validate feedback from JSON-like mappings: each has ``request_id`` or ``key``, and ``label``.

    Args:
        items: e.g. ``[{"request_id": "r1", "label": 1}, {"request_id": "r2", "row": 3, "label": 0},
            {"key": "c-17", "label": 0}]``.
        key_column: The logged input column that ``key`` values match (required when any item has ``key``).

    Raises:
        ValidationError: An item lacks a key or label, has both kinds of key, or there are too many items.
    """
    records: list[FeedbackRecord] = []
    for index, item in enumerate(items):
        if len(records) >= MAX_RECORDS:
            raise ValidationError(
                f"More than {MAX_RECORDS} feedback records in one call.",
                hint="Send the feedback in smaller parts.",
            )
        records.append(_parse_item(index, item, key_column))
    return records


def _parse_item(index: int, item: Mapping[str, Any], key_column: str | None) -> FeedbackRecord:
    if not isinstance(item, Mapping):
        raise ValidationError(
            f"Feedback record {index} is a {type(item).__name__}, not an object.",
            hint='Send objects such as {"request_id": "...", "label": 1}.',
        )
    has_id, has_key = item.get("request_id") is not None, item.get("key") is not None
    if has_id == has_key:
        raise ValidationError(
            f"Feedback record {index} needs exactly one of 'request_id' or 'key' (got {sorted(item)}).",
            hint='Label a logged prediction by its request id, or by a key column value with "key_column".',
        )
    if "label" not in item or item["label"] is None:
        raise ValidationError(
            f"Feedback record {index} has no 'label'.",
            hint="Add the true label (classification) or value (regression) as 'label'.",
        )
    normalise_label(item["label"])
    raw_key = item["request_id"] if has_id else item["key"]
    key = _key_text(raw_key, index)
    if has_key and not key_column:
        raise ValidationError(
            f"Feedback record {index} has a 'key' but no key column was named.",
            hint="Name the logged input column the keys match (key_column / --key).",
        )
    row = item.get("row")
    if row is not None and (isinstance(row, bool) or not isinstance(row, int) or row < 0 or not has_id):
        raise ValidationError(
            f"Feedback record {index} has an invalid 'row' {row!r}.",
            hint="'row' is the 0-based position of the row within its request, next to a 'request_id'.",
        )
    return FeedbackRecord(
        key=key,
        label=item["label"],
        key_kind="request_id" if has_id else "key",
        key_column=key_column if has_key else None,
        row=row,
    )


def _key_text(raw: object, index: int) -> str:
    """Text is kept verbatim; numbers as :func:`normalise_label` writes them (``17`` and ``17.0`` give ``"17"``)."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise ValidationError(
            f"Feedback record {index} has a key of type {type(raw).__name__}.",
            hint="Keys and request ids are strings or numbers.",
        )
    key = raw if isinstance(raw, str) else normalise_label(raw)[0]
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationError(
            f"Feedback record {index} has an empty or too long key ({len(key)} characters).",
            hint=f"Keys are 1-{MAX_KEY_LENGTH} characters.",
        )
    return key


class FeedbackStore:
    """Append-only Parquet storage of ground truth, one folder per model.

    Args:
        directory: Root folder of the feedback files (e.g. ``MODELPORT_HOME/feedback``).
        redactor: The prediction log's redaction rules: a key column the log stores hashed gets
            its keys hashed the same way (so they still join); one it drops or masks is refused.
    """

    def __init__(self, directory: Path, *, redactor: Redactor | None = None) -> None:
        self.directory = Path(directory)
        self.redactor = redactor

    def model_glob(self, model: str) -> str:
        """The glob DuckDB reads for ``model``'s feedback."""
        return str(self.directory / f"model={validate_name(model)}" / "date=*" / "*.parquet")

    def has_feedback(self, model: str) -> bool:
        """Whether any feedback file exists for ``model``."""
        folder = self.directory / f"model={validate_name(model)}"
        return folder.is_dir() and any(folder.glob("date=*/*.parquet"))

    def add(
        self, model: str, records: Iterable[FeedbackRecord], *, received_at: datetime | None = None
    ) -> FeedbackReceipt:
        """Store ``records`` for ``model`` in one new Parquet file (atomically: staged, then renamed).

        Args:
            model: The model the feedback belongs to.
            records: Validated records (see :func:`parse_feedback`).
            received_at: Arrival time; default now (UTC).

        Raises:
            InvalidName: ``model`` is not a valid model name.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        name = validate_name(model)
        rows = self._redacted(name, list(records))
        if not rows:
            return FeedbackReceipt(model=name, accepted=0, path=None)
        when = (received_at or datetime.now(UTC)).astimezone(UTC)
        labels = [normalise_label(r.label) for r in rows]
        table = pa.table(
            {
                "received_at": pa.array([when] * len(rows), type=pa.timestamp("us", tz="UTC")),
                "model": pa.array([name] * len(rows), type=pa.string()),
                "key_kind": pa.array([r.key_kind for r in rows], type=pa.string()),
                "key_column": pa.array([r.key_column for r in rows], type=pa.string()),
                "key": pa.array([r.key for r in rows], type=pa.string()),
                "row": pa.array([r.row for r in rows], type=pa.int64()),
                "label": pa.array([text for text, _ in labels], type=pa.string()),
                "value": pa.array([number for _, number in labels], type=pa.float64()),
            }
        )
        folder = self.directory / f"model={name}" / f"date={when.date().isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"part-{when.strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}.parquet"
        staging = folder / f".{final.name}.tmp"
        pq.write_table(table, staging)
        os.replace(staging, final)
        return FeedbackReceipt(model=name, accepted=len(rows), path=final)

    def _redacted(self, model: str, records: list[FeedbackRecord]) -> list[FeedbackRecord]:
        """Hash keys of columns the log hashes; refuse keys of columns it drops or masks."""
        rules = self.redactor.rules_for(model) if self.redactor is not None else {}
        if not rules:
            return records
        out = []
        for record in records:
            action = rules.get(record.key_column) if record.key_kind == "key" and record.key_column else None
            if action is None:
                out.append(record)
            elif action == "hash" and self.redactor is not None:
                out.append(replace(record, key=self.redactor.hash_value(record.key)))
            else:
                raise ValidationError(
                    f"Key column {record.key_column!r} of model {model!r} is logged with '{action}' redaction, "
                    "so its values cannot be matched.",
                    hint="Send the feedback by request id (and row), or key it on a column that is hashed or kept.",
                )
        return out

    def add_frame(
        self,
        model: str,
        frame: Any,
        *,
        key: str,
        label: str = "label",
        by_request_id: bool = False,
        received_at: datetime | None = None,
    ) -> FeedbackReceipt:
        """Store the rows of a DataFrame (e.g. ``labels.csv``) as feedback.

        Args:
            model: The model the feedback belongs to.
            frame: A pandas DataFrame with the key column and the label column.
            key: Name of the column holding the key; with ``by_request_id`` it holds request ids,
                otherwise it is also the logged input column the keys match.
            label: Name of the column holding the truth.
            by_request_id: Whether ``key`` holds request ids rather than input-column keys; then an
                optional ``row`` column names the row within each request.
            received_at: Arrival time; default now (UTC).

        Raises:
            ValidationError: A column is missing or a row has no key or label.
        """
        for column in (key, label):
            if column not in frame.columns:
                raise ValidationError(
                    f"Feedback file has no column {column!r} (columns: {list(map(str, frame.columns))}).",
                    hint="Name the key column with --key and the label column with --label.",
                )
        kind = "request_id" if by_request_id else "key"
        rows = frame["row"].tolist() if by_request_id and "row" in frame.columns else [None] * len(frame)
        items = [
            {kind: k, "label": v, **({"row": int(r)} if not _is_missing(r) else {})}
            for k, v, r in zip(frame[key].tolist(), frame[label].tolist(), rows, strict=True)
            if not _is_missing(k) and not _is_missing(v)
        ]
        records = parse_feedback(items, key_column=None if by_request_id else key)
        return self.add(model, records, received_at=received_at)


def _is_missing(value: object) -> bool:
    """``None``, NaN, and pandas' ``NA``/``NaT`` (from nullable columns of a labels file)."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return True
    return isinstance(value, float) and math.isnan(value)
