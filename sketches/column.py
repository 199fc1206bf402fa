"""The verb set every column profile shares: ``update``, ``merge``, ``to_bytes`` / ``from_bytes``.

Counters common to all types: ``count`` (values that entered the distribution),
``missing`` (None / NaN, or rows where the column was absent) and ``mismatched``
(values of another type than the column's — a data-quality signal, not an error).
"""

from __future__ import annotations

import abc
from typing import ClassVar, Self

import msgspec

from sketches import _codec
from sketches.errors import StateFormatError
from sketches.types import ColumnType
from sketches.values import ColumnValues


class ColumnProfile(abc.ABC):
    """Base of the mergeable per-column profiles."""

    column_type: ClassVar[ColumnType]
    MAGIC: ClassVar[bytes]
    VERSION: ClassVar[int] = 1

    def __init__(self) -> None:
        self._count = 0
        self._missing = 0
        self._mismatched = 0

    # --------------------------------------------------------------- results
    @property
    def count(self) -> int:
        """Values that entered the distribution (not missing, right type, finite)."""
        return self._count

    @property
    def missing(self) -> int:
        return self._missing

    @property
    def mismatched(self) -> int:
        return self._mismatched

    @property
    def invalid(self) -> int:
        """Present values that are not in the distribution for another reason (e.g. inf)."""
        return 0

    @property
    def total(self) -> int:
        """Rows seen for this column: count + missing + mismatched + invalid."""
        return self._count + self._missing + self._mismatched + self.invalid

    @property
    def null_ratio(self) -> float:
        return self._missing / self.total if self.total else 0.0

    @property
    def mismatch_ratio(self) -> float:
        return self._mismatched / self.total if self.total else 0.0

    # --------------------------------------------------------------- verbs
    def update(self, values: ColumnValues) -> None:
        """Add one batch of values."""
        self.apply(self.prepare(values))

    @abc.abstractmethod
    def prepare(self, values: ColumnValues) -> object:
        """The typed batch :meth:`apply` takes; changes nothing (so a batch of several
        columns can be prepared in full before any column changes)."""

    @abc.abstractmethod
    def apply(self, batch: object) -> None:
        """Add a batch made by :meth:`prepare` or :meth:`rejected`."""

    @abc.abstractmethod
    def rejected(self, n: int) -> object:
        """A batch of ``n`` values this profile could not take (counted as mismatched)."""

    def add_missing(self, n: int) -> None:
        """Count ``n`` rows in which this column had no value."""
        self._missing += n

    def merge(self, other: ColumnProfile) -> None:
        """Fold ``other`` into this profile (in place).

        A profile of another type (the two sides inferred different types) contributes
        its missing rows as missing and all its other rows as mismatched.
        """
        if type(other) is type(self):
            self._count += other._count
            self._missing += other._missing
            self._mismatched += other._mismatched
            self._merge_same(other)
        else:
            self._missing += other.missing
            self._mismatched += other.total - other.missing

    @abc.abstractmethod
    def _merge_same(self, other: Self) -> None: ...

    @abc.abstractmethod
    def to_bytes(self) -> bytes: ...

    @classmethod
    @abc.abstractmethod
    def from_bytes(cls, data: bytes) -> Self: ...

    def copy(self) -> Self:
        return self.from_bytes(self.to_bytes())

    def _check(self, ok: bool, what: str) -> None:
        if not ok:
            raise StateFormatError(f"{type(self).__name__} state inconsistent: {what}")


class _NullState(msgspec.Struct, array_like=True):
    missing: int


class NullProfile(ColumnProfile):
    """A column for which only missing values have been seen (type not known yet)."""

    column_type = ColumnType.UNKNOWN
    MAGIC = b"DLCN"

    def prepare(self, values: ColumnValues) -> object:
        return len(values)

    def apply(self, batch: object) -> None:
        assert isinstance(batch, int)
        self._missing += batch

    def rejected(self, n: int) -> object:
        return n  # no type yet: nothing to mismatch

    def _merge_same(self, other: NullProfile) -> None:
        pass

    def to_bytes(self) -> bytes:
        return _codec.pack(self.MAGIC, self.VERSION, _NullState(self._missing))

    @classmethod
    def from_bytes(cls, data: bytes) -> NullProfile:
        state = _codec.unpack(data, cls.MAGIC, cls.VERSION, _NullState)
        out = cls()
        out._missing = state.missing
        out._check(state.missing >= 0, "negative count")
        return out
