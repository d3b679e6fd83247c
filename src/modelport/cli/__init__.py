"""Layer 5: the ``modelport`` command line — a thin Typer shell over :mod:`modelport.api`.

Heavy imports happen inside commands so ``modelport --help`` is instant. User mistakes end with
one line naming the problem, a hint, and a non-zero exit code; never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from modelport.cli import (
    batch,
    export,
    governance,
    jobs,
    models,
    monitor,
    policy,
    predict,
    quickstart,
    release,
    schedule,
    serve,
    users,
)
from modelport.cli._context import CliState, build_settings
from modelport.cli._render import fail, stdout
from modelport.core.errors import ModelportError

app = typer.Typer(
    name="modelport",
    help="Take a trained model to production: bundle, register, serve, batch-score, export, monitor.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(models.app, name="models")
app.command("predict")(predict.predict)
app.command("quickstart")(quickstart.quickstart)
app.command("serve")(serve.serve)
app.command("export")(export.export)
app.command("validate")(governance.validate)
app.command("promote")(governance.promote)
app.command("approve")(governance.approve)
app.command("reject")(governance.reject)
app.command("cancel")(governance.cancel)
app.command("override")(governance.override)
app.add_typer(governance.requests_app, name="requests")
app.command("audit")(governance.audit)
app.add_typer(release.app, name="release")
app.add_typer(users.app, name="users")
app.add_typer(policy.app, name="policy")
app.command("logs")(monitor.logs)
app.add_typer(monitor.app, name="monitor")
app.command("dashboard")(monitor.dashboard)
app.command("batch")(batch.batch)
app.add_typer(jobs.app, name="jobs")
app.add_typer(schedule.app, name="schedule")
app.command("scheduler")(schedule.scheduler)


def _version(value: bool) -> None:
    if value:
        from modelport import __version__

        stdout.print(f"modelport {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None, typer.Option("--home", envvar="MODELPORT_HOME", help="Registry, artifacts and logs folder.")
    ] = None,
    db_url: Annotated[
        str | None, typer.Option("--db-url", envvar="MODELPORT_DB_URL", help="Registry database URL.")
    ] = None,
    artifacts_url: Annotated[
        str | None,
        typer.Option("--artifacts-url", envvar="MODELPORT_ARTIFACTS_URL", help="Artifact store folder or fsspec URL."),
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", envvar="MODELPORT_USER", help="Actor name for the audit log.")
    ] = None,
    trusted_pickle: Annotated[
        bool | None,
        typer.Option(
            "--trusted-pickle/--no-trusted-pickle", envvar="MODELPORT_TRUSTED_PICKLE", help="Allow pickle artifacts."
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", envvar="MODELPORT_API_KEY", help="Your API key (who acts, for governance)."),
    ] = None,
    log_key: Annotated[
        str | None,
        typer.Option("--log-key", envvar="MODELPORT_LOG_KEY", help="Secret for HMAC redaction in the prediction log."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Global options: every setting has a flag here and a MODELPORT_* variable."""
    ctx.obj = CliState(settings=build_settings(home, db_url, artifacts_url, user, trusted_pickle, log_key, api_key))


def main() -> None:
    """Console-script entry point: run the app, translating modelport errors into exit codes."""
    try:
        app()
    except ModelportError as error:
        sys.exit(fail(error))
    except KeyboardInterrupt:
        sys.exit(130)
