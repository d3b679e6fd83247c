"""Promotion policies: which aliases are protected, by which gates and how many approvals.

A :class:`Policy` is stored per model, or registry-wide under the scope ``*``; the effective
policy of a model is its own, else the registry-wide one, else :meth:`Policy.open` (nothing is
protected, so a registry works without governance until an admin writes a policy).
:meth:`Policy.recommended` is the usual starting point: ``production`` protected by every gate and
one approval from an ``approver``. Only admins change policies; every change is audited and bumps
the registry revision, so running servers re-check what they may serve.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from modelport.core.errors import NotFound, ValidationError
from modelport.core.names import validate_name
from modelport.registry import audit as audit_sql
from modelport.registry import users as user_sql
from modelport.registry.store import SqlStore
from modelport.registry.tables import NAME_LENGTH, UTCDateTime, metadata

T = TypeVar("T")

GATES = ("signature", "metrics", "latency", "parity", "checks")
"""The validation gates a policy can require (see :mod:`modelport.governance.gates`)."""

DEFAULT_SCOPE = "*"
"""The scope of the registry-wide policy (no model name can be ``*``)."""

MAX_APPROVALS = 10

policies = sa.Table(
    "policies",
    metadata,
    sa.Column("scope", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("policy", sa.JSON(), nullable=False),
    sa.Column("protected_since", sa.JSON(), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("updated_by", sa.String(255), nullable=False),
)


def _bad(field: str, value: Any, hint: str) -> ValidationError:
    return ValidationError(f"Invalid policy {field} {value!r}.", hint=hint)


@dataclass(frozen=True)
class Policy:
    """How aliases of a model are protected.

    Attributes:
        protected_aliases: Aliases that only move through the promotion workflow.
        required_gates: Gates (from :data:`GATES`) a version must pass before a protected alias
            points at it, or before it is a canary of one.
        approvals: Approvals needed from distinct users other than the requester (0: gates only).
        approver_role: The role an approver needs (``approver`` or ``admin``).
        metric_tolerance: How much worse than the champion a challenger's holdout metrics may be
            (absolute for accuracy/F1/AUC, relative for MAE/RMSE).
        latency_budget_ms: The p99 of single-row predictions a version must stay under.
    """

    protected_aliases: tuple[str, ...] = ()
    required_gates: tuple[str, ...] = ()
    approvals: int = 1
    approver_role: str = "approver"
    metric_tolerance: float = 0.01
    latency_budget_ms: float = 100.0

    def __post_init__(self) -> None:
        for alias in self.protected_aliases:
            validate_name(alias, what="protected alias")
        unknown = [g for g in self.required_gates if g not in GATES]
        if unknown:
            raise _bad("gate", unknown[0], f"Use gates from: {', '.join(GATES)}.")
        count = self.approvals
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_APPROVALS:
            raise _bad("approvals", count, f"Give a whole number from 0 to {MAX_APPROVALS}.")
        if self.approver_role not in ("approver", "admin"):
            raise _bad("approver role", self.approver_role, "Use 'approver' or 'admin'.")
        if not _finite(self.metric_tolerance) or self.metric_tolerance < 0:
            raise _bad("metric tolerance", self.metric_tolerance, "Give a number >= 0, e.g. 0.01.")
        if not _finite(self.latency_budget_ms) or self.latency_budget_ms <= 0:
            raise _bad("latency budget", self.latency_budget_ms, "Give milliseconds > 0, e.g. 100.")

    @classmethod
    def open(cls) -> Policy:
        """Nothing protected: every alias moves freely (the built-in default)."""
        return cls(approvals=0)

    @classmethod
    def recommended(cls) -> Policy:
        """``production`` protected by every gate and one approval from an ``approver``."""
        return cls(protected_aliases=("production",), required_gates=GATES, approvals=1)

    def protects(self, alias: str) -> bool:
        """Whether ``alias`` only moves through the promotion workflow."""
        return alias in self.protected_aliases

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (as stored)."""
        return {
            "protected_aliases": list(self.protected_aliases),
            "required_gates": list(self.required_gates),
            "approvals": self.approvals,
            "approver_role": self.approver_role,
            "metric_tolerance": self.metric_tolerance,
            "latency_budget_ms": self.latency_budget_ms,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        """Rebuild from :meth:`to_dict` output (unknown keys are refused).

        Raises:
            ValidationError: A key or a value does not fit.
        """
        known = set(cls.__dataclass_fields__)
        extra = sorted(set(data) - known)
        if extra:
            raise _bad("field", extra[0], f"Known fields: {', '.join(sorted(known))}.")
        values = dict(data)
        for key in ("protected_aliases", "required_gates"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _scope(model: str | None) -> str:
    return DEFAULT_SCOPE if model is None else validate_name(model)


def stored(conn: Connection, scope: str) -> Policy | None:
    """The policy stored under ``scope`` (a model name or ``*``), or ``None``."""
    row = conn.execute(sa.select(policies.c.policy).where(policies.c.scope == scope)).first()
    return Policy.from_dict(row.policy) if row is not None else None


def effective(conn: Connection, model: str) -> Policy:
    """The policy that governs ``model``: its own, else the registry-wide one, else :meth:`Policy.open`."""
    return stored(conn, model) or stored(conn, DEFAULT_SCOPE) or Policy.open()


def protected_since(conn: Connection, model: str, alias: str) -> datetime | None:
    """Since when the effective policy of ``model`` has protected ``alias`` without a break, or ``None``.

    An alias target set before that moment was set before the rules applied, and stays servable.
    """
    for scope in (model, DEFAULT_SCOPE):
        row = conn.execute(sa.select(policies).where(policies.c.scope == scope)).first()
        if row is not None:
            since = dict(row.protected_since or {}).get(alias)
            return datetime.fromisoformat(since) if since else None
    return None


class PolicyStore(SqlStore):
    """Policies in the registry database (``registry.policies``).

    Args:
        engine: Engine of the registry database (already at the newest schema).
        url: The database URL as configured (only for error messages).
    """

    def get(self, model: str | None = None) -> Policy:
        """The effective policy of ``model`` (or the registry-wide one for ``None``)."""
        scope = _scope(model)
        if scope == DEFAULT_SCOPE:
            return self._tx(lambda conn: stored(conn, DEFAULT_SCOPE) or Policy.open(), write=False)
        return self._tx(lambda conn: effective(conn, scope), write=False)

    def list(self) -> dict[str, Policy]:
        """Every stored policy by scope (``*`` for the registry-wide one)."""

        def work(conn: Connection) -> dict[str, Policy]:
            rows = conn.execute(sa.select(policies).order_by(policies.c.scope))
            return {row.scope: Policy.from_dict(row.policy) for row in rows}

        return self._tx(work, write=False)

    def set(
        self, policy: Policy, *, by: user_sql.Principal, model: str | None = None, reason: str | None = None
    ) -> None:
        """Store ``policy`` for ``model`` (registry-wide for ``None``); admins only, audited.

        Raises:
            PermissionDenied: ``by`` is not an admin.
        """
        scope = _scope(model)

        def work(conn: Connection) -> None:
            actor = user_sql.require(conn, by, "admin", to="change policies")
            row = conn.execute(sa.select(policies).where(policies.c.scope == scope)).first()
            old = Policy.from_dict(row.policy) if row is not None else None
            now = datetime.now(UTC)
            before = dict(row.protected_since or {}) if row is not None else {}
            since = {alias: before.get(alias, now.isoformat()) for alias in policy.protected_aliases}
            values = {"policy": policy.to_dict(), "protected_since": since, "updated_at": now, "updated_by": actor.name}
            if old is None:
                conn.execute(sa.insert(policies).values(scope=scope, **values))
            else:
                conn.execute(sa.update(policies).where(policies.c.scope == scope).values(**values))
            self._audit(conn, actor.name, "policy.set", scope, reason, old, policy, now)

        self._tx(work)

    def clear(self, model: str | None = None, *, by: user_sql.Principal, reason: str | None = None) -> None:
        """Remove the policy of ``model`` (registry-wide for ``None``); admins only, audited.

        Raises:
            PermissionDenied: ``by`` is not an admin.
            NotFound: No policy is stored there.
        """
        scope = _scope(model)

        def work(conn: Connection) -> None:
            actor = user_sql.require(conn, by, "admin", to="change policies")
            old = stored(conn, scope)
            if old is None:
                raise NotFound(
                    f"No policy is stored for {scope!r}.", hint="List policies with `modelport policy list`."
                )
            conn.execute(sa.delete(policies).where(policies.c.scope == scope))
            self._audit(conn, actor.name, "policy.clear", scope, reason, old, None, datetime.now(UTC))

        self._tx(work)

    @staticmethod
    def _audit(
        conn: Connection,
        actor: str,
        action: str,
        scope: str,
        reason: str | None,
        old: Policy | None,
        new: Policy | None,
        now: datetime,
    ) -> None:
        model = None if scope == DEFAULT_SCOPE else scope
        audit_sql.record(
            conn,
            at=now,
            actor=actor,
            action=action,
            target=f"policy:{scope}",
            model=model,
            reason=reason,
            details={"old": old.to_dict() if old else None, "new": new.to_dict() if new else None},
        )
        audit_sql.bump_revision(conn)
