"""PredictionProducer and ``driftline simulate`` against the real broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import msgspec
import pytest
from confluent_kafka import Consumer

from streams.events import InvalidEvent, decode_event
from streams.producer import DeliveryError, PredictionProducer
from streams.simulate import generate_events, generate_records
from streams.simulate_spec import build_spec

pytestmark = pytest.mark.integration
T0 = 1_800_000_000.0


def consume_all(bootstrap: str, topic: str, n: int, timeout_s: float = 60.0) -> list[tuple[
        bytes | None, bytes]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    out: list[tuple[bytes | None, bytes]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(out) < n and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, 1.0):
                assert msg.error() is None, msg.error()
                out.append((msg.key(), msg.value()))
        # anything beyond n would be a duplicate: give it a moment to show up
        for msg in consumer.consume(10_000, 1.0):
            out.append((msg.key(), msg.value()))
    finally:
        consumer.close()
    return out


def test_producer_round_trip(kafka_bootstrap: str, make_topic: Callable[..., str]) -> None:
    topic = make_topic(3)
    spec = build_spec(["credit-risk"], 4, 2)
    events = list(generate_events(spec, 3000, T0, seed=11))
    with PredictionProducer.connect(kafka_bootstrap, topic=topic) as producer:
        for event in events:
            producer.send(event)
    assert producer.delivered == 3000 and producer.failed == 0
    got = consume_all(kafka_bootstrap, topic, 3000)
    assert len(got) == 3000
    by_id = {e["id"]: e for e in events}
    for key, value in got:
        decoded = msgspec.json.decode(value)
        assert key == decoded["id"].encode()
        assert decoded == by_id[decoded["id"]]


def test_delivery_failure_is_surfaced() -> None:
    producer = PredictionProducer.connect("127.0.0.1:1", topic="nowhere", message_timeout_ms=1500)
    producer.send({"model": "m", "id": "x", "features": {}, "prediction": 1})
    with pytest.raises(DeliveryError) as info:
        producer.close(timeout=10)
    assert producer.failed == 1 and info.value.failures
    assert "timed out" in info.value.failures[0].reason.lower()


def test_simulate_cli_with_bad_records(kafka_bootstrap: str, make_topic: Callable[..., str]) -> None:
    topic = make_topic(4)
    n = 20_000
    cmd = [sys.executable, "-m", "driftline.cli", "simulate", "--topic", topic, "--count", str(n),
           "--rate", "max", "--seed", "9", "--start-ts", str(T0), "--bad-ratio", "0.01",
           "--models", "credit-risk,fraud", "--drift", "income:shift=0.5sd@5s", "--no-progress"]
    env = dict(os.environ, DRIFTLINE_KAFKA_BOOTSTRAP=kafka_bootstrap)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"sent {n} events" in done.stderr
    got = consume_all(kafka_bootstrap, topic, n)
    assert len(got) == n  # nothing lost, nothing duplicated
    spec = build_spec(["credit-risk", "fraud"], 5, 2, drifts=["income:shift=0.5sd@5s"],
                      bad_ratio=0.01)
    expected = {r.value: r for r in generate_records(spec, n, T0, seed=9)}
    assert {v for _, v in got} == set(expected)  # the very bytes the generator makes
    kinds: dict[str, int] = {}
    for _, value in got:
        rec = expected[value]
        if rec.bad is None:
            assert decode_event(value).model in ("credit-risk", "fraud")
            continue
        kinds[rec.bad] = kinds.get(rec.bad, 0) + 1
        if rec.bad == "unknown_model":
            assert decode_event(value).model not in ("credit-risk", "fraud")
        else:
            with pytest.raises(InvalidEvent):
                decode_event(value)
    assert len(kinds) == 6 and 120 < sum(kinds.values()) < 280
