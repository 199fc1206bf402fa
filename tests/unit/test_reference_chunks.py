"""References read without their chunks (issue 12, bounded evaluator memory): the chunk
profiles are most of a reference's bytes and only learned thresholds use them."""

from __future__ import annotations

import numpy as np
import pytest

from alerts.evaluator import ModelRules
from driftline.monitor import learns_thresholds
from sketches.drift import compare_profiles
from sketches.profile import DatasetProfile
from sketches.reference import Reference, build_reference
from sketches.rules import DriftRules


def _reference() -> Reference:
    rng = np.random.default_rng(3)
    batch = {"x": rng.normal(0, 1, 20_000), "c": rng.choice(["a", "b", "c"], 20_000)}
    return build_reference([batch], model="m", version="default", created="t", chunks=4,
                           total_rows=20_000)


def test_a_reference_read_without_chunks_compares_the_same_and_is_smaller() -> None:
    blob = _reference().to_bytes()
    full, lean = Reference.from_bytes(blob), Reference.from_bytes(blob, chunks=False)
    assert len(full.chunks) == 4 and full.chunks_left_out == 0
    assert lean.chunks == [] and lean.chunks_left_out == 4
    assert lean.profile.to_bytes() == full.profile.to_bytes()
    rng = np.random.default_rng(4)
    cur = DatasetProfile()
    cur.update({"x": rng.normal(0.3, 1, 2_000), "c": rng.choice(["a", "b"], 2_000)}, 2_000)
    a = compare_profiles(full, DatasetProfile.from_bytes(cur.to_bytes()))
    b = compare_profiles(lean, DatasetProfile.from_bytes(cur.to_bytes()))
    assert {c: r.verdict for c, r in a.columns.items()} == \
        {c: r.verdict for c, r in b.columns.items()}
    assert a.columns["x"].metrics["ks"].value == pytest.approx(b.columns["x"].metrics["ks"].value,
                                                               abs=0.02)  # (two KLL reads)
    # the chunks are most of the bytes: 4 chunks of a quarter of the rows each
    chunk_bytes = sum(len(c.to_bytes()) for c in full.chunks)
    assert chunk_bytes > len(full.profile.to_bytes())


def test_learned_thresholds_refuse_a_reference_read_without_chunks() -> None:
    lean = Reference.from_bytes(_reference().to_bytes(), chunks=False)
    with pytest.raises(RuntimeError, match="without its chunks"):
        lean.learned_thresholds(3.0)
    with pytest.raises(RuntimeError, match="without its chunks"):
        compare_profiles(lean, lean.profile, DriftRules(learned=True))
    assert Reference.from_bytes(_reference().to_bytes()).learned_thresholds(3.0)


def test_the_evaluator_reads_chunks_only_for_models_that_learn_thresholds() -> None:
    models = {"learns": ModelRules("learns", rules=DriftRules(learned=True)),
              "plain": ModelRules("plain")}
    wants = learns_thresholds(models, ModelRules("*"))
    assert wants("learns") and not wants("plain") and not wants("unlisted")
    assert learns_thresholds({}, ModelRules("*", rules=DriftRules(learned=True)))("any")
