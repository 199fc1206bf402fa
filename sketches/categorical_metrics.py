"""Categorical drift metrics on the common support (sketches/support.py), each with a
bound derived from the per-category count intervals. Derivations (also in
sketches/README.md, "Categorical bounds"):

- ``linf``: the true ``|p_k - q_k|`` of a supported category lies in
  ``[gap of the two intervals, widest corner]``; a category outside the support has
  ``|p_k - q_k| <= min(max(cap_r, cap_c), max outside mass)``. So the true L-infinity
  lies in ``[max_k low_k, max(max_k high_k, outside)]``; the bound is the larger distance
  of the estimate to either end. Exact on both sides: 0.
- ``js`` (distance, base 2): the JS divergence is ``sum_k f(p_k, q_k)`` with
  ``f(p, q) = (p log2(2p/(p+q)) + q log2(2q/(p+q))) / 2``, jointly convex and 0 on
  ``p = q``. Per category, the largest ``f`` over its box of possible shares is at a
  corner; the smallest is 0 when the two intervals overlap, else at the corner nearest
  the diagonal. Summing the per-category ranges (ignoring that shares add up to 1, which
  only widens the range) bounds the divergence; categories outside the support
  contribute exactly ``P_out / 2`` when the other side is exact (its share there is 0),
  and something in ``[f(P_out, Q_out), (P_out + Q_out) / 2]`` when both sides are
  sketches (lumping can hide any split). ``D_hi`` is also bounded with each sketch side's
  shares (support + outside group) adding up to 1, by weak Lagrangian duality
  (``stats.box_sum_max``; 15-60 % lower at 3 k-300 k levels). The distance bound is the
  larger distance of ``sqrt(D_hat)`` to ``sqrt(D_lo)`` / ``sqrt(D_hi)``. When every count
  interval of a flat high-cardinality sketch is wider than the counts, ``D_lo`` is 0 (the
  sketches cannot rule out identical sides), so the bound is at least the value: honest,
  and as tight as the frequent-items error allows, but wide (bench/RESULTS.md).
- ``chi2``: Pearson's statistic of the 2 x K table (support + outside, Cochran-pooled on
  the estimates) written as ``sum_k (n2 r_k - n1 c_k)^2 / (n1 n2 (r_k + c_k))``: each term
  is convex, so its range over the count box is found as for JS. The test uses the
  *smallest* statistic the sketches allow, so its p-value is never smaller than the
  p-value of the true counts on the same bins (a conservative test, never a p-value of
  estimated counts). Coarsening categories keeps a homogeneity test valid.
- ``unseen`` (exact reference only): the current share on categories with reference count
  0; an exact reference names all its categories, so the current side's outside mass is
  unseen too. Judged against the reference's Good–Turing missing mass ``f1 / n``
  (``MetricSet.baselines``) and tested with a binomial tail at an upper limit of it. A
  sketch-mode reference cannot tell "never seen" from "seen up to max_error times": the
  value is reported as an upper bound (bound = value) and no test backs it, so no rule
  fires on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from scipy import special
from scipy import stats as sps

from sketches.distribution import FloatArray
from sketches.stats import box_range, box_sum_max, js_terms
from sketches.support import Side, Support

GT_Z = 3.09
"""One-sided 99.9 % normal quantile for the Good–Turing missing-mass upper limit."""


def linf(s: Support) -> tuple[float, float]:
    r, c = s.ref, s.cur
    if not s.keys:
        return 0.0, 0.0
    value = float(np.max(np.abs(r.hat - c.hat)))
    gap = np.maximum(np.maximum(r.lo - c.hi, c.lo - r.hi), 0.0)
    wide = np.maximum(r.hi - c.lo, c.hi - r.lo)
    low, high = float(gap.max()), float(wide.max())
    if s.has_outside:
        high = max(high, min(max(r.cap, c.cap), max(r.out_hi, c.out_hi)))
    return value, max(0.0, value - low, high - value)


def _outside_js(r: Side, c: Side) -> tuple[float, float, float]:
    """(estimate, low, high) of the outside group's JS divergence contribution."""
    if r.exact and c.exact:
        return 0.0, 0.0, 0.0
    if c.exact:
        return r.out_hat / 2, r.out_lo / 2, r.out_hi / 2
    if r.exact:
        return c.out_hat / 2, c.out_lo / 2, c.out_hi / 2
    one = np.array
    est = float(js_terms(one([r.out_hat]), one([c.out_hat]))[0])
    lo, _ = box_range(js_terms, one([r.out_lo]), one([r.out_hi]), one([c.out_lo]), one([c.out_hi]))
    return est, float(lo[0]), (r.out_hi + c.out_hi) / 2


