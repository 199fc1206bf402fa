"""Runner 1: confluent-kafka consumer → :class:`streams.core.Processor` → Redis.

Loop: ``consume`` a batch → ``Processor.process`` → rejected records to the DLQ →
every ``checkpoint_records`` records or ``checkpoint_interval_s`` seconds: flush the DLQ
producer, write each changed partition's checkpoint to Redis (one atomic write each),
then commit ``applied_offset + 1`` to Kafka. Kafka commits are informational (lag
tools); the source of truth for where to resume is the applied offset in Redis.

Rebalancing is cooperative-sticky. ``on_assign`` loads each partition from Redis
(bumping its epoch) and seeks to ``applied + 1`` (the committed offset / earliest when
Redis has nothing); ``on_revoke`` / ``on_lost`` checkpoint and drop the partitions. A
write rejected by fencing drops that partition's state (another worker owns it now).
Redis and DLQ failures are waited out with :class:`sketches.retry.RetryPolicy`; broker
outages are waited out by librdkafka. :meth:`ConfluentRunner.stop` (SIGTERM) ends the
loop after the current batch with a final checkpoint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from sketches.retry import RetryAborted, RetryPolicy
from streams import produce
from streams.checkpoint import Checkpointer
from streams.core import Checkpoint, Processor, Record
from streams.dlq import DlqSender
from streams.health import WorkerHealth
from streams.join_items import JoinItem
from streams.kafka_config import KafkaConnection, client_config
from streams.recovery import Recovery
from streams.state import RedisStateStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    topic: str = "predictions"
    batch_size: int = 5000
    poll_timeout_s: float = 0.5
    checkpoint_records: int = 100_000
    checkpoint_interval_s: float = 2.0
    on_state_loss: str = "rebuild"


def consumer_config(
    bootstrap: KafkaConnection | str,
    group: str,
    *,
    session_timeout_ms: int = 10_000,
    instance_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """librdkafka settings for the worker's consumer (offsets stored manually), built by
    :func:`streams.kafka_config.client_config` (``bootstrap`` may carry security settings,
    which may not contradict the offset handling below)."""
    tuning: dict[str, Any] = {
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": session_timeout_ms,
        "heartbeat.interval.ms": max(500, session_timeout_ms // 5),
        "statistics.interval.ms": 5000,  # feeds get_watermark_offsets(cached=True) for lag
        "stats_cb": lambda _stats: None,
        "enable.partition.eof": False,
    }
    fixed: dict[str, Any] = {
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        # positions always come from Redis (or the earliest offset): a position the broker
        # no longer has is an error the runner counts as a gap, never a silent reset
        "auto.offset.reset": "error",
    }
    if instance_id:
        fixed["group.instance.id"] = instance_id
    conf = client_config(bootstrap, tuning, fixed=fixed)
    conf.update(extra or {})
    return conf


def producer_config(bootstrap: KafkaConnection | str) -> dict[str, Any]:
    """The DLQ producer's settings: idempotent, keeps retrying while the broker is away
    (:func:`streams.produce.producer_config`, purpose ``"dlq"``)."""
    return produce.producer_config(bootstrap, "dlq")


class ConfluentRunner:
    """Drives a :class:`Processor` from a confluent-kafka ``Consumer`` (all injected)."""

    def __init__(
        self,
        *,
        consumer: Any,
        dlq: DlqSender,
        store: RedisStateStore,
        processor: Processor,
        config: RunnerConfig,
        redis_retry: RetryPolicy | None = None,
        dlq_retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        topic_id: Callable[[], str | None] = lambda: None,
        partition_count: Callable[[], int | None] = lambda: None,
        notices: Callable[[list[Checkpoint]], None] | None = None,
        join: Callable[[int, tuple[JoinItem, ...]], object] | None = None,
    ) -> None:
        """``topic_id()``: the topic's current Kafka id (see :mod:`streams.recovery`), asked
        on assignment and before every checkpoint write that carries records: keep it to
        one metadata request (:class:`streams.worker.TopicIds`); ``partition_count()``: the
        topic's partition count as read by the last ``topic_id()`` call (None: unknown).
        ``notices``: told the checkpoints safe in Redis (:class:`streams.notices.NoticeSender`).
        ``join``: the label join's write, made before each checkpoint (:mod:`streams.join`)."""
        self._notices = notices
        self.consumer = consumer
        self.dlq = dlq
        self.store = store
        self.processor = processor
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self.health = WorkerHealth(stuck_after_s=max(30.0, 5 * config.checkpoint_interval_s))
        self._checkpointer = Checkpointer(
            topic=config.topic, dlq=dlq, store=store, processor=processor, health=self.health,
            redis_retry=redis_retry, dlq_retry=dlq_retry, clock=clock, sleep=sleep, join=join,
        )
        self.redis_retry = self._checkpointer.redis_retry
        self.recovery = Recovery(
            consumer=consumer, topic=config.topic, store=store, processor=processor,
            health=self.health, retry=self.redis_retry, should_stop=lambda: self._stopping,
            sleep=sleep, topic_id=topic_id, partition_count=partition_count,
            mode=config.on_state_loss,
        )
        self._checkpointer.on_lost = self.recovery.state_lost
        self._checkpointer.same_topic = self._same_topic
        self._revoking = False
        self._stopping = False
        self._since_checkpoint = 0
        self._last_checkpoint = clock()

    def stop(self) -> None:
        """Ask the loop to finish the current batch, checkpoint and return (signal-safe)."""
        self._stopping = True

    # -- main loop ---------------------------------------------------------------------
    def run(self) -> None:
        topic = self.config.topic
        self.consumer.subscribe(
            [topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        try:
            while not self._stopping:
                self.poll_once()
            self.checkpoint(self.processor.partitions)
        except RetryAborted as exc:
            log.warning("stopping without a final checkpoint: %s", exc)
        finally:
            try:
                self.consumer.close()  # leaves the group; on_revoke checkpoints what is left
            except (KafkaException, RuntimeError, RetryAborted) as exc:
                log.warning("consumer close: %s", exc)

    def poll_once(self) -> int:
        """Consume and process one batch; checkpoint when due. Returns records consumed."""
        msgs = self.consumer.consume(self.config.batch_size, self.config.poll_timeout_s)
        records = [
            Record(m.partition(), m.offset(), m.timestamp()[1], m.value(), m.key())
            for m in msgs
            if m.error() is None
        ]
        if len(records) != len(msgs):
            for m in msgs:
                err = m.error()
                if err is not None and err.code() == KafkaError._AUTO_OFFSET_RESET:
                    self.recovery.offset_reset(m.partition(), m.offset())
                elif err is not None and err.code() != KafkaError._PARTITION_EOF:
                    log.warning(
                        "consumer error topic=%s partition=%s offset=%s: %s",
                        m.topic(), m.partition(), m.offset(), err,
                    )
        if records:
            try:
                rejections = self.processor.process(records)
            except Exception:
                # Not a payload (those are rejected, never raised) but a bug: drop the
                # half-applied state so the close path cannot checkpoint it; a restarted
                # worker resumes from Redis.
                self.processor.discard()
                raise
            for rejected in rejections:
                self.dlq.send(rejected)
                self.health.dlq_sent += 1
            self._since_checkpoint += len(records)
            self.health.records += len(records)
            if self.health.unflushed_since is None:
                self.health.unflushed_since = self.clock()
        due = self._since_checkpoint >= self.config.checkpoint_records or (
            self.clock() - self._last_checkpoint >= self.config.checkpoint_interval_s
        )
        if due:
            self.checkpoint(self.processor.partitions)
        if self.health.orphaned:
            self._rejoin()
        return len(records)

    def _rejoin(self) -> None:
        """Partitions this worker was fenced from are still assigned to it: leave and join
        the group again so they go to whichever member owns them now (or back here)."""
        log.warning("topic=%s: fenced from partitions %s but still assigned them; rejoining "
                    "the group", self.config.topic, sorted(self.health.orphaned))
        self.consumer.unsubscribe()
        self.health.orphaned.clear()
        self.consumer.subscribe([self.config.topic], on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)

    # -- checkpoints -------------------------------------------------------------------
    def _same_topic(self, checkpoints: list[Checkpoint]) -> list[Checkpoint]:
        # inside a rebalance callback the partition cannot be re-positioned: the next
        # owner finds the stored topic id stale on assignment and rebuilds it
        return self.recovery.same_topic(checkpoints, reposition=not self._revoking)

    def checkpoint(self, partitions: list[int]) -> None:
        """DLQ flush → one atomic Redis write per changed partition → Kafka commit."""
        written = self._checkpointer.flush(partitions, should_stop=lambda: self._stopping)
        if set(self.processor.partitions) <= set(partitions):  # nothing held unwritten
            self.health.unflushed_since = None
        offsets = [TopicPartition(self.config.topic, cp.partition, cp.applied_offset + 1)
                   for cp in written]
        for cp in written:
            self.recovery.progress(cp.partition, cp.applied_offset)
        if written and self._notices is not None:
            try:
                self._notices(written)
            except KafkaException as exc:  # hints only: the evaluators' sweep covers them
                log.warning("change notices not sent: %s", exc)
        if offsets:
            try:
                self.consumer.commit(offsets=offsets, asynchronous=True)
            except KafkaException as exc:
                log.warning("kafka commit failed (state is safe in Redis): %s", exc)
        self._since_checkpoint = 0
        self._last_checkpoint = self.clock()
        self._update_health()

    def _update_health(self) -> None:
        for p, h in self._checkpointer.refresh_health().items():
            try:
                tp = TopicPartition(self.config.topic, p)
                _low, high = self.consumer.get_watermark_offsets(tp, cached=True)
                if high >= 0:
                    h.lag = max(0, high - (h.applied_offset + 1))
            except KafkaException:
                pass

    # -- rebalance callbacks -----------------------------------------------------------
    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        topic_id = self.recovery.topic_id() if partitions else None
        for tp in partitions:
            tp.offset = self.recovery.start_offset(tp.partition, topic_id)
            log.info("assigned topic=%s partition=%d offset=%d", tp.topic, tp.partition,
                     tp.offset)
        if partitions:
            self.recovery.drop_orphans(topic_id)  # a topic recreated with fewer partitions
        consumer.incremental_assign(partitions)
        self._update_health()

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        owned = set(self.processor.partitions)
        mine = [tp.partition for tp in partitions if tp.partition in owned]
        self._revoking = True
        try:
            self.checkpoint(mine)
        except RetryAborted as exc:
            log.warning("revoke without checkpoint (state resumes from Redis): %s", exc)
        finally:
            self._revoking = False
        for p in mine:
            self.processor.revoke(p)
            self.health.partitions.pop(p, None)
            log.info("revoked topic=%s partition=%d", self.config.topic, p)

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        log.warning("partitions lost: %s", [tp.partition for tp in partitions])
        self._on_revoke(consumer, partitions)
