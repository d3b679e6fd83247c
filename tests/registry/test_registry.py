"""The registry on SQLite: the shared behaviour suite, plus what only the embedded default shows."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from modelport.bundle.io import verify_bundle
from modelport.core.errors import InvalidName
from modelport.core.refs import ModelRef
from modelport.core.settings import Settings
from modelport.registry.registry import Registry

from .helpers import build_bundle
from .suite import RegistryContract


class TestRegistrySqlite(RegistryContract):
    """The behaviour suite on the default SQLite database in MODELPORT_HOME."""

    @pytest.fixture
    def home(self, settings: Settings) -> Path:
        return settings.home

    @pytest.fixture
    def artifacts_dir(self, settings: Settings) -> Path:
        return settings.home / "artifacts"

    @pytest.fixture
    def make_registry(self, settings: Settings) -> Callable[..., Registry]:
        def make(actor: str = "tester") -> Registry:
            return Registry(settings.model_copy(update={"user": actor}))

        return make


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("bundles") / "tiny", name="tiny")


def test_constructing_a_registry_touches_nothing(settings: Settings) -> None:
    registry = Registry(settings)
    assert "registry.db" in repr(registry)
    assert not settings.home.exists()


def test_default_layout_in_home(settings: Settings, tiny_bundle: Path) -> None:
    with Registry(settings) as registry:
        registry.register(tiny_bundle)
        url = registry.engine.url
    assert url.get_backend_name() == "sqlite"
    assert Path(str(url.database)) == (settings.home / "registry.db").resolve()
    assert (settings.home / "artifacts" / "sha256").is_dir()


def test_fsspec_artifact_store(tmp_path: Path, tiny_bundle: Path) -> None:
    registry = Registry.from_urls(
        f"sqlite:///{tmp_path / 'registry.db'}",
        f"memory://modelport-tests-{uuid.uuid4().hex}/store",
        actor="carol",
        home=tmp_path / "home",
    )
    mv = registry.register(tiny_bundle)
    assert mv.created_by == "carol"
    assert not (tmp_path / "home" / "artifacts").exists()
    manifest = verify_bundle(registry.fetch(mv))
    assert (manifest.name, manifest.version) == ("tiny", 1)
    registry.close()


def test_sqlite_file_keeps_foreign_keys(settings: Settings, tiny_bundle: Path) -> None:
    registry = Registry(settings)
    registry.register(tiny_bundle)
    with pytest.raises(sa.exc.IntegrityError), registry.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO aliases (name, alias, version, updated_at, updated_by) "
                "VALUES ('tiny', 'production', 99, '2026-01-01 00:00:00', 'x')"
            )
        )
    registry.close()


def test_model_version_is_a_hashable_snapshot(settings: Settings, tiny_bundle: Path) -> None:
    registry = Registry(settings)
    mv = registry.register(tiny_bundle)
    registry.set_alias("tiny", "production", 1)
    assert mv.aliases == ()  # the object returned earlier does not change
    assert len({mv, registry.get("tiny", 1), dataclasses.replace(mv)}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        mv.version = 2  # type: ignore[misc]
    registry.close()


def test_reference_with_both_version_and_alias_is_refused(settings: Settings) -> None:
    with pytest.raises(InvalidName, match="both"):
        Registry(settings).resolve(ModelRef(name="tiny", version=1, alias="production"))
    assert not settings.home.exists()
