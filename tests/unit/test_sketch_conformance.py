"""One conformance suite run over every column profile type (STYLE.md §15)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from sketches.boolean import BooleanProfile
from sketches.categorical import CategoricalProfile
from sketches.column import ColumnProfile, NullProfile
from sketches.columns import PROFILE_TYPES, column_from_bytes
from sketches.errors import StateFormatError
from sketches.numeric import NumericProfile

rng = np.random.default_rng(7)


def _numeric(n: int) -> list[object]:
    vals: list[object] = list(rng.normal(size=n))
    vals[::17] = [None] * len(vals[::17])
    vals[::29] = ["oops"] * len(vals[::29])
    return vals


def _categorical(n: int) -> list[object]:
    vals: list[object] = [str(x) for x in rng.choice(list("abcdef"), size=n)]
    vals[::13] = [None] * len(vals[::13])
    vals[::31] = [3] * len(vals[::31])
    return vals


def _boolean(n: int) -> list[object]:
    vals: list[object] = [bool(x) for x in rng.random(n) < 0.3]
    vals[::11] = [None] * len(vals[::11])
    vals[::37] = ["yes"] * len(vals[::37])
    return vals


def _null(n: int) -> list[object]:
    return [None] * n


CASES: dict[type[ColumnProfile], Callable[[int], list[object]]] = {
    NumericProfile: _numeric,
    CategoricalProfile: _categorical,
    BooleanProfile: _boolean,
    NullProfile: _null,
}


def test_every_profile_type_is_covered() -> None:
    assert set(CASES) == set(PROFILE_TYPES)


@pytest.fixture(params=list(CASES), ids=lambda c: c.__name__)
def kind(request: pytest.FixtureRequest) -> type[ColumnProfile]:
    cls: type[ColumnProfile] = request.param
    return cls


def _filled(kind: type[ColumnProfile], n: int) -> ColumnProfile:
    prof = kind()
    prof.update(CASES[kind](n))
    return prof


def test_counts_add_up(kind: type[ColumnProfile]) -> None:
    prof = _filled(kind, 1000)
    assert prof.total == 1000
    assert prof.count + prof.missing + prof.mismatched + prof.invalid == 1000
    assert prof.missing > 0
    if kind is not NullProfile:
        assert prof.missing < 1000
        assert prof.mismatched > 0
        assert prof.count > 0


def test_round_trip_is_exact(kind: type[ColumnProfile]) -> None:
    prof = _filled(kind, 500)
    blob = prof.to_bytes()
    back = kind.from_bytes(blob)
    assert back.to_bytes() == blob
    again = column_from_bytes(blob)
    assert type(again) is kind
    assert (again.count, again.missing, again.mismatched) == (
        prof.count,
        prof.missing,
        prof.mismatched,
    )


def test_merge_adds_counts(kind: type[ColumnProfile]) -> None:
    a, b = _filled(kind, 300), _filled(kind, 700)
    totals = (a.count + b.count, a.missing + b.missing, a.mismatched + b.mismatched)
    a.merge(b)
    assert (a.count, a.missing, a.mismatched) == totals
    assert a.total == 1000


def test_merge_with_empty_is_identity(kind: type[ColumnProfile]) -> None:
    prof = _filled(kind, 400)
    blob = prof.to_bytes()
    prof.merge(kind())
    assert kind.from_bytes(prof.to_bytes()).total == kind.from_bytes(blob).total
    empty = kind()
    empty.merge(kind.from_bytes(blob))
    assert empty.total == 400 and empty.count == prof.count


def test_missing_rows_are_counted(kind: type[ColumnProfile]) -> None:
    prof = kind()
    prof.add_missing(5)
    assert prof.missing == 5 and prof.null_ratio == 1.0


@pytest.mark.parametrize("cut", [0, 3, 10, 13, -1])
def test_truncated_bytes_raise_typed_error(kind: type[ColumnProfile], cut: int) -> None:
    blob = _filled(kind, 200).to_bytes()
    with pytest.raises(StateFormatError):
        kind.from_bytes(blob[:cut])
    with pytest.raises(StateFormatError):
        kind.from_bytes(blob + b"\x00")


def test_corrupt_bytes_raise_typed_error(kind: type[ColumnProfile]) -> None:
    blob = bytearray(_filled(kind, 200).to_bytes())
    for pos in (6, 11, len(blob) // 2 + 7, len(blob) - 1):
        bad = bytearray(blob)
        bad[pos] ^= 0xFF
        with pytest.raises(StateFormatError):
            kind.from_bytes(bytes(bad))


def test_wrong_magic_and_version_raise(kind: type[ColumnProfile]) -> None:
    blob = _filled(kind, 50).to_bytes()
    with pytest.raises(StateFormatError, match="magic"):
        kind.from_bytes(b"XXXX" + blob[4:])
    with pytest.raises(StateFormatError, match="version"):
        kind.from_bytes(blob[:4] + b"\x00\x63" + blob[6:])
    with pytest.raises(StateFormatError):
        column_from_bytes(b"\x00" * 40)
