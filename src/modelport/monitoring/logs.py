"""Query the prediction log: ``modelport logs REF [--since 24h] [--where ...] [--json]``.

Rows come from the locked-down DuckDB view of :mod:`modelport.monitoring.logview`, filtered by
model, version and time window, plus an optional user ``WHERE`` expression. That expression is
SQL, so it is held to three rules: it must parse as part of exactly one ``SELECT`` statement (no
``;``, no ``COPY``/``ATTACH``/``SET``), it runs in an in-memory connection whose only table is
the view, and that connection cannot read or write any file outside the log folder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import duckdb

from modelport.core.errors import ValidationError
from modelport.monitoring.logview import VIEW, LogReader, quote_identifier
from modelport.monitoring.window import Window

DEFAULT_LIMIT = 100
MAX_LIMIT = 100_000
MAX_WHERE_LENGTH = 4_000
JSON_COLUMNS = ("inputs", "outputs")
"""Record fields stored as JSON text: returned decoded."""
DEFAULT_COLUMNS = (
    "ts",
    "request_id",
    "row",
    "model",
    "version",
    "route",
    "source",
    "kind",
    "status",
    "latency_ms",
    "inputs",
    "outputs",
    "error_type",
    "error",
)


@dataclass(frozen=True, slots=True)
class LogQueryResult:
    """Rows of the prediction log, newest first.

    Attributes:
        columns: Column names, in order.
        rows: One dict per logged record, values made JSON-able (timestamps as ISO text).
        truncated: Whether more rows matched than ``limit``.
    """

    columns: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    truncated: bool

    def to_dict(self) -> dict[str, Any]:
        """``{"columns": [...], "rows": [...], "truncated": bool}``."""
        return {"columns": list(self.columns), "rows": list(self.rows), "truncated": self.truncated}

    def to_json(self) -> str:
        """The rows as JSON text (one array)."""
        return json.dumps(list(self.rows), ensure_ascii=False)


def query_logs(
    reader: LogReader,
    *,
    model: str,
    version: int | None = None,
    since: str | datetime | None = None,
    until: datetime | None = None,
    where: str | None = None,
    limit: int = DEFAULT_LIMIT,
    columns: Sequence[str] | None = None,
) -> LogQueryResult:
    """Logged predictions of ``model``, newest first.

    Args:
        reader: The prediction log.
        model: Model name.
        version: Only this version's records.
        since: A duration back from now (``"24h"``, ``"7d"``, ``"30m"``) or a start datetime.
        until: End of the window (exclusive); default no end.
        where: A DuckDB SQL boolean expression over the record's columns, e.g.
            ``"status <> 'ok'"`` or ``"latency_ms > 50 AND inputs.age > 60"``.
        limit: Most rows returned (1..100,000).
        columns: Columns to return; default the record's main fields that the log has.

    Raises:
        ValidationError: A bad duration, limit, column or ``where`` expression (the message
            carries DuckDB's explanation).
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"Invalid limit {limit}.", hint=f"Use a limit between 1 and {MAX_LIMIT}.")
    window = Window.of(since, until=until)
    with reader.session(model) as session:
        available = list(session.columns)
        chosen = list(columns) if columns else [c for c in DEFAULT_COLUMNS if c in session.columns]
        unknown = [c for c in chosen if c not in session.columns]
        if unknown:
            raise ValidationError(
                f"The prediction log has no column {unknown[0]!r}.", hint=f"Columns: {', '.join(available)}."
            )
        scope, params = session.scope(model=model, version=version, window=window, predictions_only=False)
        condition = scope if not where else f"({scope}) AND ({_checked_where(where)})"
        order = " ORDER BY ts DESC" if "ts" in session.columns else ""
        sql = (
            f"SELECT {', '.join(map(quote_identifier, chosen))} FROM {VIEW} WHERE {condition}{order} LIMIT {limit + 1}"
        )
        _check_single_select(sql, where)
        try:
            records = session.fetch_dicts(sql, params)
        except duckdb.Error as exc:
            raise _where_error(where, exc) from exc
        json_columns = {c for c in chosen if c in JSON_COLUMNS and session.columns[c] in ("JSON", "VARCHAR")}
    rows = tuple({k: _decode(v, k in json_columns) for k, v in r.items()} for r in records[:limit])
    return LogQueryResult(columns=tuple(chosen), rows=rows, truncated=len(records) > limit)


def _checked_where(where: str) -> str:
    text = where.strip()
    if not text:
        raise ValidationError("Empty --where expression.", hint="e.g. --where \"status <> 'ok'\"")
    if len(text) > MAX_WHERE_LENGTH:
        raise ValidationError(
            f"The --where expression is {len(text)} characters long.", hint=f"Keep it under {MAX_WHERE_LENGTH}."
        )
    return text


def _check_single_select(sql: str, where: str | None) -> None:
    """Refuse anything but one SELECT (e.g. ``1=1); COPY ... TO ...; --``)."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise _where_error(where, exc) from exc
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise ValidationError(
            f"The --where expression {where!r} is not a single condition.",
            hint="Write one boolean expression, e.g. \"status <> 'ok' AND latency_ms > 100\"; no ';'.",
        )


def _where_error(where: str | None, exc: duckdb.Error) -> ValidationError:
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ValidationError(
        f"Invalid --where expression {where!r}: {detail}",
        hint="Write a DuckDB boolean expression over the log's columns (see docs/prediction-log.md), "
        'e.g. "status <> \'ok\'" or "inputs.age > 60".',
    )


def jsonable(value: Any) -> Any:
    """``value`` (as DuckDB returns it) in a JSON-able form: ISO timestamps, floats, lists, dicts."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN
        return None
    if isinstance(value, bytes):
        return value.hex()
    return value


def _decode(value: Any, is_json: bool) -> Any:
    if is_json and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return jsonable(value)
