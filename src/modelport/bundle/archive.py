"""Bundle archives: a bundle folder as one ``.tar.gz`` for transport, and its safe extraction.

:func:`pack` verifies the bundle, then writes a deterministic archive (sorted members, zeroed
owners and times), so the same bundle always gives the same bytes. :func:`unpack` never trusts
the archive: every member is checked before anything is written (no absolute path, no ``..``,
no link, device or FIFO, a cap on member count and on decompressed bytes, counted as they are
written), extraction goes into a staging folder, and the result must pass
:func:`~modelport.bundle.io.verify_bundle` before it is renamed into place.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from modelport.bundle.io import verify_bundle
from modelport.core.errors import Conflict, IntegrityError, NotFound, PayloadTooLarge

MAX_UNPACKED_BYTES = 8 * 1024**3
"""Default cap on the decompressed size of an archive (8 GiB)."""
MAX_MEMBERS = 100_000
_CHUNK = 1 << 20


def pack(bundle_dir: Path | str, archive: Path | str) -> Path:
    """Write the verified bundle at ``bundle_dir`` to the ``.tar.gz`` file ``archive`` and return its path.

    Raises:
        IntegrityError: The bundle fails verification.
        Conflict: ``archive`` already exists.
    """
    source, target = Path(bundle_dir), Path(archive)
    verify_bundle(source)
    if target.exists():
        raise Conflict(f"Archive {target} already exists.", hint="Choose a new file name or delete the old archive.")
    files = sorted(p for p in source.rglob("*") if p.is_file())
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        with (
            os.fdopen(handle, "wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as compressed,
            tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for file in files:
                info = tar.gettarinfo(str(file), arcname=file.relative_to(source).as_posix())
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                info.mode = 0o644
                with file.open("rb") as data:
                    tar.addfile(info, data)
        os.replace(staging, target)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return target


def unpack(archive: Path | str, dest: Path | str, *, max_bytes: int = MAX_UNPACKED_BYTES) -> Path:
    """Extract the bundle archive ``archive`` into the new folder ``dest``, safely, and return ``dest``.

    Args:
        archive: A ``.tar.gz`` written by :func:`pack` (or any tar of a bundle folder's contents).
        dest: Destination folder; it must not exist, or be empty.
        max_bytes: Cap on the total decompressed size.

    Raises:
        NotFound: ``archive`` does not exist.
        IntegrityError: The archive is unreadable, holds a hostile member (absolute path, ``..``,
            link, device) or does not contain a valid bundle.
        PayloadTooLarge: It decompresses to more than ``max_bytes`` or holds too many members.
        Conflict: ``dest`` exists and is not empty.
    """
    source, target = Path(archive), Path(dest)
    if not source.is_file():
        raise NotFound(f"Archive {source} does not exist.", hint="Check the path.")
    if target.is_symlink() or (target.exists() and (not target.is_dir() or any(target.iterdir()))):
        raise Conflict(f"Cannot unpack into {target}: it exists and is not empty.", hint="Choose a new folder.")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".unpacking", dir=target.parent))
    try:
        _extract(source, staging, max_bytes)
        try:
            verify_bundle(staging)
        except NotFound as exc:
            raise IntegrityError(
                f"Archive {source} does not hold a bundle: {exc.message}", hint="Re-create it with modelport's pack."
            ) from exc
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _extract(source: Path, staging: Path, max_bytes: int) -> None:
    written = 0
    try:
        with tarfile.open(source, mode="r:gz") as tar:
            for count, member in enumerate(tar, start=1):
                if count > MAX_MEMBERS:
                    raise PayloadTooLarge(
                        f"Archive {source} holds more than {MAX_MEMBERS} members.", hint="This is not a bundle archive."
                    )
                relative = _check_member(source, member)
                if member.isdir():
                    (staging / relative).mkdir(parents=True, exist_ok=True)
                    continue
                written = _write_member(tar, member, staging / relative, written, max_bytes, source)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise IntegrityError(
            f"Archive {source} is not a readable .tar.gz: {exc}", hint="Re-create it with modelport's pack."
        ) from exc


def _check_member(source: Path, member: tarfile.TarInfo) -> PurePosixPath:
    name = member.name
    path = PurePosixPath(name)
    hostile = (
        not name
        or path.is_absolute()
        or "\\" in name
        or ":" in path.parts[0]
        or any(part == ".." for part in path.parts)
        or "\x00" in name
    )
    if hostile:
        raise IntegrityError(
            f"Archive {source} holds member {name!r}, whose path leaves the bundle folder; nothing was extracted "
            "outside it.",
            hint="Only unpack archives written by modelport's pack, from a source you trust.",
        )
    if not (member.isreg() or member.isdir()):
        raise IntegrityError(
            f"Archive {source} holds member {name!r}, which is a link, device or other special file.",
            hint="Bundle archives hold regular files and folders only.",
        )
    relative = PurePosixPath(*[p for p in path.parts if p not in ("", ".")])
    if not relative.parts:
        raise IntegrityError(f"Archive {source} holds a member with an empty path ({name!r}).", hint="Re-pack it.")
    return relative


def _write_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path, written: int, max_bytes: int, source: Path
) -> int:
    if written + member.size > max_bytes:
        raise _too_large(source, max_bytes)
    if path.exists() or any(p.exists() and not p.is_dir() for p in path.parents):
        raise IntegrityError(f"Archive {source} holds {member.name!r} twice, or under a file.", hint="Re-pack it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    stream = tar.extractfile(member)
    if stream is None:  # pragma: no cover - regular members always have a stream
        raise IntegrityError(f"Archive {source}: member {member.name!r} has no data.", hint="Re-pack it.")
    with stream, path.open("xb") as out:
        while chunk := stream.read(_CHUNK):
            written += len(chunk)
            if written > max_bytes:
                raise _too_large(source, max_bytes)
            out.write(chunk)
    return written


def _too_large(source: Path, max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"Archive {source} decompresses to more than {max_bytes} bytes.",
        hint="Raise max_bytes if the bundle really is that large.",
    )
