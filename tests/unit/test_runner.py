"""ConfluentRunner with fake consumer / producer / store: ordering and failure handling."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis.exceptions

from streams.core import Checkpoint, PartitionSnapshot, Processor
from streams.dlq import DlqSender
from streams.retry import RetryAborted, RetryPolicy
from streams.runner import ConfluentRunner, RunnerConfig
from streams.state import REDIS_TRANSIENT, FencedError, StateLostError
from streams.windows import ModelCatalog

T0 = 1_795_420_800_000


class Msg:
    def __init__(self, partition: int, offset: int, value: bytes | None) -> None:
        self._p, self._o, self._v = partition, offset, value

    def error(self) -> None:
        return None

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def timestamp(self) -> tuple[int, int]:
        return (1, T0)

    def value(self) -> bytes | None:
        return self._v

    def topic(self) -> str:
        return "t"

    def key(self) -> bytes:
        return b"k"


class TP:
    def __init__(self, topic: str, partition: int, offset: int = -1001) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset


class FakeConsumer:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.batches: list[list[Msg]] = []
        self.assigned: list[TP] = []
        self.committed_offsets: dict[int, int] = {}
        self.subscriptions = 0

    def committed(self, tps: list[Any], timeout: float) -> list[TP]:
        return [TP(tp.topic, tp.partition, self.committed_offsets.get(tp.partition, -1001))
                for tp in tps]

    def incremental_unassign(self, partitions: list[Any]) -> None:
        self.log.append("unassign " + ",".join(str(tp.partition) for tp in partitions))

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.subscriptions += 1

    def unsubscribe(self) -> None:
        self.log.append("unsubscribe")

    def consume(self, n: int, timeout: float) -> list[Msg]:
        return self.batches.pop(0) if self.batches else []

    def commit(self, offsets: list[Any], asynchronous: bool) -> None:
        self.log.append("commit " + ",".join(f"{o.partition}@{o.offset}" for o in offsets))

    def incremental_assign(self, partitions: list[TP]) -> None:
        self.assigned = partitions

    def get_watermark_offsets(self, tp: Any, cached: bool = False,
                              timeout: float = 0) -> tuple[int, int]:
        return (0, 10)


class FakeProducer:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.queued = 0

    def produce(self, topic: str, value: bytes | None, key: bytes | None, headers: Any,
                on_delivery: Any) -> None:
        assert key == b"k"
        self.log.append(f"dlq {topic}")
        self.queued += 1

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        self.log.append("dlq flush")
        self.queued = 0
        return 0


class FakeStore:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.fail_next = 0
        self.fenced: set[int] = set()
        self.lost: set[int] = set()
        self.snapshots: dict[int, PartitionSnapshot] = {}
        self.incidents: list[tuple[int, str | None, bool]] = []
        self.gap_records: dict[int, int] = {}
        self.written: list[Checkpoint] = []
        self.fail_load = 0
        self.stored: list[int] = []
        self.meta: dict[int, tuple[int, int]] = {}  # partition -> stored (epoch, generation)
        self.wiped: set[int] = set()  # state gone while the partition is idle

    def note_incident(self, partition: int, cause: str | None, *, rebuilding: bool,
                      records: int = 0) -> None:
        self.incidents.append((partition, cause, rebuilding))
        self.gap_records[partition] = self.gap_records.get(partition, 0) + records

    def stored_partitions(self) -> list[int]:
        return self.stored

    def reset(self, partition: int) -> PartitionSnapshot:
        self.log.append(f"reset p{partition}")
        self.meta[partition] = (9, 0)
        return PartitionSnapshot(partition, epoch=9)

    def load(self, partition: int) -> PartitionSnapshot:
        if self.fail_load:
            self.fail_load -= 1
            raise redis.exceptions.ConnectionError("down")
        self.wiped.discard(partition)
        snap = self.snapshots.get(partition, PartitionSnapshot(partition, epoch=1))
        self.meta[partition] = (snap.epoch, snap.generation)
        return snap

    def stored_epochs(self, partitions: list[int]) -> list[tuple[int, int]]:
        return [(0, 0) if p in self.wiped else self.meta.get(p, (0, 0)) for p in partitions]

    def write(self, cp: Checkpoint, lag: int | None = None) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise redis.exceptions.ConnectionError("down")
        if cp.partition in self.fenced:
            raise FencedError("newer epoch")
        if cp.partition in self.lost:
            self.lost.discard(cp.partition)
            raise StateLostError("gone", cause="missing")
        self.log.append(f"redis p{cp.partition}@{cp.applied_offset}")
        self.written.append(cp)
        self.meta[cp.partition] = (cp.epoch, cp.generation + 1)


def event(model: str = "m") -> bytes:
    return json.dumps({"model": model, "features": {"x": 1.0}, "prediction": 1}).encode()


def make(on_state_loss: str = "rebuild"
         ) -> tuple[ConfluentRunner, FakeConsumer, FakeStore, list[str], list[float]]:
    log: list[str] = []
    sleeps: list[float] = []
    consumer, store = FakeConsumer(log), FakeStore(log)
    runner = ConfluentRunner(
        consumer=consumer,
        dlq=DlqSender(FakeProducer(log), topic="t.dlq", source_topic="t"),
        store=store,  # type: ignore[arg-type]
        processor=Processor(ModelCatalog()),
        config=RunnerConfig(topic="t", checkpoint_records=3, checkpoint_interval_s=1e9,
                            on_state_loss=on_state_loss),
        redis_retry=RetryPolicy(REDIS_TRANSIENT, initial_s=0.5, max_s=1.0),
        clock=lambda: 0.0,
        sleep=sleeps.append,
    )
    return runner, consumer, store, log, sleeps


def test_assign_seeks_past_applied_offset_or_to_the_start() -> None:
    runner, consumer, store, _log, _ = make()
    store.snapshots[1] = PartitionSnapshot(1, epoch=4, applied_offset=41)
    runner._on_assign(consumer, [TP("t", 0), TP("t", 1)])
    # nothing in Redis: read the partition from the start, never from a committed offset
    assert [(tp.partition, tp.offset) for tp in consumer.assigned] == [(0, -2), (1, 42)]
    assert runner.processor.partitions == [0, 1]
    assert runner.health.state_resets == {} and runner.health.rebuilding == {}


def test_dlq_flush_then_redis_then_commit_with_redis_retries() -> None:
    runner, consumer, store, log, sleeps = make()
    runner._on_assign(consumer, [TP("t", 0)])
    consumer.batches = [[Msg(0, 0, event()), Msg(0, 1, b"junk"), Msg(0, 2, event())]]
    store.fail_next = 2
    runner.poll_once()
    assert log == ["dlq t.dlq", "dlq flush", "redis p0@2", "commit 0@3"]
    assert sleeps == [0.5, 1.0]  # waited out the Redis outage with backoff
    h = runner.health.partitions[0]
    assert h.counters.ok == {"m": 2} and h.counters.invalid == {"invalid_json": 1}
    assert h.lag == 7 and runner.health.checkpoints == 1 and runner.health.dlq_sent == 1


def test_fenced_write_drops_the_partition_without_commit() -> None:
    runner, consumer, store, log, _ = make()
    runner._on_assign(consumer, [TP("t", 0), TP("t", 1)])
    store.fenced.add(0)
    consumer.batches = [[Msg(0, 0, event()), Msg(1, 0, event()), Msg(1, 1, event())]]
    runner.poll_once()
    assert runner.processor.partitions == [1] and runner.health.fenced == 1
    # still assigned partition 0 but fenced from it: rejoin so the group hands it over
    assert log == ["dlq flush", "redis p1@1", "commit 1@2", "unsubscribe"]
    assert consumer.subscriptions == 1 and runner.health.orphaned == set()


def test_revoke_checkpoints_then_forgets() -> None:
    runner, consumer, _store, log, _ = make()
    runner._on_assign(consumer, [TP("t", 0)])
    consumer.batches = [[Msg(0, 0, event())]]
    runner.poll_once()  # below checkpoint_records: nothing written yet
    assert log == []
    runner._on_revoke(consumer, [TP("t", 0)])
    assert log == ["dlq flush", "redis p0@0", "commit 0@1"]
    assert runner.processor.partitions == []


def test_stop_while_redis_is_down_aborts_the_retry() -> None:
    runner, consumer, store, _log, _ = make()
    runner._on_assign(consumer, [TP("t", 0)])
    consumer.batches = [[Msg(0, 0, event())]]
    runner.poll_once()
    store.fail_next = 1000
    runner.stop()
    with pytest.raises(RetryAborted):
        runner.checkpoint([0])


def test_a_failing_batch_is_never_checkpointed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A processor failure mid-batch (a bug, not a payload) leaves nothing for the close
    path to write: the half-applied state is discarded and resumes from Redis."""
    runner, consumer, _store, log, _ = make()
    runner._on_assign(consumer, [TP("t", 0)])
    consumer.batches = [[Msg(0, 0, event())]]
    runner.poll_once()
    real_apply = runner.processor._apply

    def half_then_fail(*args: Any) -> None:
        real_apply(*args)
        raise RuntimeError("bug after a partial update")

    monkeypatch.setattr(runner.processor, "_apply", half_then_fail)
    consumer.batches = [[Msg(0, 1, event())]]
    with pytest.raises(RuntimeError):
        runner.poll_once()
    runner._on_revoke(consumer, [TP("t", 0)])  # what consumer.close() triggers
    assert log == [] and runner.processor.partitions == []


