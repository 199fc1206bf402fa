"""Reading KLL items from the serialized bytes gives exactly what the bindings give."""

from __future__ import annotations

import datasketches as ds
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sketches.kll_items import items_and_weights, weighted_cdf


def via_bindings(sk: ds.kll_doubles_sketch) -> tuple[np.ndarray, np.ndarray]:
    items = np.unique(np.fromiter((item for item, _w in sk), dtype=np.float64))
    return items, np.asarray(sk.get_cdf(items.tolist(), True)[:-1], dtype=np.float64)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 60_000), k=st.sampled_from([8, 200, 800]), seed=st.integers(0, 99),
       ties=st.booleans(), merges=st.integers(0, 3))
def test_same_distribution_as_the_bindings(n: int, k: int, seed: int, ties: bool,
                                           merges: int) -> None:
    rng = np.random.default_rng(seed)
    sk = ds.kll_doubles_sketch(k)
    for _ in range(merges + 1):  # merged sketches: several levels
        values = rng.lognormal(0, 2, n)
        if ties:
            values = np.round(values)
        part = ds.kll_doubles_sketch(k)
        part.update(values)
        sk.merge(part)
    parsed = items_and_weights(sk.serialize())
    if parsed is None:
        assert sk.n == 1  # a single item has a short form: the bindings' path
        return
    items, cum = weighted_cdf(*parsed)
    want_items, want_cum = via_bindings(sk)
    assert np.array_equal(items, want_items)
    assert np.allclose(cum, want_cum, rtol=0, atol=1e-12)


@pytest.mark.parametrize("blob", [b"", b"\x05" * 10, b"\x02\x01\x0f\x00" + b"\x00" * 30])
def test_unexpected_bytes_fall_back(blob: bytes) -> None:
    assert items_and_weights(blob) is None
