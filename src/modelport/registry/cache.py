"""Materialise registered versions as local bundle folders under ``home/cache/<name>/<version>``.

A version is assembled in a hidden staging folder next to its destination — every file fetched
from the artifact store and verified against its sha256, the manifest written with the
registry-assigned name and version — checked as a whole with
:func:`modelport.bundle.io.verify_bundle`, and renamed into place in one step. A cached folder is
re-verified on every fetch; one that no longer matches is moved aside and rebuilt. When two
processes fetch the same version at once, the first rename wins and the other keeps its result.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path, PurePosixPath

from modelport.bundle.io import verify_bundle
from modelport.bundle.manifest import MANIFEST_FILE, Manifest
from modelport.core.errors import IntegrityError, ModelportError
from modelport.core.names import validate_name
from modelport.registry.artifacts import ArtifactStore

CACHE_DIR = "cache"


def cache_path(home: Path, name: str, version: int) -> Path:
    """Where ``name:version`` is materialised below ``home`` (the name is validated first)."""
    validate_name(name)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive integer, got {version!r}")
    return home / CACHE_DIR / name / str(version)


def materialise(store: ArtifactStore, manifest: Manifest, manifest_text: str, digest: str, dest: Path) -> Path:
    """Make ``dest`` a verified bundle folder of the stored version and return it.

    Args:
        store: The artifact store holding the version's files.
        manifest: The stored manifest (with the registry-assigned name and version).
        manifest_text: Its exact YAML text, whose sha256 is ``digest``.
        digest: The version's digest.
        dest: The cache folder of the version.

    Raises:
        IntegrityError: A stored file is missing or does not match its sha256.
    """
    if dest.is_dir():
        if is_intact(dest, digest):
            return dest
        _discard(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".staging", dir=dest.parent))
    try:
        os.chmod(staging, 0o755)
        for entry in manifest.artifacts:
            store.get(entry.sha256, _inside(staging, entry.path))
        (staging / MANIFEST_FILE).write_bytes(manifest_text.encode("utf-8"))
        verify_bundle(staging)
        try:
            os.replace(staging, dest)
        except OSError:
            if is_intact(dest, digest):  # another process put an intact copy there first
                return dest
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def is_intact(folder: Path, digest: str) -> bool:
    """Whether ``folder`` is a complete, unaltered bundle whose manifest hashes to ``digest``."""
    manifest_file = folder / MANIFEST_FILE
    try:
        if hashlib.sha256(manifest_file.read_bytes()).hexdigest() != digest:
            return False
        verify_bundle(folder)
    except (OSError, ModelportError):
        return False
    return True


def _inside(root: Path, relative: str) -> Path:
    """``root/relative`` for a manifest path that stays inside ``root``; IntegrityError otherwise."""
    parts = PurePosixPath(relative).parts
    if (
        not parts
        or PurePosixPath(relative).is_absolute()
        or "\\" in relative
        or any(part in ("", ".", "..") for part in parts)
        or parts[0] == MANIFEST_FILE
    ):
        raise IntegrityError(
            f"The stored manifest lists a file outside its bundle: {relative!r}.",
            hint="The registry database was altered; register the bundle again from a good copy.",
        )
    return root.joinpath(*parts)


def _discard(folder: Path) -> None:
    """Move a damaged cache folder aside in one step, then delete it."""
    trash = folder.with_name(f".{folder.name}.trash-{uuid.uuid4().hex}")
    with contextlib.suppress(FileNotFoundError):
        os.replace(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)
