"""A column that changes type is a data-quality check that fires, whatever the merge order."""

from __future__ import annotations

import itertools

import numpy as np

from alerts.outcome import report_checks
from alerts.scopes import merge_typed
from sketches.drift import compare_profiles
from sketches.profile import DatasetProfile
from sketches.reference import Reference
from sketches.rules import DriftRules


def window(values: object, n: int) -> DatasetProfile:
    p = DatasetProfile()
    p.update({"x": values, "y": np.arange(n, dtype=float)}, n)  # type: ignore[dict-item]
    return p


def reference() -> DatasetProfile:
    rng = np.random.default_rng(1)
    return window(rng.normal(size=5000), 5000)


def test_a_type_change_fires_type_mismatch() -> None:
    ref = reference()
    cur = window([f"id-{i}" for i in range(2000)], 2000)  # x is now a string column
    report = compare_profiles(ref, cur, DriftRules())
    col = report.columns["x"]
    assert col.verdict == "drift" and "type_mismatch" in col.fired
    assert any("type changed" in r for r in col.reasons)
    checks = {(c.column, c.metric): c for c in report_checks(report)}
    assert checks[("x", "type_mismatch")].breached is True
    assert checks[("x", "type_mismatch")].value.value == 1.0  # type: ignore[union-attr]


def test_merged_windows_are_typed_by_the_reference_not_the_merge_order() -> None:
    rng = np.random.default_rng(2)
    ref = reference()
    numeric = window(rng.normal(size=1500), 1500)
    strings = window(["a"] * 500, 500)
    values = []
    for order in itertools.permutations([strings, numeric]):
        current = merge_typed(order, Reference(ref, model="m", version="1", created="now"))
        report = compare_profiles(ref, current, DriftRules())
        col = report.columns["x"]
        assert "type_mismatch" in col.fired, order
        values.append(col.metrics["type_mismatch"].value)
    assert values[0] == values[1] == 0.25  # 500 of 2000 values are not numbers
