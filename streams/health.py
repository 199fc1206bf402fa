"""Worker health as plain objects, for the metrics collector to read at scrape time."""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.windows import Counters


@dataclass(slots=True)
class PartitionHealth:
    """One owned partition: counters since the partition's state began (persisted),
    applied offset, consumer lag (None until known) and open windows in memory."""

    counters: Counters = field(default_factory=Counters)
    applied_offset: int = -1
    lag: int | None = None
    open_windows: int = 0


@dataclass(slots=True)
class WorkerHealth:
    """Updated by a runner after every checkpoint; read-only for everyone else."""

    partitions: dict[int, PartitionHealth] = field(default_factory=dict)
    records: int = 0
    dlq_sent: int = 0
    checkpoints: int = 0
    fenced: int = 0
    last_flush_s: float = 0.0
    max_flush_s: float = 0.0
    total_flush_s: float = 0.0

    def record_flush(self, seconds: float) -> None:
        self.checkpoints += 1
        self.last_flush_s = seconds
        self.max_flush_s = max(self.max_flush_s, seconds)
        self.total_flush_s += seconds
