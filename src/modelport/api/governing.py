"""Governance for people and scripts: validation, promotions and approvals, releases, users, policies, audit.

Each function opens the registry from ``settings`` (or uses the ``registry`` given), identifies
who acts from ``settings.api_key`` (:func:`modelport.governance.identify`: the key's user, or the
local actor as an admin while the registry has no users yet), and calls :mod:`modelport.governance`
or the registry's governance stores, which re-check the role inside the transaction that acts.
The CLI (``modelport validate``, ``promote``, ``approve``, ``release ...``, ``users ...``,
``policy ...``, ``audit``) is a thin shell over these functions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelport import governance
from modelport.core.errors import ModelportError, ValidationError
from modelport.core.refs import ModelRef
from modelport.core.settings import Settings
from modelport.registry.policies import DEFAULT_SCOPE, GATES, Policy
from modelport.registry.promotions import PromotionRequest
from modelport.registry.records import AuditRecord
from modelport.registry.registry import Registry
from modelport.registry.releases import ReleaseConfig, RollbackRule
from modelport.registry.users import ApiKeyInfo, IssuedKey, Principal, User
from modelport.registry.validations import ValidationReport

from .context import registry_scope, resolve_settings
from .monitoring import live_report

_VERSION_KEYS = ("version", "new_version", "primary_version", "canary_version", "shadow_version")


@contextmanager
def _acting(settings: Settings | None, registry: Registry | None) -> Iterator[tuple[Registry, Principal]]:
    resolved = resolve_settings(settings)
    key = resolved.api_key.get_secret_value() if resolved.api_key is not None else None
    with registry_scope(resolved, registry) as opened:
        yield opened, governance.identify(opened, key)


def whoami(*, settings: Settings | None = None, registry: Registry | None = None) -> Principal:
    """Who acts with ``settings.api_key`` (``MODELPORT_API_KEY``).

    Raises:
        Unauthenticated: The key is unknown or revoked, or no key was given and the registry has users.
    """
    with _acting(settings, registry) as (_, principal):
        return principal


# -- validation and promotion ---------------------------------------------------------------------


def validate(
    ref: str,
    *,
    holdout: Path | str | None = None,
    target: str = "target",
    against: str | None = "production",
    tolerance: float | None = None,
    latency_budget_ms: float | None = None,
    acknowledge_breaking: str | None = None,
    trusted_code: bool = False,
    store: bool = True,
    reason: str | None = None,
    settings: Settings | None = None,
    registry: Registry | None = None,
) -> ValidationReport:
    """Run the validation gates on ``ref`` against ``against`` and store the report (see :func:`governance.validate`).

    Example:
        >>> report = validate("churn:3", holdout="holdout.csv", against="production")  # doctest: +SKIP
        >>> report.passed  # doctest: +SKIP
        True
    """
    resolved = resolve_settings(settings)
    with _acting(resolved, registry) as (reg, principal):
        return governance.validate(
            reg,
            ref,
            holdout=holdout,
            target=target,
            against=None if against in (None, "none") else against,
            principal=principal,
            tolerance=tolerance,
            latency_budget_ms=latency_budget_ms,
            acknowledge_breaking=acknowledge_breaking,
            trusted_code=trusted_code,
            trusted_pickle=resolved.trusted_pickle,
            store=store,
            reason=reason,
        )


def promote(
    name: str,
    version: int,
    *,
    to: str,
    reason: str | None = None,
    settings: Settings | None = None,
    registry: Registry | None = None,
) -> governance.PromotionResult:
    """Point ``name@to`` at ``version``, or open a promotion request when the policy protects the alias."""
    with _acting(settings, registry) as (reg, principal):
        return governance.promote(reg, principal, name, version, to, reason)


def approve(
    request_id: int,
    *,
    reason: str | None = None,
    override: bool = False,
    settings: Settings | None = None,
    registry: Registry | None = None,
) -> governance.PromotionResult:
    """Approve a promotion request (four eyes); with ``override``, an admin also lets it through failed gates.

    Raises:
        PermissionDenied: Not an approver, the requester itself, or ``override`` without the admin role.
        ValidationError: ``override`` without a reason.
    """
    with _acting(settings, registry) as (reg, principal):
        if override:  # checked before anything is recorded, so an override never half-happens
            principal.require("admin", to="override failed gates")
            if not (reason or "").strip():
                raise ValidationError(
                    "A reason is required to override failed gates.", hint="Pass --reason 'why this is safe'."
                )
        result = governance.approve(reg, principal, request_id, reason)
        if override and not result.moved and result.request is not None and result.request.pending:
            result = governance.override(reg, principal, request_id, reason or "")
        return result


def reject(
    request_id: int, *, reason: str | None = None, settings: Settings | None = None, registry: Registry | None = None
) -> governance.PromotionResult:
    """Reject a promotion request (an approver other than the requester)."""
    with _acting(settings, registry) as (reg, principal):
        return governance.reject(reg, principal, request_id, reason)


def cancel(
    request_id: int, *, reason: str | None = None, settings: Settings | None = None, registry: Registry | None = None
) -> governance.PromotionResult:
    """Withdraw a promotion request (its requester, or an admin)."""
    with _acting(settings, registry) as (reg, principal):
        return governance.cancel(reg, principal, request_id, reason)


def override(
    request_id: int, *, reason: str, settings: Settings | None = None, registry: Registry | None = None
) -> governance.PromotionResult:
    """Let a promotion request through its failed gates (admins, with a reason; approvals still count)."""
    with _acting(settings, registry) as (reg, principal):
        return governance.override(reg, principal, request_id, reason)


def list_requests(
    name: str | None = None,
    *,
    include_closed: bool = False,
    settings: Settings | None = None,
    registry: Registry | None = None,
) -> list[PromotionRequest]:
    """Promotion requests (of model ``name``), oldest first: pending ones, or all with ``include_closed``."""
    with registry_scope(resolve_settings(settings), registry) as reg:
        if include_closed:
            return reg.promotions.list(name)
        return governance.pending_requests(reg, name)


def show_request(
    request_id: int, *, settings: Settings | None = None, registry: Registry | None = None
) -> governance.PromotionResult:
    """Request ``request_id`` with what still blocks it."""
    with registry_scope(resolve_settings(settings), registry) as reg:
        request = reg.promotions.get(request_id)
        blockers = tuple(reg.promotions.blockers(request_id))
        return governance.PromotionResult(
            request.model, request.version, request.alias, request.status == "applied", request, blockers
        )


# -- releases -----------------------------------------------------------------------------------


def start_release(
    name: str,
    *,
    canary: int,
    weight: float,
    sticky_header: str | None = None,
    shadow: int | None = None,
    alias: str = "production",
    rollback: Mapping[str, Any] | None = None,
    reason: str | None = None,
    settings: Settings | None = None,
    registry: Registry | None = None,
) -> ReleaseConfig:
    """Canary ``canary`` on ``weight`` percent of ``name@alias``'s traffic.

    Args:
        name: The model.
        canary: The candidate version.
        weight: Percent of requests it answers.
        sticky_header: A header pinning each caller to one version (A/B tests).
        shadow: A version fed copies of requests too.
        alias: The alias whose traffic is split.
        rollback: Overrides of :class:`RollbackRule` fields (``window_s``, ``min_requests``, ...).
        reason: Why, for the audit log.
        settings: Where the registry is and who acts.
        registry: An open registry to use instead.
    """
    rule = dataclasses.replace(RollbackRule(), **(rollback or {}))
    with _acting(settings, registry) as (reg, principal):
        return governance.start_release(
            reg,
            principal,
            name,
            canary=canary,
            weight=weight,
            sticky_header=sticky_header,
            shadow=shadow,
            alias=alias,
            rollback=rule,
            reason=reason,
        )


def shadow_release(
    name: str,
    version: int,
    *,
    alias: str = "production",
    reason: str | None = None,
    settings: Settings | None = None,
    registry: Registry | None = None,
) -> ReleaseConfig:
    """Feed ``version`` copies of ``name@alias``'s requests (in the active release, or a new one)."""
    with _acting(settings, registry) as (reg, principal):
        return governance.shadow_release(reg, principal, name, version, alias=alias, reason=reason)


