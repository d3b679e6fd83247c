"""The promotion workflow end to end: policies, real validation gates, four eyes, overrides, audit."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelport.core.errors import Conflict, PermissionDenied, ValidationError
from modelport.governance import approve, cancel, override, pending_requests, promote, reject, validate
from modelport.registry.policies import Policy
from modelport.registry.registry import Registry

from .support import People, iris_frame

FAST = 60_000.0


@pytest.fixture
def governed(registry: Registry, people: People, bundles: dict[str, Path]) -> Registry:
    """iris 1 (good) in production, 2 (weak), 3 (good2); production protected by metrics and one approval."""
    for key in ("good", "weak", "good2"):
        registry.register(bundles[key], name="iris")
    promote(registry, people.admin, "iris", 1, "production", reason="first release")  # still open
    registry.policies.set(
        Policy(
            protected_aliases=("production",),
            required_gates=("signature", "metrics"),
            approvals=1,
            latency_budget_ms=FAST,
        ),
        by=people.admin,
        reason="governance on",
    )
    return registry


def test_unprotected_aliases_move_directly(governed: Registry, people: People) -> None:
    result = promote(governed, people.ds, "iris", 3, "staging", reason="for QA")
    assert result.moved
    assert result.request is None
    assert governed.aliases("iris")["staging"] == 3
    with pytest.raises(PermissionDenied, match="promote models"):
        promote(governed, people.viewer, "iris", 2, "staging")
    entry = governed.audit("iris")[-1]
    assert (entry.actor, entry.action, entry.details["via"]) == ("dana", "alias.set", "promote")


def test_the_full_flow_validate_request_approve(governed: Registry, people: People) -> None:
    report = validate(governed, "iris:3", holdout=iris_frame(), principal=people.ds)
    assert report.passed
    result = promote(governed, people.ds, "iris", 3, "production", reason="C=2 is as good")
    assert not result.moved
    assert result.request is not None
    assert result.blockers == ("1 more approval(s) needed from a user with role approver other than 'dana'",)
    assert [r.id for r in pending_requests(governed, "iris")] == [result.request.id]
    with pytest.raises(PermissionDenied, match="needs the approver role"):
        approve(governed, people.ds, result.request.id)
    approved = approve(governed, people.approver, result.request.id, reason="metrics hold")
    assert approved.moved
    assert governed.aliases("iris")["production"] == 3
    assert governed.promotions.clearance("iris", "production", 3).allowed
    assert pending_requests(governed) == []
    trail = [(a.actor, a.action) for a in governed.audit("iris")][-5:]
    assert trail == [
        ("dana", "validate"),
        ("dana", "promotion.request"),
        ("alex", "promotion.approve"),
        ("alex", "alias.set"),
        ("alex", "promotion.apply"),
    ]


def test_an_approver_who_requested_cannot_approve_their_own_request(governed: Registry, people: People) -> None:
    validate(governed, "iris:3", holdout=iris_frame(), principal=people.approver)
    request = promote(governed, people.approver, "iris", 3, "production").request
    assert request is not None
    with pytest.raises(PermissionDenied, match="four eyes"):
        approve(governed, people.approver, request.id)
    with pytest.raises(PermissionDenied, match="four eyes"):
        reject(governed, people.approver, request.id)
    assert approve(governed, people.approver2, request.id).moved


def test_a_failed_gate_blocks_promotion_until_overridden(governed: Registry, people: People) -> None:
    report = validate(governed, "iris:2", holdout=iris_frame(), principal=people.ds)
    assert not report.passed
    result = promote(governed, people.ds, "iris", 2, "production", reason="want it anyway")
    assert result.request is not None
    approved = approve(governed, people.approver, result.request.id, reason="fine by me")
    assert not approved.moved
    assert approved.request is not None
    assert approved.request.status == "approved"
    assert any("gate 'metrics' failed" in b for b in approved.blockers)
    assert governed.aliases("iris")["production"] == 1
    with pytest.raises(PermissionDenied, match="override failed gates"):
        override(governed, people.approver, result.request.id, "I said so")
    with pytest.raises(ValidationError, match="reason is required"):
        override(governed, people.admin, result.request.id, "")
    final = override(governed, people.admin, result.request.id, "holdout is last year's; business sign-off")
    assert final.moved
    assert governed.aliases("iris")["production"] == 2
    entry = next(a for a in governed.audit("iris") if a.action == "promotion.override")
    assert (entry.actor, entry.reason) == ("root", "holdout is last year's; business sign-off")
    assert any("metrics" in gate for gate in entry.details["failed_gates"])


def test_promote_again_rechecks_the_pending_request_after_a_new_validation(governed: Registry, people: People) -> None:
    request = promote(governed, people.ds, "iris", 3, "production").request
    assert request is not None
    blocked = approve(governed, people.approver, request.id)
    assert not blocked.moved
    assert any("no validation report" in b for b in blocked.blockers)
    validate(governed, "iris:3", holdout=iris_frame(), principal=people.ds)
    again = promote(governed, people.ds, "iris", 3, "production")
    assert again.moved
    assert again.request is not None
    assert again.request.id == request.id


def test_reject_and_cancel(governed: Registry, people: People) -> None:
    first = promote(governed, people.ds, "iris", 3, "production").request
    assert first is not None
    assert reject(governed, people.approver, first.id, reason="wait for Monday").request.status == "rejected"  # type: ignore[union-attr]
    with pytest.raises(Conflict, match="is rejected"):
        approve(governed, people.approver2, first.id)
    second = promote(governed, people.ds, "iris", 3, "production").request
    assert second is not None
    assert second.id != first.id
    with pytest.raises(PermissionDenied):
        cancel(governed, people.ds2, second.id)
    assert cancel(governed, people.ds, second.id).to_dict()["request"]["status"] == "cancelled"
