"""``modelport validate | promote | approve | reject | cancel | override | requests | audit``: the governance commands.

Who acts comes from ``--api-key`` / ``MODELPORT_API_KEY`` (or, while the registry has no users,
the local user as an admin). The rules (roles, four eyes, gates) live in :mod:`modelport.governance`
and the registry; these commands only parse, call :mod:`modelport.api.governing` and print.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelport.cli._context import settings_of
from modelport.cli._render import print_json, stderr, stdout, table
from modelport.core.errors import ValidationError

if TYPE_CHECKING:
    from modelport.api.governing import AuditEntry
    from modelport.governance import PromotionResult
    from modelport.registry.promotions import PromotionRequest
    from modelport.registry.validations import ValidationReport

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why, for the audit log.")]
RequestArg = Annotated[int, typer.Argument(metavar="REQUEST", help="The promotion request id.")]

_STATUS_STYLE = {"passed": "green", "failed": "bold red", "skipped": "yellow", "not_applicable": "dim"}
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

requests_app = typer.Typer(help="Promotion requests waiting for approvals or gates.", invoke_without_command=True)


def validate(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version to validate: name:3, name@staging or name.")],
    holdout: Annotated[
        Path | None, typer.Option("--holdout", help="Labelled rows (.csv or .parquet) for the metrics gate.")
    ] = None,
    target: Annotated[str, typer.Option("--target", help="The label column of the holdout.")] = "target",
    against: Annotated[
        str, typer.Option("--against", help="The champion: an alias, a version number, or 'none'.")
    ] = "production",
    tolerance: Annotated[
        float | None, typer.Option("--tolerance", help="How much worse than the champion (default: the policy's).")
    ] = None,
    latency_budget_ms: Annotated[
        float | None, typer.Option("--latency-budget-ms", help="p99 budget of single-row predictions.")
    ] = None,
    acknowledge_breaking: Annotated[
        str | None, typer.Option("--acknowledge-breaking", help="A reason accepting breaking signature changes.")
    ] = None,
    trusted_code: Annotated[
        bool, typer.Option("--trusted-code", help="Run the checks.py shipped in the bundle (it executes code).")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Do not store the report.")] = False,
    reason: ReasonOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Run the validation gates and store the report; exit 1 when a gate fails."""
    from modelport.api import governing

    report = governing.validate(
        ref,
        holdout=holdout,
        target=target,
        against=against,
        tolerance=tolerance,
        latency_budget_ms=latency_budget_ms,
        acknowledge_breaking=acknowledge_breaking,
        trusted_code=trusted_code,
        store=not dry_run,
        reason=reason,
        settings=settings_of(ctx),
    )
    if as_json:
        print_json(report.to_dict())
    else:
        _print_report(report)
    if not report.passed:
        failed = ", ".join(g.name for g in report.gates if g.status == "failed")
        stderr.print(f"[bold red]validation failed:[/] {report.ref}: gate(s) {failed}.", highlight=False)
        raise typer.Exit(1)


def _print_report(report: ValidationReport) -> None:
    champion = f"{report.model}:{report.against_version}" if report.against_version is not None else "none"
    table(
        f"Validation of {report.ref} against {champion}",
        ["gate", "status", "message"],
        ([g.name, f"[{_STATUS_STYLE[g.status]}]{g.status}[/]", g.message] for g in report.gates),
    )
    stored = f"report {report.id}" if report.id is not None else "not stored (dry run)"
    verdict = "[green]passed[/]" if report.passed else "[bold red]failed[/]"
    stdout.print(f"{report.ref} {verdict} ({stored}).")


