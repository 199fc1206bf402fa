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

    __slots__ = ("cum", "epsilon", "items", "n")

    def __init__(self, items: FloatArray, cum: FloatArray, n: int, epsilon: float) -> None:
        """``items`` sorted and unique; ``cum[i]`` = share of the distribution <= items[i]."""
        self.items = items
        self.cum = cum
        self.n = n
        self.epsilon = epsilon

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
