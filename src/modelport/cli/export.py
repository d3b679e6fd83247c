"""``modelport export REF``: a compact, parity-checked ONNX model for edge devices."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelport.cli._context import settings_of
from modelport.cli._render import print_json, stdout, table


def export(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name, name:3, name@alias or a bundle path")],
    fmt: Annotated[str, typer.Option("--format", help="Export format.")] = "onnx",
    quantize: Annotated[str | None, typer.Option("--quantize", help="int8 or fp16.")] = None,
    opset: Annotated[int | None, typer.Option("--opset", help="ONNX opset.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Export folder (default under MODELPORT_HOME).")] = None,
    check_data: Annotated[Path | None, typer.Option("--check-data", help="More rows for the parity check.")] = None,
    register: Annotated[
        bool, typer.Option("--register/--no-register", help="Register the export as a new version.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Export to ONNX (optionally quantized), check parity, write a standalone predict.py."""
    from modelport.api.exporting import export as run_export
    from modelport.edge.parity import ParityError

    try:
        result = run_export(
            ref,
            format=fmt,
            quantize=quantize,
            opset=opset,
            out_dir=out,
            check_data=check_data,
            register=register,
            settings=settings_of(ctx),
        )
    except ParityError as error:
        if as_json:
            print_json(error.to_dict())
        else:
            for parity in error.reports:
                _render_parity(parity.to_dict())
        raise
    if as_json:
        print_json(result.to_dict())
        return
    report = result.report
    table(f"Export of {ref}", ["measure", "before", "after", "change"], report.rows())
    if report.quantization_note:
        stdout.print(f"[yellow]quantization:[/] {report.quantization_note}", highlight=False)
    stdout.print(f"Wrote {report.out_dir} and {report.archive}", highlight=False)
    stdout.print(f"Standalone: python {report.out_dir / 'artifacts' / 'predict.py'} rows.csv", highlight=False)
    if result.registered is not None:
        stdout.print(f"Registered as [bold]{result.registered.name}:{result.registered.version}[/] (flavor onnx)")


def _render_parity(parity: dict[str, object]) -> None:
    stdout.print(f"[red]parity failed[/] ({parity.get('dataset')}): {parity.get('failures')}", highlight=False)
    worst = parity.get("worst") or []
    if isinstance(worst, list) and worst and isinstance(worst[0], dict):
        columns = list(worst[0].keys())
        table(
            f"Parity failed on {parity.get('dataset', 'data')}: worst rows",
            columns,
            ([r[c] for c in columns] for r in worst),
        )
