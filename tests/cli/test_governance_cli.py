"""Governance through the real CLI: validate, users and roles, policy, four-eyes promotion, releases, audit.

Tiny logistic regressions on scikit-learn's bundled breast-cancer data are saved into the
temporary registry of the ``cli`` fixture; every step then runs as a person would type it, each
actor identified by its API key. (``test_ci_pipeline.py`` runs ``examples/ci/pipeline.sh`` for real.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from .conftest import CliRunner
from .governance_support import acting_as, issue_key, ok, refused

MODEL = "cancer"


def _data() -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    from sklearn.datasets import load_breast_cancer

    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    features.columns = [c.replace(" ", "_") for c in features.columns]
    holdout = features.iloc[::4].assign(target=target.iloc[::4])
    return features, target, holdout


def _save(*, c: float = 1.0, shuffle_labels: bool = False) -> int:
    """Train a scaled logistic regression (on shuffled labels: a bad model) and register it as the next version."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import modelport
    from modelport.api import open_registry

    features, target, _ = _data()
    labels = target.sample(frac=1.0, random_state=0).to_numpy() if shuffle_labels else target
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000)).fit(features, labels)
    with open_registry() as registry:  # MODELPORT_HOME of the cli fixture
        mv = modelport.save_model(
            model, MODEL, sample_input=features.head(50), reference_data=features, registry=registry
        )
    return mv.version


@pytest.fixture
def holdout_csv(tmp_path: Path) -> Path:
    path = tmp_path / "holdout.csv"
    _data()[2].to_csv(path, index=False)
    return path


@pytest.fixture
def team(cli: CliRunner) -> dict[str, str]:
    """v1 in production (set while the registry was open), then an admin, a data scientist, an approver and a viewer."""
    assert _save(c=1.0) == 1
    ok(cli("promote", MODEL, "1", "--to", "production", "--reason", "first release"))
    keys = {"root": issue_key(cli, "users", "bootstrap", "root", "--label", "break-glass")}
    admin = ("--api-key", keys["root"])
    for name, role in (("dana", "data_scientist"), ("avery", "approver"), ("vic", "viewer")):
        ok(cli(*admin, "users", "create", name, role, "--reason", f"{name} joins"))
        keys[name] = issue_key(cli, *admin, "users", "key", name, "--reason", "laptop")
    return keys


def _report_traffic(release_id: int, primary: int, canary: int) -> None:
    """What a running server reports back: 90 primary and 10 canary requests (as `modelport serve` would)."""
    from modelport.api import open_registry
    from modelport.registry.releases import TrafficSummary, latency_bucket

    def summary(version: int, route: Any, requests: int, errors: int, ms: float) -> TrafficSummary:
        counts = [0] * (latency_bucket(ms) + 1)
        counts[-1] = requests
        return TrafficSummary(
            version, route, requests, errors, tuple(counts), compared=requests, agreed=requests - errors
        )

    with open_registry() as registry:
        registry.releases.report_traffic(
            release_id, "server-1", [summary(primary, "primary", 90, 0, 2.0), summary(canary, "canary", 10, 1, 3.0)]
        )


