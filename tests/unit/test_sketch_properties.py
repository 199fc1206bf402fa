"""Hypothesis properties: merge order independence, exact byte round trips,
profile(a) ⊕ profile(b) ≈ profile(a ∪ b)."""

from __future__ import annotations

import math
import random

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sketches.metrics import numeric_metrics
from sketches.profile import DatasetProfile
from sketches.types import ColumnType

value = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(-(10**6), 10**6),
    st.sampled_from(["a", "b", "c", "dd", ""]),
    st.booleans(),
)
row = st.fixed_dictionaries(
    {},
    optional={"x": value, "y": value, "z": st.one_of(st.none(), st.floats(-1e6, 1e6))},
)
rows = st.lists(row, max_size=60)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


TYPES = {"x": ColumnType.NUMERIC, "y": ColumnType.CATEGORICAL, "z": ColumnType.NUMERIC}


def _profile(batch: list[dict[str, object]], typed: bool = True) -> DatasetProfile:
    """Typed by default: with inferred types, parts that see a column's first value with
    different types disagree by design (documented in DatasetProfile.merge)."""
    p = DatasetProfile(types=TYPES if typed else None)
    if batch:
        names = sorted({k for r in batch for k in r})
        p.update({n: [r.get(n) for r in batch] for n in names}, len(batch))
    return p


def _summary(p: DatasetProfile) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for name, col in p.columns.items():
        extra: tuple[object, ...] = ()
        freqs = getattr(col, "frequencies", None)
        if freqs is not None:
            extra = (freqs(),)
        out[name] = (col.column_type, col.count, col.missing, col.mismatched, col.total, *extra)
    return out


@SETTINGS
@given(st.lists(rows, min_size=1, max_size=5), st.randoms(use_true_random=False))
def test_merge_is_order_independent(
    parts: list[list[dict[str, object]]], rnd: random.Random
) -> None:
    # Type inference must agree across parts for order independence; fix it up front.
    profiles = [_profile(b) for b in parts]
    order = list(range(len(profiles)))
    rnd.shuffle(order)
    left = DatasetProfile(types=TYPES)
    for p in profiles:
        left.merge(p)
    right = DatasetProfile(types=TYPES)
    for i in order:
        right.merge(profiles[i])
    assert left.rows == right.rows == sum(len(b) for b in parts)
    sl, sr = _summary(left), _summary(right)
    assert sl.keys() == sr.keys()
    assert sl == sr


@SETTINGS
@given(rows)
def test_bytes_round_trip_is_exact(batch: list[dict[str, object]]) -> None:
    p = _profile(batch, typed=False)
    blob = p.to_bytes()
    back = DatasetProfile.from_bytes(blob)
    assert back.to_bytes() == blob
    assert _summary(back) == _summary(p)


@SETTINGS
@given(rows, rows)
def test_merge_equals_profile_of_union(
    a: list[dict[str, object]], b: list[dict[str, object]]
) -> None:
    merged = _profile(a)
    merged.merge(_profile(b))
    union = _profile(a + b)
    su, sm = _summary(union), _summary(merged)
    assert su.keys() == sm.keys()
    assert su == sm


@SETTINGS
@given(rows, rows)
def test_untyped_merge_keeps_row_totals(
    a: list[dict[str, object]], b: list[dict[str, object]]
) -> None:
    merged = _profile(a, typed=False)
    merged.merge(_profile(b, typed=False))
    union = _profile(a + b, typed=False)
    assert merged.rows == union.rows
    assert {n: c.total for n, c in merged.columns.items()} == {
        n: c.total for n, c in union.columns.items()
    }


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 6))
def test_numeric_sketch_merge_order_within_bound(seed: int, parts: int) -> None:
    """Merging sketched parts in any order gives the same distribution within the KS bound."""
    rng = np.random.default_rng(seed)
    chunks = [
        rng.normal(rng.normal(), 1.0, size=int(rng.integers(2_000, 40_000))) for _ in range(parts)
    ]
    profiles = []
    for c in chunks:
        p = DatasetProfile()
        p.update({"x": c}, c.size)
        profiles.append(p)
    a, b = DatasetProfile(), DatasetProfile()
    for p in profiles:
        a.merge(p)
    for p in reversed(profiles):
        b.merge(p)
    whole = DatasetProfile()
    allx = np.concatenate(chunks)
    whole.update({"x": allx}, allx.size)
    xa, xb, xw = a.columns["x"], b.columns["x"], whole.columns["x"]
    for other in (xb, xw):
        ms = numeric_metrics(xa, other)  # type: ignore[arg-type]
        assert ms.metrics["ks"].value <= ms.metrics["ks"].error_bound
    assert math.isclose(xa.mean, allx.mean(), rel_tol=1e-9, abs_tol=1e-12)  # type: ignore[attr-defined]
