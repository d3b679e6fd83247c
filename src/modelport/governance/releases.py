"""Releases: canary and shadow deployments of a candidate next to the primary, their status, and their end.

A release splits the traffic of ``name@production`` (or another alias) in the running servers:
``start_release`` sends a weighted share to a canary (optionally sticky per user),
``shadow_release`` feeds a shadow copies of the requests. Servers pick the change up from the
registry without a restart and report what they see; :func:`release_status` compares primary and
candidate side by side. ``promote_release`` goes through the promotion workflow (approvals and
gates for a protected alias); ``rollback_release`` stops routing to the candidate at once. A
server that detects a failing canary rolls it back itself, as its own actor. Every step is audited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelport.core.errors import NotFound
from modelport.core.names import validate_name
from modelport.governance.promotion import PromotionResult, promote
from modelport.registry.registry import Registry
from modelport.registry.releases import ReleaseConfig, RollbackRule, TrafficSummary
from modelport.registry.users import Principal


def _primary(registry: Registry, name: str, alias: str) -> int:
    validate_name(name)
    target = registry.aliases(name).get(validate_name(alias, what="alias"))
    if target is None:
        raise NotFound(
            f"Model {name!r} has no alias {alias!r} to release against.",
            hint=f"Promote a first version: `modelport promote {name} VERSION --to {alias}`.",
        )
    return target


def _active(registry: Registry, name: str) -> ReleaseConfig:
    release = registry.releases.active(validate_name(name))
    if release is None:
        raise NotFound(
            f"Model {name!r} has no active release.",
            hint=f"Start one: `modelport release start {name} --canary VERSION --weight 10`.",
        )
    return release


def start_release(
    registry: Registry,
    principal: Principal,
    name: str,
    *,
    canary: int,
    weight: float,
    sticky_header: str | None = None,
    shadow: int | None = None,
    alias: str = "production",
    rollback: RollbackRule | None = None,
    reason: str | None = None,
) -> ReleaseConfig:
    """Canary ``canary`` on ``weight`` percent of ``name@alias``'s traffic (``data_scientist`` role).

    For a protected alias the canary must satisfy the policy's gates first (approvals come when
    it is promoted).

    Raises:
        NotFound: The alias is not set, or a version does not exist.
        PermissionDenied: The principal lacks the role, or the canary misses required gates.
        Conflict: The model has an active release already.
        ValidationError: A bad weight, header or rule.
    """
    config = ReleaseConfig(
        model=name,
        alias=alias,
        primary_version=_primary(registry, name, alias),
        canary_version=canary,
        canary_weight=weight,
        sticky_header=sticky_header,
        shadow_version=shadow,
        rollback=rollback or RollbackRule(),
    )
    return registry.releases.start(config, by=principal, reason=reason)


def shadow_release(
    registry: Registry,
    principal: Principal,
    name: str,
    version: int,
    *,
    alias: str = "production",
    reason: str | None = None,
) -> ReleaseConfig:
    """Feed ``version`` copies of ``name@alias``'s requests: in the active release, or a new shadow-only one."""
    if registry.releases.active(validate_name(name)) is not None:
        return registry.releases.set_shadow(name, version, by=principal, reason=reason)
    config = ReleaseConfig(
        model=name, alias=alias, primary_version=_primary(registry, name, alias), shadow_version=version
    )
    return registry.releases.start(config, by=principal, reason=reason)


def promote_release(registry: Registry, principal: Principal, name: str, reason: str | None = None) -> PromotionResult:
    """Promote the release's candidate (its canary, else its shadow) to the alias, through the promotion workflow.

    The release ends as ``promoted`` when the alias moves; while a request waits for approvals or
    gates, the release keeps running.

    Raises:
        NotFound: No active release.
        PermissionDenied: The principal lacks the ``data_scientist`` role.
    """
    release = _active(registry, name)
    candidate = release.canary_version if release.canary_version is not None else release.shadow_version
    if candidate is None:  # pragma: no cover - a stored release always has a candidate
        raise NotFound(f"The release of {name!r} has no candidate.", hint="Start a new release.")
    result = promote(registry, principal, name, candidate, release.alias, reason)
    if result.moved and registry.releases.active(name) is not None:  # an unprotected alias moved directly
        registry.releases.end(name, "promoted", actor=principal.name, reason=reason, details={"new_version": candidate})
    return result


def rollback_release(registry: Registry, principal: Principal, name: str, reason: str | None = None) -> ReleaseConfig:
    """Stop routing to the candidate: the primary answers everything again (``data_scientist`` role)."""
    actor = registry.users.require(principal, "data_scientist", to="roll releases back")
    return registry.releases.end(name, "rolled_back", actor=actor.name, reason=reason)


def stop_release(registry: Registry, principal: Principal, name: str, reason: str | None = None) -> ReleaseConfig:
    """End the release without a verdict (``data_scientist`` role)."""
    actor = registry.users.require(principal, "data_scientist", to="stop releases")
    return registry.releases.end(name, "stopped", actor=actor.name, reason=reason)


@dataclass(frozen=True)
class VersionTraffic:
    """One row of ``release status``: a version on a route, with what servers reported."""

    version: int
    route: str
    requests: int
    share: float | None
    errors: int
    error_rate: float | None
    p50_ms: float | None
    p99_ms: float | None
    agreement: float | None
    accuracy: float | None

    @classmethod
    def of(cls, summary: TrafficSummary, answered: int) -> VersionTraffic:
        """A row from merged counters; ``answered`` is the total of primary and canary requests."""
        share = summary.requests / answered if answered and summary.route != "shadow" else None
        return cls(
            version=summary.version,
            route=summary.route,
            requests=summary.requests,
            share=share,
            errors=summary.errors,
            error_rate=summary.error_rate,
            p50_ms=summary.latency_ms(0.5),
            p99_ms=summary.latency_ms(0.99),
            agreement=summary.agreement,
            accuracy=summary.accuracy,
        )


@dataclass(frozen=True)
class ReleaseStatus:
    """A release and its traffic, primary and candidate side by side."""

    release: ReleaseConfig
    traffic: tuple[VersionTraffic, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (``release status --json``)."""
        return {"release": self.release.to_dict(), "traffic": [vars(row) for row in self.traffic]}


def release_status(registry: Registry, name: str) -> ReleaseStatus:
    """The active release of ``name`` (else its latest one) with the traffic every server reported.

    Raises:
        NotFound: The model never had a release.
    """
    release = registry.releases.active(validate_name(name))
    if release is None:
        history = registry.releases.history(name)
        if not history:
            raise NotFound(f"Model {name!r} never had a release.", hint=f"Start one: `modelport release start {name}`.")
        release = history[-1]
    summaries = registry.releases.traffic(release.id) if release.id is not None else []
    answered = sum(s.requests for s in summaries if s.route != "shadow")
    return ReleaseStatus(release, tuple(VersionTraffic.of(s, answered) for s in summaries))
