"""Turning one batch of one column into typed values, and inferring a column's type.

Accepted inputs: a Python sequence of mixed ``int | float | str | bool | None``, a numpy
array, or a pyarrow ``Array`` / ``ChunkedArray``. ``None`` and NaN are missing. A value of
another type than the column's is a *mismatch*: counted, never raised.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from sketches.types import ColumnType

ColumnValues: TypeAlias = "Sequence[object] | npt.NDArray[np.generic] | pa.Array | pa.ChunkedArray"
"""One batch of one column, as :meth:`DatasetProfile.update` accepts it."""

FloatArray = npt.NDArray[np.float64]


@dataclass(slots=True)
class NumericBatch:
    values: FloatArray  # may still hold +-inf; NaN already removed
    missing: int
    mismatched: int


@dataclass(slots=True)
class CountsBatch:
    counts: dict[str, int]
    missing: int
    mismatched: int


@dataclass(slots=True)
class BoolBatch:
    true: int
    false: int
    missing: int
    mismatched: int


def _as_arrow(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    return values


_NUMBER_KINDS = frozenset({float, int, type(None)})
_STRING_KINDS = frozenset({str, type(None)})
_BOOL_KINDS = frozenset({bool, type(None)})


def _kinds(values: Iterable[object]) -> set[type]:
    return set(map(type, values))


# ---------------------------------------------------------------- type inference


def infer_type(values: ColumnValues) -> ColumnType:
    """The type of a column from its first non-missing value; UNKNOWN if all missing."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        t = values.type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if pa.types.is_null(t) or values.null_count == len(values):
            return ColumnType.UNKNOWN
        if pa.types.is_boolean(t):
            return ColumnType.BOOLEAN
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            if pa.types.is_floating(t) and len(values) and pc.all(pc.is_nan(values)).as_py():
                return ColumnType.UNKNOWN
            return ColumnType.NUMERIC
        return ColumnType.CATEGORICAL
    if isinstance(values, np.ndarray) and values.dtype.kind != "O":
        kind = values.dtype.kind
        if kind == "b":
            return ColumnType.BOOLEAN
        if kind in "iu":
            return ColumnType.NUMERIC if len(values) else ColumnType.UNKNOWN
        if kind == "f":
            return ColumnType.UNKNOWN if np.isnan(values).all() else ColumnType.NUMERIC
        return ColumnType.CATEGORICAL if len(values) else ColumnType.UNKNOWN
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool | np.bool_):
            return ColumnType.BOOLEAN
        if isinstance(v, int | np.integer):
            return ColumnType.NUMERIC
        if isinstance(v, float | np.floating):
            if math.isnan(v):
                continue
            return ColumnType.NUMERIC
        return ColumnType.CATEGORICAL
    return ColumnType.UNKNOWN


# ---------------------------------------------------------------- numeric


