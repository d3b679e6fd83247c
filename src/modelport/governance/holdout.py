"""Holdout data for validation: a DataFrame, or a CSV / Parquet file, split into features and target."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from modelport.core.errors import NotFound, Unsupported, ValidationError

MAX_HOLDOUT_ROWS = 1_000_000


@dataclass(frozen=True)
class Holdout:
    """Labelled rows the champion and the challenger are both scored on.

    Attributes:
        frame: Every column as read, target included (what user checks receive).
        target: The name of the target column.
        source: Where it came from, for reports (a path, or ``"DataFrame"``).
    """

    frame: pd.DataFrame = field(repr=False)
    target: str
    source: str

    @property
    def features(self) -> pd.DataFrame:
        """The rows without the target column."""
        return self.frame.drop(columns=[self.target])

    @property
    def labels(self) -> np.ndarray:
        """The target column as a NumPy array (strings as Python objects)."""
        column = self.frame[self.target]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            return column.to_numpy()
        return column.to_numpy(dtype=object)


def load_holdout(data: pd.DataFrame | str | Path, target: str = "target") -> Holdout:
    """Read holdout rows from a DataFrame or a ``.csv`` / ``.parquet`` file.

    Raises:
        NotFound: The file does not exist.
        Unsupported: The file is neither CSV nor Parquet.
        ValidationError: There is no ``target`` column, no row, too many rows, or a missing target value.
    """
    if isinstance(data, pd.DataFrame):
        frame, source = data, "DataFrame"
    else:
        frame, source = _read(Path(data)), str(data)
    if target not in frame.columns:
        raise ValidationError(
            f"Holdout {source} has no target column {target!r} (columns: {', '.join(map(str, frame.columns[:10]))}).",
            hint="Name the label column with --target COLUMN.",
        )
    if frame.empty or len(frame) > MAX_HOLDOUT_ROWS:
        raise ValidationError(
            f"Holdout {source} has {len(frame)} rows.", hint=f"Give between 1 and {MAX_HOLDOUT_ROWS:,} labelled rows."
        )
    missing = frame[target].isna()
    if missing.any():
        raise ValidationError(
            f"Holdout {source}: target {target!r} is missing in row {int(np.argmax(missing.to_numpy()))}.",
            hint="Drop unlabelled rows from the holdout.",
        )
    return Holdout(frame=frame.reset_index(drop=True), target=target, source=source)


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise NotFound(f"Holdout file {path} does not exist.", hint="Check the --holdout path.")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    raise Unsupported(f"Holdout file {path} is neither CSV nor Parquet.", hint="Save it as .csv or .parquet.")
