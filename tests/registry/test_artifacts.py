"""Content-addressed artifact stores: the local folder and any fsspec URL (tested on ``memory://``)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from modelport.core.errors import ConfigError, IntegrityError
from modelport.registry.artifacts import (
    ArtifactStore,
    FsspecArtifactStore,
    LocalArtifactStore,
    blob_key,
    open_artifact_store,
)

PAYLOAD = b"model weights " * 1000
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


def _local(tmp_path: Path) -> ArtifactStore:
    return LocalArtifactStore(tmp_path / "store")


def _memory(tmp_path: Path) -> ArtifactStore:
    return FsspecArtifactStore(f"memory://modelport-tests-{uuid.uuid4().hex}/store/")


@pytest.fixture(params=[_local, _memory], ids=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    factory: Callable[[Path], ArtifactStore] = request.param
    return factory(tmp_path)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "model.bin"
    path.write_bytes(PAYLOAD)
    return path


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name != "out.bin"]


def test_put_then_get(store: ArtifactStore, source: Path, tmp_path: Path) -> None:
    assert isinstance(store, ArtifactStore)
    assert not store.exists(DIGEST)
    store.put(source, DIGEST)
    store.put(source, DIGEST)  # idempotent
    assert store.exists(DIGEST)
    dest = tmp_path / "out" / "nested" / "out.bin"
    store.get(DIGEST, dest)
    assert dest.read_bytes() == PAYLOAD
    assert _leftovers(dest.parent) == []


def test_put_refuses_content_that_does_not_match(store: ArtifactStore, source: Path) -> None:
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(IntegrityError, match=str(source)) as info:
        store.put(source, wrong)
    assert info.value.hint
    assert not store.exists(wrong)


def test_get_of_a_missing_blob(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(IntegrityError, match="missing") as info:
        store.get(DIGEST, tmp_path / "out.bin")
    assert info.value.hint
    assert not (tmp_path / "out.bin").exists()


@pytest.mark.parametrize("digest", ["../../etc/passwd", "ABC", "a" * 63, "g" * 64, "a" * 64 + "/x"])
def test_digests_are_never_turned_into_paths(store: ArtifactStore, source: Path, tmp_path: Path, digest: str) -> None:
    with pytest.raises(IntegrityError, match="Invalid sha256"):
        store.put(source, digest)
    with pytest.raises(IntegrityError, match="Invalid sha256"):
        store.get(digest, tmp_path / "out.bin")


def test_local_layout_and_corruption(tmp_path: Path, source: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    store.put(source, DIGEST)
    blob = tmp_path / "store" / "sha256" / DIGEST[:2] / DIGEST
    assert store.path(DIGEST) == blob
    assert blob_key(DIGEST) == f"sha256/{DIGEST[:2]}/{DIGEST}"
    assert blob.read_bytes() == PAYLOAD
    assert [p.name for p in blob.parent.iterdir()] == [DIGEST]  # no temporary files left

    blob.write_bytes(PAYLOAD[:-1])
    out = tmp_path / "out" / "out.bin"
    with pytest.raises(IntegrityError, match=f"expected {DIGEST}"):
        store.get(DIGEST, out)
    assert not out.exists()
    assert _leftovers(out.parent) == []

    store.put(source, DIGEST)  # putting intact content again heals the blob
    store.get(DIGEST, out)
    assert out.read_bytes() == PAYLOAD


def test_fsspec_corruption_is_detected_on_read(tmp_path: Path, source: Path) -> None:
    import fsspec

    url = f"memory://modelport-tests-{uuid.uuid4().hex}"
    store = FsspecArtifactStore(url)
    store.put(source, DIGEST)
    fs, root = fsspec.core.url_to_fs(url)
    key = f"{root}/sha256/{DIGEST[:2]}/{DIGEST}"
    assert fs.cat(key) == PAYLOAD
    assert fs.ls(key.rsplit("/", 1)[0], detail=False) == [key]  # no temporary files left
    fs.pipe(key, b"x" * len(PAYLOAD))
    with pytest.raises(IntegrityError, match=DIGEST):
        store.get(DIGEST, tmp_path / "out.bin")


def test_open_artifact_store_by_url(tmp_path: Path) -> None:
    local = open_artifact_store(str(tmp_path / "a"))
    assert isinstance(local, LocalArtifactStore)
    assert local.root == tmp_path / "a"
    from_file_url = open_artifact_store(f"file://{tmp_path / 'b'}")
    assert isinstance(from_file_url, LocalArtifactStore)
    assert from_file_url.root == tmp_path / "b"
    remote = open_artifact_store("memory://bucket/prefix")
    assert isinstance(remote, FsspecArtifactStore)
    secret = open_artifact_store("s3://key:topsecret@bucket/prefix")
    assert "topsecret" not in secret.location


def test_unknown_fsspec_scheme_is_a_config_error_on_first_use() -> None:
    store = open_artifact_store("nosuchscheme://user:pw@bucket/prefix")
    with pytest.raises(ConfigError, match="nosuchscheme") as info:
        store.exists(DIGEST)
    assert info.value.hint
    assert ":pw@" not in str(info.value)