def test_state_lost_in_redis_is_rebuilt_from_the_start() -> None:
    runner, consumer, store, log, _ = make()
    runner._on_assign(consumer, [TP("t", 0)])
    consumer.batches = [[Msg(0, 0, event()), Msg(0, 1, event()), Msg(0, 2, event())]]
    store.lost.add(0)  # Redis restarted empty: the write finds no state
    runner.poll_once()
    assert runner.health.state_resets == {(0, "missing"): 1}
    assert "unassign 0" in log
    assert [(tp.partition, tp.offset) for tp in consumer.assigned] == [(0, -2)]
    assert runner.processor.applied_offset(0) == -1  # nothing kept: re-read from the start
    assert runner.health.rebuilding == {0: 10} and runner.health.not_ready(0.0)
    assert (0, "state_lost_missing", True) in store.incidents
    consumer.batches = [[Msg(0, o, event()) for o in range(10)]]
    runner.poll_once()
    assert runner.health.rebuilding == {} and runner.health.not_ready(0.0) == []
    assert runner.processor.counters(0).ok == {"m": 10}
    assert store.incidents[-1] == (0, None, False)


def test_state_lost_on_an_idle_partition_is_noticed_at_the_next_checkpoint() -> None:
    """No record comes for partition 1 after Redis lost its state: the checkpoint that
    writes partition 0 probes it and rebuilds it from the start, without waiting for a
    record of its own."""
    runner, consumer, store, log, _ = make()
    runner._on_assign(consumer, [TP("t", 0), TP("t", 1)])
    consumer.batches = [[Msg(0, 0, event()), Msg(1, 0, event()), Msg(1, 1, event())]]
    runner.poll_once()
    assert runner.health.state_resets == {}  # written, then probed consistent
    store.wiped.add(1)  # FLUSHALL while partition 1 is idle
    consumer.batches = [[Msg(0, o, event()) for o in (1, 2, 3)]]
    runner.poll_once()
    assert runner.health.state_resets == {(1, "missing"): 1}
    assert "unassign 1" in log and "redis p0@3" in log
    assert [(tp.partition, tp.offset) for tp in consumer.assigned] == [(1, -2)]
    assert (1, "state_lost_missing", True) in store.incidents


