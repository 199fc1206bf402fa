"""Redis for the integration tests, single or cluster.

- :class:`RedisTarget`: where a test's Redis is and whether it is a Redis Cluster — the
  worker flags and the client that go with it.
- :func:`redis_cluster`: three cluster-enabled ``redis-server`` masters started here and
  joined by ``redis-cli --cluster create`` (slots spread over all three); the session's
  ``cluster_url`` fixture (``tests/conftest.py``) holds one for every test that needs it.
- :func:`slots_by_group`: the hash slot of each key, asked of the cluster (``CLUSTER
  KEYSLOT``), grouped — the proof that a partition's (a model's) keys share one slot.
"""

from __future__ import annotations

import contextlib
import random
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import redis

from bench._redis import wait_ping
from streams.redis_client import RedisConnection, connect_redis


@dataclass(frozen=True)
class RedisTarget:
    """A test's Redis: ``url`` of the server (or of one cluster node) and ``cluster``."""

    url: str
    cluster: bool = False

    @property
    def flags(self) -> list[str]:
        """The CLI flags naming this Redis."""
        return ["--redis-url", self.url, *(["--redis-cluster"] if self.cluster else [])]

    def client(self) -> redis.Redis:
        """A client as driftline builds it (a ``RedisCluster`` for a cluster)."""
        return connect_redis(RedisConnection(self.url, cluster=self.cluster))


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


@contextlib.contextmanager
def redis_cluster(nodes: int = 3) -> Iterator[str]:
    """``nodes`` cluster-enabled redis-servers joined into one cluster (no replicas, no
    persistence); yields a node's URL. The servers are stopped and their directory
    removed on exit."""
    workdir = Path(tempfile.mkdtemp(prefix="redis-cluster-"))
    ports: list[int] = []
    while len(ports) < nodes:
        if (port := free_port()) not in ports:
            ports.append(port)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for p in ports:
            procs.append(subprocess.Popen(
                ["redis-server", "--port", str(p), "--bind", "127.0.0.1",
                 "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{p}.conf",
                 "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for p in ports:
            wait_ping(p)
        made = subprocess.run(["redis-cli", "--cluster", "create",
                               *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas", "0",
                               "--cluster-yes"], capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stdout + made.stderr
        deadline = time.monotonic() + 30
        for p in ports:  # every node must see the whole cluster, not only the first
            with redis.Redis(port=p) as node:
                while node.cluster("info")["cluster_state"] != "ok":
                    assert time.monotonic() < deadline, f"node {p}: cluster never became ok"
                    time.sleep(0.2)
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def slots_by_group(client: redis.Redis, keys: Iterable[bytes | str],
                   pattern: str) -> dict[str, dict[str, int]]:
    """Keys matching ``pattern`` (searched in the key with its ``{``/``}`` removed, so
    where the hash tag sits does not decide the group), grouped by the pattern's first
    group: group -> key -> its slot by ``CLUSTER KEYSLOT``."""
    node = cast(redis.RedisCluster, client)
    found = re.compile(pattern)
    groups: dict[str, dict[str, int]] = defaultdict(dict)
    for raw in keys:
        key = raw.decode() if isinstance(raw, bytes) else raw
        if (m := found.search(key.replace("{", "").replace("}", ""))) is not None:
            groups[m.group(1)][key] = int(node.cluster_keyslot(key))
    return dict(groups)
