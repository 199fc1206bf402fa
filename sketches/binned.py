"""PSI and JS distance on binned shares with their error bounds, for one column or for
many columns at once (rows of 2-D arrays: the ~20 numeric columns of a profile share
each numpy call, ~10x fewer calls than one column at a time; the same values).

Bounds (derivation in :mod:`sketches.numeric_bounds`, "Per-bin"): a bin's share is
within ``e2`` (``e1`` for the two end bins, ``share_errors``); PSI's per-bin term
``(q - p) ln(q / p)`` and JS's are jointly convex and vanish on ``p = q``, so over a
bin's box of possible shares the largest value is at a corner and the smallest is 0 when
the box meets the diagonal, else at the corner nearest it. Summing per-bin ranges bounds
the total; PSI's 1e-4 floor is applied inside.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sketches.distribution import Distribution, FloatArray
from sketches.stats import PSI_FLOOR, js_terms

Term = Callable[[FloatArray, FloatArray], FloatArray]
Boxes = tuple[FloatArray, FloatArray, FloatArray, FloatArray] | None


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


def _boxes(p: FloatArray, q: FloatArray, er: FloatArray, ec: FloatArray) -> Boxes:
    """Each bin's possible shares ``[pl, ph] x [ql, qh]``; None when both sides are exact."""
    if not (np.any(er) or np.any(ec)):
        return None

    def clip(x: FloatArray) -> FloatArray:  # np.clip(x, 0, 1), without its overhead
        out: FloatArray = np.minimum(np.maximum(x, 0.0), 1.0)
        return out

    return clip(p - er), clip(p + er), clip(q - ec), clip(q + ec)


def _binned(fn: Term, p: FloatArray, q: FloatArray, boxes: Boxes
            ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(``sum fn(p, q)``, low, high) over ``boxes``, summed along the last axis: one call
    of ``fn`` on the estimate and the four corners (elementwise: the same values as
    ``stats.box_range``'s)."""
    if boxes is None:
        s: FloatArray = fn(p, q).sum(axis=-1)
        return s, s, s
    pl, ph, ql, qh = boxes
    v = fn(np.stack((p, pl, pl, ph, ph)), np.stack((q, ql, qh, ql, qh)))
    hi = v[1:].max(axis=0)
    lo = np.where(ph < ql, v[3], np.where(qh < pl, v[2], 0.0))
    return v[0].sum(axis=-1), lo.sum(axis=-1), hi.sum(axis=-1)


def binned_metrics(p: FloatArray, q: FloatArray, er: FloatArray, ec: FloatArray
                   ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """(PSI, its bound, JS distance, its bound) of bin shares p (reference) and q
    (current) whose errors are at most er / ec: one value per row (one per column of a
    profile, rows of the same number of bins), or 0-d arrays for 1-D input."""
    boxes = _boxes(p, q, er, ec)
    psi, lo, hi = _binned(psi_terms, p, q, boxes)
    psi_err = np.maximum(np.maximum(psi - lo, hi - psi), 0.0)
    d, lo, hi = _binned(js_terms, p, q, boxes)
    v = np.sqrt(np.maximum(d, 0.0))
    js_err = np.maximum(np.maximum(v - np.sqrt(np.maximum(lo, 0.0)),
                                   np.sqrt(np.minimum(np.maximum(hi, 0.0), 1.0)) - v), 0.0)
    return psi, psi_err, js_distances(p, q), js_err


def js_distances(p: FloatArray, q: FloatArray) -> FloatArray:
    """:func:`stats.js_distance` along the last axis (each row normalised to sum 1)."""
    sp, sq = p.sum(axis=-1, keepdims=True), q.sum(axis=-1, keepdims=True)
    p = np.divide(p, sp, out=np.array(p, dtype=np.float64), where=sp > 0)
    q = np.divide(q, sq, out=np.array(q, dtype=np.float64), where=sq > 0)
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kp = np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0) / np.where(p > 0, m, 1.0)), 0.0)
        kq = np.where(q > 0, q * np.log2(np.where(q > 0, q, 1.0) / np.where(q > 0, m, 1.0)), 0.0)
    out: FloatArray = np.sqrt(np.maximum(0.5 * kp.sum(axis=-1) + 0.5 * kq.sum(axis=-1), 0.0))
    return out
