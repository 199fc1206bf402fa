"""The evaluator on real Redis + Kafka: fires once, resolves once, survives a new leader."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from alerts.evaluator import Evaluator, ModelRules
from alerts.message import decode
from alerts.publish import KafkaAlertPublisher
from alerts.shards import Fence, Owner, ShardGroup
from sketches.profile import DatasetProfile
from sketches.reference import build_reference
from sketches.rules import DriftRules
from sketches.store import ReferenceStore
from streams.core import Checkpoint
from streams.produce import producer_config
from streams.reader import WindowReader
from streams.state import RedisStateStore
from streams.windows import Counters, WindowKey

pytestmark = pytest.mark.integration
WINDOW_MS = 10_000


def batch(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, list[object]]:
    return {
        "age": list(rng.normal(40, 10, n)),
        "income": list(rng.normal(50_000 + shift * 15_000, 15_000, n)),
        "country": list(rng.choice(["DE", "FR", "IT"], n, p=[0.5, 0.3, 0.2])),
    }


def window(rng: np.random.Generator, n: int, shift: float) -> bytes:
    prof = DatasetProfile()
    prof.update(batch(rng, n, shift), n)
    return prof.to_bytes()


def write_window(store: RedisStateStore, epoch: int, start_ms: int, offset: int,
                 profile: bytes, version: str = "7") -> None:
    """Checkpoint one window of model m on partition 0 as a worker would."""
    key = WindowKey("m", version, start_ms)
    generation = store.read(0, min_start_ms=1 << 62).generation  # the worker's own count
    store.write(Checkpoint(0, epoch, offset, start_ms + WINDOW_MS - 1, Counters(ok={"m": offset}),
                           {key: profile}, {key: start_ms + WINDOW_MS}, generation=generation))


def stored(redis_url: str, key_prefix: str, rng: np.random.Generator,
           models: tuple[str, ...] = ("m",), rows: int = 20_000, chunks: int = 5,
           ) -> tuple[redis.Redis, ReferenceStore, RedisStateStore]:
    """A client, a reference per model (undrifted data) and the partition state store."""
    client = redis.Redis.from_url(redis_url)
    refs = ReferenceStore(client, key_prefix)
    for model in models:
        refs.put(build_reference([batch(rng, rows)], model=model, version="default",
                                 created="2026-11-23T00:00:00Z", chunks=chunks), model)
    return client, refs, RedisStateStore(client, prefix=key_prefix, topic="predictions",
                                         horizon_ms=3_600_000)


def alert_publisher(bootstrap: str, topic: str) -> KafkaAlertPublisher:
    """The alerts-topic publisher as the worker wires it (its producer from streams.produce)."""
    return KafkaAlertPublisher(Producer(producer_config(bootstrap, "alerts")), topic)


def read_alerts(bootstrap: str, topic: str, timeout: float = 30.0) -> list[dict[str, object]]:
    """Every message on the (one-partition) topic, read by assignment up to its end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
                         "enable.auto.commit": False})
    _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out: list[dict[str, object]] = []
    deadline = time.monotonic() + timeout

    def position() -> int:  # transaction markers take offsets too: read up to the end
        return int(consumer.position([TopicPartition(topic, 0)])[0].offset)

    while (high and position() < high) and time.monotonic() < deadline:
        for m in consumer.consume(100, timeout=1.0):
            assert not m.error()
            a = decode(m.value())
            assert m.key() == a.id.encode()
            out.append({"id": a.id, "state": a.state, "kind": a.kind, "column": a.column})
    done = not high or position() >= high
    consumer.close()
    assert done
    return out


