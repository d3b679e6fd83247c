"""Concurrent registration on SQLite: processes that open a fresh registry and register one name at
once migrate it once and get distinct, consecutive versions."""

from __future__ import annotations

from pathlib import Path

from modelport.core.settings import Settings
from modelport.registry.registry import Registry

from .helpers import build_bundle, register_concurrently


def test_concurrent_registrations_get_distinct_consecutive_versions(settings: Settings, tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path / "bundle", name="busy")
    assert not settings.home.exists()  # the workers race to create and migrate the database too
    versions = register_concurrently(
        settings.database_url,
        settings.artifacts_location,
        settings.home,
        bundle,
        processes=4,
        per_process=3,
    )
    assert versions == list(range(1, 13))
    with Registry(settings) as registry:
        listed = registry.list_versions("busy")
        assert [v.version for v in listed] == list(range(1, 13))
        assert len({v.digest for v in listed}) == 12
        assert len({v.created_by for v in listed}) == 4
        assert registry.revision() == 12
        assert [r.target for r in registry.audit("busy")] == [f"busy:{n}" for n in range(1, 13)]
