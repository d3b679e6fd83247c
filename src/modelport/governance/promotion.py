"""The promotion workflow: promote, approve, reject, cancel, override.

``promote`` moves an unprotected alias at once. For a protected one it opens a promotion request
(or, when one is pending for the same move, re-checks it), which is applied as soon as its
approvals are complete and the version's newest validation report satisfies the policy's gates.
``approve``/``reject`` need the policy's approver role and a user other than the requester (four
eyes); ``override`` lets an admin, with a reason, pass a request through failed gates. Every step
is audited with the acting user. The rules themselves are enforced in the registry, inside the
transaction that records each decision (see :mod:`modelport.registry.promotions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelport.core.names import validate_name
from modelport.registry.promotions import Outcome, PromotionRequest
from modelport.registry.registry import Registry
from modelport.registry.users import Principal


@dataclass(frozen=True)
class PromotionResult:
    """What ``promote`` did.

    Attributes:
        name: The model.
        version: The version promoted.
        alias: The alias.
        moved: Whether the alias points at the version now.
        request: The promotion request (``None`` when an unprotected alias moved directly).
        blockers: What keeps a pending request from being applied (approvals, gates).
    """

    name: str
    version: int
    alias: str
    moved: bool
    request: PromotionRequest | None = None
    blockers: tuple[str, ...] = ()

    @classmethod
    def of(cls, outcome: Outcome) -> PromotionResult:
        """The result of an action on a request."""
        request = outcome.request
        return cls(request.model, request.version, request.alias, outcome.applied, request, outcome.blockers)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (``--json``)."""
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "moved": self.moved,
            "request": self.request.to_dict() if self.request is not None else None,
            "blockers": list(self.blockers),
        }


def promote(
    registry: Registry, principal: Principal, name: str, version: int, to_alias: str, reason: str | None = None
) -> PromotionResult:
    """Point ``name@to_alias`` at ``version`` as the model's policy allows.

    An unprotected alias moves at once. A protected one gets a promotion request, applied at once
    when it needs no approval and the gates are satisfied; otherwise the result names what blocks
    it. Calling ``promote`` again for the same move re-checks the pending request (after a new
    validation, say) instead of opening another.

    Raises:
        PermissionDenied: The principal lacks the ``data_scientist`` role.
        NotFound: The model or version does not exist.
        Conflict: The version is deleted.
    """
    validate_name(name)
    validate_name(to_alias, what="alias")
    if not registry.policies.get(name).protects(to_alias):
        registry.promotions.move(name, to_alias, version, by=principal, reason=reason)
        return PromotionResult(name, version, to_alias, moved=True)
    pending = registry.promotions.find_pending(name, version, to_alias)
    if pending is not None:
        return PromotionResult.of(registry.promotions.advance(pending.id, by=principal))
    return PromotionResult.of(registry.promotions.open(name, version, to_alias, by=principal, reason=reason))


def approve(registry: Registry, principal: Principal, request_id: int, reason: str | None = None) -> PromotionResult:
    """Approve request ``request_id``; the alias moves when this completes the approvals and the gates pass.

    Raises:
        PermissionDenied: The principal lacks the approver role, or requested the promotion itself.
        Conflict: The request is closed, or the principal approved it already.
    """
    return PromotionResult.of(registry.promotions.decide(request_id, "approve", by=principal, reason=reason))


def reject(registry: Registry, principal: Principal, request_id: int, reason: str | None = None) -> PromotionResult:
    """Reject request ``request_id`` (closes it).

    Raises:
        PermissionDenied: The principal lacks the approver role, or requested the promotion itself.
        Conflict: The request is closed.
    """
    return PromotionResult.of(registry.promotions.decide(request_id, "reject", by=principal, reason=reason))


def cancel(registry: Registry, principal: Principal, request_id: int, reason: str | None = None) -> PromotionResult:
    """Withdraw request ``request_id`` (its requester, or an admin).

    Raises:
        PermissionDenied: The principal is neither the requester nor an admin.
        Conflict: The request is closed.
    """
    return PromotionResult.of(registry.promotions.decide(request_id, "cancel", by=principal, reason=reason))


def override(registry: Registry, principal: Principal, request_id: int, reason: str) -> PromotionResult:
    """Let request ``request_id`` through its failed gates (admins only, with a reason; audited).

    Approvals are still needed; the alias moves once they are complete.

    Raises:
        PermissionDenied: The principal is not an admin.
        ValidationError: No reason was given.
        Conflict: The request is closed.
    """
    return PromotionResult.of(registry.promotions.decide(request_id, "override", by=principal, reason=reason))


def pending_requests(registry: Registry, name: str | None = None) -> list[PromotionRequest]:
    """Requests still waiting for approvals or gates (of model ``name``), oldest first."""
    return [r for r in registry.promotions.list(name) if r.pending]