def js(s: Support) -> tuple[float, float]:
    r, c = s.ref, s.cur
    o_est, o_lo, o_hi = _outside_js(r, c)
    d_hat = float(_js_estimate_terms(r, c).sum()) + o_est
    if r.exact and c.exact:
        return math.sqrt(max(d_hat, 0.0)), 0.0
    lo, hi = box_range(js_terms, r.lo, r.hi, c.lo, c.hi)
    d_lo = min(1.0, float(lo.sum()) + o_lo)
    d_hi = min(1.0, float(hi.sum()) + o_hi, _js_upper_dual(s))
    v = math.sqrt(max(d_hat, 0.0))
    return v, max(0.0, v - math.sqrt(max(d_lo, 0.0)), math.sqrt(max(d_hi, 0.0)) - v)


def _js_estimate_terms(r: Side, c: Side) -> FloatArray:
    """Per-category JS terms at the estimates. A category one sketch side does not track
    occurs there with chance ``present`` and share ``share_if_present``: its term is the
    expectation ``present f(p, v) + (1 - present) f(p, 0)`` (spreading the mean share over
    every such category instead would make a spiky side look flat: JS far too low)."""
    terms = js_terms(r.hat, c.hat)
    for side, other, swap in ((c, r, False), (r, c, True)):
        if side.untracked is None or side.present >= 1.0:
            continue
        v = np.full_like(other.hat, side.share_if_present)
        zero = np.zeros_like(other.hat)
        pair = (v, other.hat) if swap else (other.hat, v)
        none = (zero, other.hat) if swap else (other.hat, zero)
        mix = side.present * js_terms(*pair) + (1 - side.present) * js_terms(*none)
        terms = np.where(side.untracked > 0, mix, terms)
    return terms


def _js_upper_dual(s: Support) -> float:
    """Upper bound on the JS divergence using that each sketch side's shares (support +
    outside group) add up to 1 (``stats.box_sum_max``). The outside group's contribution
    is at most ``(P_out + Q_out) / 2`` for any split (exactly ``P_out / 2`` against an
    exact side, whose outside mass is 0)."""
    r, c = s.ref, s.cur
    pc = np.stack([r.lo, r.lo, r.hi, r.hi])
    qc = np.stack([c.lo, c.hi, c.lo, c.hi])
    fc = js_terms(pc, qc)
    po = np.array([r.out_lo, r.out_lo, r.out_hi, r.out_hi])
    qo = np.array([c.out_lo, c.out_hi, c.out_lo, c.out_hi])
    pc, qc, fc = (np.concatenate((a, b[:, None]), axis=1)
                  for a, b in ((pc, po), (qc, qo), (fc, (po + qo) / 2)))  # fmt: skip
    return box_sum_max(fc, pc, qc, 1.0, 1.0, not r.exact, not c.exact)


def _chi2_terms(n1: float, n2: float) -> Callable[[FloatArray, FloatArray], FloatArray]:
    """Pearson's 2 x K term in shares p = r / n1, q = c / n2:
    (n2 r - n1 c)^2 / (n1 n2 (r + c)) = n1 n2 (p - q)^2 / (n1 p + n2 q) — 0 on p = q."""

    def g(p: FloatArray, q: FloatArray) -> FloatArray:
        tot = n1 * p + n2 * q
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(tot > 0, n1 * n2 * (p - q) ** 2 / tot, 0.0)
        res: FloatArray = out
        return res

    return g


