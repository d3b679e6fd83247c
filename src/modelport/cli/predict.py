"""``modelport predict REF --input FILE``: score a local file, no server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelport.cli._context import settings_of
from modelport.cli._render import stdout


def predict(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name, name:3, name@alias or a bundle path")],
    input_path: Annotated[Path, typer.Option("--input", "-i", help="CSV, Parquet or JSON Lines file.")],
    output_path: Annotated[Path | None, typer.Option("--output", "-o", help="Write predictions here.")] = None,
    proba: Annotated[bool, typer.Option("--proba", help="Add class probabilities.")] = False,
) -> None:
    """Predict on a file with a registered model or a bundle."""
    from modelport.api import open_registry
    from modelport.api.predicting import predict_file
    from modelport.core.refs import ModelRef

    registry = None if ModelRef.parse(ref).is_path else open_registry(settings_of(ctx))
    result = predict_file(ref, input_path, output_path, proba=proba, registry=registry)
    if output_path is not None:
        stdout.print(f"Wrote {len(result)} predictions to {output_path}")
        return
    stdout.print(result.to_csv(index=False), end="", highlight=False, markup=False)
