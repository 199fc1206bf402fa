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
    state_resets: dict[tuple[int, str], int] = field(default_factory=dict)
    """(partition, cause) -> times the partition's state was found lost and reset."""
    offset_gaps: dict[int, int] = field(default_factory=dict)
    """partition -> records in no window: deleted by retention before they were processed,
    aged out before a rebuild, or lost with the state under ``--on-state-loss resume``."""
    rebuilding: dict[int, int] = field(default_factory=dict)
    """partition -> the offset a rebuild must reach before the worker is ready again."""
    orphaned: set[int] = field(default_factory=set)
    """Partitions assigned to this worker that it stopped processing (until it rejoins)."""
    last_checkpoint_at: float | None = None
    """Monotonic time of the last successful checkpoint (None: none yet)."""
    unflushed_since: float | None = None
    """Monotonic time the oldest record not yet covered by a checkpoint was processed
    (None: everything processed is in Redis, or was dropped with its partition)."""
    flush_started_at: float | None = None
    """Monotonic time the checkpoint in progress began (None: none in progress)."""
    stuck_after_s: float = 30.0
    """A checkpoint in progress longer than this (Redis or the DLQ away), or records held
    unwritten longer than this, make it unready."""

    def count_reset(self, partition: int, cause: str) -> None:
        key = (partition, cause)
        self.state_resets[key] = self.state_resets.get(key, 0) + 1

    def not_ready(self, now: float) -> list[str]:
        """Why this worker should not be trusted right now (empty: ready); ``now`` on the
        runner's monotonic clock."""
        reasons = [f"partition {p} rebuilding from Kafka up to offset {end}"
                   for p, end in sorted(self.rebuilding.items())]
        reasons += [f"partition {p} assigned but not processed" for p in sorted(self.orphaned)]
        started = self.flush_started_at
        held = self.unflushed_since
        if started is not None and now - started > self.stuck_after_s:
            reasons.append(f"checkpoint pending for {now - started:.0f}s (Redis or the DLQ "
                           "unreachable)")
        elif held is not None and now - held > self.stuck_after_s:
            # no checkpoint in progress, yet none took these records for several intervals:
            # the loop is held up elsewhere (a partition's load waiting for Redis, ...)
            last = self.last_checkpoint_at
            reasons.append(f"records held unwritten for {now - held:.0f}s: no checkpoint has "
                           "taken them (last successful checkpoint: "
                           + ("none yet)" if last is None else f"{now - last:.0f}s ago)"))
        return reasons

    def record_flush(self, seconds: float) -> None:
        self.checkpoints += 1
        self.last_flush_s = seconds
        self.max_flush_s = max(self.max_flush_s, seconds)
        self.total_flush_s += seconds
