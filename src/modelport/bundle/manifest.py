"""The manifest ``modelport.yaml``: what a bundle holds, with a schema version.

The manifest lists every artifact with its sha256; loading verifies them all before any byte of
an artifact is deserialised.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from modelport.core.errors import IntegrityError, NotFound
from modelport.core.types import Signature

SCHEMA_VERSION = 1
MANIFEST_FILE = "modelport.yaml"
ARTIFACTS_DIR = "artifacts"
REFERENCE_DIR = "reference"

RedactionAction = Literal["drop", "hash", "mask"]


class ArtifactEntry(BaseModel):
    """One file of the bundle, relative to the bundle root, with its digest and size."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    sha256: str
    size: int
    pickle: bool = False


class Provenance(BaseModel):
    """Who made the bundle, where and when, and from what."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user: str
    host: str
    created_at: datetime
    git_commit: str | None = None
    training_data: str | None = None


class Manifest(BaseModel):
    """Contents of ``modelport.yaml``."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    schema_version: int = SCHEMA_VERSION
    name: str
    version: int | None = None
    flavor: str
    flavor_options: dict[str, Any] = Field(default_factory=dict)
    python_version: str
    framework: dict[str, str] = Field(default_factory=dict)
    requirements: tuple[str, ...] = ()
    signature: Signature
    artifacts: tuple[ArtifactEntry, ...] = ()
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    description: str | None = None
    redaction: dict[str, RedactionAction] = Field(default_factory=dict)
    provenance: Provenance

    def to_yaml(self) -> str:
        """Serialise to YAML text (stable key order)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_yaml(cls, text: str, *, source: str = MANIFEST_FILE) -> Manifest:
        """Parse YAML text, raising :class:`IntegrityError` naming ``source`` when it is invalid."""
        try:
            data = yaml.safe_load(text)
            if not isinstance(data, dict):
                raise TypeError("not a mapping")
            return cls.model_validate(data)
        except (yaml.YAMLError, TypeError, PydanticValidationError) as exc:
            raise IntegrityError(
                f"Bundle manifest {source} is not valid: {str(exc).splitlines()[0]}",
                hint="The bundle is corrupted or was written by an incompatible tool; re-save the model.",
            ) from exc

    def with_version(self, name: str, version: int) -> Manifest:
        """A copy with the registry-assigned name and version."""
        return self.model_copy(update={"name": name, "version": version})


def read_manifest(bundle_dir: Path) -> Manifest:
    """Read ``bundle_dir/modelport.yaml`` (no hash verification: see ``bundle.io.verify``)."""
    path = bundle_dir / MANIFEST_FILE
    if not path.is_file():
        raise NotFound(
            f"No {MANIFEST_FILE} in {bundle_dir}.",
            hint="Point at a bundle folder written by modelport.save_bundle or save_model.",
        )
    manifest = Manifest.from_yaml(path.read_text(encoding="utf-8"), source=str(path))
    if manifest.schema_version > SCHEMA_VERSION:
        raise IntegrityError(
            f"Bundle {bundle_dir} has manifest schema {manifest.schema_version}; this modelport reads up to "
            f"{SCHEMA_VERSION}.",
            hint="Upgrade modelport.",
        )
    return manifest
