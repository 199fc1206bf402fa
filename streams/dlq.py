"""Dead-letter routing: a rejected record's original value (and key) go, unchanged, to the
DLQ topic.

Headers (all UTF-8): ``driftline.reason`` (a reason code of :data:`streams.events.REASONS`),
``driftline.error`` (message, ≤ 1000 chars), ``driftline.source.topic``,
``driftline.source.partition``, ``driftline.source.offset``. Delivery is at least once: a
record rejected again after a crash replay is sent again (DLQ consumers dedupe on
source topic/partition/offset).
"""

from __future__ import annotations

import logging
from typing import Any

from sketches.errors import DriftlineError
from streams.core import Rejected
from streams.produce import produce

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 1000


class DlqNotDelivered(DriftlineError):
    """Some DLQ messages are not acknowledged yet (broker down); retry :meth:`flush`."""


def dlq_headers(rejected: Rejected, source_topic: str) -> list[tuple[str, bytes]]:
    rec = rejected.record
    return [
        ("driftline.reason", rejected.reason.encode()),
        ("driftline.error", rejected.message[:MAX_ERROR_CHARS].encode("utf-8", "replace")),
        ("driftline.source.topic", source_topic.encode()),
        ("driftline.source.partition", str(rec.partition).encode()),
        ("driftline.source.offset", str(rec.offset).encode()),
    ]


class DlqSender:
    """Sends rejected records with a confluent-kafka ``Producer`` (injected).

    :meth:`send` is non-blocking; :meth:`flush` (called before each state checkpoint)
    waits for every delivery and re-sends failed ones, raising :class:`DlqNotDelivered`
    when some are still outstanding after ``timeout_s``.
    """

    def __init__(self, producer: Any, *, topic: str, source_topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self.source_topic = source_topic
        self._failed: list[Rejected] = []
        self.sent = 0

    def send(self, rejected: Rejected) -> None:
        rec = rejected.record
        log.info(
            "dlq topic=%s partition=%d offset=%d reason=%s: %s",
            self.source_topic, rec.partition, rec.offset, rejected.reason, rejected.message[:200],
        )

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                log.warning(
                    "dlq delivery failed topic=%s partition=%d offset=%d: %s",
                    self.source_topic, rec.partition, rec.offset, err,
                )
                self._failed.append(rejected)

        produce(self.producer, self.topic, value=rec.value, key=rec.key,
                headers=dlq_headers(rejected, self.source_topic), on_delivery=on_delivery)
        self.sent += 1
        self.producer.poll(0)

    def flush(self, timeout_s: float = 10.0) -> None:
        remaining = int(self.producer.flush(timeout_s))
        if self._failed:
            failed, self._failed = self._failed, []
            for rejected in failed:
                self.send(rejected)
            remaining += int(self.producer.flush(timeout_s))
        if remaining or self._failed:
            raise DlqNotDelivered(f"{remaining + len(self._failed)} DLQ messages not delivered")