def test_the_whole_flow_is_governed_and_audited(cli: CliRunner, team: dict[str, str], holdout_csv: Path) -> None:
    root, dana, avery = acting_as(cli, team["root"]), acting_as(cli, team["dana"]), acting_as(cli, team["avery"])
    assert _save(c=0.5) == 2
    who = ok(dana("users", "whoami", "--json")).json()
    assert (who["name"], who["role"]) == ("dana", "data_scientist")

    # An admin protects production: every gate, one approval from an approver.
    ok(root("policy", "set", "--protect", "production", "--gates", "all", "--approvals", "1", "--reason", "SOX",
              "--latency-budget-ms", "5000"))  # fmt: skip
    shown = ok(cli("policy", "show", MODEL, "--json")).json()
    assert shown["scope"] == "*"
    assert shown["policy"]["protected_aliases"] == ["production"]
    assert shown["policy"]["approvals"] == 1

    # Validate v2 against production (v1) on the holdout: stored, passed.
    validated = dana(
        "validate",
        f"{MODEL}:2",
        "--holdout",
        str(holdout_csv),
        "--against",
        "production",
        "--reason",
        "nightly",
        "--json",
    )
    report = ok(validated).json()
    assert report["passed"] is True
    assert report["against_version"] == 1
    assert {g["name"]: g["status"] for g in report["gates"]}["metrics"] == "passed"

    # Canary at 10 % with sticky users; servers report traffic; status side by side; roll back.
    started = ok(
        dana("release", "start", MODEL, "--canary", "2", "--weight", "10", "--sticky-header", "X-User-Id",
             "--reason", "try v2 on 10%", "--json")
    ).json()  # fmt: skip
    assert (started["primary_version"], started["canary_version"], started["canary_weight"]) == (1, 2, 10.0)
    assert started["sticky_header"] == "X-User-Id"
    _report_traffic(started["id"], primary=1, canary=2)
    status = ok(cli("release", "status", MODEL, "--json")).json()
    assert status["release"]["state"] == "active"
    traffic = {row["route"]: row for row in status["traffic"]}
    assert traffic["canary"]["share"] == pytest.approx(0.1)
    assert traffic["canary"]["error_rate"] == pytest.approx(0.1)
    assert traffic["primary"]["requests"] == 90
    human = ok(cli("release", "status", MODEL)).stdout
    assert "primary v1" in human
    assert "canary v2" in human
    assert "10.0%" in human
    rolled = ok(dana("release", "rollback", MODEL, "--reason", "canary error rate 10%", "--json")).json()
    assert rolled["state"] == "rolled_back"

    # Try again, then promote the canary: a request, because production is protected.
    ok(dana("release", "start", MODEL, "--canary", "2", "--weight", "10", "--reason", "fixed the feature job"))
    promoted = ok(dana("release", "promote", MODEL, "--reason", "canary healthy", "--json")).json()
    assert promoted["moved"] is False
    request_id = promoted["request"]["id"]
    assert any("approval" in b for b in promoted["blockers"])
    pending = ok(cli("requests", "list", "--json")).json()
    assert [r["id"] for r in pending] == [request_id]
    assert f"{request_id}" in ok(cli("requests")).stdout

    # The requester may not approve (nor may a viewer); the approver may.
    refused(dana("approve", str(request_id)), "'dana'", "approver")
    refused(acting_as(cli, team["vic"])("approve", str(request_id)), "vic", "approver")
    assert ok(cli("models", "show", f"{MODEL}@production", "--json")).json()["version"] == 1
    approved = ok(avery("approve", str(request_id), "--reason", "report reviewed", "--json")).json()
    assert approved["moved"] is True
    assert approved["request"]["approvers"] == ["avery"]
    assert ok(cli("models", "show", f"{MODEL}@production", "--json")).json()["version"] == 2
    assert ok(cli("release", "status", MODEL, "--json")).json()["release"]["state"] == "promoted"
    assert ok(cli("requests", "list", "--json")).json() == []
    assert [r["status"] for r in ok(cli("requests", "list", "--all", "--json")).json()] == ["applied"]

    # The audit trail names every step, its actor and its reason; validations carry their gate reports.
    trail = ok(cli("audit", MODEL, "--json")).json()
    steps = [(e["action"], e["actor"], e["reason"]) for e in trail]
    for step in [
        ("alias.set", "cli-tester", "first release"),
        ("validate", "dana", "nightly"),
        ("release.start", "dana", "try v2 on 10%"),
        ("release.rollback", "dana", "canary error rate 10%"),
        ("promotion.request", "dana", "canary healthy"),
        ("promotion.approve", "avery", "report reviewed"),
        ("promotion.apply", "avery", "canary healthy"),
        ("release.promote", "avery", f"promotion request {request_id} applied"),
    ]:
        assert step in steps, (step, steps)
    validation = next(e for e in trail if e["action"] == "validate")
    metrics = next(g for g in validation["report"]["gates"] if g["name"] == "metrics")
    assert metrics["details"]["champion_version"] == 1
    assert metrics["details"]["challenger"]["accuracy"] >= metrics["details"]["champion"]["accuracy"] - 0.01
    everything = ok(cli("audit", "--json")).json()
    assert ("policy.set", "root", "SOX") in [(e["action"], e["actor"], e["reason"]) for e in everything]
    assert ("user.create", "root", "dana joins") in [(e["action"], e["actor"], e["reason"]) for e in everything]
    assert ok(cli("audit", "--since", "1h", "--json")).json() == everything
    assert ok(cli("audit", "--since", "2999-01-01", "--json")).json() == []
    only_v2 = {e["action"] for e in ok(cli("audit", f"{MODEL}:2", "--json")).json()}
    assert {"register", "validate", "promotion.approve", "alias.set"} <= only_v2
    table = ok(cli("audit", MODEL)).stdout
    assert "promotion.approve" in table
    assert "report reviewed" in table


