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
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from sketches import categorical_metrics as cm
from sketches import kll_items, stats
from sketches import numeric_bounds as nb
from sketches.binned import binned_metrics, share_errors
from sketches.boolean import BooleanProfile
from sketches.categorical import CategoricalProfile
from sketches.column import ColumnProfile
from sketches.distribution import Distribution, FloatArray, Weighted, joint_cdf
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
    """KS, PSI (reference deciles), JS distance (same bins), normalised Wasserstein, mean shift.

    What depends on the reference alone (its bins, its Wasserstein side bound, its error
    bounds) is computed once per reference profile and kept on it (:class:`ReferenceSide`);
    its items are read off the sketch's bytes each time in an order kept with it, rather
    than kept sorted as doubles (3 bytes an item instead of 16: a reference kept for every
    model would otherwise hold ~0.6 MB of arrays per 20-column model)."""
    out = MetricSet()
    if ref.count == 0 or cur.count == 0:
        return out
    side = reference_side(ref)
    cd = cur_dist or cur.distribution()
    eps = side.cdf_epsilon + cd.cdf_epsilon  # CDF queries: KLL's single-sided error
    assert ref.min is not None and ref.max is not None and ref.mean is not None
    assert cur.min is not None and cur.max is not None and cur.mean is not None

    # Both CDFs at the union of both sketches' items and both exact ranges, once: the KS
    # distance and the Wasserstein integral are read off them. (The extra range points
    # leave the KS maximum unchanged: the step CDFs only move at items.)
    r_range, c_range = (ref.min, ref.max), (cur.min, cur.max)
    raw = None if ref_dist is not None else side.items(ref)
    points, fr, fc = joint_cdf(raw if raw is not None else ref_dist or ref.distribution(), cd,
                               np.array([*r_range, *c_range]))
    ks = float(np.abs(fr - fc).max())
    out.metrics["ks"] = MetricValue(ks, eps)
    out.tests["distribution"] = stats.ks_pvalue(ks - eps, ref.count, cur.count)

    psi, psi_err, js, js_err = _binned_of(side, cd)
    out.metrics["psi"] = MetricValue(psi, psi_err)
    out.metrics["js"] = MetricValue(js, js_err)

    scale = _scale(ref, cur)
    sides = side.w1_bound + _side_w1(cur, cd)
    w, w_err = nb.wasserstein(
        (points, fr, fc), side.cdf_epsilon, cd.cdf_epsilon, r_range, c_range,
        cur.mean - ref.mean, sides,
    )  # fmt: skip
    out.metrics["wasserstein"] = MetricValue(w / scale, w_err / scale)

    assert ref.mean is not None and cur.mean is not None
    out.metrics["mean_shift"] = MetricValue(abs(cur.mean - ref.mean) / scale, 0.0)
    return out


@dataclass(frozen=True)
class ReferenceSide:
    """What the numeric metrics need of a reference column and of nothing else."""

    epsilon: float
    cdf_epsilon: float
    edges: FloatArray
    """PSI / JS bin edges (the reference deciles)."""
    shares: FloatArray
    share_errors: FloatArray
    w1_bound: float
    """``int |F - F_hat|`` bound of the reference sketch (``_side_w1``)."""
    layout: tuple[int, int, npt.NDArray[np.unsignedinteger], npt.NDArray[np.uint8]] | None
    """(bytes of the serialized sketch, offset of its items there, the order that sorts
    them, their levels in that order), or None when its bytes are not of that form."""

    def items(self, ref: NumericProfile) -> Weighted | None:
        """The reference sketch's retained items, sorted, and their weights, read off its
        bytes (a gather, no sort); None when not readable so."""
        if self.layout is None:
            return None
        size, offset, order, level = self.layout
        blob = ref.kll_bytes()
        if len(blob) != size:
            return None
        raw = np.frombuffer(blob, dtype="<f8", count=order.size, offset=offset)
        out: FloatArray = raw[order].astype(np.float64, copy=False)
        return out, np.ldexp(1.0, level)


_SIDE = "metrics.reference_side"


def reference_side(ref: NumericProfile) -> ReferenceSide:
    """The reference column's :class:`ReferenceSide`, computed once per profile (kept on
    it while it is unchanged: computed once per reference version, not per comparison)."""
    kept = ref.derived(_SIDE)
    if isinstance(kept, ReferenceSide):
        return kept
    return _reference_sides([ref])[0]