def test_fire_once_resolve_once_and_takeover(
    kafka_bootstrap: str, redis_url: str, make_topic, key_prefix: str  # type: ignore[no-untyped-def]
) -> None:
    rng = np.random.default_rng(7)
    alerts_topic = make_topic(1)
    client, refs, store = stored(redis_url, key_prefix, rng)
    snap = store.load(0)
    offset = 0

    def put_window(start_ms: int, shift: float) -> None:
        nonlocal offset
        offset += 5000
        write_window(store, snap.epoch, start_ms, offset, window(rng, 5000, shift))

    publisher = alert_publisher(kafka_bootstrap, alerts_topic)

    def evaluator(holder: str) -> Evaluator:
        return Evaluator(client, prefix=key_prefix,
                         models=[ModelRules("m", measure_ms=WINDOW_MS)],
                         windows=WindowReader(store), references=refs, publishers=[publisher],
                         owner=Owner.static(client, key_prefix, holder=holder))

    first = evaluator("a")
    t0 = 1_800_000_000_000
    put_window(t0, 0.0)
    assert first.run_once(now=1.0) == []
    put_window(t0 + WINDOW_MS, 1.0)  # income shifts by one sd
    fired = first.run_once(now=2.0)
    assert {(a.column, a.state) for a in fired} >= {("income", "firing")}
    assert {a.column for a in fired} == {"income"}
    assert first.run_once(now=3.0) == []  # still firing: no second message

    # a successor takes the model over (a new term, as after a rebalance): it knows the
    # alert is firing, so it does not fire it again
    second = evaluator("b")
    assert second.run_once(now=4.0) == []
    assert second.is_leader
    # the replaced evaluator can no longer store alert state for the model
    old = first.owner.token("m")
    assert old is not None and old < (second.owner.token("m") or 0)
    assert not first.owner.fence.write("m", old, values={first.result_key("m"): b"stale"})
    assert client.get(first.result_key("m")) != b"stale"

    put_window(t0 + 2 * WINDOW_MS, 0.0)  # back to normal
    resolved = second.run_once(now=5.0)
    assert {(a.column, a.state) for a in resolved} == {(a.column, "resolved") for a in fired}

    results = second.results()
    assert results[0].model == "m" and results[0].status == "ok"
    assert results[0].columns["income"].verdict == "no_drift"

    messages = read_alerts(kafka_bootstrap, alerts_topic)
    income = [m for m in messages if m["column"] == "income"]
    assert [m["state"] for m in income if m["id"] == "m/income/" + fired[0].metric] == ["firing", "resolved"]
    assert all(m["column"] == "income" for m in messages)
    publisher.close()
    client.close()


def test_out_of_range_values_alert_as_data_quality(
    kafka_bootstrap: str, redis_url: str, make_topic, key_prefix: str  # type: ignore[no-untyped-def]
) -> None:
    rng = np.random.default_rng(11)
    alerts_topic = make_topic(1)
    client, refs, store = stored(redis_url, key_prefix, rng, rows=5000, chunks=0)
    snap = store.load(0)
    publisher = alert_publisher(kafka_bootstrap, alerts_topic)
    ev = Evaluator(client, prefix=key_prefix,
                   models=[ModelRules("m", measure_ms=WINDOW_MS, ranges={"age": (0.0, 120.0)})],
                   windows=WindowReader(store), references=refs, publishers=[publisher],
                   owner=Owner.static(client, key_prefix))
    t0 = 1_800_000_000_000
    for i, bad_ages in enumerate(([], [150.0, 200.0], [])):
        prof = DatasetProfile()
        cols = batch(rng, 3000)
        cols["age"] = [min(max(a, 1.0), 99.0) for a in cols["age"]][: 3000 - len(bad_ages)] + bad_ages
        prof.update(cols, 3000)
        write_window(store, snap.epoch, t0 + i * WINDOW_MS, (i + 1) * 3000, prof.to_bytes(), "1")
        got = [(a.id, a.state, a.kind) for a in ev.run_once(now=float(i))]
        expected = {0: [], 1: [("m/age/out_of_range", "firing", "data_quality")],
                    2: [("m/age/out_of_range", "resolved", "data_quality")]}[i]
        assert got == expected, (i, got)
        if i == 1:
            (result,) = ev.results()
            metric = result.columns["age"].metrics["out_of_range"]
            assert metric.breached and metric.value == pytest.approx(2 / 3000, abs=metric.error_bound)
    publisher.close()
    client.close()


