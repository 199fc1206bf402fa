"""Runner 2: faust-streaming agent → :class:`streams.core.Processor` → Redis.

Same core, state store and DLQ as the confluent runner (:mod:`streams.runner`); only the
driving loop differs. One agent, ``concurrency=1`` (faust issue #606 can commit past an
in-flight message with more), reading raw bytes with ``stream.take_events(max, within)``.

Exactness argument (the same guarantees as runner 1):

- faust acks a ``take_events`` batch only when the agent asks for the next one, and
  commits only acked offsets. The agent body handles a batch completely and
  *synchronously* — process, DLQ flush, one atomic Redis write per changed partition —
  before it asks for more. So a Kafka commit never covers a record whose effect is not
  in Redis, and because the body never awaits, rebalance callbacks never interleave
  with a half-applied batch. (The cost: one checkpoint per batch; see bench/RESULTS.md.)
- Records at or below a partition's applied offset are skipped by the core, so the
  replay after a crash (from the committed offset, at or before ``applied + 1``) counts
  nothing twice.
- On assignment (``app.on_partitions_assigned``) each new partition is loaded from Redis,
  which bumps its epoch; a zombie's later write is fenced and the partition dropped.
  A batch may also hold records of a partition this worker owns in Kafka's view but
  has not loaded yet (records buffered around a rebalance): it is loaded then, so no
  acked record is ever ignored. Records of partitions not assigned to us are ignored
  (their acks cannot be committed by a non-owner).
- On revocation the revoked partitions are checkpointed (normally a no-op: every batch
  already was) and dropped. SIGTERM: faust's worker stops the agent between batches.
- Redis and DLQ outages are waited out with :class:`streams.retry.RetryPolicy` (this
  blocks the event loop, so a long outage costs the partitions via session timeout —
  and fencing makes that safe). Any other error in a batch ends the process at once
  through ``on_fatal`` (``os._exit``) *without* letting faust ack and commit the batch:
  an exit is recoverable, a commit past unapplied records is not.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from streams.checkpoint import Checkpointer
from streams.core import Processor, Record
from streams.dlq import DlqSender
from streams.health import WorkerHealth
from streams.join_items import JoinItem
from streams.retry import RetryAborted, RetryPolicy
from streams.state import RedisStateStore

if TYPE_CHECKING:
    from streams.windows import ModelCatalog
    from streams.worker import WorkerSettings

log = logging.getLogger(__name__)

EX_SOFTWARE = 70


def _hard_exit(code: int) -> None:
    sys.stderr.flush()
    os._exit(code)


@dataclass(frozen=True, slots=True)
class FaustConfig:
    """``take_max`` / ``take_within_s``: the ``take_events`` batch (each batch is one
    checkpoint); ``group``: the faust app id, which is the Kafka consumer group."""

    topic: str = "predictions"
    group: str = "driftline-worker-faust"
    take_max: int = 10_000
    take_within_s: float = 0.5
    commit_interval_s: float = 2.8
    session_timeout_s: float = 10.0  # faust's default 60 s would stall restarts after a crash
    join_timeout_s: float = 120.0  # no assignment at all by then: exit (faust would hang)
    stop_timeout_s: float = 20.0  # after SIGTERM, exit hard if faust has not stopped by then
    log_level: str = "warning"


class FaustRunner:
    """Drives a :class:`Processor` from a faust agent (processor, store, DLQ injected)."""

    def __init__(
        self,
        *,
        bootstrap: str,
        dlq: DlqSender,
        store: RedisStateStore,
        processor: Processor,
        config: FaustConfig,
        redis_retry: RetryPolicy | None = None,
        dlq_retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_fatal: Callable[[int], None] = _hard_exit,
        join: Callable[[int, tuple[JoinItem, ...]], object] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.dlq = dlq
        self.store = store
        self.processor = processor
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self.on_fatal = on_fatal
        self.health = WorkerHealth()
        self._checkpointer = Checkpointer(
            topic=config.topic, dlq=dlq, store=store, processor=processor, health=self.health,
            redis_retry=redis_retry, dlq_retry=dlq_retry, clock=clock, sleep=sleep, join=join,
        )
        self.redis_retry = self._checkpointer.redis_retry
        self._stopping = False
        self._assigned: set[int] = set()  # Kafka's view of our partitions of the topic
        self._joined = False
        self._worker: Any = None

    # -- faust wiring ------------------------------------------------------------------
    def build_app(self) -> Any:
        """The faust app with its one agent and rebalance hooks (not started)."""
        import faust

        cfg = self.config
        app = faust.App(
            cfg.group,
            broker=f"kafka://{self.bootstrap}",
            store="memory://",
            topic_disable_leader=True,
            web_enabled=False,
            autodiscover=False,
            consumer_auto_offset_reset="earliest",
            broker_commit_interval=cfg.commit_interval_s,
            broker_session_timeout=cfg.session_timeout_s,
            broker_heartbeat_interval=max(0.5, cfg.session_timeout_s / 5),
            stream_buffer_maxsize=max(4096, cfg.take_max),
        )
        source = app.topic(cfg.topic, key_type=bytes, value_type=bytes,
                           key_serializer="raw", value_serializer="raw")

        def mine(tps: Iterable[Any]) -> set[int]:
            return {tp.partition for tp in tps if tp.topic == cfg.topic}

        async def on_assigned(sender: Any, *args: Any, signal: Any = None, **kw: Any) -> None:
            self.on_assigned(mine(args[0] if args else kw["assigned"]))

        async def on_revoked(sender: Any, *args: Any, signal: Any = None, **kw: Any) -> None:
            self.on_revoked(mine(args[0] if args else kw["revoked"]))

        # mode's signal typing wants a keyword-only ``signal`` it passes anyway
        app.on_partitions_assigned.connect(cast(Any, on_assigned))
        app.on_partitions_revoked.connect(cast(Any, on_revoked))

        async def agent(stream: Any) -> None:
            async for events in stream.take_events(cfg.take_max, within=cfg.take_within_s):
                records = [
                    Record(m.partition, m.offset, _ms(m.timestamp), m.value)
                    for m in (e.message for e in events)
                ]
                self.handle_batch(records)

        app.agent(source, name="driftline-profiles", concurrency=1)(agent)
        return app

    def _join_watchdog(self) -> None:
        # A fatal group-join error (e.g. a session timeout the broker refuses) leaves faust
        # running without partitions forever (its app tasks do not even start); exit instead.
        if not self._joined:
            log.error("no partition assignment within %.0fs (group %s): exiting",
                      self.config.join_timeout_s, self.config.group)
            self.on_fatal(EX_SOFTWARE)

    def run(self) -> None:
        """Run the faust worker until SIGTERM / SIGINT (or :meth:`stop`)."""
        from faust import Worker

        runner = self

        class _Worker(Worker):
            def _schedule_shutdown(self, signum: signal.Signals) -> None:
                runner._begin_stop()
                super()._schedule_shutdown(signum)

        app = self.build_app()
        self._worker = _Worker(app, loglevel=self.config.log_level, quiet=True,
                              redirect_stdouts=False, override_logging=False,
                              stdout=sys.stderr)  # its banner/cursor escapes stay off stdout
        watchdog = threading.Timer(self.config.join_timeout_s, self._join_watchdog)
        watchdog.daemon = True
        watchdog.start()
        try:
            self._worker.execute_from_commandline()
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise
        finally:
            watchdog.cancel()

    def stop(self) -> None:
        """Ask the worker to stop after the current batch (signal-safe)."""
        self._begin_stop()
        if self._worker is not None:
            self._worker._schedule_shutdown(signal.SIGTERM)  # what its SIGTERM handler does

    def _begin_stop(self) -> None:
        # faust can hang in its own shutdown when a rebalance races it (seen: a coordinator
        # marked dead during the final OffsetFetch). Every batch is already in Redis, so
        # after ``stop_timeout_s`` exiting hard loses nothing (like a kill -9, which the
        # exactness tests cover); only the last Kafka commits may be missing.
        if self._stopping:
            return
        self._stopping = True
        timer = threading.Timer(self.config.stop_timeout_s, self._stop_watchdog)
        timer.daemon = True
        timer.start()

    def _stop_watchdog(self) -> None:
        log.warning("faust did not stop within %.0fs; state is checkpointed, exiting",
                    self.config.stop_timeout_s)
        self.on_fatal(0)

    # -- the batch (synchronous on purpose: see module doc) ----------------------------
    def handle_batch(self, records: list[Record]) -> None:
        """Apply one batch and make it durable in Redis before returning."""
        try:
            owned = set(self.processor.partitions)
            for p in {r.partition for r in records} - owned:
                if p in self._assigned:
                    self._load(p)
            for rejected in self.processor.process(records):
                self.dlq.send(rejected)
                self.health.dlq_sent += 1
            self.health.records += len(records)
            self.checkpoint(self.processor.partitions)
        except RetryAborted as exc:  # stopping while Redis/DLQ are down: nothing acked
            log.error("batch not checkpointed, exiting without commit: %s", exc)
            self.on_fatal(EX_SOFTWARE)
        except Exception:
            log.exception("batch failed topic=%s offsets=%s..%s; exiting without commit",
                          self.config.topic, records[0].offset if records else None,
                          records[-1].offset if records else None)
            self.processor.discard()  # half-applied: nothing of it may reach Redis
            self.on_fatal(EX_SOFTWARE)

    def checkpoint(self, partitions: list[int]) -> None:
        """DLQ flush → one atomic Redis write per changed partition (faust commits after)."""
        self._checkpointer.flush(partitions, should_stop=lambda: self._stopping)
        self._checkpointer.refresh_health()

    # -- rebalance hooks ---------------------------------------------------------------
    def _load(self, partition: int) -> None:
        snap = self.redis_retry.call(
            partial(self.store.load, partition),
            what=f"load topic={self.config.topic} partition={partition}", sleep=self.sleep,
        )
        self.processor.assign(snap)
        log.info("assigned topic=%s partition=%d epoch=%d applied_offset=%d",
                 self.config.topic, partition, snap.epoch, snap.applied_offset)

    def on_assigned(self, partitions: set[int]) -> None:
        """faust passes the whole new assignment: load the partitions we do not hold."""
        self._assigned = set(partitions)
        self._joined = True
        for p in sorted(partitions - set(self.processor.partitions)):
            self._load(p)
        for p in set(self.processor.partitions) - partitions:  # lost without a revoke
            self.processor.revoke(p)
            self.health.partitions.pop(p, None)

    def on_revoked(self, partitions: set[int]) -> None:
        self._assigned -= partitions
        mine = sorted(partitions & set(self.processor.partitions))
        try:
            self.checkpoint(mine)
        except RetryAborted as exc:
            log.warning("revoke without checkpoint (state resumes from Redis): %s", exc)
        for p in mine:
            self.processor.revoke(p)
            self.health.partitions.pop(p, None)
            log.info("revoked topic=%s partition=%d", self.config.topic, p)


def run_worker(settings: WorkerSettings, catalog: ModelCatalog,
               on_health: Callable[[WorkerHealth], None] | None = None) -> int:
    """``driftline worker --engine faust``: same settings, meaning and ``on_health`` hook
    as :func:`streams.worker.run_confluent_worker`; runs until SIGTERM / SIGINT."""
    from confluent_kafka import Producer

    from streams.label_worker import join_store, label_specs, label_worker
    from streams.runner import producer_config
    from streams.worker import build_processor, build_store

    producer = Producer(producer_config(settings.kafka_bootstrap))
    store = build_store(settings, catalog)
    specs = label_specs(catalog)
    join = join_store(store.client, settings.key_prefix, specs, settings.id_key) if specs else None
    labels = (label_worker(settings.kafka_bootstrap, f"{settings.group}-labels",
                           settings.labels_topic, settings.labels_dlq_topic, join)
              if join is not None else None)  # the labels topic is read by confluent-kafka
    runner = FaustRunner(
        bootstrap=settings.kafka_bootstrap,
        dlq=DlqSender(producer, topic=settings.dlq_topic, source_topic=settings.topic),
        store=store,
        processor=build_processor(settings, catalog),
        config=FaustConfig(topic=settings.topic, group=settings.group,
                           take_max=max(settings.batch_size, 1),
                           take_within_s=min(settings.checkpoint_interval_s, 1.0),
                           session_timeout_s=settings.session_timeout_ms / 1000),
        join=partial(join.put, "p") if join is not None else None,
    )
    if on_health is not None:
        on_health(runner.health)
    if labels is not None:
        labels.on_fatal = runner.stop
        labels.start()
    try:
        runner.run()
    finally:
        if labels is not None:
            labels.stop()
        producer.flush(10)
        store.client.close()
    log.info("faust worker stopped: %d records, %d checkpoints", runner.health.records,
             runner.health.checkpoints)
    return 0


def _ms(timestamp_s: float | None) -> int:
    """faust gives the Kafka timestamp in float seconds; the core wants int ms."""
    return round(timestamp_s * 1000.0) if timestamp_s is not None else 0
