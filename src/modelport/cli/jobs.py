"""``modelport jobs list|show``: batch runs as recorded in the registry database."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from modelport.cli._context import settings_of
from modelport.cli._render import print_json, stdout, table

if TYPE_CHECKING:
    from modelport.registry.runs import RunRecord

app = typer.Typer(help="Batch runs: status, model version, rows, errors.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _model(run: RunRecord) -> str:
    if run.model_name is None:
        return run.model_ref
    version = f":{run.model_version}" if run.model_version is not None else ""
    return f"{run.model_name}{version}"


def _when(run: RunRecord) -> str:
    return f"{run.started_at:%Y-%m-%d %H:%M:%S}"


def _duration(run: RunRecord) -> str:
    if run.ended_at is None:
        return "-"
    return f"{(run.ended_at - run.started_at).total_seconds():.1f} s"


@app.command("list")
def list_jobs(
    ctx: typer.Context,
    schedule: Annotated[str | None, typer.Option("--schedule", help="Only runs of this schedule.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="running, completed or failed.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Most runs shown (newest first).")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """List batch runs, newest first."""
    from modelport.api.scoring import list_runs
    from modelport.core.errors import ValidationError
    from modelport.registry.runs import RUN_STATUSES

    if status is not None and status not in RUN_STATUSES:
        raise ValidationError(f"Unknown run status {status!r}.", hint=f"Use one of: {', '.join(RUN_STATUSES)}.")
    runs = list_runs(settings=settings_of(ctx), schedule=schedule, status=status, limit=limit)
    if as_json:
        print_json([run.to_dict() for run in runs])
        return
    if not runs:
        stdout.print("No batch runs yet. Try: modelport batch REF --input data.csv --output scores.parquet")
        return
    from rich.table import Table

    out = Table(title="Batch runs", header_style="bold cyan")
    out.add_column("run", no_wrap=True)  # whole, to copy into 'jobs show' or '--resume'
    for column in ("status", "model", "rows read / written / rejected"):
        out.add_column(column)
    out.add_column("started (UTC)", no_wrap=True)
    out.add_column("took")
    out.add_column("schedule")
    for run in runs:
        out.add_row(
            run.run_id,
            run.status,
            escape(_model(run)),
            f"{run.rows_read:,} / {run.rows_written:,} / {run.rows_rejected:,}",
            _when(run),
            _duration(run),
            escape(run.schedule or "-"),
        )
    stdout.print(out)


@app.command("show")
def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run id (from 'modelport jobs list').")],
    as_json: JsonFlag = False,
) -> None:
    """Show one batch run: model, input, output, options, rows, error."""
    from modelport.api.scoring import get_run

    run = get_run(run_id, settings=settings_of(ctx))
    if as_json:
        print_json(run.to_dict())
        return
    rows: list[list[Any]] = [
        ["status", run.status],
        ["model", f"{_model(run)} (asked for {run.model_ref})"],
        ["input", escape(run.source)],
        ["output", escape(run.destination)],
        ["rejects", escape(run.rejects or "-")],
        ["rows read / written / rejected", f"{run.rows_read:,} / {run.rows_written:,} / {run.rows_rejected:,}"],
        ["chunks", run.chunks],
        ["attempts", run.attempts],
        ["started (UTC)", _when(run)],
        ["ended (UTC)", f"{run.ended_at:%Y-%m-%d %H:%M:%S}" if run.ended_at else "-"],
        ["took", _duration(run)],
        ["schedule", run.schedule or "-"],
        ["options", escape(", ".join(f"{k}={v}" for k, v in sorted(run.options.items())))],
    ]
    if run.error:
        rows.append(["error", escape(f"{run.error_type}: {run.error}" if run.error_type else run.error)])
    table(f"Batch run {run.run_id}", ["", "value"], rows)
    if run.status != "completed":
        stdout.print(
            f"Resume it with the same input and output: modelport batch {run.model_ref} ... --resume {run.run_id}",
            highlight=False,
        )
