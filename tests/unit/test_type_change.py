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


def test_untyped_windows_merge_the_same_in_either_order() -> None:
    """The reader merges partition windows without the reference: on a type conflict the
    side with more values of its type wins, not the one merged first."""
    rng = np.random.default_rng(3)
    ref = Reference(reference(), model="m", version="1", created="now")
    numeric, strings = window(rng.normal(size=1500), 1500), window(["a"] * 500, 500)
    seen = []
    for first, second in itertools.permutations([strings, numeric]):
        merged = DatasetProfile.merged([first.to_bytes(), second.to_bytes()])
        col = merged.columns["x"]
        assert (col.column_type.value, col.count, col.mismatched) == ("numeric", 1500, 500)
        report = compare_profiles(ref.profile, merge_typed([merged], ref), DriftRules())
        seen.append(report.columns["x"].metrics["type_mismatch"].value)
        assert "ks" in report.columns["x"].metrics  # the numbers are still compared
    assert seen == [0.25, 0.25]


def test_windows_are_typed_by_the_reference_from_the_first_event() -> None:
    """The worker declares the reference's column types (driftline.models
    .with_reference_types): a string arriving first in a window is one mismatch, not the
    column's type; a type in the models file still wins."""
    import json

    from driftline.models import with_reference_types
    from streams.core import PartitionSnapshot, Processor, Record
    from streams.windows import ModelCatalog, ModelSpec

    ref = Reference(reference(), model="m", version="1", created="now")
    refs = {"m": ref, "implicit": ref}
    listed = ModelCatalog({"m": ModelSpec("m")}, accept_unknown=True)
    catalog = with_reference_types(listed, ["m", "implicit", "none"], refs.get)
    plain = catalog.get("none")
    assert plain is not None and not plain.types
    for model in ("m", "implicit"):
        proc = Processor(catalog)
        proc.assign(PartitionSnapshot(0, 1))
        values = ["oops", *range(99)]
        recs = [Record(0, i, 1_800_000_000_000, json.dumps(
            {"model": model, "ts": 1_800_000_000 + i, "features": {"x": v, "y": 1.0},
             "prediction": 0.5}).encode()) for i, v in enumerate(values)]
        assert proc.process(recs) == []
        cp = proc.checkpoint(0)
        assert cp is not None
        (blob,) = cp.windows.values()
        col = DatasetProfile.from_bytes(blob).columns["x"]
        assert (col.column_type.value, col.count, col.mismatched) == ("numeric", 99, 1), model
