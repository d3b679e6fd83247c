"""Users, roles and API keys: bootstrap, hashed keys, authentication, role checks, audit."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from modelport.core.errors import Conflict, PermissionDenied, Unauthenticated, ValidationError
from modelport.core.settings import Settings
from modelport.registry import schema
from modelport.registry import users as users_module
from modelport.registry.registry import Registry
from modelport.registry.users import ROLES, Principal


@pytest.fixture
def registry(settings: Settings) -> Registry:
    return Registry(settings)


def _all_values(registry: Registry) -> list[str]:
    """Every value of every column of every table, as text."""
    engine = registry.engine
    values = []
    with engine.connect() as conn:
        for table in sa.inspect(engine).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                values.extend(str(v) for v in row)
    return values


def test_an_open_registry_lets_the_local_actor_act_until_an_admin_is_bootstrapped(registry: Registry) -> None:
    principal = registry.users.open_principal("tester")
    assert principal.has_role("admin")
    assert principal.key_id is None
    issued = registry.users.bootstrap_admin("root", actor="tester", label="first")
    assert issued.user == "root"
    with pytest.raises(Unauthenticated, match="must identify with an API key") as info:
        registry.users.open_principal("tester")
    assert info.value.hint
    with pytest.raises(Conflict, match="admin already"):
        registry.users.bootstrap_admin("mallory", actor="mallory")
    entry = next(a for a in registry.audit() if a.action == "user.bootstrap")
    assert (entry.actor, entry.target, entry.details["role"]) == ("tester (bootstrap)", "user:root", "admin")


def test_keys_are_stored_hashed_and_never_in_clear(registry: Registry) -> None:
    issued = registry.users.bootstrap_admin("root", actor="tester")
    assert issued.token not in repr(issued)
    prefix, key_id, secret = issued.token.split("_", 2)
    assert (prefix, key_id) == ("mpk", issued.key_id)
    assert len(secret) >= 43  # 32 random bytes, base64url
    values = _all_values(registry)
    assert not any(secret in value or issued.token in value for value in values)
    with registry.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT secret_sha256 FROM api_keys")).scalar_one()
    assert stored == hashlib.sha256(secret.encode()).hexdigest()
    assert all("secret" not in vars(info) for info in registry.users.list_keys())


def test_authentication_compares_in_constant_time(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    issued = registry.users.bootstrap_admin("root", actor="tester")
    calls: list[tuple[bytes, bytes]] = []
    real = users_module.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(users_module.hmac, "compare_digest", spy)
    assert registry.authenticate(issued.token).name == "root"
    with pytest.raises(Unauthenticated):
        registry.authenticate(f"mpk_{'0' * 16}_whatever")  # unknown key id: still one comparison
    assert len(calls) == 2


@pytest.mark.parametrize(
    "token",
    ["", "nonsense", "mpk_short_secret", "Bearer mpk_0123456789abcdef_x", "mpk_0123456789abcdef_"],
)
def test_malformed_keys_are_refused_without_echoing_them(registry: Registry, token: str) -> None:
    registry.users.bootstrap_admin("root", actor="tester")
    with pytest.raises(Unauthenticated) as info:
        registry.authenticate(token)
    assert info.value.hint
    if token:
        assert token not in str(info.value)


def test_a_wrong_secret_a_revoked_key_and_a_disabled_user_are_refused(registry: Registry) -> None:
    admin = registry.authenticate(registry.users.bootstrap_admin("root", actor="tester").token)
    registry.users.create_user("dana", "data_scientist", by=admin)
    first = registry.users.create_key("dana", by=admin, label="laptop")
    second = registry.users.create_key("dana", by=admin)
    assert registry.authenticate(first.token) == Principal.of("dana", "data_scientist", key_id=first.key_id)

    with pytest.raises(Unauthenticated, match="not recognised") as info:
        registry.authenticate(first.token[:-2] + "xx")
    assert first.token[-10:] not in str(info.value)

    dana = registry.authenticate(first.token)
    registry.users.revoke_key(first.key_id, by=dana, reason="laptop lost")  # owners revoke their own keys
    with pytest.raises(Unauthenticated, match="revoked"):
        registry.authenticate(first.token)
    with pytest.raises(Unauthenticated, match="revoked"):
        registry.users.require(dana, "viewer", to="read")  # a principal from a revoked key acts no more
    with pytest.raises(Unauthenticated, match="not its own"):
        registry.users.require(Principal.of("root", "admin", key_id=second.key_id), "admin", to="pose as root")
    dana = registry.authenticate(second.token)
    assert registry.authenticate(second.token).name == "dana"

    registry.users.disable_user("dana", by=admin, reason="left")
    with pytest.raises(Unauthenticated):
        registry.authenticate(second.token)
    with pytest.raises(Unauthenticated, match="disabled"):
        registry.users.require(dana, "viewer", to="read")
    assert [k.active for k in registry.users.list_keys("dana")] == [False, False]
    actions = [(a.actor, a.action) for a in registry.audit() if a.target == "user:dana"]
    assert actions == [
        ("root", "user.create"),
        ("root", "apikey.create"),
        ("root", "apikey.create"),
        ("dana", "apikey.revoke"),
        ("root", "user.disable"),
    ]


def test_keys_with_the_wrong_role_are_refused(registry: Registry) -> None:
    admin = registry.authenticate(registry.users.bootstrap_admin("root", actor="tester").token)
    for name, role in (("vic", "viewer"), ("dana", "data_scientist"), ("alex", "approver")):
        registry.users.create_user(name, role, by=admin)
    vic = registry.authenticate(registry.users.create_key("vic", by=admin).token)
    alex = registry.authenticate(registry.users.create_key("alex", by=admin).token)
    assert alex.roles == {"viewer", "data_scientist", "approver"}
    with pytest.raises(PermissionDenied, match=r"'vic' .*may not create users: that needs the admin role") as info:
        registry.users.create_user("eve", "admin", by=vic)
    assert "modelport users role vic admin" in str(info.value.hint)
    with pytest.raises(PermissionDenied):
        registry.users.create_key("dana", by=alex)
    with pytest.raises(PermissionDenied):
        registry.users.revoke_key(registry.users.list_keys("vic")[0].key_id, by=alex)
    with pytest.raises(ValidationError, match="Unknown role 'root'"):
        registry.users.create_user("eve", "root", by=admin)
    assert [u.name for u in registry.users.list_users()] == ["alex", "dana", "root", "vic"]


def test_a_role_change_applies_to_keys_already_authenticated(registry: Registry) -> None:
    admin = registry.authenticate(registry.users.bootstrap_admin("root", actor="tester").token)
    registry.users.create_user("ops", "admin", by=admin)
    ops = registry.authenticate(registry.users.create_key("ops", by=admin).token)
    registry.users.set_role("ops", "viewer", by=admin, reason="rotation")
    with pytest.raises(PermissionDenied):
        registry.users.create_user("eve", "viewer", by=ops)  # the stale principal still says admin
    assert registry.users.get_user("ops").role == "viewer"


def test_every_change_to_who_may_act_bumps_the_revision(registry: Registry) -> None:
    """Servers cache key checks until the revision moves: each access change must move it, once."""

    def bumps(change: Callable[[], object]) -> int:
        before = registry.revision()
        change()
        return registry.revision() - before

    issued = registry.users.bootstrap_admin("root", actor="tester")
    assert registry.revision() == 1  # the first user turns authentication on
    admin = registry.authenticate(issued.token)
    assert bumps(lambda: registry.users.create_user("dana", "admin", by=admin)) == 1
    first = registry.users.create_key("dana", by=admin)
    assert bumps(lambda: registry.users.create_key("dana", by=admin)) == 1
    assert bumps(lambda: registry.users.set_role("dana", "viewer", by=admin)) == 1
    assert bumps(lambda: registry.users.revoke_key(first.key_id, by=admin)) == 1
    assert bumps(lambda: registry.users.revoke_key(first.key_id, by=admin)) == 0  # revoked already: no change
    assert bumps(lambda: registry.users.disable_user("dana", by=admin)) == 1
    assert bumps(registry.users.list_users) == 0
    assert bumps(lambda: registry.authenticate(issued.token)) == 0


def test_the_last_admin_cannot_be_demoted_or_disabled(registry: Registry) -> None:
    admin = registry.authenticate(registry.users.bootstrap_admin("root", actor="tester").token)
    with pytest.raises(Conflict, match="last active admin"):
        registry.users.set_role("root", "approver", by=admin)
    with pytest.raises(Conflict, match="last active admin"):
        registry.users.disable_user("root", by=admin)
    registry.users.create_user("second", "admin", by=admin)
    registry.users.set_role("root", "approver", by=admin)
    assert registry.users.get_user("root").role == "approver"


def test_roles_are_ordered() -> None:
    assert ROLES == ("viewer", "data_scientist", "approver", "admin")
    assert Principal.of("x", "data_scientist").role == "data_scientist"
    assert not Principal.of("x", "data_scientist").has_role("approver")


def test_the_governance_migration_upgrades_an_older_schema_and_downgrades(settings: Settings, tmp_path: Path) -> None:
    from modelport.registry import db

    url = settings.database_url
    engine = db.create_engine(url)
    schema.upgrade(engine, url, "0002_batch_runs")
    assert "users" not in sa.inspect(engine).get_table_names()
    schema.upgrade(engine, url)
    tables = set(sa.inspect(engine).get_table_names())
    assert {
        "users",
        "api_keys",
        "policies",
        "validation_reports",
        "promotion_requests",
        "promotion_decisions",
        "releases",
        "release_traffic",
    } <= tables
    schema.downgrade(engine, url, "0002_batch_runs")
    assert "users" not in sa.inspect(engine).get_table_names()
    assert "batch_runs" in sa.inspect(engine).get_table_names()
    engine.dispose()
