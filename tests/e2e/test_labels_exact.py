"""A labeled stream through a real ``driftline worker`` killed with -9 at random points
(issue #13): after the restarts the per-window prediction counts ``p``, labeled counts ``n``
and confusion cells in Redis equal what was sent, exactly.

Seed ``SEED`` (13) makes the stream: 24,000 predictions of the binary model ``fraud``
(versions 1 and 2, 1-minute windows over 20 minutes, 4 partitions), 90 % with an ``id``;
of those 5 % carry their label inline, 70 % get one on the labels topic (2 partitions;
int, string and float forms) and the rest never do. A fifth of the topic labels are
produced — and joined as early labels — before any prediction; a few malformed labels go to
the labels DLQ. The kill points come from ``random.Random(SEED)`` too.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from confluent_kafka import Producer

from streams.join import JoinStore
from streams.windows import LabelSpec
from tests.streamutil import Worker, end_offsets, worker_cmd

pytestmark = pytest.mark.integration

SEED = 13
MODEL = "fraud"
T0 = 1_795_420_800_000  # 2026-11-23T08:00Z
WINDOW_MS = 60_000
N = 24_000
P_PARTS, L_PARTS = 4, 2
BAD_LABELS = [
    b'{"model": "fraud", "label": 1}',  # missing id
    b'{"model": "nope", "id": "req-1", "label": 1}',  # unknown model
    b'{"model": "fraud", "id": "req-2", "label": 2}',  # not a class of the binary model
    b'{"model": "fraud", "id": "req-3", "label": "yes"}',
    b"not json",
]


@dataclass
class Stream:
    predictions: list[tuple[int, bytes]] = field(default_factory=list)  # (ts, value)
    early: list[bytes] = field(default_factory=list)
    labels: list[bytes] = field(default_factory=list)
    p: Counter[tuple[str, int]] = field(default_factory=Counter)
    n: Counter[tuple[str, int]] = field(default_factory=Counter)
    cells: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    unlabeled: int = 0


def make_stream(seed: int = SEED) -> Stream:
    rnd = random.Random(seed)
    s = Stream()
    topic_labels: list[bytes] = []
    for i in range(N):
        ts = T0 + i * (20 * WINDOW_MS) // N
        version = rnd.choice("12")
        score = round(rnd.random(), 4)
        body: dict[str, object] = {"model": MODEL, "version": version, "ts": ts / 1000,
                                   "features": {"x": round(rnd.gauss(0, 1), 3)},
                                   "prediction": score}
        has_id = rnd.random() < 0.9 or i >= N - 100  # the last ones: ids (see _done)
        fate = rnd.random()
        if has_id:
            body["id"] = f"req-{i}"
            key = (version, ts - ts % WINDOW_MS)
            s.p[key] += 1
            truth = 1 if rnd.random() < 0.3 + 0.5 * score else 0
            if fate < 0.05 or fate < 0.75:
                if fate < 0.05:
                    body["label"] = truth
                else:
                    form = rnd.choice([truth, str(truth), float(truth)])
                    delay = rnd.randint(0, 120_000)
                    topic_labels.append(json.dumps(
                        {"model": MODEL, "id": f"req-{i}", "label": form,
                         "ts": (ts + delay) / 1000}).encode())
                s.n[key] += 1
                s.cells[(*key, f"c:{1 if score >= 0.5 else 0}|{truth}")] += 1
            else:
                s.unlabeled += 1
        s.predictions.append((ts, json.dumps(body).encode()))
    rnd.shuffle(topic_labels)
    cut = len(topic_labels) // 5
    s.early, s.labels = BAD_LABELS + topic_labels[:cut], topic_labels[cut:]
    return s


def produce(bootstrap: str, topic: str, values: list[bytes], parts: int,
            stamps: list[int] | None = None) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "linger.ms": 20})
    for i, value in enumerate(values):
        while True:
            try:
                producer.produce(topic, value=value, partition=i % parts,
                                 timestamp=stamps[i] if stamps else T0 + 1)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0


@pytest.mark.timeout(120)
def test_kill9_during_a_labeled_stream_is_exact(
    kafka_bootstrap: str, redis_url: str, make_topic: Callable[..., str], key_prefix: str,
    tmp_path: Path,
) -> None:
    stream = make_stream()
    preds = make_topic(P_PARTS, prefix="pred")
    labels = make_topic(L_PARTS, prefix="labels")
    make_topic(1, prefix=f"{preds}.dlq")
    labels_dlq = make_topic(1, prefix=f"{labels}.dlq")
    models = tmp_path / "models.toml"
    models.write_text(f'[defaults]\nwindow = "1m"\nretention = "1h"\n'
                      f'[models.{MODEL}.performance]\ntask = "binary"\nlabel_ttl = "7d"\n')
    cmd = worker_cmd(kafka_bootstrap, redis_url, preds, key_prefix, f"g-{uuid.uuid4().hex}",
                     "--models-config", str(models), "--labels-topic", labels,
                     "--labels-dlq-topic", labels_dlq, "--instance-id", "labels-kill",
                     "--no-evaluate", "--checkpoint-records", "3000",
                     "--kafka-config", "session.timeout.ms=6000")
    client = redis.Redis.from_url(redis_url)
    spec = LabelSpec(window_ms=WINDOW_MS, retention_ms=3_600_000)
    join = JoinStore(client, prefix=key_prefix, specs={MODEL: spec}, key=b"unused" * 4)
    meta = join.keys.meta(MODEL)

    def hw() -> dict[str, int]:
        raw: dict[bytes, bytes] = client.hgetall(meta)  # type: ignore[assignment]
        return {k.decode(): int(v) for k, v in raw.items() if k.startswith(b"hw:")}

    # phase 1: labels whose predictions do not exist yet (and the malformed ones)
    produce(kafka_bootstrap, labels, stream.early, L_PARTS)
    w = Worker(cmd, tmp_path / "worker.log")
    want_early = len(stream.early) - len(BAD_LABELS)
    deadline = time.monotonic() + 40
    while join.counters(MODEL).get("early", 0) < want_early:
        assert w.alive() and time.monotonic() < deadline, w.tail()
        time.sleep(0.1)
    # phase 2: the predictions and the rest of the labels, while the worker is killed
    produce(kafka_bootstrap, preds, [v for _, v in stream.predictions], P_PARTS,
            [ts for ts, _ in stream.predictions])
    produce(kafka_bootstrap, labels, stream.labels, L_PARTS)
    ends = {**{f"hw:p:{p}": o - 1 for p, o in end_offsets(kafka_bootstrap, preds, P_PARTS).items()},
            **{f"hw:l:{p}": o - 1 for p, o in end_offsets(kafka_bootstrap, labels, L_PARTS).items()}}
    rnd = random.Random(SEED)
    done_at: list[int] = []
    for _ in range(3):  # each worker makes some fresh progress, then dies
        now = sum(hw().values())
        target = now + rnd.uniform(0.1, 0.3) * (sum(ends.values()) - now)
        deadline = time.monotonic() + 15  # (a restart waits out the labels group's session)
        while sum(hw().values()) < target and time.monotonic() < deadline:
            assert w.alive(), w.tail()
            time.sleep(0.02)
        time.sleep(rnd.uniform(0, 0.2))
        w.kill9()
        done_at.append(sum(hw().values()))
        w = Worker(cmd, tmp_path / "worker.log")
    try:
        w.wait_log("assigned topic=")  # (a SIGTERM before the handlers are set kills it)
        deadline = time.monotonic() + 60
        while hw() != ends:
            assert w.alive() and time.monotonic() < deadline, (hw(), ends, w.tail())
            time.sleep(0.1)
        assert w.stop() == 0, w.tail()
    finally:
        if w.alive():
            w.kill9()
    # the first kill comes at 10-30 % of the work (later ones may find it done): a crash test
    assert done_at[0] < sum(ends.values()), done_at

    got_p: Counter[tuple[str, int]] = Counter()
    got_n: Counter[tuple[str, int]] = Counter()
    cells: Counter[tuple[str, int, str]] = Counter()
    for version, rows in join.windows(MODEL, T0, T0 + 21 * WINDOW_MS).items():
        for start, fields in rows:
            got_p[(version, start)] += int(fields.get("p", 0))
            got_n[(version, start)] += int(fields.get("n", 0))
            for name, value in fields.items():
                if name.startswith("c:"):
                    cells[(version, start, name)] += int(value)
    assert got_p == stream.p
    assert got_n == stream.n
    assert cells == stream.cells
    c = defaultdict(int, join.counters(MODEL))
    assert c["joined"] == sum(stream.n.values())
    assert c["pending"] == stream.unlabeled
    assert (c["duplicate"], c["duplicate_prediction"], c["early"], c["late"]) == (0, 0, 0, 0)
    assert want_early <= c["early_total"] == c["joined_early"]
    dlq_end = sum(end_offsets(kafka_bootstrap, labels_dlq, 1).values())
    assert dlq_end >= len(BAD_LABELS)  # at least once (a kill may resend some)
