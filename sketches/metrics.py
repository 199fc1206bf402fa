"""Drift metrics between a reference and a current column profile, each with its error bound.

Every metric is tied to a statistical test (``MetricSet.tests``) whose p-value the
decision rules use to tell real change from sampling noise; statistics fed to tests
are first reduced by the sketch error bound, so sketch error never looks like drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sketches import stats
from sketches.boolean import BooleanProfile
from sketches.categorical import CategoricalProfile
from sketches.column import ColumnProfile
from sketches.distribution import Distribution, FloatArray
from sketches.numeric import NumericProfile
from sketches.types import MetricValue

DECILES = np.linspace(0.1, 0.9, 9)
OTHER = "\x00other"

METRIC_TEST = {
    "ks": "distribution",
    "psi": "distribution",
    "js": "distribution",
    "wasserstein": "distribution",
    "mean_shift": "distribution",
    "linf": "distribution",
    "chi2": "distribution",
    "unseen": "unseen",
    "null_ratio": "null_ratio",
    "type_mismatch": "type_mismatch",
}
"""Which test's p-value backs each metric."""


@dataclass
class MetricSet:
    metrics: dict[str, MetricValue] = field(default_factory=dict)
    tests: dict[str, float] = field(default_factory=dict)


def psi_edges(ref: Distribution) -> FloatArray:
    """PSI / JS bin edges: the reference deciles (duplicates removed for discrete data)."""
    return np.unique(ref.quantiles(DECILES))


def bin_shares(dist: Distribution, edges: FloatArray) -> FloatArray:
    """Shares of bins (-inf, e1], (e1, e2], ..., (ek, inf)."""
    cdf = dist.cdf(edges)
    return np.diff(np.concatenate(([0.0], cdf, [1.0])))


def numeric_metrics(
    ref: NumericProfile,
    cur: NumericProfile,
    ref_dist: Distribution | None = None,
    cur_dist: Distribution | None = None,
) -> MetricSet:
    """KS, PSI (reference deciles), JS distance (same bins), normalised Wasserstein, mean shift."""
    out = MetricSet()
    if ref.count == 0 or cur.count == 0:
        return out
    rd = ref_dist or ref.distribution()
    cd = cur_dist or cur.distribution()
    eps = rd.epsilon + cd.epsilon

    points = np.union1d(rd.items, cd.items)
    diff = np.abs(rd.cdf(points) - cd.cdf(points))
    ks = float(diff.max())
    out.metrics["ks"] = MetricValue(ks, eps)
    out.tests["distribution"] = stats.ks_pvalue(ks - eps, ref.count, cur.count)

    edges = psi_edges(rd)
    fr, fc = rd.cdf(edges), cd.cdf(edges)
    p, q = bin_shares(rd, edges), bin_shares(cd, edges)
    er, ec = rd.epsilon, cd.epsilon
    psi_bound = stats.perturbed_bound(stats.psi, fr, fc, er, ec)
    js_bound = stats.perturbed_bound(stats.js_distance, fr, fc, er, ec)
    out.metrics["psi"] = MetricValue(stats.psi(p, q), psi_bound)
    out.metrics["js"] = MetricValue(stats.js_distance(p, q), js_bound)

    scale = _scale(ref, cur)
    w = float(np.sum(diff[:-1] * np.diff(points))) / scale if points.size > 1 else 0.0
    lo = min(rd.quantiles(np.array([eps]))[0], cd.quantiles(np.array([eps]))[0])
    hi = max(rd.quantiles(np.array([1 - eps]))[0], cd.quantiles(np.array([1 - eps]))[0])
    out.metrics["wasserstein"] = MetricValue(w, eps * float(hi - lo) / scale)

    assert ref.mean is not None and cur.mean is not None
    out.metrics["mean_shift"] = MetricValue(abs(cur.mean - ref.mean) / scale, 0.0)
    return out


