"""Small local table files for ``modelport predict``: CSV, Parquet and JSON Lines, by extension."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from modelport.core.errors import NotFound, Unsupported, ValidationError

_FORMATS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


def table_format(path: Path) -> str:
    """``csv``, ``parquet`` or ``jsonl`` from the file extension, else :class:`Unsupported`."""
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise Unsupported(
            f"Unsupported file type {path.suffix or '(none)'!r} for {path}.",
            hint="Use .csv, .parquet or .jsonl (JSON Lines).",
        )
    return fmt


def read_table(path: Path) -> pd.DataFrame:
    """Read a whole CSV, Parquet or JSON Lines file into a DataFrame."""
    fmt = table_format(path)
    if not path.is_file():
        raise NotFound(f"Input file {path} does not exist.", hint="Check the path.")
    try:
        if fmt == "csv":
            return pd.read_csv(path)
        if fmt == "parquet":
            return pd.read_parquet(path)
        return pd.read_json(path, lines=True)
    except (ValueError, OSError) as exc:
        raise ValidationError(
            f"Cannot read {path} as {fmt}: {exc}", hint=f"Check that the file is valid {fmt}."
        ) from exc


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` in the format its extension names (atomically)."""
    fmt = table_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "csv":
        frame.to_csv(tmp, index=False)
    elif fmt == "parquet":
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_json(tmp, orient="records", lines=True)
    tmp.replace(path)
