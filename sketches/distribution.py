"""A sketch's sorted, weighted items as plain numpy: CDF and quantiles without datasketches.

Built once per comparison from a KLL sketch, it answers any number of CDF / quantile
queries with ``np.searchsorted`` (much faster than passing thousands of split points
through the bindings) and lets two sketches be compared at the union of their points.
Semantics match KLL's inclusive ones: ``cdf(x)`` = share of items ``<= x``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class Distribution:
    """Weighted empirical distribution with a documented rank error ``epsilon``."""

    __slots__ = ("binned", "cdf_epsilon", "cum", "epsilon", "items", "n", "w1_bound")

    def __init__(
        self,
        items: FloatArray,
        cum: FloatArray,
        n: int,
        epsilon: float,
        cdf_epsilon: float | None = None,
    ) -> None:
        """``items`` sorted and unique; ``cum[i]`` = share of the distribution <= items[i].
        ``epsilon`` bounds the error of any interval's share (KLL's double-sided, PMF
        error); ``cdf_epsilon`` that of the CDF at any point (single-sided; defaults to
        ``epsilon``)."""
        self.items = items
        self.cum = cum
        self.n = n
        self.epsilon = epsilon
        self.cdf_epsilon = epsilon if cdf_epsilon is None else min(cdf_epsilon, epsilon)
        self.w1_bound: float | None = None
        """Cache of the bound on the Wasserstein distance between this sketch and its data
        (``numeric_bounds.sketch_w1_bound``)."""
        self.binned: tuple[object, tuple[float, float, float, float]] | None = None
        """Cache of (reference bins' owner, (PSI, bound, JS, bound)) of this sketch against
        one reference column (``metrics.prepare_numeric``)."""

    @property
    def empty(self) -> bool:
        return self.items.size == 0

    def cdf(self, points: FloatArray) -> FloatArray:
        """Share of the distribution at or below each of ``points``."""
        idx = np.searchsorted(self.items, points, side="right") - 1
        out: FloatArray = np.where(idx >= 0, self.cum[np.maximum(idx, 0)], 0.0)
        return out

    def quantiles(self, qs: FloatArray) -> FloatArray:
        """Smallest item whose inclusive rank reaches each ``q`` (KLL's inclusive quantile)."""
        idx = np.searchsorted(self.cum, np.asarray(qs) - 1e-12, side="left")
        out: FloatArray = self.items[np.minimum(idx, self.items.size - 1)]
        return out


Weighted = tuple[FloatArray, FloatArray]
"""A sketch's retained items in any order (repeats allowed) and their weights."""


def joint_cdf(
    a: Distribution | Weighted, b: Distribution, extra: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(points, ``a``'s CDF there, ``b``'s CDF there) at the sorted unique union of both
    sides' items and ``extra``. One stable sort of the concatenation (runs already sorted
    make it a merge) and running sums replace a sort plus two binary searches: the same
    values, ~4x faster. ``a`` may be a sketch's raw :data:`Weighted` items (unsorted):
    its CDF is then the running sum of its weights in sorted order over their total,
    exactly what :func:`kll_items.weighted_cdf` computes, with no sort of its own."""
    a_items = a.items if isinstance(a, Distribution) else a[0]
    na, nb = a_items.size, b.items.size
    values = np.concatenate((a_items, b.items, extra))
    order = np.argsort(values, kind="stable")
    points = values[order]
    last = np.empty(points.size, dtype=bool)  # the last of each run of equal values
    last[-1:] = True
    np.not_equal(points[1:], points[:-1], out=last[:-1])
    in_b = np.cumsum((order >= na) & (order < na + nb))[last]  # items of b at or below
    fb: FloatArray = np.concatenate(([0.0], b.cum))[in_b]
    if isinstance(a, Distribution):
        fa: FloatArray = np.concatenate(([0.0], a.cum))[np.cumsum(order < na)[last]]
    else:
        weights = np.zeros(values.size)
        weights[:na] = a[1]
        running = np.cumsum(weights[order])  # (exact: integer weights; zeros add nothing)
        fa = running[last] / running[-1]
    out: FloatArray = points[last]
    return out, fa, fb
