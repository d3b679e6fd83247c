"""``validate`` end to end: gates on registered versions, champion from an alias, stored and audited reports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from modelport.bundle.flavors.base import PickleLoadWarning
from modelport.core.errors import NotFound, PermissionDenied, Unauthenticated
from modelport.governance import EXPORTED_FROM_TAG, identify, require_report, validate
from modelport.registry.policies import Policy
from modelport.registry.registry import Registry

from .support import People, add_checks, diabetes_frame, iris_frame, save_iris

GENEROUS_MS = 60_000.0
"""A latency budget no CI machine misses (the gate's own logic is tested with a fake clock)."""


def test_a_weaker_challenger_fails_and_the_report_is_stored_and_audited(
    registry: Registry, people: People, bundles: dict[str, Path], tmp_path: Path
) -> None:
    registry.register(bundles["good"], name="iris")
    registry.register(bundles["weak"], name="iris")
    registry.set_alias("iris", "production", 1)
    holdout = tmp_path / "holdout.csv"
    iris_frame().to_csv(holdout, index=False)
    report = validate(
        registry, "iris:2", holdout=holdout, principal=people.ds, latency_budget_ms=GENEROUS_MS, reason="nightly"
    )
    assert not report.passed
    assert report.id is not None
    assert (report.against, report.against_version, report.created_by) == ("production", 1, "dana")
    assert {g.name: g.status for g in report.gates} == {
        "signature": "passed",
        "metrics": "failed",
        "latency": "passed",
        "parity": "not_applicable",
        "checks": "not_applicable",
    }
    assert require_report(registry, "iris", 2) == report
    data = json.loads(json.dumps(report.to_dict()))
    assert data["passed"] is False
    assert data["gates"][1]["details"]["champion_version"] == 1
    entry = registry.audit("iris")[-1]
    assert (entry.action, entry.actor, entry.target, entry.reason) == ("validate", "dana", "iris:2", "nightly")
    assert entry.details["gates"][1]["status"] == "failed"
    assert entry.details["report_id"] == report.id


def test_the_first_version_and_a_better_one_pass(registry: Registry, people: People, bundles: dict[str, Path]) -> None:
    registry.register(bundles["good"], name="iris")
    first = validate(registry, "iris:1", holdout=iris_frame(), principal=people.ds, latency_budget_ms=GENEROUS_MS)
    assert first.passed
    assert first.against_version is None
    assert first.gate("signature").status == "not_applicable"  # type: ignore[union-attr]
    registry.set_alias("iris", "production", 1)
    registry.register(bundles["good2"], name="iris")
    second = validate(registry, "iris:2", holdout=iris_frame(), principal=people.ds, latency_budget_ms=GENEROUS_MS)
    assert second.passed
    assert second.against_version == 1


def test_a_new_required_column_fails_unless_acknowledged(
    registry: Registry, people: People, bundles: dict[str, Path]
) -> None:
    registry.register(bundles["good"], name="iris")
    registry.register(bundles["wide"], name="iris")
    registry.set_alias("iris", "production", 1)
    kwargs = {"holdout": iris_frame(), "principal": people.ds, "latency_budget_ms": GENEROUS_MS}
    refused = validate(registry, "iris:2", **kwargs)  # type: ignore[arg-type]
    signature = refused.gate("signature")
    assert signature is not None
    assert signature.status == "failed"
    assert "new required input column 'petal_area'" in signature.message
    accepted = validate(
        registry, "iris:2", acknowledge_breaking="clients send petal_area since v3 of the app", **kwargs
    )  # type: ignore[arg-type]
    assert accepted.passed
    assert accepted.gate("signature").details["acknowledged"].startswith("clients send")  # type: ignore[union-attr]


def test_regressors_are_validated_by_mae_and_rmse(registry: Registry, people: People, bundles: dict[str, Path]) -> None:
    registry.register(bundles["ridge"], name="diabetes")
    registry.register(bundles["ridge_weak"], name="diabetes")
    registry.set_alias("diabetes", "production", 1)
    report = validate(
        registry, "diabetes:2", holdout=diabetes_frame(), against=1, principal=people.ds, latency_budget_ms=GENEROUS_MS
    )
    metrics = report.gate("metrics")
    assert metrics is not None
    assert metrics.status == "failed"
    assert "mae" in metrics.message
    assert report.against == "1"


def test_the_policy_supplies_tolerance_and_budget(registry: Registry, people: People, bundles: dict[str, Path]) -> None:
    registry.policies.set(Policy(metric_tolerance=0.5, latency_budget_ms=GENEROUS_MS), by=people.admin)
    registry.register(bundles["good"], name="iris")
    registry.register(bundles["weak"], name="iris")
    registry.set_alias("iris", "production", 1)
    report = validate(registry, "iris:2", holdout=iris_frame(), principal=people.ds)
    assert report.passed
    assert report.gate("metrics").details["tolerance"] == 0.5
    assert report.gate("latency").details["budget_ms"] == GENEROUS_MS  # type: ignore[union-attr]


def test_exports_are_checked_against_their_source(
    registry: Registry, people: People, bundles: dict[str, Path], tmp_path: Path
) -> None:
    registry.register(bundles["good"], name="iris")
    registry.register(save_iris(tmp_path / "same", tags={EXPORTED_FROM_TAG: "iris:1"}), name="iris")
    registry.register(save_iris(tmp_path / "other", c=0.001, tags={EXPORTED_FROM_TAG: "iris:1"}), name="iris")
    registry.register(save_iris(tmp_path / "orphan", tags={EXPORTED_FROM_TAG: "iris:99"}), name="iris")
    registry.register(save_iris(tmp_path / "unregistered", tags={EXPORTED_FROM_TAG: "iris"}), name="iris")
    statuses = {}
    for version in (2, 3, 4, 5):
        report = validate(
            registry, f"iris:{version}", against=None, principal=people.ds, latency_budget_ms=GENEROUS_MS, store=False
        )
        assert report.id is None
        statuses[version] = report.gate("parity").status  # type: ignore[union-attr]
    assert statuses == {2: "passed", 3: "failed", 4: "failed", 5: "skipped"}
    assert registry.validations.list("iris") == []  # store=False is a dry run


def test_shipped_checks_run_only_with_trust(
    registry: Registry, people: People, bundles: dict[str, Path], tmp_path: Path
) -> None:
    bundle = tmp_path / "checked"
    shutil.copytree(bundles["good"], bundle)
    add_checks(bundle, "def check_fails(predictor, holdout):\n    assert False, 'custom rule broken'\n")
    registry.register(bundle, name="iris")
    untrusted = validate(registry, "iris:1", principal=people.ds, latency_budget_ms=GENEROUS_MS)
    assert untrusted.gate("checks").status == "skipped"
    assert untrusted.passed
    with pytest.warns(PickleLoadWarning):
        trusted = validate(registry, "iris:1", principal=people.ds, latency_budget_ms=GENEROUS_MS, trusted_code=True)
    checks = trusted.gate("checks")
    assert checks is not None
    assert checks.status == "failed"
    assert "custom rule broken" in checks.message
    assert not trusted.passed


def test_who_may_validate(registry: Registry, people: People, bundles: dict[str, Path]) -> None:
    registry.register(bundles["good"], name="iris")
    with pytest.raises(PermissionDenied, match="validate models"):
        validate(registry, "iris:1", principal=people.viewer)
    with pytest.raises(Unauthenticated):
        validate(registry, "iris:1")  # the registry has users: no anonymous actor
    assert identify(registry, people.tokens["dana"]) == people.ds
    with pytest.raises(NotFound):
        validate(registry, "iris:7", principal=people.ds)
    with pytest.raises(NotFound, match="no validation report"):
        require_report(registry, "iris", 1)


def test_an_open_registry_validates_as_the_local_actor(registry: Registry, bundles: dict[str, Path]) -> None:
    registry.register(bundles["good"], name="iris")
    report = validate(registry, "iris", latency_budget_ms=GENEROUS_MS)
    assert report.created_by == "tester"
    assert report.gate("metrics").status == "skipped"


def test_a_real_onnx_export_passes_parity_with_its_source(
    registry: Registry, people: People, bundles: dict[str, Path], tmp_path: Path
) -> None:
    from modelport.bundle.io import load_bundle
    from modelport.edge.export import export_onnx

    source = registry.register(bundles["good"], name="iris")
    export_onnx(load_bundle(registry.fetch(source)), out_dir=tmp_path / "onnx", timings=False)
    exported = registry.register(tmp_path / "onnx", name="iris")
    assert (exported.flavor, exported.tags[EXPORTED_FROM_TAG]) == ("onnx", "iris:1")
    report = validate(registry, "iris:2", against=None, principal=people.ds, latency_budget_ms=GENEROUS_MS)
    parity = report.gate("parity")
    assert parity is not None
    assert parity.status == "passed", parity.message
    assert parity.details["source"] == "iris:1"
