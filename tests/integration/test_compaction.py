"""Compaction and tiers against a real redis-server: closed windows merged once across
partitions (memory no longer grows with partitions), rolled up into hourly and daily
records, measurements unchanged, nothing counted twice or lost, fenced."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from alerts.keys import AlertKeys
from alerts.shards import Fence
from driftline.commands.status import storage_line
from sketches.numeric import NumericProfile
from sketches.profile import DatasetProfile
from streams.compaction import Compactor, ModelSpan
from streams.core import Checkpoint
from streams.reader import WindowReader
from streams.state import RedisStateStore
from streams.tiers import BACKSTOP_MS, DAY_MS, HOUR_MS, Record, TierStore
from streams.windows import Counters, WindowKey
from tests.streamutil import T0

pytestmark = pytest.mark.integration
WINDOW, RETENTION, MEASURE = 300_000, 600_000, 1_800_000
SPAN = ModelSpan(WINDOW, RETENTION, MEASURE)


class Workers:
    """Partitions written through the real store, as workers checkpoint them."""

    def __init__(self, redis_url: str, prefix: str, partitions: int) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.store = RedisStateStore(self.client, prefix=prefix, topic="t", horizon_ms=MEASURE)
        self.epochs = {p: self.store.load(p).epoch for p in range(partitions)}
        self.gens = dict.fromkeys(range(partitions), 0)
        self.rng = np.random.default_rng(3)
        self.rows: dict[int, int] = {}  # window start -> rows written (all partitions)
        self.open: dict[tuple[int, int], DatasetProfile] = {}  # a worker's open windows

    def write(self, p: int, starts: list[int], mark: int, rows: int = 200,
              model: str = "m") -> None:
        """Add ``rows`` to each window of ``starts`` on ``p``, which stores the whole window
        (everything it took so far), as a worker's checkpoint does."""
        windows = {}
        for start in starts:
            prof = self.open.setdefault((p, start), DatasetProfile())
            prof.update({"x": self.rng.normal(0, 1, rows)}, rows)
            windows[WindowKey(model, "1", start)] = prof.to_bytes()
            self.rows[start] = self.rows.get(start, 0) + rows
        self.store.write(Checkpoint(p, self.epochs[p], self.gens[p], mark, Counters(),
                                    windows, {k: k.start_ms + WINDOW for k in windows},
                                    watermarks={model: mark}, generation=self.gens[p]))
        self.gens[p] += 1

    def reset(self, p: int) -> None:
        """The partition's state is lost and taken again (a rebuild starts from scratch)."""
        self.epochs[p] = self.store.reset(p).epoch
        self.gens[p] = 0
        self.open = {k: v for k, v in self.open.items() if k[0] != p}

    def partition_blobs(self) -> int:
        return sum(len(self.store.written(p, min_start_ms=0)) for p in self.epochs)


def rows_in(reader: WindowReader, measure: int) -> int:
    m = reader.measurement("m", measure)
    assert m is not None
    return sum(prof.rows for prof in m.versions.values())


def compactor(w: Workers, prefix: str, **kw: int) -> tuple[Compactor, Fence, int]:
    fence = Fence(w.client, prefix)
    tiers = TierStore(w.client, prefix=prefix, topic="t", **kw)
    return Compactor(w.store, tiers), fence, fence.next_token(0, "test")


def test_closed_windows_are_compacted_once_and_measured_the_same(redis_url: str,
                                                                 key_prefix: str) -> None:
    w = Workers(redis_url, key_prefix, 4)
    starts = [T0 + i * WINDOW for i in range(8)]
    end = starts[-1] + WINDOW - 1
    for p in range(4):
        w.write(p, starts, end)
    reader = WindowReader(w.store)
    before = reader.measurement("m", 8 * WINDOW)
    assert before is not None
    comp, _fence, token = compactor(w, key_prefix)
    stats = comp.run({"m": (SPAN, token)}, AlertKeys(key_prefix).fence)
    closed = [s for s in starts if s + WINDOW + RETENTION <= end]
    assert stats.compacted == len(closed) == 5 and stats.dropped == 4 * len(closed)
    assert w.partition_blobs() == 4 * (len(starts) - len(closed))  # open ones stay put
    records = TierStore(w.client, prefix=key_prefix, topic="t").records("m")
    assert {r.start_ms for r in records if r.tier == "w"} == set(closed)
    after = reader.measurement("m", 8 * WINDOW)
    assert after is not None
    assert after.versions["1"].rows == before.versions["1"].rows == sum(w.rows.values())
    x_before, x_after = before.versions["1"].columns["x"], after.versions["1"].columns["x"]
    assert isinstance(x_before, NumericProfile) and isinstance(x_after, NumericProfile)
    assert x_after.count == x_before.count
    # the same rows, merged in another order: quantiles agree within the rank error
    # (N(0, 1): a rank error e moves a central quantile by at most ~2.6 e)
    eps = x_after.rank_error + x_before.rank_error
    for got, want in zip(x_after.quantiles([0.1, 0.5, 0.9]), x_before.quantiles([0.1, 0.5, 0.9]),
                         strict=True):
        assert abs(got - want) <= 5 * eps
    # what the model's windows take is kept for `driftline status`
    usage = TierStore(w.client, prefix=key_prefix, topic="t").usage("m")
    assert usage is not None and usage["partition_blobs"] == 4 * 3
    assert usage["records"]["w"] == 5 and usage["record_bytes"] > 0
    assert "12 open-window blobs on 4 partitions" in storage_line(usage, 1)
    # a second pass finds nothing left to do
    again = comp.run({"m": (SPAN, token)}, AlertKeys(key_prefix).fence)
    assert (again.compacted, again.dropped) == (0, 0)


