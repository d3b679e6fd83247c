"""Bring a registry database to the schema this modelport expects, with Alembic, in code.

:func:`upgrade` runs the migrations in ``registry/migrations`` on an open, locked transaction:
PostgreSQL takes a transaction-level advisory lock and SQLite a ``BEGIN IMMEDIATE`` write lock,
so processes that open a fresh database at the same moment migrate it once, one after the other.
An old database is upgraded in place, never dropped; a database whose schema is newer than this
modelport is refused with :class:`~modelport.core.errors.ConfigError`.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine

from modelport.core.errors import ConfigError
from modelport.registry.db import run_transaction

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
VERSION_TABLE = "modelport_alembic_version"
FIRST_REVISION = "0001_initial"
_ADVISORY_LOCK_KEY = 0x6D6F64656C706F72  # "modelpor"


def alembic_config() -> Config:
    """An Alembic configuration built in code, pointing at the package's migrations folder."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    return config


def head_revision() -> str:
    """The newest schema revision this modelport knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise ConfigError("The registry migrations are missing.", hint="Reinstall modelport.")
    return head


def current_revision(engine: Engine, url: str) -> str | None:
    """The schema revision the database is at, or ``None`` for an empty database."""

    def _read(conn: Connection) -> str | None:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()

    return run_transaction(engine, url, _read, write=False)


def upgrade(engine: Engine, url: str, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (default: the newest), creating it from empty if needed.

    Raises:
        ConfigError: The database is at a revision this modelport does not know (it is newer).
        ServiceUnavailable: The database cannot be reached.
    """
    config = alembic_config()

    def _migrate(conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
        config.attributes["connection"] = conn
        try:
            command.upgrade(config, revision)
        except CommandError as exc:
            raise ConfigError(
                f"The registry database schema cannot be upgraded to {revision!r}: {exc}.",
                hint="The database was probably written by a newer modelport; upgrade modelport "
                "(the database is never downgraded or dropped automatically).",
            ) from exc
        finally:
            config.attributes.pop("connection", None)

    run_transaction(engine, url, _migrate, write=True)


def downgrade(engine: Engine, url: str, revision: str) -> None:
    """Migrate the database down to ``revision`` (``"base"`` drops every registry table).

    Only ever called on explicit request (tests, an operator's maintenance); opening a registry
    never downgrades.
    """
    config = alembic_config()

    def _migrate(conn: Connection) -> None:
        config.attributes["connection"] = conn
        try:
            command.downgrade(config, revision)
        finally:
            config.attributes.pop("connection", None)

    run_transaction(engine, url, _migrate, write=True)
