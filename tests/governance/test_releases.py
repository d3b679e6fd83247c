"""Releases through governance: start, shadow, status from server reports, promote, automatic and manual rollback."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from modelport.core.errors import NotFound, PermissionDenied
from modelport.governance import (
    approve,
    promote,
    promote_release,
    release_status,
    rollback_release,
    shadow_release,
    start_release,
    stop_release,
    validate,
)
from modelport.registry.policies import Policy
from modelport.registry.registry import Registry
from modelport.registry.releases import RollbackRule
from modelport.server.releases import ReleaseStats, RollbackMonitor, Router

from .support import People, iris_frame


@pytest.fixture
def live(registry: Registry, people: People, bundles: dict[str, Path]) -> Registry:
    """iris 1 in production; 2 and 3 registered."""
    for key in ("good", "good2", "weak"):
        registry.register(bundles[key], name="iris")
    promote(registry, people.ds, "iris", 1, "production")
    return registry


def test_canary_status_from_what_servers_report(live: Registry, people: People) -> None:
    release = start_release(
        live, people.ds, "iris", canary=2, weight=10, sticky_header="X-User-Id", reason="A/B test C=2"
    )
    assert (release.primary_version, release.canary_version, release.canary_weight) == (1, 2, 10)
    router = Router(release, rng=random.Random(3))
    for server in ("host-1", "host-2"):
        stats = ReleaseStats(release)
        for i in range(1_000):
            version, route = router.choose({"X-User-Id": f"{server}-{i}"})
            stats.record(version, route, latency_ms=4.0 if route == "primary" else 6.0, ok=route == "primary" or i % 25)
            if route == "canary":
                stats.record_comparison(version, route, agreed=i % 10 != 0)
        assert release.id is not None
        live.releases.report_traffic(release.id, server, stats.snapshot())
    status = release_status(live, "iris")
    primary, canary = status.traffic
    assert (primary.route, primary.version, canary.route, canary.version) == ("primary", 1, "canary", 2)
    assert primary.requests + canary.requests == 2_000
    assert primary.share is not None
    assert canary.share is not None
    assert primary.share + canary.share == pytest.approx(1.0)
    assert 0.05 < canary.share < 0.15
    assert primary.errors == 0
    assert canary.errors > 0
    assert primary.p99_ms is not None
    assert canary.p99_ms is not None
    assert canary.p99_ms > primary.p99_ms
    assert canary.agreement is not None
    assert 0.8 < canary.agreement < 1.0
    assert status.to_dict()["release"]["canary_version"] == 2


def test_an_injected_faulty_canary_is_rolled_back_by_the_server_and_audited(live: Registry, people: People) -> None:
    release = start_release(
        live, people.ds, "iris", canary=3, weight=50, rollback=RollbackRule(window_s=30, min_requests=20)
    )
    now = [0.0]
    monitor = RollbackMonitor(release, clock=lambda: now[0])
    router = Router(release, rng=random.Random(11))
    decision = None
    for _ in range(400):
        version, _route = router.choose()
        monitor.record(version, 3.0, ok=version == 1)  # the candidate fails every request
        decision = monitor.check()
        if decision is not None:
            break
    assert decision is not None
    router = router.without_canary()
    assert {router.choose()[0] for _ in range(50)} == {1}
    live.releases.end("iris", "rolled_back", actor="server:host-1", reason=decision.reason, details=decision.to_dict())
    status = release_status(live, "iris")
    assert (status.release.state, status.release.ended_by) == ("rolled_back", "server:host-1")
    entry = live.audit("iris")[-1]
    assert (entry.action, entry.actor) == ("release.rollback", "server:host-1")
    assert entry.reason is not None
    assert "error rate" in entry.reason
    assert entry.details["canary"]["error_rate"] == 1.0


def test_promoting_a_canary_of_a_protected_alias_goes_through_approval(live: Registry, people: People) -> None:
    live.policies.set(
        Policy(protected_aliases=("production",), required_gates=("metrics",), approvals=1, latency_budget_ms=60_000),
        by=people.admin,
    )
    with pytest.raises(PermissionDenied, match="may not be a canary"):
        start_release(live, people.ds, "iris", canary=2, weight=10)
    validate(live, "iris:2", holdout=iris_frame(), principal=people.ds)
    start_release(live, people.ds, "iris", canary=2, weight=10)
    result = promote_release(live, people.ds, "iris", reason="canary healthy for a day")
    assert not result.moved
    assert result.request is not None
    assert live.releases.active("iris") is not None  # the canary keeps running while it waits
    assert approve(live, people.approver, result.request.id).moved
    assert live.aliases("iris")["production"] == 2
    ended = release_status(live, "iris").release
    assert (ended.state, ended.ended_by) == ("promoted", "alex")
    trail = [(a.actor, a.action) for a in live.audit("iris")][-7:]
    assert trail == [
        ("dana", "validate"),
        ("dana", "release.start"),
        ("dana", "promotion.request"),
        ("alex", "promotion.approve"),
        ("alex", "alias.set"),
        ("alex", "promotion.apply"),
        ("alex", "release.promote"),
    ]


def test_promoting_an_unprotected_canary_moves_at_once(live: Registry, people: People) -> None:
    start_release(live, people.ds, "iris", canary=2, weight=25)
    assert promote_release(live, people.ds, "iris").moved
    assert live.aliases("iris")["production"] == 2
    assert live.releases.history("iris")[-1].state == "promoted"


def test_shadow_rollback_and_stop(live: Registry, people: People) -> None:
    shadow_only = shadow_release(live, people.ds, "iris", 3, reason="compare offline")
    assert (shadow_only.canary_version, shadow_only.shadow_version) == (None, 3)
    assert shadow_release(live, people.ds, "iris", 2).shadow_version == 2
    with pytest.raises(PermissionDenied, match="roll releases back"):
        rollback_release(live, people.viewer, "iris")
    assert rollback_release(live, people.ds, "iris", reason="enough data").state == "rolled_back"
    with pytest.raises(NotFound, match="no active release"):
        stop_release(live, people.ds, "iris")
    start_release(live, people.ds, "iris", canary=2, weight=5)
    assert stop_release(live, people.ds, "iris").state == "stopped"
    assert [r.state for r in live.releases.history("iris")] == ["rolled_back", "stopped"]
    assert release_status(live, "iris").traffic == ()


def test_release_errors_teach(live: Registry, people: People, bundles: dict[str, Path]) -> None:
    live.register(bundles["good"], name="fresh")
    with pytest.raises(NotFound, match="no alias 'production'") as info:
        start_release(live, people.ds, "fresh", canary=1, weight=10)
    assert "modelport promote fresh" in str(info.value.hint)
    with pytest.raises(PermissionDenied, match="start releases"):
        start_release(live, people.viewer, "iris", canary=2, weight=10)
    with pytest.raises(NotFound, match="never had a release"):
        release_status(live, "iris")
    with pytest.raises(NotFound, match="no active release"):
        promote_release(live, people.ds, "iris")