def promote(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model.")],
    version: Annotated[int, typer.Argument(help="The version to promote.")],
    to: Annotated[str, typer.Option("--to", help="The alias, e.g. staging or production.")],
    reason: ReasonOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Move ALIAS to VERSION when the policy allows; else open a promotion request and print its id."""
    from modelport.api import governing

    print_promotion(governing.promote(name, version, to=to, reason=reason, settings=settings_of(ctx)), as_json)


def approve(
    ctx: typer.Context,
    request_id: RequestArg,
    reason: ReasonOpt = None,
    override: Annotated[
        bool, typer.Option("--override", help="As an admin, also let it through failed gates (needs --reason).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Approve a promotion request (an approver other than the requester: four eyes)."""
    from modelport.api import governing

    result = governing.approve(request_id, reason=reason, override=override, settings=settings_of(ctx))
    print_promotion(result, as_json)


def reject(ctx: typer.Context, request_id: RequestArg, reason: ReasonOpt = None, as_json: JsonFlag = False) -> None:
    """Reject a promotion request (an approver other than the requester)."""
    from modelport.api import governing

    print_promotion(governing.reject(request_id, reason=reason, settings=settings_of(ctx)), as_json)


def cancel(ctx: typer.Context, request_id: RequestArg, reason: ReasonOpt = None, as_json: JsonFlag = False) -> None:
    """Withdraw a promotion request (its requester, or an admin)."""
    from modelport.api import governing

    print_promotion(governing.cancel(request_id, reason=reason, settings=settings_of(ctx)), as_json)


def override(
    ctx: typer.Context,
    request_id: RequestArg,
    reason: Annotated[str, typer.Option("--reason", help="Why passing the failed gates is safe (required).")],
    as_json: JsonFlag = False,
) -> None:
    """Let a promotion request through its failed gates (admins; approvals are still needed)."""
    from modelport.api import governing

    print_promotion(governing.override(request_id, reason=reason, settings=settings_of(ctx)), as_json)


def print_promotion(result: PromotionResult, as_json: bool) -> None:
    """Print what a promotion, approval, rejection or release promotion did (or its JSON)."""
    if as_json:
        print_json(result.to_dict())
        return
    request = result.request
    if result.moved:
        via = f" (request {request.id})" if request is not None else ""
        stdout.print(f"[bold]{result.name}@{result.alias}[/] → version {result.version}{via}.")
        return
    if request is None:  # pragma: no cover - a result that did not move always carries its request
        return
    if not request.pending:
        stdout.print(f"Promotion request {request.id} is {request.status}: {_move(request)}.")
        return
    stdout.print(f"Promotion request [bold]{request.id}[/] is {request.status}: {_move(request)}.")
    for blocker in result.blockers:
        stdout.print(f"  waiting for: {blocker}", highlight=False)


def _move(request: PromotionRequest) -> str:
    return f"{request.model}:{request.version} → {request.alias}"


@requests_app.callback()
def requests_root(ctx: typer.Context) -> None:
    """List pending promotion requests (same as `modelport requests list`)."""
    if ctx.invoked_subcommand is None:
        list_requests(ctx)


@requests_app.command("list")
def list_requests(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    include_closed: Annotated[bool, typer.Option("--all", help="Include applied, rejected and cancelled.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List promotion requests (pending ones unless --all)."""
    from modelport.api import governing

    found = governing.list_requests(name, include_closed=include_closed, settings=settings_of(ctx))
    if as_json:
        print_json([r.to_dict() for r in found])
        return
    if not found:
        stdout.print("No pending promotion requests." if not include_closed else "No promotion requests.")
        return
    table(
        "Promotion requests",
        ["id", "move", "status", "requested by", "approvals", "reason"],
        (
            [
                r.id,
                _move(r),
                r.status,
                f"{r.requested_by} {r.requested_at:%Y-%m-%d %H:%M}",
                f"{len(r.approvers)}/{r.approvals_required} ({r.approver_role})",
                r.reason,
            ]
            for r in found
        ),
    )


@requests_app.command("show")
def show_request(ctx: typer.Context, request_id: RequestArg, as_json: JsonFlag = False) -> None:
    """Show one request: its decisions and what still blocks it."""
    from modelport.api import governing

    result = governing.show_request(request_id, settings=settings_of(ctx))
    request = result.request
    if as_json or request is None:
        print_json(result.to_dict())
        return
    print_promotion(result, as_json=False)
    if not request.decisions:
        stdout.print("No decisions yet.")
        return
    table(
        f"Decisions on request {request.id}",
        ["time", "actor", "decision", "reason"],
        ([f"{d.at:%Y-%m-%d %H:%M:%S}", d.actor, d.decision, d.reason] for d in request.decisions),
    )


def parse_since(text: str) -> datetime:
    """``--since``: an ISO date or time (UTC unless it says), or a duration back from now like ``30m``, ``7d``.

    Raises:
        ValidationError: ``text`` is neither.
    """
    match = _DURATION.fullmatch(text.strip())
    if match:
        return datetime.now(UTC) - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(
            f"Invalid --since {text!r}.", hint="Give an ISO date or time (2025-01-31, 2025-01-31T12:00) or 30m/12h/7d."
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def audit(
    ctx: typer.Context,
    ref: Annotated[
        str | None, typer.Argument(help="Only this model, version or alias (name, name:3, name@alias).")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="From this time (ISO) or this long ago (7d).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The full trail: registrations, validations with gate reports, requests, approvals, promotions, releases."""
    from modelport.api import governing

    start = parse_since(since) if since is not None else None
    entries = governing.audit_trail(ref, since=start, settings=settings_of(ctx))
    if as_json:
        print_json([e.to_dict() for e in entries])
        return
    if not entries:
        stdout.print("No audit entries.")
        return
    table(
        "Audit trail",
        ["time", "actor", "action", "target", "reason", "details"],
        (_audit_row(e) for e in entries),
    )


def _audit_row(entry: AuditEntry) -> list[object]:
    record = entry.record
    return [f"{record.at:%Y-%m-%d %H:%M:%S}", record.actor, record.action, record.target, record.reason, _brief(entry)]


def _brief(entry: AuditEntry) -> str:
    """A short, human summary of an entry's details."""
    details: dict[str, Any] = entry.record.details
    if entry.report is not None:
        verdict = "passed" if entry.report.passed else "FAILED"
        return f"{verdict}: " + " ".join(f"{g.name}={g.status}" for g in entry.report.gates)
    parts = []
    if "request_id" in details:
        parts.append(f"request {details['request_id']}")
    if "old_version" in details or "new_version" in details:
        old, new = details.get("old_version"), details.get("new_version")
        parts.append(f"{'v' + str(old) if old is not None else '(unset)'} → v{new}")
    if details.get("canary_version") is not None:
        parts.append(f"canary v{details['canary_version']} at {details.get('canary_weight', 0):g}%")
    if details.get("shadow_version") is not None:
        parts.append(f"shadow v{details['shadow_version']}")
    if "approvals_required" in details:
        parts.append(f"approvals {details.get('approvals', 0)}/{details['approvals_required']}")
    if details.get("failed_gates"):
        parts.append("overrode: " + "; ".join(map(str, details["failed_gates"])))
    for key in ("role", "new_role", "key_id"):
        if key in details:
            parts.append(f"{key}={details[key]}")
    return ", ".join(parts)
