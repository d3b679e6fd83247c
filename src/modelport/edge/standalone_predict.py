"""Predict with an exported modelport model: needs only onnxruntime and numpy.

This file is copied into every ONNX export as ``artifacts/predict.py``, next to ``model.onnx``.
It reads rows as CSV (with a header) or JSON Lines (one object, or one array of values, per
line) from a file or standard input, feeds them the way the model's embedded description says
(column order, column types; categorical encodings run inside the model), and prints one
prediction per line, or JSON lines with the probabilities::

    python predict.py rows.csv
    cat rows.jsonl | python predict.py --proba
    python predict.py --model other.onnx --batch-size 256 rows.csv

CSV input needs a header row naming the columns (any names for a tensor model: each row's
values are its tensor, flattened). Missing numbers (an empty field, ``NA``, ``null``) are fed
as NaN, missing text as ``""``; ``true``/``false`` read as 1/0. Nothing here imports pandas or
modelport, and it runs on Python 3.8 and later.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

METADATA_KEY = "modelport"
MISSING = frozenset({"", "na", "nan", "null", "none"})
TRUE = frozenset({"true", "yes"})
FALSE = frozenset({"false", "no"})


def load(model_path: str) -> tuple[Any, dict[str, Any]]:
    """The ONNX Runtime session and the model's embedded description."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model_path, sess_options=options, providers=["CPUExecutionProvider"])
    metadata = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in metadata:
        raise SystemExit(f"error: {model_path} carries no '{METADATA_KEY}' description; export it with modelport.")
    spec: dict[str, Any] = json.loads(metadata[METADATA_KEY])
    return session, spec


def read_rows(stream: io.TextIOBase | Any, fmt: str) -> Iterator[Any]:
    """Rows as dicts (CSV, JSON objects) or lists (JSON arrays)."""
    if fmt == "auto":
        first = stream.readline()
        fmt = "jsonl" if first.lstrip().startswith(("{", "[")) else "csv"
        stream = _Prepend(first, stream)
    if fmt == "csv":
        yield from csv.DictReader(stream)
        return
    for number, line in enumerate(stream, start=1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"error: line {number} is not JSON: {exc}") from exc


class _Prepend:
    """A text stream with one line put back in front."""

    def __init__(self, first: str, rest: Any) -> None:
        self._first: str | None = first
        self._rest = rest

    def __iter__(self) -> Iterator[str]:
        if self._first:
            yield self._first
        self._first = None
        yield from self._rest

    def readline(self) -> str:
        if self._first is not None:
            line, self._first = self._first, None
            return line
        return str(self._rest.readline())


def number(value: Any) -> float:
    """A cell as a float (NaN when missing, 1/0 for true/false)."""
    if value is None:
        return math.nan
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip().lower()
    if text in MISSING:
        return math.nan
    if text in TRUE:
        return 1.0
    if text in FALSE:
        return 0.0
    return float(text)


def text(value: Any) -> str:
    """A cell as text (``""`` when missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def column(rows: list[Any], name: str, position: int, dtype: str) -> np.ndarray:
    """One input column for ``rows``, found by name (dict rows) or position (list rows)."""
    values = []
    for index, row in enumerate(rows):
        if isinstance(row, dict):
            if name not in row:
                raise SystemExit(f"error: row {index} has no column {name!r}")
            values.append(row[name])
        else:
            values.append(row[position])
    if dtype == "string":
        return np.array([text(v) for v in values], dtype=object)
    floats = np.array([number(v) for v in values], dtype=np.float64)
    if dtype == "int64":
        if np.isnan(floats).any():
            raise SystemExit(f"error: column {name!r} needs whole numbers; a value is missing")
        return floats.astype(np.int64)
    return floats.astype(dtype)


def feed(spec: dict[str, Any], session: Any, rows: list[Any]) -> dict[str, np.ndarray]:
    """The ONNX feed for ``rows`` per the description's layout."""
    inputs: dict[str, np.ndarray] = {}
    if spec["layout"] == "tensors":
        shapes = {i.name: i.shape for i in session.get_inputs()}
        for item in spec["inputs"]:
            source = item["sources"][0]
            values = [_tensor_values(row, source) for row in rows]
            array = np.array([[number(v) for v in value] for value in values], dtype=np.float64)
            shape = [d if isinstance(d, int) and d > 0 else -1 for d in shapes[item["name"]]]
            array = array.reshape([len(rows), *shape[1:]] if len(shape) > 1 else [len(rows)])
            inputs[item["name"]] = array.astype(item["dtype"] if item["dtype"] != "string" else object)
        return inputs
    order = [s for item in spec["inputs"] for s in item["sources"]]
    positions = {name: i for i, name in enumerate(order)}
    for item in spec["inputs"]:
        columns = [column(rows, name, positions[name], item["dtype"]) for name in item["sources"]]
        inputs[item["name"]] = np.column_stack(columns) if len(columns) > 1 else columns[0].reshape(-1, 1)
    return inputs


