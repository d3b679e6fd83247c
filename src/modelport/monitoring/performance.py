"""Live model quality: logged predictions joined to ground-truth feedback, per version and over time.

Classification: accuracy, precision, recall, F1 (binary for the positive class when there are two
labels, macro-averaged otherwise, as scikit-learn's defaults) and ROC AUC when the class
probabilities were logged: binary for the positive class, or for more than two classes (known from
the model's signature) the one-vs-rest macro average, as scikit-learn's
``roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes)``. Regression: MAE,
RMSE and R². The join and the aggregation run in DuckDB (one confusion-count table, one rank-sum
per class for the AUC, sums of errors for regression); Python combines a handful of counts per
group. Feedback joins by request id, or by a key column of the logged inputs, and the newest
feedback per key wins (see :mod:`modelport.monitoring.feedback`). Predictions are placed in time
by when they were made, not when their label arrived.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from modelport.core.errors import ValidationError
from modelport.core.types import Signature
from modelport.monitoring.feedback import FeedbackStore, normalise_label
from modelport.monitoring.logview import VIEW, LogReader, LogSession, label_sql, quote_literal
from modelport.monitoring.window import Window, bucket_seconds, bucket_sql

Task = Literal["classification", "regression"]
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
REGRESSION_METRICS = ("mae", "rmse", "r2")
MAX_DISTINCT_CLASSES = 50
"""Above this many distinct labels, numeric ground truth is taken as a regression target."""


@dataclass(frozen=True, slots=True)
class QualityPoint:
    """Live metrics of one group of labelled predictions.

    Attributes:
        version: Model version.
        start: Start of the time bucket (``None`` for the whole window).
        n: Labelled predictions in the group.
        metrics: Metric name → value (``None`` when undefined, e.g. ROC AUC with one class, or
            with more than two classes when one of the model's classes is never the truth).
    """

    version: int | None
    start: datetime | None
    n: int
    metrics: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """``{"version", "t", "n", <metric>: value, ...}``."""
        return {
            "version": self.version,
            "t": self.start.isoformat() if self.start is not None else None,
            "n": self.n,
            **self.metrics,
        }


@dataclass(frozen=True, slots=True)
class PerformanceReport:
    """Live metrics of a model over a window.

    Attributes:
        model: Model name.
        task: ``classification`` or ``regression`` (``None`` when nothing was labelled).
        window: The time window (of prediction times).
        bucket_s: Width of the time buckets of ``series``.
        overall: One point per version over the whole window.
        series: One point per version and time bucket.
        labelled: Labelled predictions in the window.
        positive_label: The positive class of binary metrics, if binary.
    """

    model: str
    task: Task | None
    window: Window
    bucket_s: int
    overall: tuple[QualityPoint, ...]
    series: tuple[QualityPoint, ...]
    labelled: int
    positive_label: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: ``{"model", "task", "window", "bucket_s", "labelled", "overall", "points"}``."""
        return {
            "model": self.model,
            "task": self.task,
            "window": self.window.describe(),
            "bucket_s": self.bucket_s,
            "labelled": self.labelled,
            "positive_label": self.positive_label,
            "overall": [p.to_dict() for p in self.overall],
            "points": [p.to_dict() for p in self.series],
        }


def live_metrics(
    reader: LogReader,
    feedback: FeedbackStore,
    *,
    model: str,
    version: int | None = None,
    window: Window | None = None,
    task: Task | None = None,
    signature: Signature | None = None,
    positive_label: object = None,
    bucket_s: int | None = None,
) -> PerformanceReport:
    """Join ``model``'s logged predictions in ``window`` to their feedback and compute live metrics.

    Args:
        reader: The prediction log.
        feedback: Where the ground truth is stored.
        model: Model name.
        version: Only this version (default: every version, each reported apart).
        window: Window of prediction times; default the whole log.
        task: ``classification`` or ``regression``; default from ``signature``, else from the labels.
        signature: The model's signature (its ``predict`` output tells the task and the classes).
        positive_label: Positive class for binary precision/recall/F1/AUC; default the greater of
            the two labels (scikit-learn's ``classes_[1]``: ``1``, ``true``, ``yes``...). Given for
            more than two classes, the one-vs-rest AUC is not reported.
        bucket_s: Time-series bucket width in seconds; default from the window length.

    Raises:
        ValidationError: ``task`` is not ``classification`` or ``regression``.
    """
    if task is not None and task not in ("classification", "regression"):
        raise ValidationError(f"Unknown task {task!r}.", hint="Use 'classification' or 'regression'.")
    window = window or Window()
    if not feedback.has_feedback(model) or not reader.has_logs(model):
        return _empty(model, window, bucket_s or 3600)
    folder = feedback.directory / f"model={model}"
    with reader.session(model, extra_views={"feedback": folder}) as session:
        bucket = bucket_s or _bucket_for(session, model, version, window)
        classes = _class_order(signature)
        joined = _joined_sql(session, model=model, version=version, window=window, bucket=bucket, classes=classes)
        if joined is None:
            return _empty(model, window, bucket)
        sql, params = joined
        session.connection.execute(f"CREATE TEMP TABLE labelled AS {sql}", params)
        labelled = int(session.fetch("SELECT count(*) FROM labelled")[0][0])
        if labelled == 0:
            return _empty(model, window, bucket)
        kind = task or _task_from_signature(signature) or _guess_task(session)
        if kind == "regression":
            overall, series = _regression(session)
            positive = None
        else:
            labels = _labels(session, classes)
            positive = normalise_label(positive_label)[0] if positive_label is not None else None
            if positive is None and len(labels) == 2:
                positive = sort_labels(labels)[1]
            order = classes or sort_labels(labels)
            score_index = order.index(positive) + 1 if positive in order and len(order) == 2 else None
            # One-vs-rest over the model's classes: their order is the logged probabilities' order.
            multiclass = classes if classes is not None and len(classes) > 2 and positive is None else None
            overall, series = _classification(session, positive, score_index, multiclass)
    return PerformanceReport(
        model=model,
        task=kind,
        window=window,
        bucket_s=bucket,
        overall=tuple(overall),
        series=tuple(series),
        labelled=labelled,
        positive_label=positive,
    )


def _empty(model: str, window: Window, bucket: int) -> PerformanceReport:
    return PerformanceReport(model=model, task=None, window=window, bucket_s=bucket, overall=(), series=(), labelled=0)


def _bucket_for(session: LogSession, model: str, version: int | None, window: Window) -> int:
    if window.start is not None and window.end is not None:
        return bucket_seconds(window.end - window.start)
    where, params = session.scope(model=model, version=version, window=window)
    low, high = session.fetch(f"SELECT min(ts), max(ts) FROM {VIEW} WHERE {where}", params)[0]
    if low is None or high is None:
        return 3600
    return bucket_seconds((window.end or high) - (window.start or low))


def _joined_sql(
    session: LogSession, *, model: str, version: int | None, window: Window, bucket: int, classes: list[str] | None
) -> tuple[str, list[Any]] | None:
    """SQL of the labelled predictions: version, bucket, predicted/true label and value, class probabilities."""
    predicted_label = session.output_sql("predict", numeric=False)
    predicted_value = session.output_sql("predict", numeric=True)
    if predicted_label is None or predicted_value is None:
        return None
    where, params = session.scope(model=model, version=version, window=window)
    if "status" in session.columns:
        where += " AND status = 'ok'"
    key_columns = [
        str(r[0]) for r in session.fetch("SELECT DISTINCT key_column FROM feedback WHERE key_kind = 'key'") if r[0]
    ]
    keys = []
    for column in key_columns:
        expr = session.input_sql(column, numeric=False)
        if expr is not None:
            keys.append((column, expr))
    key_selects = "".join(f", {expr} AS k{i}" for i, (_, expr) in enumerate(keys))
    # Key values meet the logged inputs in the normalised spelling of both (label_sql); request ids as sent.
    normalised = f"CASE WHEN key_kind = 'key' THEN {label_sql('key')} ELSE key END"
    latest = (
        f"SELECT key_kind, key_column, {normalised} AS key, row, label, value, received_at FROM feedback "
        "QUALIFY row_number() OVER (PARTITION BY key_kind, coalesce(key_column, ''), "
        f"{normalised}, coalesce(row, -1) ORDER BY received_at DESC) = 1"
    )
    joins = [
        "SELECT p.*, f.label AS y_label, f.value AS y_value FROM pred p JOIN fb f "
        "ON f.key_kind = 'request_id' AND f.key = p.request_id AND (f.row IS NULL OR f.row = p.row_)"
    ]
    for i, (column, _) in enumerate(keys):
        joins.append(
            "SELECT p.*, f.label AS y_label, f.value AS y_value FROM pred p JOIN fb f "
            f"ON f.key_kind = 'key' AND f.key_column = {quote_literal(column)} AND f.key = p.k{i}"
        )
    score = _score_column(session, classes)
    sql = (
        f"WITH fb AS ({latest}), "
        f"pred AS (SELECT version, {bucket_sql('ts', bucket)} AS bucket, CAST(request_id AS VARCHAR) AS request_id, "
        f"{'row' if 'row' in session.columns else '0'} AS row_, "
        f"{predicted_label} AS p_label, {predicted_value} AS p_value{score}{key_selects} "
        f"FROM {VIEW} WHERE {where}) "
        f"SELECT version, bucket, p_label, p_value, {'scores' if score else 'NULL::DOUBLE[]'} AS scores, "
        "y_label, y_value FROM (" + " UNION ALL ".join(joins) + ")"
    )
    return sql, params


def _score_column(session: LogSession, classes: list[str] | None) -> str:
    """``, [p0, p1, ...] AS scores``: the logged probability of each class, in class order.

    Without the model's classes, those of a binary classifier (two probabilities).
    """
    names = classes if classes is not None else ["0", "1"]
    if len(names) < 2:
        return ""
    columns = [session.probability_sql(i, name) for i, name in enumerate(names)]
    if any(c is None for c in columns):
        return ""
    return f", [{', '.join(str(c) for c in columns)}] AS scores"


def _class_order(signature: Signature | None) -> list[str] | None:
    classes = signature.classes if signature is not None else None
    return [normalise_label(c)[0] for c in classes] if classes else None


def _task_from_signature(signature: Signature | None) -> Task | None:
    spec = signature.output("predict") if signature is not None else None
    if spec is None:
        return None
    if spec.kind == "regression":
        return "regression"
    if spec.kind == "label" or spec.classes:
        return "classification"
    return None


def _guess_task(session: LogSession) -> Task:
    distinct, non_integer, non_numeric = session.fetch(
        "SELECT count(DISTINCT y_label), count(*) FILTER (WHERE y_value IS NOT NULL AND y_value <> floor(y_value)), "
        "count(*) FILTER (WHERE y_value IS NULL) FROM labelled"
    )[0]
    if non_numeric == 0 and (non_integer > 0 or distinct > MAX_DISTINCT_CLASSES):
        return "regression"
    return "classification"


def _regression(session: LogSession) -> tuple[list[QualityPoint], list[QualityPoint]]:
    def query(group: str) -> list[QualityPoint]:
        rows = session.fetch(
            f"SELECT version, {group}, count(*), avg(abs(p_value - y_value)), avg((p_value - y_value) ^ 2), "
            "var_pop(y_value) FROM labelled WHERE p_value IS NOT NULL AND y_value IS NOT NULL "
            f"GROUP BY ALL ORDER BY ALL"
        )
        points = []
        for version, start, n, mae, mse, variance in rows:
            points.append(
                QualityPoint(version=version, start=start, n=int(n), metrics=_regression_metrics(mae, mse, variance))
            )
        return points

    return query("NULL::TIMESTAMPTZ AS bucket"), query("bucket")


def _regression_metrics(mae: float, mse: float, variance: float | None) -> dict[str, float | None]:
    # A constant target: scikit-learn's force_finite convention (1 when perfect, else 0).
    r2 = (1.0 if mse == 0 else 0.0) if variance is None or variance <= 0 else 1.0 - mse / variance
    return {"mae": float(mae), "rmse": math.sqrt(mse), "r2": float(r2)}


def _labels(session: LogSession, classes: list[str] | None) -> set[str]:
    """Every label seen as truth or prediction, plus the model's declared classes."""
    rows = session.fetch("SELECT DISTINCT y_label FROM labelled UNION SELECT DISTINCT p_label FROM labelled")
    return {str(r[0]) for r in rows if r[0] is not None} | set(classes or ())


def sort_labels(labels: Sequence[str] | set[str]) -> list[str]:
    """Labels in scikit-learn's order: numerically when all are numbers, else as text."""
    values = list(labels)
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


def _classification(
    session: LogSession, positive: str | None, score_index: int | None, multiclass: list[str] | None = None
) -> tuple[list[QualityPoint], list[QualityPoint]]:
    def query(group: str) -> list[QualityPoint]:
        confusion: dict[tuple[Any, Any], dict[tuple[str, str], int]] = defaultdict(dict)
        for version, start, y, p, n in session.fetch(
            f"SELECT version, {group}, y_label, coalesce(p_label, ''), count(*) FROM labelled GROUP BY ALL"
        ):
            confusion[(version, start)][(str(y), str(p))] = int(n)
        if multiclass is not None:
            aucs = _ovr_auc(session, group, multiclass)
        else:
            aucs = _auc(session, group, positive, score_index)
        points = []
        for (version, start), counts in sorted(confusion.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1] or 0)):
            metrics = classification_metrics(counts, positive)
            metrics["roc_auc"] = aucs.get((version, start))
            points.append(QualityPoint(version=version, start=start, n=sum(counts.values()), metrics=metrics))
        return points

    return query("NULL::TIMESTAMPTZ AS bucket"), query("bucket")


