"""Trailing production baselines on real Redis: windows written through the real store as
two workers checkpoint them, compacted and rolled up by the evaluator's own housekeeping,
the Evaluator driven directly with an injected clock (issue 14, "Reference choices")."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pytest
import redis

from alerts.evaluator import Evaluator, ModelRules, load_results
from alerts.message import Alert
from alerts.shards import Owner
from sketches.baseline import ReferenceChoice
from sketches.profile import DatasetProfile
from sketches.reference import build_reference
from sketches.store import ReferenceStore
from streams.baseline import ReferenceChoices, TrailingReferences
from streams.compaction import Compactor
from streams.core import Checkpoint
from streams.reader import WindowReader
from streams.simulate import generate_events
from streams.simulate_spec import NumericFeature, SimModel, SimSpec, parse_drift
from streams.state import RedisStateStore
from streams.tiers import DAY_MS, HOUR_MS, TierStore
from streams.windows import Counters, WindowKey
from tests.streamutil import T0

pytestmark = pytest.mark.integration
WINDOW, RETENTION, MEASURE = 600_000, 600_000, HOUR_MS
ROWS = 1000  # per window, half on each partition
MODEL = "m"


class Production:
    """One model's production windows, checkpointed through the real store by the owners
    of partitions 0 and 1 (one checkpoint per partition and hour)."""

    def __init__(self, client: redis.Redis, prefix: str, seed: int = 5) -> None:
        self.store = RedisStateStore(client, prefix=prefix, topic="predictions",
                                     horizon_ms=MEASURE)
        self.epochs = {p: self.store.load(p).epoch for p in (0, 1)}
        self.gens = dict.fromkeys((0, 1), 0)
        self.rng = np.random.default_rng(seed)

    def hours(self, start_ms: int, end_ms: int, mean: Callable[[int], float]) -> None:
        """Write every window in [start_ms, end_ms); x ~ N(mean(window start), 1), y ~ N(0, 1)."""
        n = ROWS // 2
        self.write(start_ms, end_ms, lambda w, _p: {"x": self.rng.normal(mean(w), 1.0, n),
                                                    "y": self.rng.normal(0.0, 1.0, n)})

    def write(self, start_ms: int, end_ms: int,
              rows: Callable[[int, int], Mapping[str, Sequence[Any]]]) -> None:
        """Write every window in [start_ms, end_ms): ``rows(w, p)`` are the columns of
        window ``w`` on partition ``p``."""
        for hour in range(start_ms, end_ms, HOUR_MS):
            for p in (0, 1):
                windows = {}
                for w in range(hour, min(hour + HOUR_MS, end_ms), WINDOW):
                    columns = rows(w, p)
                    prof = DatasetProfile()
                    prof.update(columns, len(next(iter(columns.values()))))
                    windows[WindowKey(MODEL, "1", w)] = prof.to_bytes()
                mark = min(hour + HOUR_MS, end_ms) - 1
                self.store.write(Checkpoint(
                    p, self.epochs[p], self.gens[p], mark, Counters(), windows,
                    {k: k.start_ms + WINDOW for k in windows}, watermarks={MODEL: mark},
                    generation=self.gens[p]))
                self.gens[p] += 1


class Sink:
    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def publish(self, alerts: Sequence[Alert]) -> None:
        self.sent.extend(alerts)


def evaluator(client: redis.Redis, prefix: str, prod: Production, references: object,
              choice: ReferenceChoice | None = None, *, compact: bool = False,
              hourly_ms: int = 7 * DAY_MS) -> Evaluator:
    """An evaluator of MODEL with its alert state under ``prefix``; ``compact``: it also
    runs the housekeeping (compaction, roll-ups) of the production windows."""
    store = prod.store
    return Evaluator(
        client, prefix=prefix,
        models=[ModelRules(MODEL, measure_ms=MEASURE, window_ms=WINDOW, retention_ms=RETENTION,
                           reference=choice or ReferenceChoice())],
        windows=WindowReader(store), references=references,  # type: ignore[arg-type]
        publishers=[Sink()], owner=Owner.static(client, prefix, holder=prefix),
        housekeeping=Compactor(store, TierStore(client, prefix=store.prefix, topic=store.topic,
                                                hourly_ms=hourly_ms)) if compact else None)


def fired(alerts: Sequence[Alert]) -> set[str | None]:
    return {a.column for a in alerts if a.state == "firing"}


def trailing(prod: Production, choice: ReferenceChoice, cache: int = 32 << 20
             ) -> TrailingReferences:
    return TrailingReferences(prod.store, {MODEL: (choice, WINDOW)}, window_cache_bytes=cache)


def test_trailing_window_catches_a_sudden_shift(redis_url: str, key_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    prod = Production(client, key_prefix)
    choice = ReferenceChoice("trailing", span_ms=DAY_MS)
    base = trailing(prod, choice)
    ev = evaluator(client, key_prefix, prod, ReferenceChoices(ReferenceStore(client, key_prefix),
                                                              base), choice, compact=True)
    prod.hours(T0, T0 + 24 * HOUR_MS, lambda _w: 0.0)
    assert ev.run_once(now=1.0, compact=True) == []  # (then compacts and rolls up)
    [result] = load_results(client, key_prefix, [MODEL])
    assert result.status != "no_reference"
    assert base.builds == 1
    started = time.perf_counter()
    for i in range(5):  # the baseline range has not moved: nothing is rebuilt or read
        assert ev.run_once(now=2.0 + i, dirty=[MODEL]) == []
    cached_s = (time.perf_counter() - started) / 5
    assert base.builds == 1
    usage = TierStore(client, prefix=key_prefix, topic="predictions").usage(MODEL)
    assert usage is not None and usage["records"]["h"] > 0  # the baseline now spans roll-ups

    prod.hours(T0 + 24 * HOUR_MS, T0 + 25 * HOUR_MS, lambda _w: 1.0)  # x jumps by one sd
    alerts = ev.run_once(now=10.0, dirty=[MODEL])
    assert fired(alerts) == {"x"}
    assert base.builds == 2  # the range moved by an hour: one rebuild
    base_rows = base.baseline(MODEL, T0 + 24 * HOUR_MS - 1)
    assert sum(p.rows for p in base_rows.versions.values()) == 24 * 6 * ROWS  # nothing twice

    # the cost of building a trailing reference (24 h of 10-minute windows, compacted and
    # rolled up as the evaluator left them): cold, and after the range slid one window
    cold = trailing(prod, choice)
    t = time.perf_counter()
    assert cold.get(MODEL, "1", T0 + 24 * HOUR_MS - 1) is not None
    cold_s, cold_reads = time.perf_counter() - t, cold.reads
    t = time.perf_counter()
    assert cold.get(MODEL, "1", T0 + 24 * HOUR_MS - 1 + WINDOW) is not None
    slide_s, slide_reads = time.perf_counter() - t, cold.reads
    uncached = trailing(prod, choice, cache=0)
    uncached.get(MODEL, "1", T0 + 24 * HOUR_MS - 1)
    t = time.perf_counter()
    uncached.get(MODEL, "1", T0 + 24 * HOUR_MS - 1 + WINDOW)
    slide0_s, slide0_reads = time.perf_counter() - t, uncached.reads
    print(f"\ntrailing 24h baseline: cold build {cold_s * 1000:.1f} ms ({cold_reads} blobs), "
          f"slide by one window {slide_s * 1000:.1f} ms ({slide_reads} blobs; without the "
          f"item cache {slide0_s * 1000:.1f} ms, {slide0_reads} blobs), cached evaluation "
          f"{cached_s * 1000:.1f} ms")
    assert slide_reads < cold_reads


SIM_RATE = 1.0  # simulator events per second of event time: 600 a window, 300 a partition
SIM_ROWS = round(SIM_RATE * WINDOW / 1000)


def cycling(origin_ms: int) -> SimSpec:
    """The simulator's model MODEL, x and y ~ N(0, 1), x's mean following its 24 h cycle
    of 1 sd from its first event at ``origin_ms``."""
    model = SimModel(MODEL, "1", (NumericFeature("x", 0.0, 1.0), NumericFeature("y", 0.0, 1.0)),
                     ())
    return SimSpec((model,), drifts=(parse_drift("x:cycle=1sd/24h@0s"),), events_per_s=SIM_RATE,
                   null_ratio=0.0, ts_format="epoch")


def simulated(spec: SimSpec, origin_ms: int, start_ms: int, end_ms: int, seed: int
              ) -> dict[tuple[int, int], dict[str, list[Any]]]:
    """The features of the simulator's events in [start_ms, end_ms), drawn from there on,
    as columns per (window start, partition = event index mod 2), windowed by their ts."""
    timeline = spec.timeline()
    first = timeline.count_before((start_ms - origin_ms) / 1000)
    n = timeline.count_before((end_ms - origin_ms) / 1000) - first
    out: dict[tuple[int, int], dict[str, list[Any]]] = {}
    events = generate_events(spec, n, origin_ms / 1000, seed, first=first)
    for i, event in enumerate(events, first):
        ts_ms = round(event["ts"] * 1000)
        assert start_ms <= ts_ms < end_ms
        key = (ts_ms - (ts_ms - start_ms) % WINDOW, i % 2)
        columns = out.setdefault(key, {name: [] for name in event["features"]})
        for name, value in event["features"].items():
            columns[name].append(value)
    return out


def test_same_hours_last_week_do_not_alert_on_a_seasonal_cycle(redis_url: str,
                                                               key_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    prod = Production(client, key_prefix)
    now = T0 + 7 * DAY_MS  # the measurement: [now, now + 1h), the top of the cycle
    # the simulator's cycle (a sine) peaks a quarter period after its start: start it so
    # that its top is at the measurement's midpoint, before the training day begins
    origin = now + HOUR_MS // 2 - DAY_MS // 4 - 8 * DAY_MS
    spec = cycling(origin)

    def write(start_ms: int, end_ms: int) -> None:
        windows = simulated(spec, origin, start_ms, end_ms, seed=5)
        prod.write(start_ms, end_ms, lambda w, p: windows[(w, p)])

    # the training reference: a full day of the cycle (other draws: another seed)
    batches = simulated(spec, origin, T0 - DAY_MS, T0, seed=11).values()
    refs = ReferenceStore(client, key_prefix)
    refs.put(build_reference(batches, model=MODEL, version="default",
                             created="2026-11-16T00:00:00Z", chunks=0), MODEL)
    # same hours last week: span = the measurement, offset = 7 d - the measurement
    choice = ReferenceChoice("trailing", span_ms=HOUR_MS, offset_ms=7 * DAY_MS - HOUR_MS)
    base = trailing(prod, choice)
    # hourly roll-ups kept 8 d: the baseline (7 d back) is made of whole hourly records
    ev = evaluator(client, key_prefix, prod, ReferenceChoices(refs, base), choice, compact=True,
                   hourly_ms=8 * DAY_MS)
    write(now - 7 * DAY_MS - 12 * HOUR_MS, now - 7 * DAY_MS + 12 * HOUR_MS)
    ev.run_once(now=1.0, compact=True)  # last week: compacted and rolled up meanwhile
    write(now - 6 * HOUR_MS, now + HOUR_MS)  # today, up to the top of the cycle
    alerts = ev.run_once(now=2.0, compact=True)
    [result] = load_results(client, key_prefix, [MODEL])
    assert result.status == "ok" and alerts == [], (result, alerts)
    built = base.baseline(MODEL, now - 1)  # the measurement starts 1 h before its watermark
    assert sum(p.rows for p in built.versions.values()) == 6 * SIM_ROWS
    records = TierStore(client, prefix=key_prefix, topic="predictions").records(MODEL)
    assert any(r.tier == "h" and now - 7 * DAY_MS - HOUR_MS <= r.start_ms < now - 7 * DAY_MS
               for r in records)

    # the same windows against the training reference (the whole cycle): x drifts
    training = evaluator(client, f"{key_prefix}-training", prod, refs)
    assert fired(training.run_once(now=3.0)) == {"x"}


def test_an_excluded_range_is_not_used_as_baseline(redis_url: str, key_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    prod = Production(client, key_prefix)
    holiday = (T0 + 2 * HOUR_MS + 5 * 60_000, T0 + 4 * HOUR_MS)  # not on the window grid
    prod.hours(T0, T0 + 7 * HOUR_MS, lambda w: 2.0 if holiday[0] - WINDOW < w < holiday[1]
               else 0.0)
    refs = ReferenceStore(client, key_prefix)
    plain = ReferenceChoice("trailing", span_ms=6 * HOUR_MS)
    choice = ReferenceChoice("trailing", span_ms=6 * HOUR_MS, exclude=(holiday,))
    base = trailing(prod, choice)
    ev = evaluator(client, key_prefix, prod, ReferenceChoices(refs, base), choice)
    assert ev.run_once(now=1.0) == []
    [result] = load_results(client, key_prefix, [MODEL])
    assert result.status == "ok"
    # the windows overlapping the holiday are left out whole (12 of the 36), no others
    built = base.baseline(MODEL, T0 + 6 * HOUR_MS - 1)
    assert built.left_out == {"excluded": 12} and built.items == 24
    assert sum(p.rows for p in built.versions.values()) == 24 * ROWS

    # without the exclusion the holiday is part of the baseline: x "drifts" back to normal
    other = evaluator(client, f"{key_prefix}-plain", prod,
                      ReferenceChoices(refs, trailing(prod, plain)), plain)
    assert fired(other.run_once(now=1.0)) == {"x"}

    # too few rows in the baseline: "no reference", never "no drift"
    scarce = ReferenceChoice("trailing", span_ms=6 * HOUR_MS, exclude=(holiday,),
                             min_rows=25 * ROWS)
    third = evaluator(client, f"{key_prefix}-scarce", prod,
                      ReferenceChoices(refs, trailing(prod, scarce)), scarce)
    assert third.run_once(now=1.0) == []
    [result] = load_results(client, f"{key_prefix}-scarce", [MODEL])
    assert result.status == "no_reference"
