"""Batch benchmark: modelport against the in-memory ceiling and the naive pandas script, in one run.

Workload: a RandomForestClassifier (100 trees, max_depth 12, 20 float features) scoring
``--rows`` generated rows (default 5 million), stored as Parquet (and as CSV for the naive script).

Contenders, each in its own process so that peak RSS (``ru_maxrss``) is its own:

* ``raw``: the rows already in memory as one array, one ``model.predict`` call (the ceiling;
  reading the data is not timed).
* ``modelport-parquet``: a batch job Parquet → Parquet (folder of parts) through the Predictor, on
  the fastest path that keeps parity: the ONNX Runtime adapter from ``modelport.edge`` (exact
  labels on the reference sample) or the native model, whichever scores a sample faster on this
  machine (the table says which, with both speeds).
* ``modelport-postgres``: the same job Parquet → PostgreSQL (``COPY`` in each chunk's transaction).
* ``naive-postgres``: what people write by hand: ``pd.read_csv`` → ``model.predict`` →
  ``DataFrame.to_sql`` (id and prediction).

Run: ``python benchmarks/batch.py [--rows 5000000] [--pg postgresql://postgres@127.0.0.1:5432/test]
[--workdir benchmarks/out/batch] [--path auto|native|onnx]``. Prints rows/s and peak RSS per contender and the ratios
against the targets (modelport ≥ 5x the naive script; modelport's peak RSS under 1 GiB).
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

FEATURES = [f"f{i:02d}" for i in range(20)]
CONTENDERS = ("raw", "modelport-parquet", "modelport-postgres", "naive-postgres")
GENERATE_BATCH = 250_000
TRAIN_ROWS = 20_000
TARGETS = "targets: modelport >= 5x naive-postgres; modelport peak RSS < 1024 MiB"


# --- data and model ----------------------------------------------------------------------------


def _batch(start: int, n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES)))
    columns: dict[str, Any] = {"id": np.arange(start, start + n, dtype=np.int64)}
    columns.update({name: x[:, j] for j, name in enumerate(FEATURES)})
    return pa.table(columns)


def _labels(x: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    signal = x[:, 0] + x[:, 1] * x[:, 2] - 0.5 * x[:, 3] ** 2 + np.sin(3 * x[:, 4]) + rng.normal(0, 0.5, len(x))
    return np.asarray(signal > 0, dtype=np.int64)


def prepare(workdir: Path, rows: int) -> dict[str, Path]:
    """Generate the data (Parquet and CSV) and the model (bundle and pickle), once per row count."""
    paths = {
        "parquet": workdir / f"data-{rows}.parquet",
        "csv": workdir / f"data-{rows}.csv",
        "bundle": workdir / "rf-bundle",
        "pickle": workdir / "rf.pkl",
    }
    workdir.mkdir(parents=True, exist_ok=True)
    if not paths["parquet"].exists():
        started = time.perf_counter()
        tmp_parquet = paths["parquet"].with_name(paths["parquet"].name + ".tmp")
        tmp_csv = paths["csv"].with_name(paths["csv"].name + ".tmp")
        first = _batch(0, 1, 0)
        with pq.ParquetWriter(tmp_parquet, first.schema) as parquet, pacsv.CSVWriter(tmp_csv, first.schema) as csv:
            for index, start in enumerate(range(0, rows, GENERATE_BATCH)):
                table = _batch(start, min(GENERATE_BATCH, rows - start), seed=100 + index)
                parquet.write_table(table, row_group_size=100_000)
                csv.write_table(table)
        tmp_parquet.rename(paths["parquet"])
        tmp_csv.rename(paths["csv"])
        print(f"generated {rows:,} rows in {time.perf_counter() - started:.1f}s", flush=True)
    if not paths["bundle"].exists():
        from sklearn.ensemble import RandomForestClassifier

        from modelport.bundle.io import save_bundle

        started = time.perf_counter()
        train = _batch(0, TRAIN_ROWS, seed=1).to_pandas()[FEATURES]
        model = RandomForestClassifier(n_estimators=100, max_depth=12, n_jobs=-1, random_state=0)
        model.fit(train, _labels(train.to_numpy(), seed=2))
        save_bundle(model, paths["bundle"], name="rf", sample_input=train.head(1000), reference_data=train)
        paths["pickle"].write_bytes(pickle.dumps(model))
        print(f"trained and bundled the forest in {time.perf_counter() - started:.1f}s", flush=True)
    return paths


# --- contenders (each runs in its own process) -------------------------------------------------


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_raw(paths: dict[str, Path], _pg: str, _path: str) -> dict[str, Any]:
    """One predict call on all rows, already in memory."""
    model = pickle.loads(paths["pickle"].read_bytes())  # the benchmark's own file
    x = pq.read_table(paths["parquet"], columns=FEATURES).to_pandas()
    started = time.perf_counter()
    predictions = model.predict(x)
    seconds = time.perf_counter() - started
    return {"rows": len(predictions), "seconds": seconds, "note": "sklearn predict, data in memory"}


def _throughput(predictor: Any, sample: Any, threads: int) -> float:
    """Rows/s of ``threads`` concurrent predictions of ``sample`` (how the batch engine will call it).

    As in the engine, each thread runs joblib-parallel models sequentially when there are several
    threads; the best of three rounds, since other work on a shared machine only ever slows a round.
    """
    import contextlib
    from concurrent.futures import ThreadPoolExecutor

    import joblib

    model_input = predictor.coerce(sample)
    predictor.run(model_input)  # warm up

    def one(_: int) -> Any:
        with joblib.parallel_config(backend="sequential") if threads > 1 else contextlib.nullcontext():
            return predictor.run(model_input)

    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(threads)))
        best = max(best, threads * len(sample) / (time.perf_counter() - started))
    return best


def _predictor(paths: dict[str, Path], path: str) -> Any:
    """The Predictor on the fastest path that keeps parity: native, or ONNX Runtime when faster here."""
    import os

    from modelport.bundle.io import load_bundle
    from modelport.runtime.predictor import Predictor

    bundle = load_bundle(paths["bundle"])
    native = Predictor(bundle)
    if path == "native":
        return native, "native sklearn"
    try:
        from modelport.edge.accelerate import try_accelerate
    except ImportError:
        return native, "native sklearn (modelport.edge not available)"
    decision = try_accelerate(bundle)
    if decision.adapter is None:
        return native, f"native sklearn ({decision.note})"
    onnx = Predictor(bundle, adapter=decision.adapter, accelerated=decision.note)
    if path == "onnx":
        return onnx, decision.note
    sample = pq.ParquetFile(paths["parquet"]).read_row_group(0, columns=FEATURES).slice(0, 50_000)  # one chunk
    threads = min(4, os.cpu_count() or 1)
    speeds = {"native sklearn": _throughput(native, sample, threads), decision.note: _throughput(onnx, sample, threads)}
    best = max(speeds, key=lambda k: speeds[k])
    measured = ", ".join(f"{k.split(' (')[0]} {v:,.0f} rows/s" for k, v in speeds.items())
    return (onnx if best == decision.note else native), f"{best.split(' (')[0]}: the faster here ({measured})"


def _run_modelport(paths: dict[str, Path], output: str, table: str | None, path: str) -> dict[str, Any]:
    from modelport.batch.spec import JobSpec, run_spec
    from modelport.registry import db, schema
    from modelport.registry.runs import RunStore

    predictor, note = _predictor(paths, path)
    registry = f"sqlite:///{paths['parquet'].parent / f'registry-{uuid.uuid4().hex[:8]}.db'}"
    engine = db.create_engine(registry)
    schema.upgrade(engine, registry)
    store = RunStore(engine, registry)
    spec = JobSpec.build("rf", str(paths["parquet"]), output, table=table, key="id")
    started = time.perf_counter()
    result = run_spec(spec, load_model=lambda ref: predictor, store=store)
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"rows": result.rows_written, "seconds": seconds, "note": note}


def run_modelport_parquet(paths: dict[str, Path], _pg: str, path: str) -> dict[str, Any]:
    """Parquet → Parquet folder."""
    out = paths["parquet"].parent / f"scores-{uuid.uuid4().hex[:8]}"
    return _run_modelport(paths, str(out), None, path)


def run_modelport_postgres(paths: dict[str, Path], pg: str, path: str) -> dict[str, Any]:
    """Parquet → PostgreSQL table."""
    return _run_modelport(paths, pg, f"mp_bench_{uuid.uuid4().hex[:8]}", path)


def run_naive_postgres(paths: dict[str, Path], pg: str, _path: str) -> dict[str, Any]:
    """``read_csv`` → ``predict`` → ``to_sql``, as written by hand."""
    import pandas as pd
    import sqlalchemy as sa

    model = pickle.loads(paths["pickle"].read_bytes())
    engine = sa.create_engine(pg.replace("postgresql://", "postgresql+psycopg://", 1))
    started = time.perf_counter()
    frame = pd.read_csv(paths["csv"])
    frame["prediction"] = model.predict(frame[FEATURES])
    frame[["id", "prediction"]].to_sql(f"naive_{uuid.uuid4().hex[:8]}", engine, index=False)
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"rows": len(frame), "seconds": seconds, "note": "pandas read_csv -> predict -> to_sql"}


RUNNERS = {
    "raw": run_raw,
    "modelport-parquet": run_modelport_parquet,
    "modelport-postgres": run_modelport_postgres,
    "naive-postgres": run_naive_postgres,
}


def worker(name: str, paths: dict[str, Path], pg: str, path: str) -> None:
    """Run one contender and print its result as one JSON line."""
    result = RUNNERS[name](paths, pg, path)
    result["peak_rss_mib"] = _peak_rss_mib()
    print("RESULT " + json.dumps(result), flush=True)


# --- driver --------------------------------------------------------------------------------------


def _measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", name, "--rows", str(args.rows), "--workdir", str(args.workdir)]
    command += ["--pg", args.pg, "--path", args.path]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"{name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return dict(json.loads(line.removeprefix("RESULT ")))


def _drop_tables(pg: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(pg.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        for (name,) in conn.execute(
            sa.text("SELECT tablename FROM pg_tables WHERE tablename LIKE 'mp_bench_%' OR tablename LIKE 'naive_%'")
        ):
            conn.execute(sa.text(f'DROP TABLE "{name}"'))
    engine.dispose()


def main() -> None:
    """Parse arguments; run every contender; print the table and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--workdir", type=Path, default=Path(__file__).parent / "out" / "batch")
    parser.add_argument(
        "--path", choices=("auto", "native", "onnx"), default="auto", help="modelport's scoring path (auto: faster)"
    )
    parser.add_argument("--only", default=",".join(CONTENDERS), help="comma-separated contenders")
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    paths = prepare(args.workdir.resolve(), args.rows)
    if args.worker:
        worker(args.worker, paths, args.pg, args.path)
        return
    results: dict[str, dict[str, Any]] = {}
    try:
        for name in args.only.split(","):
            print(f"running {name} ...", flush=True)
            results[name] = _measure(name, args)
    finally:
        _drop_tables(args.pg)
    print(f"\n{args.rows:,} rows, RandomForest(100 trees, depth 12, 20 features)\n")
    print(f"{'contender':<20} {'seconds':>9} {'rows/s':>12} {'peak RSS MiB':>13}  path")
    for name, r in results.items():
        rate = r["rows"] / r["seconds"]
        print(f"{name:<20} {r['seconds']:>9.2f} {rate:>12,.0f} {r['peak_rss_mib']:>13,.0f}  {r['note']}")
    rate = {name: r["rows"] / r["seconds"] for name, r in results.items()}
    print()
    if {"modelport-postgres", "naive-postgres"} <= rate.keys():
        print(f"modelport-postgres / naive-postgres: {rate['modelport-postgres'] / rate['naive-postgres']:.1f}x")
    if {"modelport-parquet", "naive-postgres"} <= rate.keys():
        print(f"modelport-parquet  / naive-postgres: {rate['modelport-parquet'] / rate['naive-postgres']:.1f}x")
    for name in ("modelport-parquet", "modelport-postgres"):
        if {name, "raw"} <= rate.keys():
            print(f"{name:<18} / raw ceiling:    {rate[name] / rate['raw']:.2f}x")
    print(TARGETS)


if __name__ == "__main__":
    main()
