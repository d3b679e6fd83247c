"""Local prediction on a file, no server: ``modelport predict REF --input FILE``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from modelport.registry.registry import Registry
from modelport.runtime.predictor import Predictor

from .models import load_model
from .tables import read_table, write_table


def prediction_frame(predictor: Predictor, data: pd.DataFrame, *, proba: bool = False) -> pd.DataFrame:
    """The predictions for ``data`` as a frame: ``prediction`` plus ``proba_<class>`` columns on request."""
    out = pd.DataFrame({"prediction": predictor.predict(data)})
    if proba and predictor.classes is not None:
        probabilities = predictor.predict_proba(data)
        for i, label in enumerate(predictor.classes):
            out[f"proba_{label}"] = probabilities[:, i]
    return out


def predict_file(
    ref: str,
    input_path: Path,
    output_path: Path | None = None,
    *,
    proba: bool = False,
    registry: Registry | None = None,
) -> pd.DataFrame:
    """Score a CSV/Parquet/JSON Lines file with ``ref``; write the predictions when ``output_path`` is given."""
    predictor = load_model(ref, registry=registry)
    result = prediction_frame(predictor, read_table(input_path), proba=proba)
    if output_path is not None:
        write_table(result, output_path)
    return result
