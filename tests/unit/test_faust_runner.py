"""FaustRunner's batch and rebalance logic without faust, Kafka or Redis (fakes)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from streams.core import Checkpoint, PartitionSnapshot, Processor, Record
from streams.dlq import DlqSender
from streams.faust_runner import EX_SOFTWARE, FaustConfig, FaustRunner, _ms
from streams.simulate import generate_events
from streams.simulate_spec import build_spec
from streams.state import FencedError
from streams.windows import ModelCatalog

T0 = 1_800_000_000.0
EVENTS = [msgspec.json.encode(e) for e in generate_events(build_spec(["m"], 3, 1), 40, T0, 1)]


class FakeStore:
    def __init__(self) -> None:
        self.epochs: dict[int, int] = {}
        self.applied: dict[int, int] = {}
        self.writes: list[Checkpoint] = []
        self.fail: BaseException | None = None
        self.gens: dict[int, int] = {}

    def load(self, partition: int) -> PartitionSnapshot:
        self.epochs[partition] = self.epochs.get(partition, 0) + 1
        return PartitionSnapshot(partition, self.epochs[partition],
                                 self.applied.get(partition, -1),
                                 generation=self.gens.get(partition, 0))

    def stored_epochs(self, partitions: list[int]) -> list[tuple[int, int]]:
        return [(self.epochs.get(p, 0), self.gens.get(p, 0)) for p in partitions]

    def write(self, cp: Checkpoint, lag: int | None = None) -> None:
        if self.fail is not None:
            raise self.fail
        if cp.epoch != self.epochs[cp.partition]:
            raise FencedError("old epoch")
        self.writes.append(cp)
        self.applied[cp.partition] = cp.applied_offset
        self.gens[cp.partition] = cp.generation + 1


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[bytes | None] = []

    def produce(self, topic: str, value: bytes | None = None, headers: Any = None,
                on_delivery: Any = None) -> None:
        self.sent.append(value)

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        return 0


def make_runner() -> tuple[FaustRunner, FakeStore, FakeProducer, list[int]]:
    store, producer, fatal = FakeStore(), FakeProducer(), []
    runner = FaustRunner(
        bootstrap="unused:9092", store=store, processor=Processor(ModelCatalog()),  # type: ignore[arg-type]
        dlq=DlqSender(producer, topic="dlq", source_topic="t"), config=FaustConfig(topic="t"),
        on_fatal=fatal.append,
    )
    return runner, store, producer, fatal


def records(partition: int, offsets: range) -> list[Record]:
    return [Record(partition, o, 0, EVENTS[o % len(EVENTS)]) for o in offsets]


def test_batch_is_checkpointed_before_returning_and_replays_are_skipped() -> None:
    runner, store, _, fatal = make_runner()
    runner.on_assigned({0, 1})
    assert store.epochs == {0: 1, 1: 1}
    runner.handle_batch(records(0, range(10)) + records(1, range(5)))
    assert store.applied == {0: 9, 1: 4}
    runner.handle_batch(records(0, range(5, 15)))  # 5..9 replayed after a "crash"
    assert store.applied[0] == 14
    assert runner.processor.counters(0).total_ok == 15
    assert runner.health.records == 25 and fatal == []


def test_unloaded_but_assigned_partition_is_loaded_and_foreign_ones_ignored() -> None:
    runner, store, _, _ = make_runner()
    runner._assigned = {0, 2}  # Kafka says so; the assignment hook has not run yet
    runner.handle_batch(records(2, range(3)) + records(3, range(3)))
    assert store.epochs == {2: 1} and store.applied == {2: 2}
    assert runner.processor.partitions == [2]


def test_bad_records_go_to_the_dlq() -> None:
    runner, store, producer, _ = make_runner()
    runner.on_assigned({0})
    runner.handle_batch([Record(0, 0, 0, b"not json"), *records(0, range(1, 3))])
    assert producer.sent == [b"not json"]
    assert store.applied[0] == 2
    assert runner.processor.counters(0).invalid == {"invalid_json": 1}


def test_fenced_write_drops_the_partition() -> None:
    runner, store, _, fatal = make_runner()
    runner.on_assigned({0})
    store.epochs[0] = 5  # another worker loaded it since
    runner.handle_batch(records(0, range(3)))
    assert runner.processor.partitions == [] and runner.health.fenced == 1 and fatal == []


def test_unexpected_error_exits_without_returning_normally() -> None:
    runner, store, _, fatal = make_runner()
    runner.on_assigned({0})
    store.fail = RuntimeError("bug")
    runner.handle_batch(records(0, range(3)))
    assert fatal == [EX_SOFTWARE] and store.writes == []


def test_revoke_checkpoints_and_drops_and_reassign_reloads() -> None:
    runner, store, _, _ = make_runner()
    runner.on_assigned({0, 1})
    runner.on_revoked({1})
    assert runner.processor.partitions == [0]
    runner.on_assigned({0, 1})
    assert store.epochs == {0: 1, 1: 2}
    runner.on_assigned({1})  # 0 gone without a revoke callback
    assert runner.processor.partitions == [1]


@pytest.mark.parametrize("ts,ms", [(1.5, 1500), (1795420800.123, 1795420800123), (None, 0)])
def test_timestamp_seconds_to_ms(ts: float | None, ms: int) -> None:
    assert _ms(ts) == ms