def release_status(
    name: str, *, settings: Settings | None = None, registry: Registry | None = None
) -> governance.ReleaseStatus:
    """The active (else latest) release of ``name`` with the traffic servers reported, per version and route."""
    resolved = resolve_settings(settings)
    with registry_scope(resolved, registry) as reg:
        return with_live_accuracy(governance.release_status(reg, name), resolved, reg)


def with_live_accuracy(
    status: governance.ReleaseStatus, settings: Settings, registry: Registry
) -> governance.ReleaseStatus:
    """``status`` with each answering version's live accuracy since the release started, where feedback exists.

    Servers report traffic but not accuracy; ground truth arrives later through feedback, joined to
    the logged predictions by monitoring. Shadow rows keep ``None``: their answers were never returned.
    """
    started = status.release.started_at
    since = max(int((datetime.now(UTC) - started).total_seconds()) + 1, 1) if started is not None else None
    try:
        report = live_report(settings, status.release.model, window=f"{since}s" if since else None, registry=registry)
    except ModelportError:
        return status  # no log or no feedback yet: accuracy stays unknown
    accuracy = {p.version: p.metrics.get("accuracy") for p in report.overall if p.n}
    rows = tuple(
        dataclasses.replace(row, accuracy=accuracy.get(row.version))
        if row.accuracy is None and row.route != "shadow"
        else row
        for row in status.traffic
    )
    return dataclasses.replace(status, traffic=rows)


