"""The registry on the local PostgreSQL: the whole behaviour suite, migrations and concurrent registration.

Each test gets a fresh database from the ``pg_url`` fixture, which fails (never skips) under
``CI=true`` when PostgreSQL is unreachable.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from modelport.core.errors import ConfigError
from modelport.registry import db, schema
from modelport.registry.registry import Registry
from registry.helpers import build_bundle, register_concurrently
from registry.suite import RegistryContract

pytestmark = pytest.mark.integration


class TestRegistryPostgres(RegistryContract):
    """The behaviour suite on PostgreSQL, with a local artifact folder."""

    @pytest.fixture
    def home(self, tmp_path: Path) -> Path:
        return tmp_path / "home"

    @pytest.fixture
    def artifacts_dir(self, tmp_path: Path) -> Path:
        return tmp_path / "artifacts"

    @pytest.fixture
    def make_registry(self, pg_url: str, home: Path, artifacts_dir: Path) -> Callable[..., Registry]:
        def make(actor: str = "tester") -> Registry:
            return Registry.from_urls(pg_url, str(artifacts_dir), actor=actor, home=home)

        return make


def test_concurrent_registrations_get_distinct_consecutive_versions(pg_url: str, tmp_path: Path) -> None:
    # The workers open the empty database at the same moment: they race to migrate it, then to register.
    bundle = build_bundle(tmp_path / "bundle", name="busy")
    home, artifacts = tmp_path / "home", str(tmp_path / "artifacts")
    versions = register_concurrently(pg_url, artifacts, home, bundle, processes=4, per_process=3)
    assert versions == list(range(1, 13))
    with Registry.from_urls(pg_url, artifacts, actor="parent", home=home) as registry:
        listed = registry.list_versions("busy")
        assert [v.version for v in listed] == list(range(1, 13))
        assert len({v.created_by for v in listed}) == 4
        assert registry.revision() == 12
        assert [r.target for r in registry.audit("busy")] == [f"busy:{n}" for n in range(1, 13)]


def test_upgrade_from_the_first_revision(pg_url: str, tmp_path: Path) -> None:
    engine = db.create_engine(pg_url)
    assert schema.current_revision(engine, pg_url) is None
    schema.upgrade(engine, pg_url, schema.FIRST_REVISION)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO models VALUES ('old', 3, now(), 'ancestor')"))
    engine.dispose()
    with Registry.from_urls(pg_url, str(tmp_path / "artifacts"), actor="t", home=tmp_path / "home") as registry:
        assert registry.register(build_bundle(tmp_path / "bundle", name="old")).version == 4
        assert schema.current_revision(registry.engine, pg_url) == schema.head_revision()


def test_a_newer_schema_is_refused_and_kept(pg_url: str, tmp_path: Path) -> None:
    engine = db.create_engine(pg_url)
    schema.upgrade(engine, pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {schema.VERSION_TABLE} SET version_num = '9999_from_the_future'"))
    registry = Registry.from_urls(pg_url, str(tmp_path / "artifacts"), actor="t", home=tmp_path / "home")
    with pytest.raises(ConfigError, match="9999_from_the_future"):
        registry.list_models()
    assert {"models", "versions", "aliases"} <= set(sa.inspect(engine).get_table_names())
    engine.dispose()


def test_wrong_password_is_service_unavailable_without_the_password(pg_url: str, tmp_path: Path) -> None:
    from modelport.core.errors import ServiceUnavailable

    url = pg_url.replace("postgres@", "nobody_here:Wr0ngPassw0rd@")
    registry = Registry.from_urls(url, str(tmp_path / "artifacts"), actor="t", home=tmp_path / "home")
    with pytest.raises(ServiceUnavailable) as info:
        registry.revision()
    assert "Wr0ngPassw0rd" not in f"{info.value} {info.value.hint}"
    assert "nobody_here:***@" in info.value.message