def test_a_newer_owner_of_an_idle_partition_is_noticed_at_the_next_checkpoint() -> None:
    runner, consumer, store, _log, _ = make()
    runner._on_assign(consumer, [TP("t", 0), TP("t", 1)])
    consumer.batches = [[Msg(0, 0, event()), Msg(1, 0, event()), Msg(1, 1, event())]]
    runner.poll_once()
    store.meta[1] = (store.meta[1][0] + 1, 0)  # another worker loaded partition 1
    consumer.batches = [[Msg(0, o, event()) for o in (1, 2, 3)]]
    runner.poll_once()
    assert runner.health.fenced == 1 and runner.processor.partitions == [0]
    assert runner.health.state_resets == {}


def test_state_missing_at_start_with_committed_offsets_is_a_loss() -> None:
    runner, consumer, _store, _log, _ = make()
    consumer.committed_offsets[0] = 5
    runner._on_assign(consumer, [TP("t", 0)])
    assert [(tp.partition, tp.offset) for tp in consumer.assigned] == [(0, -2)]
    assert runner.health.state_resets == {(0, "missing_at_start"): 1}


def test_state_of_another_topic_incarnation_is_deleted() -> None:
    runner, consumer, store, log, _ = make()
    runner.recovery.topic_id = lambda: "new-id"
    store.snapshots[0] = PartitionSnapshot(0, epoch=3, applied_offset=900, topic_id="old-id")
    runner._on_assign(consumer, [TP("t", 0)])
    assert "reset p0" in log
    assert [(tp.partition, tp.offset) for tp in consumer.assigned] == [(0, -2)]
    assert runner.health.state_resets == {(0, "topic_recreated"): 1}


