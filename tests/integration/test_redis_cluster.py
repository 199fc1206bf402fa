"""driftline on a real Redis Cluster (three redis-server masters, slots spread by
``redis-cli --cluster create``): reference CLI, worker, evaluator (alerts), compaction and
`status` run unchanged with ``--redis-cluster``, and the stored windows hold every event."""

from __future__ import annotations

import json
import random
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer

from streams.reader import WindowReader
from streams.redis_client import RedisConnection, connect_redis
from streams.state import RedisStateStore
from tests.e2e.support import CLI, MODEL, prepare_model
from tests.streamutil import Worker, worker_cmd

pytestmark = pytest.mark.integration


def free_port() -> int:
    """A port that is free together with its cluster bus port (port + 10000)."""
    rng = random.Random()
    while True:
        port = rng.randrange(20_000, 30_000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10_000))
            return port
        except OSError:
            continue


@pytest.fixture(scope="module")
def cluster_url() -> Iterator[str]:
    """Three cluster-enabled redis-servers joined into one cluster; a node's URL."""
    workdir = Path(tempfile.mkdtemp(prefix="redis-cluster-"))
    ports: list[int] = []
    while len(ports) < 3:
        if (port := free_port()) not in ports:
            ports.append(port)
    procs = [subprocess.Popen(
        ["redis-server", "--port", str(p), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
         "--cluster-config-file", f"nodes-{p}.conf", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for p in ports]
    try:
        for p in ports:
            client = redis.Redis(port=p)
            for _ in range(100):
                try:
                    client.ping()
                    break
                except redis.exceptions.ConnectionError:
                    time.sleep(0.1)
        made = subprocess.run(["redis-cli", "--cluster", "create",
                               *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas", "0",
                               "--cluster-yes"], capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stdout + made.stderr
        deadline = time.monotonic() + 30
        while redis.Redis(port=ports[0]).cluster("info")["cluster_state"] != "ok":
            assert time.monotonic() < deadline, "cluster never became ok"
            time.sleep(0.2)
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)


def test_worker_evaluator_and_cli_on_a_redis_cluster(cluster_url: str, kafka_bootstrap: str,
                                                     make_topic, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prefix = f"c-{uuid.uuid4().hex[:8]}"
    events = make_topic(3, prefix="pred")
    alerts = make_topic(1, prefix="alerts")
    make_topic(1, prefix=f"{events}.dlq")
    common = ["--redis-url", cluster_url, "--redis-cluster", "--key-prefix", prefix]
    models = prepare_model(tmp_path, common)
    worker = Worker(
        [*worker_cmd(kafka_bootstrap, cluster_url, events, prefix, f"g-{events}"),
         "--redis-cluster", "--models-config", str(models), "--alerts-topic", alerts,
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
                    fired.append(json.loads(m.value()))
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
        primaries = client.get_primaries()  # type: ignore[attr-defined]
        holding = [n for n in primaries if client.execute_command("DBSIZE", target_nodes=n)]
        assert len(primaries) == 3 and len(holding) >= 2
    finally:
        assert worker.stop() == 0, worker.tail()
        client.close()