def promote_release(
    name: str, *, reason: str | None = None, settings: Settings | None = None, registry: Registry | None = None
) -> governance.PromotionResult:
    """Promote the release's candidate through the promotion workflow."""
    with _acting(settings, registry) as (reg, principal):
        return governance.promote_release(reg, principal, name, reason)


def rollback_release(
    name: str, *, reason: str | None = None, settings: Settings | None = None, registry: Registry | None = None
) -> ReleaseConfig:
    """Stop routing to the candidate: the primary answers everything again."""
    with _acting(settings, registry) as (reg, principal):
        return governance.rollback_release(reg, principal, name, reason)


def stop_release(
    name: str, *, reason: str | None = None, settings: Settings | None = None, registry: Registry | None = None
) -> ReleaseConfig:
    """End the release without a verdict."""
    with _acting(settings, registry) as (reg, principal):
        return governance.stop_release(reg, principal, name, reason)


# -- users and keys -------------------------------------------------------------------------------


def bootstrap_admin(
    name: str, *, label: str | None = None, settings: Settings | None = None, registry: Registry | None = None
) -> IssuedKey:
    """Create the first admin and its key (only while the registry has no active admin); the token is shown once."""
    with registry_scope(resolve_settings(settings), registry) as reg:
        return reg.users.bootstrap_admin(name, actor=reg.actor, label=label)


def create_user(
    name: str,
    role: str,
    *,
    reason: str | None = None,
    settings: Settings | None = None,
    registry: Registry | None = None,
) -> User:
    """Create user ``name`` with ``role`` (admins only)."""
    with _acting(settings, registry) as (reg, principal):
        return reg.users.create_user(name, role, by=principal, reason=reason)


def set_role(
    name: str,
    role: str,
    *,
    reason: str | None = None,
    settings: Settings | None = None,
    registry: Registry | None = None,
) -> User:
    """Give user ``name`` the role ``role`` (admins only)."""
    with _acting(settings, registry) as (reg, principal):
        return reg.users.set_role(name, role, by=principal, reason=reason)


def disable_user(
    name: str, *, reason: str | None = None, settings: Settings | None = None, registry: Registry | None = None
) -> User:
    """Disable user ``name`` and revoke its keys (admins only)."""
    with _acting(settings, registry) as (reg, principal):
        return reg.users.disable_user(name, by=principal, reason=reason)


def list_users(*, settings: Settings | None = None, registry: Registry | None = None) -> list[User]:
    """Every user, by name."""
    with registry_scope(resolve_settings(settings), registry) as reg:
        return reg.users.list_users()


def create_key(
    user: str, *, label: str | None = None, settings: Settings | None = None, registry: Registry | None = None
) -> IssuedKey:
    """Issue an API key for ``user`` (admins only); the token is shown once, only its hash is stored."""
    with _acting(settings, registry) as (reg, principal):
        return reg.users.create_key(user, by=principal, label=label)


def revoke_key(
    key_id: str, *, reason: str | None = None, settings: Settings | None = None, registry: Registry | None = None
) -> None:
    """Revoke API key ``key_id`` (admins, or the key's own user)."""
    with _acting(settings, registry) as (reg, principal):
        reg.users.revoke_key(key_id, by=principal, reason=reason)


def list_keys(
    user: str | None = None, *, settings: Settings | None = None, registry: Registry | None = None
) -> list[ApiKeyInfo]:
    """API keys (of ``user``), without secrets."""
    with registry_scope(resolve_settings(settings), registry) as reg:
        return reg.users.list_keys(user)


# -- policies -------------------------------------------------------------------------------------


