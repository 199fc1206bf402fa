"""The processor core without Kafka or Redis."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sketches.profile import DatasetProfile
from streams.columnarise import columnarise
from streams.core import PartitionSnapshot, Processor, Record
from streams.events import decode_event
from streams.windows import Counters, Limits, ModelCatalog, ModelSpec, WindowKey

MIN = 60_000
T0 = 1_795_420_800_000  # a multiple of 5 minutes


def ev(ts_ms: int, model: str = "m", **extra: object) -> bytes:
    body = {"model": model, "ts": ts_ms / 1000, "features": {"x": 1.5, "c": "a"},
            "prediction": 0.5}
    body.update(extra)
    return json.dumps(body).encode()


def catalog() -> ModelCatalog:
    return ModelCatalog({"m": ModelSpec("m", 5 * MIN, 10 * MIN)}, accept_unknown=False)


def proc_with(*partitions: int) -> Processor:
    proc = Processor(catalog())
    for p in partitions:
        proc.assign(PartitionSnapshot(p, epoch=1))
    return proc


def rows(proc: Processor, p: int) -> dict[WindowKey, int]:
    cp = proc.checkpoint(p)
    assert cp is not None
    return {k: DatasetProfile.from_bytes(b).rows for k, b in cp.windows.items()}


def test_tumbling_windows_per_partition_and_model() -> None:
    proc = proc_with(0, 1)
    recs = [Record(0, i, 0, ev(T0 + i * MIN)) for i in range(12)]
    recs.append(Record(1, 0, 0, ev(T0)))
    assert proc.process(recs) == []
    assert rows(proc, 0) == {WindowKey("m", "default", T0): 5,
                             WindowKey("m", "default", T0 + 5 * MIN): 5,
                             WindowKey("m", "default", T0 + 10 * MIN): 2}
    assert rows(proc, 1) == {WindowKey("m", "default", T0): 1}
    assert proc.counters(0).ok == {"m": 12}


def test_late_within_retention_lands_older_is_counted_late() -> None:
    proc = proc_with(0)
    proc.process([Record(0, 0, 0, ev(T0 + 20 * MIN)),
                  Record(0, 1, 0, ev(T0 + 6 * MIN)),  # window ends T0+10m, +10m = T0+20m: late
                  Record(0, 2, 0, ev(T0 + 11 * MIN))])  # window T0+10m open until T0+25m
    assert proc.counters(0).late == {"m": 1}
    assert rows(proc, 0) == {WindowKey("m", "default", T0 + 20 * MIN): 1,
                             WindowKey("m", "default", T0 + 10 * MIN): 1}


def test_records_at_or_below_applied_offset_are_skipped() -> None:
    proc = Processor(catalog())
    proc.assign(PartitionSnapshot(0, epoch=3, applied_offset=4, watermark_ms=T0))
    proc.process([Record(0, o, 0, ev(T0)) for o in range(8)])
    assert proc.counters(0).ok == {"m": 3}
    cp = proc.checkpoint(0)
    assert cp is not None and cp.applied_offset == 7 and cp.epoch == 3


def test_invalid_and_unknown_model_are_rejected_and_counted() -> None:
    proc = proc_with(0)
    rejected = proc.process([Record(0, 0, 0, b"{"), Record(0, 1, 0, ev(T0, model="other")),
                             Record(0, 2, 0, ev(T0, ts="nope")), Record(0, 3, 0, None)])
    assert [r.reason for r in rejected] == ["invalid_json", "unknown_model", "bad_ts", "empty"]
    assert [r.record.offset for r in rejected] == [0, 1, 2, 3]
    assert proc.counters(0).invalid == {"invalid_json": 1, "unknown_model": 1, "bad_ts": 1,
                                        "empty": 1}
    cp = proc.checkpoint(0)
    assert cp is not None and cp.applied_offset == 3 and not cp.windows


def test_unassigned_partition_is_ignored_and_revoke_forgets() -> None:
    proc = proc_with(0)
    proc.process([Record(5, 0, 0, ev(T0))])
    assert proc.partitions == [0] and proc.checkpoint(0) is None
    proc.revoke(0)
    assert proc.partitions == []


def test_flushed_clears_dirty_and_evicts_closed_windows() -> None:
    proc = proc_with(0)
    proc.process([Record(0, 0, 0, ev(T0))])
    cp = proc.checkpoint(0)
    assert cp is not None
    proc.flushed(cp)
    assert proc.checkpoint(0) is None and proc.open_windows(0) == 1
    proc.process([Record(0, 1, 0, ev(T0 + 60 * MIN))])
    cp2 = proc.checkpoint(0)
    assert cp2 is not None and list(cp2.windows) == [WindowKey("m", "default", T0 + 60 * MIN)]
    proc.flushed(cp2)
    assert proc.open_windows(0) == 1  # the first window closed and was evicted


def test_assign_restores_windows_and_drops_closed_ones() -> None:
    prof = DatasetProfile()
    prof.update({"x": [1.0]}, 1)
    key_open = WindowKey("m", "default", T0 + 30 * MIN)
    key_closed = WindowKey("m", "default", T0)
    proc = Processor(catalog())
    proc.assign(PartitionSnapshot(0, 2, 9, T0 + 31 * MIN, Counters(ok={"m": 2}),
                                  {key_open: prof.to_bytes(), key_closed: prof.to_bytes()}))
    assert proc.open_windows(0) == 1
    proc.process([Record(0, 10, 0, ev(T0 + 31 * MIN))])
    assert rows(proc, 0) == {key_open: 2}
    assert proc.counters(0).ok == {"m": 3}


def test_columnarise_probabilities_and_missing() -> None:
    events = [decode_event(json.dumps(e).encode()) for e in [
        {"model": "m", "features": {"a": 1}, "prediction": {"yes": 0.9, "no": 0.1},
         "latency_ms": 3.0},
        {"model": "m", "features": {"b": "x"}, "prediction": {"yes": 0.2, "maybe": 0.8}},
    ]]
    cols = columnarise(events)
    assert cols == {"a": [1, None], "b": [None, "x"], "prediction.yes": [0.9, 0.2],
                    "prediction.no": [0.1, None], "prediction.maybe": [None, 0.8],
                    "latency_ms": [3.0, None]}


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=10),
       st.integers(0, 10_000))
def test_result_does_not_depend_on_batch_boundaries(cuts: list[int], seed: int) -> None:
    rnd = random.Random(seed)
    recs = [Record(0, i, 0, ev(T0 + rnd.randrange(0, 40 * MIN)) if rnd.random() > 0.05 else b"?")
            for i in range(120)]
    whole = proc_with(0)
    whole.process(recs)
    pieces = proc_with(0)
    i = 0
    for n in cuts * 20:
        pieces.process(recs[i:i + n])
        cp = pieces.checkpoint(0)
        if cp is not None:
            pieces.flushed(cp)
        i += n
    pieces.process(recs[i:])
    assert pieces.counters(0) == whole.counters(0)
    assert pieces.applied_offset(0) == whole.applied_offset(0) == 119


def test_event_far_ahead_of_kafka_time_is_bad_ts_and_does_not_move_the_watermark() -> None:
    proc = proc_with(0)
    rejected = proc.process([Record(0, 0, T0, ev(T0 + 10 * 24 * 60 * MIN)),
                             Record(0, 1, T0, ev(T0 + 23 * 60 * MIN)),  # 23 h: was accepted
                             Record(0, 2, T0, ev(T0 + 4 * MIN)),  # within the 5 min skew
                             Record(0, 3, T0, ev(T0))])
    assert [r.reason for r in rejected] == ["bad_ts", "bad_ts"]
    assert proc.counters(0).ok == {"m": 2} and proc.counters(0).late == {}


def test_skew_is_a_setting() -> None:
    proc = Processor(catalog(), max_future_ms=60 * MIN)
    proc.assign(PartitionSnapshot(0, epoch=1))
    assert proc.process([Record(0, 0, T0, ev(T0 + 59 * MIN))]) == []


def two_models() -> ModelCatalog:
    return ModelCatalog({"m": ModelSpec("m", 5 * MIN, 10 * MIN),
                         "n": ModelSpec("n", 5 * MIN, 10 * MIN)}, accept_unknown=False)


def test_one_models_clock_does_not_make_another_models_events_late() -> None:
    proc = Processor(two_models())
    proc.assign(PartitionSnapshot(0, epoch=1))
    proc.process([Record(0, 0, T0 + 60 * MIN, ev(T0 + 60 * MIN, model="n")),
                  Record(0, 1, T0, ev(T0, model="m"))])  # "n" is an hour ahead; "m" is not late
    assert proc.counters(0).late == {}
    cp = proc.checkpoint(0)
    assert cp is not None
    assert cp.watermarks == {"m": T0, "n": T0 + 60 * MIN}
    assert cp.watermark_ms == T0 + 60 * MIN
    # reloaded from the checkpoint, the per-model watermarks still decide lateness
    again = Processor(two_models())
    again.assign(PartitionSnapshot(0, 2, cp.applied_offset, cp.watermark_ms, cp.counters,
                                   cp.windows, cp.watermarks))
    again.process([Record(0, 2, T0, ev(T0 + MIN, model="m"))])
    assert again.counters(0).late == {} and again.counters(0).ok == {"m": 2, "n": 1}


def test_state_without_model_watermarks_falls_back_to_the_partition_watermark() -> None:
    proc = Processor(two_models())
    proc.assign(PartitionSnapshot(0, 1, 5, T0 + 60 * MIN, Counters(ok={"m": 3})))
    proc.process([Record(0, 6, 0, ev(T0, model="m")), Record(0, 7, 0, ev(T0, model="n"))])
    assert proc.counters(0).late == {"m": 1}  # old state: m's watermark was the partition's
    assert proc.counters(0).ok == {"m": 3, "n": 1}


def test_models_beyond_the_limit_are_rejected_with_reason_limit() -> None:
    proc = Processor(ModelCatalog({"listed": ModelSpec("listed")}), limits=Limits(models=3))
    proc.assign(PartitionSnapshot(0, epoch=1))
    recs = [Record(0, i, 0, ev(T0, model=f"m{i}")) for i in range(6)]
    recs.append(Record(0, 6, 0, ev(T0, model="listed")))  # listed models always pass
    recs.append(Record(0, 7, 0, ev(T0, model="m1")))  # an admitted one still does
    rejected = proc.process(recs)
    assert [(r.reason, r.record.offset) for r in rejected] == [("limit", 3), ("limit", 4),
                                                               ("limit", 5)]
    assert proc.counters(0).ok == {"m0": 1, "m1": 2, "m2": 1, "listed": 1}
    assert proc.counters(0).invalid == {"limit": 3}


def test_columns_beyond_the_limit_are_rejected_with_reason_limit() -> None:
    proc = Processor(catalog(), limits=Limits(columns=12))
    proc.assign(PartitionSnapshot(0, epoch=1))
    recs = [Record(0, i, 0, ev(T0, features={f"f{i}_{j}": j for j in range(4)}))
            for i in range(4)]
    recs.append(Record(0, 4, 0, ev(T0, features={"f0_1": 1.0})))  # known columns pass
    recs.append(Record(0, 5, 0, ev(T0 + 5 * MIN, features={"g": 1.0})))  # a new window
    recs.append(Record(0, 6, 0, ev(T0, prediction={f"c{k}": 0.1 for k in range(20)})))
    rejected = proc.process(recs)
    assert [(r.reason, r.record.offset) for r in rejected] == [("limit", 2), ("limit", 3),
                                                               ("limit", 6)]
    windows = {k.start_ms: DatasetProfile.from_bytes(b) for k, b in
               proc.checkpoint(0).windows.items()}  # type: ignore[union-attr]
    assert len(windows[T0].columns) <= 12
    assert windows[T0].rows == 3 and windows[T0 + 5 * MIN].rows == 1


def test_versions_beyond_the_limit_are_rejected_and_a_closed_version_frees_its_place() -> None:
    proc = Processor(catalog(), limits=Limits(versions=3))
    proc.assign(PartitionSnapshot(0, epoch=1))
    recs = [Record(0, i, 0, ev(T0 + i, version=f"v{i}")) for i in range(5)]
    recs.append(Record(0, 5, 0, ev(T0 + 5 * MIN, version="v1")))  # a known version: new window
    rejected = proc.process(recs)
    assert [(r.reason, r.record.offset) for r in rejected] == [("limit", 3), ("limit", 4)]
    assert "3 versions" in rejected[0].message
    cp = proc.checkpoint(0)
    assert cp is not None and {k.version for k in cp.windows} == {"v0", "v1", "v2"}
    proc.flushed(cp)
    # once the watermark closes the old windows (end + retention), only v1 is open: room
    late = T0 + 5 * MIN + 15 * MIN
    assert proc.process([Record(0, 6, 0, ev(late, version="v1"))]) == []
    cp = proc.checkpoint(0)
    assert cp is not None
    proc.flushed(cp)
    assert proc.process([Record(0, 7 + i, 0, ev(late + i, version=f"w{i}"))
                         for i in range(2)]) == []


def test_a_record_that_breaks_processing_is_rejected_not_raised(
        monkeypatch: pytest.MonkeyPatch) -> None:
    proc = proc_with(0)

    def boom(model: str) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(proc, "_spec", boom)
    rejected = proc.process([Record(0, 0, 0, ev(T0))])
    assert [r.reason for r in rejected] == ["invalid_value"]
    assert proc.applied_offset(0) == 0 and proc.counters(0).invalid == {"invalid_value": 1}


def test_rebuild_after_aged_out_input_marks_each_models_first_window_incomplete() -> None:
    proc = Processor(two_models())
    proc.assign(PartitionSnapshot(0, epoch=1))
    proc.mark_incomplete(0)
    proc.process([Record(0, 0, 0, ev(T0 + 7 * MIN, model="m")),
                  Record(0, 1, 0, ev(T0 + 12 * MIN, model="m")),
                  Record(0, 2, 0, ev(T0 + 13 * MIN, model="n"))])
    proc.mark_incomplete(0, pending=False)  # the rebuild caught up
    proc.process([Record(0, 3, 0, ev(T0 + 14 * MIN, model="other"))])
    cp = proc.checkpoint(0)
    assert cp is not None
    assert cp.incomplete == {"m": T0 + 5 * MIN, "n": T0 + 10 * MIN}
    again = Processor(two_models())
    again.assign(PartitionSnapshot(0, 2, cp.applied_offset, cp.watermark_ms, cp.counters,
                                   cp.windows, cp.watermarks, incomplete=cp.incomplete))
    again.process([Record(0, 4, 0, ev(T0 + 14 * MIN, model="m"))])
    assert again.checkpoint(0).incomplete == cp.incomplete  # type: ignore[union-attr]
