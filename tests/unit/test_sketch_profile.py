"""DatasetProfile: inputs of every accepted kind, type inference, absent columns, garbage."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from sketches.boolean import BooleanProfile
from sketches.categorical import CategoricalProfile
from sketches.column import NullProfile
from sketches.errors import InputDataError, StateFormatError
from sketches.numeric import NumericProfile
from sketches.profile import DatasetProfile
from sketches.types import ColumnType


def test_python_lists_of_mixed_values() -> None:
    p = DatasetProfile()
    p.update(
        {
            "num": [1, 2.5, None, float("nan"), "x", True, float("inf")],
            "cat": ["a", None, "b", 1, "a", False, "c"],
            "flag": [True, False, None, 1, True, "no", float("nan")],
        },
        7,
    )
    num = p.columns["num"]
    assert isinstance(num, NumericProfile)
    assert (num.count, num.missing, num.mismatched, num.non_finite) == (2, 2, 2, 1)
    assert num.mean == pytest.approx(1.75)
    assert num.min == 1 and num.max == 2.5
    cat = p.columns["cat"]
    assert isinstance(cat, CategoricalProfile)
    assert cat.frequencies() == ({"a": 2.0, "b": 1.0, "c": 1.0}, 0.0)
    assert (cat.missing, cat.mismatched) == (1, 2)
    flag = p.columns["flag"]
    assert isinstance(flag, BooleanProfile)
    assert (flag.true_count, flag.false_count, flag.missing, flag.mismatched) == (2, 1, 2, 2)


def test_numpy_and_arrow_inputs_agree_with_lists() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=1000)
    x[::10] = np.nan
    cats = rng.choice(["a", "b", "c"], size=1000)
    flags = rng.random(1000) < 0.4
    as_list = DatasetProfile()
    as_list.update(
        {
            "x": [None if math.isnan(v) else float(v) for v in x],
            "c": cats.tolist(),
            "f": flags.tolist(),
        },
        1000,
    )
    as_numpy = DatasetProfile()
    as_numpy.update({"x": x, "c": cats, "f": flags}, 1000)
    as_arrow = DatasetProfile()
    as_arrow.update(
        {
            "x": pa.array(x, from_pandas=True),
            "c": pa.chunked_array([pa.array(cats[:500]), pa.array(cats[500:])]),
            "f": pa.array(flags),
        },
        1000,
    )
    for p in (as_numpy, as_arrow):
        for name in ("x", "c", "f"):
            a, b = as_list.columns[name], p.columns[name]
            assert (a.count, a.missing, a.mismatched) == (b.count, b.missing, b.mismatched)
        x_list, x_other = as_list.columns["x"], p.columns["x"]
        assert isinstance(x_list, NumericProfile) and isinstance(x_other, NumericProfile)
        assert (x_other.mean, x_other.min, x_other.max) == (x_list.mean, x_list.min, x_list.max)
        assert x_other.variance == pytest.approx(x_list.variance, rel=1e-12)
    cat = as_arrow.columns["c"]
    assert isinstance(cat, CategoricalProfile)
    assert cat.frequencies() == as_list.columns["c"].frequencies()  # type: ignore[attr-defined]


def test_integer_and_dictionary_arrow_columns() -> None:
    p = DatasetProfile()
    p.update(
        {
            "i": pa.array([1, 2, None, 4], type=pa.int32()),
            "d": pa.array(["x", "y", None, "x"]).dictionary_encode(),
        },
        4,
    )
    assert p.types == {"i": ColumnType.NUMERIC, "d": ColumnType.CATEGORICAL}
    assert p.columns["i"].missing == 1 and p.columns["d"].count == 3


def test_type_override_counts_mismatches() -> None:
    p = DatasetProfile(types={"zip": ColumnType.CATEGORICAL})
    p.update({"zip": ["10115", 20095, None]}, 3)
    col = p.columns["zip"]
    assert col.column_type is ColumnType.CATEGORICAL
    assert (col.count, col.mismatched, col.missing) == (1, 1, 1)


def test_absent_and_late_columns_count_missing() -> None:
    p = DatasetProfile()
    p.update({"a": [1.0, 2.0]}, 2)
    p.update({"b": ["x", "y", "z"]}, 3)
    assert p.rows == 5
    assert p.columns["a"].missing == 3 and p.columns["a"].total == 5
    assert p.columns["b"].missing == 2 and p.columns["b"].total == 5


def test_all_null_column_stays_unknown_until_a_value() -> None:
    p = DatasetProfile()
    p.update({"z": [None, None]}, 2)
    assert isinstance(p.columns["z"], NullProfile)
    assert p.types["z"] is ColumnType.UNKNOWN
    p.update({"z": [None, 3.5]}, 2)
    col = p.columns["z"]
    assert isinstance(col, NumericProfile)
    assert (col.count, col.missing) == (1, 3)


def test_merge_resolves_unknown_and_disjoint_columns() -> None:
    a = DatasetProfile()
    a.update({"z": [None, None], "only_a": [1.0, 2.0]}, 2)
    b = DatasetProfile()
    b.update({"z": ["u", "v", "u"]}, 3)
    a.merge(b)
    assert a.rows == 5
    assert isinstance(a.columns["z"], CategoricalProfile)
    assert (a.columns["z"].count, a.columns["z"].missing) == (3, 2)
    assert a.columns["only_a"].missing == 3
    back = DatasetProfile.from_bytes(a.to_bytes())
    assert back.to_bytes() == a.to_bytes()


def test_conflicting_types_on_merge_become_mismatches() -> None:
    a = DatasetProfile()
    a.update({"c": [1.0, 2.0]}, 2)
    b = DatasetProfile()
    b.update({"c": ["x", None]}, 2)
    a.merge(b)
    col = a.columns["c"]
    assert col.column_type is ColumnType.NUMERIC
    assert (col.count, col.mismatched, col.missing) == (2, 1, 1)


def test_bad_batches_raise_input_errors() -> None:
    p = DatasetProfile()
    with pytest.raises(InputDataError, match="3 values in a batch of 2"):
        p.update({"a": [1, 2, 3]}, 2)
    with pytest.raises(InputDataError):
        p.update({}, -1)


def test_corrupt_dataset_bytes() -> None:
    p = DatasetProfile()
    p.update({"a": [1.0, 2.0], "b": ["x", "y"]}, 2)
    blob = p.to_bytes()
    for bad in (b"", blob[:10], blob[:-3], b"DLDP" + b"\x00" * 50, blob[:30] + b"!" + blob[31:]):
        with pytest.raises(StateFormatError):
            DatasetProfile.from_bytes(bad)


def test_categorical_switches_to_sketch_mode_past_the_cap() -> None:
    cat = CategoricalProfile(cap=100)
    rng = np.random.default_rng(0)
    heavy = ["hot"] * 5000
    tail = [f"c{i}" for i in rng.integers(0, 5000, size=5000)]
    cat.update(heavy + tail)
    assert not cat.exact
    freq, other = cat.frequencies()
    assert abs(freq["hot"] - 5000) <= cat.max_error
    assert sum(freq.values()) + other == pytest.approx(10000)
    # HLL lg_k=12: relative standard error 1.6 %; 3 sigma.
    true_distinct = len(set(tail)) + 1
    assert abs(cat.distinct - true_distinct) <= 0.05 * true_distinct
    back = CategoricalProfile.from_bytes(cat.to_bytes())
    assert back.frequencies() == cat.frequencies()
    assert (back.max_error, back.distinct, back.count) == (cat.max_error, cat.distinct, cat.count)
    exact = CategoricalProfile(cap=100)
    exact.update(["hot", "cold"])
    exact.merge(back)
    assert not exact.exact and exact.count == 10002


def test_sketch_mode_merge_order_within_bound() -> None:
    rng = np.random.default_rng(11)
    weights = 1 / np.arange(1, 5001)
    parts = []
    for _ in range(4):
        cat = CategoricalProfile(cap=200)
        values = rng.choice(5000, size=20_000, p=weights / weights.sum())
        cat.update([f"k{v}" for v in values])
        parts.append(cat)
    forward, backward = CategoricalProfile(cap=200), CategoricalProfile(cap=200)
    for p in parts:
        forward.merge(p)
    for p in reversed(parts):
        backward.merge(p)
    assert forward.count == backward.count == 80_000
    bound = forward.max_error + backward.max_error
    for key in ("k0", "k1", "k10", "k100"):
        assert abs(forward.estimate(key) - backward.estimate(key)) <= bound


def test_list_fast_paths_match_slow_paths() -> None:
    nums: list[object] = [1.5, None, 3, float("nan"), 2**70]
    slow: list[object] = [*nums, "x"]
    a, b = NumericProfile(), NumericProfile()
    a.update(nums)
    b.update(slow)
    assert (a.count, a.missing, a.mismatched) == (3, 2, 0)
    assert (b.count, b.missing, b.mismatched) == (3, 2, 1)
    assert a.mean == b.mean
    flags = BooleanProfile()
    flags.update((True, None, False, True))
    assert (flags.true_count, flags.false_count, flags.missing) == (2, 1, 1)
