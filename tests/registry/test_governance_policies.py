"""Promotion policies: validation, effective policy per model, admin-only changes, audit."""

from __future__ import annotations

import pytest

from modelport.core.errors import NotFound, PermissionDenied, ValidationError
from modelport.core.settings import Settings
from modelport.registry.policies import GATES, Policy
from modelport.registry.registry import Registry
from modelport.registry.users import Principal


@pytest.fixture
def registry(settings: Settings) -> Registry:
    return Registry(settings)


@pytest.fixture
def admin(registry: Registry) -> Principal:
    return registry.authenticate(registry.users.bootstrap_admin("root", actor="tester").token)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"required_gates": ("speed",)}, "gate 'speed'"),
        ({"approvals": -1}, "approvals -1"),
        ({"approvals": True}, "approvals True"),
        ({"approver_role": "viewer"}, "approver role 'viewer'"),
        ({"protected_aliases": ("Prod!",)}, "protected alias 'Prod!'"),
        ({"metric_tolerance": float("nan")}, "metric tolerance nan"),
        ({"latency_budget_ms": 0}, "latency budget 0"),
    ],
)
def test_invalid_policies_are_refused_naming_the_value(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        Policy(**kwargs)  # type: ignore[arg-type]
    assert info.value.hint


def test_policies_round_trip_and_refuse_unknown_fields() -> None:
    policy = Policy.recommended()
    assert policy.required_gates == GATES
    assert policy.protects("production")
    assert not policy.protects("staging")
    assert Policy.from_dict(policy.to_dict()) == policy
    with pytest.raises(ValidationError, match="field 'approvers'"):
        Policy.from_dict({"approvers": 2})


def test_the_effective_policy_falls_back_from_model_to_registry_to_open(registry: Registry, admin: Principal) -> None:
    assert registry.policies.get("churn") == Policy.open()
    assert not Policy.open().protected_aliases
    registry.policies.set(Policy.recommended(), by=admin, reason="governance on")
    assert registry.policies.get("churn") == Policy.recommended()
    special = Policy(protected_aliases=("production", "staging"), approvals=2)
    registry.policies.set(special, by=admin, model="churn", reason="regulated model")
    assert registry.policies.get("churn") == special
    assert registry.policies.get("other") == Policy.recommended()
    assert registry.policies.get() == Policy.recommended()
    assert registry.policies.list() == {"*": Policy.recommended(), "churn": special}
    registry.policies.clear("churn", by=admin, reason="back to default")
    assert registry.policies.get("churn") == Policy.recommended()
    with pytest.raises(NotFound, match="No policy is stored for 'churn'"):
        registry.policies.clear("churn", by=admin)


def test_only_admins_change_policies_and_every_change_is_audited(registry: Registry, admin: Principal) -> None:
    registry.users.create_user("alex", "approver", by=admin)
    alex = registry.authenticate(registry.users.create_key("alex", by=admin).token)
    with pytest.raises(PermissionDenied, match="change policies"):
        registry.policies.set(Policy.open(), by=alex)
    before = registry.revision()
    registry.policies.set(Policy.recommended(), by=admin, reason="governance on")
    registry.policies.set(Policy(protected_aliases=("production",), approvals=2), by=admin, model="churn")
    assert registry.revision() == before + 2  # servers re-check what they may serve
    entries = [a for a in registry.audit() if a.action.startswith("policy.")]
    assert [(a.actor, a.action, a.target, a.reason) for a in entries] == [
        ("root", "policy.set", "policy:*", "governance on"),
        ("root", "policy.set", "policy:churn", None),
    ]
    assert entries[0].details["old"] is None
    assert entries[0].details["new"]["protected_aliases"] == ["production"]
    assert entries[1].model == "churn"
    assert [a.action for a in registry.audit("churn")] == ["policy.set"]
