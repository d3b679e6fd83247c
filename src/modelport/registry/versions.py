"""Models and their immutable versions in SQL: allocate, insert, read, soft-delete.

Every function takes an open connection inside a transaction that the caller owns (see
:func:`modelport.registry.db.run_transaction`); nothing here commits. Version numbers come from
the ``models.last_version`` counter, read under a row lock (``SELECT ... FOR UPDATE`` on
PostgreSQL; the ``BEGIN IMMEDIATE`` write lock on SQLite), so two processes registering the
same name at once get consecutive, distinct versions and a number is never reused.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from modelport.bundle.manifest import Manifest
from modelport.core.errors import Conflict, IntegrityError, NotFound
from modelport.registry.records import ModelSummary, ModelVersion
from modelport.registry.tables import aliases, models, versions


def manifest_text(manifest: Manifest) -> str:
    """The exact ``modelport.yaml`` text of a stored version (what :func:`manifest_digest` hashes)."""
    return manifest.to_yaml()


def manifest_digest(manifest: Manifest) -> str:
    """sha256 of the manifest's YAML text: the identity of a whole bundle, as it lists every file's hash."""
    return hashlib.sha256(manifest_text(manifest).encode("utf-8")).hexdigest()


def model_not_found(name: str) -> NotFound:
    """The error for a model name the registry does not know."""
    return NotFound(
        f"No model named {name!r} in the registry.",
        hint="List the registered models with `modelport models list`, or register a bundle first "
        "(`modelport models register PATH`).",
    )


def lock_model(conn: Connection, name: str) -> Row[Any] | None:
    """The ``models`` row of ``name``, locked for the rest of the transaction, or ``None``."""
    query = sa.select(models).where(models.c.name == name).with_for_update()
    return conn.execute(query).first()


def model_exists(conn: Connection, name: str) -> bool:
    """Whether ``name`` is a registered model."""
    return conn.execute(sa.select(models.c.name).where(models.c.name == name)).first() is not None


def require_model(conn: Connection, name: str, *, lock: bool = False) -> None:
    """Raise :class:`NotFound` unless ``name`` is a registered model (locking its row if asked)."""
    exists = lock_model(conn, name) is not None if lock else model_exists(conn, name)
    if not exists:
        raise model_not_found(name)


def allocate_version(conn: Connection, name: str, *, actor: str, now: datetime) -> int:
    """Create the model row if needed, lock it, and take the next version number."""
    values = {"name": name, "last_version": 0, "created_at": now, "created_by": actor}
    if conn.dialect.name == "postgresql":
        conn.execute(postgresql.insert(models).values(**values).on_conflict_do_nothing(index_elements=["name"]))
    elif conn.dialect.name == "sqlite":
        conn.execute(sqlite.insert(models).values(**values).on_conflict_do_nothing(index_elements=["name"]))
    elif lock_model(conn, name) is None:  # other backends: the transaction's own lock protects us
        conn.execute(sa.insert(models).values(**values))
    row = lock_model(conn, name)
    if row is None:  # pragma: no cover - we just inserted it
        raise model_not_found(name)
    version = int(row.last_version) + 1
    conn.execute(sa.update(models).where(models.c.name == name).values(last_version=version))
    return version


def insert_version(conn: Connection, manifest: Manifest, *, digest: str, actor: str, now: datetime) -> None:
    """Store a version whose manifest carries its registry-assigned name and version."""
    conn.execute(
        sa.insert(versions).values(
            name=manifest.name,
            version=manifest.version,
            flavor=manifest.flavor,
            manifest=manifest.model_dump(mode="json"),
            digest=digest,
            created_at=now,
            created_by=actor,
            deleted=False,
        )
    )


def version_row(conn: Connection, name: str, version: int) -> Row[Any] | None:
    """The ``versions`` row of ``name:version``, or ``None``."""
    query = sa.select(versions).where(versions.c.name == name, versions.c.version == version)
    return conn.execute(query).first()


def require_version(conn: Connection, name: str, version: int) -> Row[Any]:
    """The row of ``name:version``; :class:`NotFound` naming the versions there are otherwise."""
    row = version_row(conn, name, version)
    if row is not None:
        return row
    require_model(conn, name)
    existing = [r.version for r in version_rows(conn, name, include_deleted=False)]
    listed = ", ".join(str(v) for v in existing[-10:]) or "none"
    raise NotFound(
        f"Model {name!r} has no version {version}.",
        hint=f"Versions of {name!r} that exist: {listed} (see `modelport models show {name}`).",
    )


def version_rows(conn: Connection, name: str, *, include_deleted: bool) -> list[Row[Any]]:
    """The rows of ``name``'s versions, oldest first."""
    query = sa.select(versions).where(versions.c.name == name)
    if not include_deleted:
        query = query.where(versions.c.deleted.is_(False))
    return list(conn.execute(query.order_by(versions.c.version)))


