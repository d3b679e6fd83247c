"""predict.py, run in a clean virtualenv holding only onnxruntime and numpy, predicts like the native model."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelport.edge import standalone_predict
from modelport.edge.export import export_onnx
from modelport.edge.report import ExportReport

from .conftest import MakeBundle


def run_script(python: Path, report: ExportReport, *args: str, stdin: str | None = None) -> list[str]:
    result = subprocess.run(
        [str(python), str(report.predict_script), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_the_clean_environment_has_neither_pandas_nor_modelport(clean_python: Path) -> None:
    for module in ("pandas", "modelport", "sklearn"):
        probe = subprocess.run(
            [str(clean_python), "-c", f"import {module}"], capture_output=True, timeout=60, check=False
        )
        assert probe.returncode != 0, f"{module} is importable in the clean environment"


def test_pipeline_with_text_and_missing_values_from_a_csv_file(
    clean_python: Path, make_bundle: MakeBundle, customers: Any, tmp_path: Path
) -> None:
    frame, label, _ = customers
    pre = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "spend", "visits"]),
            ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
        ]
    )
    model = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=500))]).fit(frame, label)
    report = export_onnx(make_bundle(model, frame), out_dir=tmp_path / "export", timings=False)
    rows = frame.head(40)[["spend", "plan", "visits", "age"]]  # columns in another order than the signature
    rows.to_csv(tmp_path / "rows.csv", index=False)

    assert run_script(clean_python, report, str(tmp_path / "rows.csv")) == list(model.predict(frame.head(40)))
    lines = run_script(clean_python, report, "--proba", str(tmp_path / "rows.csv"))
    records = [json.loads(line) for line in lines]
    proba = np.array([[r["probabilities"]["churn"], r["probabilities"]["stay"]] for r in records])
    np.testing.assert_allclose(proba, model.predict_proba(frame.head(40)), atol=1e-5)
    assert records[0]["prediction"] == model.predict(frame.head(1))[0]


def test_regressor_from_json_lines_on_stdin(
    clean_python: Path, make_bundle: MakeBundle, customers: Any, tmp_path: Path
) -> None:
    frame, _, target = customers
    numbers = frame[["age", "visits"]]
    model = make_pipeline(StandardScaler(), LinearRegression()).fit(numbers, target)
    report = export_onnx(make_bundle(model, numbers), out_dir=tmp_path / "export", timings=False)
    stdin = numbers.head(25).to_json(orient="records", lines=True)
    values = [float(line) for line in run_script(clean_python, report, stdin=stdin)]
    np.testing.assert_allclose(values, model.predict(numbers.head(25)), rtol=1e-5)


def test_lightgbm_categories_are_encoded_by_the_model_itself(
    clean_python: Path, make_bundle: MakeBundle, tmp_path: Path
) -> None:
    import lightgbm

    rng = np.random.default_rng(2)
    n = 300
    frame = pd.DataFrame({"a": rng.normal(size=n), "colour": pd.Categorical(rng.choice(["red", "green", "blue"], n))})
    label = np.where(frame["colour"].isin(["red"]) ^ (frame["a"] > 0), "yes", "no")
    model = lightgbm.LGBMClassifier(n_estimators=10, min_child_samples=5, verbose=-1).fit(frame, label)
    report = export_onnx(make_bundle(model, frame), out_dir=tmp_path / "export", timings=False)
    path = tmp_path / "rows.jsonl"
    frame.head(30).astype({"colour": str}).to_json(path, orient="records", lines=True)
    assert run_script(clean_python, report, str(path)) == list(model.predict(frame.head(30)))


def test_torch_tensor_model_from_csv(clean_python: Path, make_bundle: MakeBundle, numeric: Any, tmp_path: Path) -> None:
    import torch

    frame, _ = numeric
    x = frame.to_numpy().astype(np.float32)
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)).eval()
    report = export_onnx(make_bundle(module, x), out_dir=tmp_path / "export", timings=False)
    stdin = pd.DataFrame(x[:20], columns=[f"x{i}" for i in range(8)]).to_csv(index=False)
    got = np.array([json.loads(line) for line in run_script(clean_python, report, "--format", "csv", stdin=stdin)])
    with torch.no_grad():
        want = module(torch.from_numpy(x[:20])).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_reading_helpers_in_process() -> None:
    assert np.isnan(standalone_predict.number(""))
    assert np.isnan(standalone_predict.number("NA"))
    assert standalone_predict.number("true") == 1.0
    assert standalone_predict.number(" 2.5 ") == 2.5
    assert standalone_predict.text(None) == ""
    rows = list(standalone_predict.read_rows(io.StringIO('{"a": 1}\n\n{"a": 2}\n'), "auto"))
    assert rows == [{"a": 1}, {"a": 2}]
    rows = list(standalone_predict.read_rows(io.StringIO("a,b\n1,x\n"), "auto"))
    assert rows == [{"a": "1", "b": "x"}]
    assert [len(b) for b in standalone_predict.batches(iter(range(5)), 2)] == [2, 2, 1]
    with pytest.raises(SystemExit, match="line 1 is not JSON"):
        list(standalone_predict.read_rows(io.StringIO("{oops\n"), "jsonl"))


def test_main_in_process_for_labels_probabilities_and_tensors(
    make_bundle: MakeBundle, numeric: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    frame, y = numeric
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(frame, y)
    report = export_onnx(make_bundle(model, frame), out_dir=tmp_path / "logreg", timings=False)
    frame.head(6).to_csv(tmp_path / "rows.csv", index=False)
    assert (
        standalone_predict.main(["--model", str(report.model_path), "--batch-size", "4", str(tmp_path / "rows.csv")])
        == 0
    )
    assert capsys.readouterr().out.split() == [str(v) for v in model.predict(frame.head(6))]
    frame.head(3).to_json(tmp_path / "rows.jsonl", orient="records", lines=True)
    standalone_predict.main(["--model", str(report.model_path), "--proba", str(tmp_path / "rows.jsonl")])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["prediction"] for r in records] == model.predict(frame.head(3)).tolist()
    assert sorted(records[0]["probabilities"]) == ["0", "1", "2"]

    x = frame.to_numpy().astype(np.float32)
    module = torch.nn.Sequential(torch.nn.Linear(8, 3)).eval()
    tensor_report = export_onnx(make_bundle(module, x), out_dir=tmp_path / "torch", timings=False)
    (tmp_path / "rows.json").write_text("\n".join(json.dumps({"input": row}) for row in x[:2].tolist()))
    standalone_predict.main(
        ["--model", str(tensor_report.model_path), "--format", "jsonl", str(tmp_path / "rows.json")]
    )
    got = np.array([json.loads(line) for line in capsys.readouterr().out.splitlines()])
    with torch.no_grad():
        np.testing.assert_allclose(got, module(torch.from_numpy(x[:2])).numpy(), atol=1e-5)


def test_main_reports_bad_rows_as_errors(make_bundle: MakeBundle, numeric: Any, tmp_path: Path) -> None:
    frame, y = numeric
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(frame, y)
    report = export_onnx(make_bundle(model, frame), out_dir=tmp_path / "logreg", timings=False)
    (tmp_path / "bad.csv").write_text("f0,f1\n1,2\n")
    with pytest.raises(SystemExit, match="has no column 'f2'"):
        standalone_predict.main(["--model", str(report.model_path), str(tmp_path / "bad.csv")])
    (tmp_path / "text.csv").write_text(",".join(frame.columns) + "\n" + ",".join(["abc"] * 8) + "\n")
    with pytest.raises(SystemExit, match="error: could not convert string to float"):
        standalone_predict.main(["--model", str(report.model_path), str(tmp_path / "text.csv")])
