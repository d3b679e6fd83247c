"""Content digests of bundle files: streamed sha256, so a large artifact never sits in memory twice.

Every artifact listed in a manifest carries the digest computed here; loading recomputes it
before any byte of the artifact is deserialised.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK_BYTES = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file at ``path``, read in 1 MiB chunks.

    Example:
        >>> sha256_file(Path("bundle/artifacts/model.skops"))  # doctest: +SKIP
        '9f86d081884c7d65...'
    """
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data`` (used when an artifact is read into memory once and checked there)."""
    return hashlib.sha256(data).hexdigest()
