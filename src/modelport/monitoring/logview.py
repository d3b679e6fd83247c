"""A read-only DuckDB view over the prediction log, shared by every monitoring query.

The log is Parquet partitioned ``model=<name>/date=<YYYY-MM-DD>/part-*.parquet`` (written by
:mod:`modelport.runtime.predlog`). :class:`LogReader` opens an in-memory DuckDB connection with
one view, ``predictions``, over the files of one model (or all), then locks it down: external
access is disabled except for the log folder itself, extensions cannot be installed or loaded,
and the configuration is frozen. Queries therefore read the log and nothing else, which is what
lets :mod:`modelport.monitoring.logs` run a user's ``--where`` expression. :class:`LogSession`
also knows how to reach one input feature or output in the logged records, whatever their
Parquet shape (a struct, a map or JSON text), so drift and live metrics never hard-code it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from modelport.core.errors import ServiceUnavailable
from modelport.core.names import NAME_PATTERN, validate_name
from modelport.monitoring.window import Window

VIEW = "predictions"
_ELEMENT = re.compile(r"^(.+)\[(\d+)\]$")
OK_STATUS = "ok"
"""``status`` of a prediction that succeeded; anything else counts as an error."""
_NUMERIC_TYPES = (
    "DOUBLE",
    "FLOAT",
    "REAL",
    "INTEGER",
    "BIGINT",
    "SMALLINT",
    "TINYINT",
    "HUGEINT",
    "DECIMAL",
    "UBIGINT",
)
_EMPTY_SCHEMA = (
    ("ts", "TIMESTAMPTZ"),
    ("request_id", "VARCHAR"),
    ("model", "VARCHAR"),
    ("version", "BIGINT"),
    ("route", "VARCHAR"),
    ("source", "VARCHAR"),
    ("inputs", "JSON"),
    ("outputs", "JSON"),
    ("latency_ms", "DOUBLE"),
    ("status", "VARCHAR"),
    ("error_type", "VARCHAR"),
    ("error", "VARCHAR"),
    ("date", "DATE"),
)
"""Columns of the view when the log has no file yet (so queries still bind)."""


def quote_identifier(name: str) -> str:
    """``name`` as a DuckDB identifier (double-quoted, embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """``text`` as a DuckDB string literal (single-quoted, embedded quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True, slots=True)
class LogReader:
    """Opens read-only DuckDB sessions over a prediction-log folder.

    Args:
        directory: The log root (holding ``model=<name>/`` folders).
        threads: DuckDB worker threads per session.
        memory_limit: DuckDB memory limit per session, e.g. ``"1GB"``.
    """

    directory: Path
    threads: int = 2
    memory_limit: str = "1GB"

    def models(self) -> list[str]:
        """Names of the models that have log files, sorted."""
        if not self.directory.is_dir():
            return []
        names = []
        for folder in self.directory.glob("model=*"):
            name = folder.name.removeprefix("model=")
            if folder.is_dir() and NAME_PATTERN.fullmatch(name) and any(folder.glob("date=*/*.parquet")):
                names.append(name)
        return sorted(names)

    def has_logs(self, model: str | None = None) -> bool:
        """Whether any log file exists (for ``model``, or at all)."""
        return any(self.directory.glob(self._relative_glob(model))) if self.directory.is_dir() else False

    def _relative_glob(self, model: str | None) -> str:
        folder = f"model={validate_name(model)}" if model is not None else "model=*"
        return f"{folder}/date=*/*.parquet"

    @contextmanager
    def session(
        self, model: str | None = None, *, extra_views: Mapping[str, Path] | None = None
    ) -> Iterator[LogSession]:
        """A locked-down DuckDB session with the view ``predictions`` over ``model``'s log (or all).

        Args:
            model: Only this model's files; default every model's.
            extra_views: More Parquet views to create before the lock, name → folder (read with
                hive partitioning, every ``*.parquet`` below it); each folder must hold a file.
                The session may read those folders too (e.g. the feedback of
                :mod:`modelport.monitoring.feedback`).

        Raises:
            InvalidName: ``model`` is not a valid model name.
            ServiceUnavailable: The log files cannot be read (corrupt or unreadable Parquet).
        """
        glob = self._relative_glob(model)
        con = duckdb.connect(
            ":memory:",
            config={
                "threads": self.threads,
                "memory_limit": self.memory_limit,
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
            },
        )
        try:
            con.execute("SET TimeZone = 'UTC'")
            empty = not self.has_logs(model)
            if empty:
                names = ", ".join(name for name, _ in _EMPTY_SCHEMA)
                nulls = ", ".join(f"NULL::{kind}" for _, kind in _EMPTY_SCHEMA)
                con.execute(f"CREATE VIEW {VIEW} AS SELECT * FROM (VALUES ({nulls})) AS t({names}) WHERE false")
            else:
                pattern = quote_literal(str(self.directory.resolve() / glob))
                con.execute(
                    f"CREATE VIEW {VIEW} AS SELECT * FROM read_parquet({pattern}, hive_partitioning = true, "
                    "union_by_name = true, hive_types = {'model': VARCHAR, 'date': DATE})"
                )
            folders = [self.directory.resolve()]
            for name, folder in (extra_views or {}).items():
                folders.append(folder.resolve())
                files = quote_literal(str(folder.resolve() / "**" / "*.parquet"))
                con.execute(
                    f"CREATE VIEW {quote_identifier(name)} AS SELECT * FROM read_parquet({files}, "
                    "hive_partitioning = true, union_by_name = true, hive_types = {'model': VARCHAR, 'date': DATE})"
                )
            allowed = ", ".join(quote_literal(str(f) + "/") for f in folders)
            con.execute(f"SET allowed_directories = [{allowed}]")
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
            columns = {row[0]: str(row[1]) for row in con.execute(f"DESCRIBE {VIEW}").fetchall()}
        except duckdb.Error as exc:
            con.close()
            raise ServiceUnavailable(
                f"Cannot read the prediction log under {self.directory}: {exc}",
                hint="Check that the log folder holds only files written by modelport.",
            ) from exc
        try:
            yield LogSession(con, columns, empty=empty)
        finally:
            con.close()


class LogSession:
    """One open DuckDB connection with the view ``predictions``; see :meth:`LogReader.session`.

    Attributes:
        connection: The DuckDB connection (read-only by configuration).
        columns: Column name → DuckDB type of the view.
        empty: Whether the log had no file at all.
    """

    def __init__(self, connection: duckdb.DuckDBPyConnection, columns: dict[str, str], *, empty: bool) -> None:
        self.connection = connection
        self.columns = columns
        self.empty = empty
        self._fields: dict[str, dict[str, str]] = {}

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run ``sql`` with bound ``params`` and return all rows."""
        return self.connection.execute(sql, list(params)).fetchall()

    def fetch_dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run ``sql`` and return rows as dicts keyed by column name."""
        cursor = self.connection.execute(sql, list(params))
        names = [d[0] for d in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def scope(
        self,
        *,
        model: str | None = None,
        version: int | None = None,
        window: Window | None = None,
        predictions_only: bool = True,
    ) -> tuple[str, list[Any]]:
        """A ``WHERE`` condition (and its parameters) selecting one model, version and time window.

        The ``date`` partition is filtered too, so DuckDB skips the files of other days. With
        ``predictions_only``, batch-run summary records (``kind = 'run'``) are left out.
        """
        clauses = ["true"]
        params: list[Any] = []
        if predictions_only and "kind" in self.columns:
            clauses.append("kind = 'prediction'")
        if model is not None:
            clauses.append("model = ?")
            params.append(model)
        if version is not None:
            clauses.append("version = ?")
            params.append(version)
        if window is not None and window.start is not None:
            clauses.append("ts >= ?")
            params.append(window.start)
            if "date" in self.columns:
                clauses.append("date >= ?")
                params.append(window.start.date())
        if window is not None and window.end is not None:
            clauses.append("ts < ?")
            params.append(window.end)
            if "date" in self.columns:
                clauses.append("date <= ?")
                params.append(window.end.date())
        return " AND ".join(clauses), params

    def input_sql(self, name: str, *, numeric: bool) -> str | None:
        """SQL for input feature ``name`` of each logged row (``None`` when the log lacks it)."""
        return self.value_sql("inputs", name, numeric=numeric)

    def output_sql(self, name: str, *, numeric: bool) -> str | None:
        """SQL for output ``name`` (``predict``) of each logged row (``None`` when the log lacks it)."""
        return self.value_sql("outputs", name, numeric=numeric)

    def value_sql(self, column: str, key: str, *, numeric: bool) -> str | None:
        """SQL reaching ``key`` of the record field ``column`` (``inputs`` or ``outputs``), or ``None``.

        The writer stores each scalar as a flattened typed column ``<column>.<key>`` (fast) and the
        whole record as JSON text in ``<column>`` (complete: a file whose values mixed types keeps
        them only there), so the flattened value is used and the JSON read only where it is null.
        Structs and maps (other writers) work too. Numeric values come back as ``DOUBLE`` (``NaN``
        as ``NULL``); others as normalised ``VARCHAR`` (see :func:`label_sql`).
        """
        return self._value_sql(column, key, mode="number" if numeric else "label")

    def raw_text_sql(self, column: str, key: str) -> str | None:
        """Like :meth:`value_sql`, but the plain text of the value, without normalisation (cheaper)."""
        return self._value_sql(column, key, mode="text")

    def presence_sql(self, column: str, key: str) -> str:
        """SQL that is true where the record has ``key`` at all (``null`` included): tells dropped from missing."""
        kind = self.columns.get(column, "")
        element = self._element(column, key)
        if kind in ("JSON", "VARCHAR"):
            path = json_path(key) if element is None else json_path(element[0], index=element[1])
            return f"json_exists({quote_identifier(column)}, {path})"
        flat = f"{column}.{key}"
        if flat in self.columns:
            return f"{quote_identifier(flat)} IS NOT NULL"
        return "true" if kind.startswith(("STRUCT", "MAP")) else "false"

    def _element(self, column: str, key: str) -> tuple[str, int] | None:
        """``("x", 3)`` when ``key`` is ``x[3]``, one feature of a tensor logged whole as the list ``x``."""
        match = _ELEMENT.fullmatch(key)
        if match is None or f"{column}.{key}" in self.columns:
            return None
        return match[1], int(match[2])

    def _element_sql(self, column: str, base: str, index: int, mode: str) -> str | None:
        flat = f"{column}.{base}"
        parts = []
        if self.columns.get(flat, "").endswith("[]"):
            parts.append(_convert(f"{quote_identifier(flat)}[{index + 1}]", "DOUBLE", mode, finite=True))
        if self.columns.get(column) in ("JSON", "VARCHAR"):
            path = json_path(base, index=index)
            parts.append(
                _convert(f"json_extract_string({quote_identifier(column)}, {path})", "VARCHAR", mode, finite=False)
            )
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"

    def _value_sql(self, column: str, key: str, *, mode: str) -> str | None:
        element = self._element(column, key)
        if element is not None:
            return self._element_sql(column, element[0], element[1], mode)
        flat = f"{column}.{key}"
        nested = self._nested_sql(column, key, mode)
        if flat not in self.columns:
            return nested
        direct = _convert(quote_identifier(flat), self.columns[flat], mode, finite=True)
        if nested is None:
            return direct
        return f"(CASE WHEN {quote_identifier(flat)} IS NOT NULL THEN {direct} ELSE {nested} END)"

    def _nested_sql(self, column: str, key: str, mode: str) -> str | None:
        kind = self.columns.get(column)
        if kind is None:
            return None
        base = quote_identifier(column)
        if kind.startswith("STRUCT"):
            fields = self._struct_fields(column)
            if key not in fields:
                return None
            return _convert(f"{base}.{quote_identifier(key)}", fields[key], mode, finite=False)
        if kind.startswith("MAP"):
            value_type = kind.rsplit(",", 1)[-1].rstrip(")").strip()
            return _convert(f"{base}[{quote_literal(key)}]", value_type, mode, finite=False)
        if kind in ("JSON", "VARCHAR"):
            return _convert(f"json_extract_string({base}, {json_path(key)})", "VARCHAR", mode, finite=False)
        return None

    def probability_sql(self, index: int, label: str) -> str | None:
        """SQL for the logged probability of one class (``None`` when probabilities were not logged).

        ``predict_proba`` is a list in class order (``index``, 0-based), as a flattened
        ``outputs.predict_proba`` column or inside the ``outputs`` JSON/struct; an object keyed by
        class label (``label``, as text) is understood too.
        """
        flat = "outputs.predict_proba"
        if flat in self.columns and self.columns[flat].endswith("]"):
            return f"TRY_CAST({quote_identifier(flat)}[{int(index) + 1}] AS DOUBLE)"
        kind = self.columns.get("outputs", "")
        if kind.startswith("STRUCT"):
            inner = self._struct_fields("outputs").get("predict_proba")
            if inner is None:
                return None
            if inner.endswith("]"):
                return f"TRY_CAST(outputs.predict_proba[{int(index) + 1}] AS DOUBLE)"
            if inner.startswith(("STRUCT", "MAP")):
                return f"TRY_CAST(outputs.predict_proba[{quote_literal(label)}] AS DOUBLE)"
            return None
        if kind in ("JSON", "VARCHAR"):
            by_index = quote_literal(f"$.predict_proba[{int(index)}]")
            by_label = json_path(label, prefix="$.predict_proba")
            return (
                f"TRY_CAST(coalesce(json_extract_string(outputs, {by_index}), "
                f"json_extract_string(outputs, {by_label})) AS DOUBLE)"
            )
        return None

    def _struct_fields(self, column: str) -> dict[str, str]:
        if column not in self._fields:
            rows = self.fetch(f"DESCRIBE SELECT {quote_identifier(column)}.* FROM {VIEW}")
            self._fields[column] = {str(r[0]): str(r[1]) for r in rows}
        return self._fields[column]


def _convert(expr: str, kind: str, mode: str, *, finite: bool) -> str:
    """``expr`` (of DuckDB type ``kind``) as a DOUBLE (``number``), normalised text (``label``) or plain text.

    ``finite`` says the source never holds NaN (the writer stores non-finite numbers as null).
    """
    if mode == "number":
        value = expr if kind == "DOUBLE" else f"TRY_CAST({expr} AS DOUBLE)"
        return value if finite else f"(CASE WHEN isnan({value}) THEN NULL ELSE {value} END)"
    if kind == "BOOLEAN":
        return f"(CASE WHEN {expr} THEN 'true' WHEN NOT {expr} THEN 'false' END)"
    if mode == "text":
        return expr if kind == "VARCHAR" else f"CAST({expr} AS VARCHAR)"
    if kind.startswith(_NUMERIC_TYPES):
        return canonical_number_sql(expr if kind == "DOUBLE" else f"TRY_CAST({expr} AS DOUBLE)")
    return label_sql(expr if kind == "VARCHAR" else f"CAST({expr} AS VARCHAR)")


def json_path(key: str, *, prefix: str = "$", index: int | None = None) -> str:
    """A DuckDB JSON path literal selecting member ``key`` of ``prefix`` (and its item ``index``).

    The member name is quoted, so any character is allowed in it.
    """
    item = f"[{int(index)}]" if index is not None else ""
    return quote_literal(prefix + '."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"' + item)


def canonical_number_sql(expr: str) -> str:
    """SQL writing the DOUBLE ``expr`` as :func:`~modelport.monitoring.feedback.normalise_label` does."""
    return (
        f"(CASE WHEN {expr} IS NULL OR NOT isfinite({expr}) THEN NULL "
        f"WHEN {expr} = floor({expr}) AND abs({expr}) < 9007199254740992 "
        f"THEN CAST(CAST({expr} AS BIGINT) AS VARCHAR) ELSE CAST({expr} AS VARCHAR) END)"
    )


def label_sql(text: str) -> str:
    """SQL normalising the VARCHAR ``text`` exactly like :func:`~modelport.monitoring.feedback.normalise_label`.

    Numbers compare by value (``"1.0"`` → ``"1"``), ``true``/``false`` in any case are lowered,
    other text is trimmed; so predictions, labels and reference categories meet on one spelling.
    """
    trimmed = f"trim({text})"
    number = f"TRY_CAST({trimmed} AS DOUBLE)"
    return (
        f"(CASE WHEN {number} IS NOT NULL AND isfinite({number}) THEN {canonical_number_sql(number)} "
        f"WHEN lower({trimmed}) IN ('true', 'false') THEN lower({trimmed}) "
        f"WHEN {trimmed} = '' THEN NULL ELSE {trimmed} END)"
    )
