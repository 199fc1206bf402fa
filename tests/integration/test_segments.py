"""Segments on real Redis: drift hidden in the pooled population is found in its segment,
and a segment column of 10,000 distinct values keeps state, evaluation and metric series
bounded by the roster (top-K), not by the cardinality."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import redis

from alerts.evaluator import Evaluator, ModelRules
from alerts.metrics import DriftlineCollector, Health
from alerts.shards import Owner
from sketches import segments
from sketches.reference import build_reference
from sketches.store import ReferenceStore
from streams.core import Processor, Record
from streams.reader import WindowReader
from streams.state import RedisStateStore
from streams.windows import ModelCatalog, ModelSpec

pytestmark = pytest.mark.integration
WINDOW_MS = 60_000
T0 = 1_800_000_000_000
SHARES = {"DE": 0.45, "FR": 0.3, "ES": 0.15, "IT": 0.05}  # the rest: rare values


def rows(rng: np.random.Generator, n: int, shift_it: float = 0.0, rare: int = 50,
         rare_share: float | None = None) -> dict[str, list[object]]:
    named = list(SHARES)
    shares = list(SHARES.values())
    if rare_share is not None:  # scale the named ones down so the rare values take this
        shares = [x * (1 - rare_share) / sum(shares) for x in shares]
    p = [*shares, 1 - sum(shares)]
    picks = rng.choice(len(p), n, p=p)
    country = [named[i] if i < len(named) else f"r{rng.integers(rare)}" for i in picks]
    income = rng.normal(50_000, 15_000, n)
    income[np.array(country) == "IT"] += shift_it * 15_000
    return {"country": country, "income": list(income), "age": list(rng.normal(40, 10, n))}


def events(cols: dict[str, list[object]], start_ms: int) -> list[bytes]:
    n = len(cols["income"])
    return [json.dumps({"model": "m", "ts": (start_ms + i * (WINDOW_MS // n)) / 1000,
                        "features": {k: v[i] for k, v in cols.items()},
                        "prediction": 0.5}).encode() for i in range(n)]


class Pipeline:
    """Events through the real processor and store, evaluated by the real evaluator."""

    def __init__(self, client: redis.Redis, prefix: str, roster: frozenset[str] | None) -> None:
        spec = ModelSpec("m", WINDOW_MS, 0, segments={} if roster is None else {"country": roster})
        self.proc = Processor(ModelCatalog({"m": spec}, accept_unknown=False))
        self.store = RedisStateStore(client, prefix=prefix, topic="t", horizon_ms=3_600_000)
        self.proc.assign(self.store.load(0))
        self.offset = 0

    def evaluator(self) -> Evaluator:
        """The real evaluator of model m over these windows (references under the prefix)."""
        client, prefix = self.store.client, self.store.prefix
        return Evaluator(client, prefix=prefix,
                         models=[ModelRules("m", measure_ms=WINDOW_MS, window_ms=WINDOW_MS)],
                         windows=WindowReader(self.store), references=ReferenceStore(client, prefix),
                         publishers=[], owner=Owner.static(client, prefix))

    def footprint(self, ev: Evaluator) -> tuple[int, int, int]:
        """(window keys, their Redis bytes, driftline_scope_drift series of ``ev``)."""
        client, prefix = self.store.client, self.store.prefix
        keys = list(client.scan_iter(f"{prefix}:v1:*:w:*"))
        memory = sum(int(client.memory_usage(k) or 0) for k in keys)
        series = sum(len(f.samples) for f in DriftlineCollector(ev.results, Health).collect()
                     if f.name == "driftline_scope_drift")
        return len(keys), memory, series

    def send(self, values: list[bytes], start_ms: int) -> None:
        recs = [Record(0, self.offset + i, start_ms + 1000, v) for i, v in enumerate(values)]
        self.offset += len(values)
        assert self.proc.process(recs) == []
        cp = self.proc.checkpoint(0)
        assert cp is not None
        self.store.write(cp)
        self.proc.flushed(cp)


def reference(rng: np.random.Generator, k: int) -> tuple[object, frozenset[str]]:
    train = rows(rng, 40_000)
    ref = build_reference([train], model="m", version="default", created="2026-12-01",
                          chunks=0)
    members = segments.roster(ref.profile, "country", k)
    ref.segments = segments.segment_profiles([train], {"country": members})
    return ref, members


def test_drift_in_one_segment_alerts_that_segment_only(
    redis_url: str, key_prefix: str
) -> None:
    rng = np.random.default_rng(21)
    client = redis.Redis.from_url(redis_url)
    ref, members = reference(rng, 4)
    assert members == frozenset(SHARES)
    ReferenceStore(client, key_prefix).put(ref, "m")  # type: ignore[arg-type]
    pipe = Pipeline(client, key_prefix, members)
    ev = pipe.evaluator()
    pipe.send(events(rows(rng, 20_000), T0), T0)
    assert ev.run_once(now=1.0) == []
    pipe.send(events(rows(rng, 20_000, shift_it=1.5), T0 + WINDOW_MS), T0 + WINDOW_MS)
    fired = ev.run_once(now=2.0)
    assert fired, "the segment's drift went unseen"
    assert {a.id.split("@", 1)[1] for a in fired} == {"country=IT"}, [a.id for a in fired]
    assert {a.column for a in fired} == {"income"}
    for a in fired:
        assert a.segment == {"column": "country", "value": "IT"}
        assert "segment country=IT" in a.summary
    (result,) = ev.results()
    assert result.columns["income"].verdict == "no_drift"  # the pooled population hides it
    assert result.scopes["@country=IT"].columns["income"].verdict == "drift"
    assert set(result.scopes) == {f"@country={c}" for c in [*SHARES, "other"]}
    assert result.traffic == {}  # one version: its segment windows are not versions
    exported = {(f.name, tuple(s.labels.values()), s.value)
                for f in DriftlineCollector(ev.results, Health).collect() for s in f.samples}
    scoped = {labels for name, labels, _ in exported if name == "driftline_scope_drift"}
    assert ("m", "@country=IT", "income", "psi") in scoped
    assert not any(name == "driftline_version_rows" for name, _, _ in exported)
    client.close()


def test_ten_thousand_segment_values_stay_bounded_by_the_roster(
    redis_url: str, key_prefix: str
) -> None:
    """State, evaluation time and /metrics series with a 10,000-value segment column grow
    with K, not with the cardinality: measured against the same stream with 50 values."""
    rng = np.random.default_rng(22)
    client = redis.Redis.from_url(redis_url)
    ref, members = reference(rng, 4)
    figures = {}
    for rare in (50, 10_000):
        prefix = f"{key_prefix}-{rare}"
        ReferenceStore(client, prefix).put(ref, "m")  # type: ignore[arg-type]
        pipe = Pipeline(client, prefix, members)
        ev = pipe.evaluator()
        data = rows(rng, 30_000, rare=rare, rare_share=0.8)
        assert len(set(data["country"])) > min(rare, 8000) * 0.9
        pipe.send(events(data, T0), T0)
        started = time.perf_counter()
        ev.run_once(now=1.0)
        seconds = time.perf_counter() - started
        keys, memory, series = pipe.footprint(ev)
        figures[rare] = (keys, memory, seconds, series)
        print(f"{rare} distinct values: {keys} window keys, {memory / 1024:.0f} KiB, "
              f"evaluation {seconds:.2f} s, {series} metric samples")
    (k50, m50, _, s50), (k10k, m10k, _, s10k) = figures[50], figures[10_000]
    assert k50 == k10k == 1 + len(members) + 1  # the whole, K segments, other
    assert m10k < 1.5 * m50  # the pooled "other" holds the extra values' counts
    assert s10k == s50 > 0  # per-segment series: K + 1 segments whatever the cardinality
    client.close()


def test_performance_per_segment_from_the_label_join(redis_url: str, key_prefix: str) -> None:
    """Predictions of a segmented model park their segments' version names; a joined
    label counts in the version's window and in its segment's: the evaluator checks each
    segment's accuracy on its own (here Italy's labels are mostly wrong)."""
    from alerts.performance import PerformanceConfig, evaluate
    from sketches.performance_rules import PerformanceRules
    from streams.join import JoinStore
    from streams.join_items import JoinItem
    from streams.windows import LabelSpec

    client = redis.Redis.from_url(redis_url)
    spec = LabelSpec(window_ms=WINDOW_MS, retention_ms=0, label_ttl_ms=3_600_000)
    join = JoinStore(client, prefix=key_prefix, specs={"m": spec}, key=b"k" * 16)
    rng = np.random.default_rng(23)
    preds, labels = [], []
    for i in range(4000):
        country = rng.choice(["DE", "IT"], p=[0.8, 0.2])
        seg = segments.segment_version("default", "country", segments.token(str(country)))
        right = rng.random() < (0.9 if country == "DE" else 0.5)
        preds.append(JoinItem(i, "m", f"id{i}", T0 + i, f"default,{seg}", "", "0.9"))
        labels.append(JoinItem(i, "m", f"id{i}", T0 + i + 500, label="1" if right else "0"))
    join.put("p", 0, preds)
    join.put("l", 0, labels)
    cfg = PerformanceConfig(min_labels=200, detector="none",
                            rules=PerformanceRules.parse({"accuracy": {"min": 0.8}}))
    out = evaluate(cfg, "m", join, end_ms=T0 + WINDOW_MS, measure_ms=WINDOW_MS,
                   reference=None, estimate=None, detector=None, key=b"k" * 16, now=1.0)
    by_id = {c.alert_id("m"): c for c in out.checks}
    assert by_id["m/-/accuracy"].breached is False  # the whole: ~0.82
    assert by_id["m/-/accuracy@country=IT"].breached is True  # Italy: ~0.5
    assert by_id["m/-/accuracy@country=DE"].breached is False
    assert by_id["m/-/accuracy@country=IT"].segment == ("country", "IT")
    assert out.result.labels == 4000  # the whole counts each outcome once
    italy = out.result.segments["@country=IT"]["accuracy"].value
    assert italy is not None and 0.4 < italy < 0.6
    client.close()


def test_health_figures_count_each_event_once_and_keep_versions_apart(
    redis_url: str, key_prefix: str
) -> None:
    """Segment windows hold the model's events again: the health reader leaves them out
    of volume and latency; two versions get their own latency figures."""
    from streams.health_source import StoredHealth

    client = redis.Redis.from_url(redis_url)
    pipe = Pipeline(client, key_prefix, frozenset({"DE"}))
    for w in range(3):
        start = T0 + w * WINDOW_MS
        values = [json.dumps({"model": "m", "version": "7" if i % 4 else "8",
                              "ts": (start + i * 10) / 1000, "prediction": 0.5,
                              "latency_ms": 10.0 if i % 4 else 300.0,
                              "features": {"country": "DE" if i % 2 else "FR"}}).encode()
                  for i in range(1000)]
        pipe.send(values, start)
    fig = StoredHealth(pipe.store).figures("m", window_ms=WINDOW_MS, windows=4, ratio_s=60,
                                          now=time.time())
    assert [w.rows for w in fig.windows] == [1000, 1000]  # not 1000 + the segments'
    last = fig.windows[-1]
    assert {v: n for v, (n, _) in last.versions.items()} == {"7": 750, "8": 250}
    assert last.versions["8"][1][0.5] == pytest.approx(0.3, rel=0.05)
    assert last.versions["7"][1][0.99] == pytest.approx(0.01, rel=0.05)
    client.close()
