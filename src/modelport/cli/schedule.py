"""``modelport schedule add|list|remove|run-now`` and ``modelport scheduler``: batch jobs on a cron schedule.

``schedule add NAME --cron '0 6 * * *' -- <batch arguments>`` stores the job that
``modelport batch <batch arguments>`` would run (parsed by that very command); ``modelport
scheduler`` is the long-running process that runs schedules as they fall due, retries failed runs
with backoff and resumes a run it was stopped in. SIGINT or SIGTERM stops it after the run under
way; a second SIGINT stops at once (the run is resumed on the next start).
"""

from __future__ import annotations

import math
import signal
from dataclasses import asdict
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from modelport.cli._context import settings_of
from modelport.cli._render import print_json, stderr, stdout, table
from modelport.core.errors import BadRequest, ValidationError

if TYPE_CHECKING:
    from modelport.batch.schedule import ScheduleOutcome
    from modelport.registry.runs import ScheduleRecord

app = typer.Typer(help="Cron schedules for batch jobs (run by 'modelport scheduler').", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The schedule's name.")]


def parse_seconds(text: str) -> float:
    """``"60s"``, ``"5m"``, ``"1h"`` or a plain number of seconds, as seconds.

    Raises:
        ValidationError: Not a duration, or negative.
    """
    from modelport.monitoring.window import parse_duration

    try:
        value = float(text)
    except ValueError:
        return parse_duration(text).total_seconds()
    if not math.isfinite(value) or value < 0:
        raise ValidationError(f"Invalid duration {text!r}.", hint="Use e.g. 60s, 5m or 1h.")
    return value


def _local(moment: datetime | None, timezone: str) -> str:
    if moment is None:
        return "-"
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M %Z")


@app.command("add")
def add(
    ctx: typer.Context,
    name: NameArg,
    batch_args: Annotated[
        list[str] | None,
        typer.Argument(metavar="-- BATCH_ARGS...", help="After '--': the arguments of 'modelport batch'."),
    ] = None,
    cron: Annotated[
        str | None, typer.Option("--cron", help="Five cron fields, e.g. '0 6 * * *' (06:00 daily).")
    ] = None,
    timezone: Annotated[str, typer.Option("--timezone", help="IANA time zone the cron is read in.")] = "UTC",
    retries: Annotated[int, typer.Option("--retries", min=0, help="Retries of a failed run (with backoff).")] = 0,
    retry_delay: Annotated[
        str, typer.Option("--retry-delay", help="Delay before the first retry (60s, 5m); doubles each time.")
    ] = "60s",
    as_json: JsonFlag = False,
) -> None:
    """Schedule a batch job: modelport schedule add NAME --cron '0 6 * * *' -- REF --input SRC --output DST."""
    from modelport.api.scoring import open_scheduler
    from modelport.cli.batch import parse_batch_args

    if not cron:
        raise BadRequest("A schedule needs --cron.", hint="E.g. --cron '0 6 * * *' (06:00 every day).")
    if not batch_args:
        raise BadRequest(
            f"Schedule {name!r} has no job.",
            hint="Give the batch arguments after '--': ... -- REF --input SRC --output DST, then any batch options.",
        )
    spec = parse_batch_args(batch_args)
    if spec.options.resume is not None:
        raise BadRequest(
            "--resume does not apply to a schedule: each run starts fresh (failed runs are resumed by retries).",
            hint="Drop --resume from the batch arguments.",
        )
    delay_s = parse_seconds(retry_delay)
    with open_scheduler(settings_of(ctx)) as scheduler:
        record = scheduler.add(name, cron, spec, timezone=timezone, retries=retries, retry_delay_s=delay_s)
    if as_json:
        print_json(record.to_dict())
        return
    stdout.print(
        f"Added schedule [bold]{escape(record.name)}[/] ({escape(record.cron)}, {record.timezone}): "
        f"next run {_local(record.next_run_at, record.timezone)}. Runs start with: modelport scheduler",
        highlight=False,
    )


@app.command("list")
def list_schedules(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List schedules with their next and last runs."""
    from modelport.api.scoring import open_scheduler

    with open_scheduler(settings_of(ctx)) as scheduler:
        records = scheduler.schedules()
    if as_json:
        print_json([record.to_dict() for record in records])
        return
    if not records:
        stdout.print("No schedules. Add one: modelport schedule add NAME --cron '0 6 * * *' -- REF --input ...")
        return
    table(
        "Schedules",
        ["name", "cron", "next run", "model", "last run", "last status", "retries", "pending"],
        ([*_row(record)] for record in records),
    )


def _row(record: ScheduleRecord) -> list[Any]:
    pending = f"{record.pending_run_id} (attempt {record.attempt})" if record.pending_run_id else "-"
    return [
        record.name,
        f"{escape(record.cron)} {record.timezone}",
        _local(record.next_run_at, record.timezone),
        record.job.get("model", "?"),
        record.last_run_id or "-",
        record.last_status or "-",
        f"{record.retries}, first after {record.retry_delay_s:g}s" if record.retries else "0",
        pending,
    ]


@app.command("remove")
def remove(ctx: typer.Context, name: NameArg) -> None:
    """Delete a schedule (its past runs stay in 'modelport jobs list')."""
    from modelport.api.scoring import open_scheduler

    with open_scheduler(settings_of(ctx)) as scheduler:
        scheduler.remove(name)
    stdout.print(f"Removed schedule [bold]{escape(name)}[/].")


@app.command("run-now")
def run_now(ctx: typer.Context, name: NameArg, as_json: JsonFlag = False) -> None:
    """Run a schedule at once, in the foreground (a pending retry is resumed)."""
    from modelport.api.scoring import open_scheduler
    from modelport.cli.batch import ProgressBar

    settings = settings_of(ctx)
    if as_json:
        with open_scheduler(settings) as scheduler:
            outcome = scheduler.run_now(name)
        print_json(asdict(outcome))
    else:
        with ProgressBar() as bar, open_scheduler(settings, progress=bar) as scheduler:
            outcome = scheduler.run_now(name)
        _print_outcome(outcome)
    if outcome.status != "completed":
        raise typer.Exit(1)


def _print_outcome(outcome: ScheduleOutcome) -> None:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    attempt = f" (attempt {outcome.attempt})" if outcome.attempt > 1 else ""
    line = f"{when} {escape(outcome.schedule)}: {outcome.status} run {outcome.run_id or '-'}{attempt}"
    if outcome.next_run_at is not None:
        label = "retry at" if outcome.status == "retrying" else "next run"
        line += f"; {label} {outcome.next_run_at:%Y-%m-%d %H:%M:%S} UTC"
    if outcome.status in ("completed", "skipped"):
        stdout.print(line + (f" ({escape(outcome.error)})" if outcome.error else ""), highlight=False)
        return
    stderr.print(f"[bold red]{line}[/]", highlight=False)
    if outcome.error:
        stderr.print(f"[bold red]error:[/] {escape(outcome.error)}", highlight=False)
    if outcome.run_id:
        stderr.print(f"[yellow]hint:[/] modelport jobs show {outcome.run_id}", highlight=False)


class _Stop:
    """Set by SIGINT/SIGTERM (a plain flag: a signal handler must not take locks)."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True


def scheduler(
    ctx: typer.Context,
    poll: Annotated[str, typer.Option("--poll", help="Longest sleep between two looks at the schedules.")] = "30s",
) -> None:
    """Run schedules as they fall due, until Ctrl-C or SIGTERM (the run under way finishes first)."""
    from modelport.api.scoring import run_scheduler

    poll_s = parse_seconds(poll)
    if poll_s <= 0:
        raise ValidationError(f"--poll must be positive (got {poll!r}).", hint="E.g. --poll 30s.")
    stop = _Stop()
    previous = {sig: signal.signal(sig, stop.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stdout.print("Scheduler running; Ctrl-C or SIGTERM stops it after the run under way.", highlight=False)
        run_scheduler(stop=stop, settings=settings_of(ctx), on_outcome=_print_outcome, poll_s=poll_s)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    stdout.print("Scheduler stopped.", highlight=False)
