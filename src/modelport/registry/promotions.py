"""Promotion requests and their approvals: how a protected alias moves.

A protected alias (see :mod:`modelport.registry.policies`) moves only when a *promotion request*
is applied. ``promotion_requests`` holds the request (version, alias, and the approvals and gates
its policy asked for when it was opened); ``promotion_decisions`` each approval, rejection,
cancellation and gate override. The rules hold inside the transaction that records a decision:
an approver holds the policy's approver role and is never the requester (four eyes) and
approves once; only an admin overrides failed gates, and only with a reason. A request is applied
(alias moved, audited, revision bumped, any release of the alias ended, in one transaction) once
its approvals are complete and the version's newest validation report satisfies the required
gates, or an admin overrode them. :meth:`PromotionStore.clearance` tells a server whether a
version may be served under a protected alias.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar, cast, get_args

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from modelport.core.errors import Conflict, NotFound, PermissionDenied, ValidationError
from modelport.core.names import validate_name
from modelport.registry import aliases as alias_sql
from modelport.registry import audit as audit_sql
from modelport.registry import policies as policy_sql
from modelport.registry import releases as release_sql
from modelport.registry import users as user_sql
from modelport.registry import validations as validation_sql
from modelport.registry import versions as version_sql
from modelport.registry.store import SqlStore
from modelport.registry.tables import NAME_LENGTH, UTCDateTime, aliases, metadata

T = TypeVar("T")

RequestStatus = Literal["open", "approved", "applied", "rejected", "cancelled"]
REQUEST_STATUSES: tuple[RequestStatus, ...] = get_args(RequestStatus)
PENDING: tuple[RequestStatus, ...] = ("open", "approved")
"""Statuses of a request that can still be applied (``approved``: approvals complete, gates blocking)."""

DecisionKind = Literal["approve", "reject", "cancel", "override"]

promotion_requests = sa.Table(
    "promotion_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("alias", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("requested_by", sa.String(255), nullable=False),
    sa.Column("requested_at", UTCDateTime, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("approvals_required", sa.Integer, nullable=False),
    sa.Column("approver_role", sa.String(32), nullable=False),
    sa.Column("required_gates", sa.JSON(), nullable=False),
    sa.Column("override_by", sa.String(255), nullable=True),
    sa.Column("override_reason", sa.Text, nullable=True),
    sa.Column("closed_at", UTCDateTime, nullable=True),
    sa.Column("closed_by", sa.String(255), nullable=True),
    sa.Index("ix_promotion_requests_model_alias", "model", "alias"),
)

promotion_decisions = sa.Table(
    "promotion_decisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.Integer, sa.ForeignKey("promotion_requests.id"), nullable=False, index=True),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("at", UTCDateTime, nullable=False),
)


@dataclass(frozen=True)
class Decision:
    """One approval, rejection, cancellation or override of a request."""

    actor: str
    decision: DecisionKind
    reason: str | None
    at: datetime


@dataclass(frozen=True)
class PromotionRequest:
    """A request to point ``model@alias`` at ``version``, with its decisions so far.

    Attributes:
        id: The request id (what ``modelport approve`` takes).
        model: The model name.
        version: The version to promote.
        alias: The protected alias.
        status: ``open``, ``approved`` (approvals complete, gates blocking), ``applied``,
            ``rejected`` or ``cancelled``.
        requested_by: Who asked.
        requested_at: When.
        reason: Why, as the requester said.
        approvals_required: Approvals needed from users other than the requester.
        approver_role: The role an approver needs.
        required_gates: Gates the version must satisfy.
        decisions: Every decision, oldest first.
        override_by: The admin who overrode failed gates, if one did.
        override_reason: Why.
        closed_at: When it was applied, rejected or cancelled.
        closed_by: By whom.
    """

    id: int
    model: str
    version: int
    alias: str
    status: RequestStatus
    requested_by: str
    requested_at: datetime
    reason: str | None
    approvals_required: int
    approver_role: str
    required_gates: tuple[str, ...]
    decisions: tuple[Decision, ...] = field(default=(), hash=False)
    override_by: str | None = None
    override_reason: str | None = None
    closed_at: datetime | None = None
    closed_by: str | None = None

    @property
    def approvers(self) -> tuple[str, ...]:
        """Distinct users who approved, in order."""
        return tuple(dict.fromkeys(d.actor for d in self.decisions if d.decision == "approve"))

    @property
    def approvals_missing(self) -> int:
        """Approvals still needed."""
        return max(0, self.approvals_required - len(self.approvers))

    @property
    def pending(self) -> bool:
        """Whether it can still be applied."""
        return self.status in PENDING

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (``--json`` output)."""
        data: dict[str, Any] = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["required_gates"] = list(self.required_gates)
        data["decisions"] = [
            {"actor": d.actor, "decision": d.decision, "reason": d.reason, "at": d.at.isoformat()}
            for d in self.decisions
        ]
        for key in ("requested_at", "closed_at"):
            data[key] = data[key].isoformat() if data[key] is not None else None
        data["approvers"] = list(self.approvers)
        data["approvals_missing"] = self.approvals_missing
        return data


