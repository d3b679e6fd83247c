"""Stored validation reports: which gates a model version passed, against which champion, by whom.

A :class:`ValidationReport` holds one :class:`GateResult` per gate. A gate is ``passed``,
``failed``, ``skipped`` (it could not run: no holdout, untrusted checks) or ``not_applicable``
(nothing to check: not an export, no checks shipped). A report *passes* when no gate failed; a
policy that *requires* a gate needs it ``passed`` or ``not_applicable``. Reports are stored in
``validation_reports`` as JSON (the :meth:`ValidationReport.to_dict` form, which ``--json``
prints too), and each one writes a ``validate`` audit entry with its gate summary. The gates
themselves run in :mod:`modelport.governance`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar, cast, get_args

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from modelport.core.errors import NotFound, ValidationError
from modelport.registry import aliases as alias_sql
from modelport.registry import audit as audit_sql
from modelport.registry import versions as version_sql
from modelport.registry.store import SqlStore
from modelport.registry.tables import NAME_LENGTH, UTCDateTime, metadata

T = TypeVar("T")

GateStatus = Literal["passed", "failed", "skipped", "not_applicable"]
GATE_STATUSES: tuple[GateStatus, ...] = get_args(GateStatus)
REPORT_FORMAT = 1

validation_reports = sa.Table(
    "validation_reports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("against_version", sa.Integer, nullable=True),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("report", sa.JSON(), nullable=False),
    sa.Index("ix_validation_reports_model_version", "model", "version"),
)


@dataclass(frozen=True)
class GateResult:
    """The outcome of one gate.

    Attributes:
        name: The gate (``signature``, ``metrics``, ``latency``, ``parity``, ``checks``).
        status: ``passed``, ``failed``, ``skipped`` or ``not_applicable``.
        message: One sentence for people.
        details: JSON-able numbers and facts (metrics, p99, differences, ...).
    """

    name: str
    status: GateStatus
    message: str
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.status not in GATE_STATUSES:
            raise ValidationError(
                f"Invalid gate status {self.status!r} for gate {self.name!r}.",
                hint=f"Use one of: {', '.join(GATE_STATUSES)}.",
            )

    @property
    def satisfied(self) -> bool:
        """Whether a policy that requires this gate accepts it (``passed`` or ``not_applicable``)."""
        return self.status in ("passed", "not_applicable")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form."""
        return {"name": self.name, "status": self.status, "message": self.message, "details": dict(self.details)}


@dataclass(frozen=True)
class ValidationReport:
    """The gates one model version went through, against the version it would replace.

    Attributes:
        model: The model name.
        version: The version validated.
        against: What it was compared with, as asked (``production``, ``3``), or ``None``.
        against_version: The champion version that meant, or ``None`` when there was none.
        gates: One result per gate, in the order they ran.
        created_at: When (UTC).
        created_by: Who ran it.
        id: The stored report's id (``None`` until stored).
    """

    model: str
    version: int
    against: str | None
    against_version: int | None
    gates: tuple[GateResult, ...]
    created_at: datetime
    created_by: str
    id: int | None = None

    @property
    def passed(self) -> bool:
        """Whether no gate failed."""
        return not any(g.status == "failed" for g in self.gates)

    @property
    def ref(self) -> str:
        """``model:version``."""
        return f"{self.model}:{self.version}"

    def gate(self, name: str) -> GateResult | None:
        """The result of gate ``name``, or ``None`` when it did not run."""
        return next((g for g in self.gates if g.name == name), None)

    def unsatisfied(self, required: Iterable[str]) -> list[str]:
        """Which of the ``required`` gates this report does not satisfy (missing ones included)."""
        missing = []
        for name in required:
            result = self.gate(name)
            if result is None or not result.satisfied:
                missing.append(name)
        return missing

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (what ``modelport validate --json`` prints and the registry stores)."""
        return {
            "format": REPORT_FORMAT,
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "against": self.against,
            "against_version": self.against_version,
            "passed": self.passed,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "gates": [g.to_dict() for g in self.gates],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValidationReport:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            model=str(data["model"]),
            version=int(data["version"]),
            against=data.get("against"),
            against_version=data.get("against_version"),
            gates=tuple(
                GateResult(
                    name=str(g["name"]),
                    status=cast(GateStatus, g["status"]),
                    message=str(g.get("message", "")),
                    details=dict(g.get("details") or {}),
                )
                for g in data.get("gates", ())
            ),
            created_at=datetime.fromisoformat(str(data["created_at"])),
            created_by=str(data["created_by"]),
            id=data.get("id"),
        )

    def summary(self) -> dict[str, Any]:
        """The short form recorded in the audit log: id, verdict, champion and each gate's status and message."""
        return {
            "report_id": self.id,
            "passed": self.passed,
            "against_version": self.against_version,
            "gates": [{"name": g.name, "status": g.status, "message": g.message} for g in self.gates],
        }