def test_wrong_roles_failing_gates_and_overrides(cli: CliRunner, team: dict[str, str], holdout_csv: Path) -> None:
    root, dana, avery, vic = (acting_as(cli, team[n]) for n in ("root", "dana", "avery", "vic"))
    assert _save(shuffle_labels=True) == 2

    # Wrong roles are refused with one clear line naming the user, its role and the role needed.
    refused(vic("validate", f"{MODEL}:2"), "'vic'", "viewer", "data_scientist")
    refused(dana("policy", "set", "--protect", "production"), "'dana'", "admin")
    refused(dana("users", "create", "mallory", "admin"), "'dana'", "admin")
    refused(cli("promote", MODEL, "2", "--to", "staging"), "API key")  # users exist: a key is needed
    refused(cli("--api-key", "not-a-key", "users", "whoami"), "not a modelport key")
    refused(root("users", "create", "x", "superuser"), "superuser", code=2)

    # A failing gate: exit 1, the report printed and stored.
    failed = dana("validate", f"{MODEL}:2", "--holdout", str(holdout_csv), "--json")
    assert failed.exit_code == 1, failed
    assert failed.json()["passed"] is False
    assert {g["name"]: g["status"] for g in failed.json()["gates"]}["metrics"] == "failed"
    assert "metrics" in failed.stderr
    stored = [e for e in ok(cli("audit", f"{MODEL}:2", "--json")).json() if e["action"] == "validate"]
    assert stored[0]["report"]["passed"] is False
    human = dana("validate", f"{MODEL}:2", "--holdout", str(holdout_csv), "--dry-run")
    assert human.exit_code == 1
    assert "failed" in human.stdout

    # The failed gate blocks production even with the approval, until an admin overrides it, with a reason.
    ok(root("policy", "set", MODEL, "--recommended", "--gates", "metrics", "--reason", "metrics matter"))
    ok(dana("promote", MODEL, "2", "--to", "staging", "--reason", "QA wants it"))  # unprotected: moves
    opened = ok(dana("promote", MODEL, "2", "--to", "production", "--reason", "ship it"))
    assert "Promotion request 1" in opened.stdout
    assert "metrics" in opened.stdout
    blocked = ok(avery("approve", "1", "--reason", "looks fine", "--json")).json()
    assert blocked["moved"] is False
    assert blocked["request"]["status"] == "approved"
    assert any("metrics" in b for b in blocked["blockers"])
    refused(avery("override", "1", "--reason", "trust me"), "admin")
    refused(root("override", "1", "--reason", ""), "reason", code=2)
    overridden = ok(root("override", "1", "--reason", "label drift known, accepted by risk", "--json")).json()
    assert overridden["moved"] is True
    assert ok(cli("models", "show", f"{MODEL}@production", "--json")).json()["version"] == 2
    override = next(e for e in ok(cli("audit", MODEL, "--json")).json() if e["action"] == "promotion.override")
    assert override["actor"] == "root"
    assert override["reason"] == "label drift known, accepted by risk"
    assert any("metrics" in gate for gate in override["details"]["failed_gates"])

    # Four eyes: an approver who requests a promotion may not approve it herself.
    own = ok(avery("promote", MODEL, "1", "--to", "production", "--reason", "back to v1", "--json")).json()
    refused(avery("approve", str(own["request"]["id"])), "four eyes", "'avery'")
    cancelled = ok(avery("cancel", str(own["request"]["id"]), "--reason", "changed my mind", "--json")).json()
    assert cancelled["request"]["status"] == "cancelled"

    # Closed requests take no more decisions; rejecting closes them.
    refused(avery("approve", "1"), "applied", code=4)
    again = ok(dana("promote", MODEL, "1", "--to", "production", "--json")).json()
    assert again["moved"] is False
    refused(dana("reject", str(again["request"]["id"])), "'dana'", "approver")
    rejected = ok(avery("reject", str(again["request"]["id"]), "--reason", "no rollback plan", "--json")).json()
    assert rejected["request"]["status"] == "rejected"

    # An admin approves and overrides in one step (v1 was never validated), never without a reason.
    back = ok(dana("promote", MODEL, "1", "--to", "production", "--reason", "roll back", "--json")).json()
    assert any("no validation report" in b for b in back["blockers"])
    request = str(back["request"]["id"])
    refused(root("approve", request, "--override"), "reason", code=2)
    refused(avery("approve", request, "--override", "--reason", "urgent"), "admin")
    assert ok(cli("requests", "show", request, "--json")).json()["request"]["decisions"] == []  # nothing half-done
    both = ok(root("approve", request, "--override", "--reason", "v1 is the known-good version", "--json")).json()
    assert both["moved"] is True
    assert [d["decision"] for d in both["request"]["decisions"]] == ["approve", "override"]
    assert ok(cli("models", "show", f"{MODEL}@production", "--json")).json()["version"] == 1


