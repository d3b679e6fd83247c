"""Promotion requests in the registry: four eyes, approvals, gates from stored reports, overrides, clearance."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from modelport.core.errors import Conflict, PermissionDenied, ValidationError
from modelport.core.settings import Settings
from modelport.registry.policies import Policy
from modelport.registry.registry import Registry
from modelport.registry.users import Principal
from modelport.registry.validations import GateResult, GateStatus, ValidationReport

from .helpers import build_bundle


@dataclass(frozen=True)
class Team:
    admin: Principal
    dana: Principal
    alex: Principal
    ann: Principal
    vic: Principal


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("promo") / "iris")


@pytest.fixture
def registry(settings: Settings, bundle: Path) -> Iterator[Registry]:
    reg = Registry(settings)
    for _ in range(3):
        reg.register(bundle, name="iris")
    reg.set_alias("iris", "production", 1, reason="before governance")
    yield reg
    reg.close()


@pytest.fixture
def team(registry: Registry) -> Team:
    admin = registry.authenticate(registry.users.bootstrap_admin("root", actor="tester").token)
    people = {}
    for name, role in (("dana", "data_scientist"), ("alex", "approver"), ("ann", "approver"), ("vic", "viewer")):
        registry.users.create_user(name, role, by=admin)
        people[name] = registry.authenticate(registry.users.create_key(name, by=admin).token)
    return Team(admin, **people)


def _report(registry: Registry, version: int, statuses: dict[str, GateStatus], *, against: int | None = 1) -> None:
    gates = tuple(GateResult(name, status, f"{name} {status}") for name, status in statuses.items())
    report = ValidationReport("iris", version, "production", against, gates, datetime.now(UTC), "dana")
    stored = registry.validations.save(report, reason="ci")
    assert stored.id is not None
    assert stored.passed == ("failed" not in statuses.values())


def test_the_requester_cannot_approve_and_each_approver_counts_once(registry: Registry, team: Team) -> None:
    registry.policies.set(Policy(protected_aliases=("production",), approvals=2), by=team.admin)
    outcome = registry.promotions.open("iris", 2, "production", by=team.alex, reason="better AUC")
    request = outcome.request
    assert (request.status, request.requested_by, request.approvals_required) == ("open", "alex", 2)
    assert not outcome.applied
    assert "2 more approval(s)" in outcome.blockers[0]
    with pytest.raises(PermissionDenied, match="four eyes") as info:
        registry.promotions.decide(request.id, "approve", by=team.alex)
    assert info.value.hint
    with pytest.raises(PermissionDenied, match="needs the approver role"):
        registry.promotions.decide(request.id, "approve", by=team.dana)
    assert not registry.promotions.decide(request.id, "approve", by=team.ann, reason="ok").applied
    with pytest.raises(Conflict, match=r"approved request .* already"):
        registry.promotions.decide(request.id, "approve", by=team.ann)
    assert registry.aliases("iris")["production"] == 1
    final = registry.promotions.decide(request.id, "approve", by=team.admin, reason="ok too")
    assert final.applied
    assert final.request.approvers == ("ann", "root")
    assert registry.aliases("iris")["production"] == 2
    with pytest.raises(Conflict, match="is applied"):
        registry.promotions.decide(request.id, "reject", by=team.ann)
    trail = [(a.actor, a.action) for a in registry.audit("iris") if a.details.get("request_id") == request.id]
    assert trail == [
        ("alex", "promotion.request"),
        ("ann", "promotion.approve"),
        ("root", "promotion.approve"),
        ("root", "alias.set"),
        ("root", "promotion.apply"),
    ]


def test_viewers_cannot_request_and_requests_are_not_duplicated(registry: Registry, team: Team) -> None:
    registry.policies.set(Policy.recommended(), by=team.admin)
    with pytest.raises(PermissionDenied, match="request promotions"):
        registry.promotions.open("iris", 2, "production", by=team.vic)
    first = registry.promotions.open("iris", 2, "production", by=team.dana).request
    with pytest.raises(Conflict, match=f"request {first.id} .* pending already"):
        registry.promotions.open("iris", 2, "production", by=team.dana)
    assert registry.promotions.find_pending("iris", 2, "production") == first
    with pytest.raises(PermissionDenied, match="protected"):
        registry.promotions.move("iris", "production", 2, by=team.admin)
    registry.promotions.move("iris", "staging", 2, by=team.dana, reason="try it")
    assert registry.aliases("iris")["staging"] == 2


def test_reject_and_cancel_close_a_request(registry: Registry, team: Team) -> None:
    registry.policies.set(Policy(protected_aliases=("production",)), by=team.admin)
    rejected = registry.promotions.open("iris", 2, "production", by=team.dana).request
    with pytest.raises(PermissionDenied):
        registry.promotions.decide(rejected.id, "reject", by=team.dana)
    outcome = registry.promotions.decide(rejected.id, "reject", by=team.alex, reason="holdout too small")
    assert outcome.request.status == "rejected"
    assert outcome.request.closed_by == "alex"
    with pytest.raises(Conflict, match="is rejected"):
        registry.promotions.decide(rejected.id, "approve", by=team.ann)
    cancelled = registry.promotions.open("iris", 2, "production", by=team.dana).request
    with pytest.raises(PermissionDenied, match="cancel 'dana'"):
        registry.promotions.decide(cancelled.id, "cancel", by=team.alex)
    assert registry.promotions.decide(cancelled.id, "cancel", by=team.dana).request.status == "cancelled"
    assert [r.status for r in registry.promotions.list("iris")] == ["rejected", "cancelled"]
    assert registry.promotions.list(status="open") == []
    with pytest.raises(ValidationError, match="Unknown request status"):
        registry.promotions.list(status="done")


def test_failed_gates_block_until_an_admin_overrides_with_a_reason(registry: Registry, team: Team) -> None:
    registry.policies.set(
        Policy(protected_aliases=("production",), required_gates=("metrics", "latency")), by=team.admin
    )
    request = registry.promotions.open("iris", 2, "production", by=team.dana).request
    assert any("no validation report" in b for b in registry.promotions.blockers(request.id))
    _report(registry, 2, {"metrics": "failed", "latency": "passed"})
    outcome = registry.promotions.decide(request.id, "approve", by=team.alex)
    assert outcome.request.status == "approved"
    assert not outcome.applied
    assert outcome.blockers == ("gate 'metrics' failed in report 1: metrics failed",)
    assert registry.aliases("iris")["production"] == 1
    with pytest.raises(PermissionDenied, match="override failed gates"):
        registry.promotions.decide(request.id, "override", by=team.alex, reason="trust me")
    with pytest.raises(ValidationError, match="reason is required"):
        registry.promotions.decide(request.id, "override", by=team.admin, reason="  ")
    final = registry.promotions.decide(request.id, "override", by=team.admin, reason="metric noise on tiny holdout")
    assert final.applied
    assert final.request.override_by == "root"
    assert registry.aliases("iris")["production"] == 2
    override = next(a for a in registry.audit("iris") if a.action == "promotion.override")
    assert (override.actor, override.reason) == ("root", "metric noise on tiny holdout")
    assert override.details["failed_gates"] == ["gate 'metrics' failed in report 1: metrics failed"]
    applied = next(a for a in registry.audit("iris") if a.action == "promotion.apply")
    assert applied.details["override_by"] == "root"
    assert applied.details["validation"]["gates"][0] == {
        "name": "metrics",
        "status": "failed",
        "message": "metrics failed",
    }


def test_passing_gates_and_no_approvals_apply_at_once(registry: Registry, team: Team) -> None:
    registry.policies.set(
        Policy(protected_aliases=("production",), required_gates=("metrics", "parity"), approvals=0), by=team.admin
    )
    _report(registry, 2, {"metrics": "passed", "parity": "skipped"})
    outcome = registry.promotions.open("iris", 2, "production", by=team.dana)
    assert not outcome.applied
    assert "gate 'parity' skipped" in outcome.blockers[0]
    _report(registry, 2, {"metrics": "passed", "parity": "not_applicable"})
    assert registry.promotions.advance(outcome.request.id, by=team.dana).applied
    assert registry.aliases("iris")["production"] == 2


def test_a_report_against_an_alias_that_moved_since_is_stale(registry: Registry, team: Team) -> None:
    registry.policies.set(
        Policy(protected_aliases=("production",), required_gates=("metrics",), approvals=0), by=team.admin
    )
    _report(registry, 3, {"metrics": "passed"}, against=1)
    registry.promotions.decide(
        registry.promotions.open("iris", 2, "production", by=team.dana).request.id,
        "override",
        by=team.admin,
        reason="hotfix",
    )
    assert registry.aliases("iris")["production"] == 2
    outcome = registry.promotions.open("iris", 3, "production", by=team.dana)
    assert not outcome.applied
    assert "compared with iris:1, but iris@production points at 2 now" in outcome.blockers[0]


def test_clearance_of_protected_aliases(registry: Registry, team: Team) -> None:
    assert registry.promotions.clearance("iris", "production", 3).allowed  # nothing protected yet
    registry.policies.set(Policy(protected_aliases=("production",), approvals=1), by=team.admin)
    grandfathered = registry.promotions.clearance("iris", "production", 1)
    assert grandfathered.allowed
    assert "before the alias was protected" in grandfathered.reason
    registry.set_alias("iris", "production", 3, reason="raw move, bypassing the workflow")
    refused = registry.promotions.clearance("iris", "production", 3)
    assert not refused.allowed
    assert "never went through the promotion workflow" in refused.reason
    assert not registry.promotions.clearance("iris", "production", 2).allowed
    request = registry.promotions.open("iris", 2, "production", by=team.dana).request
    registry.promotions.decide(request.id, "approve", by=team.alex)
    assert registry.promotions.clearance("iris", "production", 2).allowed
    assert registry.promotions.clearance("iris", "staging", 3).allowed
