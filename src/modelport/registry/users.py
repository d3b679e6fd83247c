"""Users, their roles and their API keys, kept hashed in the registry database.

Four roles, each including the ones before it: ``viewer`` (read), ``data_scientist`` (register,
validate, request promotions, run releases), ``approver`` (approve or reject others' requests) and
``admin`` (users, keys, policies, gate overrides). An API key reads ``mpk_<key id>_<secret>``: the
key id is public and indexed (the primary key of ``api_keys``), the secret is 32 random bytes and
only its sha256 is stored, compared with :func:`hmac.compare_digest`. A key is shown once, when it
is issued. Every change is audited in the caller's transaction, and every change to who may act
(a user created, re-roled or disabled, a key issued or revoked) bumps the registry revision in that
transaction too, so running servers drop their cached key checks at their next poll instead of
waiting for the cache to expire. A registry without any user is
*open*: :meth:`UserStore.open_principal` lets the local actor act as an admin until the first
admin is bootstrapped with :meth:`UserStore.bootstrap_admin`; from then on every actor needs a key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar, cast, get_args

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from modelport.core.errors import Conflict, NotFound, PermissionDenied, Unauthenticated, ValidationError
from modelport.core.names import validate_name
from modelport.registry import audit as audit_sql
from modelport.registry.store import SqlStore
from modelport.registry.tables import NAME_LENGTH, UTCDateTime, metadata

T = TypeVar("T")

Role = Literal["viewer", "data_scientist", "approver", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
"""The roles, weakest first; each includes every role before it."""

KEY_PREFIX = "mpk"
KEY_ID_BYTES = 8
KEY_SECRET_BYTES = 32
_DUMMY_DIGEST = hashlib.sha256(b"modelport-no-such-key").hexdigest()

users = sa.Table(
    "users",
    metadata,
    sa.Column("name", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("user_name", sa.String(NAME_LENGTH), sa.ForeignKey("users.name"), nullable=False, index=True),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("label", sa.String(255), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.Column("revoked_by", sa.String(255), nullable=True),
)


def check_role(role: str) -> Role:
    """Return ``role`` if it is one of :data:`ROLES`, else raise :class:`ValidationError`."""
    if role not in ROLES:
        raise ValidationError(f"Unknown role {role!r}.", hint=f"Use one of: {', '.join(ROLES)}.")
    return role


def roles_of(role: Role) -> frozenset[str]:
    """``role`` and every weaker role it includes."""
    return frozenset(ROLES[: ROLES.index(role) + 1])


@dataclass(frozen=True)
class Principal:
    """Who acts: a user of the registry and the roles it holds.

    Attributes:
        name: The user name (recorded as the actor in the audit log).
        roles: Every role held, weaker ones included (an ``approver`` holds ``viewer`` too).
        key_id: The public id of the API key used, or ``None`` for the actor of an open registry.
    """

    name: str
    roles: frozenset[str] = field(hash=False)
    key_id: str | None = None

    @classmethod
    def of(cls, name: str, role: str, *, key_id: str | None = None) -> Principal:
        """The principal of user ``name`` holding ``role``."""
        return cls(name=name, roles=roles_of(check_role(role)), key_id=key_id)

    @property
    def role(self) -> Role:
        """The strongest role held."""
        return max((cast(Role, r) for r in self.roles), key=ROLES.index, default="viewer")

    def has_role(self, role: str) -> bool:
        """Whether the principal holds ``role`` (directly or through a stronger one)."""
        return role in self.roles

    def require(self, role: str, *, to: str) -> None:
        """Raise :class:`PermissionDenied` unless the principal holds ``role``.

        Args:
            role: The role needed.
            to: What the principal tried to do, for the message (e.g. ``"approve requests"``).
        """
        if not self.has_role(role):
            raise PermissionDenied(
                f"User {self.name!r} (role {self.role}) may not {to}: that needs the {role} role.",
                hint=f"Ask an admin to grant it (`modelport users role {self.name} {role}`), or act with "
                "the API key of a user who holds it.",
            )


@dataclass(frozen=True)
class User:
    """A registry user as stored (never with key material)."""

    name: str
    role: Role
    disabled: bool
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class ApiKeyInfo:
    """An API key's public facts: its id, owner, label and life (never the secret or its hash)."""

    key_id: str
    user: str
    label: str | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        """Whether the key still authenticates (its user may still be disabled)."""
        return self.revoked_at is None


@dataclass(frozen=True)
class IssuedKey:
    """A freshly issued API key. ``token`` is shown this once; only its hash is stored."""

    key_id: str
    user: str
    token: str = field(repr=False)


def _now() -> datetime:
    return datetime.now(UTC)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _user_target(name: str) -> str:
    return f"user:{name}"


