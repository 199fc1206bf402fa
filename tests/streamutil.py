"""Helpers for the stream integration tests: a seeded event generator that knows the exact
expected per-window counts, a producer, worker subprocesses and Redis totals."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import redis
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from sketches.profile import DatasetProfile
from streams.state import RedisStateStore
from tests.integration.cluster import RedisTarget

REPO = Path(__file__).resolve().parent.parent
T0 = 1_795_420_800_000  # 2026-11-23T08:00Z, a multiple of 5 minutes
WINDOW_MS = 5 * 60_000
COLUMNS = ("x", "y", "c", "flag", "prediction", "prediction.yes", "prediction.no", "latency_ms")


@dataclass
class Expected:
    """Exact expected totals per (model, version, window start): rows and per column
    (count of present values, missing values)."""

    rows: dict[tuple[str, str, int], int] = field(default_factory=lambda: defaultdict(int))
    present: dict[tuple[str, str, int, str], int] = field(
        default_factory=lambda: defaultdict(int)
    )

    def add(self, key: tuple[str, str, int], columns: Mapping[str, object]) -> None:
        self.rows[key] += 1
        for name, value in columns.items():
            if value is not None:
                self.present[(*key, name)] += 1


def make_events(n: int, seed: int = 7, span_ms: int = 40 * 60_000) -> tuple[list[bytes], Expected]:
    """``n`` valid events for models m1 (versions 1, 2; scalar prediction) and m2 (class
    probabilities), event times spread over ``span_ms`` in order with ±90 s jitter, ts as
    RFC 3339, epoch seconds, or absent (Kafka timestamp = T0 + i ms · span / n)."""
    rnd = random.Random(seed)
    out: list[bytes] = []
    exp = Expected()
    for i in range(n):
        ts = T0 + (i * span_ms) // n + rnd.randint(0, 90_000)
        model = "m1" if rnd.random() < 0.7 else "m2"
        version = rnd.choice(["1", "2"]) if model == "m1" else "default"
        feats: dict[str, object] = {
            "x": None if rnd.random() < 0.05 else round(rnd.gauss(10, 3), 3),
            "y": rnd.randint(0, 100),
            "c": None if rnd.random() < 0.1 else rnd.choice(["DE", "FR", "US", "IT"]),
            "flag": rnd.random() < 0.3,
        }
        body: dict[str, object] = {"model": model, "features": feats}
        if model == "m1":
            body["version"] = version
            body["prediction"] = round(rnd.random(), 4)
            cols = dict(feats, prediction=body["prediction"])
        else:
            yes = round(rnd.random(), 4)
            body["prediction"] = {"yes": yes, "no": round(1 - yes, 4)}
            cols = dict(feats, **{"prediction.yes": yes, "prediction.no": round(1 - yes, 4)})
        if rnd.random() < 0.5:
            body["latency_ms"] = round(rnd.uniform(1, 30), 2)
        cols["latency_ms"] = body.get("latency_ms")
        kind = i % 3
        if kind == 0:
            body["ts"] = datetime.fromtimestamp(ts / 1000, UTC).isoformat().replace("+00:00", "Z")
        elif kind == 1:
            body["ts"] = ts / 1000
        else:
            ts = kafka_ts(i)  # absent: the Kafka timestamp decides
        exp.add((model, version, ts - ts % WINDOW_MS), cols)
        out.append(json.dumps(body).encode())
    return out, exp


def kafka_ts(i: int) -> int:
    return T0 + 1000 + i


HOSTILE_START = 10_000_000
"""Index (so Kafka timestamp, ~2.8 h after T0) of the first hostile record."""


def hostile_events(n: int, exp: Expected) -> tuple[list[bytes], dict[str, int]]:
    """``n`` rounds of poison records, to be produced with ``start=HOSTILE_START``: an
    integer beyond float range, an event a day ahead of its Kafka timestamp, a ``|`` in
    the version, 1,500 features, garbage bytes — each with the DLQ reason it must get —
    and one *valid* event of model ``other`` stamped hours ahead of m1/m2 (added to
    ``exp``: its clock must not make m1/m2 events late)."""
    out: list[bytes] = []
    reasons: dict[str, int] = defaultdict(int)
    for r in range(n):
        i = HOSTILE_START + len(out)
        big = b'{"model": "m1", "features": {"x": 1' + b"0" * 400 + b'}, "prediction": 1}'
        out.append(big)
        reasons["non_finite"] += 1
        ahead = {"model": "m1", "features": {"x": 1.0}, "prediction": 1,
                 "ts": (kafka_ts(i + 1) + 86_400_000) / 1000}
        out.append(json.dumps(ahead).encode())
        reasons["bad_ts"] += 1
        out.append(json.dumps({"model": "m1", "version": "v|2", "features": {},
                               "prediction": 1}).encode())
        reasons["invalid_value"] += 1
        wide = {"model": "m1", "features": {f"f{k}": k for k in range(1500)}, "prediction": 1}
        out.append(json.dumps(wide).encode())
        reasons["limit"] += 1
        out.append(bytes([0x80 + r % 64, 0x7B]) * 3)
        reasons["not_utf8"] += 1
        ts = kafka_ts(HOSTILE_START + len(out))
        out.append(json.dumps({"model": "other", "features": {"x": 2.0}, "prediction": 0.5,
                               "ts": ts / 1000}).encode())
        exp.add(("other", "default", ts - ts % WINDOW_MS), {"x": 2.0, "prediction": 0.5})
    return out, dict(reasons)


def produce(bootstrap: str, topic: str, values: list[bytes], partitions: int, start: int = 0) -> None:
    """Value i goes to partition i % partitions with Kafka timestamp ``kafka_ts(start + i)``."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "linger.ms": 50, "batch.num.messages": 10000,
                         "queue.buffering.max.messages": 500_000})
    errors: list[str] = []

    def report(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    for i, value in enumerate(values, start):
        while True:
            try:
                producer.produce(topic, value=value, partition=i % partitions,
                                 timestamp=kafka_ts(i), on_delivery=report)
                break
            except BufferError:
                producer.poll(0.1)
        if i % 5000 == 0:
            producer.poll(0)
    assert producer.flush(120) == 0
    assert errors == []


def recreate_topic(admin: AdminClient, topic: str, partitions: int) -> None:
    """Delete ``topic`` and create it again with ``partitions`` partitions (a new topic id)."""
    admin.delete_topics([topic])[topic].result(30)
    for _ in range(200):  # deletion completes asynchronously
        if topic not in admin.list_topics(timeout=10).topics:
            break
        time.sleep(0.1)
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "offsets-probe"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(partitions)}
    finally:
        c.close()


