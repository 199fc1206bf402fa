"""One producer configuration builder and one backpressure loop for every producer."""

from __future__ import annotations

from typing import Any

import pytest

from streams.dlq import DlqSender
from streams.produce import BackpressureError, produce, producer_config
from streams.runner import producer_config as runner_dlq_config


def test_every_producer_is_idempotent_with_its_own_tuning() -> None:
    # the settings each of the three producers had before they shared the builder
    assert producer_config("b:9092", "events") == {
        "bootstrap.servers": "b:9092", "enable.idempotence": True, "linger.ms": 20,
        "batch.size": 1_000_000, "compression.type": "lz4",
        "queue.buffering.max.messages": 500_000, "message.timeout.ms": 120_000}
    assert producer_config("b:9092", "dlq") == runner_dlq_config("b:9092") == {
        "bootstrap.servers": "b:9092", "enable.idempotence": True, "linger.ms": 20,
        "message.timeout.ms": 600_000}
    assert producer_config("b:9092", "alerts") == {
        "bootstrap.servers": "b:9092", "enable.idempotence": True, "linger.ms": 5}
    assert producer_config("b:9092", "events", **{"linger.ms": 5})["linger.ms"] == 5


class FullQueue:
    """A producer whose local queue has room again after ``full_for`` polls."""

    def __init__(self, full_for: int) -> None:
        self.full_for = full_for
        self.polls: list[float] = []
        self.produced: list[dict[str, Any]] = []

    def produce(self, topic: str, **kwargs: Any) -> None:
        if len(self.polls) < self.full_for:
            raise BufferError("Local: Queue full")
        self.produced.append({"topic": topic, **kwargs})

    def poll(self, timeout: float = 0.0) -> int:
        self.polls.append(timeout)
        return 0

    def flush(self, timeout: float = 0.0) -> int:
        return 0

    def __len__(self) -> int:
        return 7


def test_a_full_queue_is_served_by_polling_until_there_is_room() -> None:
    client = FullQueue(full_for=3)
    produce(client, "t", value=b"v", key=None, headers=[("h", b"1")])
    assert len(client.polls) == 3
    # a missing key is not passed at all; headers are
    assert client.produced == [{"topic": "t", "value": b"v", "on_delivery": None,
                                "headers": [("h", b"1")]}]


def test_a_queue_full_for_too_long_raises_backpressure() -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    client = FullQueue(full_for=1_000)
    with pytest.raises(BackpressureError, match="7 messages waiting"):
        produce(client, "t", value=b"v", max_block_s=3.0, clock=clock)
    assert client.produced == [] and len(client.polls) == 3


def test_dlq_sender_waits_out_a_full_queue() -> None:
    from streams.core import Record, Rejected

    client = FullQueue(full_for=2)
    sender = DlqSender(client, topic="p.dlq", source_topic="p")
    sender.send(Rejected(Record(0, 41, 0, b"{bad", b"k"), "not_json", "boom"))
    assert sender.sent == 1 and len(client.polls) == 3  # 2 while full, then poll(0)
    (msg,) = client.produced
    assert msg["key"] == b"k" and msg["value"] == b"{bad" and msg["topic"] == "p.dlq"
