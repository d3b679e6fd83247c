"""Drift: how far the logged inputs and predictions of a window moved from the bundle's reference.

Per numeric feature: PSI over the reference deciles and a two-sample Kolmogorov-Smirnov test;
per categorical feature: PSI and a chi-square test of homogeneity over the reference categories
(unseen values pooled in one bucket); for every feature: the change of the missing rate. The same
tests run on the ``predict`` output against the reference predictions. Everything works from the
stored reference statistics alone (quantiles, frequencies, counts), never the training data.

The window is read in one DuckDB scan: for each numeric feature, DuckDB's ``histogram`` with
explicit boundaries counts the window's values at about a thousand points (the reference
quantiles, the points just below them, and a fine grid between them), which gives the window's
empirical CDF exactly at those points; categorical features are counted by ``histogram`` too.
Python then only compares a few thousand numbers, whatever the number of logged rows.

Thresholds are sample-size aware: a test flags drift only when it is significant at its ``alpha``
for the two sample sizes involved *and* the effect is large enough to matter (KS statistic,
Cramér's V, PSI above the noise level of a window this small). For a continuous feature, the
window's size is its number of distinct values: replayed or resampled traffic repeats rows, which
adds no information and must not make sampling noise look significant.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np

from modelport.core.errors import ValidationError
from modelport.core.types import Signature
from modelport.monitoring import divergence
from modelport.monitoring.feedback import normalise_label
from modelport.monitoring.logview import VIEW, LogReader, LogSession, label_sql
from modelport.monitoring.window import Window

OTHER = "__other__"
PREDICTION = "predict"
FeatureKind = Literal["numeric", "categorical"]
Status = Literal["ok", "drift", "insufficient_data", "not_logged", "skipped"]
_FINE_STEPS = 10
CONTINUOUS_SHARE = 0.9
"""A numeric feature whose reference quantiles are at least this share distinct is continuous."""


@dataclass(frozen=True, slots=True)
class DriftThresholds:
    """When a feature counts as drifted. Every field is configurable; the defaults are conventional.

    Attributes:
        psi: PSI above this is drift (0.1-0.2 is a moderate shift, above 0.2 significant).
        ks_alpha: Significance level of the Kolmogorov-Smirnov test.
        ks_min_statistic: Smallest KS statistic that counts, so a huge window is not flagged
            for a shift too small to matter.
        chi2_alpha: Significance level of the chi-square test.
        chi2_min_effect: Smallest Cramér's V that counts.
        missing_rate_change: Absolute change of the missing rate that is drift.
        missing_alpha: Significance level of the missing-rate change (two-proportion z-test).
        noise_alpha: PSI must also exceed the level sampling noise reaches with this probability.
        min_rows: Below this many logged values, a feature gets no verdict (``insufficient_data``).
        family_wise: Divide every ``alpha`` by the number of features tested (Bonferroni), so that
            ``alpha`` bounds the chance that *any* feature of an unchanged model is flagged, however
            many features it has.
    """

    psi: float = 0.2
    ks_alpha: float = 0.01
    ks_min_statistic: float = 0.1
    chi2_alpha: float = 0.01
    chi2_min_effect: float = 0.1
    missing_rate_change: float = 0.1
    missing_alpha: float = 0.01
    noise_alpha: float = 0.01
    min_rows: int = 30
    family_wise: bool = True

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> DriftThresholds:
        """Build from a config mapping, rejecting unknown keys and out-of-range values.

        Raises:
            ValidationError: An unknown key, or a value that is not a positive number.
        """
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValidationError(
                f"Unknown drift threshold {unknown[0]!r}.", hint=f"Known thresholds: {', '.join(sorted(known))}."
            )
        for key, value in values.items():
            if key == "family_wise":
                if not isinstance(value, bool):
                    raise ValidationError(
                        f"Drift threshold family_wise={value!r} is not true or false.", hint="e.g. true"
                    )
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValidationError(
                    f"Drift threshold {key}={value!r} is not a positive number.", hint="e.g. psi: 0.2"
                )
            if key.endswith("alpha") and value >= 1:
                raise ValidationError(f"Drift threshold {key}={value!r} is not below 1.", hint="e.g. ks_alpha: 0.01")
        numbers: dict[str, Any] = {
            k: (v if k == "family_wise" else int(v) if k == "min_rows" else float(v)) for k, v in values.items()
        }
        return cls(**numbers)

    def to_dict(self) -> dict[str, float | bool]:
        """The thresholds as a plain dict."""
        return asdict(self)

    def per_feature(self, features: int) -> DriftThresholds:
        """The thresholds one of ``features`` tested features is held to (see ``family_wise``)."""
        if not self.family_wise or features <= 1:
            return self
        return replace(
            self,
            ks_alpha=self.ks_alpha / features,
            chi2_alpha=self.chi2_alpha / features,
            missing_alpha=self.missing_alpha / features,
            noise_alpha=self.noise_alpha / features,
        )


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """The verdict on one feature (or on the prediction).

    Attributes:
        feature: Column name (``predict`` for the prediction).
        kind: ``numeric`` or ``categorical``.
        status: ``ok``, ``drift``, ``insufficient_data`` (fewer than ``min_rows`` values),
            ``not_logged`` (the log has no such input) or ``skipped`` (excluded, e.g. redacted).
        drift: Whether any test crossed its threshold.
        reasons: Which tests crossed (``psi``, ``ks``, ``chi2``, ``missing_rate``).
        count: Non-missing values in the window.
        reference_count: Non-missing values in the reference.
        statistics: Test statistics (``psi``, ``ks_statistic``, ``ks_pvalue``, ``chi2_statistic``,
            ``chi2_pvalue``, ``cramers_v``, ``missing_rate``, ``reference_missing_rate``,
            ``missing_rate_change``, ``missing_pvalue``).
        thresholds: The thresholds applied to this feature (``psi_threshold`` is the effective,
            noise-aware one; ``ks_critical_value`` the KS statistic at which p = ``ks_alpha``).
    """

    feature: str
    kind: FeatureKind
    status: Status
    drift: bool
    reasons: tuple[str, ...] = ()
    count: int = 0
    reference_count: int = 0
    statistics: dict[str, float | None] = field(default_factory=dict)
    thresholds: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-able form: ``feature``, ``kind``, ``status``, ``drift``, statistics and thresholds."""
        return {
            "feature": self.feature,
            "kind": self.kind,
            "status": self.status,
            "drift": self.drift,
            "reasons": list(self.reasons),
            "count": self.count,
            "reference_count": self.reference_count,
            **self.statistics,
            **self.thresholds,
        }


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Drift of one model (version) over one window.

    Attributes:
        model: Model name.
        version: Version whose log rows were read (``None``: all versions).
        window: The time window.
        rows: Logged predictions in the window.
        features: One verdict per input feature of the reference.
        prediction: The verdict on the ``predict`` output, when the reference has prediction statistics.
        thresholds: The configured thresholds.
    """

    model: str
    version: int | None
    window: Window
    rows: int
    features: tuple[FeatureDrift, ...]
    prediction: FeatureDrift | None
    thresholds: DriftThresholds

    @property
    def drifted_features(self) -> list[str]:
        """Names of the features flagged as drifting."""
        return [f.feature for f in self.features if f.drift]

    @property
    def drift(self) -> bool:
        """Whether any feature, or the prediction, drifted."""
        return bool(self.drifted_features) or (self.prediction is not None and self.prediction.drift)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form.

        ``{"model", "version", "window", "rows", "drift", "drifted_features", "features": [...],
        "prediction", "thresholds"}``; each feature as :meth:`FeatureDrift.to_dict`.
        """
        return {
            "model": self.model,
            "version": self.version,
            "window": self.window.describe(),
            "rows": self.rows,
            "drift": self.drift,
            "drifted_features": self.drifted_features,
            "features": [f.to_dict() for f in self.features],
            "prediction": self.prediction.to_dict() if self.prediction is not None else None,
            "thresholds": self.thresholds.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class _Plan:
    """How one feature is measured: its reference stats and the SQL aggregates that count the window."""

    name: str
    kind: FeatureKind
    reference: Mapping[str, Any]
    value_sql: str | None
    raw_sql: str | None = None  # categorical: the value's plain text (cheap to compare with raw_keys)
    points: np.ndarray | None = None  # numeric: evaluation points of the CDF
    continuous: bool = False  # numeric: the reference has (almost) no repeated quantile
    categories: tuple[str, ...] = ()  # categorical: normalised reference categories
    raw_keys: tuple[str, ...] = ()  # categorical: reference categories as stored
    reference_counts: np.ndarray | None = None  # categorical: reference counts per category (+ other)


def detect_drift(
    reader: LogReader,
    reference: Mapping[str, Any],
    *,
    model: str,
    version: int | None = None,
    window: Window | None = None,
    thresholds: DriftThresholds | None = None,
    signature: Signature | None = None,
    exclude: Collection[str] = (),
) -> DriftReport:
    """Compare the logged inputs and predictions of ``model`` in ``window`` with ``reference``.

    Args:
        reader: The prediction log.
        reference: Reference statistics of the version (``reference/stats.json`` of its bundle,
            format of :mod:`modelport.bundle.reference`).
        model: Model name.
        version: Only rows logged by this version (recommended: each version has its reference).
        window: Time window; default the whole log.
        thresholds: Verdict thresholds; default :class:`DriftThresholds()`.
        signature: The model's signature; tells datetime columns (compared as epoch seconds) apart.
        exclude: Features not to test (e.g. redacted with ``hash``/``mask``/``drop``): reported as ``skipped``.

    Raises:
        ValidationError: ``reference`` is not in the documented format.
    """
    limits = thresholds or DriftThresholds()
    columns = reference.get("columns")
    if not isinstance(columns, Mapping):
        raise ValidationError(
            "Reference statistics have no 'columns'.",
            hint="Re-save the bundle with reference_data so it carries reference/stats.json.",
        )
    window = window or Window()
    datetimes = {c.name for c in signature.columns if c.type == "datetime"} if signature is not None else set()
    with reader.session(model) as session:
        plans = [_plan(session, name, stats, name in datetimes, name in exclude) for name, stats in columns.items()]
        predictions = reference.get("predictions")
        if isinstance(predictions, Mapping) and predictions.get("kind") in ("numeric", "categorical"):
            plans.append(_plan(session, PREDICTION, predictions, False, False, output=True))
        rows, measured = _measure(session, plans, model=model, version=version, window=window)
    each = limits.per_feature(len(measured))
    verdicts = [_verdict(plan, measured.get(plan.name), rows, each, excluded=plan.name in exclude) for plan in plans]
    has_prediction = bool(plans) and plans[-1].name == PREDICTION and isinstance(predictions, Mapping)
    return DriftReport(
        model=model,
        version=version,
        window=window,
        rows=rows,
        features=tuple(verdicts[:-1] if has_prediction else verdicts),
        prediction=verdicts[-1] if has_prediction else None,
        thresholds=limits,
    )


def _plan(
    session: LogSession, name: str, stats: Mapping[str, Any], is_datetime: bool, excluded: bool, *, output: bool = False
) -> _Plan:
    kind: FeatureKind = "categorical" if stats.get("kind") == "categorical" else "numeric"
    if excluded:
        return _Plan(name=name, kind=kind, reference=stats, value_sql=None)
    numeric = kind == "numeric"
    sql = session.output_sql(name, numeric=numeric) if output else session.input_sql(name, numeric=numeric)
    if sql is not None and is_datetime:
        raw = session.input_sql(name, numeric=False)
        sql = f"epoch(TRY_CAST({raw} AS TIMESTAMPTZ))"
    if numeric:
        quantiles = stats.get("quantiles")
        if sql is None or not quantiles:
            return _Plan(name=name, kind=kind, reference=stats, value_sql=None)
        unique_share = len(set(quantiles)) / len(quantiles)
        return _Plan(
            name=name,
            kind=kind,
            reference=stats,
            value_sql=sql,
            points=_evaluation_points(quantiles),
            continuous=unique_share >= CONTINUOUS_SHARE,
        )
    categories, counts = _reference_categories(stats)
    column = "outputs" if output else "inputs"
    return _Plan(
        name=name,
        kind=kind,
        reference=stats,
        value_sql=sql,
        raw_sql=session.raw_text_sql(column, name) if sql is not None else None,
        categories=categories,
        raw_keys=tuple(k for k in (stats.get("frequencies") or {}) if k != OTHER),
        reference_counts=counts,
    )


def _evaluation_points(quantiles: list[float]) -> np.ndarray:
    """The reference quantiles, the points just below them, and a fine grid in between."""
    q = np.asarray(quantiles, dtype=np.float64)
    fractions = np.linspace(0.0, 1.0, _FINE_STEPS, endpoint=False)[1:]
    fine = (q[:-1, None] + (q[1:] - q[:-1])[:, None] * fractions[None, :]).ravel()
    points = np.concatenate([q, np.nextafter(q, -np.inf), fine])
    return np.unique(points[np.isfinite(points)])


def _reference_categories(stats: Mapping[str, Any]) -> tuple[tuple[str, ...], np.ndarray]:
    merged: dict[str, float] = {}
    other = 0.0
    for key, share in (stats.get("frequencies") or {}).items():
        if key == OTHER:
            other += float(share)
            continue
        label = canonical(key)
        merged[label] = merged.get(label, 0.0) + float(share)
    count = float(stats.get("count") or 0)
    categories = tuple(merged)
    counts = np.array([*merged.values(), other], dtype=np.float64) * count
    return categories, counts


def canonical(key: str) -> str:
    """A category as :func:`~modelport.monitoring.feedback.normalise_label` spells it (text it cannot read: as is)."""
    try:
        return normalise_label(key)[0]
    except ValidationError:
        return key


def _measure(
    session: LogSession, plans: list[_Plan], *, model: str, version: int | None, window: Window
) -> tuple[int, dict[str, dict[str, Any]]]:
    """One scan of the window: per plan, the non-missing count and a histogram."""
    where, params = session.scope(model=model, version=version, window=window)
    if "inputs" in session.columns:
        where += " AND inputs IS NOT NULL"
    if "status" in session.columns:
        where += " AND status = 'ok'"
    selects = ["count(*)"]
    select_params: list[Any] = []
    values: list[str] = []
    measured_plans = [p for p in plans if p.value_sql is not None]
    for i, plan in enumerate(measured_plans):
        v = f"v{i}"
        selects.append(f"count({v})")
        selects.append(f"approx_count_distinct({v})" if plan.continuous else "NULL")
        if plan.kind == "numeric":
            values.append(f"{plan.value_sql} AS {v}")
            selects.append(f"histogram({v}, ?::DOUBLE[])")
            select_params.append(plan.points.tolist() if plan.points is not None else [])
        else:
            # Most values match a stored category as they are; only the others pay for normalisation.
            values.append(f"{plan.raw_sql} AS {v}")
            norm = label_sql(v)
            selects.append(
                f"histogram(CASE WHEN list_contains(?::VARCHAR[], {v}) THEN {v} "
                f"WHEN list_contains(?::VARCHAR[], {norm}) THEN {norm} ELSE '{OTHER}' END)"
            )
            select_params.extend([list(plan.raw_keys), list(plan.categories)])
    inner = ", ".join(values) or "1 AS v"
    row = session.fetch(
        f"SELECT {', '.join(selects)} FROM (SELECT {inner} FROM {VIEW} WHERE {where})", [*select_params, *params]
    )[0]
    rows = int(row[0])
    measured: dict[str, dict[str, Any]] = {}
    for i, plan in enumerate(measured_plans):
        count, distinct, histogram = int(row[1 + 3 * i]), row[2 + 3 * i], row[3 + 3 * i] or {}
        if plan.kind == "categorical":
            merged: dict[str, int] = {}
            for key, n in histogram.items():
                label = key if key == OTHER else canonical(str(key))
                merged[label] = merged.get(label, 0) + int(n)
            histogram = merged
        # Repeated values of a continuous feature (replayed or resampled traffic) carry no new
        # information: the tests count distinct values, so duplicates cannot make noise significant.
        effective = min(count, int(distinct)) if distinct else count
        measured[plan.name] = {"count": count, "effective": effective, "histogram": histogram}
    _drop_unlogged(session, measured_plans, measured, where, params)
    return rows, measured


def _drop_unlogged(
    session: LogSession, plans: list[_Plan], measured: dict[str, dict[str, Any]], where: str, params: list[Any]
) -> None:
    """Forget features without a single value whose key is absent from every record (dropped, never logged)."""
    empty = [p for p in plans if measured[p.name]["count"] == 0]
    if not empty:
        return
    counts = ", ".join(
        f"count(*) FILTER (WHERE {session.presence_sql('outputs' if p.name == PREDICTION else 'inputs', p.name)})"
        for p in empty
    )
    present = session.fetch(f"SELECT {counts} FROM {VIEW} WHERE {where}", params)[0]
    for plan, n in zip(empty, present, strict=True):
        if not n:
            del measured[plan.name]


def _verdict(
    plan: _Plan, measured: dict[str, Any] | None, rows: int, limits: DriftThresholds, *, excluded: bool
) -> FeatureDrift:
    ref_count = int(plan.reference.get("count") or 0)
    if excluded or measured is None:
        status: Status = "skipped" if excluded else "not_logged"
        return FeatureDrift(feature=plan.name, kind=plan.kind, status=status, drift=False, reference_count=ref_count)
    count = int(measured["count"])
    missing = _missing_stats(plan.reference, count, rows, limits)
    if count < limits.min_rows:
        return FeatureDrift(
            feature=plan.name,
            kind=plan.kind,
            status="insufficient_data",
            drift=False,
            count=count,
            reference_count=ref_count,
            statistics=missing,
            thresholds={"min_rows": float(limits.min_rows)},
        )
    if plan.kind == "numeric":
        stats, thresholds, reasons = _numeric_tests(plan, measured, ref_count, limits)
    else:
        stats, thresholds, reasons = _categorical_tests(plan, measured["histogram"], count, limits)
    if _missing_drifted(missing, limits):
        reasons.append("missing_rate")
    thresholds["missing_rate_change_threshold"] = limits.missing_rate_change
    return FeatureDrift(
        feature=plan.name,
        kind=plan.kind,
        status="drift" if reasons else "ok",
        drift=bool(reasons),
        reasons=tuple(reasons),
        count=count,
        reference_count=ref_count,
        statistics={**stats, **missing},
        thresholds=thresholds,
    )


def _numeric_tests(
    plan: _Plan, measured: Mapping[str, Any], ref_count: int, limits: DriftThresholds
) -> tuple[dict[str, float | None], dict[str, float | None], list[str]]:
    assert plan.points is not None
    histogram: Mapping[float, int] = measured["histogram"]
    count, effective = int(measured["count"]), int(measured["effective"])
    quantiles = np.asarray(plan.reference["quantiles"], dtype=np.float64)
    # histogram(): boundary -> count in (previous boundary, boundary]; cumulative sums give count(x <= point).
    bins = np.array([histogram.get(float(p), 0) for p in plan.points], dtype=np.float64)
    current_cdf = np.cumsum(bins) / count
    reference_cdf = divergence.quantile_cdf(quantiles, plan.points)
    ks = divergence.ks_statistic(reference_cdf, current_cdf)
    ks_p = divergence.ks_pvalue(ks, ref_count, effective)
    ks_critical = divergence.ks_critical_value(limits.ks_alpha, ref_count, effective)
    edges = np.unique(quantiles[10:100:10])
    ref_at = np.concatenate([[0.0], divergence.quantile_cdf(quantiles, edges), [1.0]])
    cur_at = np.concatenate([[0.0], np.interp(edges, plan.points, current_cdf), [1.0]])
    psi = divergence.psi(np.diff(ref_at), np.diff(cur_at))
    psi_limit = max(limits.psi, divergence.psi_noise_level(edges.size + 1, ref_count, effective, limits.noise_alpha))
    reasons = []
    if psi > psi_limit:
        reasons.append("psi")
    if ks_p < limits.ks_alpha and ks >= limits.ks_min_statistic:
        reasons.append("ks")
    stats: dict[str, float | None] = {"psi": psi, "ks_statistic": ks, "ks_pvalue": ks_p, "effective_count": effective}
    thresholds: dict[str, float | None] = {
        "psi_threshold": psi_limit,
        "ks_alpha": limits.ks_alpha,
        "ks_critical_value": max(ks_critical, limits.ks_min_statistic),
    }
    return stats, thresholds, reasons


def _categorical_tests(
    plan: _Plan, histogram: Mapping[str, int], count: int, limits: DriftThresholds
) -> tuple[dict[str, float | None], dict[str, float | None], list[str]]:
    assert plan.reference_counts is not None
    current = np.array([histogram.get(c, 0) for c in plan.categories] + [histogram.get(OTHER, 0)], dtype=np.float64)
    reference = plan.reference_counts
    keep = (reference > 0) | (current > 0)
    psi = divergence.psi(reference[keep], current[keep])
    test = divergence.chi_square(reference[keep], current[keep])
    ref_count = round(float(reference.sum()))
    psi_limit = max(limits.psi, divergence.psi_noise_level(int(keep.sum()), ref_count, count, limits.noise_alpha))
    reasons = []
    if psi > psi_limit:
        reasons.append("psi")
    if test.pvalue < limits.chi2_alpha and test.cramers_v >= limits.chi2_min_effect:
        reasons.append("chi2")
    stats: dict[str, float | None] = {
        "psi": psi,
        "chi2_statistic": test.statistic,
        "chi2_pvalue": test.pvalue,
        "cramers_v": test.cramers_v,
        "unseen_share": float(current[-1] / count) if count and plan.reference_counts[-1] == 0 else 0.0,
    }
    thresholds: dict[str, float | None] = {
        "psi_threshold": psi_limit,
        "chi2_alpha": limits.chi2_alpha,
        "chi2_min_effect": limits.chi2_min_effect,
    }
    return stats, thresholds, reasons


def _missing_stats(
    reference: Mapping[str, Any], count: int, rows: int, limits: DriftThresholds
) -> dict[str, float | None]:
    ref_rate = float(reference.get("missing_rate") or 0.0)
    ref_count = int(reference.get("count") or 0)
    ref_rows = round(ref_count / (1.0 - ref_rate)) if ref_rate < 1.0 else ref_count
    rate = 1.0 - count / rows if rows else 0.0
    return {
        "missing_rate": rate,
        "reference_missing_rate": ref_rate,
        "missing_rate_change": rate - ref_rate,
        "missing_pvalue": divergence.two_proportion_pvalue(ref_rate, ref_rows, rate, rows),
    }


def _missing_drifted(missing: Mapping[str, float | None], limits: DriftThresholds) -> bool:
    change = missing.get("missing_rate_change") or 0.0
    pvalue = missing.get("missing_pvalue")
    return abs(change) > limits.missing_rate_change and pvalue is not None and pvalue < limits.missing_alpha
