"""Producing to Kafka: the one producer configuration and the one backpressure loop.

Every driftline producer — the prediction-event client (:mod:`streams.producer`), the
dead-letter sender (:mod:`streams.dlq`) and the alerts topic (:mod:`alerts.publish`, which
gets its ready ``Producer`` from the wiring in :mod:`driftline.monitor`, since ``alerts``
does not import ``streams``) — is built by :func:`producer_config`: idempotent (no
duplicates or reordering from librdkafka's retries; implies ``acks=all``) plus the tuning of
its purpose. :func:`produce` enqueues one message and waits out a full local queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

from sketches.errors import DriftlineError
from streams.kafka_config import KafkaConnection, client_config


class ProducerError(DriftlineError):
    """Base of the errors of producing to Kafka."""


class BackpressureError(ProducerError):
    """The local queue stayed full for longer than the caller allows."""


class KafkaProducerLike(Protocol):
    """The part of ``confluent_kafka.Producer`` driftline uses."""

    def produce(self, topic: str, *, value: bytes | None = ..., key: bytes | None = ...,
                headers: list[tuple[str, str | bytes | None]] | None = ...,
                on_delivery: Callable[[Any, Any], None] | None = ...) -> None: ...

    def poll(self, timeout: float = ...) -> int: ...

    def flush(self, timeout: float = ...) -> int: ...

    def __len__(self) -> int: ...


Purpose = Literal["events", "dlq", "alerts"]

_TUNING: Mapping[Purpose, Mapping[str, Any]] = {
    # prediction events: large compressed batches, a deep local queue
    "events": {"linger.ms": 20, "batch.size": 1_000_000, "compression.type": "lz4",
               "queue.buffering.max.messages": 500_000, "message.timeout.ms": 120_000},
    # dead letters: keep retrying while the broker is away (the checkpoint waits for them)
    "dlq": {"linger.ms": 20, "message.timeout.ms": 600_000},
    # alerts: few messages, sent at once (publish waits for their acks)
    "alerts": {"linger.ms": 5},
}


def producer_config(kafka: KafkaConnection | str, purpose: Purpose,
                    **overrides: Any) -> dict[str, Any]:
    """librdkafka settings of a driftline producer on ``kafka`` (a bootstrap string, or a
    :class:`~streams.kafka_config.KafkaConnection` carrying security settings), built by
    :func:`streams.kafka_config.client_config`; ``overrides`` (librdkafka keys, e.g.
    ``**{"linger.ms": 5}``) and the connection's own properties win over the tuning."""
    # idempotence implies acks=all, bounded in-flight, safe retries: not negotiable
    return client_config(kafka, {**_TUNING[purpose], **overrides},
                         fixed={"enable.idempotence": True})


def produce(
    client: KafkaProducerLike,
    topic: str,
    *,
    value: bytes | None,
    key: bytes | None = None,
    headers: Sequence[tuple[str, bytes]] | None = None,
    on_delivery: Callable[[Any, Any], None] | None = None,
    max_block_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    poll_s: float = 0.05,
) -> None:
    """Enqueue one message. While librdkafka's local queue is full (``BufferError``), serve
    delivery reports with ``poll`` — which frees room — and try again: for at most
    ``max_block_s`` (then :class:`BackpressureError`), or until there is room (``None``)."""
    extra: dict[str, Any] = {}
    if key is not None:
        extra["key"] = key
    if headers is not None:
        extra["headers"] = list(headers)
    deadline: float | None = None
    while True:
        try:
            client.produce(topic, value=value, on_delivery=on_delivery, **extra)
            return
        except BufferError:
            if max_block_s is not None:
                now = clock()
                if deadline is None:
                    deadline = now + max_block_s
                elif now >= deadline:
                    raise BackpressureError(
                        f"local queue full for {max_block_s:.1f}s "
                        f"({len(client)} messages waiting)"
                    ) from None
            client.poll(poll_s)
