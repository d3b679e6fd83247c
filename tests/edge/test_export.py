"""export_onnx: the folder is a registrable onnx bundle, the report tells the truth, failures write nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelport.bundle.archive import unpack
from modelport.bundle.hashing import sha256_file
from modelport.bundle.io import load_bundle, verify_bundle
from modelport.bundle.manifest import MANIFEST_FILE, Manifest
from modelport.core.errors import Conflict, IntegrityError
from modelport.edge.export import export_onnx
from modelport.edge.parity import ParityError, ParityThresholds
from modelport.edge.quantize import TREE_REASON
from modelport.edge.runner import EdgeRunner, open_session
from modelport.runtime.predictor import Predictor

from .conftest import MakeBundle

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def churn_pipeline(frame: pd.DataFrame, label: np.ndarray) -> Pipeline:
    pre = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "spend", "visits"]),
            ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
        ]
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=500))]).fit(frame, label)


def test_export_folder_is_an_onnx_bundle_that_predicts_like_the_native_one(
    make_bundle: MakeBundle, customers: Any, tmp_path: Path
) -> None:
    frame, label, _ = customers
    bundle = make_bundle(churn_pipeline(frame, label), frame, name="churn")
    report = export_onnx(bundle, out_dir=tmp_path / "export", timings=False)

    manifest = verify_bundle(report.out_dir)
    assert manifest.flavor == "onnx"
    assert manifest.signature == bundle.manifest.signature
    assert {a.path for a in manifest.artifacts} == {
        "artifacts/model.onnx",
        "artifacts/predict.py",
        "reference/stats.json",
        "reference/sample.parquet",
    }
    assert manifest.metrics["parity_reference_sample_label_agreement"] == 1.0
    assert manifest.tags["export.source_flavor"] == "sklearn"
    assert manifest.flavor_options["classes"] == ["churn", "stay"]

    exported = Predictor(load_bundle(report.out_dir))
    native = Predictor(bundle)
    assert list(exported.predict(frame)) == list(native.predict(frame))
    np.testing.assert_allclose(exported.predict_proba(frame), native.predict_proba(frame), atol=1e-5)

    assert report.archive == tmp_path / "export.tar.gz"
    assert verify_bundle(unpack(report.archive, tmp_path / "unpacked")) == manifest


def test_report_has_sizes_timings_and_parity_and_is_json_able(
    make_bundle: MakeBundle, customers: Any, tmp_path: Path
) -> None:
    frame, label, _ = customers
    bundle = make_bundle(churn_pipeline(frame, label), frame)
    report = export_onnx(bundle, out_dir=tmp_path / "export")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["size"]["after_bytes"] == report.model_path.stat().st_size
    assert data["size"]["before_bytes"] == sum(
        a.size for a in bundle.manifest.artifacts if a.path.startswith("artifacts/")
    )
    assert report.before is not None
    assert report.after is not None
    assert data["latency_us"]["after"]["median"] > 0
    assert data["latency_us"]["before"]["p99"] >= data["latency_us"]["before"]["median"]
    assert data["throughput_rows_s"]["batch_rows"] == 1024
    assert data["parity"][0]["passed"] is True
    assert data["quantize"] is None
    assert [row[0] for row in report.rows()][:4] == [
        "size",
        "latency p50 (1 row)",
        "latency p99 (1 row)",
        "throughput (1,024 rows)",
    ]


def test_int8_export_of_an_mlp_is_quantized_and_smaller(make_bundle: MakeBundle, numeric: Any, tmp_path: Path) -> None:
    frame, y = numeric
    model = make_pipeline(StandardScaler(), MLPClassifier((64, 64), max_iter=100, random_state=0)).fit(frame, y)
    bundle = make_bundle(model, frame)
    report = export_onnx(bundle, out_dir=tmp_path / "export", quantize="int8", timings=False)
    assert report.quantized
    assert report.size_after_bytes < 0.5 * report.size_float_bytes
    assert report.parity[0].label_agreement is not None
    assert report.parity[0].label_agreement >= 0.995
    assert load_bundle(report.out_dir).manifest.tags["export.quantization"] == "int8"


def test_int8_export_of_a_forest_keeps_float_and_says_why(
    make_bundle: MakeBundle, numeric: Any, tmp_path: Path
) -> None:
    frame, y = numeric
    bundle = make_bundle(RandomForestClassifier(n_estimators=5, random_state=0).fit(frame, y), frame)
    report = export_onnx(bundle, out_dir=tmp_path / "export", quantize="int8", timings=False)
    assert not report.quantized
    assert report.quantization_note == TREE_REASON
    assert report.to_dict()["quantization_note"] == TREE_REASON
    assert load_bundle(report.out_dir).manifest.tags["export.quantization"] == "none"


def test_parity_failure_writes_nothing(make_bundle: MakeBundle, customers: Any, tmp_path: Path) -> None:
    frame, label, _ = customers
    bundle = make_bundle(churn_pipeline(frame, label), frame)
    out = tmp_path / "exports" / "churn"
    strict = ParityThresholds(max_proba_diff=1e-12)  # float32 probabilities differ by ~1e-7
    with pytest.raises(ParityError) as caught:
        export_onnx(bundle, out_dir=out, thresholds=strict)
    assert "probabilities differ" in caught.value.message
    assert caught.value.reports[0].worst
    assert not out.exists()
    assert not (tmp_path / "exports" / "churn.tar.gz").exists()
    assert not (tmp_path / "exports").exists() or not any((tmp_path / "exports").iterdir())


def test_existing_destination_is_refused_before_any_work(make_bundle: MakeBundle, numeric: Any, tmp_path: Path) -> None:
    frame, y = numeric
    bundle = make_bundle(LogisticRegression(max_iter=300).fit(frame, y), frame)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(Conflict, match="taken"):
        export_onnx(bundle, out_dir=tmp_path / "taken")
    (tmp_path / "free.tar.gz").write_text("x")
    with pytest.raises(Conflict, match=r"free\.tar\.gz"):
        export_onnx(bundle, out_dir=tmp_path / "free")


def test_lightgbm_categorical_export_serves_through_the_onnx_flavor(make_bundle: MakeBundle, tmp_path: Path) -> None:
    import lightgbm

    rng = np.random.default_rng(1)
    n = 300
    frame = pd.DataFrame({"a": rng.normal(size=n), "colour": pd.Categorical(rng.choice(["red", "green", "blue"], n))})
    label = np.where(frame["colour"].isin(["red"]) ^ (frame["a"] > 0), "yes", "no")
    model = lightgbm.LGBMClassifier(n_estimators=10, min_child_samples=5, verbose=-1).fit(frame, label)
    bundle = make_bundle(model, frame)
    report = export_onnx(bundle, out_dir=tmp_path / "export", timings=False)
    exported = Predictor(load_bundle(report.out_dir))
    assert list(exported.predict(frame)) == list(Predictor(bundle).predict(frame))


def test_corrupted_onnx_is_refused_at_load(make_bundle: MakeBundle, numeric: Any, tmp_path: Path) -> None:
    frame, y = numeric
    bundle = make_bundle(LogisticRegression(max_iter=300).fit(frame, y), frame)
    report = export_onnx(bundle, out_dir=tmp_path / "export", timings=False)
    model = report.model_path
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 2])
    with pytest.raises(IntegrityError, match=r"artifacts/model\.onnx"):
        load_bundle(report.out_dir)

    # the same truncated file with its hash updated in the manifest (corrupted before hashing): ONNX refuses it
    manifest = Manifest.from_yaml((report.out_dir / MANIFEST_FILE).read_text())
    artifacts = tuple(
        a.model_copy(update={"sha256": sha256_file(model), "size": model.stat().st_size})
        if a.path == "artifacts/model.onnx"
        else a
        for a in manifest.artifacts
    )
    (report.out_dir / MANIFEST_FILE).write_text(manifest.model_copy(update={"artifacts": artifacts}).to_yaml())
    with pytest.raises(IntegrityError, match="ONNX model") as caught:
        load_bundle(report.out_dir)
    assert caught.value.hint


def test_corrupted_onnx_bytes_are_refused_by_the_edge_runner() -> None:
    with pytest.raises(IntegrityError, match="is not a valid ONNX model") as caught:
        open_session(b"\x08\x07garbage-not-onnx", source="model.onnx")
    assert "export the model again" in str(caught.value.hint)
    with pytest.raises(IntegrityError):
        EdgeRunner.from_bytes(b"")


def test_export_registers_as_the_next_version_of_the_same_model(
    make_bundle: MakeBundle, customers: Any, tmp_path: Path
) -> None:
    from modelport.core.settings import Settings
    from modelport.registry.registry import Registry

    frame, label, _ = customers
    with Registry(Settings(home=tmp_path / "home", user="tester")) as registry:
        source = make_bundle(churn_pipeline(frame, label), frame, name="churn")
        first = registry.register(source.path)
        fetched = load_bundle(registry.fetch(first))
        report = export_onnx(fetched, out_dir=tmp_path / "export", timings=False)
        exported = registry.register(report.out_dir, reason="edge export")
        assert (exported.name, exported.version, exported.flavor) == ("churn", 2, "onnx")
        assert exported.tags["export.source"] == "churn:1"
        served = Predictor(load_bundle(registry.fetch(registry.resolve("churn:2"))))
        assert list(served.predict(frame.head(20))) == list(Predictor(source).predict(frame.head(20)))


def test_check_data_is_checked_too_and_recorded(make_bundle: MakeBundle, customers: Any, tmp_path: Path) -> None:
    frame, label, _ = customers
    bundle = make_bundle(churn_pipeline(frame, label), frame)
    frame.sample(50, random_state=1).to_csv(tmp_path / "check.csv", index=False)
    report = export_onnx(bundle, out_dir=tmp_path / "export", check_data=tmp_path / "check.csv", timings=False)
    assert [(p.dataset, p.rows) for p in report.parity] == [("reference sample", 300), ("check data", 50)]
    metrics = load_bundle(report.out_dir).manifest.metrics
    assert metrics["parity_check_data_rows"] == 50.0
    assert metrics["parity_check_data_label_agreement"] == 1.0
