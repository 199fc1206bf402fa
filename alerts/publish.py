"""Publishers: the ``alerts`` Kafka topic and, optionally, an Alertmanager webhook.

Both take already-built :class:`~alerts.message.Alert` objects; the evaluator decides
*when* to publish (one message per state change, plus repeats). The topic is a durable
sink (:class:`KafkaAlertPublisher`: ``publish`` waits for the acks and raises, so the
evaluator stores nothing and tries again). The webhook is a :class:`Notifier`: the
evaluator only hands it the alerts, and :class:`alerts.webhook.WebhookNotifier` posts them
(:class:`WebhookPublisher`) on its own thread with retries, so it can neither hold the
topic back nor make it repeat a message.
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.request
from collections.abc import Callable, Sequence
from typing import Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from alerts.message import Alert, encode
from sketches.errors import DriftlineError

log = logging.getLogger(__name__)


class PublishError(DriftlineError):
    """An alert could not be delivered."""


class Notifier(Protocol):
    def notify(self, alerts: Sequence[Alert]) -> None:
        """Take ``alerts`` for delivery and return at once; never raises for delivery."""
        ...


class KafkaAlertPublisher:
    """Producer to the alerts topic, keyed by alert id; ``publish`` waits for acks.

    The ``Producer`` is given ready (idempotent, built by ``streams.produce.producer_config``
    with purpose ``"alerts"`` in :mod:`driftline.monitor`): ``alerts`` does not configure
    Kafka clients itself. With ``commit`` (a sharded evaluator:
    :meth:`alerts.shards.ShardGroup.commit_into`) the producer is transactional and each
    ``publish`` is one transaction that also commits the notices consumed — refused, and
    aborted, when the evaluator's group generation is over (a replaced evaluator). A
    *fatal* producer error (the transactional producer can never be used again: fenced by
    its own transactional id, refused authorization, ...) makes ``renew`` build a new one
    for the next publish, instead of failing every evaluation from then on.
    """

    def __init__(self, producer: Producer, topic: str = "alerts", timeout_s: float = 30.0,
                 commit: Callable[[Producer, float], None] | None = None,
                 renew: Callable[[], Producer] | None = None) -> None:
        self._producer = producer
        self.topic = topic
        self._timeout_s = timeout_s
        self._commit = commit
        self._renew = renew
        self._initialised = False
        self.renewed = 0

    def publish(self, alerts: Sequence[Alert]) -> None:
        if self._commit is not None:
            self._publish_transaction(alerts)
            return
        errors: list[str] = []

        def report(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                errors.append(f"{msg.key()!r}: {err}")

        for alert in alerts:
            self._producer.produce(
                self.topic, key=alert.id.encode(), value=encode(alert), on_delivery=report
            )
        remaining = self._producer.flush(self._timeout_s)
        if remaining or errors:
            raise PublishError(
                f"alerts to {self.topic!r} not delivered: {remaining} pending, errors {errors}"
            )
        for alert in alerts:
            log.info("alert %s %s: %s", alert.id, alert.state, alert.summary)

    def _publish_transaction(self, alerts: Sequence[Alert]) -> None:
        assert self._commit is not None
        p = self._producer
        try:
            if not self._initialised:
                p.init_transactions(self._timeout_s)
                self._initialised = True
            p.begin_transaction()
            for alert in alerts:
                p.produce(self.topic, key=alert.id.encode(), value=encode(alert))
            self._commit(p, self._timeout_s)
            p.commit_transaction(self._timeout_s)
        except KafkaException as exc:
            err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            if err is None or err.txn_requires_abort() or not err.fatal():
                try:
                    p.abort_transaction(self._timeout_s)
                except KafkaException as abort_exc:
                    log.debug("abort after a failed alert transaction: %s", abort_exc)
            elif self._renew is not None:
                log.error("the alerts producer failed for good (%s): the next publish "
                          "uses a new one", err)
                self._producer, self._initialised = self._renew(), False
                self.renewed += 1
            raise PublishError(f"alerts to {self.topic!r} not committed (aborted): {exc}") from exc
        for alert in alerts:
            log.info("alert %s %s: %s", alert.id, alert.state, alert.summary)

    def close(self) -> None:
        self._producer.flush(self._timeout_s)


def alertmanager_payload(alerts: Sequence[Alert]) -> list[dict[str, object]]:
    """Alertmanager's ``POST /api/v2/alerts`` body: labels, annotations, startsAt/endsAt."""
    body: list[dict[str, object]] = []
    for a in alerts:
        item: dict[str, object] = {
            "labels": {
                "alertname": f"driftline_{a.kind}",
                "model": a.model,
                "column": a.column,
                "metric": a.metric,
                "severity": a.severity,
            },
            "annotations": {"summary": a.summary, "value": str(a.value)},
            "startsAt": a.since or a.ts,
        }
        if a.state == "resolved":
            item["endsAt"] = a.ts
        body.append(item)
    return body


class WebhookPublisher:
    """Posts alerts to an Alertmanager-compatible endpoint (``.../api/v2/alerts``), once,
    synchronously; :class:`alerts.webhook.WebhookNotifier` queues and retries the posts."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url
        self._timeout_s = timeout_s

    def publish(self, alerts: Sequence[Alert]) -> None:
        data = json.dumps(alertmanager_payload(alerts)).encode()
        req = urllib.request.Request(
            self.url, data=data, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=self._timeout_s) as resp:
                if resp.status >= 300:
                    raise PublishError(f"webhook {self.url} answered {resp.status}")
        except (OSError, http.client.HTTPException) as exc:  # HTTPError (4xx/5xx) is an OSError
            raise PublishError(f"webhook {self.url}: {exc}") from exc