def chi2_bins(s: Support) -> npt.NDArray[np.int64]:
    """The bin of each support key and of the outside group (last): Cochran's rule pools
    the rare ones (and always the outside group) into the last bin; -1: no count on either
    side (left out). Decided from the estimates, so it is the same for the true counts."""
    r, c = s.ref, s.cur
    n1, n2 = float(r.n), float(c.n)
    col = np.append(r.hat, r.out_hat) * n1 + np.append(c.hat, c.out_hat) * n2
    small = np.minimum(col * n1, col * n2) / (n1 + n2) < 5
    # The outside group is chosen by both samples (categories neither side names, so
    # its current count is 0 whenever the current side is exact): tested alone it would
    # be a data-selected bin. Its categories are each at most max_error on a sketch side,
    # i.e. the rare ones Cochran's rule pools anyway, so it always joins the pooled bin.
    small[-1] = True
    keep = (np.append(r.hi, r.out_hi) * n1 + np.append(c.hi, c.out_hi) * n2) > 0
    bins = np.full(small.size, -1, dtype=np.int64)
    big = keep & ~small
    bins[big] = np.arange(int(big.sum()))
    bins[keep & small] = int(big.sum())
    return bins


def chi2(s: Support) -> tuple[float, float, float]:
    """(statistic at the estimates, its bound, conservative p-value) on :func:`chi2_bins`."""
    r, c = s.ref, s.cur
    n1, n2 = float(r.n), float(c.n)
    bins = chi2_bins(s)
    k = int(bins.max()) + 1
    if k < 2:
        return 0.0, 0.0, 1.0
    used = bins >= 0

    def binned(side: Side, which: str, n: float) -> FloatArray:
        a = np.append(getattr(side, which), getattr(side, f"out_{which}")) * n
        return np.bincount(bins[used], weights=a[used], minlength=k).astype(np.float64)

    rl, rh, rhat = (binned(r, w, n1) for w in ("lo", "hi", "hat"))
    cl, ch, chat = (binned(c, w, n2) for w in ("lo", "hi", "hat"))
    g = _chi2_terms(n1, n2)
    stat = float(g(rhat / n1, chat / n2).sum())
    if r.exact and c.exact:
        return stat, 0.0, float(special.chdtrc(k - 1, stat))
    lo, hi = box_range(g, rl / n1, rh / n1, cl / n2, ch / n2)
    low, high = float(lo.sum()), float(hi.sum())
    return stat, max(0.0, stat - low, high - stat), float(special.chdtrc(k - 1, low))


def good_turing(f1: int, f2: int, n: int) -> tuple[float, float]:
    """(Good–Turing missing mass f1/n, its upper limit). The variance estimate
    (f1 + 2 f2 - f1^2/n) / n^2 is Esty's (1983); +3/n covers f1 = 0 (rule of three)."""
    m0 = f1 / n
    var = max(0.0, f1 + 2 * f2 - f1 * f1 / n) / (n * n)
    return m0, min(1.0, m0 + GT_Z * math.sqrt(var) + 3.0 / n)


def unseen(s: Support, f1: int | None, f2: int | None) -> tuple[float, float, float | None, float]:
    """(value, bound, p-value or None, chance baseline) of the unseen share."""
    r, c = s.ref, s.cur
    new = r.hi <= 0 if r.exact else r.lo <= 0  # sketch ref: "not tracked" (upper bound)
    u_hat = float(c.hat[new].sum()) + c.out_hat
    if not r.exact:
        return u_hat, u_hat, None, 0.0
    u_lo = float(c.lo[new].sum()) + c.out_lo
    u_hi = float(c.hi[new].sum()) + c.out_hi
    bound = max(0.0, u_hat - u_lo, u_hi - u_hat)
    assert f1 is not None and f2 is not None
    m0, m0_up = good_turing(f1, f2, r.n)
    k = math.ceil(u_lo * c.n - 1e-9)
    p = 1.0 if k <= 0 else float(sps.binom.sf(k - 1, c.n, m0_up))
    return u_hat, bound, p, m0
