"""Statistical helpers against scipy; Reference building and round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from sketches import stats
from sketches.errors import InputDataError, StateFormatError
from sketches.reference import Reference, build_reference
from sketches.rules import DriftRules


def test_chi2_homogeneity_matches_scipy_with_unequal_sizes() -> None:
    ref = np.array([400.0, 300.0, 200.0, 100.0])
    cur = np.array([30.0, 45.0, 15.0, 10.0])
    stat, p, df = stats.chi2_homogeneity(ref, cur)
    res = sps.chi2_contingency(np.vstack([ref, cur]), correction=False)
    assert stat == pytest.approx(res.statistic)
    assert p == pytest.approx(res.pvalue)
    assert df == res.dof == 3


def test_chi2_pools_sparse_categories() -> None:
    ref = np.array([500.0, 500.0, 1.0, 1.0, 0.0])
    cur = np.array([50.0, 50.0, 0.0, 1.0, 2.0])
    _stat, p, df = stats.chi2_homogeneity(ref, cur)
    assert df == 2 and 0 <= p <= 1
    assert stats.chi2_homogeneity(np.array([5.0]), np.array([3.0]))[1] == 1.0


def test_two_proportion_matches_normal_test() -> None:
    p = stats.two_proportion_pvalue(10, 1000, 30, 1000)
    pool = 40 / 2000
    z = (0.03 - 0.01) / math.sqrt(pool * (1 - pool) * 2 / 1000)
    assert p == pytest.approx(2 * sps.norm.sf(z))
    assert stats.two_proportion_pvalue(0, 100, 0, 100) == 1.0


def test_ks_pvalue_matches_scipy_asymptotic() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=3000), rng.normal(0.05, 1, size=2000)
    res = sps.ks_2samp(a, b, method="asymp")
    p = stats.ks_pvalue(res.statistic, 3000, 2000)
    assert p == pytest.approx(sps.kstwobign.sf(math.sqrt(1200) * res.statistic))
    assert p == pytest.approx(res.pvalue, rel=0.1)  # scipy adds a finite-size correction


def test_corrections_match_scipy() -> None:
    ps = [0.001, 0.02, 0.03, 0.2, 0.04, 0.5]
    assert stats.adjust_pvalues(ps, "bonferroni") == [min(1, p * 6) for p in ps]
    assert stats.adjust_pvalues(ps, "bh") == pytest.approx(
        list(sps.false_discovery_control(ps, method="bh"))
    )
    assert stats.adjust_pvalues(ps, "none") == ps
    with pytest.raises(ValueError):
        stats.adjust_pvalues(ps, "holm")


def test_psi_and_js_known_values() -> None:
    p = np.array([0.5, 0.5])
    q = np.array([0.9, 0.1])
    assert stats.psi(p, q) == pytest.approx(0.4 * math.log(1.8) - 0.4 * math.log(0.2))
    from scipy.spatial.distance import jensenshannon

    assert stats.js_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2))
    assert stats.js_distance(p, p) == 0.0


def test_rules_validate() -> None:
    with pytest.raises(ValueError):
        DriftRules(alpha=0)
    with pytest.raises(ValueError):
        DriftRules(correction="holm")  # type: ignore[arg-type]
    rules = DriftRules(column_thresholds={"x": {"psi": 0.1}})
    from sketches.types import ColumnType

    assert rules.thresholds_for("x", ColumnType.NUMERIC)["psi"] == 0.1
    assert rules.thresholds_for("y", ColumnType.NUMERIC)["psi"] == 0.25


def _batches(n_batches: int, size: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(4)
    return [
        {"x": rng.normal(size=size), "c": rng.choice(["a", "b"], size=size)}
        for _ in range(n_batches)
    ]


def test_reference_contiguous_chunks_and_round_trip() -> None:
    ref = build_reference(
        _batches(7, 1000), model="m", version="2", created="2026-01-01", chunks=4, total_rows=7000
    )
    assert ref.rows == 7000
    assert [c.rows for c in ref.chunks] == [1750, 1750, 1750, 1750]
    blob = ref.to_bytes()
    back = Reference.from_bytes(blob)
    assert (back.model, back.version, back.created, back.rows) == ("m", "2", "2026-01-01", 7000)
    assert back.to_bytes() == blob
    with pytest.raises(StateFormatError):
        Reference.from_bytes(blob[:-1])
    with pytest.raises(StateFormatError):
        Reference.from_bytes(ref.profile.to_bytes())


def test_reference_round_robin_without_row_count() -> None:
    ref = build_reference(_batches(5, 100), model="m", version="1", created="t", chunks=3)
    assert sorted(c.rows for c in ref.chunks) == [100, 200, 200]
    assert (
        build_reference(_batches(2, 10), model="m", version="1", created="t", chunks=0).chunks == []
    )


def test_empty_reference_is_an_input_error() -> None:
    with pytest.raises(InputDataError, match="no rows"):
        build_reference([], model="m", version="1", created="t")
    with pytest.raises(InputDataError, match="different lengths"):
        build_reference([{"a": [1], "b": [1, 2]}], model="m", version="1", created="t")
