"""The frozen value objects the registry hands out: versions, model summaries, alias events, audit records.

They are snapshots: changing the registry afterwards never changes an object already returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelport.bundle.manifest import Manifest
from modelport.core.types import Signature


@dataclass(frozen=True)
class ModelVersion:
    """One immutable, registered version of a model.

    Attributes:
        name: The model name.
        version: Its integer version, assigned by the registry (1, 2, ...; never reused).
        flavor: The flavor that saved it (``sklearn``, ``xgboost``, ...).
        created_at: When it was registered (UTC).
        created_by: Who registered it.
        description: Free text from the bundle.
        tags: Tags from the bundle.
        metrics: Metrics from the bundle.
        aliases: Aliases pointing at this version now, sorted.
        digest: sha256 of the stored manifest (``modelport.yaml`` with this name and version),
            which lists the sha256 of every other file: the identity of the whole bundle.
        deleted: Whether the version was soft-deleted.
        signature: Input and output signature.
    """

    name: str
    version: int
    flavor: str
    created_at: datetime
    created_by: str
    description: str | None
    tags: dict[str, str] = field(hash=False)
    metrics: dict[str, float] = field(hash=False)
    aliases: tuple[str, ...]
    digest: str
    deleted: bool
    signature: Signature

    @property
    def ref(self) -> str:
        """The reference ``name:version`` that resolves to exactly this version."""
        return f"{self.name}:{self.version}"

    @classmethod
    def from_manifest(
        cls,
        manifest: Manifest,
        *,
        created_at: datetime,
        created_by: str,
        aliases: tuple[str, ...],
        digest: str,
        deleted: bool,
    ) -> ModelVersion:
        """Build from a stored manifest (which carries the registry-assigned name and version)."""
        if manifest.version is None:
            raise ValueError("a registered manifest always has a version")
        return cls(
            name=manifest.name,
            version=manifest.version,
            flavor=manifest.flavor,
            created_at=created_at,
            created_by=created_by,
            description=manifest.description,
            tags=dict(manifest.tags),
            metrics=dict(manifest.metrics),
            aliases=tuple(sorted(aliases)),
            digest=digest,
            deleted=deleted,
            signature=manifest.signature,
        )


@dataclass(frozen=True)
class ModelSummary:
    """One model, as listed by :meth:`~modelport.registry.registry.Registry.list_models`.

    Attributes:
        name: The model name.
        latest_version: The newest version that is not deleted, or ``None`` when all are.
        version_count: How many versions are not deleted.
        aliases: Alias → version.
        created_at: When the model's first version was registered.
        updated_at: When its newest version was registered.
        flavor: Flavor of the latest version.
        description: Description of the latest version.
    """

    name: str
    latest_version: int | None
    version_count: int
    aliases: dict[str, int] = field(hash=False)
    created_at: datetime
    updated_at: datetime
    flavor: str | None
    description: str | None


@dataclass(frozen=True)
class AliasEvent:
    """One move of an alias: set (``old_version`` None), moved, or removed (``new_version`` None)."""

    name: str
    alias: str
    old_version: int | None
    new_version: int | None
    at: datetime
    actor: str
    reason: str | None


@dataclass(frozen=True)
class AuditRecord:
    """One entry of the audit log.

    Attributes:
        id: Increasing sequence number.
        at: When (UTC).
        actor: Who (``MODELPORT_USER`` or the OS user).
        action: What, e.g. ``register``, ``alias.set``, ``alias.remove``, ``version.delete``.
        target: On what, as a reference (``churn:3``, ``churn@production``) or another layer's id.
        model: The model the target belongs to, when it is one.
        reason: Why, as the actor gave it.
        details: Extra JSON-able facts (digest, old and new version, ...).
    """

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    model: str | None
    reason: str | None
    details: dict[str, Any] = field(hash=False)
