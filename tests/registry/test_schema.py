"""Migrations on SQLite: from an empty database, from the first schema revision, and never down on open."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from modelport.bundle.manifest import read_manifest
from modelport.core.errors import ConfigError
from modelport.core.settings import Settings
from modelport.registry import db, schema
from modelport.registry.registry import Registry
from modelport.registry.versions import manifest_digest

from .helpers import build_bundle

REGISTRY_TABLES = {"models", "versions", "aliases", "alias_events", "audit_log", "registry_state"}


@pytest.fixture
def url(settings: Settings) -> str:
    return settings.database_url


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_upgrade_from_empty(url: str) -> None:
    engine = db.create_engine(url)
    assert schema.current_revision(engine, url) is None
    schema.upgrade(engine, url)
    assert schema.current_revision(engine, url) == schema.head_revision()
    assert REGISTRY_TABLES | {schema.VERSION_TABLE} <= _tables(engine)
    assert "alembic_version" not in _tables(engine)  # never clashes with an application's own Alembic
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT id, revision FROM registry_state")).all() == [(1, 0)]
    schema.upgrade(engine, url)  # idempotent
    engine.dispose()


def test_upgrade_from_the_first_revision_keeps_the_data(settings: Settings, url: str, tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path / "bundle", name="old")
    engine = db.create_engine(url)
    schema.upgrade(engine, url, schema.FIRST_REVISION)
    assert schema.current_revision(engine, url) == schema.FIRST_REVISION
    stored = read_manifest(bundle).with_version("old", 1)
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO models VALUES ('old', 1, '2025-01-01 00:00:00.000000', 'ancestor')"),
        )
        conn.execute(
            sa.text(
                "INSERT INTO versions (name, version, flavor, manifest, digest, created_at, created_by, deleted) "
                "VALUES ('old', 1, 'sklearn', :manifest, :digest, '2025-01-01 00:00:00.000000', 'ancestor', 0)"
            ),
            {"manifest": stored.model_dump_json(), "digest": manifest_digest(stored)},
        )
        conn.execute(
            sa.text("INSERT INTO aliases VALUES ('old', 'production', 1, '2025-01-01 00:00:00.000000', 'ancestor')")
        )
    engine.dispose()

    with Registry(settings) as registry:
        assert registry.resolve("old").version == 1
        assert registry.get("old", 1).created_by == "ancestor"
        assert registry.register(bundle).version == 2
        assert schema.current_revision(registry.engine, url) == schema.head_revision()


def test_a_newer_schema_is_refused_and_kept(settings: Settings, url: str) -> None:
    engine = db.create_engine(url)
    schema.upgrade(engine, url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {schema.VERSION_TABLE} SET version_num = '9999_from_the_future'"))
    engine.dispose()
    with pytest.raises(ConfigError, match="9999_from_the_future") as info:
        Registry(settings).list_models()
    assert info.value.hint
    assert "upgrade modelport" in info.value.hint
    engine = db.create_engine(url)
    assert _tables(engine) >= REGISTRY_TABLES
    engine.dispose()


def test_downgrade_to_base_and_back(url: str) -> None:
    engine = db.create_engine(url)
    schema.upgrade(engine, url)
    schema.downgrade(engine, url, "base")
    assert not (REGISTRY_TABLES & _tables(engine))
    schema.upgrade(engine, url)
    assert _tables(engine) >= REGISTRY_TABLES
    engine.dispose()
