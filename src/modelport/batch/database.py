"""Connections to the users' databases that batch jobs read from and write to.

One place decides what a database URL looks like, opens engines for it (psycopg 3 for
PostgreSQL; SQLite with a busy timeout), recognises when an output database is the registry's
own (so a chunk and its run checkpoint can share one transaction), and turns driver errors into
modelport errors whose messages never show a password: an unreachable server or a dropped
connection becomes :class:`~modelport.core.errors.ServiceUnavailable`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from modelport.core.errors import ConfigError, Conflict, ModelportError, ServiceUnavailable, ValidationError
from modelport.registry.db import SQLITE_BUSY_TIMEOUT_MS, engine_options, normalize_url, parse_url, scrub

SQL_SCHEMES = frozenset({"sqlite", "postgresql", "postgres", "mysql", "mariadb", "mssql", "oracle", "duckdb"})
"""URL schemes (before any ``+driver``) that name a database rather than a file."""

_STATEMENT_ERRORS = ("no such table", "no such column", "syntax error", "has no column", "no column named")

RESUME_HINT = "Committed chunks are kept; once the database is back, resume the run with --resume {run_id}."


def is_database_url(text: str) -> bool:
    """Whether ``text`` is a SQLAlchemy database URL (``sqlite:///x.db``, ``postgresql://...``)."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.split("+", 1)[0].lower() in SQL_SCHEMES


def redacted(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    return scrub(url, url)


def open_engine(url: str, *, what: str) -> Engine:
    """An engine for the user database ``url`` (no connection is opened yet).

    Args:
        url: SQLAlchemy URL; ``postgresql://`` uses psycopg 3.
        what: What the database is for, in error messages (``"input database"``).

    Raises:
        ConfigError: The URL is malformed or its driver is not installed.
    """
    url = normalize_url(url)
    parsed = parse_url(
        url, what=what, examples="'sqlite:////path/file.db' or 'postgresql://user:password@host:5432/db'"
    )
    kwargs = engine_options(parsed)
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (sa.exc.NoSuchModuleError, ImportError) as exc:
        raise ConfigError(
            f"No database driver for the {what} {redacted(url)!r}: {exc}.",
            hint="Install the driver (for PostgreSQL: pip install 'modelport[postgres]').",
        ) from exc
    if backend == "sqlite":

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            finally:
                cursor.close()

    return engine


def _identity(url: sa.URL) -> tuple[Any, ...]:
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database not in ("", ":memory:"):
            database = str(Path(database).resolve())
        return ("sqlite", database)
    return (url.get_backend_name(), url.host, url.port, url.database, url.username)


def same_database(url: str, engine: Engine) -> bool:
    """Whether ``url`` points at the database ``engine`` is connected to."""
    try:
        return _identity(sa.make_url(normalize_url(url))) == _identity(engine.url)
    except sa.exc.ArgumentError:
        return False


def translate(exc: BaseException, url: str, *, what: str, run_id: str | None = None) -> ModelportError:
    """The modelport error for a driver exception raised while using the database ``url``.

    Connection failures become :class:`ServiceUnavailable`; a broken constraint becomes
    :class:`Conflict`; bad SQL or data :class:`ValidationError`. Passwords are never shown.
    """
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    reason = scrub(detail[0], url) if detail else type(exc).__name__
    hint_resume = RESUME_HINT.format(run_id=run_id) if run_id else "Check the database and try again."
    if isinstance(exc, sa.exc.IntegrityError):
        return Conflict(
            f"The {what} {redacted(url)} refused the rows: {reason}",
            hint="A row with the same key is probably there already: use --mode upsert to replace earlier "
            "scores, or --mode replace to rebuild the table.",
        )
    is_connection = isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError) or (
        isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated
    )
    if is_connection and any(marker in reason.lower() for marker in _STATEMENT_ERRORS):
        is_connection = False  # SQLite reports bad SQL as an OperationalError too
    if is_connection or isinstance(exc, OSError):
        return ServiceUnavailable(
            f"The {what} {redacted(url)} is unavailable: {reason}",
            hint="Check that the database server is running and reachable and that the URL (host, port, user, "
            f"password, database) is right. {hint_resume}",
        )
    return ValidationError(f"The {what} {redacted(url)} rejected a statement: {reason}", hint=hint_resume)
