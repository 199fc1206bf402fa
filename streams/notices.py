"""Change notices: after each checkpoint, one small message per model whose windows changed.

Topic ``<events topic>.notices`` (created when missing, with ``shards`` partitions), key
= the model name, partitioned by librdkafka's ``consistent`` partitioner (CRC-32 of the
key): the partition is the model's evaluator shard (:mod:`alerts.shards` computes the
same number). Value ``{"model": ..., "partition": <events partition>}``.

Notices are hints for the evaluators — which models to re-read — never the record of
anything: they are sent after the checkpoint is safe in Redis, without waiting for acks,
and a lost one only delays an evaluation until the evaluator's next full sweep.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

import msgspec
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streams.core import Checkpoint

log = logging.getLogger(__name__)

DEFAULT_SHARDS: Final = 16
NOTICE_TUNING: Final = {"partitioner": "consistent", "linger.ms": 50,
                        "message.timeout.ms": 30_000}
"""Producer settings of the notices (the partitioner is part of the contract)."""


def notices_topic(topic: str) -> str:
    return f"{topic}.notices"


_METADATA_ATTEMPTS = 40


def ensure_topic(admin: AdminClient, topic: str, partitions: int,
                 sleep: Callable[[float], None] = time.sleep) -> int:
    """Create ``topic`` with ``partitions`` partitions unless it exists; its partition count."""
    futures = admin.create_topics([NewTopic(topic, partitions, -1)], request_timeout=15)
    refused: KafkaException | None = None
    try:
        futures[topic].result()
        log.info("created the notices topic %s with %d shards", topic, partitions)
    except KafkaException as exc:
        # an existing topic is fine however the broker says no (already exists, or not
        # authorized to create: a client without Create ACLs on a topic made beforehand)
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            refused = exc
    for attempt in range(1 if refused else _METADATA_ATTEMPTS):
        meta = admin.list_topics(topic, timeout=15).topics[topic]
        # a topic just created may not be in the broker's metadata yet (KRaft propagates
        # it from the controller a moment later): wait for it rather than fail
        if meta.error is None or meta.error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART or (
                attempt == _METADATA_ATTEMPTS - 1):
            break
        sleep(0.25)
    if meta.error is not None:
        raise refused or KafkaException(meta.error)
    return len(meta.partitions)


class NoticeSender:
    """Sends the notices of written checkpoints on ``producer`` (settings: NOTICE_TUNING)."""

    def __init__(self, producer: Any, topic: str) -> None:
        self._producer = producer
        self.topic = topic
        self.sent = 0
        self.failed = 0

    def _report(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            self.failed += 1
            if self.failed == 1 or self.failed % 1000 == 0:
                log.warning("change notices not delivered (%d so far; evaluators fall back "
                            "to their full sweep): %s", self.failed, err)

    def send(self, checkpoints: Iterable[Checkpoint]) -> None:
        for cp in checkpoints:
            for model in sorted({k.model for k in cp.windows}):
                value = msgspec.json.encode({"model": model, "partition": cp.partition})
                try:
                    self._producer.produce(self.topic, key=model.encode(), value=value,
                                           on_delivery=self._report)
                    self.sent += 1
                except BufferError:
                    self._report(KafkaError(KafkaError._QUEUE_FULL), None)
        self._producer.poll(0)

    def close(self, timeout_s: float = 5.0) -> None:
        self._producer.flush(timeout_s)
