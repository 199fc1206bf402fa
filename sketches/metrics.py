"""Drift metrics between a reference and a current column profile, each with its error bound.

Every metric is tied to a statistical test (``MetricSet.tests``) whose p-value the
decision rules use to tell real change from sampling noise; statistics fed to tests
are first reduced by the sketch error bound (KS), or taken at the smallest value the
sketches allow (categorical chi-square), so sketch error never looks like drift.
Bound derivations: sketches/numeric_bounds.py, sketches/categorical_metrics.py and
sketches/README.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sketches import categorical_metrics as cm
from sketches import numeric_bounds as nb
from sketches import stats
from sketches.boolean import BooleanProfile
from sketches.categorical import CategoricalProfile
from sketches.column import ColumnProfile
from sketches.distribution import Distribution, FloatArray
from sketches.numeric import NumericProfile
from sketches.support import common_support
from sketches.types import MetricValue

DECILES = np.linspace(0.1, 0.9, 9)

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
    baselines: dict[str, float] = field(default_factory=dict)
    """Value a metric takes by chance with no change (e.g. ``unseen``: the reference's
    Good–Turing missing mass); rules compare ``value - baseline`` with the threshold."""


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
    eps = rd.cdf_epsilon + cd.cdf_epsilon  # CDF queries: KLL's single-sided error

    points = np.union1d(rd.items, cd.items)
    diff = np.abs(rd.cdf(points) - cd.cdf(points))
    ks = float(diff.max())
    out.metrics["ks"] = MetricValue(ks, eps)
    out.tests["distribution"] = stats.ks_pvalue(ks - eps, ref.count, cur.count)

    edges = psi_edges(rd)
    p, q = bin_shares(rd, edges), bin_shares(cd, edges)
    er, ec = nb.share_errors(rd, p.size), nb.share_errors(cd, q.size)
    out.metrics["psi"] = MetricValue(stats.psi(p, q), nb.psi_bound(p, q, er, ec))
    out.metrics["js"] = MetricValue(stats.js_distance(p, q), nb.js_bound(p, q, er, ec))

    scale = _scale(ref, cur)
    assert ref.min is not None and ref.max is not None and ref.mean is not None
    assert cur.min is not None and cur.max is not None and cur.mean is not None
    sides = _side_w1(ref, rd) + _side_w1(cur, cd)
    w, w_err = nb.wasserstein(
        rd, cd, (ref.min, ref.max), (cur.min, cur.max), cur.mean - ref.mean, sides
    )
    out.metrics["wasserstein"] = MetricValue(w / scale, w_err / scale)

    assert ref.mean is not None and cur.mean is not None
    out.metrics["mean_shift"] = MetricValue(abs(cur.mean - ref.mean) / scale, 0.0)
    return out


def _side_w1(prof: NumericProfile, dist: Distribution) -> float:
    """``int |F - F_hat|`` bound of one side, cached on its distribution. The two sides'
    bounds add up to a bound on the Wasserstein estimate's error (triangle inequality)."""
    if dist.w1_bound is None:
        assert prof.min is not None and prof.max is not None
        assert prof.mean is not None and prof.variance is not None
        dist.w1_bound = nb.sketch_w1_bound(dist, prof.min, prof.max, prof.mean, prof.variance)
    return dist.w1_bound


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
    sup = common_support(ref, cur)
    out.metrics["linf"] = MetricValue(*cm.linf(sup))
    out.metrics["js"] = MetricValue(*cm.js(sup))
    stat, bound, pval = cm.chi2(sup)
    out.metrics["chi2"] = MetricValue(stat, bound)
    out.tests["distribution"] = pval

    if isinstance(ref, CategoricalProfile) and isinstance(cur, CategoricalProfile):
        f1, f2 = ref.count_of_counts() if ref.exact else (None, None)
        value, bound, upval, baseline = cm.unseen(sup, f1, f2)
        out.metrics["unseen"] = MetricValue(value, bound)
        out.baselines["unseen"] = baseline
        if upval is not None:
            out.tests["unseen"] = upval
    return out


def quality_metrics(ref: ColumnProfile, cur: ColumnProfile) -> MetricSet:
    """Change of missing ratio and of type-mismatch ratio, with Fisher exact tests."""
    out = MetricSet()
    if ref.total == 0 or cur.total == 0:
        return out
    out.metrics["null_ratio"] = MetricValue(abs(cur.null_ratio - ref.null_ratio), 0.0)
    out.tests["null_ratio"] = stats.fisher_pvalue(ref.missing, ref.total, cur.missing, cur.total)
    out.metrics["type_mismatch"] = MetricValue(abs(cur.mismatch_ratio - ref.mismatch_ratio), 0.0)
    out.tests["type_mismatch"] = stats.fisher_pvalue(
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
    out.baselines.update(dist.baselines)
    return out
