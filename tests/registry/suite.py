"""The registry behaviour suite, run on SQLite (tests/registry) and PostgreSQL (tests/integration).

A subclass provides three fixtures: ``make_registry`` (a factory ``(actor="tester") -> Registry``
opening the same database, artifact store and home each time), ``home`` (the MODELPORT_HOME the
registries use) and ``artifacts_dir`` (the local folder of the artifact store).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import pkgutil
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import modelport.registry
from modelport.bundle.io import load_bundle, verify_bundle
from modelport.bundle.manifest import MANIFEST_FILE, read_manifest
from modelport.core.errors import Conflict, IntegrityError, InvalidName, NotFound, ValidationError
from modelport.core.refs import ModelRef
from modelport.registry.registry import Registry
from modelport.registry.schema import VERSION_TABLE, head_revision
from modelport.registry.tables import metadata

from .helpers import build_bundle

MakeRegistry = Callable[..., Registry]

HOSTILE_NAMES = [
    "../x",
    "a/b",
    "..",
    "a\\b",
    "/etc/passwd",
    "x" * 129,
    "Churn",
    "",
    " churn",
    "a..b",
    ".hidden",
    "churn\x00",
    "churn;drop table models",
]


class RegistryContract:
    """Behaviour every registry backend must show."""

    @pytest.fixture(scope="class")
    def bundle(self, tmp_path_factory: pytest.TempPathFactory) -> Path:
        return build_bundle(tmp_path_factory.mktemp("bundles") / "iris", name="iris", c=1.0)

    @pytest.fixture(scope="class")
    def other_bundle(self, tmp_path_factory: pytest.TempPathFactory) -> Path:
        return build_bundle(tmp_path_factory.mktemp("bundles") / "iris2", name="iris", c=0.05)

    @pytest.fixture
    def registry(self, make_registry: MakeRegistry) -> Iterator[Registry]:
        registry = make_registry()
        yield registry
        registry.close()

    # -- register, get, fetch -------------------------------------------------------------------

    def test_register_assigns_consecutive_versions(self, registry: Registry, bundle: Path) -> None:
        first = registry.register(bundle, reason="first")
        second = registry.register(bundle)
        assert (first.name, first.version, second.version) == ("iris", 1, 2)
        assert first.flavor == "sklearn"
        assert first.created_by == "tester"
        assert first.created_at.tzinfo is not None
        assert first.tags == {"team": "tests"}
        assert first.description == "iris logistic regression, C=1.0"
        assert set(first.metrics) == {"accuracy"}
        assert first.signature == read_manifest(bundle).signature
        assert first.aliases == ()
        assert not first.deleted
        assert len(first.digest) == 64
        assert first.digest != second.digest  # the digest covers the assigned version
        assert first.ref == "iris:1"

    def test_register_under_another_name(self, registry: Registry, bundle: Path) -> None:
        mv = registry.register(bundle, name="flowers")
        assert (mv.name, mv.version) == ("flowers", 1)
        assert registry.register(bundle).name == "iris"

    def test_get_returns_what_register_returned(self, registry: Registry, bundle: Path) -> None:
        mv = registry.register(bundle)
        assert registry.get("iris", 1) == mv

    def test_get_missing_version_names_existing_ones(self, registry: Registry, bundle: Path) -> None:
        registry.register(bundle)
        with pytest.raises(NotFound, match="no version 7") as info:
            registry.get("iris", 7)
        assert info.value.hint is not None
        assert "1" in info.value.hint

    def test_get_missing_model(self, registry: Registry) -> None:
        with pytest.raises(NotFound, match="'ghost'") as info:
            registry.get("ghost", 1)
        assert info.value.hint

    @pytest.mark.parametrize("version", [0, -1, True, "1"])
    def test_invalid_version_numbers_are_refused(self, registry: Registry, version: object) -> None:
        with pytest.raises(InvalidName):
            registry.get("iris", version)  # type: ignore[arg-type]

    def test_registrations_persist_across_registry_objects(self, make_registry: MakeRegistry, bundle: Path) -> None:
        with make_registry() as first:
            mv = first.register(bundle)
        with make_registry() as second:
            assert second.get("iris", 1) == mv

    def test_fetch_materialises_a_verified_bundle(self, registry: Registry, bundle: Path, home: Path) -> None:
        registry.register(bundle)
        mv = registry.register(bundle)
        path = registry.fetch(mv)
        assert path == home.resolve() / "cache" / "iris" / "2"
        manifest = verify_bundle(path)
        assert (manifest.name, manifest.version) == ("iris", 2)
        assert hashlib.sha256((path / MANIFEST_FILE).read_bytes()).hexdigest() == mv.digest
        original = read_manifest(bundle)
        assert manifest.artifacts == original.artifacts
        assert registry.fetch(mv) == path

    def test_fetched_bundle_predicts_like_the_original(self, registry: Registry, bundle: Path) -> None:
        from sklearn.datasets import load_iris

        features, _ = load_iris(return_X_y=True, as_frame=True)
        fetched = load_bundle(registry.fetch(registry.register(bundle)))
        original = load_bundle(bundle)
        assert isinstance(features, pd.DataFrame)
        assert (fetched.adapter.predict(features) == original.adapter.predict(features)).all()

    def test_fetch_rebuilds_a_tampered_cache(self, registry: Registry, bundle: Path) -> None:
        mv = registry.register(bundle)
        path = registry.fetch(mv)
        (path / "artifacts" / "model.skops").write_bytes(b"tampered")
        assert registry.fetch(mv) == path
        verify_bundle(path)

    def test_fetch_refuses_a_corrupted_store(self, registry: Registry, bundle: Path, artifacts_dir: Path) -> None:
        mv = registry.register(bundle)
        entry = next(a for a in read_manifest(bundle).artifacts if a.path == "artifacts/model.skops")
        blob = artifacts_dir / "sha256" / entry.sha256[:2] / entry.sha256
        blob.write_bytes(b"corrupted")
        with pytest.raises(IntegrityError, match=entry.sha256):
            registry.fetch(mv)
        blob.unlink()
        with pytest.raises(IntegrityError, match="missing"):
            registry.fetch(mv)

    def test_fetch_refuses_a_version_from_elsewhere(self, registry: Registry, bundle: Path) -> None:
        mv = registry.register(bundle)
        forged = dataclasses.replace(mv, digest="0" * 64)
        with pytest.raises(Conflict):
            registry.fetch(forged)

    def test_tampered_bundle_is_refused_and_nothing_registered(
        self, registry: Registry, bundle: Path, tmp_path: Path
    ) -> None:
        copy = Path(shutil.copytree(bundle, tmp_path / "tampered"))
        model_file = copy / "artifacts" / "model.skops"
        model_file.write_bytes(model_file.read_bytes()[:-1] + b"!")
        with pytest.raises(IntegrityError, match=r"model\.skops"):
            registry.register(copy)
        assert registry.list_models() == []
        assert registry.revision() == 0

    def test_missing_bundle_is_not_found(self, registry: Registry, tmp_path: Path) -> None:
        with pytest.raises(NotFound) as info:
            registry.register(tmp_path / "nowhere")
        assert info.value.hint

    # -- names ----------------------------------------------------------------------------------

    def test_hostile_names_are_rejected_before_any_io(
        self, make_registry: MakeRegistry, bundle: Path, home: Path
    ) -> None:
        registry = make_registry()
        for name in HOSTILE_NAMES:
            for index, call in enumerate(_calls_naming(registry, bundle, name)):
                with pytest.raises(InvalidName) as info:
                    call()
                assert info.value.hint, (name, index)
        assert not home.exists()
        assert registry.list_models() == []  # the database was never touched by a hostile call

    # -- aliases --------------------------------------------------------------------------------

    def test_alias_moves_with_history_audit_and_revision(self, make_registry: MakeRegistry, bundle: Path) -> None:
        registry = make_registry(actor="alice")
        registry.register(bundle)
        registry.register(bundle)
        before = registry.revision()
        registry.set_alias("iris", "production", 1, reason="first release")
        registry.set_alias("iris", "production", 2, reason="better")
        assert registry.revision() == before + 2
        assert registry.aliases("iris") == {"production": 2}
        history = registry.alias_history("iris")
        assert [(e.alias, e.old_version, e.new_version, e.reason) for e in history] == [
            ("production", None, 1, "first release"),
            ("production", 1, 2, "better"),
        ]
        assert all(e.actor == "alice" for e in history)
        entries = [r for r in registry.audit("iris") if r.action == "alias.set"]
        assert [(r.target, r.reason, r.details["new_version"]) for r in entries] == [
            ("iris@production", "first release", 1),
            ("iris@production", "better", 2),
        ]
        assert registry.get("iris", 2).aliases == ("production",)
        assert registry.get("iris", 1).aliases == ()

    def test_setting_an_alias_to_where_it_points_changes_nothing(self, registry: Registry, bundle: Path) -> None:
        registry.register(bundle)
        registry.set_alias("iris", "staging", 1)
        revision, audit_size = registry.revision(), len(registry.audit())
        registry.set_alias("iris", "staging", 1)
        assert (registry.revision(), len(registry.audit()), len(registry.alias_history("iris"))) == (
            revision,
            audit_size,
            1,
        )

    def test_alias_to_missing_version_or_model(self, registry: Registry, bundle: Path) -> None:
        registry.register(bundle)
        with pytest.raises(NotFound, match="no version 5") as info:
            registry.set_alias("iris", "production", 5)
        assert info.value.hint
        assert "1" in info.value.hint
        with pytest.raises(NotFound, match="'ghost'"):
            registry.set_alias("ghost", "production", 1)
        assert registry.aliases("iris") == {}

    def test_alias_to_deleted_version_is_a_conflict(self, registry: Registry, bundle: Path) -> None:
        registry.register(bundle)
        registry.register(bundle)
        registry.delete_version("iris", 1)
        with pytest.raises(Conflict, match="deleted") as info:
            registry.set_alias("iris", "production", 1)
        assert info.value.hint

    def test_remove_alias(self, registry: Registry, bundle: Path) -> None:
        registry.register(bundle)
        registry.set_alias("iris", "staging", 1)
        registry.set_alias("iris", "production", 1)
        registry.remove_alias("iris", "staging", reason="done")
        assert registry.aliases("iris") == {"production": 1}
        last = registry.alias_history("iris")[-1]
        assert (last.alias, last.old_version, last.new_version, last.reason) == ("staging", 1, None, "done")
        with pytest.raises(NotFound, match="no alias 'staging'") as info:
            registry.remove_alias("iris", "staging")
        assert info.value.hint
        assert "production" in info.value.hint

    # -- resolve --------------------------------------------------------------------------------

    def test_resolve_references(self, registry: Registry, bundle: Path) -> None:
        for _ in range(3):
            registry.register(bundle)
        assert registry.resolve("iris").version == 3  # no production alias: the latest
        registry.set_alias("iris", "production", 2)
        registry.set_alias("iris", "staging", 3)
        assert registry.resolve("iris").version == 2
        assert registry.resolve("iris@staging").version == 3
        assert registry.resolve("iris:1").version == 1
        assert registry.resolve(ModelRef(name="iris", version=3)).aliases == ("staging",)

    def test_resolve_errors(self, registry: Registry, bundle: Path) -> None:
        registry.register(bundle)
        registry.register(bundle)
        with pytest.raises(NotFound, match="no alias 'canary'"):
            registry.resolve("iris@canary")
        with pytest.raises(NotFound, match="'ghost'"):
            registry.resolve("ghost")
        with pytest.raises(ValidationError, match="bundle path"):
            registry.resolve("./bundles/iris")
        with pytest.raises(InvalidName):
            registry.resolve("iris:0")
        registry.delete_version("iris", 1)
        with pytest.raises(NotFound, match="deleted"):
            registry.resolve("iris:1")

    # -- delete ---------------------------------------------------------------------------------

    def test_soft_delete(self, registry: Registry, bundle: Path) -> None:
        for _ in range(3):
            registry.register(bundle)
        registry.set_alias("iris", "production", 3)
        with pytest.raises(Conflict, match="production") as info:
            registry.delete_version("iris", 3)
        assert info.value.hint
        assert "alias" in info.value.hint
        registry.set_alias("iris", "production", 2)
        registry.delete_version("iris", 3, reason="bad")
        assert [v.version for v in registry.list_versions("iris")] == [1, 2]
        listed = registry.list_versions("iris", include_deleted=True)
        assert [(v.version, v.deleted) for v in listed] == [(1, False), (2, False), (3, True)]
        assert registry.get("iris", 3).deleted
        registry.remove_alias("iris", "production")
        assert registry.resolve("iris").version == 2
        with pytest.raises(Conflict, match="deleted"):
            registry.delete_version("iris", 3)
        with pytest.raises(NotFound):
            registry.delete_version("iris", 9)
        assert registry.register(bundle).version == 4  # numbers are never reused
        record = next(r for r in registry.audit("iris") if r.action == "version.delete")
        assert (record.target, record.reason, record.actor) == ("iris:3", "bad", "tester")

    def test_deleting_every_version(self, registry: Registry, bundle: Path) -> None:
        registry.register(bundle)
        registry.delete_version("iris", 1)
        with pytest.raises(NotFound, match="no version that is not deleted"):
            registry.resolve("iris")
        (summary,) = registry.list_models()
        assert (summary.latest_version, summary.version_count) == (None, 0)

    # -- listing --------------------------------------------------------------------------------

    def test_list_models(self, registry: Registry, bundle: Path, other_bundle: Path) -> None:
        assert registry.list_models() == []
        registry.register(bundle)
        registry.register(other_bundle)
        registry.register(bundle, name="aster")
        registry.set_alias("iris", "production", 1)
        summaries = registry.list_models()
        assert [(s.name, s.latest_version, s.version_count, s.aliases) for s in summaries] == [
            ("aster", 1, 1, {}),
            ("iris", 2, 2, {"production": 1}),
        ]
        assert summaries[1].description == "iris logistic regression, C=0.05"
        assert summaries[1].flavor == "sklearn"
        assert summaries[1].updated_at >= summaries[1].created_at

    def test_list_versions_of_missing_model(self, registry: Registry) -> None:
        with pytest.raises(NotFound, match="'ghost'"):
            registry.list_versions("ghost")
        with pytest.raises(NotFound):
            registry.aliases("ghost")
        with pytest.raises(NotFound):
            registry.alias_history("ghost")

    def test_identical_content_is_stored_once(self, registry: Registry, bundle: Path, artifacts_dir: Path) -> None:
        registry.register(bundle)
        registry.register(bundle, name="copy")
        blobs = [p for p in artifacts_dir.rglob("*") if p.is_file()]
        assert len(blobs) == len(read_manifest(bundle).artifacts)
        assert all(p.parent.parent.name == "sha256" and p.parent.name == p.name[:2] for p in blobs)

    # -- audit and revision ---------------------------------------------------------------------

    def test_audit_log_records_every_change(self, make_registry: MakeRegistry, bundle: Path) -> None:
        registry = make_registry(actor="bob")
        start = datetime.now(UTC) - timedelta(seconds=1)
        registry.register(bundle, reason="initial")
        registry.register(bundle, name="other")
        registry.set_alias("iris", "production", 1)
        registry.remove_alias("iris", "production")
        registry.delete_version("iris", 1)
        entries = registry.audit("iris")
        assert [(e.action, e.target) for e in entries] == [
            ("register", "iris:1"),
            ("alias.set", "iris@production"),
            ("alias.remove", "iris@production"),
            ("version.delete", "iris:1"),
        ]
        assert entries[0].reason == "initial"
        assert entries[0].details["digest"] == registry.get("iris", 1).digest
        assert all(e.actor == "bob" and e.model == "iris" and e.at >= start for e in entries)
        assert [e.id for e in entries] == sorted(e.id for e in entries)
        assert len(registry.audit()) == 5
        assert registry.audit(since=datetime.now(UTC) + timedelta(hours=1)) == []
        naive_past = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)
        assert len(registry.audit(since=naive_past)) == 5

    def test_record_audit_for_other_layers(self, registry: Registry, bundle: Path) -> None:
        registry.register(bundle)
        revision = registry.revision()
        registry.record_audit("batch.run", "iris:1", reason="nightly", details={"rows": 10, "ok": True})
        registry.record_audit("server.start", "127.0.0.1:8000", details=None)
        registry.record_audit("batch.run", "ghost:1")
        records = registry.audit()
        assert [(r.action, r.target, r.model) for r in records[-3:]] == [
            ("batch.run", "iris:1", "iris"),
            ("server.start", "127.0.0.1:8000", None),
            ("batch.run", "ghost:1", None),
        ]
        assert records[-3].details == {"rows": 10, "ok": True}
        assert registry.revision() == revision
        with pytest.raises(ValidationError, match="action"):
            registry.record_audit("Bad Action", "iris:1")
        with pytest.raises(ValidationError, match="target"):
            registry.record_audit("batch.run", "")
        with pytest.raises(ValidationError, match="not JSON"):
            registry.record_audit("batch.run", "iris:1", details={"when": object()})

    def test_revision_counts_changes_not_reads(self, registry: Registry, bundle: Path) -> None:
        assert registry.revision() == 0
        registry.register(bundle)
        registry.register(bundle)
        registry.set_alias("iris", "production", 2)
        registry.delete_version("iris", 1)
        registry.list_models()
        registry.resolve("iris")
        registry.audit()
        assert registry.revision() == 4

    # -- engine and schema ----------------------------------------------------------------------

    def test_engine_is_migrated_to_head_and_close_reopens(self, registry: Registry, bundle: Path) -> None:
        with registry.engine.connect() as conn:
            current = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
        assert current == head_revision()
        registry.close()
        registry.close()
        assert registry.register(bundle).version == 1

    def test_migrations_create_exactly_the_declared_tables(self, registry: Registry) -> None:
        for module in pkgutil.iter_modules(modelport.registry.__path__, "modelport.registry."):
            importlib.import_module(module.name)  # every module that adds tables to the shared metadata
        with registry.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
            differences = compare_metadata(context, metadata)
        assert differences == [], (
            "The registry metadata and the Alembic migrations disagree; add a migration in "
            f"registry/migrations/versions for: {differences}"
        )


def _calls_naming(registry: Registry, bundle: Path, name: str) -> list[Callable[[], object]]:
    """Every registry call that takes a model or alias name, with ``name`` in that place."""
    return [
        lambda: registry.register(bundle, name=name),
        lambda: registry.get(name, 1),
        lambda: registry.list_versions(name),
        lambda: registry.set_alias("iris", name, 1),
        lambda: registry.set_alias(name, "production", 1),
        lambda: registry.remove_alias("iris", name),
        lambda: registry.delete_version(name, 1),
        lambda: registry.aliases(name),
        lambda: registry.alias_history(name),
        lambda: registry.audit(name),
        lambda: registry.resolve(ModelRef(name=name)),
        lambda: registry.resolve(ModelRef(name="iris", alias=name)),
    ]
