"""Authentication and authorisation: API keys, scopes, route policies, and failure rate limiting.

Every route declares a :data:`Policy`: ``public`` (health only), ``predict`` (inference, metadata,
metrics, docs) or ``admin`` (the model repository). Keys arrive as ``Authorization: Bearer KEY``
or ``X-API-Key: KEY`` (on the dashboard's pages also as the sign-in cookie of
:mod:`modelport.server.signin`) and are checked by :class:`Authenticator` objects: :class:`StaticKeys` holds
the ``--api-key`` values as sha256 digests compared in constant time; keys stored hashed in the
registry plug in as another ``Authenticator``. Without any key, ``predict`` routes are open and
``admin`` routes are closed (management APIs never answer unauthenticated). Repeated failures from
one client are refused with 429 for a window.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from modelport.core.errors import PermissionDenied, Unauthenticated
from modelport.server.config import ApiKey, Scope
from modelport.server.errors import TooManyFailures

Policy = Literal["public", "predict", "admin"]
"""Who may call a route: anyone, a key with the ``predict`` scope, or a key with ``admin``."""

POLICIES: tuple[Policy, ...] = ("public", "predict", "admin")


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: a label for logs (never the key) and its scopes."""

    label: str
    scopes: frozenset[Scope]


ANONYMOUS = Principal("anonymous", frozenset({"predict"}))


@runtime_checkable
class Authenticator(Protocol):
    """Checks presented keys. Implementations must compare in constant time and never log keys."""

    @property
    def has_keys(self) -> bool:
        """Whether any key is configured (authentication is on)."""
        ...

    def grants(self, scope: Scope) -> bool:
        """Whether some configured key carries ``scope``."""
        ...

    async def authenticate(self, token: str) -> Principal | None:
        """The principal owning ``token``, or ``None``."""
        ...


class StaticKeys:
    """The ``--api-key`` keys, held as sha256 digests.

    Args:
        keys: Hashed keys with their scopes (see :class:`~modelport.server.config.ApiKey`).
    """

    def __init__(self, keys: Sequence[ApiKey]) -> None:
        self._keys = tuple((bytes.fromhex(k.sha256), Principal(k.label, k.scopes)) for k in keys)

    @property
    def has_keys(self) -> bool:
        """Whether any key is configured."""
        return bool(self._keys)

    def grants(self, scope: Scope) -> bool:
        """Whether some key carries ``scope``."""
        return any(scope in p.scopes for _, p in self._keys)

    async def authenticate(self, token: str) -> Principal | None:
        """Compare the token's digest with every key (no early exit)."""
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        found: Principal | None = None
        for stored, principal in self._keys:
            if hmac.compare_digest(digest, stored):
                found = principal
        return found


class FailureLimiter:
    """Counts authentication failures per client in a sliding window; bounded memory.

    Args:
        limit: Failures allowed per window; the next attempt gets 429.
        window_s: Window length.
        max_clients: Clients tracked at once (oldest forgotten first).
    """

    def __init__(self, limit: int, window_s: float, *, max_clients: int = 10_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_clients = max_clients
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def _recent(self, client: str, now: float) -> list[float]:
        times = self._failures.get(client)
        if times is None:
            return []
        cutoff = now - self.window_s
        while times and times[0] < cutoff:
            times.pop(0)
        if not times:
            del self._failures[client]
        return times

    def check(self, client: str) -> None:
        """Raise :class:`TooManyFailures` when ``client`` is over the limit."""
        now = time.monotonic()
        times = self._recent(client, now)
        if len(times) >= self.limit:
            wait = max(1, int(times[0] + self.window_s - now) + 1)
            raise TooManyFailures(
                f"Too many failed authentication attempts from this client ({len(times)} in {self.window_s:g} s).",
                hint=f"Check the API key, then retry after {wait} s.",
                retry_after_s=wait,
            )

    def record(self, client: str) -> None:
        """Count one failure for ``client``."""
        now = time.monotonic()
        times = self._recent(client, now)
        times.append(now)
        self._failures[client] = times
        self._failures.move_to_end(client)
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)
        if len(times) > self.limit:
            del times[: len(times) - self.limit]


def token_from_headers(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The key presented in ``Authorization: Bearer`` or ``X-API-Key``, if any."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and value.strip():
            return value.decode("latin-1").strip()
    return None


class Gate:
    """Decides, per request, whether a route's policy lets the caller in.

    Args:
        authenticators: Where keys are checked, in order.
        limiter: Rate limiting of failures.
    """

    def __init__(self, authenticators: Sequence[Authenticator], limiter: FailureLimiter) -> None:
        self.authenticators = tuple(authenticators)
        self.limiter = limiter

    @property
    def enabled(self) -> bool:
        """Whether keys are required on ``predict`` routes."""
        for authenticator in self.authenticators:  # noqa: SIM110 - a loop, not any(genexpr): asked per prediction
            if authenticator.has_keys:
                return True
        return False

    async def authorize(
        self, policy: Policy, headers: Sequence[tuple[bytes, bytes]], client: str, *, token: str | None = None
    ) -> Principal:
        """Return the caller's principal or raise 401/403/429.

        ``token`` is a key presented elsewhere than the headers (the dashboard's sign-in form or
        cookie, see :mod:`modelport.server.signin`); a header key takes precedence over it. Either is
        checked the same way.

        Raises:
            Unauthenticated: No key, or a key that matches none (counted as a failure).
            PermissionDenied: The key lacks the scope, or no admin key is configured at all.
            TooManyFailures: The client failed too often recently.
        """
        if policy == "public":
            return ANONYMOUS
        if policy == "admin" and not any(a.grants("admin") for a in self.authenticators):
            raise PermissionDenied(
                "Repository management is disabled: no admin key is configured.",
                hint="Start the server with an admin key (--api-key KEY or --api-key admin:KEY).",
            )
        if policy == "predict" and not self.enabled:
            return ANONYMOUS
        self.limiter.check(client)
        token = token_from_headers(headers) or token
        principal = await self._lookup(token) if token else None
        if principal is None:
            self.limiter.record(client)
            what = "No API key was sent" if token is None else "The API key is not valid"
            raise Unauthenticated(f"{what}.", hint="Send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.")
        if policy not in principal.scopes:
            raise PermissionDenied(
                f"The key {principal.label!r} lacks the {policy!r} scope this route needs.",
                hint="Use a key with that scope (an admin key for the repository routes).",
            )
        return principal

    async def _lookup(self, token: str) -> Principal | None:
        for authenticator in self.authenticators:
            principal = await authenticator.authenticate(token)
            if principal is not None:
                return principal
        return None