def store_for(redis_url: str | RedisTarget, prefix: str, topic: str) -> RedisStateStore:
    """The worker's state store as a reader sees it (``RedisTarget``: single or cluster)."""
    target = redis_url if isinstance(redis_url, RedisTarget) else RedisTarget(redis_url)
    return RedisStateStore(target.client(), prefix=prefix, topic=topic, horizon_ms=3_600_000)


def applied(store: RedisStateStore, partitions: int) -> dict[int, int]:
    return {p: store.read(p, min_start_ms=1 << 62).applied_offset for p in range(partitions)}


def wait_applied(store: RedisStateStore, ends: Mapping[int, int], timeout: float,
                 check: Callable[[], None] | None = None) -> None:
    """Until every partition's applied offset in Redis is its end offset - 1."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = applied(store, len(ends))
        except redis.exceptions.ConnectionError:
            got = {}
        if got and all(got[p] == ends[p] - 1 for p in ends):
            return
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise AssertionError(f"applied offsets {got} never reached {ends}")
        time.sleep(0.3)


def totals(store: RedisStateStore) -> tuple[dict[tuple[str, str, int], int],
                                            dict[tuple[str, str, int, str], int],
                                            dict[tuple[str, str, int, str], int]]:
    """Stored rows, present and missing per column, summed over partitions."""
    rows: dict[tuple[str, str, int], int] = defaultdict(int)
    present: dict[tuple[str, str, int, str], int] = defaultdict(int)
    missing: dict[tuple[str, str, int, str], int] = defaultdict(int)
    for windows in store.windows().values():
        for key, blob in windows.items():
            prof = DatasetProfile.from_bytes(blob)
            k = (key.model, key.version, key.start_ms)
            rows[k] += prof.rows
            for name, col in prof.columns.items():
                assert col.mismatched == 0 and col.invalid == 0, (k, name)
                present[(*k, name)] += col.count
                missing[(*k, name)] += col.missing
    return dict(rows), dict(present), dict(missing)


def assert_exact(store: RedisStateStore, exp: Expected) -> None:
    rows, present, missing = totals(store)
    want = dict(exp.rows)
    assert rows == want, {k: (rows.get(k), want.get(k)) for k in set(rows) | set(want)
                          if rows.get(k) != want.get(k)}
    want_present = {k: v for k, v in exp.present.items() if v}
    assert {k: v for k, v in present.items() if v} == want_present
    for (model, version, start, name), n in present.items():
        assert n + missing[(model, version, start, name)] == rows[(model, version, start)]


def worker_cmd(bootstrap: str, redis_url: str | RedisTarget, topic: str, prefix: str,
               group: str, *extra: str) -> list[str]:
    target = redis_url if isinstance(redis_url, RedisTarget) else RedisTarget(redis_url)
    return [sys.executable, "-m", "driftline.cli", "-v", "worker", "--kafka-bootstrap", bootstrap,
            *target.flags, "--topic", topic, "--dlq-topic", f"{topic}.dlq",
            "--group", group, "--key-prefix", prefix, "--session-timeout-ms", "6000",
            "--checkpoint-interval", "500ms", "--checkpoint-records", "20000",
            "--http-port", "0", "--evaluator-shards", "2",
            # make_events spreads event times over 40 min but stamps Kafka times ms apart:
            # allow that skew (the 5 min default is for real producers' clocks)
            "--max-future-skew", "1h", *extra]


class Worker:
    """A ``driftline worker`` subprocess with its log in ``log_dir``."""

    def __init__(self, cmd: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self._start = log_path.stat().st_size if log_path.exists() else 0
        self.log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()/kill9()
        env = dict(os.environ)
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env, cwd=REPO)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.log.close()

    def stop(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.log.close()
        return code

    def wait_log(self, text: str, timeout: float = 60, count: int = 1) -> None:
        """Until ``text`` appears ``count`` times in this worker's log (since its start)."""
        start = self._start
        deadline = time.monotonic() + timeout
        while self.log_path.read_bytes()[start:].count(text.encode()) < count:
            assert self.alive(), self.tail()
            assert time.monotonic() < deadline, f"{text!r} not logged: {self.tail()}"
            time.sleep(0.1)

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]
