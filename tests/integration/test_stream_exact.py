"""The confluent runner end to end (real Kafka, Redis, `driftline worker` processes):
exact per-window counts, through kill -9 restarts and rebalances — on one Redis and on a
3-master Redis Cluster (``--redis-cluster``; the faust engine runs on one Redis only)."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.cluster import RedisTarget
from tests.streamutil import (
    HOSTILE_START,
    Worker,
    applied,
    assert_exact,
    end_offsets,
    hostile_events,
    make_events,
    produce,
    store_for,
    wait_applied,
    worker_cmd,
)

pytestmark = pytest.mark.integration


@pytest.mark.timeout(240)
@pytest.mark.parametrize(("engine", "redis_target"),
                         [("confluent", "single"), ("faust", "single"), ("confluent", "cluster")],
                         indirect=["redis_target"])
def test_200k_events_four_partitions_exact(
    engine: str, kafka_bootstrap: str, redis_target: RedisTarget,
    make_topic: Callable[..., str], key_prefix: str, tmp_path: Path,
) -> None:
    topic = make_topic(4)
    values, exp = make_events(200_000, seed=1)
    produce(kafka_bootstrap, topic, values, 4)
    ends = end_offsets(kafka_bootstrap, topic, 4)
    assert sum(ends.values()) == 200_000
    store = store_for(redis_target, key_prefix, topic)
    w = Worker(worker_cmd(kafka_bootstrap, redis_target, topic, key_prefix, f"g-{uuid.uuid4().hex}",
                          "--engine", engine), tmp_path / "worker.log")
    try:
        if engine == "confluent":
            w.wait_log("assigned topic=")
        wait_applied(store, ends, 180, check=lambda: _alive(w))
        assert w.stop() == 0, w.tail()
    finally:
        if w.alive():
            w.kill9()
    assert_exact(store, exp)
    from streams.reader import WindowReader

    counters = WindowReader(store).counters()
    assert sum(counters.ok.values()) == 200_000
    assert counters.late == {} and counters.invalid == {}


def _alive(w: Worker) -> None:
    assert w.alive(), w.tail()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("redis_target", ["single", "cluster"], indirect=True)
def test_kill9_restarts_exact(
    kafka_bootstrap: str, redis_target: RedisTarget, make_topic: Callable[..., str],
    key_prefix: str, tmp_path: Path,
) -> None:
    topic = make_topic(4)
    values, exp = make_events(500_000, seed=2)
    poison, reasons = hostile_events(40, exp)  # between the valid events, across the kills
    for k, chunk in enumerate(range(0, len(values), 125_000)):
        produce(kafka_bootstrap, topic, values[chunk:chunk + 125_000], 4, start=chunk)
        part = poison[k * 60:(k + 1) * 60]
        produce(kafka_bootstrap, topic, part, 4, start=HOSTILE_START + k * 60)
    ends = end_offsets(kafka_bootstrap, topic, 4)
    store = store_for(redis_target, key_prefix, topic)
    group = f"g-{uuid.uuid4().hex}"
    cmd = worker_cmd(kafka_bootstrap, redis_target, topic, key_prefix, group,
                     "--instance-id", "kill-test", "--checkpoint-records", "7000")
    rnd = random.Random(5)
    progress: list[int] = []
    for _ in range(6):  # kill -9 at random points, each after some fresh progress
        w = Worker(cmd, tmp_path / "worker.log")
        target = (progress[-1] if progress else 0) + rnd.randint(15_000, 60_000)
        deadline = time.monotonic() + 60
        while sum(applied(store, 4).values()) < target and time.monotonic() < deadline:
            assert w.alive(), w.tail()
            time.sleep(0.05)
        time.sleep(rnd.uniform(0, 0.4))
        w.kill9()
        progress.append(sum(applied(store, 4).values()))
    w = Worker(cmd, tmp_path / "worker.log")
    try:
        w.wait_log("assigned topic=")
        wait_applied(store, ends, 200, check=lambda: _alive(w))
        assert w.stop() == 0, w.tail()
    finally:
        if w.alive():
            w.kill9()
    assert progress[-1] < 500_000, "the kills all happened after the end: not a crash test"
    assert_exact(store, exp)
    from streams.reader import WindowReader

    counters = WindowReader(store).counters()
    assert counters.invalid == reasons  # each poison record counted once, with its reason
    assert counters.late == {}  # model "other"'s clock hours ahead made no m1/m2 event late
