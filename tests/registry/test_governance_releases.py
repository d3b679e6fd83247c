"""Release configs in the registry: start, shadow, end, audit, revision bumps, and merged traffic reports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelport.core.errors import Conflict, NotFound, PermissionDenied, ValidationError
from modelport.core.settings import Settings
from modelport.registry.policies import Policy
from modelport.registry.registry import Registry
from modelport.registry.releases import LATENCY_BUCKETS_MS, ReleaseConfig, RollbackRule, TrafficSummary, latency_bucket
from modelport.registry.users import Principal

from .helpers import build_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("release") / "iris")


@pytest.fixture
def registry(settings: Settings, bundle: Path) -> Iterator[Registry]:
    reg = Registry(settings)
    for _ in range(3):
        reg.register(bundle, name="iris")
    reg.set_alias("iris", "production", 1)
    yield reg
    reg.close()


@pytest.fixture
def admin(registry: Registry) -> Principal:
    return registry.users.open_principal("tester")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"canary_version": 1, "canary_weight": 10}, "canary iris:1 is the primary"),
        ({"canary_version": 2, "canary_weight": 0}, "canary weight 0"),
        ({"canary_version": 2, "canary_weight": 150}, "canary weight 150"),
        ({"canary_weight": 10}, "without a canary version"),
        ({"shadow_version": 1}, "shadow iris:1 is the primary"),
        ({"canary_version": 2, "canary_weight": 5, "sticky_header": "X User"}, "sticky header 'X User'"),
    ],
)
def test_invalid_release_configs_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ReleaseConfig(model="iris", primary_version=1, **kwargs)  # type: ignore[arg-type]


def test_invalid_rollback_rules_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"max_p99_ratio=0\.5"):
        RollbackRule(max_p99_ratio=0.5)


def test_start_shadow_and_end_a_release(registry: Registry, admin: Principal) -> None:
    before = registry.revision()
    config = ReleaseConfig(
        model="iris", primary_version=1, canary_version=2, canary_weight=10, sticky_header="X-User-Id"
    )
    started = registry.releases.start(config, by=admin, reason="try C=1")
    assert started.id is not None
    assert started.active
    assert started.started_by == "tester"
    assert started.versions == (1, 2)
    assert registry.revision() == before + 1
    with pytest.raises(Conflict, match="active release"):
        registry.releases.start(config, by=admin)
    shadowed = registry.releases.set_shadow("iris", 3, by=admin)
    assert registry.releases.active_releases() == [shadowed]
    assert shadowed.versions == (1, 2, 3)
    ended = registry.releases.end(
        "iris", "rolled_back", actor="server:host-1", reason="canary errors", details={"canary": {"error_rate": 0.2}}
    )
    assert (ended.state, ended.ended_by) == ("rolled_back", "server:host-1")
    assert registry.releases.active("iris") is None
    assert registry.releases.get(ended.id or 0).state == "rolled_back"
    with pytest.raises(NotFound, match="no active release"):
        registry.releases.end("iris", "stopped", actor="tester")
    actions = [(a.actor, a.action, a.target) for a in registry.audit("iris") if a.action.startswith("release.")]
    assert actions == [
        ("tester", "release.start", "iris@production"),
        ("tester", "release.shadow", "iris@production"),
        ("server:host-1", "release.rollback", "iris@production"),
    ]
    assert registry.audit("iris")[-1].details["canary"] == {"error_rate": 0.2}
    assert registry.revision() == before + 3


def test_a_release_needs_the_alias_at_its_primary_and_a_candidate(registry: Registry, admin: Principal) -> None:
    with pytest.raises(Conflict, match="points at 1, not at primary 2"):
        registry.releases.start(ReleaseConfig(model="iris", primary_version=2, shadow_version=3), by=admin)
    with pytest.raises(ValidationError, match="needs a canary or a shadow"):
        registry.releases.start(ReleaseConfig(model="iris", primary_version=1), by=admin)


def test_a_canary_of_a_protected_alias_needs_the_gates(registry: Registry, admin: Principal) -> None:
    registry.policies.set(Policy(protected_aliases=("production",), required_gates=("latency",)), by=admin)
    config = ReleaseConfig(model="iris", primary_version=1, canary_version=2, canary_weight=10)
    with pytest.raises(PermissionDenied, match="iris:2 may not be a canary of protected alias"):
        registry.releases.start(config, by=admin)


def test_traffic_from_several_servers_adds_up(registry: Registry, admin: Principal) -> None:
    release = registry.releases.start(
        ReleaseConfig(model="iris", primary_version=1, canary_version=2, canary_weight=50), by=admin
    )
    assert release.id is not None
    fast, slow = latency_bucket(1.0), latency_bucket(200.0)
    counts = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    counts[fast] = 9
    counts[slow] = 1
    primary = TrafficSummary(1, "primary", requests=10, errors=1, latency_counts=tuple(counts))
    canary = TrafficSummary(2, "canary", requests=4, latency_counts=(0,) * fast + (4,), compared=4, agreed=3)
    registry.releases.report_traffic(release.id, "host-1", [primary, canary])
    registry.releases.report_traffic(release.id, "host-2", [primary])
    registry.releases.report_traffic(release.id, "host-2", [primary])  # replaces, never double counts
    merged = registry.releases.traffic(release.id)
    assert [(s.version, s.route, s.requests, s.errors) for s in merged] == [(1, "primary", 20, 2), (2, "canary", 4, 0)]
    assert merged[0].error_rate == pytest.approx(0.1)
    assert merged[0].latency_ms(0.5) == LATENCY_BUCKETS_MS[fast]
    assert merged[0].latency_ms(0.99) == LATENCY_BUCKETS_MS[slow] >= 200.0
    assert merged[1].agreement == 0.75
    assert merged[1].accuracy is None
    with pytest.raises(NotFound):
        registry.releases.report_traffic(999, "host-1", [primary])
    with pytest.raises(ValidationError, match="Cannot merge"):
        primary.merge(canary)
