"""Who acts: turning an API key (or its absence, on an open registry) into a :class:`Principal`.

The CLI and the server call :func:`identify` once per command or request; every governance
function then takes the principal and re-checks its role inside the transaction that acts.
"""

from __future__ import annotations

from modelport.registry.registry import Registry
from modelport.registry.users import Principal


def identify(registry: Registry, key: str | None) -> Principal:
    """The principal acting with API key ``key``.

    Without a key, a registry that has no users yet is *open*: the local actor
    (``registry.actor``, i.e. ``MODELPORT_USER`` or the OS user) acts as an admin. Once an admin
    has been bootstrapped, every actor needs a key.

    Raises:
        Unauthenticated: The key is malformed, unknown or revoked, or no key was given and the
            registry has users.
    """
    if key:
        return registry.authenticate(key)
    return registry.users.open_principal(registry.actor)
