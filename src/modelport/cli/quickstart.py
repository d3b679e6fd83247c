"""``modelport quickstart``: the whole journey on embedded defaults, narrated."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import typer

from modelport.cli._context import settings_of
from modelport.cli._render import stdout


def _dashboard_url() -> str:
    return "http://127.0.0.1:8080/dashboard/"


def quickstart(ctx: typer.Context) -> None:
    """Train a sample model, bundle, register, promote to production and predict."""
    from modelport.api.quickstart import run_quickstart

    settings = settings_of(ctx)
    stdout.rule("[bold]modelport quickstart")
    result = run_quickstart(
        settings, step=lambda title, detail: stdout.print(f"[green]✓[/] [bold]{title}[/]: {detail}")
    )
    csv = result.files["input_csv"]
    stdout.rule("What to try next")
    if shutil.which("modelport") is None:
        stdout.print(f"  (first: . {Path(sys.prefix) / 'bin' / 'activate'})", highlight=False)
    stdout.print(
        "\n".join(
            [
                "  modelport models list",
                f"  modelport models show {result.name}@production",
                f"  modelport predict {result.name}@production --input {csv}",
                f"  modelport batch {result.name}@production --input {csv} --output scores.csv --proba",
                "  modelport jobs list                              # batch runs, rows, status",
                f"  modelport monitor drift {result.name}          # flags the shifted feature (exit 1)",
                f"  modelport monitor metrics {result.name}        # live accuracy from the feedback",
                f"  modelport export {result.name}@production --quantize int8   # ONNX for edge devices",
                f"  modelport serve                                  # then open {_dashboard_url()}",
                "  modelport dashboard                              # the dashboard alone",
                f"  modelport audit {result.name}",
            ]
        ),
        highlight=False,
    )
