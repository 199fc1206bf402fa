"""When Redis or the topic is not what the worker remembers: detect it, say it, rebuild.

Kafka is the source of truth and Redis a cache of what was applied from it, so every
mismatch between the two is resolved by reading Kafka again — never by skipping records:

- **state lost** (a checkpoint found the partition's state missing or older than this
  worker wrote: Redis restarted empty, ``FLUSHALL``, eviction, an old snapshot): reload
  what Redis has (an older snapshot is a consistent earlier state) and re-read the
  partition from the offset after it, from the earliest retained offset when nothing is
  left. ``on_state_loss``: ``rebuild`` (default), ``resume`` or ``stop`` (raise: the worker
  exits).
- **missing at start**: no state in Redis but the group has committed offsets — the state
  was lost while no worker ran: rebuilt the same way.
- ``resume`` keeps reading where the worker is (at start: at the group's committed offset)
  with what Redis still has. What is known exactly is the offsets whose effect is gone:
  those the lost state had applied beyond what Redis still holds (``kept + 1 .. applied``;
  at start ``0 .. committed - 1``) — counted as a gap (records, DLQ'd and late ones
  included; a lost state's windows already compacted into model-level records are counted
  although they survive). The windows they fed are marked incomplete as after a rebuild
  whose input aged out: during the run up to the window of each model's watermark when the
  state was lost (its records cannot be later than that); at start, where no watermark
  survives, up to the window of each model's first event after the committed offset, for
  models seen before the partition reaches the log end it had then.
- **another topic** (the stored topic id differs — deleted and recreated — or the stored
  position is beyond the partition's end): the old state is deleted, never merged, and
  the partition is read from the start. A topic recreated under a *running* worker is
  caught before each checkpoint write (:meth:`Recovery.same_topic` compares the topic's
  current id with the one the partition's state was read from): librdkafka keeps
  fetching at the old position in the new topic without any error when the new topic
  already holds more records than that, so neither a rebalance nor an offset reset can
  be waited for. What was read since the last checkpoint is dropped unwritten.
- **fewer partitions** (the topic recreated with fewer): the old topic's partitions beyond
  the new count are deleted (:mod:`streams.orphans`) when the worker learns the topic's
  id and count — on assignment, and when it finds the topic recreated under it.
- **a gap** (retention deleted records before they were processed; the consumer runs with
  ``auto.offset.reset=error`` so this is reported, not absorbed): the skipped offsets are
  counted per partition and logged at ERROR; reading resumes at the earliest retained.

Each case is logged at ERROR with what was lost, counted in :class:`WorkerHealth`
(``state_resets``, ``offset_gaps``), noted in Redis for the evaluator's operational alert
(:meth:`RedisStateStore.note_incident`), and, while a partition is being rebuilt, the
worker reports not ready.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from functools import partial
from typing import Any, Final

from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

from sketches.retry import RetryPolicy
from streams.core import Checkpoint, PartitionSnapshot, Processor
from streams.health import WorkerHealth
from streams.orphans import DELETED, drop_if_foreign
from streams.state import REDIS_TRANSIENT, RedisStateStore, StateLostError

log = logging.getLogger(__name__)

MODES: Final = ("rebuild", "resume", "stop")


class Recovery:
    """Positions partitions on assignment and repairs them when state or topic changed.

    ``topic_id()`` returns the topic's current Kafka id (None when it cannot be read);
    ``partition_count()`` the topic's partition count as read with that id (None: unknown).
    """

    def __init__(
        self,
        *,
        consumer: Any,
        topic: str,
        store: RedisStateStore,
        processor: Processor,
        health: WorkerHealth,
        retry: RetryPolicy,
        should_stop: Callable[[], bool],
        sleep: Callable[[float], None],
        topic_id: Callable[[], str | None] = lambda: None,
        partition_count: Callable[[], int | None] = lambda: None,
        mode: str = "rebuild",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"on_state_loss must be one of {', '.join(MODES)}, got {mode!r}")
        self.consumer = consumer
        self.topic = topic
        self.store = store
        self.processor = processor
        self.health = health
        self.retry = retry
        self.should_stop = should_stop
        self.sleep = sleep
        self.topic_id = topic_id
        self.partition_count = partition_count
        self.mode = mode
        self._marking: dict[int, int] = {}
        """partition -> the offset up to which new models' first windows are marked
        incomplete (``resume`` at start, outside a rebuild)."""

    def _call(self, fn: Callable[[], Any], what: str) -> Any:
        return self.retry.call(fn, what=f"{what} topic={self.topic}", sleep=self.sleep,
                               should_stop=self.should_stop)

    # -- assignment --------------------------------------------------------------------
    def start_offset(self, partition: int, topic_id: str | None) -> int:
        """Load ``partition`` into the processor; the offset to start reading from."""
        snap: PartitionSnapshot = self._call(partial(self.store.load, partition), "load")
        rebuild = False
        if topic_id and snap.topic_id and snap.topic_id != topic_id:
            self._incident(partition, "topic_recreated",
                           f"stored state belongs to topic id {snap.topic_id}, the topic now "
                           f"has id {topic_id} (deleted and recreated): deleting it")
            snap = self._call(partial(self.store.reset, partition), "reset")
            rebuild = True
        elif snap.applied_offset < 0 and (committed := self._committed(partition)) >= 0:
            self._incident(partition, "missing_at_start",
                           "no state in Redis, but the group has committed offsets: the state "
                           "was lost while no worker ran")
            if self.mode == "stop":
                raise StateLostError(f"partition {partition}: state missing", cause="missing")
            if self.mode == "resume":
                return self._resume_at(partition, dataclasses.replace(
                    snap, topic_id=topic_id or snap.topic_id), committed)
            rebuild = True
        self.processor.assign(dataclasses.replace(snap, topic_id=topic_id or snap.topic_id))
        if rebuild:
            self._mark_rebuilding(partition)
        return snap.applied_offset + 1 if snap.applied_offset >= 0 else OFFSET_BEGINNING

    def _committed(self, partition: int) -> int:
        try:
            [tp] = self.consumer.committed([TopicPartition(self.topic, partition)], timeout=10)
        except KafkaException as exc:
            log.warning("committed offset of topic=%s partition=%d unknown: %s",
                        self.topic, partition, exc)
            return -1
        return int(tp.offset)

    # -- during the run ----------------------------------------------------------------
    def state_lost(self, cp: Checkpoint, cause: str) -> None:
        """A checkpoint (``cp``, refused) found the partition's state lost (the
        checkpointer has dropped the in-memory state): reload and re-read per ``mode``."""
        partition = cp.partition
        self._note(partition, f"state_lost_{cause}", rebuilding=self.mode == "rebuild")
        if self.mode == "stop":
            raise StateLostError(f"partition {partition}: state lost ({cause})", cause=cause)
        snap: PartitionSnapshot = self._call(partial(self.store.load, partition), "load")
        snap = dataclasses.replace(snap, topic_id=snap.topic_id or self.topic_id())
        if self.mode == "resume":
            self._resume_after(snap, cp)
            return
        self.processor.assign(snap)
        start = snap.applied_offset + 1 if snap.applied_offset >= 0 else OFFSET_BEGINNING
        log.error("topic=%s partition=%d: rebuilding from Kafka, offset %s (Redis holds the "
                  "state up to offset %d)", self.topic, partition,
                  "earliest" if start == OFFSET_BEGINNING else start, snap.applied_offset)
        self._mark_rebuilding(partition, from_start=start == OFFSET_BEGINNING)
        self._reposition(partition, start)

    def offset_reset(self, partition: int, requested: int) -> None:
        """The broker has no record at ``requested`` (the consumer's next offset)."""
        low, high = self.consumer.get_watermark_offsets(
            TopicPartition(self.topic, partition), timeout=10)
        if requested < low:
            gap = low - requested
            self.health.offset_gaps[partition] = self.health.offset_gaps.get(partition, 0) + gap
            log.error("topic=%s partition=%d: offsets %d..%d were deleted by retention before "
                      "they were processed (%d records lost); continuing at %d",
                      self.topic, partition, requested, low - 1, gap, low)
            self._note(partition, None, rebuilding=partition in self.health.rebuilding,
                       records=gap)
            self._reposition(partition, low)
            return
        self._incident(partition, "topic_recreated",
                       f"offset {requested} is not in the partition (offsets {low}..{high - 1}):"
                       " the topic was recreated or truncated; deleting the stored state")
        self.processor.revoke(partition)
        self._restart(partition, self.topic_id())

    def same_topic(self, checkpoints: list[Checkpoint], *, reposition: bool = True
                   ) -> list[Checkpoint]:
        """Before a write: the checkpoints whose records came from the topic incarnation
        their state was built from. A partition whose topic id changed (deleted and
        recreated while this worker read it) is dropped unwritten — it may hold records of
        the new topic applied on top of the old state — and, with ``reposition``, its
        stored state is deleted and the new topic read from its start; in a rebalance
        (``reposition=False``) the next owner does that on assignment."""
        if not any(cp.topic_id for cp in checkpoints):
            return checkpoints
        current = self.topic_id()
        if current is None:  # cannot tell (deleted right now, or the broker is away)
            return checkpoints
        count = self.partition_count()
        keep = []
        for cp in checkpoints:
            if cp.topic_id is None or cp.topic_id == current:
                keep.append(cp)
                continue
            self.processor.revoke(cp.partition)
            self.health.partitions.pop(cp.partition, None)
            if count is not None and cp.partition >= count:
                continue  # the new topic has no such partition: deleted below
            what = (f"the topic's id changed from {cp.topic_id} to {current} while it was read "
                    "(deleted and recreated): the records read since the last checkpoint "
                    f"(up to offset {cp.applied_offset}) are dropped unwritten")
            if not reposition:
                log.error("topic=%s partition=%d: %s; the partition's next owner deletes the "
                          "stored state", self.topic, cp.partition, what)
                continue
            self._incident(cp.partition, "topic_recreated",
                           what + ", deleting the stored state and reading the new topic "
                           "from its start")
            self._restart(cp.partition, current)
        if len(keep) < len(checkpoints):
            self.drop_orphans(current)
        return keep

    def progress(self, partition: int, applied_offset: int) -> None:
        """After a checkpoint: a rebuild that reached its target is over."""
        marking = self._marking.get(partition)
        if marking is not None and applied_offset + 1 >= marking:
            del self._marking[partition]
            self.processor.mark_incomplete(partition, pending=False)
        target = self.health.rebuilding.get(partition)
        if target is not None and applied_offset + 1 >= target:
            del self.health.rebuilding[partition]
            self.processor.mark_incomplete(partition, pending=False)
            log.info("topic=%s partition=%d: rebuilt up to offset %d", self.topic, partition,
                     applied_offset)
            self._note(partition, None, rebuilding=False)

    def drop_orphans(self, topic_id: str | None) -> None:
        """Delete the stored partitions the topic (id ``topic_id``, of the partition count
        read with it) no longer has: a topic recreated with fewer partitions (rule and
        safety: :mod:`streams.orphans`). Best effort: a failure is logged, the next
        assignment tries again."""
        count = self.partition_count()
        if not topic_id or not count:
            return
        try:
            beyond = [p for p in self.store.stored_partitions() if p >= count]
            for p in beyond:
                if drop_if_foreign(self.store, p, topic_id) != DELETED:
                    continue
                self.processor.revoke(p)  # held from the old topic's assignment, if at all
                self.health.partitions.pop(p, None)
                self.health.rebuilding.pop(p, None)
                log.error("topic=%s partition=%d: the topic (id %s) has %d partitions now; "
                          "deleted the stored state of the old topic's partition %d",
                          self.topic, p, topic_id, count, p)
                self.health.count_reset(p, "topic_recreated")
                self.store.note_incident(p, "topic_recreated", rebuilding=False)
        except REDIS_TRANSIENT as exc:
            log.warning("topic=%s: stored partitions beyond the topic's %d not checked (%s); "
                        "checked again at the next assignment", self.topic, count, exc)

    # -- resume ------------------------------------------------------------------------
    def _resume_after(self, snap: PartitionSnapshot, cp: Checkpoint) -> None:
        """``resume`` after ``cp`` was refused: keep reading after ``cp.applied_offset`` with
        what Redis has; the offsets only the lost state had are a gap, the windows they fed
        (none past the model's watermark at ``cp``) incomplete."""
        p = cp.partition
        gap = max(0, cp.applied_offset - snap.applied_offset)
        incomplete = dict(snap.incomplete)
        for model, mark in cp.watermarks.items() if gap else ():
            spec = self.processor.catalog.get(model)
            if spec is not None:
                start = mark - mark % spec.window_ms
                incomplete[model] = max(start, incomplete.get(model, start))
        self.processor.assign(dataclasses.replace(
            snap, applied_offset=max(cp.applied_offset, snap.applied_offset),
            incomplete=incomplete))
        self._gap(p, gap, f"resuming at offset {cp.applied_offset + 1} with the state Redis "
                  f"has (applied offset {snap.applied_offset}): offsets "
                  f"{snap.applied_offset + 1}..{cp.applied_offset} are in no window, windows "
                  f"up to {incomplete} are incomplete")
        self._note(p, None, rebuilding=False, records=gap)

    def _resume_at(self, partition: int, snap: PartitionSnapshot, committed: int) -> int:
        """``resume`` with the state missing at start: read from the group's ``committed``
        offset; offsets 0..committed-1 are a gap; new models' first windows incomplete
        until the partition reaches today's log end."""
        self.processor.assign(dataclasses.replace(snap, applied_offset=committed - 1))
        self.processor.mark_incomplete(partition)
        try:
            _low, high = self.consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=10)
            self._marking[partition] = high
        except KafkaException:
            self._marking[partition] = committed
        self._gap(partition, committed, f"resuming at the committed offset {committed}: "
                  f"offsets 0..{committed - 1} are in no window, the windows of each model's "
                  "first event from there on and earlier are incomplete")
        self._note(partition, None, rebuilding=False, records=committed)
        return committed

    def _gap(self, partition: int, records: int, what: str) -> None:
        self.health.offset_gaps[partition] = self.health.offset_gaps.get(partition, 0) + records
        log.error("topic=%s partition=%d: %s", self.topic, partition, what)

    # -- helpers -----------------------------------------------------------------------
    def _restart(self, partition: int, topic_id: str | None) -> None:
        """Delete the partition's stored state (another topic's) and read it from the start."""
        snap = self._call(partial(self.store.reset, partition), "reset")
        self.processor.assign(dataclasses.replace(snap, topic_id=topic_id))
        self._mark_rebuilding(partition)
        self._reposition(partition, OFFSET_BEGINNING)

    def _incident(self, partition: int, cause: str, what: str) -> None:
        log.error("topic=%s partition=%d: %s", self.topic, partition, what)
        self.health.count_reset(partition, cause)
        self._note(partition, cause, rebuilding=True)

    def _note(self, partition: int, cause: str | None, *, rebuilding: bool,
              records: int = 0) -> None:
        self._call(partial(self.store.note_incident, partition, cause, rebuilding=rebuilding,
                           records=records), "note incident")

    def _mark_rebuilding(self, partition: int, from_start: bool = True) -> None:
        try:
            low, high = self.consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=10)
        except KafkaException:
            return
        if from_start and low > 0:  # the lost state's share of offsets below ``low`` is gone
            self.processor.mark_incomplete(partition)
            self.health.offset_gaps[partition] = self.health.offset_gaps.get(partition, 0) + low
            log.error("topic=%s partition=%d: offsets 0..%d have aged out of the topic; windows "
                      "they fed are rebuilt without them", self.topic, partition, low - 1)
            self._note(partition, None, rebuilding=True, records=low)
        if high > max(low, 0):
            self.health.rebuilding[partition] = high
        else:
            self._note(partition, None, rebuilding=False)

    def _reposition(self, partition: int, offset: int) -> None:
        """Move the fetch position; a partition in an offset-reset error state cannot be
        ``seek``-ed, so it is unassigned and assigned again at ``offset``."""
        tp = TopicPartition(self.topic, partition)
        self.consumer.incremental_unassign([tp])
        self.consumer.incremental_assign([TopicPartition(self.topic, partition, offset)])