def test_a_replaced_evaluator_cannot_publish_or_store(
    kafka_bootstrap: str, redis_url: str, make_topic, key_prefix: str  # type: ignore[no-untyped-def]
) -> None:
    """An evaluator that stalls longer than its group allows (a pause, a GC, a frozen VM)
    is replaced; when it wakes up mid-evaluation its alert transaction is refused by the
    group coordinator (stale generation) and its state write by the fence: the alerts
    topic never carries its messages beside its successor's."""
    rng = np.random.default_rng(5)
    alerts_topic = make_topic(1)
    notices = make_topic(2, prefix="notices")
    client, refs, store = stored(redis_url, key_prefix, rng)
    write_window(store, store.load(0).epoch, 1_800_000_000_000, 5000, window(rng, 5000, 1.0))
    group_id = f"eval-{uuid.uuid4().hex[:8]}"

    def member(holder: str) -> tuple[ShardGroup, Evaluator, KafkaAlertPublisher]:
        consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group_id,
                             "enable.auto.commit": False, "session.timeout.ms": 6000,
                             "heartbeat.interval.ms": 500, "max.poll.interval.ms": 6000,
                             "partition.assignment.strategy": "cooperative-sticky"})
        group = ShardGroup(consumer, notices, Owner(Fence(client, key_prefix), 2, holder))
        publisher = KafkaAlertPublisher(
            Producer(producer_config(kafka_bootstrap, "alerts",
                                     **{"transactional.id": f"{group_id}-{holder}"})),
            alerts_topic, timeout_s=10, commit=group.commit_into)
        ev = Evaluator(client, prefix=key_prefix, models=[ModelRules("m", measure_ms=WINDOW_MS)],
                       windows=WindowReader(store), references=refs, publishers=[publisher],
                       owner=group.owner)
        group.subscribe()
        return group, ev, publisher

    def serve(group: ShardGroup, shards: int) -> None:
        deadline = time.monotonic() + 60
        while len(group.owner.tokens) < shards:
            assert time.monotonic() < deadline, "no assignment"
            group.poll(0.2)

    a_group, a, _ = member("a")
    serve(a_group, 2)
    assert a_group.owner.token("m") is not None
    # a is paused (no poll) past max.poll.interval.ms: the group gives its shards to b
    b_group, b, b_pub = member("b")
    serve(b_group, 2)
    # a wakes up believing it still owns m: it evaluates, the drift fires, but the
    # transaction is refused — nothing published — and nothing is stored
    assert a_group.owner.token("m") is not None
    assert a.run_once(now=1.0) == []
    assert client.get(a.result_key("m")) is None
    fired = b.run_once(now=2.0)  # the successor fires the alert, once
    assert ("income", "firing") in {(x.column, x.state) for x in fired}
    messages = read_alerts(kafka_bootstrap, alerts_topic)
    assert sorted(m["id"] for m in messages) == sorted(x.id for x in fired)  # type: ignore[type-var]
    b_pub.close()
    for g in (a_group, b_group):
        g.consumer.close()
    client.close()


def test_an_incomplete_window_is_never_compared_as_if_whole(
    kafka_bootstrap: str, redis_url: str, make_topic, key_prefix: str  # type: ignore[no-untyped-def]
) -> None:
    """A measurement window rebuilt after part of its input aged out of the topic: status
    ``incomplete``, and a drift in it neither fires nor resolves anything."""
    rng = np.random.default_rng(9)
    alerts_topic = make_topic(1)
    client, refs, store = stored(redis_url, key_prefix, rng)
    snap = store.load(0)
    t0 = 1_800_000_000_000
    write_window(store, snap.epoch, t0, 5000, window(rng, 5000, 1.0))  # drifted
    reader = WindowReader(store)

    class Incomplete:
        def measurements(self, measures: dict[str, int]) -> dict[str, object]:
            found = reader.measurements(measures)
            for m in found.values():
                m.incomplete = True
            return found  # type: ignore[return-value]

    publisher = alert_publisher(kafka_bootstrap, alerts_topic)
    evaluator = Evaluator(client, prefix=key_prefix, models=[ModelRules("m", measure_ms=WINDOW_MS)],
                          windows=Incomplete(), references=refs,  # type: ignore[arg-type]
                          publishers=[publisher], owner=Owner.static(client, key_prefix))
    assert evaluator.run_once(now=1.0) == []
    [result] = evaluator.results()
    assert result.status == "incomplete"
    complete = Evaluator(client, prefix=key_prefix, models=[ModelRules("m", measure_ms=WINDOW_MS)],
                         windows=reader, references=refs, publishers=[publisher],
                         owner=Owner.static(client, key_prefix))
    assert {a.column for a in complete.run_once(now=2.0)} == {"income"}  # whole: it fires
    publisher.close()
    client.close()