def classification_metrics(counts: dict[tuple[str, str], int], positive: str | None) -> dict[str, float | None]:
    """Accuracy, precision, recall and F1 from confusion counts ``{(true, predicted): n}``.

    Binary (``positive`` given): the scores of the positive class. Otherwise macro averages over
    every label seen as truth or prediction. Undefined ratios count as 0, like scikit-learn's
    ``zero_division`` default.
    """
    total = sum(counts.values())
    correct = sum(n for (y, p), n in counts.items() if y == p)
    labels = {y for y, _ in counts} | {p for _, p in counts}
    scores = {label: _class_scores(counts, label) for label in labels}
    if positive is not None:
        precision, recall, f1 = scores.get(positive, (0.0, 0.0, 0.0))
    else:
        precision = sum(s[0] for s in scores.values()) / len(scores)
        recall = sum(s[1] for s in scores.values()) / len(scores)
        f1 = sum(s[2] for s in scores.values()) / len(scores)
    return {"accuracy": correct / total if total else None, "precision": precision, "recall": recall, "f1": f1}


def _class_scores(counts: dict[tuple[str, str], int], label: str) -> tuple[float, float, float]:
    tp = counts.get((label, label), 0)
    predicted = sum(n for (_, p), n in counts.items() if p == label)
    actual = sum(n for (y, _), n in counts.items() if y == label)
    precision = tp / predicted if predicted else 0.0
    recall = tp / actual if actual else 0.0
    f1 = 2 * tp / (predicted + actual) if predicted + actual else 0.0
    return precision, recall, f1


