"""The faust runner end to end (real Kafka, Redis, `driftline worker --engine faust`
processes): the same exactness tests as the confluent runner (test_stream_exact.py, whose
200k-event test runs on both engines)."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.streamutil import (
    Worker,
    applied,
    assert_exact,
    end_offsets,
    make_events,
    produce,
    store_for,
    wait_applied,
    worker_cmd,
)

pytestmark = pytest.mark.integration
FAUST = ("--engine", "faust")


def _alive(w: Worker) -> None:
    assert w.alive(), w.tail()


@pytest.mark.timeout(300)
def test_faust_kill9_restarts_exact(
    kafka_bootstrap: str, redis_url: str, make_topic: Callable[..., str], key_prefix: str,
    tmp_path: Path,
) -> None:
    n = 200_000
    topic = make_topic(4)
    values, exp = make_events(n, seed=2)
    produce(kafka_bootstrap, topic, values, 4)
    ends = end_offsets(kafka_bootstrap, topic, 4)
    store = store_for(redis_url, key_prefix, topic)
    cmd = worker_cmd(kafka_bootstrap, redis_url, topic, key_prefix, f"g-{uuid.uuid4().hex}",
                     *FAUST, "--batch-size", "3000")
    rnd = random.Random(5)
    progress: list[int] = []
    for _ in range(5):
        w = Worker(cmd, tmp_path / "worker.log")
        before = sum(applied(store, 4).values())
        deadline = time.monotonic() + 60  # kill while it is consuming, not while joining
        while sum(applied(store, 4).values()) <= before and time.monotonic() < deadline:
            _alive(w)
            time.sleep(0.1)
        time.sleep(rnd.uniform(0.0, 1.5))
        _alive(w)
        w.kill9()
        progress.append(sum(applied(store, 4).values()))
    w = Worker(cmd, tmp_path / "worker.log")
    try:
        wait_applied(store, ends, 200, check=lambda: _alive(w))
        assert w.stop() == 0, w.tail()
    finally:
        if w.alive():
            w.kill9()
    assert progress[-1] < n - 4, f"the kills all happened after the end: {progress}"
    assert progress == sorted(progress) and len(set(progress)) == 5, progress
    assert_exact(store, exp)


@pytest.mark.timeout(240)
def test_faust_workers_joining_and_leaving_exact(
    kafka_bootstrap: str, redis_url: str, make_topic: Callable[..., str], key_prefix: str,
    tmp_path: Path,
) -> None:
    """Rebalances: a second worker joins mid-stream, then the first leaves (SIGTERM)."""
    n = 150_000
    topic = make_topic(4)
    values, exp = make_events(n, seed=3)
    produce(kafka_bootstrap, topic, values, 4)
    ends = end_offsets(kafka_bootstrap, topic, 4)
    store = store_for(redis_url, key_prefix, topic)
    cmd = worker_cmd(kafka_bootstrap, redis_url, topic, key_prefix, f"g-{uuid.uuid4().hex}",
                     *FAUST, "--batch-size", "2000")

    def wait_progress(at_least: int, w: Worker) -> int:
        deadline = time.monotonic() + 90
        while (done := sum(applied(store, 4).values())) < at_least:
            _alive(w)
            assert time.monotonic() < deadline, w.tail()
            time.sleep(0.2)
        return done

    w1 = Worker(cmd, tmp_path / "w1.log")
    w2: Worker | None = None
    try:
        wait_progress(10_000, w1)
        w2 = Worker(cmd, tmp_path / "w2.log")
        deadline = time.monotonic() + 60
        while max(store.read(p).epoch for p in range(4)) < 2:  # w2 got partitions
            _alive(w2)
            assert time.monotonic() < deadline, w2.tail()
            time.sleep(0.2)
        joined_at = wait_progress(sum(applied(store, 4).values()) + 10_000, w1)
        assert w1.stop() == 0, w1.tail()
        assert joined_at < n - 10_000, "the stream ended before the rebalances"
        wait_applied(store, ends, 150, check=lambda: _alive(w2))  # type: ignore[union-attr]
        assert w2.stop() == 0, w2.tail()
    finally:
        for w in (w1, w2):
            if w is not None and w.alive():
                w.kill9()
    epochs = [store.read(p).epoch for p in range(4)]
    assert max(epochs) >= 2, f"no partition moved between workers: epochs {epochs}"
    assert_exact(store, exp)
