"""``modelport users bootstrap | create | role | disable | list | whoami | key | keys | revoke``: users and API keys.

Roles, weakest first: ``viewer``, ``data_scientist``, ``approver``, ``admin`` (each includes the
ones before it). Keys are printed once, when issued, and stored only as hashes. Until the first
admin is bootstrapped the registry is open (the local user acts as an admin); from then on every
command that changes something needs ``--api-key`` / ``MODELPORT_API_KEY``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from modelport.cli._context import settings_of
from modelport.cli._render import print_json, stdout, table

if TYPE_CHECKING:
    from modelport.registry.users import IssuedKey, User

app = typer.Typer(help="Users, roles and API keys (admins).", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why, for the audit log.")]
UserArg = Annotated[str, typer.Argument(metavar="NAME", help="The user name.")]
RoleArg = Annotated[str, typer.Argument(metavar="ROLE", help="viewer, data_scientist, approver or admin.")]
LabelOpt = Annotated[
    str | None, typer.Option("--label", help="A note on the key, e.g. where it is used (default: --reason).")
]


@app.command("bootstrap")
def bootstrap(
    ctx: typer.Context, name: UserArg, label: LabelOpt = None, reason: ReasonOpt = None, as_json: JsonFlag = False
) -> None:
    """Create the first admin and print its API key (once; only while the registry has no admin)."""
    from modelport.api import governing

    issued = governing.bootstrap_admin(name, label=label or reason, settings=settings_of(ctx))
    _print_key(issued, as_json)


@app.command("create")
def create(
    ctx: typer.Context, name: UserArg, role: RoleArg, reason: ReasonOpt = None, as_json: JsonFlag = False
) -> None:
    """Create a user with ROLE (admins); then issue its key with `modelport users key NAME`."""
    from modelport.api import governing

    _print_user(governing.create_user(name, role, reason=reason, settings=settings_of(ctx)), as_json, "created")


@app.command("role")
def role(ctx: typer.Context, name: UserArg, role: RoleArg, reason: ReasonOpt = None, as_json: JsonFlag = False) -> None:
    """Give a user another role (admins; the last admin cannot be demoted)."""
    from modelport.api import governing

    _print_user(governing.set_role(name, role, reason=reason, settings=settings_of(ctx)), as_json, "updated")


@app.command("disable")
def disable(ctx: typer.Context, name: UserArg, reason: ReasonOpt = None, as_json: JsonFlag = False) -> None:
    """Disable a user and revoke all its keys (admins)."""
    from modelport.api import governing

    _print_user(governing.disable_user(name, reason=reason, settings=settings_of(ctx)), as_json, "disabled")


@app.command("list")
def list_users(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List users and their roles."""
    from modelport.api import governing

    found = governing.list_users(settings=settings_of(ctx))
    if as_json:
        print_json(found)
        return
    if not found:
        stdout.print("No users: the registry is open. Create the first admin with `modelport users bootstrap NAME`.")
        return
    table(
        "Users",
        ["name", "role", "status", "created"],
        (
            [u.name, u.role, "disabled" if u.disabled else "active", f"{u.created_at:%Y-%m-%d %H:%M} by {u.created_by}"]
            for u in found
        ),
    )


@app.command("whoami")
def whoami(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Show who acts with the current API key (or the local user of an open registry)."""
    from modelport.api import governing

    principal = governing.whoami(settings=settings_of(ctx))
    if as_json:
        print_json({"name": principal.name, "role": principal.role, "key_id": principal.key_id})
        return
    via = f"key {principal.key_id}" if principal.key_id else "no key: the registry is open"
    stdout.print(f"{principal.name} (role {principal.role}; {via})", highlight=False)


@app.command("key")
def key(
    ctx: typer.Context, name: UserArg, label: LabelOpt = None, reason: ReasonOpt = None, as_json: JsonFlag = False
) -> None:
    """Issue an API key for a user (admins). It is printed once; only its hash is stored."""
    from modelport.api import governing

    _print_key(governing.create_key(name, label=label or reason, settings=settings_of(ctx)), as_json)


@app.command("keys")
def keys(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="[NAME]", help="Only this user's keys.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List API keys (ids, owners, labels; never secrets)."""
    from modelport.api import governing

    found = governing.list_keys(name, settings=settings_of(ctx))
    if as_json:
        print_json(found)
        return
    table(
        "API keys",
        ["key id", "user", "label", "created", "state"],
        (
            [
                k.key_id,
                k.user,
                k.label,
                f"{k.created_at:%Y-%m-%d %H:%M} by {k.created_by}",
                "active" if k.active else f"revoked {k.revoked_at:%Y-%m-%d %H:%M}",
            ]
            for k in found
        ),
    )


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key's public id (see `users keys`).")],
    reason: ReasonOpt = None,
) -> None:
    """Revoke an API key (admins, or the key's own user)."""
    from modelport.api import governing

    governing.revoke_key(key_id, reason=reason, settings=settings_of(ctx))
    stdout.print(f"Revoked key {key_id}.")


def _print_key(issued: IssuedKey, as_json: bool) -> None:
    if as_json:
        print_json({"user": issued.user, "key_id": issued.key_id, "api_key": issued.token})
        return
    stdout.print(f"API key for [bold]{issued.user}[/] (id {issued.key_id}); it is shown only this once:")
    stdout.print(issued.token, highlight=False, soft_wrap=True)
    stdout.print("Use it with --api-key or MODELPORT_API_KEY.")


def _print_user(user: User, as_json: bool, what: str) -> None:
    if as_json:
        print_json(user)
        return
    state = " (disabled)" if user.disabled else ""
    stdout.print(f"User [bold]{user.name}[/] {what}: role {user.role}{state}.")
