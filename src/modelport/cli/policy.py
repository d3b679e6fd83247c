"""``modelport policy set | show | clear | list``: which aliases are protected, by which gates and approvals.

A policy is stored per model, or registry-wide when no model is named. Only admins change
policies, and every change is audited. Without any policy nothing is protected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from modelport.cli._context import settings_of
from modelport.cli._render import print_json, stdout, table

if TYPE_CHECKING:
    from modelport.registry.policies import Policy

app = typer.Typer(
    help="Promotion policies: protected aliases, required gates, approvals (admins).", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why, for the audit log.")]
ModelArg = Annotated[str | None, typer.Argument(metavar="[MODEL]", help="A model (default: registry-wide).")]


def _names(text: str | None) -> list[str] | None:
    """A comma-separated option as a list; ``none`` (or empty) is the empty list."""
    if text is None:
        return None
    items = [item.strip() for item in text.split(",") if item.strip()]
    return [] if items == ["none"] else items


@app.command("set")
def set_policy(
    ctx: typer.Context,
    model: ModelArg = None,
    protect: Annotated[
        str | None, typer.Option("--protect", help="Protected aliases, comma-separated ('none' to clear).")
    ] = None,
    gates: Annotated[
        str | None,
        typer.Option("--gates", help="Required gates: signature,metrics,latency,parity,checks, 'all' or 'none'."),
    ] = None,
    approvals: Annotated[int | None, typer.Option("--approvals", help="Approvals needed (0-10).")] = None,
    approver_role: Annotated[
        str | None, typer.Option("--approver-role", help="Role an approver needs: approver or admin.")
    ] = None,
    tolerance: Annotated[
        float | None, typer.Option("--tolerance", help="How much worse than the champion a challenger may be.")
    ] = None,
    latency_budget_ms: Annotated[
        float | None, typer.Option("--latency-budget-ms", help="p99 budget of single-row predictions.")
    ] = None,
    recommended: Annotated[
        bool, typer.Option("--recommended", help="Start from: production protected by all gates, 1 approval.")
    ] = False,
    reason: ReasonOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Store the policy of MODEL (or the registry-wide one); unnamed fields keep their stored values."""
    from modelport.api import governing

    policy = governing.set_policy(
        model,
        protect=_names(protect),
        gates=_names(gates),
        approvals=approvals,
        approver_role=approver_role,
        metric_tolerance=tolerance,
        latency_budget_ms=latency_budget_ms,
        recommended=recommended,
        reason=reason,
        settings=settings_of(ctx),
    )
    _print_policy(model or "*", policy, as_json)


@app.command("show")
def show(ctx: typer.Context, model: ModelArg = None, as_json: JsonFlag = False) -> None:
    """Show the policy in effect for MODEL (or the registry-wide one) and where it comes from."""
    from modelport.api import governing

    scope, policy = governing.show_policy(model, settings=settings_of(ctx))
    _print_policy(scope, policy, as_json)


@app.command("clear")
def clear(ctx: typer.Context, model: ModelArg = None, reason: ReasonOpt = None) -> None:
    """Remove the policy stored for MODEL (or the registry-wide one)."""
    from modelport.api import governing

    governing.clear_policy(model, reason=reason, settings=settings_of(ctx))
    stdout.print(f"Cleared the policy of {model or 'the registry (*)'}.")


@app.command("list")
def list_policies(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List every stored policy (``*``: registry-wide)."""
    from modelport.api import governing

    found = governing.list_policies(settings=settings_of(ctx))
    if as_json:
        print_json({scope: policy.to_dict() for scope, policy in found.items()})
        return
    if not found:
        stdout.print("No policies: nothing is protected.")
        return
    table(
        "Policies",
        ["scope", "protected", "gates", "approvals", "tolerance", "latency budget"],
        (
            [
                scope,
                ", ".join(p.protected_aliases) or "-",
                ", ".join(p.required_gates) or "-",
                f"{p.approvals} ({p.approver_role})",
                f"{p.metric_tolerance:g}",
                f"{p.latency_budget_ms:g} ms",
            ]
            for scope, p in found.items()
        ),
    )


def _print_policy(scope: str, policy: Policy, as_json: bool) -> None:
    if as_json:
        print_json({"scope": scope, "policy": policy.to_dict()})
        return
    where = {"*": "registry-wide", "default": "built-in default: nothing stored"}.get(scope, f"model {scope}")
    table(
        f"Policy ({where})",
        ["field", "value"],
        [
            ["protected aliases", ", ".join(policy.protected_aliases) or "none"],
            ["required gates", ", ".join(policy.required_gates) or "none"],
            ["approvals", f"{policy.approvals} from role {policy.approver_role}, never the requester"],
            ["metric tolerance", f"{policy.metric_tolerance:g}"],
            ["latency budget", f"{policy.latency_budget_ms:g} ms (p99)"],
        ],
    )
