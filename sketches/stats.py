"""Small statistical helpers: divergences on binned masses, tests, multiple-testing corrections.

p-values use ``scipy.special`` (KS asymptotic distribution, chi-square and normal tails);
Benjamini–Hochberg is ``scipy.stats.false_discovery_control``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
from scipy import special
from scipy.stats import false_discovery_control, fisher_exact

FloatArray = npt.NDArray[np.float64]

PSI_FLOOR = 1e-4
"""Bin shares are floored at 1e-4 before PSI's logarithm (an empty bin would be infinite)."""


def psi(expected: FloatArray, actual: FloatArray) -> float:
    """Population stability index  sum((a - e) * ln(a / e)), shares floored at PSI_FLOOR."""
    e = np.maximum(expected, PSI_FLOOR)
    a = np.maximum(actual, PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def js_distance(p: FloatArray, q: FloatArray) -> float:
    """Jensen–Shannon distance, base 2 (in [0, 1]): sqrt of the JS divergence in bits."""
    p = p / p.sum() if p.sum() > 0 else p
    q = q / q.sum() if q.sum() > 0 else q
    m = 0.5 * (p + q)

    def kl(x: FloatArray) -> float:
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))

    return math.sqrt(max(0.0, 0.5 * kl(p) + 0.5 * kl(q)))


def js_terms(p: FloatArray, q: FloatArray) -> FloatArray:
    """Per-category JS divergence terms f(p, q) in bits (0 log 0 = 0)."""
    m = p + q
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(p > 0, p * np.log2(np.where(p > 0, 2 * p / m, 1.0)), 0.0)
        b = np.where(q > 0, q * np.log2(np.where(q > 0, 2 * q / m, 1.0)), 0.0)
    out: FloatArray = np.maximum(0.5 * (a + b), 0.0)
    return out


def box_range(
    fn: Callable[[FloatArray, FloatArray], FloatArray],
    pl: FloatArray, ph: FloatArray, ql: FloatArray, qh: FloatArray,
) -> tuple[FloatArray, FloatArray]:  # fmt: skip
    """(min, max) elementwise of a jointly convex term that is 0 on the diagonal and grows
    away from it, over boxes [pl, ph] x [ql, qh]: max at a corner; min 0 when the box
    meets the diagonal, else at the corner nearest it."""
    # one call of ``fn`` on the four corners (elementwise: the same values as four calls)
    n = pl.size
    v = fn(np.concatenate((pl, pl, ph, ph)), np.concatenate((ql, qh, ql, qh))).reshape(4, n)
    hi: FloatArray = v.max(axis=0)
    lo: FloatArray = np.where(ph < ql, v[2], np.where(qh < pl, v[1], 0.0))
    return lo, hi


def box_sum_max(
    fc: FloatArray, pc: FloatArray, qc: FloatArray, sp: float, sq: float,
    free_p: bool = True, free_q: bool = True,
) -> float:  # fmt: skip
    """Upper bound on ``max sum_i f_i(p_i, q_i)`` over boxes with ``sum p = sp`` and
    ``sum q = sq``, each ``f_i`` convex. ``fc[j, i]`` is ``f_i`` at corner ``j`` of box
    ``i``, whose coordinates are ``pc[j, i]``, ``qc[j, i]``. Weak Lagrangian duality: for
    all ``(lam, mu)`` the maximum is at most ``lam sp + mu sq + sum_i max_j (fc - lam pc -
    mu qc)`` (a convex function minus a linear one peaks at a corner), so every evaluated
    pair gives a valid bound; the dual is convex and is minimised by golden-section search
    per multiplier (a side whose sum is not constrained keeps its multiplier at 0)."""

    def dual(lam: float, mu: float) -> float:
        return lam * sp + mu * sq + float(np.max(fc - lam * pc - mu * qc, axis=0).sum())

    def along_p(mu: float) -> Callable[[float], float]:
        return lambda x: dual(x, mu)

    def along_q(lam: float) -> Callable[[float], float]:
        return lambda x: dual(lam, x)

    lam = mu = 0.0
    best = dual(0.0, 0.0)
    for _ in range(3 if free_p and free_q else 1):
        if free_p:
            lam = golden_min(along_p(mu), -8.0, 2.0)
            best = min(best, dual(lam, mu))
        if free_q:
            mu = golden_min(along_q(lam), -8.0, 2.0)
            best = min(best, dual(lam, mu))
    return best