def _tensor_values(row: Any, source: str) -> list[Any]:
    """A row's values for tensor ``source``: its entry in a JSON object, else the whole row flattened."""
    if isinstance(row, dict) and source in row:
        return _flat(row[source])
    return _flat(row)


def _flat(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flat(v)]
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _flat(v)]
    return [value]


def predict(spec: dict[str, Any], session: Any, rows: list[Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """``(predictions, probabilities or None)`` for ``rows``."""
    outputs = spec["outputs"]
    names = [n for n in (outputs["label"], outputs["probabilities"], outputs["value"]) if n]
    results = dict(zip(names, session.run(names, feed(spec, session, rows))))  # noqa: B905 - Python 3.8
    proba = results.get(outputs["probabilities"]) if outputs["probabilities"] else None
    if spec["task"] == "classifier" and outputs["label"]:
        return np.asarray(results[outputs["label"]]).reshape(-1), proba
    value = np.asarray(results[outputs["value"]])
    if spec["task"] == "regressor" and value.ndim == 2 and value.shape[1] == 1:
        value = value.reshape(-1)
    return value, proba


def plain(value: Any) -> Any:
    """A numpy value as plain JSON-able Python."""
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def write(spec: dict[str, Any], predictions: np.ndarray, proba: np.ndarray | None, as_json: bool, out: Any) -> None:
    """Print one line per row."""
    classes = spec.get("classes")
    for i in range(len(predictions)):
        prediction = plain(predictions[i])
        if not as_json:
            out.write((json.dumps(prediction) if isinstance(prediction, list) else str(prediction)) + "\n")
            continue
        record: dict[str, Any] = {"prediction": prediction}
        if proba is not None and classes is not None:
            pairs = zip(classes, proba[i].tolist())  # noqa: B905 - runs on Python 3.8 too
            record["probabilities"] = {str(c): float(p) for c, p in pairs}
        out.write(json.dumps(record) + "\n")


def batches(rows: Iterator[Any], size: int) -> Iterator[list[Any]]:
    """``rows`` in lists of at most ``size``."""
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def main(argv: list[str] | None = None) -> int:
    """Run the command line."""
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description="Predict with an exported modelport ONNX model.")
    parser.add_argument("input", nargs="?", default="-", help="CSV or JSON Lines file; '-' or nothing: stdin")
    parser.add_argument("--model", default=os.path.join(here, "model.onnx"), help="the .onnx file")
    parser.add_argument("--format", choices=("auto", "csv", "jsonl"), default="auto", help="input format")
    parser.add_argument("--proba", action="store_true", help="print JSON lines with class probabilities")
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    parser.add_argument("--batch-size", type=int, default=1024, help="rows per model call")
    args = parser.parse_args(argv)
    session, spec = load(args.model)
    fmt = args.format
    if fmt == "auto" and args.input != "-":
        lowered = args.input.lower()
        fmt = "csv" if lowered.endswith(".csv") else "jsonl" if lowered.endswith((".jsonl", ".ndjson")) else "auto"
    stream = sys.stdin if args.input == "-" else open(args.input, encoding="utf-8", newline="")  # noqa: SIM115
    try:
        for batch in batches(read_rows(stream, fmt), max(1, args.batch_size)):
            try:
                predictions, proba = predict(spec, session, batch)
            except (ValueError, IndexError) as exc:
                raise SystemExit(f"error: {exc}") from exc
            write(spec, predictions, proba, args.json or args.proba, sys.stdout)
    finally:
        if stream is not sys.stdin:
            stream.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # the reader stopped early (e.g. `| head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
