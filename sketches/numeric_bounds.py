"""Error bounds of the binned (PSI, JS) and integrated (Wasserstein) numeric metrics.

Derivations (also in sketches/README.md, "Numeric bounds"). KLL documents two errors,
each "the best fit to the 99th percentile of the measured *max* error" over all queries
of a sketch: ``e1`` (single-sided: the CDF at any point, ``Distribution.cdf_epsilon``,
0.35 % at k = 800) and ``e2`` (double-sided: the share of any interval,
``Distribution.epsilon``, 0.45 %); both 0 while a sketch is still exact.

- **Per-bin (PSI, JS).** A bin's share is the CDF difference at its two edges, so its
  error is at most ``min(e2, 2 e1) = e2``; the two end bins ``(-inf, e_1]`` and
  ``(e_k, inf)`` are one CDF value each (or its complement), so at most ``e1``
  (``share_errors``). PSI's per-bin term ``(q - p) ln(q / p)`` and JS's ``f(p, q)`` are
  jointly convex and vanish on ``p = q``, so over a bin's box of possible shares the
  largest value is at a corner and the smallest is 0 when the intervals overlap, else at
  the corner nearest the diagonal (``stats.box_range``). Summing per-bin ranges bounds
  the total; PSI's 1e-4 floor is applied inside. That the shares add up to 1 is ignored:
  a weak-duality bound using it (``stats.box_sum_max``, as for categoricals) was measured
  2 % tighter at ~3 ms per column, not worth it on the evaluation path. The bound is the
  exact worst case of the documented error, but (a) ``e2`` is a 99th-percentile
  *worst-case* error, ~10x the typical one (the KS bound is 7-15x its measured error),
  and (b) near ``p = q`` PSI and the JS divergence are *quadratic* in the share errors,
  so the bound / error ratio is ~100: a tighter bound needs a tighter error model than
  datasketches documents.
- **Wasserstein estimate** (``wasserstein``): the exact mean shift fixes ``P - N`` of
  ``W = P + N``; for a one-sided difference only ``min(P, N)`` comes from the sketches.
  Its error is at most ``E + r |delta|`` with ``E`` a bound on the plain estimate's error
  (see the function).
- **E, pointwise.** At every ``x`` each true CDF lies in ``[F_hat - e1, F_hat + e1]``
  clipped to [0, 1], and is exactly 0 below the side's exact minimum and 1 from its exact
  maximum on; integrated exactly over the piecewise-constant segments between the union
  of both sketches' items and the exact min/max. This counts up to ``e1`` of CDF error per
  unit length all the way to the exact min/max: it holds on heavy tails but is useless
  there (0.5-2.5 sds for lognormal sigma = 2 / Student t 2).
- **E, with the moments (``sketch_w1_bound``).** ``|W_hat - W| <= int |d_hat - d| <=
  int |F_r - F_hat_r| + int |F_c - F_hat_c|`` (triangle inequality), and each side's term
  is bounded using the exact mean and variance as well as ``e1``: see the function. This
  makes the tails nearly free (0.06-0.1 sds per side on those columns). ``E`` is the
  smaller of the two.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sketches.distribution import Distribution, FloatArray
from sketches.stats import PSI_FLOOR, box_range, js_terms

Term = Callable[[FloatArray, FloatArray], FloatArray]


def psi_terms(p: FloatArray, q: FloatArray) -> FloatArray:
    a, b = np.maximum(p, PSI_FLOOR), np.maximum(q, PSI_FLOOR)
    out: FloatArray = (b - a) * np.log(b / a)
    return out


def share_errors(d: Distribution, bins: int) -> FloatArray:
    """Largest error of each bin share: ``e2`` inside, ``e1`` for the two end bins."""
    out = np.full(bins, d.epsilon)
    if bins >= 1:
        out[0] = out[-1] = d.cdf_epsilon
    return out


def binned_bound(
    fn: Term, p: FloatArray, q: FloatArray, er: FloatArray, ec: FloatArray
) -> tuple[float, float]:
    """(low, high) of ``sum fn`` when each share of p / q is within er / ec."""
    if not (np.any(er) or np.any(ec)):
        s = float(fn(p, q).sum())
        return s, s
    lo, hi = box_range(
        fn,
        np.clip(p - er, 0, 1), np.clip(p + er, 0, 1),
        np.clip(q - ec, 0, 1), np.clip(q + ec, 0, 1),
    )  # fmt: skip
    return float(lo.sum()), float(hi.sum())


def psi_bound(p: FloatArray, q: FloatArray, er: FloatArray, ec: FloatArray) -> float:
    value = float(psi_terms(p, q).sum())
    lo, hi = binned_bound(psi_terms, p, q, er, ec)
    return max(0.0, value - lo, hi - value)


def js_bound(p: FloatArray, q: FloatArray, er: FloatArray, ec: FloatArray) -> float:
    d = float(js_terms(p, q).sum())
    lo, hi = binned_bound(js_terms, p, q, er, ec)
    v = np.sqrt(max(d, 0.0))
    return float(max(0.0, v - np.sqrt(max(lo, 0.0)), np.sqrt(min(max(hi, 0.0), 1.0)) - v))


def _cdf_interval(
    d: Distribution, x: FloatArray, lo: float, hi: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(estimate, low, high) of one side's CDF on segments starting at ``x``."""
    f = d.cdf(x)
    fl = np.clip(f - d.cdf_epsilon, 0.0, 1.0)
    fh = np.clip(f + d.cdf_epsilon, 0.0, 1.0)
    below, above = x < lo, x >= hi
    fl = np.where(below, 0.0, np.where(above, 1.0, fl))
    fh = np.where(below, 0.0, np.where(above, 1.0, fh))
    return f, fl, fh


