"""Wiring of one worker process: settings → clients → :class:`ConfluentRunner`.

:class:`WorkerSettings` is the one frozen settings object both engines take; the faust
runner is expected to expose ``streams.faust_runner.run_worker(settings, catalog) -> int``
with the same meaning as :func:`run_confluent_worker`.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from types import FrameType

import redis
from confluent_kafka import Consumer, KafkaException, Producer, TopicCollection
from confluent_kafka.admin import AdminClient

from streams.core import DEFAULT_MAX_FUTURE_MS, Processor
from streams.dlq import DlqSender
from streams.events import DEFAULT_MAX_BYTES
from streams.health import WorkerHealth
from streams.kafka_config import KafkaConnection, client_config
from streams.label_worker import join_store, label_specs, label_worker
from streams.notices import DEFAULT_SHARDS, NOTICE_TUNING, NoticeSender, ensure_topic, notices_topic
from streams.produce import producer_config as base_producer_config
from streams.redis_client import RedisConnection, connect_redis
from streams.runner import ConfluentRunner, RunnerConfig, consumer_config, producer_config
from streams.state import DEFAULT_WINDOW_TTL_MS, RedisStateStore
from streams.windows import (
    DEFAULT_MAX_COLUMNS,
    DEFAULT_MAX_MODELS,
    DEFAULT_MAX_VERSIONS,
    Limits,
    ModelCatalog,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    kafka_bootstrap: str
    redis_url: str
    topic: str = "predictions"
    dlq_topic: str = "predictions.dlq"
    group: str = "driftline"
    key_prefix: str = "driftline"
    batch_size: int = 5000
    checkpoint_records: int = 100_000
    checkpoint_interval_s: float = 2.0
    session_timeout_ms: int = 10_000
    instance_id: str | None = None
    max_event_bytes: int = DEFAULT_MAX_BYTES
    window_ttl_ms: int = DEFAULT_WINDOW_TTL_MS
    redis_fsync: bool = False
    max_future_ms: int = DEFAULT_MAX_FUTURE_MS
    max_models: int = DEFAULT_MAX_MODELS
    max_columns: int = DEFAULT_MAX_COLUMNS
    max_versions: int = DEFAULT_MAX_VERSIONS
    on_state_loss: str = "rebuild"
    labels_topic: str = "labels"
    labels_dlq_topic: str = "labels.dlq"
    id_key: bytes | None = None
    """Key of the id hash of the label join (None: the deployment's key in Redis)."""
    shards: int = DEFAULT_SHARDS
    """Partitions of the notices topic when this worker creates it (evaluator shards)."""
    # security / client settings; None: plain ``kafka_bootstrap`` / ``redis_url``
    kafka: KafkaConnection | None = None
    redis: RedisConnection | None = None

    @property
    def kafka_connection(self) -> KafkaConnection:
        return self.kafka or KafkaConnection(self.kafka_bootstrap)

    @property
    def redis_connection(self) -> RedisConnection:
        return self.redis or RedisConnection(self.redis_url)


def build_processor(settings: WorkerSettings, catalog: ModelCatalog) -> Processor:
    return Processor(catalog, max_event_bytes=settings.max_event_bytes,
                     max_future_ms=settings.max_future_ms,
                     limits=Limits(models=settings.max_models, columns=settings.max_columns,
                                   versions=settings.max_versions))


def build_store(settings: WorkerSettings, catalog: ModelCatalog) -> RedisStateStore:
    client = connect_redis(settings.redis_connection, socket_timeout=10,
                           socket_connect_timeout=5, health_check_interval=10)
    return RedisStateStore(
        client,
        prefix=settings.key_prefix,
        topic=settings.topic,
        horizon_ms=catalog.max_horizon_ms,
        window_ttl_ms=settings.window_ttl_ms,
        fsync=settings.redis_fsync,
    )


class TopicIds:
    """Called: the topic's Kafka id (it changes when the topic is deleted and recreated),
    None when it cannot be read. One admin client for the worker's life: the runner asks
    before every checkpoint write (~0.5 ms against a local broker). :meth:`partitions`: the
    partition count the same answer gave."""

    def __init__(self, bootstrap: KafkaConnection | str, topic: str) -> None:
        self._admin = AdminClient(client_config(bootstrap))
        self.topic = topic
        self._failing = False
        self._count: int | None = None

    def partitions(self) -> int | None:
        """The topic's partition count as of the last call (None: not read)."""
        return self._count

    def __call__(self) -> str | None:
        self._count = None
        try:
            [future] = self._admin.describe_topics(TopicCollection([self.topic]),
                                                   request_timeout=5).values()
            described = future.result()
            found = str(described.topic_id)
            self._count = len(described.partitions)
        except (KafkaException, ValueError) as exc:
            # once per failing streak: the topic may be deleted for a while
            log.log(logging.DEBUG if self._failing else logging.WARNING,
                    "cannot read the id of topic %s (a recreation is noticed once it can be "
                    "read again, or by an offset reset): %s", self.topic, exc)
            self._failing = True
            return None
        self._failing = False
        return found


def check_redis(client: redis.Redis) -> str:
    """Say in ONE log line what the Redis configuration means for exactness (and return
    it): INFO when it keeps window state (``noeviction`` and AOF or RDB persistence),
    WARNING naming each setting that can lose it and what follows."""
    cfg: dict[str, str] = {}
    try:
        for name in ("maxmemory-policy", "maxmemory", "appendonly", "appendfsync", "save"):
            cfg.update({str(k): str(v) for k, v in client.config_get(name).items()})
    except redis.exceptions.RedisError as exc:  # e.g. a managed Redis refusing CONFIG
        line = (f"cannot read the Redis configuration ({exc}): make sure it runs "
                "maxmemory-policy noeviction with AOF — lost state is rebuilt from Kafka, but "
                "records already aged out of the topic are then gone for good")
        log.warning("%s", line)
        return line
    policy, limit = cfg.get("maxmemory-policy", "?"), cfg.get("maxmemory", "0")
    fsync, save = cfg.get("appendfsync", "everysec"), cfg.get("save", "")
    good: list[str] = []
    bad: list[str] = []
    if policy == "noeviction":
        good.append("maxmemory-policy noeviction (a full Redis refuses writes; it drops no "
                    "state)")
    else:
        bad.append(f"maxmemory-policy {policy} " + (f"with maxmemory {limit}" if limit != "0"
                                                   else "(no maxmemory set yet)")
                   + ": under memory pressure Redis evicts window state")
    if cfg.get("appendonly") == "yes":
        lost = "second" if fsync == "everysec" else "~30 s"
        good.append(f"AOF with appendfsync {fsync}" + (
            "" if fsync == "always" else
            f" (a crash of the Redis host loses the last {lost} of writes, noticed at the "
            "partition's next checkpoint and rebuilt from Kafka)"))
    elif save:
        good.append(f"RDB snapshots only (save {save!r}: a restart goes back to the last "
                    "snapshot and what came after is rebuilt from Kafka; AOF avoids that)")
    else:
        bad.append("no persistence (appendonly no, no save): a restart loses all window state")
    if not bad:
        line = "Redis keeps window state, exactness holds: " + "; ".join(good)
        log.info("%s", line)
        return line
    line = ("Redis may lose window state: " + "; ".join(bad) + ". Lost state is noticed at "
            "the partition's next checkpoint and rebuilt from Kafka, but records already aged "
            "out of the topic are then gone (their windows marked incomplete); use "
            "maxmemory-policy noeviction and appendonly yes"
            + (f" (fine: {'; '.join(good)})" if good else ""))
    log.warning("%s", line)
    return line


def notice_sender(settings: WorkerSettings) -> NoticeSender | None:
    """The change-notice sender (:mod:`streams.notices`), creating its topic when missing;
    None — with a warning — when the topic cannot be made (evaluators then sweep)."""
    topic = notices_topic(settings.topic)
    try:
        ensure_topic(AdminClient(client_config(settings.kafka_connection)), topic,
                     settings.shards)
    except KafkaException as exc:
        log.warning("no change notices (%s: %s): evaluators re-read every model on their "
                    "full sweep instead", topic, exc)
        return None
    producer = Producer(base_producer_config(settings.kafka_connection, "alerts",
                                             **NOTICE_TUNING))
    return NoticeSender(producer, topic)


def run_confluent_worker(
    settings: WorkerSettings,
    catalog: ModelCatalog,
    on_health: Callable[[WorkerHealth], None] | None = None,
) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code (0 after a clean stop).

    ``on_health`` receives the runner's live :class:`WorkerHealth` before consuming
    starts (the CLI hands it to the metrics endpoint)."""
    consumer = Consumer(
        consumer_config(
            settings.kafka_connection,
            settings.group,
            session_timeout_ms=settings.session_timeout_ms,
            instance_id=settings.instance_id,
        )
    )
    producer = Producer(producer_config(settings.kafka_connection))
    store = build_store(settings, catalog)
    check_redis(store.client)
    notices = notice_sender(settings)
    specs = label_specs(catalog)
    join = join_store(store.client, settings.key_prefix, specs, settings.id_key) if specs else None
    labels = (label_worker(settings.kafka_connection, f"{settings.group}-labels",
                           settings.labels_topic, settings.labels_dlq_topic, join,
                           settings.instance_id)
              if join is not None else None)
    topic_ids = TopicIds(settings.kafka_connection, settings.topic)
    runner = ConfluentRunner(
        consumer=consumer,
        dlq=DlqSender(producer, topic=settings.dlq_topic, source_topic=settings.topic),
        store=store,
        processor=build_processor(settings, catalog),
        config=RunnerConfig(
            topic=settings.topic,
            batch_size=settings.batch_size,
            checkpoint_records=settings.checkpoint_records,
            checkpoint_interval_s=settings.checkpoint_interval_s,
            on_state_loss=settings.on_state_loss,
        ),
        topic_id=topic_ids,
        partition_count=topic_ids.partitions,
        notices=notices.send if notices is not None else None,
        join=partial(join.put, "p") if join is not None else None,
    )

    if on_health is not None:
        on_health(runner.health)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: finishing the batch, checkpointing and stopping", signum)
        runner.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    if labels is not None:
        labels.on_fatal = runner.stop
        labels.start()
    try:
        runner.run()
    finally:
        if labels is not None:
            labels.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
        producer.flush(10)
        if notices is not None:
            notices.close()
        store.client.close()
    log.info("worker stopped: %d records, %d checkpoints", runner.health.records,
             runner.health.checkpoints)
    return 1 if labels is not None and labels.failed else 0
