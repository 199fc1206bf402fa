"""The whole pure path under generated hostile input (issue 9).

Generated events — huge and tiny numbers, integers beyond float range, deep nesting, long
and non-ASCII strings, thousands of features, duplicate keys, mixed types per column,
random and far-future timestamps, garbage bytes — go through ``process`` → ``checkpoint``
→ bytes → (crash or not) → load → merge → compare. Asserted: nothing raises, every record
is counted exactly once (ok + late + invalid = records) across crashes, stored bytes
always load and hold exactly the ok rows, and the comparison with a reference works.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sketches.drift import compare_profiles
from sketches.profile import DatasetProfile
from sketches.rules import DriftRules
from streams.core import Checkpoint, PartitionSnapshot, Processor, Record
from streams.events import REASONS
from streams.windows import Counters, Limits, ModelCatalog, ModelSpec, WindowKey

MIN = 60_000
T0 = 1_795_420_800_000

numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-1e-300, max_value=1e-300),
    st.sampled_from([1.7976931348623157e308, -1.7976931348623157e308, 5e-324, 0.0, -0.0]),
    st.integers(min_value=-(2**70), max_value=2**70),
)
strings = st.one_of(st.text(max_size=12), st.text(alphabet="äöü€𝄞字", min_size=1, max_size=4),
                    st.just("x" * 5000))
raw_numbers = st.sampled_from(["1" + "0" * 400, "-1" + "0" * 400, "1e400", "NaN", "Infinity",
                               "1" + "0" * 5000, "1e-400", "-0"])
scalars = st.one_of(numbers, strings, st.booleans(), st.none())
nested = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=8)
names = st.one_of(st.sampled_from(["age", "income", "country", "flag", "ü-name", "a" * 300]),
                  st.text(max_size=6))


def _feature_text(draw: st.DrawFn) -> str:
    """A JSON object text for ``features`` (duplicate keys and raw literals possible)."""
    kind = draw(st.sampled_from(["normal"] * 8 + ["wide", "raw", "dupes", "nested"]))
    if kind == "wide":  # thousands of features
        n = draw(st.sampled_from([50, 1200]))
        return json.dumps({f"f{i}": float(i) for i in range(n)})
    pairs = draw(st.lists(st.tuples(names, scalars), max_size=6))
    parts = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in pairs]
    if kind == "raw":
        parts.append(f'"age": {draw(raw_numbers)}')
    elif kind == "dupes":
        parts += ['"age": 1', '"age": "one"']
    elif kind == "nested":
        parts.append(f'"deep": {json.dumps(draw(nested))}')
    return "{" + ", ".join(parts) + "}"


@st.composite
def record_value(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["event"] * 8 + ["garbage", "deep", "empty"]))
    if kind == "garbage":
        return draw(st.binary(max_size=40))
    if kind == "deep":
        return b'{"model": "m1", "features": {}, "prediction": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    if kind == "empty":
        return b""
    model = draw(st.sampled_from(["m1"] * 6 + ["m2", "m3", "bad model", "m|x"]))
    ts_kind = draw(st.sampled_from(["near"] * 8 + ["future", "past", "text", "none"]))
    ts: object = {
        "near": (T0 + draw(st.integers(-90 * MIN, 90 * MIN))) / 1000,
        "future": (T0 + draw(st.integers(6 * MIN, 10**12))) / 1000,
        "past": draw(st.floats(allow_nan=False, allow_infinity=False)),  # 1e308 too
        "text": draw(st.sampled_from(["2026-11-23T08:00:00Z", "soon", "2026-11-23T08:00:00"])),
        "none": None,
    }[ts_kind]
    prediction = draw(st.one_of(numbers, strings,
                                st.dictionaries(st.text(max_size=3), numbers, max_size=4)))
    body = (f'{{"model": {json.dumps(model)}, "features": {_feature_text(draw)}, '
            f'"prediction": {json.dumps(prediction)}, "ts": {json.dumps(ts)}, '
            f'"version": {json.dumps(draw(st.sampled_from(["1"] * 6 + ["2", "v|2"])))}}}')
    return body.encode("utf-8", "surrogatepass")


@dataclass
class Store:
    """What the Redis store keeps per partition, reduced to plain data (pure test double
    of :class:`streams.state.RedisStateStore`'s semantics: windows overwrite by key)."""

    epoch: int = 0
    applied: int = -1
    watermark: int = -(1 << 62)
    watermarks: dict[str, int] = field(default_factory=dict)
    counters: Counters = field(default_factory=Counters)
    windows: dict[WindowKey, bytes] = field(default_factory=dict)

    def load(self) -> PartitionSnapshot:
        self.epoch += 1
        return PartitionSnapshot(0, self.epoch, self.applied, self.watermark,
                                 self.counters.copy(), dict(self.windows), dict(self.watermarks))

    def write(self, cp: Checkpoint, lag: int | None = None) -> None:
        assert cp.epoch == self.epoch
        self.applied, self.watermark = cp.applied_offset, cp.watermark_ms
        self.watermarks = dict(cp.watermarks)
        self.counters = cp.counters.copy()
        self.windows.update(cp.windows)


CATALOG = ModelCatalog({"m1": ModelSpec("m1", 5 * MIN, 30 * MIN)}, accept_unknown=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(values=st.lists(record_value(), min_size=1, max_size=60),
       cuts=st.lists(st.integers(1, 15), min_size=1, max_size=8),
       crashes=st.lists(st.booleans(), min_size=1, max_size=8))
def test_hostile_stream_is_counted_once_and_stored_state_always_loads(
        values: list[bytes], cuts: list[int], crashes: list[bool]) -> None:
    records = [Record(0, i, T0, v) for i, v in enumerate(values)]
    store = Store()
    limits = Limits(models=1, columns=1000)  # m1 is listed; m2 or m3, not both
    proc = Processor(CATALOG, limits=limits)
    proc.assign(store.load())
    rejected_offsets: set[int] = set()
    pos, step = 0, 0
    while pos < len(records):
        n = cuts[step % len(cuts)]
        crash = step < len(crashes) and crashes[step]  # at most len(crashes) crashes
        step += 1
        batch = records[pos:pos + n]
        out = proc.process(batch)
        rejected_offsets |= {r.record.offset for r in out}
        bugs = [r.message for r in out if "could not be processed" in r.message]
        assert not bugs, bugs  # a rejection from a caught bug is not a payload's reason
        if crash:  # killed before the checkpoint: resume from the store, replay
            proc = Processor(CATALOG, limits=limits)
            proc.assign(store.load())
            pos = store.applied + 1
            continue
        cp = proc.checkpoint(0)
        if cp is not None:
            store.write(checked_blobs(cp))
            proc.flushed(cp)
        pos += n
    cp = proc.checkpoint(0)
    if cp is not None:
        store.write(cp)
    c = store.counters
    assert store.applied == len(records) - 1
    assert c.total_ok + c.total_late + c.total_invalid == len(records)
    assert set(c.invalid) <= set(REASONS)
    assert c.total_invalid == len(rejected_offsets)
    profiles = {k: DatasetProfile.from_bytes(b) for k, b in store.windows.items()}
    for model in c.ok:
        rows = sum(p.rows for k, p in profiles.items() if k.model == model)
        assert rows == c.ok[model], model
    merged = DatasetProfile()
    for p in profiles.values():
        merged.merge(p)
    merged = DatasetProfile.from_bytes(merged.to_bytes())
    rng = np.random.default_rng(0)
    ref = DatasetProfile()
    ref.update({"age": rng.normal(40, 10, 500), "country": rng.choice(["DE", "FR"], 500)}, 500)
    report = compare_profiles(ref, merged, DriftRules(min_count=1))
    assert set(report.columns) >= set(merged.columns)
    for col in report.columns.values():
        assert col.verdict in ("drift", "no_drift", "insufficient_data")


def checked_blobs(cp: Checkpoint) -> Checkpoint:
    """Every window blob a checkpoint carries loads back as it was written."""
    for blob in cp.windows.values():
        assert DatasetProfile.from_bytes(blob).to_bytes() == blob
    return cp