def set_policy(
    model: str | None = None,
    *,
    protect: Sequence[str] | None = None,
    gates: Sequence[str] | None = None,
    approvals: int | None = None,
    approver_role: str | None = None,
    metric_tolerance: float | None = None,
    latency_budget_ms: float | None = None,
    recommended: bool = False,
    reason: str | None = None,
    settings: Settings | None = None,
    registry: Registry | None = None,
) -> Policy:
    """Store the policy of ``model`` (registry-wide for ``None``); admins only.

    It starts from :meth:`Policy.recommended` with ``recommended``, else from the policy stored
    for the same scope, else from :class:`Policy` defaults; each given field replaces its value.
    ``gates`` may contain ``all``.
    """
    changes: dict[str, Any] = {
        "protected_aliases": tuple(protect) if protect is not None else None,
        "required_gates": (GATES if "all" in gates else tuple(gates)) if gates is not None else None,
        "approvals": approvals,
        "approver_role": approver_role,
        "metric_tolerance": metric_tolerance,
        "latency_budget_ms": latency_budget_ms,
    }
    with _acting(settings, registry) as (reg, principal):
        base = Policy.recommended() if recommended else reg.policies.list().get(model or DEFAULT_SCOPE, Policy())
        policy = dataclasses.replace(base, **{k: v for k, v in changes.items() if v is not None})
        reg.policies.set(policy, by=principal, model=model, reason=reason)
        return policy


def show_policy(
    model: str | None = None, *, settings: Settings | None = None, registry: Registry | None = None
) -> tuple[str, Policy]:
    """The effective policy of ``model`` (registry-wide for ``None``) and where it comes from.

    Returns:
        ``(scope, policy)``: scope is the model name, ``*`` (registry-wide) or ``default`` (nothing stored).
    """
    with registry_scope(resolve_settings(settings), registry) as reg:
        stored = reg.policies.list()
        for scope in (model, DEFAULT_SCOPE):
            if scope is not None and scope in stored:
                return scope, stored[scope]
        return "default", reg.policies.get(model)


def clear_policy(
    model: str | None = None,
    *,
    reason: str | None = None,
    settings: Settings | None = None,
    registry: Registry | None = None,
) -> None:
    """Remove the policy stored for ``model`` (registry-wide for ``None``); admins only."""
    with _acting(settings, registry) as (reg, principal):
        reg.policies.clear(model, by=principal, reason=reason)


def list_policies(*, settings: Settings | None = None, registry: Registry | None = None) -> dict[str, Policy]:
    """Every stored policy by scope (``*``: registry-wide)."""
    with registry_scope(resolve_settings(settings), registry) as reg:
        return reg.policies.list()


# -- audit ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditEntry:
    """One audit record, with the full validation report when it records a validation.

    Attributes:
        record: The audit record (who, what, when, why, details).
        report: The stored report of a ``validate`` entry (every gate with its numbers), else ``None``.
    """

    record: AuditRecord
    report: ValidationReport | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (``modelport audit --json``)."""
        data = dataclasses.asdict(self.record)
        data["at"] = self.record.at.isoformat()
        data["report"] = self.report.to_dict() if self.report is not None else None
        return data


def _concerns(record: AuditRecord, ref: ModelRef) -> bool:
    if ref.version is not None:
        details = record.details
        return record.target == f"{ref.name}:{ref.version}" or any(details.get(k) == ref.version for k in _VERSION_KEYS)
    if ref.alias is not None:
        return record.target == f"{ref.name}@{ref.alias}" or record.details.get("alias") == ref.alias
    return True


def audit_trail(
    ref: str | None = None,
    *,
    since: datetime | None = None,
    settings: Settings | None = None,
    registry: Registry | None = None,
) -> list[AuditEntry]:
    """The audit trail, oldest first: everything, or what concerns ``ref`` (``name``, ``name:3``, ``name@alias``).

    Registrations, validations (with their full gate reports), promotion requests, approvals,
    rejections, overrides, alias moves, releases and rollbacks, policy and user changes (the last
    only without ``ref``), each with its actor and reason.

    Raises:
        InvalidName: ``ref`` is not a registry reference.
    """
    parsed = ModelRef.parse(ref) if ref is not None else None
    if parsed is not None and parsed.name is None:
        raise ValidationError(
            f"Invalid audit reference {ref!r}: a bundle path has no audit trail.",
            hint="Use name, name:3 or name@alias.",
        )
    with registry_scope(resolve_settings(settings), registry) as reg:
        records = reg.audit(parsed.name if parsed is not None else None, since=since)
        entries = []
        for record in records:
            if parsed is not None and not _concerns(record, parsed):
                continue
            report_id = record.details.get("report_id") if record.action == "validate" else None
            report = reg.validations.get(int(report_id)) if isinstance(report_id, int) else None
            entries.append(AuditEntry(record, report))
        return entries
