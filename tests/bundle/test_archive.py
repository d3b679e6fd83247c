"""Bundle archives: deterministic packing, and safe unpacking of hostile tarballs."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelport.bundle.archive import pack, unpack
from modelport.bundle.io import load_bundle, save_bundle
from modelport.core.errors import Conflict, IntegrityError, NotFound, PayloadTooLarge


@pytest.fixture
def bundle(tmp_path: Path, iris: Any) -> Path:
    from sklearn.linear_model import LogisticRegression

    x, y = iris
    save_bundle(LogisticRegression(max_iter=300).fit(x, y), tmp_path / "b", sample_input=x[:10])
    return tmp_path / "b"


def _tarball(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"payload") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _special(name: str, kind: bytes, target: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def test_round_trip(bundle: Path, tmp_path: Path, iris: Any) -> None:
    x, _ = iris
    archive = pack(bundle, tmp_path / "b.tar.gz")
    restored = unpack(archive, tmp_path / "restored")
    np.testing.assert_array_equal(load_bundle(restored).adapter.predict(x), load_bundle(bundle).adapter.predict(x))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_packing_is_deterministic(bundle: Path, tmp_path: Path) -> None:
    first = pack(bundle, tmp_path / "1.tar.gz").read_bytes()
    second = pack(bundle, tmp_path / "2.tar.gz").read_bytes()
    assert first == second


def test_pack_refuses_a_tampered_bundle_and_an_existing_archive(bundle: Path, tmp_path: Path) -> None:
    pack(bundle, tmp_path / "b.tar.gz")
    with pytest.raises(Conflict):
        pack(bundle, tmp_path / "b.tar.gz")
    (bundle / "reference" / "stats.json").write_text("{}")
    with pytest.raises(IntegrityError, match=r"reference/stats.json"):
        pack(bundle, tmp_path / "other.tar.gz")


@pytest.mark.parametrize(
    ("member", "match"),
    [
        (_file("/tmp/modelport-absolute-evil"), "leaves the bundle"),
        (_file("../escaped.txt"), "leaves the bundle"),
        (_file("artifacts/../../escaped.txt"), "leaves the bundle"),
        (_file("C:\\evil.txt"), "leaves the bundle"),
        (_special("artifacts/link", tarfile.SYMTYPE, "/etc/passwd"), "link, device"),
        (_special("artifacts/hard", tarfile.LNKTYPE, "/etc/passwd"), "link, device"),
        (_special("artifacts/dev", tarfile.CHRTYPE), "link, device"),
        (_special("artifacts/fifo", tarfile.FIFOTYPE), "link, device"),
    ],
)
def test_hostile_members_are_refused(tmp_path: Path, member: Any, match: str) -> None:
    archive = _tarball(tmp_path / "evil.tar.gz", [_file("modelport.yaml", b"name: x"), member])
    with pytest.raises(IntegrityError, match=match) as info:
        unpack(archive, tmp_path / "work" / "dest")
    assert info.value.hint
    assert not (tmp_path / "escaped.txt").exists()
    assert not Path("/tmp/modelport-absolute-evil").exists()
    assert list((tmp_path / "work").iterdir()) == []


def test_symlink_then_write_through_it_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = _tarball(
        tmp_path / "evil.tar.gz",
        [_special("artifacts", tarfile.SYMTYPE, str(outside)), _file("artifacts/model.bin")],
    )
    with pytest.raises(IntegrityError):
        unpack(archive, tmp_path / "dest")
    assert list(outside.iterdir()) == []


def test_decompression_cap(tmp_path: Path) -> None:
    archive = _tarball(tmp_path / "big.tar.gz", [_file("artifacts/zeros.bin", bytes(200_000))])
    assert archive.stat().st_size < 10_000
    with pytest.raises(PayloadTooLarge, match=r"more than 100000 bytes"):
        unpack(archive, tmp_path / "dest", max_bytes=100_000)
    assert not (tmp_path / "dest").exists()


def test_archive_of_something_else_is_refused(tmp_path: Path) -> None:
    archive = _tarball(tmp_path / "other.tar.gz", [_file("artifacts/model.bin")])
    with pytest.raises(IntegrityError, match=r"does not hold a bundle.*modelport.yaml"):
        unpack(archive, tmp_path / "dest")
    (tmp_path / "junk.tar.gz").write_bytes(b"not gzip at all")
    with pytest.raises(IntegrityError, match=r"not a readable"):
        unpack(tmp_path / "junk.tar.gz", tmp_path / "dest")
    with pytest.raises(NotFound):
        unpack(tmp_path / "missing.tar.gz", tmp_path / "dest")


def test_duplicate_member_is_refused(tmp_path: Path) -> None:
    archive = _tarball(tmp_path / "dup.tar.gz", [_file("artifacts/a.bin", b"1"), _file("artifacts/a.bin", b"2")])
    with pytest.raises(IntegrityError, match=r"twice"):
        unpack(archive, tmp_path / "dest")


def test_unpack_refuses_a_non_empty_destination(bundle: Path, tmp_path: Path) -> None:
    archive = pack(bundle, tmp_path / "b.tar.gz")
    with pytest.raises(Conflict):
        unpack(archive, bundle)