def _to_user(row: Any) -> User:
    return User(
        name=row.name,
        role=check_role(row.role),
        disabled=bool(row.disabled),
        created_at=row.created_at,
        created_by=row.created_by,
    )


def _audit(conn: Connection, actor: str, action: str, target: str, reason: str | None, **details: Any) -> None:
    audit_sql.record(
        conn, at=_now(), actor=actor, action=action, target=target, model=None, reason=reason, details=details
    )


def has_users(conn: Connection) -> bool:
    """Whether the registry has any user (it is *open* while it has none)."""
    return conn.execute(sa.select(users.c.name).limit(1)).first() is not None


def current(conn: Connection, principal: Principal) -> Principal:
    """``principal`` as the database knows it now (its role may have changed since it authenticated).

    Raises:
        Unauthenticated: The user was disabled or removed, its key revoked, or an open-registry
            principal acts on a registry that has users now.
    """
    if principal.key_id is None:
        if has_users(conn):
            raise Unauthenticated(
                f"The registry has users; {principal.name!r} must identify with an API key.",
                hint="Set MODELPORT_API_KEY to the key an admin issued you (`modelport users key NAME`).",
            )
        return principal
    query = (
        sa.select(users.c.name, users.c.role, users.c.disabled, api_keys.c.revoked_at)
        .join(api_keys, api_keys.c.user_name == users.c.name)
        .where(users.c.name == principal.name, api_keys.c.key_id == principal.key_id)
    )
    row = conn.execute(query).first()
    if row is None or row.disabled or row.revoked_at is not None:
        raise Unauthenticated(
            f"User {principal.name!r} is disabled, or its key {principal.key_id} is revoked or not its own.",
            hint="Ask an admin for an active user and key.",
        )
    return Principal.of(row.name, row.role, key_id=principal.key_id)


def require(conn: Connection, principal: Principal, role: str, *, to: str) -> Principal:
    """The current form of ``principal``, after checking it holds ``role`` (see :meth:`Principal.require`)."""
    now = current(conn, principal)
    now.require(role, to=to)
    return now


def _active_admins(conn: Connection) -> list[str]:
    query = sa.select(users.c.name).where(users.c.role == "admin", users.c.disabled.is_(False))
    return [str(name) for name in conn.execute(query).scalars()]


def _require_user(conn: Connection, name: str) -> Any:
    row = conn.execute(sa.select(users).where(users.c.name == name).with_for_update()).first()
    if row is None:
        raise NotFound(f"No user named {name!r}.", hint="List users with `modelport users list`.")
    return row


def _keep_an_admin(conn: Connection, name: str, doing: str) -> None:
    if _active_admins(conn) == [name]:
        raise Conflict(
            f"Cannot {doing} {name!r}: it is the last active admin.",
            hint="Make another user admin first (`modelport users role OTHER admin`).",
        )


def _insert_key(conn: Connection, user: str, *, actor: str, label: str | None, now: datetime) -> IssuedKey:
    key_id = secrets.token_hex(KEY_ID_BYTES)
    secret = secrets.token_urlsafe(KEY_SECRET_BYTES)
    conn.execute(
        sa.insert(api_keys).values(
            key_id=key_id,
            user_name=user,
            secret_sha256=_digest(secret),
            label=label,
            created_at=now,
            created_by=actor,
        )
    )
    return IssuedKey(key_id=key_id, user=user, token=f"{KEY_PREFIX}_{key_id}_{secret}")


def parse_token(token: str) -> tuple[str, str]:
    """Split an API key into its public key id and its secret.

    Raises:
        Unauthenticated: ``token`` does not have the shape of a modelport key (it is never echoed).
    """
    parts = token.strip().split("_", 2) if isinstance(token, str) else []
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 2 * KEY_ID_BYTES or not parts[2]:
        raise Unauthenticated(
            "The API key is not a modelport key.",
            hint=f"Keys look like '{KEY_PREFIX}_<16 hex digits>_<secret>'; ask an admin for one.",
        )
    return parts[1], parts[2]


