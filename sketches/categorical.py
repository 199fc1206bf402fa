"""Categorical column profile: exact counts up to a cap of distinct values, then a
frequent-items sketch (Misra–Gries, datasketches) plus an HLL distinct-count sketch.

Exact mode is the common case (<= ``DEFAULT_EXACT_CAP`` categories) and has no error.
In sketch mode each count is known within ``max_error`` (an absolute count, the
sketch's a-posteriori bound) and the distinct count within HLL's ~1.6 % (lg_k=12).
"""

from __future__ import annotations

from collections.abc import Mapping

import datasketches as ds
import msgspec

from sketches import _codec
from sketches.column import ColumnProfile
from sketches.errors import StateFormatError
from sketches.types import ColumnType
from sketches.values import ColumnValues, CountsBatch, counts_batch

DEFAULT_EXACT_CAP = 2048
"""Distinct values kept exactly (a 2,048-level column costs ~30 KB); beyond, sketch mode."""
DEFAULT_LG_MAP = 11
"""Frequent-items map size 2^11 (1,536 counters): count error <= ~3.5/2^11 ~ 0.17 % of n."""
HLL_LG_K = 12
_PROBE = "\x00driftline-probe\x00"


class _CategoricalState(msgspec.Struct, array_like=True):
    count: int
    missing: int
    mismatched: int
    cap: int
    lg_map: int
    exact: dict[str, int] | None
    items: bytes | None
    hll: bytes | None


