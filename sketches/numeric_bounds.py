"""Error bounds of the binned (PSI, JS) and integrated (Wasserstein) numeric metrics.

Derivations (also in sketches/README.md, "Numeric bounds"); ``e_r``, ``e_c`` are the two
sketches' double-sided (PMF) normalised rank errors, 0 for a sketch still exact:

- **Per-bin (PSI, JS).** A bin's share is the difference of two ranks, which KLL's
  double-sided bound covers directly: every bin share is within ``e`` of its true value
  (not ``2e`` as perturbing each edge separately would give). PSI's per-bin term
  ``(q - p) ln(q / p)`` and JS's ``f(p, q)`` are jointly convex and vanish on ``p = q``, so
  over a bin's box ``[p - e_r, p + e_r] x [q - e_c, q + e_c]`` (clipped to [0, 1]) the
  largest value is at a corner and the smallest is 0 when the intervals overlap, else at
  the corner nearest the diagonal. Summing per-bin ranges bounds the total (ignoring
  that shares add to 1, which only widens it). PSI's 1e-4 floor is applied inside.
- **Wasserstein.** ``W = int |F_r - F_c| dx``. At every ``x`` each true CDF lies in
  ``[F_hat - e, F_hat + e]`` clipped to [0, 1], and is exactly 0 below the side's exact
  minimum and 1 from its exact maximum on. So ``|F_r - F_c|`` lies in an interval
  ``[L(x), H(x)]`` and the error of the estimate is at most
  ``max(|d_hat| - L, H - |d_hat|)``, integrated exactly over the piecewise-constant
  segments between the union of both sketches' items and the exact min/max. Outside the
  sketches' own range (the tails beyond the [e, 1 - e] quantiles) this counts up to
  ``e`` of CDF error per unit length all the way to the exact min/max: the bound *holds*
  on heavy tails but is wide there (a lognormal sigma = 2 column's max is hundreds of
  sds out). It is honest, not tight; rules cap its influence (``DriftRules.bound_margin``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sketches.distribution import Distribution, FloatArray
from sketches.stats import PSI_FLOOR, box_range, js_terms

Term = Callable[[FloatArray, FloatArray], FloatArray]


def psi_terms(p: FloatArray, q: FloatArray) -> FloatArray:
    a, b = np.maximum(p, PSI_FLOOR), np.maximum(q, PSI_FLOOR)
    out: FloatArray = (b - a) * np.log(b / a)
    return out


def binned_bound(
    fn: Term, p: FloatArray, q: FloatArray, er: float, ec: float
) -> tuple[float, float]:
    """(low, high) of ``sum fn`` when each share of p / q is within er / ec."""
    if er == 0 and ec == 0:
        s = float(fn(p, q).sum())
        return s, s
    lo, hi = box_range(
        fn,
        np.clip(p - er, 0, 1), np.clip(p + er, 0, 1),
        np.clip(q - ec, 0, 1), np.clip(q + ec, 0, 1),
    )  # fmt: skip
    return float(lo.sum()), float(hi.sum())


def psi_bound(p: FloatArray, q: FloatArray, er: float, ec: float) -> float:
    value = float(psi_terms(p, q).sum())
    lo, hi = binned_bound(psi_terms, p, q, er, ec)
    return max(0.0, value - lo, hi - value)


def js_bound(p: FloatArray, q: FloatArray, er: float, ec: float) -> float:
    d = float(js_terms(p, q).sum())
    lo, hi = binned_bound(js_terms, p, q, er, ec)
    v = np.sqrt(max(d, 0.0))
    return float(max(0.0, v - np.sqrt(max(lo, 0.0)), np.sqrt(min(max(hi, 0.0), 1.0)) - v))


def _cdf_interval(
    d: Distribution, x: FloatArray, lo: float, hi: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(estimate, low, high) of one side's CDF on segments starting at ``x``."""
    f = d.cdf(x)
    fl = np.clip(f - d.epsilon, 0.0, 1.0)
    fh = np.clip(f + d.epsilon, 0.0, 1.0)
    below, above = x < lo, x >= hi
    fl = np.where(below, 0.0, np.where(above, 1.0, fl))
    fh = np.where(below, 0.0, np.where(above, 1.0, fh))
    return f, fl, fh


def wasserstein_error(
    rd: Distribution, cd: Distribution, r_range: tuple[float, float], c_range: tuple[float, float]
) -> float:
    """Bound on |W_hat - W| (unnormalised) from the pointwise CDF intervals, integrated
    between the exact minimum and maximum of both sides."""
    if rd.epsilon == 0 and cd.epsilon == 0:
        return 0.0
    pts = np.unique(np.concatenate((rd.items, cd.items, np.array([*r_range, *c_range]))))
    if pts.size < 2:
        return 0.0
    x, width = pts[:-1], np.diff(pts)
    fr, rl, rh = _cdf_interval(rd, x, *r_range)
    fc, cl, ch = _cdf_interval(cd, x, *c_range)
    d = np.abs(fr - fc)
    low = np.maximum(np.maximum(rl - ch, cl - rh), 0.0)
    high = np.maximum(rh - cl, ch - rl)
    err = np.maximum(d - low, high - d)
    return float(np.sum(err * width))