class UserStore(SqlStore):
    """Users and API keys in the registry database.

    The database must be at the registry's newest schema (the :class:`~modelport.registry.registry.Registry`
    migrates it on first use and hands out this store as ``registry.users``). Each method runs in
    its own transaction; changes re-read the acting principal's role inside it.

    Args:
        engine: Engine of the registry database.
        url: The database URL as configured (only for error messages; its password is hidden).
    """

    # -- who acts -------------------------------------------------------------------------------

    def authenticate(self, token: str) -> Principal:
        """The principal owning API key ``token``.

        Raises:
            Unauthenticated: The key is malformed, unknown, revoked, or its user is disabled. The
                message never contains the secret.
        """
        key_id, secret = parse_token(token)

        def work(conn: Connection) -> Principal:
            query = (
                sa.select(api_keys.c.secret_sha256, api_keys.c.revoked_at, users.c.name, users.c.role, users.c.disabled)
                .join(users, users.c.name == api_keys.c.user_name)
                .where(api_keys.c.key_id == key_id)
            )
            row = conn.execute(query).first()
            stored = str(row.secret_sha256) if row is not None else _DUMMY_DIGEST
            matches = hmac.compare_digest(stored.encode("ascii"), _digest(secret).encode("ascii"))
            if row is None or not matches:
                raise Unauthenticated(
                    "The API key is not recognised.", hint="Check MODELPORT_API_KEY, or ask an admin."
                )
            if row.revoked_at is not None or row.disabled:
                raise Unauthenticated(
                    f"API key {key_id} is revoked or its user {row.name!r} is disabled.",
                    hint="Ask an admin for a new key (`modelport users key NAME`).",
                )
            return Principal.of(row.name, row.role, key_id=key_id)

        return self._tx(work, write=False)

    def open_principal(self, actor: str) -> Principal:
        """An admin principal for ``actor`` on an *open* registry, one that has no users yet.

        Raises:
            Unauthenticated: The registry has users; the actor needs an API key.
        """
        principal = Principal(name=actor, roles=roles_of("admin"), key_id=None)
        return self._tx(lambda conn: current(conn, principal), write=False)

    def require(self, principal: Principal, role: str, *, to: str) -> Principal:
        """``principal`` as the database knows it now, after checking it holds ``role``.

        Raises:
            Unauthenticated: The user was disabled or removed since it authenticated.
            PermissionDenied: It lacks ``role``.
        """
        return self._tx(lambda conn: require(conn, principal, role, to=to), write=False)

    # -- users ----------------------------------------------------------------------------------

    def bootstrap_admin(self, name: str, *, actor: str, label: str | None = None) -> IssuedKey:
        """Create the first admin and its first API key; allowed only while no active admin exists.

        Args:
            name: The admin's user name.
            actor: Who runs the bootstrap (the OS user), recorded as ``<actor> (bootstrap)``.
            label: A note on the key.

        Raises:
            Conflict: An active admin exists already, or ``name`` is taken.
        """
        validate_name(name, what="user name")
        recorded = f"{actor} (bootstrap)"

        def work(conn: Connection) -> IssuedKey:
            admins = _active_admins(conn)
            if admins:
                raise Conflict(
                    f"Cannot bootstrap admin {name!r}: the registry has an admin already ({admins[0]!r}).",
                    hint="Ask an admin to create your user (`modelport users create NAME ROLE`).",
                )
            now = _now()
            self._insert_user(conn, name, "admin", actor=recorded, now=now)
            issued = _insert_key(conn, name, actor=recorded, label=label, now=now)
            _audit(conn, recorded, "user.bootstrap", _user_target(name), None, role="admin", key_id=issued.key_id)
            audit_sql.bump_revision(conn)  # authentication turns on: servers must re-read the users
            return issued

        return self._tx(work)

    def create_user(self, name: str, role: str, *, by: Principal, reason: str | None = None) -> User:
        """Create user ``name`` with ``role`` (admins only).

        Raises:
            PermissionDenied: ``by`` is not an admin.
            Conflict: The name is taken.
        """
        validate_name(name, what="user name")
        chosen = check_role(role)

        def work(conn: Connection) -> User:
            actor = require(conn, by, "admin", to="create users")
            user = self._insert_user(conn, name, chosen, actor=actor.name, now=_now())
            _audit(conn, actor.name, "user.create", _user_target(name), reason, role=chosen)
            audit_sql.bump_revision(conn)  # the first user turns authentication on
            return user

        return self._tx(work)

    def _insert_user(self, conn: Connection, name: str, role: Role, *, actor: str, now: datetime) -> User:
        if conn.execute(sa.select(users.c.name).where(users.c.name == name)).first() is not None:
            raise Conflict(f"User {name!r} exists already.", hint="Choose another name, or change its role.")
        conn.execute(
            sa.insert(users).values(
                name=name, role=role, disabled=False, created_at=now, created_by=actor, updated_at=now
            )
        )
        return User(name=name, role=role, disabled=False, created_at=now, created_by=actor)

    def set_role(self, name: str, role: str, *, by: Principal, reason: str | None = None) -> User:
        """Give user ``name`` the role ``role`` (admins only; the last admin cannot be demoted).

        Raises:
            PermissionDenied: ``by`` is not an admin.
            NotFound: No such user.
            Conflict: It would leave the registry without an active admin.
        """
        chosen = check_role(role)

        def work(conn: Connection) -> User:
            actor = require(conn, by, "admin", to="change roles")
            row = _require_user(conn, name)
            if chosen != "admin":
                _keep_an_admin(conn, name, "demote")
            conn.execute(sa.update(users).where(users.c.name == name).values(role=chosen, updated_at=_now()))
            _audit(conn, actor.name, "user.role", _user_target(name), reason, old_role=row.role, new_role=chosen)
            audit_sql.bump_revision(conn)  # the user's keys carry other scopes now
            return _to_user(conn.execute(sa.select(users).where(users.c.name == name)).one())

        return self._tx(work)

    def disable_user(self, name: str, *, by: Principal, reason: str | None = None) -> User:
        """Disable user ``name`` and revoke all its keys (admins only).

        Raises:
            PermissionDenied: ``by`` is not an admin.
            NotFound: No such user.
            Conflict: It is the last active admin.
        """

        def work(conn: Connection) -> User:
            actor = require(conn, by, "admin", to="disable users")
            _require_user(conn, name)
            _keep_an_admin(conn, name, "disable")
            now = _now()
            conn.execute(sa.update(users).where(users.c.name == name).values(disabled=True, updated_at=now))
            revoked = conn.execute(
                sa.update(api_keys)
                .where(api_keys.c.user_name == name, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now, revoked_by=actor.name)
            ).rowcount
            _audit(conn, actor.name, "user.disable", _user_target(name), reason, keys_revoked=int(revoked or 0))
            audit_sql.bump_revision(conn)
            return _to_user(conn.execute(sa.select(users).where(users.c.name == name)).one())

        return self._tx(work)

    def get_user(self, name: str) -> User:
        """User ``name``.

        Raises:
            NotFound: No such user.
        """
        row = self._tx(lambda conn: conn.execute(sa.select(users).where(users.c.name == name)).first(), write=False)
        if row is None:
            raise NotFound(f"No user named {name!r}.", hint="List users with `modelport users list`.")
        return _to_user(row)

    def list_users(self) -> list[User]:
        """Every user, sorted by name."""
        rows = self._tx(lambda conn: list(conn.execute(sa.select(users).order_by(users.c.name))), write=False)
        return [_to_user(row) for row in rows]

    # -- keys -----------------------------------------------------------------------------------

    def create_key(self, user: str, *, by: Principal, label: str | None = None) -> IssuedKey:
        """Issue a new API key for ``user`` (admins only). The token is returned once.

        Raises:
            PermissionDenied: ``by`` is not an admin.
            NotFound: No such user.
            Conflict: The user is disabled.
        """

        def work(conn: Connection) -> IssuedKey:
            actor = require(conn, by, "admin", to="issue API keys")
            if _require_user(conn, user).disabled:
                raise Conflict(
                    f"User {user!r} is disabled.", hint="Disabled users get no keys; create a new user instead."
                )
            issued = _insert_key(conn, user, actor=actor.name, label=label, now=_now())
            _audit(conn, actor.name, "apikey.create", _user_target(user), None, key_id=issued.key_id, label=label)
            audit_sql.bump_revision(conn)  # servers may hold a cached refusal of this very key
            return issued

        return self._tx(work)

    def revoke_key(self, key_id: str, *, by: Principal, reason: str | None = None) -> None:
        """Revoke API key ``key_id`` (admins, or the key's own user).

        Raises:
            NotFound: No such key.
            PermissionDenied: ``by`` is neither an admin nor the key's owner.
        """

        def work(conn: Connection) -> None:
            actor = current(conn, by)
            row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)).first()
            if row is None:
                raise NotFound(f"No API key {key_id!r}.", hint="List keys with `modelport users keys`.")
            if row.user_name != actor.name:
                actor.require("admin", to="revoke other users' keys")
            if row.revoked_at is None:
                conn.execute(
                    sa.update(api_keys)
                    .where(api_keys.c.key_id == key_id)
                    .values(revoked_at=_now(), revoked_by=actor.name)
                )
                _audit(conn, actor.name, "apikey.revoke", _user_target(row.user_name), reason, key_id=key_id)
                audit_sql.bump_revision(conn)

        self._tx(work)

    def list_keys(self, user: str | None = None) -> list[ApiKeyInfo]:
        """API keys (of ``user``, or all), oldest first, without any secret material."""
        query = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
        if user is not None:
            query = query.where(api_keys.c.user_name == user)
        rows = self._tx(lambda conn: list(conn.execute(query)), write=False)
        return [
            ApiKeyInfo(
                key_id=row.key_id,
                user=row.user_name,
                label=row.label,
                created_at=row.created_at,
                created_by=row.created_by,
                revoked_at=row.revoked_at,
            )
            for row in rows
        ]
