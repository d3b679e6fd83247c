"""Edge benchmark: native model vs ONNX float vs quantized, for four models, in one run.

Models (each saved as a bundle, then exported with ``modelport.edge.export_onnx``):

* ``logreg``: StandardScaler + LogisticRegression on load_breast_cancer (30 features);
* ``forest``: RandomForestClassifier(100 trees, max_depth 12) on make_classification(20000, 20, random_state 0);
* ``sk-mlp``: StandardScaler + MLPClassifier(256, 256) on make_classification(5000, 20);
* ``torch-mlp``: a PyTorch MLP 20 → 256 → 256 → 2 trained briefly on the same data.

For each: file size, single-row latency (median and p99) and 1,024-row batch throughput of the
native model (the bundle's adapter ``predict``), the float ONNX export and the int8 export (ONNX
Runtime ``run`` on a prepared feed, one intra-op thread), with ratios against native, and the
int8 label agreement on the reference sample. Tree ensembles and linear-classifier ops are not
quantized; the table says so. Targets: the forest's ONNX single-row latency ≤ 1/20 of
scikit-learn's; the int8 MLP ≤ 30% of the float ONNX size with ≥ 99% label agreement.

Run: ``python benchmarks/edge.py [--workdir DIR] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelport.bundle.io import load_bundle, save_bundle
from modelport.edge.export import export_onnx

FEATURES = [f"f{i:02d}" for i in range(20)]


def logreg() -> tuple[Any, pd.DataFrame]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns="target")
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(frame, data.target)
    return model, frame


def forest() -> tuple[Any, pd.DataFrame]:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    x, y = make_classification(20_000, 20, random_state=0)
    frame = pd.DataFrame(x, columns=FEATURES)
    model = RandomForestClassifier(n_estimators=100, max_depth=12, random_state=0, n_jobs=-1).fit(frame, y)
    return model.set_params(n_jobs=None), frame  # predict as people do: one process, no joblib pool per call


def sk_mlp() -> tuple[Any, pd.DataFrame]:
    from sklearn.datasets import make_classification
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = make_classification(5_000, 20, n_informative=12, random_state=1)
    frame = pd.DataFrame(x, columns=FEATURES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a few epochs are enough for a benchmark
        model = make_pipeline(StandardScaler(), MLPClassifier((256, 256), max_iter=30, random_state=0)).fit(frame, y)
    return model, frame


def torch_mlp() -> tuple[Any, np.ndarray]:
    import torch
    from sklearn.datasets import make_classification

    x, y = make_classification(5_000, 20, n_informative=12, random_state=1)
    inputs = torch.from_numpy(x.astype(np.float32))
    targets = torch.from_numpy(y)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(20, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 2)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(200):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()
    return model.eval(), x.astype(np.float32)


MODELS: dict[str, Callable[[], tuple[Any, Any]]] = {
    "logreg": logreg,
    "forest": forest,
    "sk-mlp": sk_mlp,
    "torch-mlp": torch_mlp,
}


def run(workdir: Path) -> list[dict[str, Any]]:
    """Bundle, export (float and int8) and time every model; return one record per model."""
    records = []
    for name, build in MODELS.items():
        print(f"[{name}] training and exporting ...", file=sys.stderr, flush=True)
        model, data = build()
        bundle_dir = workdir / name / "bundle"
        save_bundle(model, bundle_dir, name=name, sample_input=data)
        bundle = load_bundle(bundle_dir)
        float_report = export_onnx(bundle, out_dir=workdir / name / "onnx")
        int8_report = export_onnx(bundle, out_dir=workdir / name / "onnx-int8", quantize="int8")
        records.append({"model": name, "float": float_report.to_dict(), "int8": int8_report.to_dict()})
    return records


def _row(name: str, variant: str, report: dict[str, Any], side: str, native: dict[str, Any]) -> list[str]:
    size = report["size"]["before_bytes"] if side == "before" else report["size"]["after_bytes"]
    latency = report["latency_us"][side]
    throughput = report["throughput_rows_s"][side]
    base_latency = native["latency_us"]["before"]["median"]
    base_throughput = native["throughput_rows_s"]["before"]
    base_size = native["size"]["before_bytes"]
    agreement = report["parity"][0]["label_agreement"]
    return [
        name,
        variant,
        _size(size),
        f"{size / base_size:.2f}",
        _us(latency["median"]),
        _us(latency["p99"]),
        f"{base_latency / latency['median']:.1f}x",
        f"{throughput:,.0f}",
        f"{throughput / base_throughput:.1f}x",
        "" if side == "before" or agreement is None else f"{agreement:.2%}",  # on the reference sample
    ]


def table(records: list[dict[str, Any]]) -> str:
    """The results as a fixed-width text table, with the quantization notes and the targets."""
    header = ["model", "variant", "size", "size/native", "p50", "p99", "speedup p50", "rows/s (1,024)", "x native",
              "labels agree"]  # fmt: skip
    rows = [header]
    notes = []
    for record in records:
        name, f32, i8 = record["model"], record["float"], record["int8"]
        rows.append(_row(name, "native", f32, "before", f32))
        rows.append(_row(name, "onnx float", f32, "after", f32))
        variant = "onnx int8" if i8["quantized"] else "onnx int8 (skipped)"
        rows.append(_row(name, variant, i8, "after", f32))
        if not i8["quantized"]:
            notes.append(f"{name}: {i8['quantization_note']}")
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += ["", *notes, "", *targets(records)]
    return "\n".join(lines)


def targets(records: list[dict[str, Any]]) -> list[str]:
    """The issue's targets, each with its measured figure and PASS/MISS."""
    by_name = {r["model"]: r for r in records}
    out = ["targets:"]
    forest_float = by_name["forest"]["float"]
    ratio = forest_float["latency_us"]["before"]["median"] / forest_float["latency_us"]["after"]["median"]
    out.append(f"  forest ONNX single-row latency <= 1/20 of scikit-learn: 1/{ratio:.0f} -> {_verdict(ratio >= 20)}")
    for name in ("sk-mlp", "torch-mlp"):
        record = by_name[name]
        share = record["int8"]["size"]["after_bytes"] / record["float"]["size"]["after_bytes"]
        agreement = record["int8"]["parity"][0]["label_agreement"] or 0.0
        ok = record["int8"]["quantized"] and share <= 0.30 and agreement >= 0.99
        out.append(
            f"  {name} int8 size <= 30% of float ONNX with >= 99% label agreement: {share:.1%}, "
            f"{agreement:.2%} -> {_verdict(ok)}"
        )
    return out


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _size(size: float) -> str:
    return f"{size / 1024:.1f} KiB" if size < 1024**2 else f"{size / 1024**2:.2f} MiB"


def _us(value: float) -> str:
    return f"{value / 1000:.2f} ms" if value >= 1000 else f"{value:.1f} us"


def main() -> int:
    """Parse arguments, run, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None, help="keep bundles and exports here (default: temp)")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw reports as JSON")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="modelport-edge-bench-"))
    if args.workdir and workdir.exists() and any(workdir.iterdir()):
        print(f"error: {workdir} is not empty", file=sys.stderr)
        return 2
    try:
        records = run(workdir)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(table(records))
    if args.json:
        args.json.write_text(json.dumps(records, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
