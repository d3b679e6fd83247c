"""Content-addressed artifact stores: every bundle file is kept once, under its sha256.

A blob lives at ``sha256/<first two hex digits>/<full hex digest>`` below the store's root, in a
local folder (:class:`LocalArtifactStore`, the default) or behind any fsspec URL
(:class:`FsspecArtifactStore`: ``s3://``, ``gs://``, ``memory://``, ...). Every write streams
through sha256 and lands atomically (a temporary name, then a rename), and every read is
verified against the digest it was asked for, so a reader never sees a partial or altered file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

from modelport.core.errors import ConfigError, IntegrityError
from modelport.core.redact import redact_url

CHUNK_BYTES = 1 << 20
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_SCHEME = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]+)://")


def blob_key(digest: str) -> str:
    """The relative key of the blob with ``digest``: ``sha256/ab/ab12...``.

    Raises:
        IntegrityError: ``digest`` is not 64 lowercase hex digits (it could otherwise become a path).
    """
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise IntegrityError(
            f"Invalid sha256 digest {digest!r}.",
            hint="A digest is 64 lowercase hexadecimal characters; the bundle manifest is corrupted.",
        )
    return f"sha256/{digest[:2]}/{digest}"


def _copy_hashing(reader: IO[bytes], writer: IO[bytes]) -> str:
    sha = hashlib.sha256()
    while chunk := reader.read(CHUNK_BYTES):
        sha.update(chunk)
        writer.write(chunk)
    return sha.hexdigest()


def _hash_stream(reader: IO[bytes]) -> str:
    sha = hashlib.sha256()
    while chunk := reader.read(CHUNK_BYTES):
        sha.update(chunk)
    return sha.hexdigest()


def _mismatch(what: str, expected: str, actual: str) -> IntegrityError:
    return IntegrityError(
        f"{what} has sha256 {actual}, expected {expected}.",
        hint="The file was altered or truncated; re-save or re-register the bundle from a good copy.",
    )


def _missing(digest: str, location: str) -> IntegrityError:
    return IntegrityError(
        f"Artifact sha256:{digest} is missing from the artifact store {location}.",
        hint="The store lost a file; register the bundle again from a good copy to restore it.",
    )


def _write_local(dest: Path, reader: IO[bytes], expected: str, *, what: str) -> None:
    """Stream ``reader`` into ``dest`` atomically, verifying sha256; nothing is left behind on error."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex}")
    try:
        with tmp.open("wb") as out:
            actual = _copy_hashing(reader, out)
            out.flush()
            os.fsync(out.fileno())
        if actual != expected:
            raise _mismatch(what, expected, actual)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@runtime_checkable
class ArtifactStore(Protocol):
    """Where the registry keeps bundle files, addressed by their sha256.

    Attributes:
        location: Where the store is, for messages (any password hidden).
    """

    location: str

    def exists(self, digest: str) -> bool:
        """Whether the blob with ``digest`` is stored."""
        ...

    def put(self, source: Path, digest: str) -> None:
        """Store the local file ``source``, which must hash to ``digest`` (else IntegrityError)."""
        ...

    def get(self, digest: str, dest: Path) -> None:
        """Write the blob ``digest`` to the local path ``dest`` atomically, verified."""
        ...


class LocalArtifactStore:
    """A content-addressed folder on the local file system.

    Args:
        root: The folder (created on first write).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def path(self, digest: str) -> Path:
        """Where the blob with ``digest`` lives."""
        return self.root / blob_key(digest)

    def exists(self, digest: str) -> bool:
        """Whether the blob with ``digest`` is stored."""
        return self.path(digest).is_file()

    def put(self, source: Path, digest: str) -> None:
        """Store ``source`` under ``digest``; an intact copy already there is kept as is."""
        target = self.path(digest)
        if target.is_file():
            with target.open("rb") as existing:
                if _hash_stream(existing) == digest:
                    return
        with source.open("rb") as reader:
            _write_local(target, reader, digest, what=f"File {source}")

    def get(self, digest: str, dest: Path) -> None:
        """Copy the blob ``digest`` to ``dest``, verifying its sha256 on the way."""
        blob = self.path(digest)
        try:
            reader = blob.open("rb")
        except FileNotFoundError:
            raise _missing(digest, self.location) from None
        with reader:
            _write_local(dest, reader, digest, what=f"Stored artifact {blob}")


class FsspecArtifactStore:
    """A content-addressed store behind any fsspec URL (``s3://bucket/prefix``, ``memory://x``, ...).

    Args:
        url: The store's root URL. The file system is opened on first use.
    """

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.location = redact_url(self.url)
        self._fs: Any = None
        self._root = ""

    def _filesystem(self) -> tuple[Any, str]:
        if self._fs is None:
            import fsspec  # a core dependency; imported here to keep ``import modelport`` light

            try:
                self._fs, self._root = fsspec.core.url_to_fs(self.url)
            except (ImportError, ValueError) as exc:
                raise ConfigError(
                    f"Cannot open the artifact store {self.location}: {redact_url(str(exc))}",
                    hint="Check MODELPORT_ARTIFACTS_URL and install the fsspec driver for its scheme "
                    "(e.g. s3fs for s3://, gcsfs for gs://).",
                ) from exc
        return self._fs, self._root

    def _key(self, digest: str) -> str:
        _, root = self._filesystem()
        return f"{root.rstrip('/')}/{blob_key(digest)}"

    def exists(self, digest: str) -> bool:
        """Whether the blob with ``digest`` is stored."""
        fs, _ = self._filesystem()
        return bool(fs.exists(self._key(digest)))

    def put(self, source: Path, digest: str) -> None:
        """Upload ``source`` under ``digest`` (skipped when a blob of the same size is there)."""
        fs, _ = self._filesystem()
        key = self._key(digest)
        if fs.exists(key) and fs.size(key) == source.stat().st_size:
            return
        tmp = f"{key}.tmp-{uuid.uuid4().hex}"
        fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)
        try:
            with source.open("rb") as reader, fs.open(tmp, "wb") as writer:
                actual = _copy_hashing(reader, writer)
            if actual != digest:
                raise _mismatch(f"File {source}", digest, actual)
            fs.mv(tmp, key)
        finally:
            with contextlib.suppress(FileNotFoundError):
                if fs.exists(tmp):
                    fs.rm(tmp)

    def get(self, digest: str, dest: Path) -> None:
        """Download the blob ``digest`` to ``dest``, verifying its sha256 on the way."""
        fs, _ = self._filesystem()
        key = self._key(digest)
        try:
            reader = fs.open(key, "rb")
        except FileNotFoundError:
            raise _missing(digest, self.location) from None
        with reader:
            _write_local(dest, reader, digest, what=f"Stored artifact sha256:{digest} in {self.location}")


def open_artifact_store(url: str) -> ArtifactStore:
    """The store for ``url``: a local folder (a path or ``file://``) or any other fsspec URL."""
    match = _SCHEME.match(url)
    if match is None:
        return LocalArtifactStore(Path(url))
    if match["scheme"].lower() == "file":
        return LocalArtifactStore(Path(url[match.end() :] or "/"))
    return FsspecArtifactStore(url)