class CategoricalProfile(ColumnProfile):
    """Category frequencies and distinct count of a string column."""

    column_type = ColumnType.CATEGORICAL
    MAGIC = b"DLCC"

    def __init__(self, cap: int = DEFAULT_EXACT_CAP, lg_map: int = DEFAULT_LG_MAP) -> None:
        super().__init__()
        self._cap = cap
        self._lg_map = lg_map
        self._exact: dict[str, int] | None = {}
        self._items: ds.frequent_strings_sketch | None = None
        self._hll: ds.hll_sketch | None = None

    # --------------------------------------------------------------- verbs
    def prepare(self, values: ColumnValues) -> object:
        return counts_batch(values)

    def rejected(self, n: int) -> object:
        return CountsBatch({}, 0, n)

    def apply(self, batch: object) -> None:
        assert isinstance(batch, CountsBatch)
        self._missing += batch.missing
        self._mismatched += batch.mismatched
        self._add_counts(batch.counts)

    def _add_counts(self, counts: Mapping[str, int]) -> None:
        self._count += sum(counts.values())
        exact = self._exact
        if exact is not None:
            for key, c in counts.items():
                exact[key] = exact.get(key, 0) + c
            if len(exact) > self._cap:
                self._to_sketch_mode()
            return
        assert self._items is not None and self._hll is not None
        items, hll = self._items, self._hll
        for key, c in counts.items():
            items.update(key, c)
            hll.update(key)

    def _to_sketch_mode(self) -> None:
        assert self._exact is not None
        items = ds.frequent_strings_sketch(self._lg_map)
        hll = ds.hll_sketch(HLL_LG_K)
        for key, c in self._exact.items():
            items.update(key, c)
            hll.update(key)
        self._items, self._hll, self._exact = items, hll, None

    def _merge_same(self, other: CategoricalProfile) -> None:
        self._count -= other._count  # _add_counts adds it again
        if other._exact is not None:
            self._add_counts(other._exact)
            return
        self._count += other._count
        assert other._items is not None and other._hll is not None
        if self._exact is not None:
            self._to_sketch_mode()
        assert self._items is not None and self._hll is not None
        self._items.merge(other._items)
        union = ds.hll_union(HLL_LG_K)
        union.update(self._hll)
        union.update(other._hll)
        self._hll = union.get_result()

    # --------------------------------------------------------------- results
    @property
    def exact(self) -> bool:
        return self._exact is not None

    @property
    def max_error(self) -> float:
        """Absolute bound on every count from :meth:`frequencies` (0 in exact mode)."""
        if self._items is None:
            return 0.0
        return float(self._items.get_upper_bound(_PROBE) - self._items.get_lower_bound(_PROBE))

    def frequencies(self) -> tuple[dict[str, float], float]:
        """(estimated count per known category, count of the rest lumped as "other").

        Exact mode: every category, other = 0. Sketch mode: the categories the sketch
        can vouch for (no false positives); the remainder of ``count`` is "other".
        """
        if self._exact is not None:
            return {k: float(v) for k, v in self._exact.items()}, 0.0
        assert self._items is not None
        rows = self._items.get_frequent_items(ds.frequent_items_error_type.NO_FALSE_POSITIVES)
        freq = {str(item): float(est) for item, est, _lb, _ub in rows}
        return freq, max(0.0, self._count - sum(freq.values()))

    def listed(self) -> list[str]:
        """Every category this profile can name: all of them in exact mode, the tracked
        ones (upper bound > 0) in sketch mode."""
        if self._exact is not None:
            return list(self._exact)
        assert self._items is not None
        rows = self._items.get_frequent_items(ds.frequent_items_error_type.NO_FALSE_NEGATIVES, 0)
        return [str(row[0]) for row in rows]

    def count_bounds(self, categories: list[str]) -> tuple[list[float], list[float]]:
        """(lower, upper) bound of each category's true count. Exact mode: the count twice.
        Sketch mode: Misra–Gries' a-posteriori bounds, which hold with certainty (not only
        with some confidence): ``lower`` = the counter (0 if untracked), ``upper`` = lower
        + ``max_error``."""
        if self._exact is not None:
            exact = self._exact
            vals = [float(exact.get(k, 0)) for k in categories]
            return vals, list(vals)
        assert self._items is not None
        items = self._items
        lo = [float(items.get_lower_bound(k)) for k in categories]
        hi = [float(items.get_upper_bound(k)) for k in categories]
        return lo, hi

    def count_of_counts(self) -> tuple[int, int]:
        """(categories seen once, categories seen twice): Good–Turing's f1, f2 (exact mode)."""
        if self._exact is None:
            raise ValueError("count_of_counts needs exact mode")
        f1 = sum(1 for v in self._exact.values() if v == 1)
        f2 = sum(1 for v in self._exact.values() if v == 2)
        return f1, f2

    def estimate(self, category: str) -> float:
        """Estimated count of one category (within ``max_error``)."""
        if self._exact is not None:
            return float(self._exact.get(category, 0))
        assert self._items is not None
        return float(self._items.get_estimate(category))

    @property
    def distinct(self) -> float:
        """Number of distinct categories (exact, or HLL estimate in sketch mode)."""
        if self._exact is not None:
            return float(len(self._exact))
        assert self._hll is not None
        return float(self._hll.get_estimate())

    # --------------------------------------------------------------- bytes
    def to_bytes(self) -> bytes:
        state = _CategoricalState(
            self._count, self._missing, self._mismatched, self._cap, self._lg_map,
            self._exact,
            self._items.serialize() if self._items is not None else None,
            self._hll.serialize_compact() if self._hll is not None else None,
        )  # fmt: skip
        return _codec.pack(self.MAGIC, self.VERSION, state)

    @classmethod
    def from_bytes(cls, data: bytes) -> CategoricalProfile:
        s = _codec.unpack(data, cls.MAGIC, cls.VERSION, _CategoricalState)
        if not 3 <= s.lg_map <= 26 or s.cap < 0:
            raise StateFormatError("categorical profile has invalid sketch parameters")
        out = cls(s.cap, s.lg_map)
        out._count, out._missing, out._mismatched = s.count, s.missing, s.mismatched
        out._check(min(s.count, s.missing, s.mismatched) >= 0, "negative count")
        if s.exact is not None:
            out._check(sum(s.exact.values()) == s.count, "exact counts do not add up")
            out._exact = s.exact
            return out
        if s.items is None or s.hll is None:
            raise StateFormatError("categorical profile in sketch mode lacks its sketches")
        try:
            out._items = ds.frequent_strings_sketch.deserialize(s.items)
            out._hll = ds.hll_sketch.deserialize(s.hll)
        except Exception as exc:  # any library error on bad bytes is a format error
            raise StateFormatError(f"categorical profile: unreadable sketch: {exc}") from exc
        out._exact = None
        out._check(int(out._items.total_weight) == s.count, "sketch weight differs from count")
        return out
