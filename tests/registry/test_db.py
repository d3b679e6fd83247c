"""Engines, transactions and database errors: SQLite pragmas and locking, retries, redacted URLs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from modelport.core.errors import ConfigError, ServiceUnavailable
from modelport.registry import db
from modelport.registry.registry import Registry


def _locked() -> sa.exc.OperationalError:
    return sa.exc.OperationalError("UPDATE x", {}, sqlite3.OperationalError("database is locked"))


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"error {sqlstate}")
        self.sqlstate = sqlstate


def test_sqlite_pragmas(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'deep' / 'folder' / 'r.db'}"
    engine = db.create_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.SQLITE_BUSY_TIMEOUT_MS
    engine.dispose()


def test_sqlite_write_transactions_take_the_lock_at_begin(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    engine = db.create_engine(f"sqlite:///{path}")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    seen: list[str] = []

    def work(conn: Connection) -> None:
        # Nothing written yet, but BEGIN IMMEDIATE already holds the write lock.
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        seen.append("locked")

    db.run_transaction(engine, str(engine.url), work, write=True)
    db.run_transaction(engine, str(engine.url), lambda conn: other.execute("BEGIN IMMEDIATE"), write=False)
    other.execute("ROLLBACK")
    other.close()
    engine.dispose()
    assert seen == ["locked"]


def test_retryable_errors() -> None:
    assert db.is_retryable(_locked())
    assert db.is_retryable(sa.exc.DBAPIError("SELECT", {}, _PgError("40001")))
    assert db.is_retryable(sa.exc.OperationalError("SELECT", {}, _PgError("40P01")))
    assert not db.is_retryable(sa.exc.OperationalError("SELECT", {}, _PgError("08006")))
    assert not db.is_retryable(sa.exc.IntegrityError("INSERT", {}, _PgError("23505")))
    assert not db.is_retryable(ValueError("database is locked"))


def test_run_transaction_retries_then_succeeds(tmp_path: Path) -> None:
    engine = db.create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    calls: list[int] = []

    def work(conn: Connection) -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _locked()
        return "done"

    assert db.run_transaction(engine, "sqlite:///r.db", work, write=True) == "done"
    assert len(calls) == 3
    engine.dispose()


def test_run_transaction_gives_up_after_bounded_attempts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "BACKOFF_CAP_S", 0.001)
    engine = db.create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    calls: list[int] = []

    def work(conn: Connection) -> None:
        calls.append(1)
        raise _locked()

    with pytest.raises(ServiceUnavailable, match="database is locked"):
        db.run_transaction(engine, "sqlite:///r.db", work, write=True)
    assert len(calls) == db.MAX_ATTEMPTS
    engine.dispose()


def test_non_retryable_database_errors_propagate(tmp_path: Path) -> None:
    engine = db.create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    calls: list[int] = []

    def work(conn: Connection) -> None:
        calls.append(1)
        raise sa.exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed"))

    with pytest.raises(sa.exc.IntegrityError):
        db.run_transaction(engine, "sqlite:///r.db", work, write=True)
    assert len(calls) == 1
    engine.dispose()


def test_unreachable_postgres_is_service_unavailable_without_the_password(tmp_path: Path) -> None:
    url = "postgresql://admin:s3cr3t-Pa55@127.0.0.1:1/registry"
    registry = Registry.from_urls(url, str(tmp_path / "artifacts"), actor="tester", home=tmp_path / "home")
    with pytest.raises(ServiceUnavailable) as info:
        registry.list_models()
    error = info.value
    text = f"{error} {error.hint} {error.__cause__} {error.__context__}"
    assert "s3cr3t-Pa55" not in text
    assert "postgresql+psycopg://admin:***@127.0.0.1:1/registry" in error.message
    assert error.hint
    assert "MODELPORT_DB_URL" in error.hint
    assert "s3cr3t-Pa55" not in repr(registry)


def test_unwritable_sqlite_home_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="Cannot create the folder") as info:
        db.create_engine(f"sqlite:///{blocker / 'home' / 'registry.db'}")
    assert info.value.hint


def test_unopenable_sqlite_file_is_service_unavailable(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder.db"
    folder.mkdir()
    engine = db.create_engine(f"sqlite:///{folder}")
    with pytest.raises(ServiceUnavailable, match="unable to open database file"):
        db.run_transaction(engine, str(engine.url), lambda conn: None, write=False)
    engine.dispose()


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "nosuchdb://user:pw@host/db",
        "postgresql+nosuchdriver://user:pw@host/db",
        "postgresql://user:pw@host:notaport/db",
    ],
)
def test_bad_urls_are_config_errors_with_hints(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        db.create_engine(url)
    assert info.value.hint
    assert ":pw@" not in str(info.value)


def test_postgres_urls_use_psycopg() -> None:
    assert db.normalize_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert db.normalize_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert db.normalize_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"
    assert db.normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_scrub_hides_the_password_even_outside_a_url() -> None:
    url = "postgresql://u:hunter2@h/d"
    assert db.scrub("auth failed for hunter2 at postgresql://u:hunter2@h/d", url) == (
        "auth failed for *** at postgresql://u:***@h/d"
    )
    assert db.scrub("plain text", "not a url") == "plain text"