def _from_row(row: Any) -> ValidationReport:
    return replace(ValidationReport.from_dict(row.report), id=int(row.id))


def latest(conn: Connection, model: str, version: int) -> ValidationReport | None:
    """The newest report of ``model:version``, or ``None``."""
    query = (
        sa.select(validation_reports)
        .where(validation_reports.c.model == model, validation_reports.c.version == version)
        .order_by(validation_reports.c.id.desc())
        .limit(1)
    )
    row = conn.execute(query).first()
    return _from_row(row) if row is not None else None


class ValidationStore(SqlStore):
    """Validation reports in the registry database (``registry.validations``).

    Args:
        engine: Engine of the registry database (already at the newest schema).
        url: The database URL as configured (only for error messages).
    """

    def save(self, report: ValidationReport, *, reason: str | None = None) -> ValidationReport:
        """Store ``report`` with its ``validate`` audit entry (actor: ``report.created_by``); return it with its id.

        Raises:
            NotFound: The version does not exist.
        """

        def work(conn: Connection) -> ValidationReport:
            version_sql.require_version(conn, report.model, report.version)
            result = conn.execute(
                sa.insert(validation_reports).values(
                    model=report.model,
                    version=report.version,
                    against_version=report.against_version,
                    passed=report.passed,
                    created_at=report.created_at,
                    created_by=report.created_by,
                    report=report.to_dict(),
                )
            )
            key = result.inserted_primary_key
            stored = replace(report, id=int(key[0]) if key else None)
            conn.execute(
                sa.update(validation_reports)
                .where(validation_reports.c.id == stored.id)
                .values(report=stored.to_dict())
            )
            audit_sql.record(
                conn,
                at=datetime.now(UTC),
                actor=report.created_by,
                action="validate",
                target=report.ref,
                model=report.model,
                reason=reason,
                details=stored.summary(),
            )
            return stored

        return self._tx(work)

    def get(self, report_id: int) -> ValidationReport:
        """Report ``report_id``.

        Raises:
            NotFound: No such report.
        """
        query = sa.select(validation_reports).where(validation_reports.c.id == report_id)
        row = self._tx(lambda conn: conn.execute(query).first(), write=False)
        if row is None:
            raise NotFound(f"No validation report {report_id}.", hint="List reports with `modelport audit NAME`.")
        return _from_row(row)

    def latest(self, model: str, version: int) -> ValidationReport | None:
        """The newest report of ``model:version``, or ``None``."""
        return self._tx(lambda conn: latest(conn, model, version), write=False)

    def list(self, model: str, version: int | None = None) -> list[ValidationReport]:
        """Reports of ``model`` (optionally one version), oldest first."""
        query = sa.select(validation_reports).where(validation_reports.c.model == model)
        if version is not None:
            query = query.where(validation_reports.c.version == version)
        rows = self._tx(lambda conn: list(conn.execute(query.order_by(validation_reports.c.id))), write=False)
        return [_from_row(row) for row in rows]


def gate_blockers(conn: Connection, model: str, version: int, alias: str, required: Iterable[str]) -> list[str]:
    """Why ``model:version`` may not (yet) stand behind ``alias`` under gates ``required``; empty when it may.

    The newest report of the version counts. It is stale, and blocks, when it was run against
    ``alias`` itself and the alias has moved since.
    """
    needed = tuple(required)
    if not needed:
        return []
    report = latest(conn, model, version)
    if report is None:
        return [f"{model}:{version} has no validation report (run `modelport validate {model}:{version}`)"]
    blockers = []
    for name in report.unsatisfied(needed):
        result = report.gate(name)
        status = result.status if result is not None else "not run"
        message = f": {result.message}" if result is not None and result.message else ""
        blockers.append(f"gate {name!r} {status} in report {report.id}{message}")
    current = alias_sql.alias_target(conn, model, alias)
    if report.against == alias and current is not None and current != version and current != report.against_version:
        blockers.append(
            f"report {report.id} compared with {model}:{report.against_version}, but {model}@{alias} points at "
            f"{current} now (validate again)"
        )
    return blockers
