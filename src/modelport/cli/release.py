"""``modelport release start | shadow | status | promote | rollback | stop``: canary and shadow releases.

A release splits the traffic of ``NAME@production`` in every running server, which picks the
change up from the registry without a restart. ``status`` compares primary and candidate side by
side from what the servers reported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from modelport.cli._context import settings_of
from modelport.cli._render import print_json, stdout, table
from modelport.cli.governance import print_promotion

if TYPE_CHECKING:
    from modelport.governance import ReleaseStatus, VersionTraffic
    from modelport.registry.releases import ReleaseConfig

app = typer.Typer(help="Canary and shadow releases: start, watch, promote or roll back.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why, for the audit log.")]
NameArg = Annotated[str, typer.Argument(help="The model.")]
AliasOpt = Annotated[str, typer.Option("--alias", help="The alias whose traffic is split.")]


@app.command("start")
def start(
    ctx: typer.Context,
    name: NameArg,
    canary: Annotated[int, typer.Option("--canary", help="The candidate version.")],
    weight: Annotated[float, typer.Option("--weight", help="Percent of requests the canary answers.")] = 10.0,
    sticky_header: Annotated[
        str | None, typer.Option("--sticky-header", help="Pin each caller to one version by this header (A/B).")
    ] = None,
    shadow: Annotated[int | None, typer.Option("--shadow", help="Also feed this version copies of requests.")] = None,
    alias: AliasOpt = "production",
    window_s: Annotated[
        float | None, typer.Option("--rollback-window-s", help="Automatic rollback: seconds compared.")
    ] = None,
    min_requests: Annotated[
        int | None, typer.Option("--rollback-min-requests", help="Automatic rollback: canary requests needed first.")
    ] = None,
    max_error_rate_increase: Annotated[
        float | None,
        typer.Option("--rollback-error-increase", help="Automatic rollback: error rate above the primary's (0-1)."),
    ] = None,
    max_p99_ratio: Annotated[
        float | None, typer.Option("--rollback-p99-ratio", help="Automatic rollback: p99 over the primary's, times.")
    ] = None,
    reason: ReasonOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Send WEIGHT percent of NAME@ALIAS's traffic to the canary version."""
    from modelport.api import governing

    given = {
        "window_s": window_s,
        "min_requests": min_requests,
        "max_error_rate_increase": max_error_rate_increase,
        "max_p99_ratio": max_p99_ratio,
    }
    release = governing.start_release(
        name,
        canary=canary,
        weight=weight,
        sticky_header=sticky_header,
        shadow=shadow,
        alias=alias,
        rollback={k: v for k, v in given.items() if v is not None},
        reason=reason,
        settings=settings_of(ctx),
    )
    _print_config(release, as_json, "started")


@app.command("shadow")
def shadow(
    ctx: typer.Context,
    name: NameArg,
    version: Annotated[int, typer.Argument(help="The version fed copies of requests.")],
    alias: AliasOpt = "production",
    reason: ReasonOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Feed VERSION a copy of each request after the primary answered (logged and compared, never returned)."""
    from modelport.api import governing

    release = governing.shadow_release(name, version, alias=alias, reason=reason, settings=settings_of(ctx))
    _print_config(release, as_json, "shadowing")


@app.command("status")
def status(ctx: typer.Context, name: NameArg, as_json: JsonFlag = False) -> None:
    """Primary and candidate side by side: traffic, errors, latency, agreement, live accuracy."""
    from modelport.api import governing

    current = governing.release_status(name, settings=settings_of(ctx))
    if as_json:
        print_json(current.to_dict())
        return
    _print_status(current)


@app.command("promote")
def promote(ctx: typer.Context, name: NameArg, reason: ReasonOpt = None, as_json: JsonFlag = False) -> None:
    """Promote the candidate to the alias (through approvals and gates when the alias is protected)."""
    from modelport.api import governing

    print_promotion(governing.promote_release(name, reason=reason, settings=settings_of(ctx)), as_json)


@app.command("rollback")
def rollback(ctx: typer.Context, name: NameArg, reason: ReasonOpt = None, as_json: JsonFlag = False) -> None:
    """Stop routing to the candidate now: the primary answers everything again."""
    from modelport.api import governing

    _print_config(governing.rollback_release(name, reason=reason, settings=settings_of(ctx)), as_json, "rolled back")


@app.command("stop")
def stop(ctx: typer.Context, name: NameArg, reason: ReasonOpt = None, as_json: JsonFlag = False) -> None:
    """End the release without a verdict."""
    from modelport.api import governing

    _print_config(governing.stop_release(name, reason=reason, settings=settings_of(ctx)), as_json, "stopped")


def _print_config(release: ReleaseConfig, as_json: bool, what: str) -> None:
    if as_json:
        print_json(release.to_dict())
        return
    parts = [f"primary v{release.primary_version}"]
    if release.canary_version is not None:
        parts.append(f"canary v{release.canary_version} at {release.canary_weight:g}%")
    if release.sticky_header:
        parts.append(f"sticky by {release.sticky_header}")
    if release.shadow_version is not None:
        parts.append(f"shadow v{release.shadow_version}")
    stdout.print(f"Release {release.id} of {release.model}@{release.alias} {what}: {', '.join(parts)}.")


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _print_status(current: ReleaseStatus) -> None:
    release = current.release
    routes = [("primary", release.primary_version), ("canary", release.canary_version)]
    routes.append(("shadow", release.shadow_version))
    seen = {(row.route, row.version): row for row in current.traffic}
    columns = [(route, version) for route, version in routes if version is not None]
    columns += [key for key in seen if key not in columns]  # e.g. a canary that was replaced mid-release
    rows: list[tuple[str, Callable[[VersionTraffic], str]]] = [
        ("share of traffic", lambda r: _fmt(r.share, ".1%")),
        ("requests", lambda r: str(r.requests)),
        ("errors", lambda r: str(r.errors)),
        ("error rate", lambda r: _fmt(r.error_rate, ".2%")),
        ("p50 latency", lambda r: _fmt(r.p50_ms, ".1f", " ms")),
        ("p99 latency", lambda r: _fmt(r.p99_ms, ".1f", " ms")),
        ("agreement with primary", lambda r: _fmt(r.agreement, ".1%")),
        ("live accuracy", lambda r: _fmt(r.accuracy, ".1%")),
    ]
    header = f"Release {release.id} of {release.model}@{release.alias}: {release.state}"
    if release.canary_version is not None:
        header += f", canary weight {release.canary_weight:g}%"
    if release.sticky_header:
        header += f", sticky by {release.sticky_header}"
    table(
        header,
        ["", *(f"{route} v{version}" for route, version in columns)],
        ([label, *(show(seen[key]) if key in seen else "-" for key in columns)] for label, show in rows),
    )
    if not current.traffic:
        stdout.print("No traffic reported yet: running servers report what they route every few seconds.")
    started = f"{release.started_at:%Y-%m-%d %H:%M}" if release.started_at else "?"
    line = f"Started {started} by {release.started_by}."
    if not release.active:
        ended = f"{release.ended_at:%Y-%m-%d %H:%M}" if release.ended_at else "?"
        line += f" Ended ({release.state}) {ended} by {release.ended_by}: {release.end_reason or 'no reason given'}."
    stdout.print(line, highlight=False)
