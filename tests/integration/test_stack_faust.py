"""faust-streaming (the design card's runtime) works against the real Kafka 4 broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from confluent_kafka import Producer

pytestmark = pytest.mark.integration
APP = Path(__file__).with_name("faust_counter.py")


def test_faust_agent_consumes_every_message(
    kafka_bootstrap: str, redis_url: str, topic: str, key_prefix: str, tmp_path: Path
) -> None:
    n = 3_000
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(n):
        producer.produce(topic, value=f"m{i}".encode(), key=str(i).encode())
    assert producer.flush(30) == 0

    env = dict(os.environ, FAUST_TOPIC=topic, COUNTER_KEY=key_prefix,
               KAFKA_BOOTSTRAP=kafka_bootstrap, REDIS_URL=redis_url)
    log = (tmp_path / "faust.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, str(APP), "worker", "-l", "warn", "--without-web"],
        env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
    )
    client = redis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 120
        count = 0
        while time.monotonic() < deadline and proc.poll() is None:
            count = int(client.get(f"{key_prefix}:n") or 0)
            if count >= n:
                break
            time.sleep(0.5)
        assert proc.poll() is None, (tmp_path / "faust.log").read_text()[-3000:]
        assert count == n, (tmp_path / "faust.log").read_text()[-3000:]
        seen = client.smembers(f"{key_prefix}:seen")
        assert seen == {f"m{i}".encode() for i in range(n)}
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        client.close()