def test_closed_window_memory_does_not_grow_with_partitions(redis_url: str,
                                                            key_prefix: str) -> None:
    used, before = {}, {}
    for parts in (2, 8):
        prefix = f"{key_prefix}-{parts}"
        w = Workers(redis_url, prefix, parts)
        starts = [T0 + i * WINDOW for i in range(6)]
        end = starts[-1] + WINDOW + RETENTION  # every window closed
        for p in range(parts):
            w.write(p, starts, end, rows=3000)
        before[parts] = sum(int(w.client.memory_usage(w.store.window_key(p, k)) or 0)
                            for p in range(parts) for k in w.store.written(p, min_start_ms=0))
        comp, _fence, token = compactor(w, prefix)
        comp.run({"m": (SPAN, token)}, AlertKeys(prefix).fence)
        assert w.partition_blobs() == 0
        tiers = TierStore(w.client, prefix=prefix, topic="t")
        used[parts] = sum(int(w.client.memory_usage(tiers.blob_key("m", r)) or 0)
                          for r in tiers.records("m"))
        for k in w.client.scan_iter(match=f"{prefix}*"):
            w.client.delete(k)
    # partition copies grow with the partitions; one merged sketch per window does not
    # (a KLL sketch grows ~log n with the rows it summarises)
    assert before[8] > 3.5 * before[2], before
    assert used[8] < 1.3 * used[2], used


def test_late_newcomer_counted_and_rebuilt_copy_not_counted_twice(redis_url: str,
                                                                  key_prefix: str) -> None:
    w = Workers(redis_url, key_prefix, 3)
    starts = [T0 + i * WINDOW for i in range(4)]
    end = starts[-1] + WINDOW + RETENTION
    for p in (0, 1):
        w.write(p, starts, end)
    comp, _fence, token = compactor(w, key_prefix)
    comp.run({"m": (SPAN, token)}, AlertKeys(key_prefix).fence)
    reader = WindowReader(w.store)
    total = sum(w.rows.values())
    assert rows_in(reader, 4 * WINDOW + RETENTION) == total
    # partition 2 sees the model only now, with events of an already compacted window
    w.write(2, [starts[1]], T0 + WINDOW, rows=50)
    assert rows_in(reader, 4 * WINDOW + RETENTION) == total + 50
    # partition 0 loses its state and its rebuild replays the same events into a new blob
    w.reset(0)
    rebuilt = dict(w.rows)
    w.write(0, [starts[0]], end, rows=200)
    w.rows = rebuilt  # the replay is a copy of what the record holds
    assert rows_in(reader, 4 * WINDOW + RETENTION) == total + 50
    w.write(2, [], end)  # partition 2's watermark passes too: its blob is folded in
    stats = comp.run({"m": (SPAN, token)}, AlertKeys(key_prefix).fence)
    assert stats.compacted == 1 and w.partition_blobs() == 0
    assert rows_in(reader, 4 * WINDOW + RETENTION) == total + 50