def latest_version(conn: Connection, name: str) -> int | None:
    """The newest version of ``name`` that is not deleted, or ``None``."""
    query = sa.select(sa.func.max(versions.c.version)).where(versions.c.name == name, versions.c.deleted.is_(False))
    value = conn.execute(query).scalar()
    return int(value) if value is not None else None


def mark_deleted(conn: Connection, name: str, version: int, *, actor: str, now: datetime) -> None:
    """Soft-delete ``name:version`` (the caller has checked no alias points at it)."""
    conn.execute(
        sa.update(versions)
        .where(versions.c.name == name, versions.c.version == version)
        .values(deleted=True, deleted_at=now, deleted_by=actor)
    )


def check_not_deleted(row: Row[Any], *, doing: str) -> None:
    """Raise :class:`Conflict` when the version in ``row`` is deleted."""
    if row.deleted:
        raise Conflict(
            f"Version {row.name}:{row.version} is deleted; cannot {doing}.",
            hint=f"Pick a version that is not deleted (see `modelport models show {row.name}`).",
        )


def manifest_of(row: Row[Any]) -> Manifest:
    """The stored manifest of a ``versions`` row.

    Raises:
        IntegrityError: The stored manifest is unreadable or no longer matches its digest.
    """
    try:
        manifest = Manifest.model_validate(row.manifest)
    except PydanticValidationError as exc:
        raise IntegrityError(
            f"The stored manifest of {row.name}:{row.version} is not valid: {str(exc).splitlines()[0]}",
            hint="The registry database was altered by hand; register the bundle again.",
        ) from exc
    if manifest_digest(manifest) != row.digest:
        raise IntegrityError(
            f"The stored manifest of {row.name}:{row.version} does not match its digest {row.digest}.",
            hint="The registry database was altered by hand; register the bundle again.",
        )
    return manifest


def to_model_version(row: Row[Any], alias_names: tuple[str, ...]) -> ModelVersion:
    """The :class:`ModelVersion` of a ``versions`` row, given the aliases pointing at it."""
    return ModelVersion.from_manifest(
        manifest_of(row),
        created_at=row.created_at,
        created_by=row.created_by,
        aliases=alias_names,
        digest=row.digest,
        deleted=bool(row.deleted),
    )


def summaries(conn: Connection) -> list[ModelSummary]:
    """One summary per model, sorted by name."""
    alias_map: dict[str, dict[str, int]] = {}
    for alias_row in conn.execute(sa.select(aliases.c.name, aliases.c.alias, aliases.c.version)):
        alias_map.setdefault(alias_row.name, {})[alias_row.alias] = int(alias_row.version)
    live = (
        sa.select(
            versions.c.name,
            sa.func.max(versions.c.version).label("latest"),
            sa.func.count().label("live_count"),
        )
        .where(versions.c.deleted.is_(False))
        .group_by(versions.c.name)
        .subquery()
    )
    query = (
        sa.select(
            models.c.name,
            models.c.created_at,
            live.c.latest,
            live.c.live_count,
            versions.c.created_at.label("latest_at"),
            versions.c.manifest,
        )
        .select_from(models)
        .outerjoin(live, live.c.name == models.c.name)
        .outerjoin(versions, sa.and_(versions.c.name == live.c.name, versions.c.version == live.c.latest))
        .order_by(models.c.name)
    )
    result = []
    for row in conn.execute(query):
        latest = int(row.latest) if row.latest is not None else None
        manifest = row.manifest if latest is not None else {}
        result.append(
            ModelSummary(
                name=row.name,
                latest_version=latest,
                version_count=int(row.live_count or 0),
                aliases=dict(sorted(alias_map.get(row.name, {}).items())),
                created_at=row.created_at,
                updated_at=row.latest_at if latest is not None else row.created_at,
                flavor=manifest.get("flavor"),
                description=manifest.get("description"),
            )
        )
    return result