def test_users_keys_and_policy_commands(cli: CliRunner, team: dict[str, str]) -> None:
    root = acting_as(cli, team["root"])
    users = {u["name"]: u["role"] for u in ok(cli("users", "list", "--json")).json()}
    assert users == {"root": "admin", "dana": "data_scientist", "avery": "approver", "vic": "viewer"}
    ok(root("users", "role", "vic", "approver", "--reason", "promoted to reviewer"))
    assert ok(acting_as(cli, team["vic"])("users", "whoami", "--json")).json()["role"] == "approver"
    keys = ok(cli("users", "keys", "dana", "--json")).json()
    assert len(keys) == 1
    assert keys[0]["label"] == "laptop"
    assert "secret" not in json.dumps(keys)
    assert team["dana"] not in ok(cli("users", "keys")).stdout
    ok(root("users", "revoke", keys[0]["key_id"], "--reason", "laptop lost"))
    refused(acting_as(cli, team["dana"])("users", "whoami"), "revoked")
    ok(root("users", "disable", "avery", "--reason", "left"))
    refused(acting_as(cli, team["avery"])("users", "whoami"), "disabled")
    refused(root("users", "disable", "root"), "last active admin", code=4)
    refused(cli("users", "bootstrap", "eve"), "admin already", code=4)

    assert ok(cli("policy", "show", "--json")).json()["scope"] == "default"
    ok(root("policy", "set", "--recommended", "--reason", "baseline"))
    ok(root("policy", "set", MODEL, "--approvals", "2", "--gates", "none", "--reason", "stricter"))
    listed = ok(cli("policy", "list", "--json")).json()
    assert listed["*"]["required_gates"] == ["signature", "metrics", "latency", "parity", "checks"]
    assert listed[MODEL] == {**listed[MODEL], "approvals": 2, "required_gates": []}
    assert "2 (approver)" in ok(cli("policy", "list")).stdout
    ok(root("policy", "clear", MODEL, "--reason", "back to baseline"))
    assert ok(cli("policy", "show", MODEL, "--json")).json()["scope"] == "*"
    refused(root("policy", "set", "--gates", "speed"), "speed", code=2)
    refused(cli("audit", "--since", "yesterday"), "yesterday", code=2)