def test_topic_recreated_under_the_running_worker_is_caught_before_the_write() -> None:
    """librdkafka keeps fetching at the old position in a recreated topic that already
    holds more records: only the topic id tells, and what was read is never written."""
    runner, consumer, store, log, _ = make()
    runner.recovery.topic_id = lambda: "old-id"
    runner._on_assign(consumer, [TP("t", 0), TP("t", 1)])
    runner.recovery.topic_id = lambda: "new-id"  # deleted and recreated meanwhile
    consumer.batches = [[Msg(0, 500, event()), Msg(0, 501, event()), Msg(1, 7, event())]]
    runner.poll_once()
    assert "reset p0" in log and "reset p1" in log and not any("redis" in e for e in log)
    assert [(tp.partition, tp.offset) for tp in consumer.assigned] == [(1, -2)]  # the last
    assert runner.health.state_resets == {(0, "topic_recreated"): 1,
                                          (1, "topic_recreated"): 1}
    assert (0, "topic_recreated", True) in store.incidents
    assert runner.processor.applied_offset(0) == -1 and runner.health.rebuilding == {0: 10,
                                                                                     1: 10}
    consumer.batches = [[Msg(0, o, event()) for o in range(3)]]
    runner.poll_once()
    assert "redis p0@2" in log  # the new topic, from its start, under the new id


def test_topic_recreated_found_in_a_rebalance_is_left_to_the_next_owner() -> None:
    runner, consumer, _store, log, _ = make()
    runner.recovery.topic_id = lambda: "old-id"
    runner._on_assign(consumer, [TP("t", 0)])
    consumer.batches = [[Msg(0, 500, event())]]
    runner.poll_once()
    runner.recovery.topic_id = lambda: "new-id"
    runner._on_revoke(consumer, [TP("t", 0)])
    assert log == [] and runner.processor.partitions == []  # nothing written, nothing reset
    assert runner.health.state_resets == {}  # counted by the owner that finds it on assign


class ResetMsg(Msg):
    def error(self) -> Any:
        from confluent_kafka import KafkaError

        return KafkaError(KafkaError._AUTO_OFFSET_RESET)


def test_records_deleted_before_processing_are_a_counted_gap() -> None:
    runner, consumer, _store, log, _ = make()
    runner._on_assign(consumer, [TP("t", 0)])
    consumer.get_watermark_offsets = lambda tp, cached=False, timeout=0: (7, 20)  # type: ignore[method-assign]
    consumer.batches = [[ResetMsg(0, 3, None)]]
    runner.poll_once()
    assert runner.health.offset_gaps == {0: 4}  # offsets 3..6 are gone
    assert "unassign 0" in log and [(tp.partition, tp.offset) for tp in consumer.assigned] == [(0, 7)]