def _auc(
    session: LogSession, group: str, positive: str | None, score_index: int | None
) -> dict[tuple[Any, Any], float | None]:
    """Binary ROC AUC per group from the Mann-Whitney rank sum (ties get their average rank)."""
    if positive is None or score_index is None:
        return {}
    score = f"scores[{int(score_index)}]"
    if not session.fetch(f"SELECT count(*) FROM labelled WHERE {score} IS NOT NULL")[0][0]:
        return {}
    rows = session.fetch(
        f"WITH s AS (SELECT version, {group}, {score} AS score, y_label = ? AS positive FROM labelled "
        f"WHERE {score} IS NOT NULL), "
        "r AS (SELECT *, rank() OVER (PARTITION BY version, bucket ORDER BY score) "
        "+ (count(*) OVER (PARTITION BY version, bucket, score) - 1) / 2.0 AS avg_rank FROM s) "
        "SELECT version, bucket, sum(avg_rank) FILTER (WHERE positive), count(*) FILTER (WHERE positive), "
        "count(*) FILTER (WHERE NOT positive) FROM r GROUP BY version, bucket",
        [positive],
    )
    result: dict[tuple[Any, Any], float | None] = {}
    for version, start, rank_sum, n_pos, n_neg in rows:
        if not n_pos or not n_neg:
            result[(version, start)] = None
            continue
        result[(version, start)] = (float(rank_sum) - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    return result


def _ovr_auc(session: LogSession, group: str, classes: list[str]) -> dict[tuple[Any, Any], float | None]:
    """One-vs-rest macro ROC AUC per group over ``classes`` (the order of the logged probabilities).

    Each class's AUC is the Mann-Whitney rank sum of its probability, as in :func:`_auc`, over the
    rows whose every class probability was logged; the mean of them is scikit-learn's
    ``roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes)``. Undefined
    (``None``) in a group where some class is never the truth (fewer than two classes present
    included), or where the truth is a label outside ``classes``: scikit-learn gives NaN or raises.
    """
    complete = f"list_count(scores) = {len(classes)}"
    if not session.fetch(f"SELECT count(*) FROM labelled WHERE {complete}")[0][0]:
        return {}
    rows = session.fetch(
        f"WITH s AS (SELECT version, {group}, y_label, scores FROM labelled WHERE {complete}), "
        "c AS (SELECT unnest(l) AS label, generate_subscripts(l, 1) AS i FROM (SELECT ?::VARCHAR[] AS l)), "
        "u AS (SELECT s.version, s.bucket, c.i, s.scores[c.i] AS score, s.y_label = c.label AS positive "
        "FROM s CROSS JOIN c), "
        "r AS (SELECT *, rank() OVER (PARTITION BY version, bucket, i ORDER BY score) "
        "+ (count(*) OVER (PARTITION BY version, bucket, i, score) - 1) / 2.0 AS avg_rank FROM u) "
        "SELECT version, bucket, sum(avg_rank) FILTER (WHERE positive), count(*) FILTER (WHERE positive), "
        "count(*) FROM r GROUP BY version, bucket, i",
        [classes],
    )
    per_class: dict[tuple[Any, Any], list[tuple[float, int, int]]] = defaultdict(list)
    for version, start, rank_sum, n_pos, n in rows:
        per_class[(version, start)].append((float(rank_sum or 0.0), int(n_pos), int(n)))
    result: dict[tuple[Any, Any], float | None] = {}
    for key, counts in per_class.items():
        n = counts[0][2]
        # Every class among the truth, and every truth among the classes (the positives add up to n).
        if any(n_pos == 0 for _, n_pos, _ in counts) or sum(n_pos for _, n_pos, _ in counts) != n:
            result[key] = None
        else:
            aucs = [(rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * (n - n_pos)) for rank_sum, n_pos, _ in counts]
            result[key] = sum(aucs) / len(aucs)
    return result
