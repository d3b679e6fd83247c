"""Holdout metrics, chosen from the model's output kind, and the champion/challenger comparison.

Classifiers (``predict`` of kind ``label``) are scored by accuracy, macro F1 and, when they have
probabilities, ROC AUC (one-vs-rest for more than two classes); regressors by MAE and RMSE.
A challenger may be worse than the champion by at most the tolerance: an absolute drop for
accuracy, F1 and AUC, a relative increase for MAE and RMSE (whose scale is the target's).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd

from modelport.core.types import Signature
from modelport.governance.holdout import Holdout
from modelport.runtime.predictor import Predictor

Task = Literal["classification", "regression"]

HIGHER_IS_BETTER = {"accuracy": True, "f1": True, "auc": True, "mae": False, "rmse": False}
"""Every metric modelport computes, and whether a larger value is better."""


def task_of(signature: Signature) -> Task | None:
    """``classification`` or ``regression`` from the kind of the ``predict`` output; ``None`` for tensors."""
    output = signature.output("predict")
    if output is None:
        return None
    return {"label": "classification", "regression": "regression"}.get(output.kind)  # type: ignore[return-value]


def score(predictor: Predictor, holdout: Holdout) -> dict[str, float]:
    """The metrics of ``predictor`` on the holdout rows (see the module docstring).

    Raises:
        ValidationError: The holdout does not fit the model's signature.
    """
    task = task_of(predictor.signature)
    features = model_columns(predictor.signature, holdout.features)
    truth = holdout.labels
    if task == "regression":
        errors = np.asarray(predictor.predict(features), dtype=np.float64) - truth.astype(np.float64)
        return {"mae": float(np.mean(np.abs(errors))), "rmse": float(math.sqrt(np.mean(errors**2)))}
    from sklearn.metrics import f1_score

    predicted = np.asarray(predictor.predict(features))
    truth_s, predicted_s = _as_labels(truth), _as_labels(predicted)
    metrics = {
        "accuracy": float(np.mean(truth_s == predicted_s)),
        "f1": float(f1_score(truth_s, predicted_s, average="macro", zero_division=0)),
    }
    auc = _auc(predictor, features, truth_s)
    if auc is not None:
        metrics["auc"] = auc
    return metrics


def model_columns(signature: Signature, frame: pd.DataFrame) -> pd.DataFrame:
    """The columns of ``frame`` a tabular model takes, in signature order (others would only warn).

    When a column is missing the frame is returned whole, so the predictor names it in its error.
    """
    names = list(signature.column_names)
    if signature.kind != "tabular" or not all(name in frame.columns for name in names):
        return frame
    return frame[names]


def _as_labels(values: np.ndarray) -> np.ndarray:
    """Labels as strings, so that ``1`` read from a CSV and a model's ``1`` or ``"1"`` compare equal."""
    return np.asarray([str(v.item() if isinstance(v, np.generic) else v) for v in values], dtype=object)


def _auc(predictor: Predictor, features: object, truth: np.ndarray) -> float | None:
    """ROC AUC, or ``None`` when it is undefined: no probabilities, or holdout labels and model classes differ."""
    if not predictor.has_proba or predictor.classes is None:
        return None
    classes = [str(c.item() if isinstance(c, np.generic) else c) for c in predictor.classes]
    if set(truth) != set(classes):
        return None
    from sklearn.metrics import roc_auc_score

    proba = np.asarray(predictor.predict_proba(features), dtype=np.float64)
    if len(classes) == 2:
        return float(roc_auc_score(truth == classes[1], proba[:, 1]))
    return float(roc_auc_score(truth, proba, multi_class="ovr", labels=classes))


def regressions(champion: dict[str, float], challenger: dict[str, float], tolerance: float) -> list[str]:
    """Each metric on which the challenger is worse than the champion beyond ``tolerance``, as a sentence."""
    worse = []
    for name, theirs in champion.items():
        mine = challenger.get(name)
        if mine is None:
            continue
        if HIGHER_IS_BETTER[name]:
            if mine < theirs - tolerance:
                worse.append(f"{name} {mine:.4f} < champion {theirs:.4f} - {tolerance:g}")
        elif mine > theirs * (1 + tolerance) + 1e-12:
            worse.append(f"{name} {mine:.4g} > champion {theirs:.4g} x (1 + {tolerance:g})")
    return worse