def test_a_checkpoint_stuck_on_redis_makes_the_worker_unready() -> None:
    runner, consumer, store, _log, _ = make()
    runner._on_assign(consumer, [TP("t", 0)])
    consumer.batches = [[Msg(0, 0, event())]]
    runner.poll_once()
    seen: list[list[str]] = []
    runner.health.stuck_after_s = 30.0
    store.fail_next = 2
    runner._checkpointer.sleep = lambda s: seen.append(runner.health.not_ready(1000.0))
    runner.checkpoint([0])
    assert seen and "checkpoint pending" in seen[0][0]  # while it waited for Redis
    assert runner.health.not_ready(1000.0) == []  # written: ready again


def test_resume_after_a_lost_state_counts_the_gap_and_marks_windows_incomplete() -> None:
    """``--on-state-loss resume``: no rewind; the offsets whose effect only the lost state
    had are a counted gap and the windows they fed (up to the model's watermark) are
    marked incomplete in the next checkpoint."""
    runner, consumer, store, log, _ = make("resume")
    runner._on_assign(consumer, [TP("t", 0)])
    consumer.batches = [[Msg(0, o, event()) for o in range(3)]]
    store.lost.add(0)  # Redis restarted empty: offsets 0..2 were only in the lost state
    runner.poll_once()
    assert runner.health.state_resets == {(0, "missing"): 1}
    assert runner.health.offset_gaps == {0: 3} and store.gap_records == {0: 3}
    assert (0, "state_lost_missing", False) in store.incidents  # not rebuilding: ready
    assert runner.health.rebuilding == {} and runner.health.not_ready(0.0) == []
    assert not any(e.startswith("unassign") for e in log)  # no rewind
    assert runner.processor.applied_offset(0) == 2
    consumer.batches = [[Msg(0, o, event()) for o in range(3, 6)]]
    runner.poll_once()
    [cp] = store.written
    assert cp.applied_offset == 5 and runner.processor.counters(0).ok == {"m": 3}
    assert cp.incomplete == {"m": T0}  # the 5 min window T0 holds the lost records


def test_resume_after_an_older_snapshot_counts_only_what_it_lacks() -> None:
    runner, consumer, store, _log, _ = make("resume")
    runner._on_assign(consumer, [TP("t", 0)])
    consumer.batches = [[Msg(0, o, event()) for o in range(7, 10)]]
    store.lost.add(0)
    # what Redis came back with: a snapshot up to offset 7, a window marked earlier
    store.snapshots[0] = PartitionSnapshot(0, epoch=2, applied_offset=7, generation=1,
                                           incomplete={"m": T0 - 600_000})
    runner.poll_once()
    assert runner.health.offset_gaps == {0: 2}  # offsets 8 and 9
    consumer.batches = [[Msg(0, o, event()) for o in range(10, 13)]]
    runner.poll_once()
    assert store.written[-1].incomplete == {"m": T0}


def test_resume_with_state_missing_at_start_reads_from_the_committed_offset() -> None:
    runner, consumer, store, _log, _ = make("resume")
    consumer.committed_offsets[0] = 5
    runner._on_assign(consumer, [TP("t", 0)])
    assert [(tp.partition, tp.offset) for tp in consumer.assigned] == [(0, 5)]
    assert runner.health.state_resets == {(0, "missing_at_start"): 1}
    assert runner.health.offset_gaps == {0: 5} and runner.health.rebuilding == {}
    consumer.batches = [[Msg(0, o, event()) for o in range(5, 8)],
                        [Msg(0, o, event()) for o in range(8, 11)],  # the log end then: 10
                        [Msg(0, 11, event("late-comer")), Msg(0, 12, event()),
                         Msg(0, 13, event())]]
    for _ in range(3):
        runner.poll_once()
    assert [cp.applied_offset for cp in store.written] == [7, 10, 13]
    assert store.written[0].incomplete == {"m": T0}
    # past the log end it had: a model first seen now lost nothing
    assert store.written[2].incomplete == {"m": T0}


