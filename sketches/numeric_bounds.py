"""Error bounds of the binned (PSI, JS) and integrated (Wasserstein) numeric metrics.

Derivations (also in sketches/README.md, "Numeric bounds"). KLL documents two errors,
each "the best fit to the 99th percentile of the measured *max* error" over all queries
of a sketch: ``e1`` (single-sided: the CDF at any point, ``Distribution.cdf_epsilon``,
0.35 % at k = 800) and ``e2`` (double-sided: the share of any interval,
``Distribution.epsilon``, 0.45 %); both 0 while a sketch is still exact.

- **Per-bin (PSI, JS)** (computed in :mod:`sketches.binned`). A bin's share is the CDF
  difference at its two edges, so its error is at most ``min(e2, 2 e1) = e2``; the two
  end bins ``(-inf, e_1]`` and ``(e_k, inf)`` are one CDF value each (or its
  complement), so at most ``e1`` (``share_errors``). PSI's per-bin term ``(q - p) ln(q /
  p)`` and JS's ``f(p, q)`` are jointly convex and vanish on ``p = q``, so over a bin's
  box of possible shares the largest value is at a corner and the smallest is 0 when the
  intervals overlap, else at the corner nearest the diagonal (``stats.box_range``).
  Summing per-bin ranges bounds the total; PSI's 1e-4 floor is applied inside. That the
  shares add up to 1 is ignored: a weak-duality bound using it (``stats.box_sum_max``,
  as for categoricals) was measured 2 % tighter at ~3 ms per column, not worth it on the
  evaluation path. The bound is the exact worst case of the documented error, but (a)
  ``e2`` is a 99th-percentile *worst-case* error, ~10x the typical one (the KS bound is
  7-15x its measured error), and (b) near ``p = q`` PSI and the JS divergence are
  *quadratic* in the share errors, so the bound / error ratio is ~100: a tighter bound
  needs a tighter error model than datasketches documents.
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
from dataclasses import dataclass

import numpy as np

from sketches.distribution import Distribution, FloatArray, joint_cdf


def _cdf_interval(
    eps: float, x: FloatArray, f: FloatArray, lo: float, hi: float
) -> tuple[FloatArray, FloatArray]:
    """(low, high) of one side's CDF on segments starting at ``x`` (sorted; ``f``: its
    estimate there, ``eps``: its error): ``f -/+ eps`` within [0, 1], exactly 0 below the
    side's exact minimum and 1 from its exact maximum on."""
    fl = np.maximum(f - eps, 0.0)  # (f <= 1: never above 1)
    fh = np.minimum(f + eps, 1.0)  # (f >= 0: never below 0)
    first, last = np.searchsorted(x, (lo, hi))  # x < lo before first, x >= hi from last on
    fl[last:] = fh[last:] = 1.0
    fl[:first] = fh[:first] = 0.0
    return fl, fh


def union_points(
    rd: Distribution, cd: Distribution, r_range: tuple[float, float],
    c_range: tuple[float, float],
) -> tuple[FloatArray, FloatArray, FloatArray]:  # fmt: skip
    """(points, ``rd.cdf(points)``, ``cd.cdf(points)``): both sketches' items and both
    exact ranges, sorted and unique — where the two step CDFs (and the ranges' clipping)
    can change."""
    return joint_cdf(rd, cd, np.array([*r_range, *c_range]))


_MAX_GROWTH = 0.25
"""How much (relative to E) the shift correction may widen the Wasserstein bound."""