def _scale(ref: NumericProfile, cur: NumericProfile) -> float:
    """Unit of Wasserstein / mean shift: reference std (else current std, else 1)."""
    for s in (ref.std, cur.std):
        if s is not None and s > 0 and math.isfinite(s):
            return s
    return 1.0


def categorical_metrics(
    ref: CategoricalProfile | BooleanProfile, cur: CategoricalProfile | BooleanProfile
) -> MetricSet:
    """L-infinity, JS distance, chi-square homogeneity, unseen share (categorical only)."""
    out = MetricSet()
    if ref.count == 0 or cur.count == 0:
        return out
    rf, r_other = ref.frequencies()
    cf, c_other = cur.frequencies()
    keys = sorted(set(rf) | set(cf))
    r = np.array([rf.get(k, 0.0) for k in keys] + [r_other])
    c = np.array([cf.get(k, 0.0) for k in keys] + [c_other])
    p, q = r / r.sum(), c / c.sum()
    dp, dq = ref.max_error / ref.count, cur.max_error / cur.count

    out.metrics["linf"] = MetricValue(float(np.max(np.abs(p - q))), dp + dq)
    out.metrics["js"] = MetricValue(stats.js_distance(p, q), _share_bound(p, q, dp, dq))
    # Counts are shrunk toward each other by their error before testing.
    sign = np.sign(c / c.sum() - r / r.sum())
    r_adj = np.clip(r + sign * ref.max_error, 0, None)
    c_adj = np.clip(c - sign * cur.max_error, 0, None)
    stat, pval, _df = stats.chi2_homogeneity(r_adj, c_adj)
    out.metrics["chi2"] = MetricValue(stat, 0.0)
    out.tests["distribution"] = pval

    if isinstance(ref, CategoricalProfile) and isinstance(cur, CategoricalProfile):
        unseen = sum(v for k, v in cf.items() if ref.estimate(k) <= 0)
        out.metrics["unseen"] = MetricValue(unseen / cur.count, dq)
        adj = max(0.0, unseen - cur.max_error)
        out.tests["unseen"] = stats.two_proportion_pvalue(0, ref.count, adj, cur.count)
    return out


def _share_bound(p: FloatArray, q: FloatArray, dp: float, dq: float) -> float:
    """JS-distance bound when every category share may be off by dp / dq (sketch mode)."""
    if dp == 0 and dq == 0:
        return 0.0
    base = stats.js_distance(p, q)
    sign = np.sign(q - p)
    apart = stats.js_distance(np.clip(p - sign * dp, 0, None), np.clip(q + sign * dq, 0, None))
    return max(0.0, apart - base)


def quality_metrics(ref: ColumnProfile, cur: ColumnProfile) -> MetricSet:
    """Change of missing ratio and of type-mismatch ratio, with two-proportion tests."""
    out = MetricSet()
    if ref.total == 0 or cur.total == 0:
        return out
    out.metrics["null_ratio"] = MetricValue(abs(cur.null_ratio - ref.null_ratio), 0.0)
    out.tests["null_ratio"] = stats.two_proportion_pvalue(
        ref.missing, ref.total, cur.missing, cur.total
    )
    out.metrics["type_mismatch"] = MetricValue(abs(cur.mismatch_ratio - ref.mismatch_ratio), 0.0)
    out.tests["type_mismatch"] = stats.two_proportion_pvalue(
        ref.mismatched, ref.total, cur.mismatched, cur.total
    )
    return out


def column_metrics(ref: ColumnProfile, cur: ColumnProfile) -> MetricSet:
    """All metrics that apply to this pair of profiles (same type assumed)."""
    out = quality_metrics(ref, cur)
    if isinstance(ref, NumericProfile) and isinstance(cur, NumericProfile):
        dist = numeric_metrics(ref, cur)
    elif isinstance(ref, CategoricalProfile | BooleanProfile) and isinstance(
        cur, CategoricalProfile | BooleanProfile
    ):
        dist = categorical_metrics(ref, cur)
    else:
        dist = MetricSet()
    out.metrics.update(dist.metrics)
    out.tests.update(dist.tests)
    return out
