"""DatasetProfile.merged: a window's partition blobs merged from their bytes give the
profile that decoding and merging them one by one gives (issue 12: the evaluator's merge
of every partition's blob of a window)."""

from __future__ import annotations

import numpy as np
import pytest

from sketches.errors import StateFormatError
from sketches.profile import DatasetProfile


def _blob(rng: np.random.Generator, n: int, columns: tuple[str, ...] = ("x", "y", "c")) -> bytes:
    data = {"x": rng.normal(0, 1, n), "y": np.where(rng.random(n) < 0.1, np.nan,
                                                    rng.lognormal(0, 1, n)),
            "c": rng.choice(["a", "b", "c"], n)}
    prof = DatasetProfile()
    prof.update({k: data[k] for k in columns}, n)
    return prof.to_bytes()


def _one_by_one(blobs: list[bytes]) -> DatasetProfile:
    out = DatasetProfile.from_bytes(blobs[0])
    for b in blobs[1:]:
        out.merge(DatasetProfile.from_bytes(b))
    return out


def _same(a: DatasetProfile, b: DatasetProfile) -> None:
    assert a.rows == b.rows and set(a.columns) == set(b.columns) and a.types == b.types
    for name, ca in a.columns.items():
        cb = b.columns[name]
        assert type(ca) is type(cb)
        assert (ca.count, ca.missing, ca.mismatched) == (cb.count, cb.missing, cb.mismatched)
        if hasattr(ca, "mean"):
            assert ca.mean == pytest.approx(cb.mean, rel=1e-12)
            assert ca.variance == pytest.approx(cb.variance, rel=1e-9)
            assert (ca.min, ca.max, ca.invalid) == (cb.min, cb.max, cb.invalid)
            # two KLL merges of the same values: each quantile of one sits within both
            # sketches' rank errors of its rank in the other
            eps = ca.rank_error + cb.rank_error + 1 / max(ca.count, 1)
            cdf = cb.distribution().cdf(np.array(ca.quantiles([0.1, 0.5, 0.9])))
            assert np.all(np.abs(cdf - np.array([0.1, 0.5, 0.9])) <= eps + 1e-9), cdf


@pytest.mark.parametrize("rows", [1, 200, 5_000])
def test_merged_from_bytes_equals_merged_one_by_one(rows: int) -> None:
    rng = np.random.default_rng(rows)
    blobs = [_blob(rng, rows) for _ in range(16)]
    _same(DatasetProfile.merged(blobs), _one_by_one(blobs))
    _same(DatasetProfile.merged(blobs[:1]), DatasetProfile.from_bytes(blobs[0]))


def test_blobs_with_different_columns_merge_as_merge_does() -> None:
    rng = np.random.default_rng(7)
    blobs = [_blob(rng, 100), _blob(rng, 50, ("x",)), _blob(rng, 80, ("x", "c"))]
    merged = DatasetProfile.merged(blobs)
    _same(merged, _one_by_one(blobs))
    assert merged.columns["y"].missing > 130  # the rows of blobs without it


def test_a_corrupt_blob_is_a_format_error() -> None:
    rng = np.random.default_rng(8)
    blobs = [_blob(rng, 100) for _ in range(3)]
    bad = bytearray(blobs[1])
    bad[len(bad) // 2] ^= 0xFF
    with pytest.raises(StateFormatError):
        DatasetProfile.merged([blobs[0], bytes(bad), blobs[2]])
