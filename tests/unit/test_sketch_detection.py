"""Detection suite (issue 3): real changes flagged, stable-but-awkward columns not flagged."""

from __future__ import annotations

import numpy as np
import pytest

from sketches.drift import DriftReport, compare_profiles
from sketches.profile import DatasetProfile
from sketches.reference import Reference, build_reference
from sketches.rules import DriftRules

CATS = np.array(["a", "b", "c", "d"])
LEVELS = np.array([f"L{i:04d}" for i in range(1000)])
ZIPF = 1 / np.arange(1, 1001)
ZIPF /= ZIPF.sum()
DRIFTING = ["mean_shift", "variance", "null_spike", "category_freq", "unseen_category"]
STABLE = ["levels_1000", "int_counts", "heavy_tail", "lognormal", "const_nulls", "flag", "steady"]


def batch(rng: np.random.Generator, n: int, drift: bool) -> dict[str, np.ndarray]:
    d = drift
    return {
        "mean_shift": rng.normal(0.25 if d else 0.0, 1.0, n),
        "variance": rng.normal(0.0, np.sqrt(1.5) if d else 1.0, n),
        "null_spike": np.where(rng.random(n) < (0.05 if d else 0.0), np.nan, rng.normal(size=n)),
        "category_freq": rng.choice(
            CATS, n, p=[0.25, 0.3, 0.25, 0.2] if d else [0.4, 0.3, 0.2, 0.1]
        ),
        "unseen_category": np.where(
            rng.random(n) < (0.05 if d else 0.0), "NEW", rng.choice(CATS, n)
        ),
        "levels_1000": rng.choice(LEVELS, n, p=ZIPF),
        "int_counts": rng.poisson(3, n),
        "heavy_tail": rng.standard_t(2, n),
        "lognormal": rng.lognormal(0.0, 2.0, n),
        "const_nulls": np.where(rng.random(n) < 0.01, np.nan, rng.normal(size=n)),
        "flag": rng.random(n) < 0.3,
        "steady": rng.uniform(0, 100, n),
    }


@pytest.fixture(scope="module")
def reference() -> Reference:
    rng = np.random.default_rng(2026)
    return build_reference(
        (batch(rng, 20_000, False) for _ in range(5)),
        model="m", version="1", created="2026-11-23T00:00:00Z", chunks=10, total_rows=100_000,
    )  # fmt: skip


def _report(reference: Reference, n: int, drift: bool, seed: int, **kw: object) -> DriftReport:
    rng = np.random.default_rng(seed)
    cur = DatasetProfile(types=reference.types)
    cur.update(batch(rng, n, drift), n)
    return compare_profiles(reference, cur, DriftRules(**kw))  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [2_000, 20_000, 100_000])
def test_every_change_is_flagged_and_nothing_else(reference: Reference, n: int) -> None:
    report = _report(reference, n, True, seed=n)
    assert sorted(report.drifted) == sorted(DRIFTING), {
        k: c.reasons for k, c in report.columns.items()
    }
    assert "null_ratio" in report.columns["null_spike"].fired
    assert "unseen" in report.columns["unseen_category"].fired
    for name in STABLE:
        assert report.columns[name].verdict == "no_drift", report.columns[name].reasons


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n", [500, 5_000, 50_000])
def test_unchanged_data_raises_no_alarm(reference: Reference, n: int, seed: int) -> None:
    report = _report(reference, n, False, seed=seed * 1000 + n)
    assert report.drifted == []
    assert all(c.verdict == "no_drift" for c in report.columns.values())


def test_pvalue_mode_with_bh_flags_changes(reference: Reference) -> None:
    report = _report(reference, 20_000, True, seed=9, mode="pvalue", correction="bh")
    assert set(DRIFTING) <= set(report.drifted)


def test_learned_thresholds_from_chunks(reference: Reference) -> None:
    learned = reference.learned_thresholds(3.0)
    assert set(learned) == set(batch(np.random.default_rng(0), 1, False))
    # chunk-vs-rest noise at 10k rows is far below the fixed effect thresholds
    assert 0 < learned["mean_shift"]["wasserstein"] < 0.1
    assert learned["const_nulls"]["null_ratio"] < 0.01
    # chunk-sized current windows: drift flagged, stable data not
    drifted = _report(reference, 10_000, True, seed=5, learned=True)
    assert set(DRIFTING) <= set(drifted.drifted)
    same = _report(reference, 10_000, False, seed=6, learned=True)
    assert len(same.drifted) <= 1  # mean + 3 sd: ~0.1 % per metric false-alarm rate


def test_small_windows_are_insufficient_not_ok(reference: Reference) -> None:
    report = _report(reference, 50, True, seed=1)
    for c in report.columns.values():
        assert c.verdict == "insufficient_data"
        assert c.reasons


def test_all_null_current_column_is_drift_by_null_ratio(reference: Reference) -> None:
    cur = DatasetProfile(types=reference.types)
    cur.update({"steady": np.full(5000, np.nan)}, 5000)
    report = compare_profiles(reference, cur)
    steady = report.columns["steady"]
    assert steady.verdict == "drift" and "null_ratio" in steady.fired
    # every other column is absent from the current data: 100 % missing
    assert set(report.drifted) == set(reference.types)


def test_type_change_and_new_column() -> None:
    ref = DatasetProfile()
    ref.update({"a": np.arange(1000.0)}, 1000)
    cur = DatasetProfile()
    cur.update({"a": np.array(["x"] * 1000), "new": np.arange(1000.0)}, 1000)
    report = compare_profiles(ref, cur)
    assert report.columns["a"].verdict == "drift"
    assert any("type changed" in r for r in report.columns["a"].reasons)
    assert report.columns["new"].verdict == "insufficient_data"
    assert report.columns["new"].reasons == ("column not in the reference",)


def test_mixed_types_in_current_are_a_quality_drift() -> None:
    ref = DatasetProfile()
    ref.update({"a": list(np.random.default_rng(0).normal(size=2000))}, 2000)
    values: list[object] = list(np.random.default_rng(1).normal(size=2000))
    values[::10] = ["n/a"] * 200
    cur = DatasetProfile(types=ref.types)
    cur.update({"a": values}, 2000)
    col = compare_profiles(ref, cur).columns["a"]
    assert col.verdict == "drift" and "type_mismatch" in col.fired


def test_json_shape_matches_design(reference: Reference) -> None:
    out = _report(reference, 5_000, True, seed=3).to_json_dict()
    assert set(out) >= {"rows", "columns", "drifted"}
    col = out["columns"]["mean_shift"]  # type: ignore[index]
    assert set(col) >= {"type", "count", "null_ratio", "metrics", "drift", "reasons"}
    assert set(col["metrics"]) >= {"ks", "psi", "js", "wasserstein"}
    assert col["drift"] is True and col["verdict"] == "drift"
    cat = out["columns"]["category_freq"]  # type: ignore[index]
    assert set(cat["metrics"]) >= {"linf", "js", "chi2", "unseen"}
