"""Wiring of the label join into a worker process: the join store for the prediction
runner's checkpoints and a :class:`~streams.labels.LabelRunner` thread on the labels topic.

Only models with ``[models.M.performance]`` in the models file take part; without any,
nothing here runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis
from confluent_kafka import Consumer, Producer

from streams.checkpoint import default_redis_retry
from streams.dlq import DlqSender
from streams.join import JoinStore, id_key
from streams.kafka_config import KafkaConnection, client_config
from streams.labels import LabelRunner
from streams.produce import producer_config
from streams.windows import LabelSpec, ModelCatalog

log = logging.getLogger(__name__)


def label_specs(catalog: ModelCatalog) -> dict[str, LabelSpec]:
    return {name: m.labels for name, m in catalog.models.items() if m.labels is not None}


def join_store(client: redis.Redis, prefix: str, specs: Mapping[str, LabelSpec],
               key: bytes | None = None) -> JoinStore:
    return JoinStore(client, prefix=prefix, specs=specs, key=id_key(client, prefix, key))


def label_consumer_config(kafka: KafkaConnection | str, group: str,
                          instance_id: str | None = None) -> dict[str, Any]:
    """The labels consumer: its own group, committed offsets (the join skips replays);
    static membership (``<instance id>-labels``) when the worker has an instance id, so a
    restarted worker gets its label partitions back without waiting out the session."""
    fixed: dict[str, Any] = {
        "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky"}
    if instance_id:
        fixed["group.instance.id"] = f"{instance_id}-labels"
    return client_config(kafka, {"session.timeout.ms": 10_000}, fixed=fixed)


@dataclass
class LabelWorker:
    """The label runner on its own thread (started and stopped by the worker)."""

    runner: LabelRunner
    producer: Any
    on_fatal: Callable[[], None] = lambda: None
    """Called when the label runner dies: the worker stops (and exits non-zero) rather
    than keep running without labels while it reports ready."""
    thread: threading.Thread | None = None
    failed: bool = False

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="driftline-labels", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.runner.run()
        except Exception:
            log.exception("the label runner died; stopping the worker")
            self.failed = True
            self.on_fatal()

    def stop(self, timeout_s: float = 15.0) -> None:
        self.runner.stop()
        if self.thread is not None:
            self.thread.join(timeout_s)
        self.producer.flush(10)


def label_worker(kafka: KafkaConnection | str, group: str, topic: str, dlq_topic: str,
                 join: JoinStore, instance_id: str | None = None) -> LabelWorker:
    producer = Producer(producer_config(kafka, "dlq"))
    runner = LabelRunner(
        consumer=Consumer(label_consumer_config(kafka, group, instance_id)),
        dlq=DlqSender(producer, topic=dlq_topic, source_topic=topic),
        put=join.put, specs=join.specs, topic=topic, retry=default_redis_retry(),
    )
    return LabelWorker(runner, producer)
