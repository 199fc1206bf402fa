"""Workers joining and leaving mid-stream stay exact; a fenced (old-epoch) write is rejected."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from sketches.profile import DatasetProfile
from streams.core import Processor, Record
from streams.state import FencedError
from streams.windows import ModelCatalog, WindowKey
from tests.streamutil import (
    T0,
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


@pytest.mark.timeout(240)
def test_two_then_three_workers_join_and_leave_exact(
    kafka_bootstrap: str, redis_url: str, make_topic: Callable[..., str], key_prefix: str,
    tmp_path: Path,
) -> None:
    n, parts = 400_000, 6
    topic = make_topic(parts)
    values, exp = make_events(n, seed=3)
    chunk = 10_000

    def feed() -> None:  # a live stream: ~12 s of production while workers come and go
        for start in range(0, n, chunk):
            produce(kafka_bootstrap, topic, values[start:start + chunk], parts, start=start)
            time.sleep(0.2)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    store = store_for(redis_url, key_prefix, topic)
    cmd = worker_cmd(kafka_bootstrap, redis_url, topic, key_prefix, f"g-{uuid.uuid4().hex}")
    logs = tmp_path
    a = Worker(cmd, logs / "a.log")
    workers = [a]
    try:
        a.wait_log("assigned topic=")
        time.sleep(1.5)
        b = Worker(cmd, logs / "b.log")
        workers.append(b)
        b.wait_log("assigned topic=")
        time.sleep(1.5)
        c = Worker(cmd, logs / "c.log")
        workers.append(c)
        c.wait_log("assigned topic=")
        joined_at = sum(applied(store, parts).values())
        time.sleep(1.5)
        assert a.stop() == 0, a.tail()  # graceful leave: revoke → checkpoint → commit
        time.sleep(1.5)
        b.kill9()  # crash: its partitions move after the session timeout
        feeder.join(120)
        ends = end_offsets(kafka_bootstrap, topic, parts)
        assert sum(ends.values()) == n
        wait_applied(store, ends, 120, check=lambda: _alive(c))
        assert c.stop() == 0, c.tail()
    finally:
        for w in workers:
            if w.alive():
                w.kill9()
    assert joined_at < n, "the third worker joined after the stream ended"
    assert_exact(store, exp)
    epochs = [store.read(p, min_start_ms=1 << 62).epoch for p in range(parts)]
    assert max(epochs) >= 3, f"expected partitions to move between workers: epochs {epochs}"


def _alive(w: Worker) -> None:
    assert w.alive(), w.tail()


def _event(ts_ms: int) -> bytes:
    return json.dumps({"model": "m", "ts": ts_ms / 1000, "features": {"x": 1.0},
                       "prediction": 0.1}).encode()


def test_write_from_fenced_worker_is_rejected(redis_url: str, key_prefix: str) -> None:
    topic = "fence-topic"
    zombie_store = store_for(redis_url, key_prefix, topic)
    owner_store = store_for(redis_url, key_prefix, topic)
    zombie, owner = Processor(ModelCatalog()), Processor(ModelCatalog())

    zombie.assign(zombie_store.load(0))  # epoch 1
    zombie.process([Record(0, 0, 0, _event(T0))])
    cp = zombie.checkpoint(0)
    assert cp is not None
    zombie_store.write(cp)
    zombie.flushed(cp)
    zombie.process([Record(0, o, 0, _event(T0)) for o in (1, 2, 3)])  # not yet flushed

    owner.assign(owner_store.load(0))  # rebalance: the new owner bumps the epoch to 2
    assert owner.applied_offset(0) == 0
    owner.process([Record(0, 1, 0, _event(T0))])

    late = zombie.checkpoint(0)
    assert late is not None and late.epoch == 1
    with pytest.raises(FencedError, match="epoch 1 rejected, Redis holds epoch 2"):
        zombie_store.write(late)

    good = owner.checkpoint(0)
    assert good is not None
    owner_store.write(good)
    stored = owner_store.read(0)
    assert stored.epoch == 2 and stored.applied_offset == 1
    blob = stored.windows[WindowKey("m", "default", T0)]
    assert DatasetProfile.from_bytes(blob).rows == 2  # offsets 0 and 1, nothing of the zombie
