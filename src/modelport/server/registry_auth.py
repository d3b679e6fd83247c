"""``RegistryKeys``: the server accepts API keys stored hashed in the registry, scoped by the user's role.

An :class:`~modelport.server.auth.Authenticator` backed by ``registry.authenticate(key)`` (run in a
thread, never on the event loop). Roles map to scopes: ``admin`` gets ``admin`` and ``predict``;
``approver``, ``data_scientist`` and ``viewer`` get ``predict`` only (a viewer may read and call
models, never manage the server). Results are cached for ``ttl_s`` seconds by the key's sha256
(never the key itself). Every change to users and keys (a key issued or revoked, a user created,
disabled or re-roled) bumps the registry revision, and the server's revision poller calls
:meth:`RegistryKeys.on_revision`, which forgets every cached answer and re-reads the users: a
revoked key or a disabled user stops working, and a demoted admin loses the admin scope, at the
next poll (within ``poll_interval_s``, 2 s by default), and a new key works from then on even if
it was refused before. With polling off (``poll_interval_s=0``) the cache TTL alone bounds that.
Whether authentication is on (``has_keys``) and whether any admin exists (``grants("admin")``)
follow the registry's users: the composition root calls :meth:`RegistryKeys.refresh` before the
server starts, and while it runs they are re-read at every revision and in the background at most
every ``ttl_s`` seconds. When the users cannot be read, keys are required (fail closed). A registry
that cannot be reached while a key is checked answers 503, never 401, so an outage is not mistaken
for a bad key.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections import OrderedDict

from modelport.core.errors import ServiceUnavailable, Unauthenticated
from modelport.registry.registry import Registry
from modelport.registry.users import Principal as User
from modelport.server.auth import Principal
from modelport.server.config import Scope
from modelport.server.loading import describe

logger = logging.getLogger("modelport.server")

DEFAULT_TTL_S = 10.0
MAX_CACHED = 4096


def scopes_of(user: User) -> frozenset[Scope]:
    """The server scopes a registry user's role grants: admin → admin + predict, any other → predict."""
    if user.has_role("admin"):
        return frozenset({"admin", "predict"})
    return frozenset({"predict"})


class RegistryKeys:
    """Checks keys against the registry's users and API keys.

    Args:
        registry: The registry holding users and hashed keys.
        ttl_s: How long one key's answer (accepted or refused) is reused.
    """

    def __init__(self, registry: Registry, *, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.registry = registry
        self.ttl_s = ttl_s
        self._has_users = True  # until the users were read: fail closed
        self._has_admin = False
        self._refreshed_at: float | None = None
        self._refreshing: asyncio.Task[None] | None = None
        self._cache: OrderedDict[bytes, tuple[float, Principal | None]] = OrderedDict()
        self._generation = 0  # moves at every revision: answers read before it are not cached
        self._reading = threading.Lock()  # one re-read at a time, so an older one never lands last

    def refresh(self) -> None:
        """Re-read whether the registry has active users and admins (blocking: call it from a thread)."""
        with self._reading:
            try:
                active = [u for u in self.registry.users.list_users() if not u.disabled]
            except Exception as exc:  # keep the last answer (keys required until the first one)
                logger.warning("Cannot read the registry's users: %s", describe(exc))
            else:
                self._has_users = bool(active)
                self._has_admin = any(u.role == "admin" for u in active)
            self._refreshed_at = time.monotonic()

    async def on_revision(self) -> None:
        """Forget every cached answer and re-read the users: the registry revision moved.

        Users or keys may have changed. The server's model manager calls it from its revision
        poller (:func:`~modelport.server.app.create_app` registers it).
        """
        self._generation += 1
        self._cache.clear()
        self._refreshed_at = time.monotonic()  # no background re-read beside this one
        await asyncio.to_thread(self.refresh)

    def _maybe_refresh(self) -> None:
        """Start a background re-read when the last one is older than ``ttl_s`` (inside a running loop)."""
        if self._refreshed_at is not None and time.monotonic() - self._refreshed_at < self.ttl_s:
            return
        if self._refreshing is not None and not self._refreshing.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._refreshed_at = time.monotonic()
        self._refreshing = loop.create_task(asyncio.to_thread(self.refresh))

    @property
    def has_keys(self) -> bool:
        """Whether the registry has active users (then every non-health route needs a key)."""
        self._maybe_refresh()
        return self._has_users

    def grants(self, scope: Scope) -> bool:
        """Whether some registry user's role carries ``scope``."""
        self._maybe_refresh()
        return self._has_admin if scope == "admin" else self._has_users

    async def authenticate(self, token: str) -> Principal | None:
        """The principal of ``token``'s user, or ``None`` for an unknown, revoked or malformed key.

        Raises:
            ServiceUnavailable: The registry could not be asked.
        """
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        generation = self._generation
        try:
            user: User | None = await asyncio.to_thread(self.registry.authenticate, token)
        except Unauthenticated:
            user = None
        except Exception as exc:
            logger.error("Cannot check an API key against the registry: %s", describe(exc))
            raise ServiceUnavailable(
                "Cannot check the API key: the registry is unavailable.",
                hint="Retry shortly; the operator can see the reason in the server log.",
            ) from None
        principal = None if user is None else Principal(f"{user.name} ({user.role})", scopes_of(user))
        if generation != self._generation:  # the registry moved while asking: this answer may be stale
            return principal
        self._cache[digest] = (now + self.ttl_s, principal)
        self._cache.move_to_end(digest)
        while len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)
        return principal
