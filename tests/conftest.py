"""Shared fixtures: the real stack (Kafka + Redis), a fresh topic and key prefix per test.

The stack is the project's own (`driftline/stack/stack.sh up`, started here when it is
not running) unless ``KAFKA_BOOTSTRAP`` and ``REDIS_URL`` name one you bring. A test that
needs a Redis Cluster takes ``cluster_url`` (three real redis-servers, started once per
session), or runs on both with ``@pytest.mark.parametrize("redis_target", ["single",
"cluster"], indirect=True)``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.cluster import RedisTarget, redis_cluster

REPO = Path(__file__).resolve().parent.parent
STACK = REPO / "driftline" / "stack" / "stack.sh"


def _stack_env() -> dict[str, str]:
    if os.environ.get("KAFKA_BOOTSTRAP") and os.environ.get("REDIS_URL"):
        return {"KAFKA_BOOTSTRAP": os.environ["KAFKA_BOOTSTRAP"], "REDIS_URL": os.environ["REDIS_URL"]}
    subprocess.run([str(STACK), "up"], check=True)
    out = subprocess.run([str(STACK), "env"], check=True, capture_output=True, text=True).stdout
    env: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    return env


@pytest.fixture(scope="session")
def stack() -> dict[str, str]:
    """Addresses of the real services: ``{"KAFKA_BOOTSTRAP": ..., "REDIS_URL": ...}``."""
    env = _stack_env()
    os.environ.update(env)  # subprocesses (workers, CLI) started by tests see the same stack
    return env


@pytest.fixture(scope="session")
def kafka_bootstrap(stack: dict[str, str]) -> str:
    return stack["KAFKA_BOOTSTRAP"]


@pytest.fixture(scope="session")
def redis_url(stack: dict[str, str]) -> str:
    return stack["REDIS_URL"]


@pytest.fixture()
def make_topic(kafka_bootstrap: str) -> Iterator[Callable[..., str]]:
    """Create fresh uuid-named topics; they are deleted after the test."""
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    created: list[str] = []

    def make(partitions: int = 1, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        futures[name].result(timeout=30)
        created.append(name)
        return name

    yield make
    if created:
        for fut in admin.delete_topics(created, operation_timeout=30).values():
            with contextlib.suppress(Exception):  # cleanup is best effort
                fut.result(timeout=30)


@pytest.fixture()
def topic(make_topic: Callable[..., str]) -> str:
    return make_topic(3)


@pytest.fixture(scope="session")
def cluster_url() -> Iterator[str]:
    """A node's URL of a 3-master Redis Cluster started for this session."""
    with redis_cluster() as url:
        yield url


@pytest.fixture()
def redis_target(request: pytest.FixtureRequest, redis_url: str) -> RedisTarget:
    """The stack's Redis, or (``indirect`` parameter ``"cluster"``) the session's cluster."""
    kind = getattr(request, "param", "single")
    if kind == "cluster":
        return RedisTarget(request.getfixturevalue("cluster_url"), cluster=True)
    assert kind == "single", kind
    return RedisTarget(redis_url)


@pytest.fixture()
def key_prefix(redis_target: RedisTarget) -> Iterator[str]:
    """A fresh Redis key prefix; every key under it is deleted after the test."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis_target.client()
    try:
        # keys may carry a hash tag after the prefix: match both `prefix:` and `prefix{`;
        # on a cluster the scan visits every master and the delete is split by slot
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
