"""Output for people (Rich tables) and scripts (``--json``), and the one error handler of the CLI."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from modelport.core.errors import ModelportError
from modelport.core.redact import redact_url

stdout = Console()
stderr = Console(stderr=True)


def print_json(data: Any) -> None:
    """Write ``data`` as JSON on stdout (datetimes as ISO 8601, numpy scalars as numbers)."""
    sys.stdout.write(
        orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY, default=_default).decode()
    )
    sys.stdout.write("\n")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return str(value)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Render a Rich table on stdout."""
    out = Table(title=title, header_style="bold cyan")
    for column in columns:
        out.add_column(column)
    for row in rows:
        out.add_row(*("" if cell is None else str(cell) for cell in row))
    stdout.print(out)


def fail(error: ModelportError) -> int:
    """Print ``error`` as one line plus its hint on stderr and return its exit code."""
    stderr.print(f"[bold red]error:[/] {redact_url(error.message)}", highlight=False)
    if error.hint:
        stderr.print(f"[yellow]hint:[/] {error.hint}", highlight=False)
    return error.exit_code
