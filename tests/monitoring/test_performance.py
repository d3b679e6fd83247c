"""Live metrics: feedback joined to logged predictions, checked against scikit-learn."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics
from sklearn.exceptions import UndefinedMetricWarning

from modelport.core.errors import ValidationError
from modelport.core.types import ColumnSpec, OutputSpec, Signature
from modelport.monitoring.feedback import FeedbackRecord, FeedbackStore, parse_feedback
from modelport.monitoring.logview import LogReader
from modelport.monitoring.performance import classification_metrics, live_metrics, sort_labels
from modelport.monitoring.window import Window
from modelport.runtime.predlog import PredictionLogWriter, PredictionRecord, request_records
from modelport.runtime.redaction import Redactor

from .support import SIGNATURE, write_records

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def binary_traffic(
    n: int, seed: int, version: int
) -> tuple[list[PredictionRecord], np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    score = np.clip(truth * 0.35 + rng.random(n) * 0.65, 0, 1)
    score[::17] = 0.5  # ties for the AUC
    predicted = (score > 0.5).astype(int)
    records = [
        PredictionRecord(
            model="churn", version=version, request_id=f"v{version}-{i}",
            ts=NOW - timedelta(hours=6) + timedelta(minutes=i % 300),
            inputs={"customer_id": f"c{version}-{i}", "age": 30.0}, latency_ms=5.0,
            outputs={"predict": int(predicted[i]), "predict_proba": [1 - float(score[i]), float(score[i])]},
        )
        for i in range(n)
    ]  # fmt: skip
    return records, truth, predicted, score


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[int, tuple[np.ndarray, ...]]]:
    root = tmp_path_factory.mktemp("binary")
    truths = {}
    records = []
    for version, seed in ((1, 1), (2, 2)):
        recs, truth, predicted, score = binary_traffic(600, seed, version)
        records += recs
        truths[version] = (truth, predicted, score)
    write_records(root / "logs", records)
    store = FeedbackStore(root / "feedback")
    later = NOW + timedelta(days=3)
    # Version 1: labels by request id for even rows, by customer id for odd ones; a first, wrong
    # label for row 0 is corrected by a later one (the newest wins).
    truth1 = truths[1][0]
    store.add("churn", [FeedbackRecord(key="v1-0", label=1 - int(truth1[0]))], received_at=later - timedelta(days=1))
    store.add(
        "churn", [FeedbackRecord(key=f"v1-{i}", label=int(truth1[i])) for i in range(0, 600, 2)], received_at=later
    )
    store.add(
        "churn",
        [
            FeedbackRecord(key=f"c1-{i}", label=int(truth1[i]), key_kind="key", key_column="customer_id")
            for i in range(1, 600, 2)
        ],
        received_at=later,
    )
    # Version 2: labels for the first 400 rows only, as strings (as a CSV would give them).
    truth2 = truths[2][0]
    store.add("churn", [FeedbackRecord(key=f"v2-{i}", label=str(truth2[i])) for i in range(400)], received_at=later)
    return root / "logs", root / "feedback", truths


def sklearn_scores(truth: np.ndarray, predicted: np.ndarray, score: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": metrics.accuracy_score(truth, predicted),
        "precision": metrics.precision_score(truth, predicted),
        "recall": metrics.recall_score(truth, predicted),
        "f1": metrics.f1_score(truth, predicted),
        "roc_auc": metrics.roc_auc_score(truth, score),
    }


def test_binary_metrics_per_version_match_sklearn(binary: tuple[Path, Path, dict[int, tuple[np.ndarray, ...]]]) -> None:
    log_dir, feedback_dir, truths = binary
    report = live_metrics(LogReader(log_dir), FeedbackStore(feedback_dir), model="churn", signature=SIGNATURE)
    assert report.task == "classification"
    assert report.positive_label == "1"
    overall = {p.version: p for p in report.overall}
    assert overall[1].n == 600
    assert overall[2].n == 400
    assert report.labelled == 1000
    truth, predicted, score = truths[1]
    assert overall[1].metrics == pytest.approx(sklearn_scores(truth, predicted, score))
    truth, predicted, score = (a[:400] for a in truths[2])
    assert overall[2].metrics == pytest.approx(sklearn_scores(truth, predicted, score))


def test_metrics_over_time_buckets_by_prediction_time(
    binary: tuple[Path, Path, dict[int, tuple[np.ndarray, ...]]],
) -> None:
    log_dir, feedback_dir, truths = binary
    report = live_metrics(
        LogReader(log_dir), FeedbackStore(feedback_dir), model="churn", version=1, bucket_s=3600,
        window=Window.last("2d", now=NOW + timedelta(days=1)),
    )  # fmt: skip
    assert {p.version for p in report.series} == {1}
    assert sum(p.n for p in report.series) == 600
    first = report.series[0]
    minutes = np.arange(600) % 300
    rows = minutes < 60  # the first hour after NOW - 6h
    truth, predicted, score = (a[rows] for a in truths[1])
    assert first.start == NOW - timedelta(hours=6)
    assert first.n == int(rows.sum())
    assert first.metrics == pytest.approx(sklearn_scores(truth, predicted, score))
    as_dict = report.to_dict()
    assert as_dict["points"][0]["t"] == first.start.isoformat()
    assert as_dict["bucket_s"] == 3600


def test_a_window_before_the_predictions_has_no_labels(
    binary: tuple[Path, Path, dict[int, tuple[np.ndarray, ...]]],
) -> None:
    log_dir, feedback_dir, _ = binary
    report = live_metrics(
        LogReader(log_dir),
        FeedbackStore(feedback_dir),
        model="churn",
        window=Window.last("1h", now=NOW - timedelta(days=1)),
    )
    assert report.task is None
    assert report.labelled == 0
    assert report.overall == ()


def test_multiclass_macro_metrics_match_sklearn(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    labels = np.array(["ham", "spam", "eggs"])
    truth = labels[rng.integers(0, 3, 500)]
    predicted = np.where(rng.random(500) < 0.7, truth, labels[rng.integers(0, 3, 500)])
    write_records(
        tmp_path / "logs",
        [
            PredictionRecord(
                model="mail", version=1, request_id=f"r{i}", inputs={"x": 1.0}, outputs={"predict": str(p)}
            )
            for i, p in enumerate(predicted)
        ],
    )
    store = FeedbackStore(tmp_path / "fb")
    store.add("mail", [FeedbackRecord(key=f"r{i}", label=str(t)) for i, t in enumerate(truth)])
    report = live_metrics(LogReader(tmp_path / "logs"), store, model="mail")
    point = report.overall[0]
    assert report.task == "classification"
    assert report.positive_label is None
    assert point.metrics["accuracy"] == pytest.approx(metrics.accuracy_score(truth, predicted))
    for name, fn in (
        ("precision", metrics.precision_score),
        ("recall", metrics.recall_score),
        ("f1", metrics.f1_score),
    ):
        assert point.metrics[name] == pytest.approx(fn(truth, predicted, average="macro")), name
    assert point.metrics["roc_auc"] is None


IRIS_CLASSES = ("setosa", "versicolor", "virginica")
IRIS_SIGNATURE = Signature(
    kind="tabular",
    columns=(ColumnSpec(name="x", type="float", dtype="float64"),),
    outputs=(
        OutputSpec(name="predict", kind="label", dtype="object", classes=IRIS_CLASSES),
        OutputSpec(name="predict_proba", kind="probabilities", dtype="float64", shape=(-1, 3), classes=IRIS_CLASSES),
    ),
)


def log_multiclass(version: int, proba: np.ndarray, classes: Sequence[str] = IRIS_CLASSES) -> list[PredictionRecord]:
    """One request per row with ``predict_proba``: rows 0-9 in the hour from NOW - 4h, even rows in the
    hour from NOW - 6h, odd ones in the next."""
    return [
        PredictionRecord(
            model="iris", version=version, request_id=f"v{version}-{i}", inputs={"x": 1.0},
            ts=NOW - timedelta(hours=6) + timedelta(hours=2 if i < 10 else i % 2, minutes=i % 60),
            outputs={"predict": classes[int(np.argmax(row))], "predict_proba": [float(p) for p in row]},
        )
        for i, row in enumerate(proba)
    ]  # fmt: skip


def test_multiclass_roc_auc_is_sklearns_one_vs_rest_macro_average(tmp_path: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    iris = load_iris()
    truth = np.asarray(iris.target_names)[iris.target]
    # Two sepal features only, so the classes overlap and the AUC is well below 1.
    model = LogisticRegression(max_iter=1000).fit(iris.data[:, :2], truth)
    assert tuple(model.classes_) == IRIS_CLASSES
    proba1 = model.predict_proba(iris.data[:, :2])
    # Version 2: coarse, noisy probabilities (many ties) that still sum to one.
    rng = np.random.default_rng(5)
    raw = np.eye(3)[iris.target] + rng.random((150, 3)) * 1.5
    proba2 = np.round(raw / raw.sum(axis=1, keepdims=True), 1)
    proba2[:, 2] = 1 - proba2[:, 0] - proba2[:, 1]
    write_records(tmp_path / "logs", log_multiclass(1, proba1) + log_multiclass(2, proba2))
    store = FeedbackStore(tmp_path / "fb")
    store.add("iris", [FeedbackRecord(key=f"v{v}-{i}", label=str(t)) for v in (1, 2) for i, t in enumerate(truth)])

    report = live_metrics(
        LogReader(tmp_path / "logs"), store, model="iris", signature=IRIS_SIGNATURE, bucket_s=3600,
        window=Window.last("2d", now=NOW + timedelta(days=1)),
    )  # fmt: skip

    def expected(rows: np.ndarray, proba: np.ndarray) -> float:
        return float(
            metrics.roc_auc_score(
                truth[rows], proba[rows], multi_class="ovr", average="macro", labels=list(IRIS_CLASSES)
            )
        )

    assert report.positive_label is None
    overall = {p.version: p for p in report.overall}
    assert overall[1].n == overall[2].n == 150
    every = np.ones(150, dtype=bool)
    assert 0.6 < expected(every, proba1) < 0.95
    assert overall[1].metrics["roc_auc"] == pytest.approx(expected(every, proba1))
    assert overall[2].metrics["roc_auc"] == pytest.approx(expected(every, proba2))
    assert overall[1].metrics["accuracy"] == pytest.approx(
        metrics.accuracy_score(truth, np.asarray(IRIS_CLASSES)[proba1.argmax(axis=1)])
    )
    # Per hour: even and odd rows (from 10 on) each hold every class; rows 0-9 are all setosa (iris
    # is sorted by class), so the one-vs-rest AUC of their hour is undefined.
    series = {(p.version, p.start): p for p in report.series}
    rows = np.arange(150)
    for version, proba in ((1, proba1), (2, proba2)):
        for hour, mask in ((0, (rows >= 10) & (rows % 2 == 0)), (1, (rows >= 10) & (rows % 2 == 1))):
            point = series[(version, NOW - timedelta(hours=6 - hour))]
            assert point.n == int(mask.sum())
            assert point.metrics["roc_auc"] == pytest.approx(expected(mask, proba)), (version, hour)
        setosa = series[(version, NOW - timedelta(hours=4))]
        assert setosa.n == 10
        assert setosa.metrics["roc_auc"] is None
    assert report.to_dict()["overall"][0]["roc_auc"] == pytest.approx(expected(every, proba1))


def test_multiclass_roc_auc_is_undefined_without_every_class_or_probabilities(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    proba = rng.dirichlet(np.ones(3), 90)
    truth = np.asarray(["setosa", "versicolor"])[rng.integers(0, 2, 90)]  # virginica never the truth
    records = log_multiclass(1, proba)
    # Version 2: every class is the truth, but no probability was logged.
    records += [
        PredictionRecord(model="iris", version=2, request_id=f"v2-{i}", inputs={"x": 1.0}, outputs={"predict": t})
        for i, t in enumerate(IRIS_CLASSES * 10)
    ]
    # Version 3: probabilities, and a truth the model does not know besides its three classes.
    other = np.asarray([*IRIS_CLASSES, "rose"])[np.arange(90) % 4]
    records += log_multiclass(3, proba)
    write_records(tmp_path / "logs", records)
    store = FeedbackStore(tmp_path / "fb")
    store.add("iris", [FeedbackRecord(key=f"v1-{i}", label=str(t)) for i, t in enumerate(truth)])
    store.add("iris", [FeedbackRecord(key=f"v2-{i}", label=t) for i, t in enumerate(IRIS_CLASSES * 10)])
    store.add("iris", [FeedbackRecord(key=f"v3-{i}", label=str(t)) for i, t in enumerate(other)])

    report = live_metrics(LogReader(tmp_path / "logs"), store, model="iris", signature=IRIS_SIGNATURE)

    overall = {p.version: p for p in report.overall}
    assert {v: p.n for v, p in overall.items()} == {1: 90, 2: 30, 3: 90}
    with pytest.warns(UndefinedMetricWarning):  # scikit-learn: NaN, not a number
        assert np.isnan(
            metrics.roc_auc_score(truth, proba, multi_class="ovr", average="macro", labels=list(IRIS_CLASSES))
        )
    assert overall[1].metrics["roc_auc"] is None
    assert overall[1].metrics["accuracy"] is not None
    assert overall[2].metrics["roc_auc"] is None
    assert overall[2].metrics["accuracy"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="labels"):
        metrics.roc_auc_score(other, proba, multi_class="ovr", average="macro", labels=list(IRIS_CLASSES))
    assert overall[3].metrics["roc_auc"] is None
    # The same rows with every truth among the classes do have an AUC: what was undefined was the truth.
    known = other != "rose"
    assert (
        0.0
        < float(metrics.roc_auc_score(other[known], proba[known], multi_class="ovr", labels=list(IRIS_CLASSES)))
        < 1.0
    )


def test_regression_metrics_match_sklearn(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    truth = rng.normal(100, 15, 400)
    predicted = truth + rng.normal(0, 5, 400)
    write_records(
        tmp_path / "logs",
        [
            PredictionRecord(
                model="price", version=3, request_id=f"r{i}", inputs={"x": 1.0}, outputs={"predict": float(p)}
            )
            for i, p in enumerate(predicted)
        ],
    )
    store = FeedbackStore(tmp_path / "fb")
    store.add("price", [FeedbackRecord(key=f"r{i}", label=float(t)) for i, t in enumerate(truth)])
    report = live_metrics(LogReader(tmp_path / "logs"), store, model="price")
    assert report.task == "regression"
    point = report.overall[0]
    assert point.version == 3
    assert point.n == 400
    assert point.metrics == pytest.approx(
        {
            "mae": metrics.mean_absolute_error(truth, predicted),
            "rmse": metrics.root_mean_squared_error(truth, predicted),
            "r2": metrics.r2_score(truth, predicted),
        }
    )


def test_rows_of_a_batched_request_are_labelled_by_row(tmp_path: Path) -> None:
    records = request_records(
        model="churn", version=1, request_id="batch-1", inputs=[{"age": 30.0}, {"age": 50.0}, {"age": 70.0}],
        outputs={"predict": np.array([0, 1, 1])}, latency_ms=3.0,
    )  # fmt: skip
    write_records(tmp_path / "logs", records)
    store = FeedbackStore(tmp_path / "fb")
    store.add(
        "churn",
        [FeedbackRecord(key="batch-1", row=0, label=0), FeedbackRecord(key="batch-1", row=2, label=0)],
    )
    report = live_metrics(LogReader(tmp_path / "logs"), store, model="churn", task="classification")
    assert report.overall[0].n == 2
    assert report.overall[0].metrics["accuracy"] == pytest.approx(0.5)


def test_unknown_task_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="Unknown task"):
        live_metrics(LogReader(tmp_path), FeedbackStore(tmp_path), model="churn", task="ranking")  # type: ignore[arg-type]


def test_confusion_arithmetic_and_label_order() -> None:
    counts = {("1", "1"): 3, ("1", "0"): 1, ("0", "1"): 2, ("0", "0"): 4}
    scores = classification_metrics(counts, "1")
    assert scores == pytest.approx({"accuracy": 0.7, "precision": 0.6, "recall": 0.75, "f1": 2 / 3})
    assert sort_labels({"10", "9", "2"}) == ["2", "9", "10"]
    assert sort_labels({"yes", "no"}) == ["no", "yes"]


def test_keys_of_hashed_columns_still_join_and_masked_ones_are_refused(tmp_path: Path) -> None:
    redactor = Redactor(key="a-long-random-secret-key", rules={"churn": {"email": "hash", "phone": "mask"}})
    writer = PredictionLogWriter(tmp_path / "logs", redactor=redactor, flush_interval_s=0.05)
    writer.start()
    for i in range(4):
        writer.log(
            PredictionRecord(
                model="churn", version=1, request_id=f"r{i}", inputs={"email": f"u{i}@x.org", "phone": "555"},
                outputs={"predict": i % 2},
            )
        )  # fmt: skip
    writer.stop()
    assert "u1@x.org" not in "".join(p.read_bytes().decode("latin-1") for p in (tmp_path / "logs").rglob("*.parquet"))
    store = FeedbackStore(tmp_path / "fb", redactor=redactor)
    store.add("churn", parse_feedback([{"key": f"u{i}@x.org", "label": 1} for i in range(4)], key_column="email"))
    report = live_metrics(LogReader(tmp_path / "logs"), store, model="churn", task="classification")
    assert report.overall[0].n == 4
    assert report.overall[0].metrics["accuracy"] == pytest.approx(0.5)
    with pytest.raises(ValidationError, match="'mask' redaction") as info:
        store.add("churn", parse_feedback([{"key": "555", "label": 1}], key_column="phone"))
    assert "request id" in (info.value.hint or "")