@dataclass(frozen=True)
class Clearance:
    """Whether a version may be served under an alias, and why (for logs and error bodies)."""

    allowed: bool
    reason: str


@dataclass(frozen=True)
class Outcome:
    """A request after an action, and what still blocks it (empty once it is applied or closed)."""

    request: PromotionRequest
    blockers: tuple[str, ...] = ()

    @property
    def applied(self) -> bool:
        """Whether the alias now points at the version through this request."""
        return self.request.status == "applied"


def _now() -> datetime:
    return datetime.now(UTC)


def _load(conn: Connection, request_id: int, *, lock: bool = False) -> PromotionRequest:
    query = sa.select(promotion_requests).where(promotion_requests.c.id == request_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFound(f"No promotion request {request_id}.", hint="List requests with `modelport requests list`.")
    decisions = conn.execute(
        sa.select(promotion_decisions)
        .where(promotion_decisions.c.request_id == request_id)
        .order_by(promotion_decisions.c.id)
    )
    return PromotionRequest(
        id=int(row.id),
        model=row.model,
        version=int(row.version),
        alias=row.alias,
        status=cast(RequestStatus, row.status),
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        reason=row.reason,
        approvals_required=int(row.approvals_required),
        approver_role=row.approver_role,
        required_gates=tuple(row.required_gates or ()),
        decisions=tuple(
            Decision(actor=d.actor, decision=cast(DecisionKind, d.decision), reason=d.reason, at=d.at)
            for d in decisions
        ),
        override_by=row.override_by,
        override_reason=row.override_reason,
        closed_at=row.closed_at,
        closed_by=row.closed_by,
    )


def _audit(
    conn: Connection, actor: str, action: str, request: PromotionRequest, reason: str | None, **details: Any
) -> None:
    audit_sql.record(
        conn,
        at=_now(),
        actor=actor,
        action=action,
        target=f"{request.model}:{request.version}",
        model=request.model,
        reason=reason,
        details={"request_id": request.id, "alias": request.alias, **details},
    )


def move_alias(
    conn: Connection,
    model: str,
    alias: str,
    version: int,
    *,
    actor: str,
    reason: str | None,
    details: Mapping[str, Any],
) -> int | None:
    """Point ``model@alias`` at ``version`` in the caller's transaction, as ``actor``; return the old target.

    Writes the alias event and an ``alias.set`` audit entry and bumps the revision when it moved.
    """
    version_sql.require_model(conn, model, lock=True)
    row = version_sql.require_version(conn, model, version)
    version_sql.check_not_deleted(row, doing=f"point alias {alias!r} at it")
    now = _now()
    old = alias_sql.point_alias(conn, model, alias, version, actor=actor, now=now, reason=reason)
    if old != version:
        audit_sql.record(
            conn,
            at=now,
            actor=actor,
            action="alias.set",
            target=f"{model}@{alias}",
            model=model,
            reason=reason,
            details={"old_version": old, "new_version": version, **details},
        )
        audit_sql.bump_revision(conn)
    return old


def _blockers(conn: Connection, request: PromotionRequest) -> list[str]:
    blockers = []
    if request.approvals_missing:
        blockers.append(
            f"{request.approvals_missing} more approval(s) needed from a user with role {request.approver_role} "
            f"other than {request.requested_by!r}"
        )
    if request.override_by is None:
        blockers += validation_sql.gate_blockers(
            conn, request.model, request.version, request.alias, request.required_gates
        )
    return blockers


def _advance(conn: Connection, request: PromotionRequest, actor: str) -> Outcome:
    """Apply ``request`` if nothing blocks it; else mark it ``approved`` once only gates block."""
    if not request.pending:
        return Outcome(request)
    blockers = _blockers(conn, request)
    if blockers:
        if not request.approvals_missing and request.status == "open":
            _set_status(conn, request.id, "approved")
            request = _load(conn, request.id)
        return Outcome(request, tuple(blockers))
    report = validation_sql.latest(conn, request.model, request.version)
    old = move_alias(
        conn,
        request.model,
        request.alias,
        request.version,
        actor=actor,
        reason=request.reason,
        details={"request_id": request.id},
    )
    _set_status(conn, request.id, "applied", closed_by=actor)
    applied = _load(conn, request.id)
    _audit(
        conn,
        actor,
        "promotion.apply",
        applied,
        request.reason,
        old_version=old,
        approvers=list(applied.approvers),
        override_by=applied.override_by,
        validation=report.summary() if report is not None else None,
    )
    _end_release_of(conn, applied, actor)
    return Outcome(applied)


def _end_release_of(conn: Connection, request: PromotionRequest, actor: str) -> None:
    release = release_sql.active_release(conn, request.model, lock=True)
    if release is None or release.alias != request.alias:
        return
    state: release_sql.ReleaseState = "promoted" if release.canary_version == request.version else "stopped"
    release_sql.end_release(
        conn,
        release,
        state,
        actor=actor,
        reason=f"promotion request {request.id} applied",
        details={"request_id": request.id, "new_version": request.version},
    )


def _set_status(conn: Connection, request_id: int, status: RequestStatus, *, closed_by: str | None = None) -> None:
    values: dict[str, Any] = {"status": status}
    if closed_by is not None:
        values |= {"closed_at": _now(), "closed_by": closed_by}
    conn.execute(sa.update(promotion_requests).where(promotion_requests.c.id == request_id).values(**values))


def _check_reason(reason: str | None, *, needed: bool, doing: str) -> str | None:
    if reason is not None and not isinstance(reason, str):
        raise ValidationError(f"Invalid reason {reason!r}.", hint="Give a sentence.")
    if needed and not (reason or "").strip():
        raise ValidationError(f"A reason is required to {doing}.", hint="Pass --reason 'why this is safe'.")
    return reason


class PromotionStore(SqlStore):
    """Promotion requests in the registry database (``registry.promotions``).

    Args:
        engine: Engine of the registry database (already at the newest schema).
        url: The database URL as configured (only for error messages).
    """

    def move(self, model: str, alias: str, version: int, *, by: user_sql.Principal, reason: str | None = None) -> None:
        """Point an *unprotected* alias at ``version`` directly (``data_scientist`` role), audited.

        Raises:
            PermissionDenied: ``by`` lacks the role, or the alias is protected (open a request instead).
            NotFound: The model or version does not exist.
        """
        validate_name(alias, what="alias")

        def work(conn: Connection) -> None:
            actor = user_sql.require(conn, by, "data_scientist", to="promote models")
            if policy_sql.effective(conn, model).protects(alias):
                raise PermissionDenied(
                    f"Alias {model}@{alias} is protected; it moves only through a promotion request.",
                    hint=f"Request it: `modelport promote {model} {version} --to {alias} --reason ...`.",
                )
            move_alias(conn, model, alias, version, actor=actor.name, reason=reason, details={"via": "promote"})

        self._tx(work)

    def open(
        self, model: str, version: int, alias: str, *, by: user_sql.Principal, reason: str | None = None
    ) -> Outcome:
        """Open a request to point ``model@alias`` at ``version`` under the model's policy now, and try to apply it.

        With zero approvals required and the gates satisfied, the request is applied at once.

        Raises:
            PermissionDenied: ``by`` lacks the ``data_scientist`` role.
            NotFound: The model or version does not exist.
            Conflict: The version is deleted, or a pending request for the same move exists.
        """
        validate_name(alias, what="alias")

        def work(conn: Connection) -> Outcome:
            actor = user_sql.require(conn, by, "data_scientist", to="request promotions")
            version_sql.require_model(conn, model, lock=True)
            version_sql.check_not_deleted(version_sql.require_version(conn, model, version), doing="promote it")
            existing = self._find(conn, model, version, alias)
            if existing is not None:
                raise Conflict(
                    f"Promotion request {existing} for {model}:{version} to {alias!r} is pending already.",
                    hint=f"Approve it (`modelport approve {existing}`) or cancel it.",
                )
            policy = policy_sql.effective(conn, model)
            result = conn.execute(
                sa.insert(promotion_requests).values(
                    model=model,
                    version=version,
                    alias=alias,
                    status="open",
                    requested_by=actor.name,
                    requested_at=_now(),
                    reason=reason,
                    approvals_required=policy.approvals,
                    approver_role=policy.approver_role,
                    required_gates=list(policy.required_gates),
                )
            )
            key = result.inserted_primary_key
            request = _load(conn, int(key[0]) if key else 0)
            report = validation_sql.latest(conn, model, version)
            _audit(
                conn,
                actor.name,
                "promotion.request",
                request,
                reason,
                approvals_required=policy.approvals,
                required_gates=list(policy.required_gates),
                validation=report.summary() if report is not None else None,
            )
            return _advance(conn, request, actor.name)

        return self._tx(work)

    @staticmethod
    def _find(conn: Connection, model: str, version: int, alias: str) -> int | None:
        query = sa.select(promotion_requests.c.id).where(
            promotion_requests.c.model == model,
            promotion_requests.c.version == version,
            promotion_requests.c.alias == alias,
            promotion_requests.c.status.in_(PENDING),
        )
        found = conn.execute(query.order_by(promotion_requests.c.id.desc())).scalar()
        return int(found) if found is not None else None

    def find_pending(self, model: str, version: int, alias: str) -> PromotionRequest | None:
        """The pending request to point ``model@alias`` at ``version``, or ``None``."""

        def work(conn: Connection) -> PromotionRequest | None:
            found = self._find(conn, model, version, alias)
            return _load(conn, found) if found is not None else None

        return self._tx(work, write=False)

    def decide(
        self, request_id: int, decision: DecisionKind, *, by: user_sql.Principal, reason: str | None = None
    ) -> Outcome:
        """Record ``decision`` on a pending request under the four-eyes rules, then try to apply it.

        - ``approve``/``reject``: the request's approver role, never the requester, once each;
        - ``cancel``: the requester or an admin;
        - ``override``: an admin, with a reason; lets the request through failed gates (approvals still count).

        Raises:
            PermissionDenied: ``by`` may not make this decision.
            Conflict: The request is closed, or ``by`` approved it already.
            ValidationError: An override without a reason.
        """
        _check_reason(reason, needed=decision == "override", doing="override failed gates")

        def work(conn: Connection) -> Outcome:
            request = _load(conn, request_id, lock=True)
            actor = user_sql.current(conn, by)
            if not request.pending:
                raise Conflict(
                    f"Promotion request {request_id} is {request.status}; it takes no more decisions.",
                    hint=f"Open a new one: `modelport promote {request.model} {request.version} --to {request.alias}`.",
                )
            self._check_decider(request, actor, decision)
            conn.execute(
                sa.insert(promotion_decisions).values(
                    request_id=request_id, actor=actor.name, decision=decision, reason=reason, at=_now()
                )
            )
            if decision in ("reject", "cancel"):
                _set_status(conn, request_id, "rejected" if decision == "reject" else "cancelled", closed_by=actor.name)
            elif decision == "override":
                conn.execute(
                    sa.update(promotion_requests)
                    .where(promotion_requests.c.id == request_id)
                    .values(override_by=actor.name, override_reason=reason)
                )
            updated = _load(conn, request_id)
            extra: dict[str, Any] = {}
            if decision == "override":
                extra["failed_gates"] = validation_sql.gate_blockers(
                    conn, request.model, request.version, request.alias, request.required_gates
                )
            _audit(
                conn,
                actor.name,
                f"promotion.{decision}",
                updated,
                reason,
                approvals=len(updated.approvers),
                approvals_required=updated.approvals_required,
                **extra,
            )
            return _advance(conn, updated, actor.name)

        return self._tx(work)

    @staticmethod
    def _check_decider(request: PromotionRequest, actor: user_sql.Principal, decision: DecisionKind) -> None:
        if decision == "cancel":
            if actor.name != request.requested_by:
                actor.require("admin", to=f"cancel {request.requested_by!r}'s request {request.id}")
            return
        if decision == "override":
            actor.require("admin", to="override failed gates")
            return
        actor.require(request.approver_role, to=f"{decision} promotion requests")
        if actor.name == request.requested_by:
            raise PermissionDenied(
                f"User {actor.name!r} requested promotion {request.id} and may not {decision} it (four eyes).",
                hint="Ask another user with the approver role to review it.",
            )
        if decision == "approve" and actor.name in request.approvers:
            raise Conflict(
                f"User {actor.name!r} approved request {request.id} already.",
                hint="Approvals must come from distinct users.",
            )

    def advance(self, request_id: int, *, by: user_sql.Principal) -> Outcome:
        """Apply a pending request if nothing blocks it any more (e.g. after a new validation), as ``by``.

        Raises:
            PermissionDenied: ``by`` lacks the ``data_scientist`` role.
        """

        def work(conn: Connection) -> Outcome:
            actor = user_sql.require(conn, by, "data_scientist", to="apply promotion requests")
            return _advance(conn, _load(conn, request_id, lock=True), actor.name)

        return self._tx(work)

    def get(self, request_id: int) -> PromotionRequest:
        """Request ``request_id`` with its decisions.

        Raises:
            NotFound: No such request.
        """
        return self._tx(lambda conn: _load(conn, request_id), write=False)

    def blockers(self, request_id: int) -> list[str]:
        """What keeps a pending request from being applied now (empty when nothing does or it is closed)."""

        def work(conn: Connection) -> list[str]:
            request = _load(conn, request_id)
            return _blockers(conn, request) if request.pending else []

        return self._tx(work, write=False)

    def list(self, model: str | None = None, *, status: str | None = None) -> list[PromotionRequest]:
        """Requests (of ``model``, with ``status``), oldest first."""
        query = sa.select(promotion_requests.c.id).order_by(promotion_requests.c.id)
        if model is not None:
            query = query.where(promotion_requests.c.model == model)
        if status is not None:
            if status not in REQUEST_STATUSES:
                raise ValidationError(
                    f"Unknown request status {status!r}.", hint=f"Use: {', '.join(REQUEST_STATUSES)}."
                )
            query = query.where(promotion_requests.c.status == status)
        return self._tx(lambda conn: [_load(conn, int(i)) for i in conn.execute(query).scalars()], write=False)

    def clearance(self, model: str, alias: str, version: int) -> Clearance:
        """Whether ``model:version`` may be served as ``model@alias`` under the model's policy.

        An unprotected alias clears any version. A protected one clears a version that an applied
        promotion request put there (approvals and gates, or an admin override), and the version the
        alias pointed at, untouched, since before the policy protected it.
        """

        def work(conn: Connection) -> Clearance:
            if not policy_sql.effective(conn, model).protects(alias):
                return Clearance(True, f"{model}@{alias} is not protected")
            query = sa.select(promotion_requests.c.id).where(
                promotion_requests.c.model == model,
                promotion_requests.c.version == version,
                promotion_requests.c.alias == alias,
                promotion_requests.c.status == "applied",
            )
            applied = conn.execute(query.limit(1)).scalar()
            if applied is not None:
                return Clearance(True, f"promotion request {applied} put {model}:{version} on {alias!r}")
            since = policy_sql.protected_since(conn, model, alias)
            row = conn.execute(
                sa.select(aliases.c.version, aliases.c.updated_at).where(
                    aliases.c.name == model, aliases.c.alias == alias
                )
            ).first()
            if since is not None and row is not None and row.version == version and row.updated_at < since:
                return Clearance(True, f"{model}:{version} was on {alias!r} before the alias was protected")
            return Clearance(
                False, f"{model}:{version} never went through the promotion workflow for protected alias {alias!r}"
            )

        return self._tx(work, write=False)
