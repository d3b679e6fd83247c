"""Database engines and transactions for the registry: SQLite by default, PostgreSQL via psycopg.

SQLite connections run in WAL mode with a busy timeout and foreign keys on, and write
transactions open with ``BEGIN IMMEDIATE`` so that concurrent writers queue on the database lock
instead of failing half-way. :func:`run_transaction` retries a unit of work with a bounded,
jittered backoff when the database reports a lock, a serialization failure or a deadlock, and
turns an unreachable database into :class:`~modelport.core.errors.ServiceUnavailable` whose
message shows the URL with its password replaced by ``***``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from modelport.core.errors import ConfigError, ServiceUnavailable
from modelport.core.redact import redact_url

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite connection waits for another writer's lock before giving up."""

POSTGRES_CONNECT_TIMEOUT_S = 10
"""How long a PostgreSQL connection attempt may take."""

MAX_ATTEMPTS = 8
"""Attempts of one transaction when the database asks us to retry (lock, serialization, deadlock)."""

BACKOFF_BASE_S = 0.02
BACKOFF_CAP_S = 1.0

_IMMEDIATE = "modelport_begin_immediate"
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03"})  # serialization, deadlock, lock not available


def normalize_url(url: str) -> str:
    """Map ``postgres://`` and ``postgresql://`` to the psycopg 3 driver modelport ships with."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def scrub(text: str, url: str) -> str:
    """``text`` with every URL password, and the password of ``url`` itself, replaced by ``***``."""
    cleaned = redact_url(text)
    try:
        password = sa.make_url(url).password
    except sa.exc.ArgumentError:
        password = None
    if password:
        cleaned = cleaned.replace(str(password), "***")
    return cleaned


def parse_url(url: str, *, what: str, examples: str) -> sa.URL:
    """``url`` parsed by SQLAlchemy (normalize it first with :func:`normalize_url`).

    Args:
        url: The database URL.
        what: What the database is for, in the error message (``"registry database"``).
        examples: Example URLs for the hint.

    Raises:
        ConfigError: The URL is malformed (the message shows it without its password).
    """
    try:
        return sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:  # ValueError: e.g. a non-numeric port
        raise ConfigError(f"Invalid {what} URL {redact_url(url)!r}.", hint=f"Use e.g. {examples}.") from exc


def engine_options(parsed: sa.URL) -> dict[str, Any]:
    """Keyword arguments of ``sa.create_engine`` for ``parsed``: a connect timeout and pre-ping for PostgreSQL."""
    if parsed.get_backend_name() == "postgresql":
        return {"connect_args": {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S}, "pool_pre_ping": True}
    return {}


def create_engine(url: str) -> Engine:
    """Create the engine for ``url`` (no connection is opened yet).

    Raises:
        ConfigError: The URL is malformed or names a database driver that is not installed.
    """
    url = normalize_url(url)
    parsed = parse_url(
        url,
        what="registry database",
        examples="'sqlite:////path/registry.db' or 'postgresql+psycopg://user:pass@host/db'",
    )
    kwargs = engine_options(parsed)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = Path(str(parsed.database)).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"Cannot create the folder {folder} for the registry database: {exc.strerror or exc}.",
                hint="Point MODELPORT_HOME (or MODELPORT_DB_URL) at a folder you can write to.",
            ) from exc
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (sa.exc.NoSuchModuleError, ImportError) as exc:
        raise ConfigError(
            f"No database driver for {redact_url(url)!r}: {exc}.",
            hint="Use 'sqlite:///...' or 'postgresql+psycopg://...' (pip install 'modelport[postgres]').",
        ) from exc
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us emit BEGIN ourselves (pysqlite's implicit transactions cannot do BEGIN IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def is_retryable(exc: BaseException) -> bool:
    """Whether the database asked us to try ``exc``'s transaction again."""
    if not isinstance(exc, sa.exc.DBAPIError) or exc.connection_invalidated:
        return False
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _RETRYABLE_SQLSTATES:
        return True
    message = str(orig).lower()
    return isinstance(exc, sa.exc.OperationalError) and ("database is locked" in message or "is busy" in message)


def unavailable(url: str, exc: BaseException) -> ServiceUnavailable:
    """The error for a database at ``url`` that cannot be reached or used, password hidden."""
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    reason = scrub(detail[0], url) if detail else type(exc).__name__
    return ServiceUnavailable(
        f"Registry database {scrub(normalize_url(url), url)} is unavailable: {reason}",
        hint="Check that the database server is running and reachable and that MODELPORT_DB_URL "
        "(host, port, user, password, database name) is right.",
    )


def run_transaction(engine: Engine, url: str, work: Callable[[Connection], T], *, write: bool) -> T:
    """Run ``work`` in one transaction and commit, retrying it when the database asks to.

    Args:
        engine: The registry engine.
        url: The database URL as configured, only for error messages (its password is hidden).
        work: The unit of work; it must be safe to run again from the start.
        write: Take the write lock at the start (SQLite ``BEGIN IMMEDIATE``).

    Raises:
        ServiceUnavailable: The database cannot be reached, or stayed locked through every attempt.
    """
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with engine.connect() as conn:
                if write:
                    conn.execution_options(**{_IMMEDIATE: True})
                with conn.begin():
                    return work(conn)
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            if not is_retryable(exc) or attempt == MAX_ATTEMPTS:
                raise unavailable(url, exc) from None
        except sa.exc.DBAPIError as exc:
            if not is_retryable(exc) or attempt == MAX_ATTEMPTS:
                raise
        time.sleep(min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt) * (0.5 + random.random() / 2))
    raise AssertionError("unreachable")  # pragma: no cover
