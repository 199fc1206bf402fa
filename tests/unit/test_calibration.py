"""Calibration (issue 10): every reported bound covers the sketch's error against the
exact statistic recomputed from the raw data (driftline's own definitions), and
same-distribution data raises no alarm. Seeded and CI-sized; bench/calibration.py runs
the long version and writes bench/RESULTS.md.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import special
from scipy import stats as sps

from sketches import stats
from sketches.categorical import CategoricalProfile
from sketches.categorical_metrics import chi2, chi2_bins
from sketches.drift import compare_profiles
from sketches.metrics import categorical_metrics, numeric_metrics, psi_edges
from sketches.numeric import NumericProfile
from sketches.numeric_bounds import sketch_w1_bound
from sketches.profile import DatasetProfile
from sketches.rules import DriftRules
from sketches.support import Support, common_support

Gen = Callable[[np.random.Generator, int], np.ndarray]

NUMERIC: dict[str, Gen] = {
    "normal": lambda r, n: r.normal(0.0, 1.0, n),
    "lognormal2": lambda r, n: r.lognormal(0.0, 2.0, n),
    "student_t2": lambda r, n: r.standard_t(2, n),
    "int_ties": lambda r, n: r.poisson(3.0, n).astype(float),
    "mixture": lambda r, n: np.where(r.random(n) < 0.3, r.normal(5, 0.5, n), r.normal(0, 1, n)),
}
# (reference rows, current rows): sketch/sketch, sketch/exact, exact/exact, exact/sketch
# (KLL k=800 stays exact below ~2,400 items).
NUMERIC_SIZES = [(200_000, 20_000), (100_000, 1_000), (2_000, 1_500), (2_000, 50_000)]


def numeric_profile(x: np.ndarray) -> NumericProfile:
    p = NumericProfile()
    p.update(x)
    return p


def shares(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    cdf = np.searchsorted(np.sort(x), edges, side="right") / x.size
    return np.diff(np.concatenate(([0.0], cdf, [1.0])))


def numeric_errors(rx: np.ndarray, cx: np.ndarray) -> dict[str, tuple[float, float]]:
    """metric -> (|sketch - exact|, bound)."""
    ref, cur = numeric_profile(rx), numeric_profile(cx)
    ms = numeric_metrics(ref, cur).metrics
    edges = psi_edges(ref.distribution())
    p, q = shares(rx, edges), shares(cx, edges)
    exact = {
        "ks": sps.ks_2samp(rx, cx).statistic,
        "psi": stats.psi(p, q),
        "js": stats.js_distance(p, q),
        "wasserstein": sps.wasserstein_distance(rx, cx) / rx.std(),
    }
    return {k: (abs(ms[k].value - v), ms[k].error_bound) for k, v in exact.items()}


# Tightness ceilings (normalised units, sketch/sketch sizes): measured medians are in
# bench/RESULTS.md ("Calibration"); these fail if a bound goes back to its old looseness
# (Wasserstein was 0.5-0.8 sd on the heavy tails, JS 0.035). KLL compaction is random
# and not seedable, so a bound varies from one build of the same data to the next (on
# heavy tails 1 build in ~30 is 2x its median, when a compaction drops an extreme item):
# the ceilings apply to the median of BUILDS builds; coverage is checked on every build.
TIGHT = {"ks": 0.0070, "psi": 0.03, "js": 0.04, "wasserstein": 0.25}
BUILDS = 7


@pytest.mark.parametrize("sizes", NUMERIC_SIZES)
@pytest.mark.parametrize("dist", list(NUMERIC))
def test_numeric_bounds_cover_exact_values(dist: str, sizes: tuple[int, int]) -> None:
    for seed in range(2):
        rng = np.random.default_rng([seed, sizes[1], len(dist), ord(dist[0])])
        rx, cx = NUMERIC[dist](rng, sizes[0]), NUMERIC[dist](rng, sizes[1])
        builds = BUILDS if sizes == NUMERIC_SIZES[0] else 1
        bounds: dict[str, list[float]] = {}
        for _ in range(builds):
            for metric, (err, bound) in numeric_errors(rx, cx).items():
                assert err <= bound + 1e-9, (metric, err, bound)
                bounds.setdefault(metric, []).append(bound)
        if sizes == NUMERIC_SIZES[0]:
            for metric, bs in bounds.items():
                assert np.median(bs) <= TIGHT[metric], (metric, bs)


@pytest.mark.parametrize("dist", list(NUMERIC))
def test_one_sided_wasserstein_bound_covers_sketch_against_its_data(dist: str) -> None:
    """int |F - F_hat| (scipy, raw data against the sketch's weighted items) <= bound."""
    for n, seed in ((3_000, 1), (50_000, 2), (300_000, 3)):
        x = NUMERIC[dist](np.random.default_rng([seed, ord(dist[0]), len(dist)]), n)
        ratios = []
        for _ in range(BUILDS):
            prof = numeric_profile(x)
            d = prof.distribution()
            weights = np.diff(np.concatenate(([0.0], d.cum)))
            exact = sps.wasserstein_distance(x, d.items, None, weights)
            assert prof.min is not None and prof.max is not None
            assert prof.mean is not None and prof.variance is not None
            bound = sketch_w1_bound(d, prof.min, prof.max, prof.mean, prof.variance)
            assert exact <= bound, (n, exact, bound)
            ratios.append(bound / x.std())
        assert np.median(ratios) <= 0.12, (n, ratios)  # tails: was 0.25-2.5 sd


def test_wasserstein_estimate_tracks_the_exact_value_near_the_threshold() -> None:
    """Mean shifts of 0.1 sd, 1 M vs 100 k rows: the estimate (exact mean shift + the
    sketches' smaller part) is within 0.003 sd of scipy's exact value on average (bias
    ~0.001, sd <= 0.001); the plain sketch integral carried the reference sketch's mean
    error (bias -0.001 to -0.002, sd up to 0.0024)."""
    rng = np.random.default_rng(1010)
    rx = rng.normal(size=1_000_000)
    ref = numeric_profile(rx)
    errors = []
    for _ in range(4):
        cx = rng.normal(0.1, 1.0, 100_000)
        mv = numeric_metrics(ref, numeric_profile(cx)).metrics["wasserstein"]
        exact = sps.wasserstein_distance(rx, cx) / rx.std()
        assert abs(mv.value - exact) <= mv.error_bound, (mv, exact)
        errors.append(abs(mv.value - exact))
    assert np.mean(errors) <= 0.003, errors


def test_sum_constrained_box_bound_is_above_every_feasible_point() -> None:
    rng = np.random.default_rng(11)
    for _ in range(20):
        k = 6
        p = rng.dirichlet(np.ones(k))
        q = rng.dirichlet(np.ones(k))
        e = rng.uniform(0, 0.05)
        pl, ph, ql, qh = (np.clip(a, 0, 1) for a in (p - e, p + e, q - e, q + e))
        pc, qc = np.stack([pl, pl, ph, ph]), np.stack([ql, qh, ql, qh])
        bound = stats.box_sum_max(stats.js_terms(pc, qc), pc, qc, 1.0, 1.0)
        assert bound <= stats.js_terms(pc, qc).max(axis=0).sum() + 1e-12
        for _ in range(200):  # random feasible points: inside the boxes, sums kept
            dp = rng.uniform(pl - p, ph - p)
            dq = rng.uniform(ql - q, qh - q)
            pp, qq = p + dp - dp.mean(), q + dq - dq.mean()
            if (pp < pl).any() or (pp > ph).any() or (qq < ql).any() or (qq > qh).any():
                continue
            assert stats.js_terms(pp, qq).sum() <= bound + 1e-12


def categorical_sample(rng: np.random.Generator, levels: int, kind: str, n: int) -> np.ndarray:
    w = np.ones(levels) if kind == "uniform" else 1.0 / np.arange(1, levels + 1)
    idx = rng.choice(levels, n, p=w / w.sum())
    return np.char.add("k", idx.astype(str))


def categorical_profile(x: np.ndarray, sketch: bool) -> CategoricalProfile:
    p = CategoricalProfile(cap=2 if sketch else 1_000_000)
    p.update(list(x))
    assert p.exact is not sketch
    return p


def categorical_exact(rx: np.ndarray, cx: np.ndarray) -> dict[str, float]:
    keys = np.union1d(rx, cx)
    r = np.bincount(np.searchsorted(keys, rx), minlength=keys.size) / rx.size
    c = np.bincount(np.searchsorted(keys, cx), minlength=keys.size) / cx.size
    return {
        "linf": float(np.abs(r - c).max()),
        "js": stats.js_distance(r, c),
        "unseen": float(c[r == 0].sum()),
    }


@pytest.mark.parametrize("modes", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("levels", [5, 100, 3_000, 100_000])
def test_categorical_bounds_cover_exact_values(levels: int, modes: tuple[bool, bool]) -> None:
    for kind in ("uniform", "zipf"):
        rng = np.random.default_rng(levels * 7 + 3 * modes[0] + modes[1] + len(kind))
        rx = categorical_sample(rng, levels, kind, 60_000)
        cx = categorical_sample(rng, levels, kind, 5_000)
        ms = categorical_metrics(
            categorical_profile(rx, modes[0]), categorical_profile(cx, modes[1])
        )
        for metric, exact in categorical_exact(rx, cx).items():
            mv = ms.metrics[metric]
            assert abs(mv.value - exact) <= mv.error_bound + 1e-9, (metric, kind, mv, exact)


@pytest.mark.parametrize("modes", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("levels", [5, 100, 3_000, 100_000])
def test_chi2_bound_covers_the_true_counts_and_its_p_value_is_conservative(
        levels: int, modes: tuple[bool, bool]) -> None:
    """chi2 on its bins (chosen from the estimates) with the true counts: inside the
    reported bound, and the reported p-value never below the true counts' p-value."""
    for kind in ("uniform", "zipf"):
        rng = np.random.default_rng(levels * 11 + 3 * modes[0] + modes[1] + len(kind))
        rx = categorical_sample(rng, levels, kind, 60_000)
        cx = categorical_sample(rng, levels, kind, 5_000)
        sup = common_support(categorical_profile(rx, modes[0]), categorical_profile(cx, modes[1]))
        stat, bound, p = chi2(sup)
        k = int(chi2_bins(sup).max()) + 1
        if k < 2:
            continue
        exact = chi2_exact(sup, rx, cx)
        assert abs(stat - exact) <= bound + 1e-9 * max(1.0, exact), (kind, stat, bound, exact)
        assert p >= float(special.chdtrc(k - 1, exact)) - 1e-12, (kind, p, exact)


def chi2_exact(sup: Support, rx: np.ndarray, cx: np.ndarray) -> float:
    """Pearson's statistic of the true counts on the bins driftline's chi2 chose."""
    bins = chi2_bins(sup)
    k = int(bins.max()) + 1
    index = {key: i for i, key in enumerate(sup.keys)}
    true = []
    for x in (rx, cx):
        keys, counts = np.unique(x, return_counts=True)
        per = np.zeros(len(sup.keys) + 1)  # support keys, then the outside group
        for key, n in zip(keys.tolist(), counts.tolist(), strict=True):
            per[index.get(key, len(sup.keys))] += n
        true.append(np.bincount(bins[bins >= 0], weights=per[bins >= 0], minlength=k))
    r, c = true
    n1, n2 = float(rx.size), float(cx.size)
    tot = r + c
    return float(np.sum(np.where(tot > 0, (n2 * r - n1 * c) ** 2
                                 / (n1 * n2 * np.where(tot > 0, tot, 1)), 0.0)))


@pytest.mark.parametrize("modes", [(True, False), (False, True), (True, True)])
def test_categorical_sketch_estimates_stay_on_the_simplex(modes: tuple[bool, bool]) -> None:
    """300 k levels: the sketch side's estimated shares add up to at most 1 (they used
    to spread the untracked mass over every key the other side names: JS 1.35)."""
    rng = np.random.default_rng(3)
    rx = categorical_sample(rng, 300_000, "uniform", 100_000)
    cx = categorical_sample(rng, 300_000, "uniform", 10_000)
    ref, cur = categorical_profile(rx, modes[0]), categorical_profile(cx, modes[1])
    sup = common_support(ref, cur)
    for side in (sup.ref, sup.cur):
        assert float(side.hat.sum()) + side.out_hat <= 1 + 1e-9
    js = categorical_metrics(ref, cur).metrics["js"]
    assert 0 <= js.value <= 1
    assert abs(js.value - categorical_exact(rx, cx)["js"]) <= js.error_bound


def test_worst_case_of_issue_10_is_gone() -> None:
    """3,000-level uniform, 100 k sketch-mode reference vs 1 k exact window: was L-inf 1.0."""
    rng = np.random.default_rng(10)
    rx = categorical_sample(rng, 3_000, "uniform", 100_000)
    cx = categorical_sample(rng, 3_000, "uniform", 1_000)
    ref, cur = categorical_profile(rx, True), categorical_profile(cx, False)
    ms = categorical_metrics(ref, cur)
    assert ms.metrics["linf"].value < 0.01
    assert ms.tests["distribution"] > 0.01


def _one_column_report(ref_x: object, cur_x: object, n_ref: int, n_cur: int) -> bool:
    ref, cur = DatasetProfile(), DatasetProfile()
    ref.update({"x": ref_x}, n_ref)
    cur.update({"x": cur_x}, n_cur)
    return bool(compare_profiles(ref, cur, DriftRules()).drifted)


@pytest.mark.parametrize("n", [100, 200])
def test_null_ratio_no_false_alarms_at_smallest_windows(n: int) -> None:
    rng = np.random.default_rng(n)
    ref_x = np.where(rng.random(100_000) < 0.01, np.nan, rng.normal(size=100_000))
    ref = DatasetProfile()
    ref.update({"x": ref_x}, ref_x.size)
    alarms = 0
    for _ in range(300):
        x = np.where(rng.random(n) < 0.01, np.nan, rng.normal(size=n))
        cur = DatasetProfile(types=ref.types)
        cur.update({"x": x}, n)
        alarms += bool(compare_profiles(ref, cur).drifted)
    assert alarms == 0


def test_unseen_judged_against_good_turing() -> None:
    """Zipf-1,000 with a 12 k reference: 1-3 % unseen by chance, no alarm; 5 % of traffic
    on a brand-new value still alarms."""
    rng = np.random.default_rng(7)
    rx = categorical_sample(rng, 1_000, "zipf", 12_000)
    for _ in range(20):
        cx = categorical_sample(rng, 1_000, "zipf", 5_000)
        assert not _one_column_report(list(rx), list(cx), rx.size, cx.size)
    cx = categorical_sample(rng, 1_000, "zipf", 5_000)
    cx[:250] = "brand-new"
    ref, cur = DatasetProfile(), DatasetProfile()
    ref.update({"x": list(rx)}, rx.size)
    cur.update({"x": list(cx)}, cx.size)
    assert "unseen" in compare_profiles(ref, cur).columns["x"].fired


@pytest.mark.parametrize("levels", [5, 3_000, 50_000])
def test_same_distribution_categoricals_do_not_alarm(levels: int) -> None:
    rng = np.random.default_rng(levels)
    rx = categorical_sample(rng, levels, "zipf", 100_000)
    ref = DatasetProfile()
    ref.update({"x": list(rx)}, rx.size)
    for n in (100, 1_000, 20_000):
        cx = categorical_sample(rng, levels, "zipf", n)
        cur = DatasetProfile(types=ref.types)
        cur.update({"x": list(cx)}, n)
        assert not compare_profiles(ref, cur).drifted, (levels, n)
