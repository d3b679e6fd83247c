"""The registry's SQL tables, on one shared :data:`metadata`.

``models`` holds one row per model name and the counter of versions ever assigned to it;
``versions`` the immutable versions (manifest as JSON, its digest, a soft-delete flag);
``aliases`` where each alias points now and ``alias_events`` how it moved; ``audit_log`` every
change with actor, time, action, target and reason; ``registry_state`` a single row whose
``revision`` counter every change bumps, so a server can poll it cheaply. Other layer-2/3
modules add their tables to the same ``metadata``. The schema itself is created and upgraded by
the Alembic migrations in ``registry/migrations``, never by ``metadata.create_all``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

NAME_LENGTH = 128
"""Longest model or alias name (see :mod:`modelport.core.names`)."""

STATE_ROW_ID = 1
"""Primary key of the single ``registry_state`` row."""


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite stores no zone; we add it back)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        """Store aware timestamps in UTC; naive ones are taken to be UTC already."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        """Return aware UTC timestamps."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

models = sa.Table(
    "models",
    metadata,
    sa.Column("name", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("last_version", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("name", sa.String(NAME_LENGTH), sa.ForeignKey("models.name"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("flavor", sa.String(64), nullable=False),
    sa.Column("manifest", sa.JSON(), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False),
    sa.Column("deleted_at", UTCDateTime, nullable=True),
    sa.Column("deleted_by", sa.String(255), nullable=True),
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("name", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("alias", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("updated_by", sa.String(255), nullable=False),
    sa.ForeignKeyConstraint(["name", "version"], ["versions.name", "versions.version"]),
)

alias_events = sa.Table(
    "alias_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(NAME_LENGTH), sa.ForeignKey("models.name"), nullable=False, index=True),
    sa.Column("alias", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("old_version", sa.Integer, nullable=True),
    sa.Column("new_version", sa.Integer, nullable=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False, index=True),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(512), nullable=False),
    sa.Column("model", sa.String(NAME_LENGTH), nullable=True, index=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("details", sa.JSON(), nullable=True),
)

registry_state = sa.Table(
    "registry_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("revision", sa.BigInteger, nullable=False),
)
