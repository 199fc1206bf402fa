"""The checkpoint step both runners share: DLQ flush → one atomic Redis write per partition.

Order matters for "nothing lost, nothing counted twice": rejected records are delivered
to the DLQ before the offsets that skip them are stored; each partition's changed
windows and applied offset go to Redis in one fenced write; only the checkpoints that
landed are returned, and only their offsets may then be committed to Kafka. A write
refused by fencing drops that partition (another worker owns it now). A write refused
because Redis lost the partition's state drops the in-memory state too (it cannot be
stored whole) and hands the partition to ``on_lost``, which rebuilds it from Kafka.
Before any of that, ``same_topic`` may hold back the checkpoints of partitions whose topic
was deleted and recreated under the worker (:meth:`streams.recovery.Recovery.same_topic`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial

from streams.core import Checkpoint, Processor
from streams.dlq import DlqNotDelivered, DlqSender
from streams.health import PartitionHealth, WorkerHealth
from streams.join_items import JoinItem
from streams.retry import RetryPolicy
from streams.state import REDIS_TRANSIENT, FencedError, RedisStateStore, StateLostError

log = logging.getLogger(__name__)


def default_redis_retry() -> RetryPolicy:
    return RetryPolicy(REDIS_TRANSIENT, initial_s=0.1, max_s=2.0)


def default_dlq_retry() -> RetryPolicy:
    return RetryPolicy((DlqNotDelivered,), initial_s=0.5, max_s=5.0)


class Checkpointer:
    def __init__(
        self,
        *,
        topic: str,
        dlq: DlqSender,
        store: RedisStateStore,
        processor: Processor,
        health: WorkerHealth,
        redis_retry: RetryPolicy | None = None,
        dlq_retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_lost: Callable[[Checkpoint, str], None] | None = None,
        join: Callable[[int, tuple[JoinItem, ...]], object] | None = None,
        same_topic: Callable[[list[Checkpoint]], list[Checkpoint]] | None = None,
    ) -> None:
        """``on_lost(checkpoint, cause)``: called after a write of ``checkpoint`` found the
        state lost (its applied offset and watermarks: what the worker had); without one,
        :class:`StateLostError` propagates (the worker stops). ``join(partition, items)``:
        the label join's write (:meth:`streams.join.JoinStore.put`), made before each
        checkpoint that carries items — it skips what it already applied, so the replay
        after a crash between the two is harmless. ``same_topic(checkpoints)``: those that
        may be written (the others' topic was recreated; it has dealt with them)."""
        self.join = join
        self.same_topic = same_topic
        self.topic = topic
        self.on_lost = on_lost
        self.dlq = dlq
        self.store = store
        self.processor = processor
        self.health = health
        self.redis_retry = redis_retry or default_redis_retry()
        self.dlq_retry = dlq_retry or default_dlq_retry()
        self.clock = clock
        self.sleep = sleep

    def flush(self, partitions: list[int], should_stop: Callable[[], bool]) -> list[Checkpoint]:
        """Checkpoint ``partitions``; the checkpoints now safe in Redis (commit those).
        Partitions with nothing to write are probed instead (:meth:`probe_idle`)."""
        started = self.clock()
        checkpoints = [cp for p in partitions if (cp := self.processor.checkpoint(p))]
        changed = {cp.partition for cp in checkpoints}
        self.probe_idle([p for p in partitions if p not in changed], should_stop)
        if checkpoints and self.same_topic is not None:
            checkpoints = self.same_topic(checkpoints)
        if not checkpoints:
            return []
        self.health.flush_started_at = started
        try:
            return self._write(checkpoints, started, should_stop)
        finally:
            self.health.flush_started_at = None

    def _write(self, checkpoints: list[Checkpoint], started: float,
               should_stop: Callable[[], bool]) -> list[Checkpoint]:
        self.dlq_retry.call(self.dlq.flush, what="dlq flush", sleep=self.sleep,
                            should_stop=should_stop)
        written: list[Checkpoint] = []
        for cp in checkpoints:
            what = f"checkpoint topic={self.topic} partition={cp.partition}"
            try:
                if cp.joins and self.join is not None:
                    self.redis_retry.call(partial(self.join, cp.partition, cp.joins),
                                          what=f"label join of {what}", sleep=self.sleep,
                                          should_stop=should_stop)
                known = self.health.partitions.get(cp.partition)  # lag, for the evaluator
                lag = known.lag if known is not None else None
                self.redis_retry.call(partial(self.store.write, cp, lag=lag),
                                      what=what, sleep=self.sleep, should_stop=should_stop)
            except FencedError as exc:
                self._fenced(cp, f"{what} fenced, dropping the partition: {exc}")
                continue
            except StateLostError as exc:
                self._lost(cp, exc.cause, f"{what}: {exc}")
                continue
            self.processor.flushed(cp)
            written.append(cp)
            self.health.last_checkpoint_at = self.clock()
        self.health.record_flush(self.clock() - started)
        return written

    def probe_idle(self, partitions: list[int], should_stop: Callable[[], bool]) -> None:
        """Partitions with nothing new to write would notice lost state (or a newer owner)
        only at their next record: read their stored epoch and generation now (one round
        trip) and act as a refused write would."""
        idle = [cp for p in partitions if (cp := self.processor.checkpoint(p, idle=True))]
        if not idle:
            return
        stored = self.redis_retry.call(
            partial(self.store.stored_epochs, [cp.partition for cp in idle]),
            what=f"probe of idle partitions topic={self.topic}", sleep=self.sleep,
            should_stop=should_stop)
        for cp, (epoch, gen) in zip(idle, stored, strict=True):
            what = f"idle partition topic={self.topic} partition={cp.partition}"
            if epoch > cp.epoch:
                self._fenced(cp, f"{what}: Redis holds epoch {epoch} (ours {cp.epoch}), "
                             "dropping the partition")
            elif epoch < cp.epoch or gen != cp.generation:
                self._lost(cp, "missing" if epoch == 0 and gen == 0 else "older",
                           f"{what}: state lost — this worker last wrote generation "
                           f"{cp.generation} (epoch {cp.epoch}), Redis holds generation {gen} "
                           f"(epoch {epoch})")

    def _fenced(self, cp: Checkpoint, message: str) -> None:
        log.warning("%s", message)
        self.health.fenced += 1
        self.health.orphaned.add(cp.partition)
        self.processor.revoke(cp.partition)
        self.health.partitions.pop(cp.partition, None)

    def _lost(self, cp: Checkpoint, cause: str, message: str) -> None:
        log.error("%s", message)
        self.health.count_reset(cp.partition, cause)
        self.processor.revoke(cp.partition)
        self.health.partitions.pop(cp.partition, None)
        if self.on_lost is None:
            raise StateLostError(message, cause=cause)
        self.on_lost(cp, cause)

    def refresh_health(self) -> dict[int, PartitionHealth]:
        """Copy the processor's per-partition figures into :attr:`health`."""
        for p in self.processor.partitions:
            h = self.health.partitions.setdefault(p, PartitionHealth())
            h.counters = self.processor.counters(p)
            h.applied_offset = self.processor.applied_offset(p)
            h.open_windows = self.processor.open_windows(p)
        return self.health.partitions
