"""A dataset profile: one mergeable column profile per column, plus the row count."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import msgspec

from sketches import _codec
from sketches.column import ColumnProfile, NullProfile
from sketches.columns import column_from_bytes, new_column
from sketches.errors import InputDataError, StateFormatError
from sketches.numeric import DEFAULT_KLL_K, NumericProfile
from sketches.types import ColumnType
from sketches.values import ColumnValues, infer_type

__all__ = ["DEFAULT_KLL_K", "DatasetProfile"]

log = logging.getLogger(__name__)


def _safe_infer(values: ColumnValues) -> ColumnType:
    try:
        return infer_type(values)
    except Exception:  # an exotic value: leave the type open, prepare() counts it
        return ColumnType.UNKNOWN


class _ProfileState(msgspec.Struct, array_like=True):
    rows: int
    kll_k: int
    types: dict[str, str]
    columns: dict[str, bytes]


class DatasetProfile:
    """Per-column profiles of a stream of batches; mergeable and serialisable.

    A column's type is inferred from its first non-missing value unless ``types``
    fixes it. Values of another type later are counted as mismatches. A column absent
    from a batch counts that batch's rows as missing; a column first seen late counts
    all earlier rows as missing.
    """

    MAGIC = b"DLDP"
    VERSION = 1

    def __init__(
        self, *, types: Mapping[str, ColumnType] | None = None, kll_k: int = DEFAULT_KLL_K
    ) -> None:
        self._types: dict[str, ColumnType] = dict(types or {})
        self._kll_k = kll_k
        self._rows = 0
        self._columns: dict[str, ColumnProfile] = {}
        for name, t in self._types.items():
            self._columns[name] = new_column(ColumnType(t), kll_k=kll_k)

    # --------------------------------------------------------------- verbs
    def update(self, columns: Mapping[str, ColumnValues], n_rows: int) -> None:
        """Add one batch of ``n_rows`` rows given column by column."""
        if n_rows < 0:
            raise InputDataError(f"n_rows must be >= 0, got {n_rows}")
        for name, values in columns.items():
            if len(values) != n_rows:
                raise InputDataError(
                    f"column {name!r} has {len(values)} values in a batch of {n_rows} rows"
                )
        # Two phases, so the batch lands whole or not at all: every column's values are
        # typed first (nothing changes), then applied. A column whose values cannot be
        # typed counts the batch as mismatched instead of leaving the profile half-updated.
        staged: list[tuple[str, ColumnProfile, object]] = []
        for name, values in columns.items():
            prof = self._columns.get(name)
            if prof is None:
                prof = NullProfile()
                prof.add_missing(self._rows)
            if isinstance(prof, NullProfile):
                inferred = _safe_infer(values)
                if inferred is not ColumnType.UNKNOWN:
                    typed = new_column(inferred, kll_k=self._kll_k)
                    typed.add_missing(prof.missing)
                    prof = typed
            try:
                batch = prof.prepare(values)
            except Exception:  # values no converter foresaw: data, never a crash
                log.warning("column %r: %d values could not be typed; counted as mismatched",
                            name, n_rows, exc_info=True)
                batch = prof.rejected(n_rows)
            staged.append((name, prof, batch))
        for name, prof, batch in staged:
            self._columns[name] = prof
            prof.apply(batch)
        for name, prof in self._columns.items():
            if name not in columns:
                prof.add_missing(n_rows)
        self._rows += n_rows

    def merge(self, other: DatasetProfile) -> None:
        """Fold ``other`` in (in place). Order independent within the sketches' bounds.

        Columns known to one side only count the other side's rows as missing. If the
        two sides have different types, a type declared on this side (``types``) wins;
        otherwise the side with more values of its type does (ties: by type name), so
        which window came first does not decide. The loser's values count as mismatches.
        Declared types (the worker declares the reference's) make a merge of any number
        of windows order independent; inferred ones only pairwise.
        """
        for name, theirs in other._columns.items():
            mine = self._columns.get(name)
            if mine is None:
                mine = theirs.copy()
                mine.add_missing(self._rows)
            elif isinstance(mine, NullProfile) and not isinstance(theirs, NullProfile):
                missing = mine.missing
                mine = theirs.copy()
                mine.add_missing(missing)
            elif (type(mine) is not type(theirs) and not isinstance(theirs, NullProfile)
                  and name not in self._types
                  and (theirs.count, theirs.column_type.value)
                  > (mine.count, mine.column_type.value)):
                taken = theirs.copy()
                taken.merge(mine)
                mine = taken
            else:
                mine.merge(theirs)
            self._columns[name] = mine
        for name, mine in self._columns.items():
            if name not in other._columns:
                mine.add_missing(other._rows)
        self._rows += other._rows

    @classmethod
    def merged(cls, blobs: Sequence[bytes]) -> DatasetProfile:
        """``from_bytes`` of the first of ``blobs`` with each of the others merged in (the
        same profile). When every blob has the same columns, a numeric column is merged
        from its bytes (:meth:`NumericProfile.merged`: no column object per blob);
        anything else is merged as :meth:`merge` does."""
        states = [_codec.unpack(b, cls.MAGIC, cls.VERSION, _ProfileState) for b in blobs]
        first = states[0]
        names = first.columns.keys()
        if len(states) == 1 or any(s.columns.keys() != names or s.kll_k != first.kll_k
                                   for s in states[1:]):
            out = cls.from_bytes(blobs[0])
            for blob in blobs[1:]:
                out.merge(cls.from_bytes(blob))
            return out
        out = cls(kll_k=first.kll_k)
        out._types = _types_of(first)
        out._rows = sum(s.rows for s in states)
        with _codec.checked_body():  # each profile's CRC covered its columns' bytes
            for name in names:
                parts = [s.columns[name] for s in states]
                if all(_codec.peek_magic(p) == NumericProfile.MAGIC for p in parts):
                    out._columns[name] = NumericProfile.merged(parts)
                    continue
                acc = DatasetProfile(kll_k=first.kll_k)
                for s, part in zip(states, parts, strict=True):
                    one = DatasetProfile(kll_k=first.kll_k)
                    one._rows, one._columns = s.rows, {name: column_from_bytes(part)}
                    acc.merge(one)
                out._columns[name] = acc._columns[name]
        for name, prof in out._columns.items():
            if prof.total != out._rows:
                raise StateFormatError(
                    f"dataset profile: column {name!r} has {prof.total} rows, profile "
                    f"{out._rows}")
        return out

    def copy(self) -> DatasetProfile:
        return DatasetProfile.from_bytes(self.to_bytes())

    # --------------------------------------------------------------- results
    @property
    def rows(self) -> int:
        return self._rows

    @property
    def kll_k(self) -> int:
        return self._kll_k

    @property
    def columns(self) -> Mapping[str, ColumnProfile]:
        return MappingProxyType(self._columns)

    @property
    def types(self) -> dict[str, ColumnType]:
        """Type of every column (UNKNOWN while only missing values were seen)."""
        return {name: prof.column_type for name, prof in self._columns.items()}

    def types_known(self) -> dict[str, ColumnType]:
        """Types of the columns whose type is known (for ``DatasetProfile(types=...)``)."""
        return {k: t for k, t in self.types.items() if t is not ColumnType.UNKNOWN}

    # --------------------------------------------------------------- bytes
    def to_bytes(self) -> bytes:
        state = _ProfileState(
            self._rows,
            self._kll_k,
            {k: str(v) for k, v in self._types.items()},
            {name: prof.to_bytes() for name, prof in self._columns.items()},
        )
        return _codec.pack(self.MAGIC, self.VERSION, state)

    @classmethod
    def from_bytes(cls, data: bytes) -> DatasetProfile:
        s = _codec.unpack(data, cls.MAGIC, cls.VERSION, _ProfileState)
        out = cls(kll_k=s.kll_k)
        out._types = _types_of(s)
        out._rows = s.rows
        with _codec.checked_body():  # the profile's CRC covered the columns' bytes
            out._columns = {name: column_from_bytes(b) for name, b in s.columns.items()}
        for name, prof in out._columns.items():
            if prof.total != s.rows:
                raise StateFormatError(
                    f"dataset profile: column {name!r} has {prof.total} rows, profile {s.rows}"
                )
        return out


def _types_of(s: _ProfileState) -> dict[str, ColumnType]:
    """The state's column types, its header checked; StateFormatError."""
    if s.rows < 0 or not 8 <= s.kll_k <= 65535:
        raise StateFormatError("dataset profile: invalid header values")
    try:
        return {k: ColumnType(v) for k, v in s.types.items()}
    except ValueError as exc:
        raise StateFormatError(f"dataset profile: unknown column type: {exc}") from exc
