"""The common support of two categorical profiles, with every share as an interval.

Both profiles are put on one support: every category either side can name (all of them
for an exact-mode side, the tracked ones for a frequent-items sketch), plus one
"outside" group holding every category neither side names. For each category and side
the true count lies in ``[lo, hi]``:

- exact mode: ``lo = hi = count`` (0 for a category this side never saw);
- sketch mode (Misra–Gries): ``lo`` = the counter (0 when untracked), ``hi = lo + e`` with
  ``e`` the sketch's a-posteriori ``max_error``. This bound is deterministic: it holds for
  every category, listed or not.

The outside group's true mass is ``n - sum(true counts on the support)``, so it lies in
``[n - sum(hi), n - sum(lo)]`` (clipped to ``[0, n]``); an exact side names all of its
categories, so its outside mass is exactly 0. Every category in the outside group has a
true count ``<= e`` on a sketch side (it is untracked there) — the "cap" used by the bounds.

Point estimates (``hat``): exact counts; for tracked categories the middle of the
interval (error <= e/2); for categories the other side names but this sketch does not
track, the sketch's untracked remainder spread evenly over the categories it does not
track (HLL distinct count minus tracked), capped at ``e``; when the support names more such
categories than that, each occurs with chance ``present`` (their count over the untracked
distinct count) and ``hat`` is the mean, so the estimates never add up past ``n``. The JS
estimate takes the expectation over that chance (``categorical_metrics.js``).
Shares are counts / n (n is exact on both sides).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sketches.boolean import BooleanProfile
from sketches.categorical import CategoricalProfile
from sketches.distribution import FloatArray

Profile = CategoricalProfile | BooleanProfile


@dataclass(frozen=True)
class Side:
    """One profile's shares on the common support (arrays aligned with ``Support.keys``)."""

    n: int
    exact: bool
    lo: FloatArray
    hi: FloatArray
    hat: FloatArray
    out_lo: float
    out_hi: float
    out_hat: float
    cap: float
    """Largest share any category outside the support can have on this side (0: exact)."""
    untracked: FloatArray | None = None
    """Sketch side: 1.0 where this side does not track a support category, else 0.0."""
    present: float = 1.0
    """Chance that an untracked support category occurs on this side at all."""
    share_if_present: float = 0.0
    """Its share when it does (the untracked remainder over the untracked distinct count)."""


@dataclass(frozen=True)
class Support:
    keys: list[str]
    ref: Side
    cur: Side

    @property
    def has_outside(self) -> bool:
        """Can categories outside the support carry mass on either side?"""
        return self.ref.out_hi > 0 or self.cur.out_hi > 0


def _listed(prof: Profile) -> list[str]:
    if isinstance(prof, BooleanProfile):
        return ["true", "false"]
    return prof.listed()


def _side(prof: Profile, keys: list[str], own: set[str]) -> Side:
    n = prof.count
    if isinstance(prof, BooleanProfile):
        freq, _ = prof.frequencies()
        vals = np.array([freq.get(k, 0.0) for k in keys]) / n
        return Side(n, True, vals, vals, vals, 0.0, 0.0, 0.0, 0.0)
    lo_l, hi_l = prof.count_bounds(keys)
    lo, hi = np.asarray(lo_l, dtype=np.float64), np.asarray(hi_l, dtype=np.float64)
    if prof.exact:
        return Side(n, True, lo / n, hi / n, lo / n, 0.0, 0.0, 0.0, 0.0)
    err = prof.max_error
    tracked = np.array([k in own for k in keys], dtype=bool)
    hat = np.where(tracked, (lo + hi) / 2, 0.0)
    # The untracked remainder is shared by the untracked categories (HLL distinct count
    # beyond the tracked ones), each up to max_error. When the support names more
    # categories this side does not track than that, each of them occurs here only with
    # chance ``present``; the mean (``hat``) never adds up past n.
    distinct_untracked = max(1.0, prof.distinct - len(own))
    k_untracked = float(np.count_nonzero(~tracked))
    rest = max(0.0, n - float(hat.sum()))
    per_key = min(err, rest / distinct_untracked)
    present = min(1.0, distinct_untracked / k_untracked) if k_untracked else 1.0
    hat = np.where(tracked, hat, present * per_key)
    out_lo = min(float(n), max(0.0, n - float(hi.sum())))
    out_hi = min(float(n), max(0.0, n - float(lo.sum())))
    out_hat = min(out_hi, max(out_lo, n - float(hat.sum())))
    return Side(
        n, False, lo / n, hi / n, hat / n, out_lo / n, out_hi / n, out_hat / n, err / n,
        (~tracked).astype(np.float64), present, per_key / n,
    )  # fmt: skip


def common_support(ref: Profile, cur: Profile) -> Support:
    """Both profiles on the union of the categories either can name (sorted)."""
    r_keys, c_keys = _listed(ref), _listed(cur)
    keys = sorted(set(r_keys) | set(c_keys))
    return Support(keys, _side(ref, keys, set(r_keys)), _side(cur, keys, set(c_keys)))
