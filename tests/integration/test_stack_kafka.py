"""The real stack answers: Kafka round trips (confluent-kafka, kcat) and Redis."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest
import redis
from confluent_kafka import Consumer, Producer

pytestmark = pytest.mark.integration


def _consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=1.0):
                if msg.error():
                    raise AssertionError(f"consume error: {msg.error()}")
                values.append(msg.value())
        # a short extra poll proves nothing beyond `expected` arrives
        for msg in consumer.consume(num_messages=1000, timeout=1.0):
            if not msg.error():
                values.append(msg.value())
    finally:
        consumer.close()
    return values


def test_confluent_round_trip_10k_three_partitions(kafka_bootstrap: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    sent = [json.dumps({"i": i, "payload": f"v{i}"}).encode() for i in range(10_000)]
    failures: list[str] = []

    def report(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    for i, value in enumerate(sent):
        producer.produce(topic, value=value, key=str(i).encode(), on_delivery=report)
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0
    assert failures == []

    got = _consume_all(kafka_bootstrap, topic, len(sent))
    assert len(got) == len(sent)
    assert sorted(got) == sorted(sent)


def test_kcat_produces_python_consumes(kafka_bootstrap: str, topic: str) -> None:
    body = '{"model": "m", "from": "kcat"}'
    subprocess.run(
        ["kcat", "-P", "-b", kafka_bootstrap, "-t", topic, "-p", "1", "-k", "k1"],
        input=body.encode(),
        check=True,
        timeout=30,
    )
    got = _consume_all(kafka_bootstrap, topic, 1)
    assert got == [body.encode()]


def test_redis_round_trip(redis_url: str, key_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        key = f"{key_prefix}:blob"
        blob = bytes(range(256)) * 10
        client.set(key, blob)
        assert client.get(key) == blob
        pipe = client.pipeline(transaction=True)
        pipe.hset(f"{key_prefix}:h", mapping={"a": 1, "b": 2})
        pipe.hincrby(f"{key_prefix}:h", "a", 5)
        pipe.execute()
        assert client.hgetall(f"{key_prefix}:h") == {b"a": b"6", b"b": b"2"}
    finally:
        client.close()
