"""driftline on a real Redis Cluster (three redis-server masters, slots spread by
``redis-cli --cluster create``; the session's ``cluster_url``): reference CLI, worker,
evaluator (alerts), compaction and `status` run unchanged with ``--redis-cluster``, the
stored windows hold every event, and each partition's keys — each model's alert keys —
sit in one hash slot (``CLUSTER KEYSLOT``), so the atomic scripts never cross slots.
The exactness and kill -9 runs on the cluster are in ``test_stream_exact.py``."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest
import redis
from confluent_kafka import Consumer

from alerts.keys import AlertKeys
from streams.reader import WindowReader
from streams.redis_client import RedisConnection, connect_redis
from streams.state import RedisStateStore
from tests.e2e.support import CLI, MODEL, prepare_model
from tests.integration.cluster import RedisTarget, slots_by_group
from tests.streamutil import Worker, worker_cmd

pytestmark = pytest.mark.integration


def test_worker_evaluator_and_cli_on_a_redis_cluster(
    cluster_url: str, kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path: Path,
) -> None:
    prefix = f"c-{uuid.uuid4().hex[:8]}"
    events = make_topic(3, prefix="pred")
    alerts = make_topic(1, prefix="alerts")
    make_topic(1, prefix=f"{events}.dlq")
    common = ["--redis-url", cluster_url, "--redis-cluster", "--key-prefix", prefix]
    models = prepare_model(tmp_path, common)
    worker = Worker(
        [*worker_cmd(kafka_bootstrap, RedisTarget(cluster_url, cluster=True), events, prefix,
                     f"g-{events}"),
         "--models-config", str(models), "--alerts-topic", alerts,
         "--evaluate-interval", "1s", "--evaluator-sweep", "2s"],
        tmp_path / "worker.log")
    client = connect_redis(RedisConnection(cluster_url, cluster=True))
    try:
        sim = subprocess.run(
            [*CLI, "simulate", "--kafka-bootstrap", kafka_bootstrap, "--topic", events,
             "--models", MODEL, "--rate", "3000", "--duration", "15s", "--seed", "4",
             "--drift", "income:shift=1.5sd@5s", "--no-progress"],
            capture_output=True, text=True, timeout=90)
        assert sim.returncode == 0, sim.stderr
        found = re.search(r"sent (\d+) events", sim.stdout + sim.stderr)
        assert found, sim.stdout + sim.stderr
        sent = int(found.group(1))
        store = RedisStateStore(client, prefix=prefix, topic=events, horizon_ms=3_600_000)
        deadline = time.monotonic() + 60
        fired: list[dict[str, object]] = []
        consumer = Consumer({"bootstrap.servers": kafka_bootstrap,
                             "group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"})
        consumer.subscribe([alerts])
        ok = 0
        while time.monotonic() < deadline:
            for m in consumer.consume(100, timeout=0.5):
                if not m.error():
                    fired.append(json.loads(cast(bytes, m.value())))
            ok = sum(store.read(p, min_start_ms=1 << 62).counters.ok.get(MODEL, 0)
                     for p in store.stored_partitions())
            if any(a["column"] == "income" and a["state"] == "firing" for a in fired) and (
                    ok >= sent):
                break
        consumer.close()
        assert worker.alive(), worker.tail()
        assert any(a["column"] == "income" and a["state"] == "firing" for a in fired), \
            worker.tail()
        # every event was counted once, and the windows in the cluster hold every one
        assert ok == sent
        merged = WindowReader(store).measurement(MODEL, 24 * 3_600_000)
        assert merged is not None and sum(p.rows for p in merged.versions.values()) == sent
        status = subprocess.run([*CLI, "status", *common, "--models-config", str(models)],
                                capture_output=True, text=True, timeout=60)
        assert MODEL in status.stdout, status.stderr
        # the keys are spread over the masters: the cluster really routed the scripts
        nodes = cast(redis.RedisCluster, client)
        primaries = nodes.get_primaries()  # type: ignore[no-untyped-call]
        holding = [n for n in primaries if nodes.dbsize(target_nodes=n)]
        assert len(primaries) == 3 and len(holding) >= 2
        _assert_one_slot_each(client, store, AlertKeys(prefix))
    finally:
        assert worker.stop() == 0, worker.tail()
        client.close()


def _assert_one_slot_each(client: redis.Redis, store: RedisStateStore, alerts: AlertKeys) -> None:
    """Every key the worker wrote for a partition (named ``<topic>:p<n>``: meta with the
    applied offset, window index, written generations, window blobs, whatever comes
    next) maps to one slot by ``CLUSTER KEYSLOT``; so does every alert key of a model."""
    keys = list(client.scan_iter(match=f"{store.prefix}*", count=1000))
    parts = slots_by_group(client, keys, rf"{re.escape(store.topic)}:p(\d+)(?!\d)")
    assert sorted(map(int, parts)) == store.stored_partitions(), parts
    for p, slots in parts.items():
        n = int(p)
        assert {store.meta_key(n), store.index_key(n), store.written_key(n)} <= slots.keys()
        assert any(":w:" in k for k in slots), slots  # at least the still-open window
        assert len(set(slots.values())) == 1, (p, slots)
    models = slots_by_group(client, keys, re.escape(f"{alerts.prefix}:alerts:{alerts.prefix}:")
                            + r"(.+):[^:]+$")
    mine = models.get(MODEL, {})  # (also the operational alert's model, `_driftline`)
    assert {alerts.tracks(MODEL), alerts.result(MODEL), alerts.fence(MODEL)} <= mine.keys(), mine
    for model, slots in models.items():
        assert len(set(slots.values())) == 1, (model, slots)
