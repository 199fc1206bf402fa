"""Accuracy of sketch-based drift metrics against scipy / numpy on the raw, seeded data.

Issue 3: KS within 0.01 of ``scipy.stats.ks_2samp`` at 1 M vs 100 k rows, PSI within
0.005 of the exact PSI on the same bins, with the default KLL k (800). The reported
error bounds must also cover the actual error.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats as sps

from sketches import stats
from sketches.metrics import DECILES, numeric_metrics
from sketches.numeric import DEFAULT_KLL_K, NumericProfile

Gen = Callable[[np.random.Generator, int, bool], np.ndarray]

CASES: dict[str, Gen] = {
    "normal-shift": lambda r, n, cur: r.normal(0.1 if cur else 0.0, 1.0, n),
    "normal-scale": lambda r, n, cur: r.normal(0.0, 1.3 if cur else 1.0, n),
    "lognormal": lambda r, n, cur: r.lognormal(0.0, 1.0 if cur else 0.9, n),
    "poisson-counts": lambda r, n, cur: r.poisson(3.2 if cur else 3.0, n).astype(float),
    "identical": lambda r, n, cur: r.standard_t(3, n),
}


def _profile(x: np.ndarray) -> NumericProfile:
    prof = NumericProfile()
    for i in range(0, x.size, 100_000):
        prof.update(x[i : i + 100_000])
    return prof


def _exact_shares(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    cdf = np.searchsorted(np.sort(x), edges, side="right") / x.size
    return np.diff(np.concatenate(([0.0], cdf, [1.0])))


@pytest.mark.parametrize("case", list(CASES))
def test_ks_and_psi_match_exact_values(case: str) -> None:
    assert DEFAULT_KLL_K == 800
    rng = np.random.default_rng(1000 + list(CASES).index(case))
    ref_x = CASES[case](rng, 1_000_000, False)
    cur_x = CASES[case](rng, 100_000, True)
    ref, cur = _profile(ref_x), _profile(cur_x)
    ms = numeric_metrics(ref, cur)

    exact_ks = sps.ks_2samp(ref_x, cur_x).statistic
    ks = ms.metrics["ks"]
    assert abs(ks.value - exact_ks) <= 0.01
    assert abs(ks.value - exact_ks) <= ks.error_bound  # the reported bound covers it
    assert ks.error_bound < 0.01  # 2 x 0.45 % at k=800

    edges = np.unique(ref.distribution().quantiles(DECILES))
    exact_psi = stats.psi(_exact_shares(ref_x, edges), _exact_shares(cur_x, edges))
    psi = ms.metrics["psi"]
    assert abs(psi.value - exact_psi) <= 0.005
    assert abs(psi.value - exact_psi) <= psi.error_bound + 1e-12

    # Wasserstein (normalised by the reference std) against scipy's exact value.
    exact_w = sps.wasserstein_distance(ref_x, cur_x) / ref_x.std()
    w = ms.metrics["wasserstein"]
    assert abs(w.value - exact_w) <= max(w.error_bound, 0.01)


def test_rank_error_bound_matches_datasketches_documentation() -> None:
    prof = _profile(np.random.default_rng(1).normal(size=200_000))
    # KLL k=800, double-sided (PMF) bound at 99 % confidence, datasketches tables.
    assert prof.rank_error == pytest.approx(0.00447, abs=2e-4)
    small = NumericProfile()
    small.update(np.arange(100.0))
    assert small.rank_error == 0.0  # not in estimation mode: exact


def test_quantiles_within_rank_error() -> None:
    x = np.random.default_rng(5).exponential(size=500_000)
    prof = _profile(x)
    qs = np.linspace(0.01, 0.99, 50)
    xs = np.sort(x)
    for q, v in zip(qs, prof.quantiles(qs), strict=True):
        rank = np.searchsorted(xs, v, side="right") / x.size
        assert abs(rank - q) <= prof.rank_error


def test_moments_are_exact() -> None:
    x = np.random.default_rng(2).gamma(2.0, 3.0, size=300_000)
    a, b = _profile(x[:123_456]), _profile(x[123_456:])
    a.merge(b)
    assert a.mean == pytest.approx(x.mean(), rel=1e-12)
    assert a.variance == pytest.approx(x.var(), rel=1e-9)
    assert (a.min, a.max, a.count) == (x.min(), x.max(), x.size)