def test_tiers_roll_up_by_event_time_and_keep_every_row(redis_url: str, key_prefix: str) -> None:
    w = Workers(redis_url, key_prefix, 2)
    day0 = T0 - T0 % DAY_MS
    starts = [day0 + i * WINDOW for i in range(3 * 24 * 12)]  # three days of windows
    comp, _fence, token = compactor(w, key_prefix, hourly_ms=DAY_MS, daily_ms=3 * DAY_MS)
    tiers = TierStore(w.client, prefix=key_prefix, topic="t")
    for day in range(3):  # workers write a day, the evaluator compacts
        chunk = starts[day * 288:(day + 1) * 288]
        mark = chunk[-1] + WINDOW
        for p in range(2):
            w.write(p, chunk, mark, rows=10)
        comp.run({"m": (SPAN, token)}, AlertKeys(key_prefix).fence)
    records = tiers.records("m")
    tiers_seen = {r.tier for r in records}
    assert tiers_seen == {"w", "h", "d"}, sorted(records)
    # the full-resolution windows cover at least what measurement needs
    wmark = starts[-1] + WINDOW
    w_starts = sorted(r.start_ms for r in records if r.tier == "w")
    assert w_starts[0] <= wmark - MEASURE - WINDOW
    assert all(r.start_ms + DAY_MS <= wmark - DAY_MS for r in records if r.tier == "d")
    # every row is in exactly one record or partition blob
    everything = WindowReader(w.store).measurement("m", 10 * DAY_MS)
    assert everything is not None and everything.versions["1"].rows == sum(w.rows.values())
    # the wall-clock backstop outlives each tier's keep setting (a 7-day TTL once dropped
    # daily records kept for 90 days, and hourly ones kept 8 days before their roll-up)
    lives = {"w": SPAN.keep_ms + HOUR_MS, "h": DAY_MS + HOUR_MS, "d": 3 * DAY_MS + DAY_MS}
    for r in records:
        ttl = int(w.client.pttl(tiers.blob_key("m", r)))  # type: ignore[arg-type]
        assert lives[r.tier] + BACKSTOP_MS - 60_000 < ttl <= lives[r.tier] + BACKSTOP_MS, r
    # a day later (event time) the oldest daily record expires
    for p in range(2):
        w.write(p, [wmark + DAY_MS], wmark + 2 * DAY_MS, rows=10)
    stats = comp.run({"m": (SPAN, token)}, AlertKeys(key_prefix).fence)
    assert stats.expired >= 1
    assert Record("d", "1", day0) not in tiers.records("m")


def test_a_replaced_evaluator_cannot_compact(redis_url: str, key_prefix: str) -> None:
    w = Workers(redis_url, key_prefix, 2)
    starts = [T0 + i * WINDOW for i in range(3)]
    for p in range(2):
        w.write(p, starts, starts[-1] + WINDOW + RETENTION)
    comp, fence, old = compactor(w, key_prefix)
    new = fence.next_token(0, "successor")
    assert fence.write("m", new, values={})  # the successor wrote the model
    stats = comp.run({"m": (SPAN, old)}, AlertKeys(key_prefix).fence)
    assert stats.compacted == 0 and stats.skipped.get("fenced") == 1
    assert w.partition_blobs() == 6


@pytest.mark.parametrize("seed", [1, 2])
def test_incremental_reader_matches_a_full_re_merge(redis_url: str, key_prefix: str,
                                                    seed: int) -> None:
    """Random rewrites, late windows, advancing watermarks and compaction passes: the
    long-lived reader (caches, kept merges) always measures what a fresh one does."""
    rng = np.random.default_rng(seed)
    w = Workers(redis_url, f"{key_prefix}-{seed}", 3)
    reader = WindowReader(w.store)
    comp, _fence, token = compactor(w, f"{key_prefix}-{seed}")
    mark = T0
    for _ in range(30):
        mark += int(rng.integers(0, 3)) * WINDOW
        p = int(rng.integers(0, 3))
        newest = mark - mark % WINDOW
        starts = sorted({newest - int(k) * WINDOW for k in rng.integers(0, 4, 2)})
        # only windows still open: a worker counts later events as late
        starts = [s for s in starts if s + WINDOW + RETENTION > mark]
        w.write(p, starts, mark, rows=int(rng.integers(20, 200)))
        if rng.random() < 0.3:
            comp.run({"m": (SPAN, token)}, AlertKeys(f"{key_prefix}-{seed}").fence)
        measure = int(rng.choice([MEASURE, 3 * WINDOW, 2 * DAY_MS]))
        got = reader.measurement("m", measure)
        want = WindowReader(w.store).measurement("m", measure)
        assert (got is None) == (want is None)
        if got is None or want is None:
            continue
        assert (got.start_ms, got.end_ms) == (want.start_ms, want.end_ms)
        assert {v: p.rows for v, p in got.versions.items()} == {
            v: p.rows for v, p in want.versions.items()}
        for v, prof in got.versions.items():
            a, b = prof.columns["x"], want.versions[v].columns["x"]
            assert isinstance(a, NumericProfile) and isinstance(b, NumericProfile)
            assert a.count == b.count
            eps = a.rank_error + b.rank_error
            for x, y in zip(a.quantiles([0.25, 0.5, 0.75]), b.quantiles([0.25, 0.5, 0.75]),
                            strict=True):
                assert abs(x - y) <= 5 * eps + 1e-9
    assert sum(w.rows.values()) >= rows_in(reader, 10 * DAY_MS)  # nothing counted twice
    assert rows_in(reader, 10 * DAY_MS) == sum(w.rows.values())  # nor lost
