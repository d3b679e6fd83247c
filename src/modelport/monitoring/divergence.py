"""The statistics behind drift verdicts: PSI, Kolmogorov-Smirnov, chi-square, proportion tests.

Pure functions over small numpy arrays (bin shares, CDF values at evaluation points, category
counts): the heavy lifting — counting millions of logged values into bins — happens in DuckDB
before these run. Each test is *sample-size aware*: a two-sample test against the reference
(whose size is known from its statistics), so a small window is not flagged for sampling noise
and a large one is judged by an effect size as well as a p-value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PSI_FLOOR = 1e-4
"""Shares below this are raised to it before taking logarithms (an empty bin is not infinitely far)."""


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index between two distributions over the same bins.

    ``PSI = sum((a - e) * ln(a / e))`` over bins, with both share vectors normalised and floored at
    :data:`PSI_FLOOR`. 0 means identical; above 0.2 is conventionally a significant shift.

    Args:
        expected: Counts or shares per bin in the reference.
        actual: Counts or shares per bin in the current window, same bins.
    """
    e = _shares(expected)
    a = _shares(actual)
    if e.size == 0:
        return 0.0
    e = np.maximum(e, PSI_FLOOR)
    a = np.maximum(a, PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_noise_level(bins: int, n_reference: int, n_current: int, alpha: float) -> float:
    """The PSI that sampling noise alone exceeds with probability ``alpha``.

    Between two samples of one distribution, ``PSI`` is approximately ``chi2(bins - 1) / n_eff``
    with ``n_eff = n*m/(n+m)``. A PSI threshold below this level would flag small windows for
    noise, so the effective threshold is the larger of the two.
    """
    n_eff = effective_size(n_reference, n_current)
    if bins < 2 or n_eff <= 0:
        return 0.0
    return chi2_isf(alpha, bins - 1) / n_eff


def effective_size(n: int, m: int) -> float:
    """``n*m/(n+m)``: the sample size that governs a two-sample test (0 when either is empty)."""
    return float(n) * float(m) / float(n + m) if n > 0 and m > 0 else 0.0


def kolmogorov_sf(lam: float) -> float:
    """Survival function of the Kolmogorov distribution, ``P(K > lam)``.

    ``Q(lam) = 2 * sum_{k>=1} (-1)^(k-1) exp(-2 k^2 lam^2)``; 1 for ``lam`` near 0.
    """
    if lam < 0.2:
        return 1.0
    k = np.arange(1, 101, dtype=np.float64)
    terms = np.exp(-2.0 * k * k * lam * lam) * np.where(k % 2 == 1, 1.0, -1.0)
    return float(min(1.0, max(0.0, 2.0 * terms.sum())))


def ks_pvalue(statistic: float, n_reference: int, n_current: int) -> float:
    """Asymptotic two-sample Kolmogorov-Smirnov p-value (with Stephens' small-sample correction)."""
    n_eff = effective_size(n_reference, n_current)
    if n_eff <= 0:
        return 1.0
    root = math.sqrt(n_eff)
    return kolmogorov_sf((root + 0.12 + 0.11 / root) * statistic)


def ks_critical_value(alpha: float, n_reference: int, n_current: int) -> float:
    """The KS statistic above which :func:`ks_pvalue` falls below ``alpha`` (``inf`` without data).

    Uses ``c(alpha) = sqrt(-ln(alpha / 2) / 2)`` and the same correction as :func:`ks_pvalue`, so
    the critical value shrinks like ``1 / sqrt(n_eff)`` as the window grows.
    """
    n_eff = effective_size(n_reference, n_current)
    if n_eff <= 0:
        return math.inf
    root = math.sqrt(n_eff)
    return math.sqrt(-math.log(alpha / 2.0) / 2.0) / (root + 0.12 + 0.11 / root)


def ks_statistic(reference_cdf: np.ndarray, current_cdf: np.ndarray) -> float:
    """``max |F_ref - F_cur|`` over evaluation points where both CDFs are known."""
    if reference_cdf.size == 0:
        return 0.0
    return float(np.max(np.abs(np.asarray(reference_cdf, dtype=np.float64) - np.asarray(current_cdf))))


def quantile_cdf(quantiles: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The reference CDF ``F(x) = P(X <= x)`` at ``points``, from quantiles at evenly spaced levels 0..1.

    The CDF is the inverse of the piecewise-linear quantile function: 0 below the minimum, 1 from
    the maximum on. Where quantiles repeat (a point mass, as in integer or clipped columns), ``F``
    jumps, and ``F(x)`` is the level of the last quantile equal to ``x``; evaluate at
    ``np.nextafter(x, -inf)`` for the bottom of the jump.
    """
    q = np.asarray(quantiles, dtype=np.float64)
    levels = np.linspace(0.0, 1.0, q.size)
    x = np.asarray(points, dtype=np.float64)
    lo = np.searchsorted(q, x, side="left")
    hi = np.searchsorted(q, x, side="right")
    top = levels[np.clip(hi - 1, 0, q.size - 1)]
    return np.where(hi - lo > 1, top, np.interp(x, q, levels, left=0.0, right=1.0))


@dataclass(frozen=True, slots=True)
class ChiSquare:
    """Result of a chi-square test of homogeneity (reference counts vs current counts).

    Attributes:
        statistic: The chi-square statistic.
        dof: Degrees of freedom (categories - 1).
        pvalue: ``P(chi2(dof) > statistic)``.
        cramers_v: Effect size in 0..1 (``sqrt(statistic / N)`` for a 2-row table).
    """

    statistic: float
    dof: int
    pvalue: float
    cramers_v: float


def chi_square(reference_counts: np.ndarray, current_counts: np.ndarray) -> ChiSquare:
    """Chi-square test that two count vectors over the same categories come from one distribution.

    A 2-by-k contingency table (reference row, current row); categories empty in both are dropped.
    Unlike a goodness-of-fit test against fixed shares, a category new in the current window
    (0 in the reference) gets a finite, positive expected count.
    """
    table = np.vstack([np.asarray(reference_counts, dtype=np.float64), np.asarray(current_counts, dtype=np.float64)])
    table = table[:, table.sum(axis=0) > 0]
    total = table.sum()
    if table.shape[1] < 2 or table[0].sum() <= 0 or table[1].sum() <= 0:
        return ChiSquare(statistic=0.0, dof=max(table.shape[1] - 1, 0), pvalue=1.0, cramers_v=0.0)
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / total
    statistic = float(np.sum((table - expected) ** 2 / expected))
    dof = table.shape[1] - 1
    return ChiSquare(
        statistic=statistic,
        dof=dof,
        pvalue=chi2_sf(statistic, dof),
        cramers_v=math.sqrt(statistic / total),
    )


def chi2_sf(x: float, dof: int) -> float:
    """``P(chi2(dof) > x)``."""
    from scipy.special import gammaincc

    if x <= 0:
        return 1.0
    return float(gammaincc(dof / 2.0, x / 2.0))


def chi2_isf(alpha: float, dof: int) -> float:
    """The ``x`` with ``P(chi2(dof) > x) = alpha``."""
    from scipy.special import gammainccinv

    return float(2.0 * gammainccinv(dof / 2.0, alpha))


def two_proportion_pvalue(p1: float, n1: int, p2: float, n2: int) -> float:
    """Two-sided p-value of the z-test that two proportions (e.g. missing rates) are equal."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    variance = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)
    if variance <= 0:
        return 1.0 if p1 == p2 else 0.0
    z = abs(p1 - p2) / math.sqrt(variance)
    return math.erfc(z / math.sqrt(2.0))


def _shares(values: np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    total = array.sum()
    return array / total if total > 0 else array
