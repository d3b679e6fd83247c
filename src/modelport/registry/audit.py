"""The audit log and the registry revision counter.

Every change to the registry writes one ``audit_log`` row (actor, time, action, target, reason,
JSON details) in the same transaction as the change itself, and changes that alter what a
reference resolves to, or who may act (users, roles, API keys), also bump
``registry_state.revision``, which servers poll to hot-swap and to drop cached key checks.
Other layers record their own actions (a batch run, an approval) through the same table.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from modelport.core.errors import ModelportError, ValidationError
from modelport.core.refs import ModelRef
from modelport.registry.records import AuditRecord
from modelport.registry.tables import STATE_ROW_ID, audit_log, registry_state

ACTION_PATTERN = re.compile(r"^[a-z][a-z0-9._-]{0,63}$")
MAX_TARGET_LENGTH = 512
MAX_REASON_LENGTH = 4096


def check_entry(action: str, target: str, reason: str | None, details: dict[str, Any] | None) -> dict[str, Any]:
    """Validate an audit entry before it is written; return its details as plain JSON.

    Raises:
        ValidationError: The action, target, reason or details do not fit.
    """
    if not isinstance(action, str) or not ACTION_PATTERN.fullmatch(action):
        raise ValidationError(
            f"Invalid audit action {action!r}.",
            hint="Use 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter (e.g. 'batch.run').",
        )
    if not isinstance(target, str) or not target or len(target) > MAX_TARGET_LENGTH:
        raise ValidationError(
            f"Invalid audit target {str(target)[:80]!r}.",
            hint=f"Give a non-empty reference of at most {MAX_TARGET_LENGTH} characters, e.g. 'churn:3'.",
        )
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON_LENGTH):
        raise ValidationError(
            f"Invalid audit reason {str(reason)[:80]!r}.",
            hint=f"Give a sentence of at most {MAX_REASON_LENGTH} characters.",
        )
    try:
        return dict(json.loads(json.dumps(details or {}, allow_nan=False)))
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"Audit details for {action!r} are not JSON: {exc}.",
            hint="Pass a dict of strings, numbers, booleans, lists and dicts.",
        ) from exc


def model_of(target: str) -> str | None:
    """The model a target like ``churn``, ``churn:3`` or ``churn@production`` belongs to, if any."""
    try:
        ref = ModelRef.parse(target)
    except ModelportError:
        return None
    return ref.name


def record(
    conn: Connection,
    *,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    reason: str | None,
    details: dict[str, Any] | None,
    model: str | None,
) -> None:
    """Write one audit entry about ``model`` (if any); the caller's transaction commits it with its change."""
    clean = check_entry(action, target, reason, details)
    conn.execute(
        sa.insert(audit_log).values(
            at=at,
            actor=actor,
            action=action,
            target=target,
            model=model,
            reason=reason,
            details=clean,
        )
    )


def read(conn: Connection, *, model: str | None, since: datetime | None) -> list[AuditRecord]:
    """Audit entries, oldest first, optionally only those about ``model`` and at or after ``since``."""
    query = sa.select(audit_log).order_by(audit_log.c.id)
    if model is not None:
        query = query.where(audit_log.c.model == model)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    return [
        AuditRecord(
            id=int(row.id),
            at=row.at,
            actor=row.actor,
            action=row.action,
            target=row.target,
            model=row.model,
            reason=row.reason,
            details=dict(row.details or {}),
        )
        for row in conn.execute(query)
    ]


def bump_revision(conn: Connection) -> int:
    """Increase the registry revision by one and return the new value."""
    conn.execute(
        sa.update(registry_state)
        .where(registry_state.c.id == STATE_ROW_ID)
        .values(revision=registry_state.c.revision + 1)
    )
    return read_revision(conn)


def read_revision(conn: Connection) -> int:
    """The current registry revision."""
    value = conn.execute(sa.select(registry_state.c.revision).where(registry_state.c.id == STATE_ROW_ID)).scalar()
    return int(value or 0)
