"""Out-of-range values: the share of a numeric column outside an allowed ``[lo, hi]``.

A data-quality check against fixed bounds (e.g. ``age`` in [0, 120]), not against the
reference. The share comes from the KLL sketch (error ≤ its rank error per side); the
exact min / max decide whether *any* value is outside, so a share of 0 is exact.
"""

from __future__ import annotations

import math

import numpy as np

from sketches.column import ColumnProfile
from sketches.numeric import NumericProfile
from sketches.types import MetricValue


def out_of_range(col: ColumnProfile | None, lo: float | None, hi: float | None
                 ) -> MetricValue | None:
    """Share of values below ``lo`` or above ``hi``; ``None`` when the column has none."""
    if not isinstance(col, NumericProfile) or col.count == 0:
        return None
    mn, mx = col.min, col.max
    assert mn is not None and mx is not None
    low = lo is not None and mn < lo
    high = hi is not None and mx > hi
    if not (low or high):
        return MetricValue(0.0, 0.0)
    dist = col.distribution()
    share = 0.0
    sides = 0
    if low:
        assert lo is not None
        share += float(dist.cdf(np.array([math.nextafter(lo, -math.inf)]))[0])
        sides += 1
    if high:
        assert hi is not None
        share += 1.0 - float(dist.cdf(np.array([hi]))[0])
        sides += 1
    # at least one value is outside (exact min/max), whatever the sketch says
    share = min(1.0, max(share, 1.0 / col.count))
    return MetricValue(share, min(1.0, sides * col.rank_error))


def breaches(value: MetricValue, max_share: float) -> bool:
    """``max_share`` 0: any value outside breaches; else the share beyond its error bound."""
    if max_share <= 0:
        return value.value > 0
    return value.value - value.error_bound > max_share