_MAX_GROWTH = 0.25
"""How much (relative to E) the shift correction may widen the Wasserstein bound."""


def wasserstein(
    rd: Distribution,
    cd: Distribution,
    r_range: tuple[float, float],
    c_range: tuple[float, float],
    shift: float,
    sides: float,
) -> tuple[float, float]:
    """(estimate, error bound) of ``W = int |F_r - F_c| dx`` (unnormalised).

    ``shift`` = ``mean_c - mean_r`` (exact) = ``int (F_r - F_c) dx``; ``sides`` bounds
    ``int |F_r - F_hat_r| + int |F_c - F_hat_c|`` (``sketch_w1_bound`` of each side).
    ``W = P + N`` (positive / negative parts of ``F_r - F_c``) and ``P - N = shift`` is
    known exactly. With ``a = P_hat - P`` and ``b = N_hat - N`` the plain estimate
    ``W_hat = P_hat + N_hat`` is off by ``a + b``, while ``a - b = delta = (P_hat - N_hat)
    - shift`` is known. A one-sided difference (a location shift) puts the sketch error in
    one part (``a + b ~ a - b``); a balanced one often moves mass between the parts
    (``a + b ~ 0``). So the estimate is ``W_hat - r s delta`` with ``r = |P_hat - N_hat| /
    W_hat`` (1: one-sided, 0: balanced; capped at ``E / (4 |delta|)``, so the bound below
    is at most ``1.25 E``) and ``s`` the sign of ``P_hat - N_hat``; at
    ``r = 1`` it is ``|shift| + 2 min(P_hat, N_hat)``: the sketches only estimate the
    smaller part. (Measured at 1 M vs 100 k rows, 0.105 sd shift: error sd 0.0003 sd
    against 0.0024 for ``W_hat``.) It is clipped to ``W >= |shift|``. Error: ``|a + b -
    r s delta| <= |W_hat - W| + r |delta| <= E + r |delta|``, for any ``r`` and ``s``,
    with ``E`` the smaller of ``sides`` and the pointwise bound on ``| |d_hat| - |d| |``
    from each CDF's interval (``_cdf_interval``). Both sides exact: ``W_hat``, bound 0.
    """
    pts = np.unique(np.concatenate((rd.items, cd.items, np.array([*r_range, *c_range]))))
    if pts.size < 2:
        return 0.0, 0.0
    x, width = pts[:-1], np.diff(pts)
    fr, rl, rh = _cdf_interval(rd, x, *r_range)
    fc, cl, ch = _cdf_interval(cd, x, *c_range)
    d = fr - fc
    seg = d * width
    pos, neg = float(seg[seg > 0].sum()), float(-seg[seg < 0].sum())
    plain = pos + neg
    if rd.cdf_epsilon == 0 and cd.cdf_epsilon == 0:
        return plain, 0.0
    a = np.abs(d)
    low = np.maximum(np.maximum(rl - ch, cl - rh), 0.0)
    high = np.maximum(rh - cl, ch - rl)
    err = min(sides, float(np.sum(np.maximum(a - low, high - a) * width)))
    if not math.isfinite(shift) or plain <= 0:
        return plain, err
    s_hat = pos - neg
    delta = s_hat - shift
    # r = |s_hat| / W_hat, capped so that the bound grows by at most a quarter (heavy tails:
    # the sketches' means can be off by more than E, and then the plain integral is kept).
    r = min(abs(s_hat) / plain, _MAX_GROWTH * err / abs(delta) if delta else 1.0)
    value = plain - r * math.copysign(1.0, s_hat) * delta
    return max(value, abs(shift)), err + r * abs(delta)


# ----------------------------------------------------------------- Wasserstein, per side
_A_GRID = np.linspace(-1.0, 1.0, 9)
_B_GRID = np.concatenate((-np.geomspace(1e-3, 30.0, 15), [0.0]))
_ROUNDING = 1e-9