def test_the_reference_cache_keeps_chunks_only_for_models_that_learn_thresholds(
        redis_url: str, key_prefix: str) -> None:
    """The evaluator's reference store (as driftline.monitor builds it) reads a
    reference's chunk profiles only when the model's rules learn thresholds from them;
    both models are still compared and the learned one gets learned thresholds."""
    from driftline.monitor import learns_thresholds

    client, writer, _ = stored(redis_url, key_prefix, np.random.default_rng(8),
                                   models=())
    rng = np.random.default_rng(9)
    for model in ("learns", "plain"):  # 4 batches: 4 chunks
        writer.put(build_reference([batch(rng, 2_000) for _ in range(4)], model=model,
                                   version="default", created="t", chunks=4), model)
    rules = {"learns": ModelRules("learns", rules=DriftRules(learned=True)),
             "plain": ModelRules("plain")}
    refs = ReferenceStore(client, key_prefix, chunks=learns_thresholds(rules, ModelRules("*")))
    learns, plain = refs.get("learns"), refs.get("plain")
    assert learns is not None and plain is not None
    assert len(learns.chunks) == 4 and learns.chunks_left_out == 0
    assert plain.chunks == [] and plain.chunks_left_out == 4
    assert learns.learned_thresholds(3.0)["age"]
    assert refs.get("plain") is plain  # cached: a digest check, not a read
    client.close()


def _calls(client: redis.Redis, command: str) -> int:
    stats = client.info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0


def test_one_round_trip_checks_every_reference_and_loads_every_models_tracks(
        redis_url: str, key_prefix: str) -> None:
    """An evaluation of many models checks their references' digests in one pipeline
    (ReferenceStore.prefetch) and loads their alert tracks in one (TrackReader): the
    answers hold until the next prefetch, and a new reference is taken at the next one.
    Tracks stored before the keys had a hash tag are still read."""
    from alerts.keys import AlertKeys
    from alerts.machine import Track, track_to_bytes
    from alerts.tracks import TrackReader

    client, refs, _ = stored(redis_url, key_prefix, np.random.default_rng(10),
                             models=("a", "b"), rows=2_000, chunks=0)
    first = refs.get("a")
    refs.prefetch([("a", "7"), ("b", "default")])  # a has no version 7: its default
    gets = _calls(client, "get")
    assert refs.get("a", "7") is first and refs.get("a") is first
    assert refs.get("b") is not None and refs.get("b") is refs.get("b")
    assert _calls(client, "get") - gets == 1  # b's blob, read once; no digest reads
    newer = build_reference([batch(np.random.default_rng(11), 2_000)], model="a",
                            version="default", created="t", chunks=0)
    ReferenceStore(client, key_prefix).put(newer, "a")  # another process's put
    assert refs.get("a") is first  # this round's answer
    refs.prefetch([("a", "default")])
    assert refs.get("a") is not first and refs.get("a") is not None

    keys = AlertKeys(key_prefix)
    client.hset(keys.legacy_tracks("old"), "old/x/ks", track_to_bytes(Track()))
    client.hset(keys.tracks("new"), "new/x/ks", track_to_bytes(Track()))
    reader = TrackReader(client, keys)
    got = reader.load(["old", "new", "none"])
    assert set(got["old"]) == {"old/x/ks"} and set(got["new"]) == {"new/x/ks"}
    assert got["none"] == {}
    hgetalls = _calls(client, "hgetall")
    reader.load(["old", "new", "none"])  # legacy keys found empty are not asked again
    assert _calls(client, "hgetall") - hgetalls == 3 + 1
    client.close()