def numeric_batch(values: ColumnValues) -> NumericBatch:
    """Finite-or-infinite floats of a batch; NaN/None are missing, other types mismatched."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        arr = _as_arrow(values)
        t = arr.type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            nulls = arr.null_count
            if nulls:
                arr = arr.drop_null()
            return _from_float_array(np.asarray(arr.cast(pa.float64()).to_numpy()), nulls, 0)
        if pa.types.is_null(t):
            return NumericBatch(np.empty(0), len(arr), 0)
        return NumericBatch(np.empty(0), arr.null_count, len(arr) - arr.null_count)
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        return _from_float_array(values.astype(np.float64, copy=False).ravel(), 0, 0)
    if isinstance(values, np.ndarray) and values.dtype.kind in "bUS":
        return NumericBatch(np.empty(0), 0, len(values))
    if _kinds(values) <= _NUMBER_KINDS:  # fast path: numbers and None only
        try:
            return _from_float_array(np.array(values, dtype=np.float64), 0, 0)
        except OverflowError:
            pass
    nums: list[float] = []
    missing = mismatched = 0
    append = nums.append
    for v in values:
        t = type(v)
        if t is float:
            append(v)  # type: ignore[arg-type,unused-ignore]
        elif v is None:
            missing += 1
        elif isinstance(v, int | float | np.integer | np.floating) and not isinstance(
            v, bool | np.bool_
        ):
            try:
                append(float(v))
            except OverflowError:  # an int beyond float range: no sketch can take it
                mismatched += 1
        else:
            mismatched += 1
    return _from_float_array(np.asarray(nums, dtype=np.float64), missing, mismatched)


def _from_float_array(arr: FloatArray, missing: int, mismatched: int) -> NumericBatch:
    nan = np.isnan(arr)
    n_nan = int(np.count_nonzero(nan))
    if n_nan:
        arr = arr[~nan]
    return NumericBatch(arr, missing + n_nan, mismatched)


# ---------------------------------------------------------------- categorical


def counts_batch(values: ColumnValues) -> CountsBatch:
    """Per-category counts of a batch; None is missing, numbers and bools are mismatched."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        arr = _as_arrow(values)
        t = arr.type
        if pa.types.is_null(t):
            return CountsBatch({}, len(arr), 0)
        if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
            return CountsBatch({}, arr.null_count, len(arr) - arr.null_count)
        vc = pc.value_counts(arr)
        keys = vc.field("values").to_pylist()
        cnts = vc.field("counts").to_pylist()
        counts = {k: c for k, c in zip(keys, cnts, strict=True) if k is not None}
        return CountsBatch(counts, arr.null_count, 0)
    if isinstance(values, np.ndarray) and values.dtype.kind in "US":
        uniq, cnt = np.unique(values, return_counts=True)
        return CountsBatch(
            {str(k): int(c) for k, c in zip(uniq.tolist(), cnt.tolist(), strict=True)}, 0, 0
        )
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        nan = int(np.isnan(values).sum()) if values.dtype.kind == "f" else 0
        return CountsBatch({}, nan, len(values) - nan)
    if _kinds(values) <= _STRING_KINDS:  # fast path: strings and None only
        counts = Counter(values)
        missing = counts.pop(None, 0)
        return _encodable(dict(counts), missing, 0)  # type: ignore[arg-type,unused-ignore]
    strings: list[str] = []
    missing = mismatched = 0
    append = strings.append
    for v in values:
        if type(v) is str:
            append(v)
        elif v is None or (isinstance(v, float) and math.isnan(v)):
            missing += 1
        elif isinstance(v, str | np.str_):
            append(str(v))
        else:
            mismatched += 1
    return _encodable(dict(Counter(strings)), missing, mismatched)


def _encodable(counts: dict[str, int], missing: int, mismatched: int) -> CountsBatch:
    """Strings that are no Unicode text (lone surrogates) cannot be stored: mismatched."""
    if "".join(counts).isascii():
        return CountsBatch(counts, missing, mismatched)
    bad = []
    for key in counts:
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            bad.append(key)
    for key in bad:
        mismatched += counts.pop(key)
    return CountsBatch(counts, missing, mismatched)


# ---------------------------------------------------------------- boolean


def bool_batch(values: ColumnValues) -> BoolBatch:
    """True/false counts of a batch; None is missing, anything not a bool is mismatched."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        arr = _as_arrow(values)
        if pa.types.is_null(arr.type):
            return BoolBatch(0, 0, len(arr), 0)
        if not pa.types.is_boolean(arr.type):
            return BoolBatch(0, 0, arr.null_count, len(arr) - arr.null_count)
        n_true = int(pc.sum(arr).as_py() or 0)
        valid = len(arr) - arr.null_count
        return BoolBatch(n_true, valid - n_true, arr.null_count, 0)
    if isinstance(values, np.ndarray) and values.dtype.kind == "b":
        n_true = int(np.count_nonzero(values))
        return BoolBatch(n_true, len(values) - n_true, 0, 0)
    if isinstance(values, np.ndarray) and values.dtype.kind != "O":
        nan = int(np.isnan(values).sum()) if values.dtype.kind == "f" else 0
        return BoolBatch(0, 0, nan, len(values) - nan)
    if _kinds(values) <= _BOOL_KINDS:  # fast path: bools and None only
        seq = values if isinstance(values, list) else list(values)
        n_true, missing = seq.count(True), seq.count(None)
        return BoolBatch(n_true, len(seq) - n_true - missing, missing, 0)
    n_true = n_false = missing = mismatched = 0
    for v in values:
        if v is True or v is np.True_:
            n_true += 1
        elif v is False or v is np.False_:
            n_false += 1
        elif v is None or (isinstance(v, float) and math.isnan(v)):
            missing += 1
        else:
            mismatched += 1
    return BoolBatch(n_true, n_false, missing, mismatched)
