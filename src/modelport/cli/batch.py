"""``modelport batch REF --input SRC --output DST``: score a file, a table or a query, exactly once per row.

The command's options are the one definition of a batch job on the command line:
``modelport schedule add NAME --cron ... -- <batch arguments>`` parses its trailing arguments with
this same command (:func:`parse_batch_args`), and both build the job with :func:`build_spec`. A
Rich progress bar (rows, rows/s, ETA) follows the run on stderr; a summary table ends it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelport.cli._context import settings_of
from modelport.cli._render import print_json, stderr, stdout, table

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from modelport.batch.job import JobResult
    from modelport.batch.progress import ProgressEvent
    from modelport.batch.spec import JobSpec


def build_spec(ref: str, input_src: str, output: str, **flags: Any) -> JobSpec:
    """The job the batch options describe: ``flags`` are the ``modelport batch`` options by parameter name.

    Unset options (``None``, or ``False`` for ``proba``) keep the defaults of ``JobSpec.build`` and ``JobOptions``.
    """
    from modelport.batch.spec import JobSpec

    given = {name: value for name, value in flags.items() if value is not None and value is not False}
    return JobSpec.build(ref, input_src, output, **given)


def batch(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name, name:3, name@alias or a bundle path (resolved at start).")],
    input_src: Annotated[
        str, typer.Option("--input", "-i", help="CSV/Parquet/JSON Lines file, folder or glob, or a database URL.")
    ],
    output: Annotated[
        str, typer.Option("--output", "-o", help="A .csv/.parquet file, a folder, or a database URL (with --table).")
    ],
    input_table: Annotated[
        str | None, typer.Option("--input-table", help="Table to read, for a database input.")
    ] = None,
    query: Annotated[str | None, typer.Option("--query", help="SELECT to read, for a database input.")] = None,
    input_format: Annotated[
        str | None, typer.Option("--input-format", help="csv, parquet or jsonl when the file names do not tell.")
    ] = None,
    table: Annotated[str | None, typer.Option("--table", help="Table to write, for a database output.")] = None,
    output_format: Annotated[
        str | None, typer.Option("--output-format", help="csv or parquet, for a folder output (default parquet).")
    ] = None,
    rejects: Annotated[
        str | None,
        typer.Option("--rejects", "--rejects-table", help="Where rejected rows go: a table, or a CSV path for files."),
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="Key column(s), comma-separated: copied out, primary key for upsert.")
    ] = None,
    include: Annotated[
        str | None, typer.Option("--include", help="Other input columns copied to the output, comma-separated.")
    ] = None,
    mode: Annotated[
        str | None, typer.Option("--mode", help="append | replace | upsert (default: append for tables, else replace).")
    ] = None,
    chunk_size: Annotated[
        int | None, typer.Option("--chunk-size", help="Rows per committed chunk (default 50000).")
    ] = None,
    proba: Annotated[bool, typer.Option("--proba", help="Also write class probabilities (proba_<class>).")] = False,
    max_errors: Annotated[
        int | None, typer.Option("--max-errors", help="Rejected rows tolerated before the run fails (default 0).")
    ] = None,
    resume: Annotated[
        str | None, typer.Option("--resume", metavar="RUN_ID", help="Continue a stopped run from its last chunk.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Chunks scored at once, in threads (default: up to 4).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run's result as JSON for scripts.")] = False,
) -> None:
    """Batch-score a file, folder, table or query into files or a database table."""
    from modelport.api.scoring import score_job

    # The options above reach build_spec through ctx.params (by parameter name), as in parse_batch_args.
    spec = build_spec(**{name: value for name, value in ctx.params.items() if name != "as_json"})
    settings = settings_of(ctx)
    if as_json:
        print_json(score_job(spec, settings=settings).to_dict())
        return
    with ProgressBar() as bar:
        result = score_job(spec, settings=settings, progress=bar)
    summarize(result)


_batch_app = typer.Typer()
_batch_app.command("batch")(batch)


def parse_batch_args(args: Sequence[str]) -> JobSpec:
    """The job that ``modelport batch <args>`` would run, parsed by the batch command itself.

    Raises:
        BadRequest: The arguments are not valid batch arguments (the message says why).
    """
    from modelport.core.errors import BadRequest

    command = typer.main.get_command(_batch_app)
    try:
        with command.make_context("modelport batch", list(args)) as context:
            params: dict[str, Any] = dict(context.params)
    except typer.TyperException as exc:
        raise BadRequest(
            f"Invalid batch arguments {' '.join(args)!r}: {exc.format_message()}",
            hint="After '--', give what 'modelport batch' takes: REF --input SRC --output DST, then any batch options.",
        ) from None
    params.pop("as_json", None)
    return build_spec(**params)


class ProgressBar:
    """A Rich progress bar on stderr fed by the job's progress events (rows, rows/s, ETA)."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> ProgressBar:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[rows]}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("ETA {task.fields[eta]}"),
            TimeElapsedColumn(),
            console=stderr,
        )
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, event: ProgressEvent) -> None:
        """Show ``event``."""
        if self._progress is None:
            return
        if self._task is None:  # added on the first event: a run refused at start shows no bar
            self._task = self._progress.add_task("scoring", total=None, rows="", rate="", eta="-")
        total = f" / {event.total_rows:,}" if event.total_rows is not None else ""
        eta = event.eta_s
        self._progress.update(
            self._task,
            description=f"run {event.run_id[:8]}" + (f" {event.status}" if event.status else ""),
            completed=event.rows_read,
            total=event.total_rows if event.total_rows is not None else (event.rows_read if event.status else None),
            rows=f"{event.rows_read:,}{total} rows",
            rate=f"{event.rows_per_s:,.0f} rows/s",
            eta=f"{eta:,.0f}s" if eta is not None else "-",
        )


def summarize(result: JobResult) -> None:
    """The summary table of a completed run."""
    from rich.markup import escape

    version = f":{result.version}" if result.version is not None else " (bundle)"
    rows: list[list[Any]] = [
        ["run", result.run_id],
        ["model", f"{result.model}{version}"],
        ["input", escape(result.source)],
        ["output", escape(result.destination)],
        ["rows read", f"{result.rows_read:,}"],
        ["rows written", f"{result.rows_written:,}"],
        ["rows rejected", f"{result.rows_rejected:,}"],
        ["chunks", f"{result.chunks:,}"],
        ["time", f"{result.elapsed_s:.2f} s ({result.rows_per_s:,.0f} rows/s)"],
    ]
    if result.resumed_from_chunk:
        rows.append(["resumed from chunk", result.resumed_from_chunk])
    if result.rejects:
        rows.append(["rejects", escape(result.rejects)])
    table(f"Batch run {result.status}", ["", "value"], rows)
    stdout.print(f"Details: modelport jobs show {result.run_id}", highlight=False)
