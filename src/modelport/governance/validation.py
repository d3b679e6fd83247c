"""``validate``: run every gate on a registered version against the one it would replace, and store the report.

The champion is what ``against`` names (default: the ``production`` alias of the same model).
Both versions are fetched from the registry (hash-verified) and loaded; the metrics gate scores
both on the same holdout rows. The tolerance and latency budget default to the model's policy.
The report is stored in the registry (``validation_reports``, plus a ``validate`` audit entry
carrying each gate's verdict), where promotion requests read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from modelport.bundle.flavors.base import ModelInput
from modelport.bundle.io import load_bundle, read_reference_sample
from modelport.core.errors import ModelportError, NotFound, ValidationError
from modelport.core.refs import ModelRef
from modelport.governance.access import identify
from modelport.governance.checks import checks_gate
from modelport.governance.gates import describe, latency_gate, metrics_gate, parity_gate, signature_gate
from modelport.governance.holdout import Holdout, load_holdout
from modelport.registry.records import ModelVersion
from modelport.registry.registry import Registry
from modelport.registry.users import Principal
from modelport.registry.validations import GateResult, ValidationReport
from modelport.runtime.predictor import Predictor

EXPORTED_FROM_TAG = "export.source"
"""Tag naming the version (``name:version``) a version was exported from, as ``modelport.edge`` writes it;
it turns on the parity gate."""


@dataclass(frozen=True)
class _Loaded:
    version: ModelVersion
    predictor: Predictor
    folder: Path


def _load(registry: Registry, mv: ModelVersion, *, trusted_pickle: bool) -> _Loaded:
    folder = registry.fetch(mv)
    return _Loaded(mv, Predictor(load_bundle(folder, trusted_pickle=trusted_pickle)), folder)


def _champion_version(registry: Registry, mv: ModelVersion, against: str | int | None) -> ModelVersion | None:
    if against is None or against == "none":
        return None
    if isinstance(against, int) or (isinstance(against, str) and against.isdigit()):
        champion = registry.get(mv.name, int(against))
    else:
        target = registry.aliases(mv.name).get(str(against))
        if target is None:
            return None  # nothing behind the alias yet: the first release has no champion
        champion = registry.get(mv.name, target)
    return None if champion.version == mv.version else champion


def _parity(registry: Registry, loaded: _Loaded, sample: ModelInput | None, trusted_pickle: bool) -> GateResult:
    source_ref = loaded.version.tags.get(EXPORTED_FROM_TAG)
    if not source_ref:
        return parity_gate(loaded.predictor, None, None, sample)
    try:
        source_version = ModelRef.parse(source_ref)
        if source_version.version is None:
            return GateResult(
                "parity", "skipped", f"exported from {source_ref!r}, which names no registered version to compare with"
            )
        source = _load(registry, registry.resolve(source_version), trusted_pickle=trusted_pickle)
    except ModelportError as exc:
        return parity_gate(loaded.predictor, None, source_ref, sample, source_error=describe(exc))
    if sample is None:
        sample = read_reference_sample(source.folder)
    return parity_gate(loaded.predictor, source.predictor, source_ref, sample)


def validate(
    registry: Registry,
    ref: str | ModelRef,
    *,
    holdout: pd.DataFrame | str | Path | None = None,
    target: str = "target",
    against: str | int | None = "production",
    principal: Principal | None = None,
    tolerance: float | None = None,
    latency_budget_ms: float | None = None,
    acknowledge_breaking: str | None = None,
    trusted_code: bool = False,
    trusted_pickle: bool = False,
    store: bool = True,
    reason: str | None = None,
) -> ValidationReport:
    """Run the gates on ``ref`` and store the report in the registry.

    Args:
        registry: The registry holding the version (and its champion).
        ref: The version to validate (``name:3``, ``name@staging``, ``name``).
        holdout: Labelled rows (DataFrame, CSV or Parquet path) for the metrics gate and user checks.
        target: The label column of the holdout.
        against: The champion: an alias of the same model (default ``production``), a version
            number, or ``None`` for no comparison.
        principal: Who validates (needs ``data_scientist``); default: the local actor of an open registry.
        tolerance: How much worse than the champion the metrics may be (default: the policy's).
        latency_budget_ms: The p99 budget of single-row predictions (default: the policy's).
        acknowledge_breaking: A reason that accepts breaking signature changes, recorded in the report.
        trusted_code: Run ``checks.py`` shipped in the bundle (it executes code: the operator's trust).
        trusted_pickle: Allow loading pickle artifacts of the versions (the operator's trust).
        store: Store the report (and audit it); ``False`` for a dry run.
        reason: Why, for the audit log.

    Returns:
        The report (with its id when stored); ``report.passed`` is false when any gate failed.

    Raises:
        NotFound: The version or the champion does not exist.
        PermissionDenied: The principal lacks the ``data_scientist`` role.
        ValidationError: The holdout has no target column or no rows; a bad tolerance or budget.
    """
    actor = principal if principal is not None else identify(registry, None)
    actor = registry.users.require(actor, "data_scientist", to="validate models")
    mv = registry.resolve(ref)
    policy = registry.policies.get(mv.name)
    tolerance = policy.metric_tolerance if tolerance is None else tolerance
    budget = policy.latency_budget_ms if latency_budget_ms is None else latency_budget_ms
    if tolerance < 0 or budget <= 0:
        raise ValidationError(
            f"Invalid tolerance {tolerance!r} or latency budget {budget!r}.",
            hint="Give a tolerance >= 0 and a budget > 0 milliseconds.",
        )
    rows = load_holdout(holdout, target) if holdout is not None else None
    champion_mv = _champion_version(registry, mv, against)
    challenger = _load(registry, mv, trusted_pickle=trusted_pickle)
    champion = _load(registry, champion_mv, trusted_pickle=trusted_pickle) if champion_mv is not None else None
    gates = _run_gates(
        registry,
        challenger,
        champion,
        rows,
        tolerance,
        budget,
        acknowledge_breaking,
        trusted_code=trusted_code,
        trusted_pickle=trusted_pickle,
    )
    report = ValidationReport(
        model=mv.name,
        version=mv.version,
        against=None if against is None else str(against),
        against_version=champion_mv.version if champion_mv is not None else None,
        gates=gates,
        created_at=datetime.now(UTC),
        created_by=actor.name,
    )
    return registry.validations.save(report, reason=reason) if store else report


def _run_gates(
    registry: Registry,
    challenger: _Loaded,
    champion: _Loaded | None,
    holdout: Holdout | None,
    tolerance: float,
    budget_ms: float,
    acknowledgement: str | None,
    *,
    trusted_code: bool,
    trusted_pickle: bool,
) -> tuple[GateResult, ...]:
    sample = read_reference_sample(challenger.folder)
    signature = signature_gate(
        challenger.version.signature,
        champion.version.signature if champion is not None else None,
        champion.version.ref if champion is not None else None,
        acknowledgement,
    )
    acknowledged = bool(signature.details.get("acknowledged"))
    return (
        signature,
        metrics_gate(
            challenger.predictor,
            champion.predictor if champion else None,
            holdout,
            tolerance,
            breaking_acknowledged=acknowledged,
        ),
        latency_gate(challenger.predictor, sample, budget_ms),
        _parity(registry, challenger, sample, trusted_pickle),
        checks_gate(challenger.predictor, challenger.folder, holdout, trusted_code=trusted_code),
    )


def require_report(registry: Registry, name: str, version: int) -> ValidationReport:
    """The newest stored report of ``name:version``.

    Raises:
        NotFound: The version was never validated.
    """
    report = registry.validations.latest(name, version)
    if report is None:
        raise NotFound(
            f"{name}:{version} has no validation report.", hint=f"Run `modelport validate {name}:{version}`."
        )
    return report
