"""The quickstart: train a sample model, bundle, register, promote, predict — on embedded defaults.

Each step reports through a callback so the CLI can render it; the function itself prints nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelport.core.settings import Settings

from .context import open_registry
from .models import load_model, save_model

QUICKSTART_MODEL = "quickstart-model"

Step = Callable[[str, str], None]
"""Called as ``step(title, detail)`` after each quickstart step."""


@dataclass
class QuickstartResult:
    """What the quickstart did, for the CLI to summarise."""

    name: str
    version: int
    accuracy: float
    sample_predictions: list[Any]
    home: Path
    files: dict[str, Path] = field(default_factory=dict)


def run_quickstart(settings: Settings, *, step: Step | None = None, online: bool = True) -> QuickstartResult:
    """Train a breast-cancer classifier, register it, promote it to ``production`` and predict.

    Runs idempotently: a second run registers the next version and moves the alias. With
    ``online`` it also serves the model on a local port, checks that the V2, V1 and MLflow
    protocols answer like :meth:`Predictor.predict`, and sends traffic with one shifted feature
    plus ground-truth feedback, for drift and live accuracy.
    """
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    report = step or (lambda title, detail: None)
    data = load_breast_cancer(as_frame=True)
    features, target = data.data, data.target
    x_train, x_test, y_train, y_test = train_test_split(features, target, test_size=0.25, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(x_train, y_train)
    accuracy = float(model.score(x_test, y_test))
    report("Trained", f"StandardScaler + LogisticRegression on load_breast_cancer (test accuracy {accuracy:.3f})")

    registry = open_registry(settings)
    mv = save_model(
        model,
        QUICKSTART_MODEL,
        sample_input=x_train.head(100),
        reference_data=x_train,
        metrics={"accuracy": accuracy},
        tags={"dataset": "sklearn.datasets.load_breast_cancer", "task": "binary classification"},
        description="Quickstart: breast cancer malignancy classifier",
        registry=registry,
        reason="quickstart",
    )
    report("Bundled and registered", f"{mv.name}:{mv.version} ({mv.flavor}, hashes verified)")

    registry.set_alias(mv.name, "production", mv.version, reason="quickstart promotion")
    report("Promoted", f"{mv.name}@production → version {mv.version}")

    predictor = load_model(f"{mv.name}@production", registry=registry)
    predictions = predictor.predict(x_test.head(5)).tolist()
    report("Predicted locally", f"first 5 test rows → {predictions} (truth {y_test.head(5).tolist()})")

    home = settings.home.resolve()
    samples = home / "quickstart"
    samples.mkdir(parents=True, exist_ok=True)
    input_csv = samples / "patients.csv"
    x_test.to_csv(input_csv, index=False)
    y_test.rename("label").to_frame().assign(row=range(len(y_test))).to_csv(samples / "labels.csv", index=False)

    from .scoring import score

    scores = samples / "scores.parquet"
    job = score(f"{mv.name}@production", str(input_csv), str(scores), settings=settings, registry=registry, proba=True)
    report(
        "Batch-scored",
        f"{job.rows_written} rows at {job.rows_per_s:,.0f} rows/s into {scores} (run {job.run_id}, with probabilities)",
    )

    if online:
        from .quickstart_online import SHIFTED_FEATURE, run_online

        seen = run_online(settings, registry, predictor, x_test, y_test)
        agree = ", ".join(f"{k} {'=' if ok else '≠'} Predictor.predict" for k, ok in seen.protocols_agree.items())
        report("Served", f"{mv.name}@production on a local port via {seen.runtime}: {agree}")
        report(
            "Sent traffic",
            f"{seen.rows} held-out rows in {seen.requests} V2 requests with '{SHIFTED_FEATURE}' shifted by +2 std, "
            f"then {seen.feedback} true labels as feedback",
        )
    return QuickstartResult(
        name=mv.name,
        version=mv.version,
        accuracy=accuracy,
        sample_predictions=predictions,
        home=home,
        files={"input_csv": input_csv, "scores": scores},
    )
