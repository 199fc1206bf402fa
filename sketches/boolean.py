"""Boolean column profile: exact true / false counts."""

from __future__ import annotations

import msgspec

from sketches import _codec
from sketches.column import ColumnProfile
from sketches.types import ColumnType
from sketches.values import BoolBatch, ColumnValues, bool_batch


class _BooleanState(msgspec.Struct, array_like=True):
    true: int
    false: int
    missing: int
    mismatched: int


class BooleanProfile(ColumnProfile):
    """Counts of a boolean column (exact; no sketch needed)."""

    column_type = ColumnType.BOOLEAN
    MAGIC = b"DLCB"

    def __init__(self) -> None:
        super().__init__()
        self._true = 0

    def prepare(self, values: ColumnValues) -> object:
        return bool_batch(values)

    def rejected(self, n: int) -> object:
        return BoolBatch(0, 0, 0, n)

    def apply(self, b: object) -> None:
        assert isinstance(b, BoolBatch)
        self._true += b.true
        self._count += b.true + b.false
        self._missing += b.missing
        self._mismatched += b.mismatched

    def _merge_same(self, other: BooleanProfile) -> None:
        self._true += other._true

    @property
    def true_count(self) -> int:
        return self._true

    @property
    def false_count(self) -> int:
        return self._count - self._true

    def frequencies(self) -> tuple[dict[str, float], float]:
        """Same shape as :meth:`CategoricalProfile.frequencies` (exact, no "other")."""
        return {"true": float(self._true), "false": float(self.false_count)}, 0.0

    @property
    def max_error(self) -> float:
        return 0.0

    def to_bytes(self) -> bytes:
        state = _BooleanState(self._true, self.false_count, self._missing, self._mismatched)
        return _codec.pack(self.MAGIC, self.VERSION, state)

    @classmethod
    def from_bytes(cls, data: bytes) -> BooleanProfile:
        s = _codec.unpack(data, cls.MAGIC, cls.VERSION, _BooleanState)
        out = cls()
        out._check(min(s.true, s.false, s.missing, s.mismatched) >= 0, "negative count")
        out._true, out._count = s.true, s.true + s.false
        out._missing, out._mismatched = s.missing, s.mismatched
        return out
