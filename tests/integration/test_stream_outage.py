"""Redis and the broker restarted mid-stream (a private stack): the worker waits, recovers
and ends exact."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from tests.streamutil import (
    REPO,
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
STACK = REPO / "driftline" / "stack" / "stack.sh"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateStack:
    def __init__(self, root: Path) -> None:
        self.dir = root
        self.kafka_port, self.ctrl_port, self.redis_port = (_free_port() for _ in range(3))
        self.env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP", "REDIS_URL")}
        self.env.update(STACK_DIR=str(root), KAFKA_PORT=str(self.kafka_port),
                        KAFKA_CONTROLLER_PORT=str(self.ctrl_port), REDIS_PORT=str(self.redis_port))
        self.bootstrap = f"127.0.0.1:{self.kafka_port}"
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"

    def stack(self, action: str) -> None:
        subprocess.run([str(STACK), action], env=self.env, check=True, timeout=240,
                       capture_output=True)

    def stop(self, service: str) -> None:
        """SIGTERM the service this test's stack started (pid file), wait until it is gone."""
        pid = int((self.dir / f"{service}.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
        raise AssertionError(f"{service} (pid {pid}) did not stop")

    def topic(self, partitions: int) -> str:
        name = f"t-{uuid.uuid4().hex[:12]}"
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        admin.create_topics([NewTopic(name, num_partitions=partitions,
                                      replication_factor=1)])[name].result(timeout=30)
        return name


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    st = PrivateStack(tmp_path_factory.mktemp("stack"))
    st.stack("up")
    try:
        yield st
    finally:
        st.stack("down")


def _run_with_outage(private: PrivateStack, tmp_path: Path, service: str, n: int,
                     down_s: float, *extra: str) -> None:
    topic = private.topic(4)
    values, exp = make_events(n, seed=11)
    produce(private.bootstrap, topic, values, 4)
    ends = end_offsets(private.bootstrap, topic, 4)
    prefix = f"outage-{uuid.uuid4().hex[:8]}"
    store = store_for(private.redis_url, prefix, topic)
    w = Worker(worker_cmd(private.bootstrap, private.redis_url, topic, prefix,
                          f"g-{uuid.uuid4().hex}", "--checkpoint-records", "5000", *extra),
               tmp_path / "worker.log")
    try:
        w.wait_log("assigned topic=")
        while sum(applied(store, 4).values()) < n // 5:
            assert w.alive(), w.tail()
            time.sleep(0.02)
        private.stop(service)
        at_stop = n // 5
        time.sleep(down_s)
        assert w.alive(), w.tail()  # waiting, not dead
        private.stack("up")  # restarts only what is down
        wait_applied(store, ends, 150, check=lambda: None)
        assert w.alive(), w.tail()
        assert w.stop() == 0, w.tail()
    finally:
        if w.alive():
            w.kill9()
    assert at_stop < n
    assert_exact(store, exp)


@pytest.mark.timeout(200)
def test_redis_restart_mid_stream(private: PrivateStack, tmp_path: Path) -> None:
    _run_with_outage(private, tmp_path, "redis", 300_000, 3.0)
    log = (tmp_path / "worker.log").read_text()
    assert "retrying" in log  # it noticed and waited


@pytest.mark.timeout(240)
def test_broker_restart_mid_stream(private: PrivateStack, tmp_path: Path) -> None:
    _run_with_outage(private, tmp_path, "kafka", 400_000, 2.0)
