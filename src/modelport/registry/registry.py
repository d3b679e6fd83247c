"""The :class:`Registry` facade: register bundles, resolve references, move aliases, read the audit log.

A registry is a SQL database (SQLite in ``MODELPORT_HOME`` by default, or PostgreSQL) plus a
content-addressed artifact store. Constructing one touches nothing; the first call creates the
engine and migrates the schema. Every change runs in one transaction together with its audit
record (and its alias event, and the revision bump), retried when the database asks to.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from pydantic import SecretStr
from sqlalchemy.engine import Connection, Engine

from modelport.bundle.io import verify_bundle
from modelport.core.errors import Conflict, InvalidName, NotFound, ValidationError
from modelport.core.names import validate_name
from modelport.core.refs import ModelRef
from modelport.core.settings import Settings
from modelport.registry import aliases as alias_sql
from modelport.registry import audit as audit_sql
from modelport.registry import versions as version_sql
from modelport.registry.artifacts import ArtifactStore, open_artifact_store
from modelport.registry.cache import cache_path, materialise
from modelport.registry.db import create_engine, normalize_url, run_transaction, scrub
from modelport.registry.policies import PolicyStore
from modelport.registry.promotions import PromotionStore
from modelport.registry.records import AliasEvent, AuditRecord, ModelSummary, ModelVersion
from modelport.registry.releases import ReleaseStore
from modelport.registry.schema import upgrade
from modelport.registry.users import Principal, UserStore
from modelport.registry.validations import ValidationStore

T = TypeVar("T")

PRODUCTION = "production"
"""The alias a bare model name resolves to when it is set."""


@dataclass(frozen=True)
class _Opened:
    engine: Engine
    url: str
    store: ArtifactStore


def _now() -> datetime:
    return datetime.now(UTC)


def _check_version(version: int) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidName(
            f"Invalid version {version!r}.",
            hint="Versions are positive integers assigned by the registry, e.g. 3.",
        )
    return version


class Registry:
    """Versions, aliases and the audit log of models, over SQL and an artifact store.

    Args:
        settings: Where the database and the artifacts are (``db_url``, ``artifacts_url``,
            ``home``) and who acts (``user``).

    Example:
        >>> registry = Registry(Settings(home=Path(".modelport")))  # doctest: +SKIP
        >>> mv = registry.register(Path("bundles/churn"))  # doctest: +SKIP
        >>> registry.set_alias("churn", "production", mv.version, reason="AUC +2%")  # doctest: +SKIP
        >>> registry.fetch(registry.resolve("churn@production"))  # doctest: +SKIP
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._opened: _Opened | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_urls(cls, db_url: str, artifacts_url: str, *, actor: str, home: Path) -> Registry:
        """A registry on explicit URLs (for servers and jobs that were handed them).

        Args:
            db_url: SQLAlchemy URL of the database.
            artifacts_url: Folder or fsspec URL of the artifact store.
            actor: Who acts, for the audit log.
            home: Folder for the local cache of fetched bundles.
        """
        settings = Settings.model_construct(
            home=Path(home), db_url=SecretStr(db_url), artifacts_url=artifacts_url, user=actor, trusted_pickle=False
        )
        return cls(settings)

    def __repr__(self) -> str:
        url = self._settings.database_url
        return f"Registry({scrub(normalize_url(url), url)!r})"

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------------

    def _open(self) -> _Opened:
        with self._lock:
            if self._opened is None:
                url = self._settings.database_url
                engine = create_engine(url)
                try:
                    upgrade(engine, url)
                except BaseException:
                    engine.dispose()
                    raise
                self._opened = _Opened(engine, url, open_artifact_store(self._settings.artifacts_location))
            return self._opened

    def _read(self, work: Callable[[Connection], T]) -> T:
        opened = self._open()
        return run_transaction(opened.engine, opened.url, work, write=False)

    def _write(self, work: Callable[[Connection], T]) -> T:
        opened = self._open()
        return run_transaction(opened.engine, opened.url, work, write=True)

    @property
    def _actor(self) -> str:
        return self._settings.actor

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (opened and migrated), for layer-3 tables in the same database."""
        return self._open().engine

    def close(self) -> None:
        """Release the database connections; the next call opens them again."""
        with self._lock:
            if self._opened is not None:
                self._opened.engine.dispose()
                self._opened = None

    # -- versions -------------------------------------------------------------------------------

    def register(self, bundle_path: Path, *, name: str | None = None, reason: str | None = None) -> ModelVersion:
        """Verify the bundle at ``bundle_path``, store its files and register it as the next version.

        Args:
            bundle_path: A bundle folder written by ``save_bundle``.
            name: The model name to register under (default: the name in the bundle's manifest).
            reason: Why, for the audit log.

        Returns:
            The new version, numbered one past the highest ever assigned to the name.

        Raises:
            InvalidName: The name is not valid.
            NotFound: ``bundle_path`` is not a bundle folder.
            IntegrityError: A file of the bundle is missing, altered or unlisted.
        """
        if name is not None:
            validate_name(name)
        root = Path(bundle_path)
        manifest = verify_bundle(root)
        model = validate_name(name if name is not None else manifest.name)
        opened = self._open()
        for entry in manifest.artifacts:
            opened.store.put(root / entry.path, entry.sha256)
        actor = self._actor

        def work(conn: Connection) -> ModelVersion:
            now = _now()
            version = version_sql.allocate_version(conn, model, actor=actor, now=now)
            stored = manifest.with_version(model, version)
            digest = version_sql.manifest_digest(stored)
            version_sql.insert_version(conn, stored, digest=digest, actor=actor, now=now)
            audit_sql.record(
                conn,
                at=now,
                actor=actor,
                action="register",
                target=f"{model}:{version}",
                model=model,
                reason=reason,
                details={"digest": digest, "flavor": stored.flavor, "files": len(stored.artifacts)},
            )
            audit_sql.bump_revision(conn)
            return ModelVersion.from_manifest(
                stored, created_at=now, created_by=actor, aliases=(), digest=digest, deleted=False
            )

        return self._write(work)

    def get(self, name: str, version: int) -> ModelVersion:
        """The version ``name:version`` (deleted ones included, with ``deleted=True``).

        Raises:
            NotFound: The model or the version does not exist.
        """
        validate_name(name)
        _check_version(version)

        def work(conn: Connection) -> ModelVersion:
            row = version_sql.require_version(conn, name, version)
            return version_sql.to_model_version(row, alias_sql.aliases_by_version(conn, name).get(version, ()))

        return self._read(work)

    def resolve(self, ref: ModelRef | str) -> ModelVersion:
        """The version a reference means: ``name:3``, ``name@alias``, or a bare ``name``.

        A bare name means the ``production`` alias when it is set, else the latest version that
        is not deleted.

        Raises:
            InvalidName: The reference is malformed.
            ValidationError: The reference is a bundle path, not a registry reference.
            NotFound: The model, version or alias does not exist, or the version is deleted.
        """
        parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
        if parsed.name is None:
            raise ValidationError(
                f"{str(parsed)!r} is a bundle path, not a registry reference.",
                hint="Load a bundle folder directly (modelport.load_model(path)); for the registry use "
                "'name', 'name:3' or 'name@alias'.",
            )
        if parsed.alias is not None and parsed.version is not None:
            raise InvalidName(
                f"Reference {parsed.name}:{parsed.version}@{parsed.alias} names both a version and an alias.",
                hint="Use 'name:3' or 'name@alias', not both.",
            )
        name = validate_name(parsed.name)
        alias = validate_name(parsed.alias, what="alias") if parsed.alias is not None else None
        version = _check_version(parsed.version) if parsed.version is not None else None

        def work(conn: Connection) -> ModelVersion:
            version_sql.require_model(conn, name)
            chosen = version
            if alias is not None:
                chosen = alias_sql.alias_target(conn, name, alias)
                if chosen is None:
                    raise alias_sql.alias_not_found(conn, name, alias)
            if chosen is None:
                chosen = alias_sql.alias_target(conn, name, PRODUCTION) or version_sql.latest_version(conn, name)
            if chosen is None:
                raise NotFound(
                    f"Model {name!r} has no version that is not deleted.",
                    hint=f"Register a new version of {name!r}.",
                )
            row = version_sql.require_version(conn, name, chosen)
            if row.deleted:
                raise NotFound(
                    f"Version {name}:{chosen} is deleted.",
                    hint=f"Use another version (see `modelport models show {name}`).",
                )
            return version_sql.to_model_version(row, alias_sql.aliases_by_version(conn, name).get(chosen, ()))

        return self._read(work)

    def fetch(self, mv: ModelVersion) -> Path:
        """A local, hash-verified bundle folder of ``mv``, cached under ``home/cache/<name>/<version>``.

        The folder's manifest carries the registry-assigned name and version. Treat it as read-only.
        A soft-deleted version can still be fetched: deleting hides it from resolution, never its files.

        Raises:
            NotFound: The version does not exist in this registry.
            IntegrityError: A stored file is missing or altered, or ``mv`` comes from another registry.
        """
        name = validate_name(mv.name)
        version = _check_version(mv.version)
        row = self._read(lambda conn: version_sql.require_version(conn, name, version))
        manifest = version_sql.manifest_of(row)
        if mv.digest != row.digest:
            raise Conflict(
                f"Version {name}:{version} here has digest {row.digest}, not {mv.digest}.",
                hint="The ModelVersion comes from another registry; resolve it again from this one.",
            )
        dest = cache_path(self._settings.home.resolve(), name, version)
        return materialise(self._open().store, manifest, version_sql.manifest_text(manifest), str(row.digest), dest)

    def list_models(self) -> list[ModelSummary]:
        """Every model, sorted by name, with its latest version and aliases."""
        return self._read(version_sql.summaries)

    def list_versions(self, name: str, *, include_deleted: bool = False) -> list[ModelVersion]:
        """The versions of ``name``, oldest first.

        Raises:
            NotFound: The model does not exist.
        """
        validate_name(name)

        def work(conn: Connection) -> list[ModelVersion]:
            version_sql.require_model(conn, name)
            by_version = alias_sql.aliases_by_version(conn, name)
            rows = version_sql.version_rows(conn, name, include_deleted=include_deleted)
            return [version_sql.to_model_version(row, by_version.get(row.version, ())) for row in rows]

        return self._read(work)

    def delete_version(self, name: str, version: int, *, reason: str | None = None) -> None:
        """Soft-delete ``name:version``: it stays in the history but no longer resolves.

        Raises:
            NotFound: The model or the version does not exist.
            Conflict: An alias points at the version, or it is already deleted.
        """
        validate_name(name)
        _check_version(version)
        actor = self._actor

        def work(conn: Connection) -> None:
            version_sql.require_model(conn, name, lock=True)
            row = version_sql.require_version(conn, name, version)
            version_sql.check_not_deleted(row, doing="delete it again")
            pointing = alias_sql.aliases_by_version(conn, name).get(version, ())
            if pointing:
                raise Conflict(
                    f"Cannot delete {name}:{version}: alias {', '.join(pointing)} points at it.",
                    hint=f"Move the alias to another version first (`modelport models alias {name} VERSION "
                    f"{pointing[0]}`), or remove it.",
                )
            now = _now()
            version_sql.mark_deleted(conn, name, version, actor=actor, now=now)
            audit_sql.record(
                conn,
                at=now,
                actor=actor,
                action="version.delete",
                target=f"{name}:{version}",
                model=name,
                reason=reason,
                details={"digest": row.digest},
            )
            audit_sql.bump_revision(conn)

        self._write(work)

    # -- aliases --------------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int, *, reason: str | None = None) -> None:
        """Point ``name@alias`` at ``version``, with its history event and audit record, in one transaction.

        Raises:
            InvalidName: The name, alias or version is not valid.
            NotFound: The model or the version does not exist.
            Conflict: The version is deleted.
        """
        validate_name(name)
        validate_name(alias, what="alias")
        _check_version(version)
        actor = self._actor

        def work(conn: Connection) -> None:
            version_sql.require_model(conn, name, lock=True)
            row = version_sql.require_version(conn, name, version)
            version_sql.check_not_deleted(row, doing=f"point alias {alias!r} at it")
            now = _now()
            old = alias_sql.point_alias(conn, name, alias, version, actor=actor, now=now, reason=reason)
            if old == version:
                return
            audit_sql.record(
                conn,
                at=now,
                actor=actor,
                action="alias.set",
                target=f"{name}@{alias}",
                model=name,
                reason=reason,
                details={"old_version": old, "new_version": version},
            )
            audit_sql.bump_revision(conn)

        self._write(work)

    def remove_alias(self, name: str, alias: str, *, reason: str | None = None) -> None:
        """Remove ``name@alias``, with its history event and audit record, in one transaction.

        Raises:
            NotFound: The model or the alias does not exist.
        """
        validate_name(name)
        validate_name(alias, what="alias")
        actor = self._actor

        def work(conn: Connection) -> None:
            version_sql.require_model(conn, name, lock=True)
            now = _now()
            old = alias_sql.remove_alias(conn, name, alias, actor=actor, now=now, reason=reason)
            audit_sql.record(
                conn,
                at=now,
                actor=actor,
                action="alias.remove",
                target=f"{name}@{alias}",
                model=name,
                reason=reason,
                details={"old_version": old, "new_version": None},
            )
            audit_sql.bump_revision(conn)

        self._write(work)

    def aliases(self, name: str) -> dict[str, int]:
        """Alias → version for ``name``.

        Raises:
            NotFound: The model does not exist.
        """
        validate_name(name)

        def work(conn: Connection) -> dict[str, int]:
            version_sql.require_model(conn, name)
            return alias_sql.aliases_of(conn, name)

        return self._read(work)

    def alias_history(self, name: str) -> list[AliasEvent]:
        """Every move of every alias of ``name``, oldest first.

        Raises:
            NotFound: The model does not exist.
        """
        validate_name(name)

        def work(conn: Connection) -> list[AliasEvent]:
            version_sql.require_model(conn, name)
            return alias_sql.alias_history(conn, name)

        return self._read(work)

    # -- audit ----------------------------------------------------------------------------------

    def audit(self, name: str | None = None, *, since: datetime | None = None) -> list[AuditRecord]:
        """The audit log, oldest first: everything, or only entries about model ``name``, at or after ``since``."""
        if name is not None:
            validate_name(name)
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return self._read(lambda conn: audit_sql.read(conn, model=name, since=since))

    def record_audit(
        self, action: str, target: str, *, reason: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        """Record an action of another layer (a batch run, an approval) in the audit log.

        Args:
            action: What happened, e.g. ``batch.run`` (lowercase letters, digits, ``.``, ``_``, ``-``).
            target: On what; a model reference like ``churn:3`` files the entry under that model.
            reason: Why.
            details: JSON-able facts.

        Raises:
            ValidationError: The action, target, reason or details are not valid.
        """
        audit_sql.check_entry(action, target, reason, details)
        actor = self._actor

        def work(conn: Connection) -> None:
            model = audit_sql.model_of(target)
            known = model is not None and version_sql.model_exists(conn, model)
            audit_sql.record(
                conn,
                at=_now(),
                actor=actor,
                action=action,
                target=target,
                model=model if known else None,
                reason=reason,
                details=details,
            )

        self._write(work)

    def revision(self) -> int:
        """A counter bumped by every registration, alias change, deletion and user or key change (cheap to poll)."""
        return self._read(audit_sql.read_revision)

    # -- governance: stores kept in the same database (see users, policies, validations, promotions, releases) --

    @property
    def actor(self) -> str:
        """Who acts in calls that take no principal: ``settings.user``, else the OS user."""
        return self._actor

    @property
    def users(self) -> UserStore:
        """Users, roles and hashed API keys."""
        opened = self._open()
        return UserStore(opened.engine, opened.url)

    @property
    def policies(self) -> PolicyStore:
        """Promotion policies (per model, or registry-wide)."""
        opened = self._open()
        return PolicyStore(opened.engine, opened.url)

    @property
    def validations(self) -> ValidationStore:
        """Stored validation reports."""
        opened = self._open()
        return ValidationStore(opened.engine, opened.url)

    @property
    def promotions(self) -> PromotionStore:
        """Promotion requests, approvals, and the clearance of protected aliases."""
        opened = self._open()
        return PromotionStore(opened.engine, opened.url)

    @property
    def releases(self) -> ReleaseStore:
        """Release configs (canary, shadow) and the traffic servers report."""
        opened = self._open()
        return ReleaseStore(opened.engine, opened.url)

    def authenticate(self, key: str) -> Principal:
        """The user (name and roles) owning API key ``key``.

        Raises:
            Unauthenticated: The key is malformed, unknown or revoked, or its user is disabled.
        """
        return self.users.authenticate(key)
