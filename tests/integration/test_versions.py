"""Model versions on real Redis + Kafka: never merged, each against its own reference, and
the canary comparison of one version with another in the same window."""

from __future__ import annotations

import numpy as np
import pytest
import redis
from rich.console import Console

from alerts.evaluator import Evaluator, ModelRules
from alerts.shards import Owner
from driftline.commands.status import render
from sketches.drift import compare_profiles
from sketches.profile import DatasetProfile
from sketches.reference import build_reference
from sketches.rules import DEFAULT_THRESHOLDS, DriftRules
from sketches.store import ReferenceStore
from sketches.types import ColumnType
from streams.core import Checkpoint
from streams.reader import WindowReader
from streams.state import RedisStateStore
from streams.windows import Counters, WindowKey
from tests.integration.test_evaluator import alert_publisher, read_alerts

pytestmark = pytest.mark.integration
WINDOW_MS = 10_000
T0 = 1_800_000_000_000
SCORES = {"7": (2.0, 5.0), "8": (5.0, 2.0)}  # the two versions score very differently


def batch(rng: np.random.Generator, n: int, version: str, shift: float = 0.0
          ) -> dict[str, list[object]]:
    a, b = SCORES[version]
    return {"age": list(rng.normal(40, 10, n)),
            "prediction": list(np.clip(rng.beta(a, b, n) + shift, 0, 1))}


class Stream:
    """Windows of model m on partition 0, checkpointed as a worker does."""

    def __init__(self, store: RedisStateStore) -> None:
        self.store = store
        self.epoch = store.load(0).epoch
        self.offset = 0

    def put(self, start_ms: int, rows: dict[str, dict[str, list[object]]]) -> None:
        windows, ends = {}, {}
        for version, cols in rows.items():
            prof = DatasetProfile()
            n = len(next(iter(cols.values())))
            prof.update(cols, n)
            key = WindowKey("m", version, start_ms)
            windows[key], ends[key] = prof.to_bytes(), start_ms + WINDOW_MS
            self.offset += n
        gen = self.store.read(0, min_start_ms=1 << 62).generation
        self.store.write(Checkpoint(0, self.epoch, self.offset, start_ms + WINDOW_MS - 1,
                                    Counters(ok={"m": self.offset}), windows, ends,
                                    generation=gen))


def setup(redis_url: str, key_prefix: str, rng: np.random.Generator
          ) -> tuple[redis.Redis, ReferenceStore, RedisStateStore]:
    client = redis.Redis.from_url(redis_url)
    refs = ReferenceStore(client, key_prefix)
    for version in SCORES:
        refs.put(build_reference([batch(rng, 20_000, version)], model="m", version=version,
                                 created="2026-12-01T00:00:00Z", chunks=0), "m", version)
    return client, refs, RedisStateStore(client, prefix=key_prefix, topic="predictions",
                                         horizon_ms=3_600_000)


def test_a_moving_traffic_split_is_not_drift(
    kafka_bootstrap: str, redis_url: str, make_topic, key_prefix: str  # type: ignore[no-untyped-def]
) -> None:
    rng = np.random.default_rng(3)
    client, refs, store = setup(redis_url, key_prefix, rng)
    topic = make_topic(1)
    publisher = alert_publisher(kafka_bootstrap, topic)
    ev = Evaluator(client, prefix=key_prefix, models=[ModelRules("m", measure_ms=WINDOW_MS)],
                   windows=WindowReader(store), references=refs, publishers=[publisher],
                   owner=Owner.static(client, key_prefix))
    stream = Stream(store)
    fired = []
    for i, share8 in enumerate((0.1, 0.2, 0.35, 0.5)):
        n8 = int(10_000 * share8)
        stream.put(T0 + i * WINDOW_MS, {"7": batch(rng, 10_000 - n8, "7"),
                                         "8": batch(rng, n8, "8")})
        fired += ev.run_once(now=float(i))
        if i == 3:
            (result,) = ev.results()
            assert result.traffic == {"7": 5000, "8": 5000}
            assert set(result.scopes) == {"@version=8"} and result.version == "7"
            assert result.status == "ok" and result.scopes["@version=8"].status == "ok"
            console = Console(width=200, record=True)
            console.print(render([result]))
            shown = console.export_text()
            assert "traffic by version: 7 50.0% (n=5000), 8 50.0% (n=5000)" in shown
            assert "m (version 7)" in shown and "m version 8 — ok" in shown
    assert fired == [], [a.id for a in fired]
    # what merging the versions would have said about the last window: drift
    merged = DatasetProfile()
    merged.update(batch(rng, 5000, "7"), 5000)
    merged.update(batch(rng, 5000, "8"), 5000)
    ref7 = refs.get("m", "7")
    assert ref7 is not None
    assert "prediction" in compare_profiles(ref7, merged, DriftRules()).drifted
    assert read_alerts(kafka_bootstrap, topic) == []
    publisher.close()
    client.close()


ONE_NUMERIC_RULE = DriftRules(thresholds={**DEFAULT_THRESHOLDS,
                                          ColumnType.NUMERIC: {"wasserstein": 0.1}})


def test_canary_with_shifted_scores_raises_one_alert_naming_both_versions(
    kafka_bootstrap: str, redis_url: str, make_topic, key_prefix: str  # type: ignore[no-untyped-def]
) -> None:
    rng = np.random.default_rng(4)
    client, refs, store = setup(redis_url, key_prefix, rng)
    # both versions were trained alike: version 8's own reference is version 7's data
    refs.put(build_reference([batch(rng, 20_000, "7")], model="m", version="8",
                             created="2026-12-01T00:00:00Z", chunks=0), "m", "8")
    topic = make_topic(1)
    publisher = alert_publisher(kafka_bootstrap, topic)
    ev = Evaluator(client, prefix=key_prefix,
                   models=[ModelRules("m", measure_ms=WINDOW_MS, compare_versions=("7", "8"),
                                      rules=ONE_NUMERIC_RULE)],
                   windows=WindowReader(store), references=refs, publishers=[publisher],
                   owner=Owner.static(client, key_prefix))
    stream = Stream(store)
    stream.put(T0, {"7": batch(rng, 8000, "7"), "8": batch(rng, 2000, "7")})
    assert ev.run_once(now=1.0) == []  # the canary behaves like the baseline
    stream.put(T0 + WINDOW_MS, {"7": batch(rng, 8000, "7"), "8": batch(rng, 2000, "7", 0.2)})
    fired = ev.run_once(now=2.0)
    assert fired, "the shifted canary raised nothing"
    canary = [a for a in fired if a.compare_to == "7"]
    # one alert per breached rule: with one numeric rule, one canary alert
    assert [(a.column, a.metric) for a in canary] == [("prediction", "wasserstein")], canary
    for a in canary:
        assert a.id.startswith("m/prediction/") and a.id.endswith("@version=8@vs=7")
        assert a.version == "8" and "version 8 vs 7" in a.summary and a.state == "firing"
    # the same shift against version 8's own reference is drift too — but version 7 is quiet
    assert not [a for a in fired if a.version == "7"]
    (result,) = ev.results()
    assert "@version=8@vs=7" in result.scopes
    assert result.scopes["@version=8@vs=7"].columns["prediction"].verdict == "drift"
    messages = read_alerts(kafka_bootstrap, topic)
    assert {m["id"] for m in messages} == {a.id for a in fired}
    publisher.close()
    client.close()
