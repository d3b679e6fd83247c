"""Aliases in SQL: where each alias of a model points now, and every move it made.

An alias (``production``, ``staging``, any valid name) points at one version of its model.
Moving or removing it writes the new state and an ``alias_events`` row in the caller's
transaction, next to the audit record, so the history is never out of step with the state.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from modelport.core.errors import NotFound
from modelport.registry.records import AliasEvent
from modelport.registry.tables import alias_events, aliases


def aliases_of(conn: Connection, name: str) -> dict[str, int]:
    """Alias → version for model ``name``, sorted by alias."""
    query = sa.select(aliases.c.alias, aliases.c.version).where(aliases.c.name == name).order_by(aliases.c.alias)
    return {row.alias: int(row.version) for row in conn.execute(query)}


def aliases_by_version(conn: Connection, name: str) -> dict[int, tuple[str, ...]]:
    """Version → the aliases pointing at it, for model ``name``."""
    result: dict[int, list[str]] = {}
    for alias, version in aliases_of(conn, name).items():
        result.setdefault(version, []).append(alias)
    return {version: tuple(names) for version, names in result.items()}


def alias_target(conn: Connection, name: str, alias: str) -> int | None:
    """The version ``name@alias`` points at, or ``None``."""
    query = sa.select(aliases.c.version).where(aliases.c.name == name, aliases.c.alias == alias)
    value = conn.execute(query).scalar()
    return int(value) if value is not None else None


def alias_not_found(conn: Connection, name: str, alias: str) -> NotFound:
    """The error for an alias that is not set, naming the aliases that are."""
    existing = ", ".join(aliases_of(conn, name)) or "none"
    return NotFound(
        f"Model {name!r} has no alias {alias!r}.",
        hint=f"Aliases of {name!r}: {existing}. Set one with `modelport models alias {name} VERSION {alias}`.",
    )


def point_alias(
    conn: Connection, name: str, alias: str, version: int, *, actor: str, now: datetime, reason: str | None
) -> int | None:
    """Point ``name@alias`` at ``version``, recording the move; return the version it pointed at before.

    Nothing is written when the alias already points at ``version``.
    """
    old = alias_target(conn, name, alias)
    if old == version:
        return old
    values = {"version": version, "updated_at": now, "updated_by": actor}
    if old is None:
        conn.execute(sa.insert(aliases).values(name=name, alias=alias, **values))
    else:
        conn.execute(sa.update(aliases).where(aliases.c.name == name, aliases.c.alias == alias).values(**values))
    _record_event(conn, name, alias, old, version, actor=actor, now=now, reason=reason)
    return old


def remove_alias(conn: Connection, name: str, alias: str, *, actor: str, now: datetime, reason: str | None) -> int:
    """Remove ``name@alias``, recording the move; return the version it pointed at.

    Raises:
        NotFound: The alias is not set.
    """
    old = alias_target(conn, name, alias)
    if old is None:
        raise alias_not_found(conn, name, alias)
    conn.execute(sa.delete(aliases).where(aliases.c.name == name, aliases.c.alias == alias))
    _record_event(conn, name, alias, old, None, actor=actor, now=now, reason=reason)
    return old


def alias_history(conn: Connection, name: str) -> list[AliasEvent]:
    """Every move of every alias of ``name``, oldest first."""
    query = sa.select(alias_events).where(alias_events.c.name == name).order_by(alias_events.c.id)
    return [
        AliasEvent(
            name=row.name,
            alias=row.alias,
            old_version=row.old_version,
            new_version=row.new_version,
            at=row.at,
            actor=row.actor,
            reason=row.reason,
        )
        for row in conn.execute(query)
    ]


def _record_event(
    conn: Connection,
    name: str,
    alias: str,
    old: int | None,
    new: int | None,
    *,
    actor: str,
    now: datetime,
    reason: str | None,
) -> None:
    conn.execute(
        sa.insert(alias_events).values(
            name=name, alias=alias, old_version=old, new_version=new, at=now, actor=actor, reason=reason
        )
    )