def golden_min(fn: Callable[[float], float], a: float, b: float, iters: int = 40) -> float:
    """Minimiser of a convex function on [a, b] by golden-section search."""
    g = (math.sqrt(5) - 1) / 2
    x1, x2 = b - g * (b - a), a + g * (b - a)
    f1, f2 = fn(x1), fn(x2)
    for _ in range(iters):
        if f1 <= f2:
            b, x2, f2 = x2, x1, f1
            x1 = b - g * (b - a)
            f1 = fn(x1)
        else:
            a, x1, f1 = x1, x2, f2
            x2 = a + g * (b - a)
            f2 = fn(x2)
    return x1 if f1 <= f2 else x2


def ks_pvalue(d: float, n1: int, n2: int) -> float:
    """Two-sample KS p-value (asymptotic Kolmogorov distribution) for distance ``d``."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    n_eff = n1 * n2 / (n1 + n2)
    return float(special.kolmogorov(math.sqrt(n_eff) * max(d, 0.0)))


def chi2_homogeneity(ref: FloatArray, cur: FloatArray) -> tuple[float, float, int]:
    """Two-sample chi-square homogeneity test on category counts of different totals.

    Builds the 2 x K contingency table, pools categories whose expected count is
    below 5 into one (Cochran's rule), returns (statistic, p-value, degrees of freedom).
    """
    n1, n2 = float(ref.sum()), float(cur.sum())
    if n1 <= 0 or n2 <= 0:
        return 0.0, 1.0, 0
    col = ref + cur
    keep = col > 0
    ref, cur, col = ref[keep], cur[keep], col[keep]
    small = np.minimum(col * n1, col * n2) / (n1 + n2) < 5
    if small.any():
        ref = np.append(ref[~small], ref[small].sum())
        cur = np.append(cur[~small], cur[small].sum())
        col = ref + cur
        keep = col > 0
        ref, cur, col = ref[keep], cur[keep], col[keep]
    k = int(col.size)
    if k < 2:
        return 0.0, 1.0, 0
    e1 = col * n1 / (n1 + n2)
    e2 = col * n2 / (n1 + n2)
    stat = float(np.sum((ref - e1) ** 2 / e1) + np.sum((cur - e2) ** 2 / e2))
    return stat, float(special.chdtrc(k - 1, stat)), k - 1


def two_proportion_pvalue(x1: float, n1: float, x2: float, n2: float) -> float:
    """Two-sided pooled z-test that x1/n1 and x2/n2 are the same proportion."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    pool = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pool * (1 - pool) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = abs(x1 / n1 - x2 / n2) / se
    return float(2 * special.ndtr(-z))


def fisher_pvalue(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided Fisher exact test that x1/n1 and x2/n2 are the same proportion.

    Exact at every count (the pooled z-test's normal tail is far too small at the few
    events of a 100-row window: 18 false alarms per 1,000 measured, issue 10)."""
    if n1 <= 0 or n2 <= 0 or (x1 + x2) in (0, n1 + n2):
        return 1.0
    table = [[x1, n1 - x1], [x2, n2 - x2]]
    return float(fisher_exact(table, alternative="two-sided").pvalue)


def adjust_pvalues(pvalues: Sequence[float], method: str) -> list[float]:
    """Adjusted p-values: ``"none"``, ``"bonferroni"`` or ``"bh"`` (Benjamini–Hochberg)."""
    m = len(pvalues)
    if method == "none" or m == 0:
        return list(pvalues)
    if method == "bonferroni":
        return [min(1.0, p * m) for p in pvalues]
    if method == "bh":
        return [float(p) for p in false_discovery_control(np.asarray(pvalues), method="bh")]
    raise ValueError(f"unknown correction {method!r}")