def _reference_sides(refs: list[NumericProfile]) -> list[ReferenceSide]:
    """:func:`reference_side` of several columns, their bounds' grid searches batched."""
    dists = [r.fresh_distribution() for r in refs]
    bounds = nb.sketch_w1_bounds([_w1_side(r, d) for r, d in zip(refs, dists, strict=True)])
    out = []
    for r, d, bound in zip(refs, dists, bounds, strict=True):
        edges = psi_edges(d)
        shares = bin_shares(d, edges)
        side = ReferenceSide(d.epsilon, d.cdf_epsilon, edges, shares,
                             share_errors(d, shares.size), bound, _layout(r))
        r.keep(_SIDE, side)
        out.append(side)
    return out


def _layout(ref: NumericProfile
            ) -> tuple[int, int, npt.NDArray[np.unsignedinteger], npt.NDArray[np.uint8]] | None:
    blob = ref.kll_bytes()
    found = kll_items.layout(blob)
    if found is None:
        return None
    offset, level = found
    raw = np.frombuffer(blob, dtype="<f8", count=level.size, offset=offset)
    order = np.argsort(raw, kind="stable")
    small: npt.NDArray[np.unsignedinteger] = (
        order.astype(np.uint16) if order.size < 2**16 else order.astype(np.uint32))
    return len(blob), offset, small, level[order]


def _w1_side(prof: NumericProfile, dist: Distribution) -> nb.Side:
    assert prof.min is not None and prof.max is not None
    assert prof.mean is not None and prof.variance is not None
    return dist, prof.min, prof.max, prof.mean, prof.variance


def prepare_numeric(pairs: Iterable[tuple[ColumnProfile, ColumnProfile]]) -> None:
    """Compute, for many (reference, current) column pairs at once, what
    :func:`numeric_metrics` would compute one column at a time: each side's ``int |F -
    F_hat|`` bound (the reference's in its :class:`ReferenceSide`, the current's cached on
    its distribution). Batched, the grid searches of the ~20 columns of a profile share
    their numpy calls (``sketch_w1_bounds``); the values are the same."""
    refs: dict[int, NumericProfile] = {}
    todo: dict[int, tuple[NumericProfile, Distribution]] = {}
    both: list[tuple[NumericProfile, Distribution]] = []
    for ref, cur in pairs:
        if not (isinstance(ref, NumericProfile) and isinstance(cur, NumericProfile)):
            continue
        if ref.count == 0 or cur.count == 0:
            continue
        if not isinstance(ref.derived(_SIDE), ReferenceSide):
            refs[id(ref)] = ref
        dist = cur.distribution()
        both.append((ref, dist))
        if dist.w1_bound is None:
            todo[id(dist)] = (cur, dist)
    if refs:
        _reference_sides(list(refs.values()))
    bounds = nb.sketch_w1_bounds([_w1_side(prof, dist) for prof, dist in todo.values()])
    for (_, dist), bound in zip(todo.values(), bounds, strict=True):
        dist.w1_bound = bound
    _prepare_binned([(reference_side(ref), dist) for ref, dist in both])


def _prepare_binned(pairs: list[tuple[ReferenceSide, Distribution]]) -> None:
    """PSI and JS with their bounds of many columns, one numpy call per step for all the
    columns with the same number of bins; kept on each current distribution."""
    by_bins: dict[int, list[tuple[ReferenceSide, Distribution]]] = {}
    for side, dist in pairs:
        if dist.binned is None or dist.binned[0] is not side:
            by_bins.setdefault(side.shares.size, []).append((side, dist))
    for group in by_bins.values():
        q = np.stack([bin_shares(d, s.edges) for s, d in group])
        ec = np.stack([share_errors(d, q.shape[1]) for _, d in group])
        p = np.stack([s.shares for s, _ in group])
        er = np.stack([s.share_errors for s, _ in group])
        found = np.stack(binned_metrics(p, q, er, ec), axis=1).tolist()
        for (side, dist), row in zip(group, found, strict=True):
            dist.binned = (side, (row[0], row[1], row[2], row[3]))


def _binned_of(side: ReferenceSide, cd: Distribution) -> tuple[float, float, float, float]:
    """(PSI, bound, JS, bound) of ``cd`` against the reference column's bins."""
    if cd.binned is None or cd.binned[0] is not side:
        _prepare_binned([(side, cd)])
    assert cd.binned is not None
    return cd.binned[1]


def _side_w1(prof: NumericProfile, dist: Distribution) -> float:
    """``int |F - F_hat|`` bound of one side, cached on its distribution. The two sides'
    bounds add up to a bound on the Wasserstein estimate's error (triangle inequality)."""
    if dist.w1_bound is None:
        dist.w1_bound = nb.sketch_w1_bound(*_w1_side(prof, dist))
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
