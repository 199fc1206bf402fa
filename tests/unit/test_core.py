"""The processor core without Kafka or Redis."""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from sketches.profile import DatasetProfile
from streams.core import PartitionSnapshot, Processor, Record, columnarise
from streams.events import decode_event
from streams.windows import Counters, ModelCatalog, ModelSpec, WindowKey

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
                             Record(0, 1, T0, ev(T0 + 23 * 60 * MIN)),
                             Record(0, 2, T0, ev(T0))])
    assert [r.reason for r in rejected] == ["bad_ts"]
    assert proc.counters(0).ok == {"m": 1} and proc.counters(0).late == {"m": 1}