def wasserstein(
    at: tuple[FloatArray, FloatArray, FloatArray],
    r_eps: float,
    c_eps: float,
    r_range: tuple[float, float],
    c_range: tuple[float, float],
    shift: float,
    sides: float,
) -> tuple[float, float]:
    """(estimate, error bound) of ``W = int |F_r - F_c| dx`` (unnormalised).

    ``at``: ``(points, F_hat_r, F_hat_c)`` at the union of both sketches' items and both
    exact ranges (:func:`union_points`; the KS distance is read off the same CDFs);
    ``r_eps`` / ``c_eps``: each side's single-sided CDF error ``e1``.

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
    pts = at[0]
    if pts.size < 2:
        return 0.0, 0.0
    x, width = pts[:-1], np.diff(pts)
    fr, fc = at[1][:-1], at[2][:-1]
    d = fr - fc
    seg = d * width
    pos, neg = float(seg[seg > 0].sum()), float(-seg[seg < 0].sum())
    plain = pos + neg
    if r_eps == 0 and c_eps == 0:
        return plain, 0.0
    a = np.abs(d)
    rl, rh = _cdf_interval(r_eps, x, fr, *r_range)
    cl, ch = _cdf_interval(c_eps, x, fc, *c_range)
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
_AA, _BB = (m.ravel() for m in np.meshgrid(_A_GRID, _B_GRID))
"""The coarse search grid of ``(a, b)``; then a finer one around its best pair."""
_FINE_A, _FINE_B = (
    m.ravel() for m in np.meshgrid(np.linspace(-0.15, 0.15, 7), np.geomspace(0.5, 2, 9))
)
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


class _Batch:
    """The segments of several sides side by side, so one dual evaluation (a few dozen
    numpy calls, whatever the number of sides) serves them all."""

    def __init__(self, sides: list[_Segments]) -> None:
        self.u0 = np.concatenate([g.u0 for g in sides])
        self.u1 = np.concatenate([g.u1 for g in sides])
        self.dh = np.concatenate([g.dh for g in sides])
        self.nl = -np.concatenate([g.dl for g in sides])
        sizes = np.array([g.u0.size for g in sides])
        self.starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        self.owner = np.repeat(np.arange(len(sides)), sizes)
        """The side of each segment."""
        self.s = np.array([g.s for g in sides])
        self.t0 = np.array([g.t0 for g in sides])
        self.t1s = np.array([g.t1 for g in sides]) / self.s
        self.d0 = np.array([g.d0 for g in sides])
        self.d1s = np.array([g.d1 for g in sides]) / self.s
        # max(L1, L2) = (L1 + L2) / 2 + |L1 - L2| / 2 with L1 = D_hi (1 - g) and
        # L2 = -D_lo (1 + g): the first half integrates to c0 + c1 a + c2 b per side
        width = self.u1 - self.u0
        half_sq = (self.u1**2 - self.u0**2) / 2  # int u du
        starts = self.starts
        self.c0 = np.add.reduceat((self.dh + self.nl) * width, starts) / 2
        self.c1 = np.add.reduceat((self.nl - self.dh) * width, starts) / 2
        self.c2 = np.add.reduceat((self.nl - self.dh) * half_sq, starts) / 2
        # L1 - L2 = alpha - beta g
        self.alpha, self.beta, self.width = self.dh - self.nl, self.dh + self.nl, width

    def dual(self, a: FloatArray, b: FloatArray) -> FloatArray:
        """The weak-duality bound of each side (columns) at the pairs ``(a[i, j], b[i, j])``
        (rows i; column j: side j's pairs).

        On a segment the integrand is ``max(L1, L2)`` with ``L1 = D_hi (1 - g)`` and
        ``L2 = -D_lo (1 + g)`` (its ``0`` never binds: ``D_lo <= 0 <= D_hi``), both linear
        in ``u`` as ``g`` is: ``max(L1, L2) = (L1 + L2) / 2 + |L1 - L2| / 2``, the first
        term integrated in closed form per side, the second exactly per segment (a
        linear function's absolute value: one trapezoid, or two split at its root)."""
        ac, bc = a[:, self.owner], b[:, self.owner]  # each segment gets its side's pairs
        v0, v1 = bc * self.u0, bc * self.u1  # then L1 - L2 at both ends (in place: these
        for v in (v0, v1):                   # arrays are the search's whole cost)
            v += ac
            v *= self.beta
            np.subtract(self.alpha, v, out=v)
        crossing = (v0 < 0) != (v1 < 0)
        total = np.abs(v0) + np.abs(v1)
        v0 *= v0
        v1 *= v1
        v0 += v1
        np.divide(v0, total, out=v0, where=total > 0)  # (0 where total is: v0 = v1 = 0)
        area = np.where(crossing, v0, total)
        area *= self.width  # 2 int |L1 - L2|
        integral = (self.c0 + self.c1 * a + self.c2 * b
                    + np.add.reduceat(area, self.starts, axis=1) / 4)
        out: FloatArray = (
            a * self.t0 + b * self.t1s + np.abs(a) * self.d0 + np.abs(b) * self.d1s
            + integral * self.s
        )  # fmt: skip
        return out


Side = tuple[Distribution, float, float, float, float]
"""One side's sketch distribution and its exact (min, max, mean, variance)."""


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
    return sketch_w1_bounds([(d, lo, hi, mean, var)])[0]


def sketch_w1_bounds(sides: list[Side]) -> list[float]:
    """:func:`sketch_w1_bound` of several sides at once (the same values; the grid searches
    of several sides share their numpy calls)."""
    out: list[float] = []
    todo: list[tuple[int, _Segments]] = []
    for d, lo, hi, mean, var in sides:
        prepared = _segments(d, lo, hi, mean, var)
        if isinstance(prepared, float):
            out.append(prepared)
        else:
            out.append(prepared[0])
            todo.append((len(out) - 1, prepared[1]))
    for start in range(0, len(todo), _SIDES_PER_BATCH):
        part = todo[start:start + _SIDES_PER_BATCH]
        batch = _Batch([seg for _, seg in part])
        n = len(part)
        vals = batch.dual(np.repeat(_AA[:, None], n, axis=1), np.repeat(_BB[:, None], n, axis=1))
        i = np.argmin(vals, axis=0)
        fine = batch.dual(_AA[i] + _FINE_A[:, None], _BB[i] * _FINE_B[:, None]).min(axis=0)
        best = np.minimum(vals[i, np.arange(n)], fine)
        for (k, _), value in zip(part, best.tolist(), strict=True):
            out[k] = min(out[k], value)
    return out


_SIDES_PER_BATCH = 5
"""Sides searched together: enough to share the numpy calls' overhead, few enough that the
(pairs x segments) arrays stay in cache (measured: 5 is ~25 % faster than 1 or 20)."""


def _segments(
    d: Distribution, lo: float, hi: float, mean: float, var: float
) -> float | tuple[float, _Segments]:
    """One side's final bound (nothing to search), or (its plain bound, its segments)."""
    eps = d.cdf_epsilon
    if eps == 0 or d.items.size == 0 or not hi > lo:
        return 0.0
    items = d.items
    if lo <= items[0] and items[-1] <= hi:  # always, for a sketch of the side's own data:
        # x = [lo] + items + [hi] less repeats; the CDF there: 0 at lo, then ``cum``
        first = 0 if lo < items[0] else 1
        x = np.concatenate(([lo], items, [hi]))[first : items.size + 1 + (items[-1] < hi)]
        f = np.concatenate(([0.0], d.cum))[first : first + x.size - 1]
    else:
        x = np.unique(np.concatenate((items, np.array([lo, hi]))))
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
    centred = items - mean
    return plain, _Segments(
        u0=(x[cuts[:-1]] - mean) / s,
        u1=(x[cuts[1:]] - mean) / s,
        dh=np.maximum.reduceat(dh, cuts[:-1]),
        dl=np.minimum.reduceat(dl, cuts[:-1]),
        s=s,
        t0=float(np.sum(w * centred)),
        t1=float(np.sum(w * centred**2) - var) / 2,
        d0=_ROUNDING * (max(abs(lo), abs(hi), abs(mean)) + s),
        d1=_ROUNDING * max((hi - mean) ** 2, (mean - lo) ** 2, var),
    )