def test_stop_on_state_loss_ends_the_worker_without_writing() -> None:
    runner, consumer, store, log, _ = make("stop")
    runner._on_assign(consumer, [TP("t", 0)])
    consumer.batches = [[Msg(0, o, event()) for o in range(3)]]
    store.lost.add(0)
    with pytest.raises(StateLostError):
        runner.poll_once()
    assert runner.health.state_resets == {(0, "missing"): 1}
    assert (0, "state_lost_missing", False) in store.incidents
    assert runner.processor.partitions == [] and not any("commit" in e for e in log)
    runner, consumer, _store, _log, _ = make("stop")
    consumer.committed_offsets[0] = 5  # state lost while no worker ran
    with pytest.raises(StateLostError):
        runner._on_assign(consumer, [TP("t", 0)])
    assert runner.health.state_resets == {(0, "missing_at_start"): 1}
    assert consumer.assigned == []


def test_records_held_unwritten_while_the_loop_waits_elsewhere_make_it_unready() -> None:
    """No checkpoint in progress, yet none has taken the partition's records for several
    intervals (the loop waits for Redis to load a newly assigned partition): unready."""
    runner, consumer, store, _log, _ = make()
    runner.health.stuck_after_s = 30.0  # max(30 s, 5 intervals) in a real worker
    runner._on_assign(consumer, [TP("t", 0)])
    assert runner.health.not_ready(1000.0) == []  # idle for long: nothing held, ready
    consumer.batches = [[Msg(0, 0, event())]]
    runner.poll_once()  # below checkpoint_records: held in memory
    assert runner.health.not_ready(10.0) == []  # within stuck_after_s
    seen: list[list[str]] = []
    store.fail_load = 2
    runner.recovery.sleep = lambda s: seen.append(runner.health.not_ready(1000.0))
    runner._on_assign(consumer, [TP("t", 1)])
    assert len(seen) == 2 and len(seen[0]) == 1
    assert seen[0][0].startswith("records held unwritten for 1000s"), seen
    assert "none yet" in seen[0][0]
    runner.checkpoint(runner.processor.partitions)
    assert runner.health.not_ready(1000.0) == []
    consumer.batches = [[Msg(0, 1, event())]]
    runner.poll_once()
    runner._on_revoke(consumer, [TP("t", 1)])  # a checkpoint of another partition only
    assert runner.health.not_ready(1000.0)  # partition 0's record is still unwritten


def test_a_topic_recreated_with_fewer_partitions_loses_the_old_ones(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Recreated with 2 partitions under a worker that read 4: partitions 0 and 1 are read
    from the new topic's start; 2 and 3 — which nobody is assigned any more — are deleted
    (by :func:`streams.orphans.drop_if_foreign`, checked on a real Redis elsewhere), not
    reset and re-read."""
    runner, consumer, store, log, _ = make()
    dropped: list[tuple[int, str]] = []
    monkeypatch.setattr("streams.recovery.drop_if_foreign",
                        lambda _s, p, tid: dropped.append((p, tid)) or 1)
    runner.recovery.topic_id = lambda: "old-id"
    runner.recovery.partition_count = lambda: 4
    store.stored = [0, 1, 2, 3]
    runner._on_assign(consumer, [TP("t", p) for p in range(4)])
    assert dropped == []  # nothing beyond the topic's 4 partitions
    runner.recovery.topic_id = lambda: "new-id"
    runner.recovery.partition_count = lambda: 2
    consumer.batches = [[Msg(0, 9, event()), Msg(2, 9, event()), Msg(3, 9, event())]]
    runner.poll_once()
    assert dropped == [(2, "new-id"), (3, "new-id")]
    assert "reset p0" in log and "reset p2" not in log and "reset p3" not in log
    assert runner.processor.partitions == [0, 1]
    assert runner.health.state_resets == {(0, "topic_recreated"): 1, (2, "topic_recreated"): 1,
                                          (3, "topic_recreated"): 1}
    assert (2, "topic_recreated", False) in store.incidents
    assert not any(e.startswith("redis") for e in log)
