"""Out-of-range share against the exact answer on the raw data."""

from __future__ import annotations

import numpy as np
import pytest

from sketches.numeric import NumericProfile
from sketches.ranges import breaches, out_of_range
from sketches.types import MetricValue


@pytest.mark.parametrize("n", [1_000, 300_000])
def test_share_within_the_sketch_bound(n: int) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(50, 20, n)
    prof = NumericProfile()
    prof.update(x)
    got = out_of_range(prof, 0.0, 100.0)
    assert got is not None
    exact = float(np.mean((x < 0) | (x > 100)))
    assert abs(got.value - exact) <= got.error_bound + 1e-12
    assert breaches(got, 0.0)
    assert breaches(got, got.value - got.error_bound - 1e-3)
    assert not breaches(got, got.value)


def test_inside_is_exactly_zero_and_one_outlier_counts() -> None:
    prof = NumericProfile()
    prof.update(np.arange(1000, dtype=float))
    inside = out_of_range(prof, 0.0, 999.0)
    assert inside == MetricValue(0.0, 0.0) and not breaches(inside, 0.0)
    one = out_of_range(prof, None, 998.5)
    assert one is not None and one.value == pytest.approx(1 / 1000) and breaches(one, 0.0)


def test_non_numeric_or_empty_has_no_value() -> None:
    assert out_of_range(None, 0, 1) is None
    assert out_of_range(NumericProfile(), 0, 1) is None
