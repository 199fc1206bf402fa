"""The column profile types by :class:`ColumnType`, and reading any of them from bytes."""

from __future__ import annotations

from sketches import _codec
from sketches.boolean import BooleanProfile
from sketches.categorical import CategoricalProfile
from sketches.column import ColumnProfile, NullProfile
from sketches.errors import StateFormatError
from sketches.numeric import DEFAULT_KLL_K, NumericProfile
from sketches.types import ColumnType

PROFILE_TYPES: tuple[type[ColumnProfile], ...] = (
    NumericProfile,
    CategoricalProfile,
    BooleanProfile,
    NullProfile,
)
_BY_MAGIC = {cls.MAGIC: cls for cls in PROFILE_TYPES}


def new_column(column_type: ColumnType, *, kll_k: int = DEFAULT_KLL_K) -> ColumnProfile:
    """An empty profile for ``column_type``."""
    if column_type is ColumnType.NUMERIC:
        return NumericProfile(kll_k)
    if column_type is ColumnType.CATEGORICAL:
        return CategoricalProfile()
    if column_type is ColumnType.BOOLEAN:
        return BooleanProfile()
    return NullProfile()


def column_from_bytes(data: bytes) -> ColumnProfile:
    """Read any column profile written by ``to_bytes``; StateFormatError if unreadable."""
    cls = _BY_MAGIC.get(_codec.peek_magic(data))
    if cls is None:
        raise StateFormatError(f"not a driftline column profile (magic {bytes(data[:4])!r})")
    return cls.from_bytes(data)
