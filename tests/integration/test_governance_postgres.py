"""Governance on the local PostgreSQL: the whole flow, hashed keys, and concurrent approvals applied once.

Each test gets a fresh database from the ``pg_url`` fixture, which fails (never skips) under
``CI=true`` when PostgreSQL is unreachable.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from governance.support import iris_frame, make_people, save_iris
from modelport.core.errors import ModelportError
from modelport.governance import approve, promote, release_status, rollback_release, start_release, validate
from modelport.registry.policies import Policy
from modelport.registry.registry import Registry
from modelport.server.releases import ReleaseStats, Router

pytestmark = pytest.mark.integration


@pytest.fixture
def registry(pg_url: str, tmp_path: Path) -> Iterator[Registry]:
    reg = Registry.from_urls(pg_url, str(tmp_path / "artifacts"), actor="tester", home=tmp_path / "home")
    yield reg
    reg.close()


def test_the_whole_flow_on_postgres(registry: Registry, tmp_path: Path) -> None:
    people = make_people(registry)
    with registry.engine.connect() as conn:
        stored = {row[0] for row in conn.execute(sa.text("SELECT secret_sha256 FROM api_keys"))}
    assert len(stored) == len(people.tokens)
    assert not any(token.split("_", 2)[2] in digest for token in people.tokens.values() for digest in stored)

    registry.register(save_iris(tmp_path / "v1"), name="iris")
    registry.register(save_iris(tmp_path / "v2", c=2.0), name="iris")
    assert promote(registry, people.ds, "iris", 1, "production").moved
    registry.policies.set(
        Policy(protected_aliases=("production",), required_gates=("signature", "metrics"), latency_budget_ms=60_000),
        by=people.admin,
    )

    report = validate(registry, "iris:2", holdout=iris_frame(), principal=people.ds)
    assert report.passed
    assert registry.validations.latest("iris", 2) == report
    start_release(registry, people.ds, "iris", canary=2, weight=20)
    request = promote(registry, people.ds, "iris", 2, "production", reason="canary is fine").request
    assert request is not None
    with pytest.raises(ModelportError, match="needs the approver role"):
        approve(registry, people.ds, request.id)
    assert approve(registry, people.approver, request.id, reason="ok").moved
    assert registry.aliases("iris")["production"] == 2
    assert registry.promotions.clearance("iris", "production", 2).allowed
    assert registry.releases.history("iris")[-1].state == "promoted"

    validate(registry, "iris:1", holdout=iris_frame(), principal=people.ds, tolerance=1.0, reason="roll-back drill")
    release = start_release(registry, people.ds, "iris", canary=1, weight=50)
    stats = ReleaseStats(release)
    router = Router(release)
    for _ in range(100):
        version, route = router.choose()
        stats.record(version, route, 3.0, ok=True)
    assert release.id is not None
    registry.releases.report_traffic(release.id, "host-1", stats.snapshot())
    assert sum(row.requests for row in release_status(registry, "iris").traffic) == 100
    assert rollback_release(registry, people.ds, "iris", reason="test").state == "rolled_back"
    actions = [a.action for a in registry.audit("iris")]
    for action in (
        "validate",
        "promotion.request",
        "promotion.approve",
        "promotion.apply",
        "release.start",
        "release.promote",
        "release.rollback",
    ):
        assert action in actions


def test_concurrent_approvals_apply_the_promotion_once(registry: Registry, tmp_path: Path) -> None:
    people = make_people(registry)
    registry.register(save_iris(tmp_path / "v1"), name="iris")
    registry.register(save_iris(tmp_path / "v2", c=2.0), name="iris")
    registry.policies.set(Policy(protected_aliases=("production",), approvals=2), by=people.admin)
    request = promote(registry, people.ds, "iris", 2, "production").request
    assert request is not None
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def decide(who: str) -> None:
        principal = {"alex": people.approver, "ann": people.approver2, "root": people.admin}[who]
        barrier.wait(timeout=30)
        try:
            approve(registry, principal, request.id)
        except ModelportError as exc:  # the third approval may find the request applied already
            errors.append(exc)

    threads = [threading.Thread(target=decide, args=(who,)) for who in ("alex", "ann", "root")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all("is applied" in str(error) for error in errors)
    assert len(errors) <= 1
    assert registry.aliases("iris")["production"] == 2
    assert [a.action for a in registry.audit("iris")].count("promotion.apply") == 1
    assert registry.promotions.get(request.id).status == "applied"
