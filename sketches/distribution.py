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

    __slots__ = ("cdf_epsilon", "cum", "epsilon", "items", "n", "w1_bound")

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
        (``numeric_bounds.sketch_w1_bound``): a reference's is computed once."""

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
