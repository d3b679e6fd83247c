"""The drift statistics against scipy, and the reference CDF rebuilt from quantiles."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from modelport.monitoring import divergence


def test_psi_is_zero_for_identical_and_grows_with_shift() -> None:
    shares = np.array([0.1] * 10)
    assert divergence.psi(shares, shares) == pytest.approx(0.0)
    moved = np.array([0.05] * 5 + [0.15] * 5)
    expected = float(np.sum((moved - shares) * np.log(moved / shares)))
    assert divergence.psi(shares, moved) == pytest.approx(expected)
    lopsided = divergence.psi(np.array([50, 50]), np.array([1, 0]))  # an empty bin is floored, not infinite
    assert 1 < lopsided < np.inf


def test_ks_pvalue_and_critical_value_agree_with_scipy() -> None:
    for n, m, d in [(1000, 800, 0.05), (2000, 300, 0.1), (500, 500, 0.2)]:
        n_eff = n * m / (n + m)
        assert divergence.ks_pvalue(d, n, m) == pytest.approx(stats.kstwo.sf(d, round(n_eff)), rel=0.15, abs=1e-3)
        critical = divergence.ks_critical_value(0.01, n, m)
        assert divergence.ks_pvalue(critical, n, m) == pytest.approx(0.01, rel=0.02)
    assert divergence.ks_critical_value(0.01, 100, 100) > divergence.ks_critical_value(0.01, 10_000, 10_000)
    assert divergence.ks_pvalue(0.5, 0, 10) == 1.0


def test_chi_square_matches_scipy_contingency() -> None:
    reference = np.array([500, 300, 200, 0])
    current = np.array([420, 330, 230, 20])
    result = divergence.chi_square(reference, current)
    statistic, _pvalue, _dof, _ = stats.chi2_contingency(np.vstack([reference[:3], current[:3]]), correction=False)
    full = stats.chi2_contingency(np.vstack([reference, current]), correction=False)
    assert (result.statistic, result.pvalue, result.dof) == pytest.approx((full[0], full[1], full[2]))
    assert result.statistic > statistic  # the new category counts as evidence
    assert 0 < result.cramers_v < 1
    assert divergence.chi_square(np.array([10]), np.array([5])).pvalue == 1.0


def test_chi2_quantiles_match_scipy() -> None:
    assert divergence.chi2_isf(0.01, 9) == pytest.approx(stats.chi2.isf(0.01, 9))
    assert divergence.chi2_sf(12.0, 4) == pytest.approx(stats.chi2.sf(12.0, 4))


def test_psi_noise_level_shrinks_with_window_size() -> None:
    small = divergence.psi_noise_level(10, 2000, 100, 0.01)
    large = divergence.psi_noise_level(10, 2000, 100_000, 0.01)
    assert small > 0.2 > large


def test_two_proportion_pvalue() -> None:
    assert divergence.two_proportion_pvalue(0.05, 1000, 0.05, 1000) == pytest.approx(1.0)
    assert divergence.two_proportion_pvalue(0.05, 1000, 0.30, 1000) < 1e-10
    assert divergence.two_proportion_pvalue(0.0, 10, 0.0, 10) == 1.0


def test_quantile_cdf_inverts_the_quantile_function() -> None:
    rng = np.random.default_rng(0)
    sample = rng.normal(size=5000)
    quantiles = np.quantile(sample, np.linspace(0, 1, 101))
    points = np.array([-5.0, -1.0, 0.0, 1.0, 5.0])
    cdf = divergence.quantile_cdf(quantiles, points)
    assert cdf[0] == 0.0
    assert cdf[-1] == 1.0
    assert cdf[1:4] == pytest.approx(stats.norm.cdf(points[1:4]), abs=0.02)


def test_quantile_cdf_jumps_at_point_masses() -> None:
    quantiles = np.array([1.0, 1.0, 1.0, 2.0, 3.0])  # 50 % of the mass at 1
    below = np.nextafter(1.0, -np.inf)
    assert divergence.quantile_cdf(quantiles, np.array([below, 1.0, 1.5, 3.0])).tolist() == [0.0, 0.5, 0.625, 1.0]