@dataclass(frozen=True)
class _Segments:
    """Grouped segments of one side, in units u = (x - mean) / s, with D's range on each."""

    u0: FloatArray
    u1: FloatArray
    dh: FloatArray
    dl: FloatArray
    s: float
    t0: float
    t1: float
    d0: float
    d1: float

    def dual(self, a: FloatArray, b: FloatArray) -> FloatArray:
        """The weak-duality bound at each pair ``(a[i], b[i])``."""
        u0, u1, dh, dl = self.u0, self.u1, self.dh, self.dl
        ac, bc = a[:, None], b[:, None]
        k = a.shape[0]
        pts = [np.broadcast_to(u0, (k, u0.size)), np.broadcast_to(u1, (k, u1.size))]
        with np.errstate(divide="ignore", invalid="ignore"):
            gstar = np.where(dh - dl > 0, (dh + dl) / (dh - dl), 0.0)
            for gv in (1.0, -1.0, gstar):
                u = np.where(bc != 0, (gv - ac) / bc, u0)
                pts.append(np.clip(u, u0, u1))
        pt = np.sort(np.stack(pts, axis=-1), axis=-1)
        g = ac[..., None] + bc[..., None] * pt
        h = np.maximum(np.maximum(dh[:, None] * (1 - g), -dl[:, None] * (1 + g)), 0.0)
        integral = np.sum((h[..., 1:] + h[..., :-1]) / 2 * np.diff(pt, axis=-1), axis=(1, 2))
        out: FloatArray = (
            a * self.t0 + b * self.t1 / self.s
            + np.abs(a) * self.d0 + np.abs(b) * self.d1 / self.s
            + integral * self.s
        )  # fmt: skip
        return out


def sketch_w1_bound(d: Distribution, lo: float, hi: float, mean: float, var: float) -> float:
    """Upper bound on ``int |F - F_hat| dx`` for one side (its sketch against its data).

    ``D = F - F_hat`` lies in ``[-min(e1, F_hat), min(e1, 1 - F_hat)]`` at every ``x`` and is
    0 outside the exact ``[lo, hi]``. Two linear facts hold exactly, from the exact mean and
    variance (integration by parts on ``[lo, hi]``): ``int D dx = mean_hat - mean = t0`` and
    ``int (x - mean) D dx = (m2_hat - var) / 2 = t1``, ``m2_hat`` being the sketch's second
    moment about the *exact* mean. Weak Lagrangian duality: for every ``(a, b)``, with
    ``g(x) = a + b (x - mean) / s``,
    ``int |D| <= a t0 + b t1 / s + int max(D_hi (1 - g), -D_lo (1 + g), 0) dx``.
    With ``g`` near +1 on the lower tail and -1 on the upper tail (where ``D`` has one sign)
    the tails cost almost nothing: a heavy tail cannot hide CDF error without moving the
    exact moments. Any ``(a, b)`` is valid, so a small grid is searched. The integrand is
    piecewise linear and convex in ``x`` and is integrated exactly between its breakpoints,
    so consecutive segments with the same ``D`` range are merged without loss.
    ``(0, 0)`` is the plain bound ``int max(D_hi, -D_lo)``; the result is never above it.
    Rounding of the moments is covered by a 1e-9 relative slack.
    """
    eps = d.cdf_epsilon
    if eps == 0 or d.items.size == 0 or not hi > lo:
        return 0.0
    x = np.unique(np.concatenate((d.items, np.array([lo, hi]))))
    x = x[(x >= lo) & (x <= hi)]
    f = d.cdf(x[:-1])
    dh, dl = np.minimum(eps, 1.0 - f), -np.minimum(eps, f)
    plain = float(np.sum(np.maximum(dh, -dl) * np.diff(x)))
    if not (math.isfinite(mean) and math.isfinite(var) and var > 0 and math.isfinite(plain)):
        return plain
    w = np.diff(np.concatenate(([0.0], d.cum)))
    s = math.sqrt(var)
    # Runs of equal D range are merged (lossless: breakpoints are found within a run).
    change = np.flatnonzero((dh[1:] != dh[:-1]) | (dl[1:] != dl[:-1])) + 1
    cuts = np.concatenate(([0], change, [f.size]))
    seg = _Segments(
        u0=(x[cuts[:-1]] - mean) / s,
        u1=(x[cuts[1:]] - mean) / s,
        dh=np.maximum.reduceat(dh, cuts[:-1]),
        dl=np.minimum.reduceat(dl, cuts[:-1]),
        s=s,
        t0=float(np.sum(w * (d.items - mean))),
        t1=float(np.sum(w * (d.items - mean) ** 2) - var) / 2,
        d0=_ROUNDING * (max(abs(lo), abs(hi), abs(mean)) + s),
        d1=_ROUNDING * max((hi - mean) ** 2, (mean - lo) ** 2, var),
    )
    aa, bb = (m.ravel() for m in np.meshgrid(_A_GRID, _B_GRID))
    vals = seg.dual(aa, bb)
    i = int(np.argmin(vals))
    fa, fb = (
        m.ravel()
        for m in np.meshgrid(aa[i] + np.linspace(-0.15, 0.15, 7), bb[i] * np.geomspace(0.5, 2, 9))
    )
    best = min(float(vals[i]), float(seg.dual(fa, fb).min()))
    return min(plain, best)
