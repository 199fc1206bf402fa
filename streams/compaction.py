"""Closed windows compacted across partitions, then rolled up into coarser tiers.

Per-partition window blobs (:mod:`streams.state`) make memory grow with the partition
count and, kept for their 7-day TTL, with time. The evaluator that owns a model (its
shard, :mod:`alerts.shards`) therefore runs :meth:`Compactor.run` now and then:

1. **Compaction.** A window is *closed* once every partition holding a blob of it has a
   watermark (for that model) past the window's end + the model's retention: those
   partitions will never write it again (later events are late). Its partition blobs are
   merged once into one model-level record (tier ``w``) that lists its *contributors*
   (partition → generation of the blob merged), then the partition copies are deleted —
   each by a script on the partition's own slot that deletes only the generation that
   was merged. A partition that writes the window *after* compaction (it had no blob then:
   a partition that saw the model late) is added to the record by the next pass; a blob
   from a partition already listed is a copy of what the record holds (the same blob
   awaiting deletion, or a rebuild from Kafka after lost state replaying the same events)
   and is never counted again (:func:`included`).
2. **Tiers.** Compacted windows older than the model's measurement needs (``keep``: at
   least measure + window + retention behind its watermark) are merged into hourly
   records (tier ``h``); hourly records older than ``hourly_ms`` into daily ones (``d``);
   daily records older than ``daily_ms`` are deleted. Sketches merge exactly, so a tier
   is the profile of all its windows. Each roll-up writes the coarser record and deletes
   the finer ones in one script, so every event is in exactly one record at any time.

All model-level records share the model's alert hash tag (``{P:<model>}``), so each step is
one atomic script that is also fenced by the model's evaluator token
(:class:`alerts.shards.Fence`'s key, passed in as ``fence_key``): a replaced evaluator
cannot compact beside its successor.

The records are kept by :class:`streams.tiers.TierStore`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from sketches.profile import DatasetProfile
from streams.core import NO_WATERMARK, PartitionSnapshot
from streams.state import RedisStateStore
from streams.tiers import (
    DAY_MS,
    HOUR_MS,
    TIERS,
    Record,
    TierStore,
    contributors_text,
    included,
    parse_contributors,
    rollup_meta,
)
from streams.windows import WindowKey

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class ModelSpan:
    """What compaction needs to know of a model (from the models file)."""

    window_ms: int
    retention_ms: int
    measure_ms: int

    @property
    def keep_ms(self) -> int:
        """How long compacted windows stay at full resolution behind the watermark."""
        return self.measure_ms + self.window_ms + self.retention_ms


@dataclass
class CompactionStats:
    compacted: int = 0
    """Windows merged into a model-level record this pass."""
    dropped: int = 0
    """Partition blobs deleted because a record holds them."""
    rolled: int = 0
    """Finer records merged into a coarser tier."""
    expired: int = 0
    """Daily records deleted past their retention."""
    blobs_read: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


class Compactor:
    """One pass over the owned models; bounded by ``max_blobs`` partition blobs read."""

    def __init__(self, store: RedisStateStore, tiers: TierStore, *,
                 max_blobs: int = 5000) -> None:
        self.store = store
        self.tiers = tiers
        self.max_blobs = max_blobs

    def compact(self, models: Mapping[str, tuple[int, int, int, int]],
                fence_key: Callable[[str], str]) -> CompactionStats:
        """:meth:`run` for the evaluator (``alerts.evaluator.Housekeeping``): model ->
        (window_ms, retention_ms, measure_ms, token)."""
        stats = self.run({m: (ModelSpan(w, r, meas), t) for m, (w, r, meas, t) in models.items()},
                         fence_key)
        if stats.compacted or stats.dropped or stats.rolled or stats.expired:
            log.info("compaction: %d windows compacted, %d partition blobs dropped, %d "
                     "records rolled up, %d expired (%d blobs read)", stats.compacted,
                     stats.dropped, stats.rolled, stats.expired, stats.blobs_read)
        return stats

    def run(self, models: Mapping[str, tuple[ModelSpan, int]],
            fence_key: Callable[[str], str]) -> CompactionStats:
        """``models``: model -> (its span, this evaluator's token for it); ``fence_key``:
        model -> the model's fence key."""
        stats = CompactionStats()
        if not models:
            return stats
        snaps = {p: self.store.read(p, min_start_ms=1 << 62)
                 for p in self.store.stored_partitions()}
        blobs: dict[str, dict[WindowKey, dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
        for p in snaps:
            for key, gen in self.store.written(p, min_start_ms=0).items():
                if key.model in models:
                    blobs[key.model][key][p] = gen
        for model, (span, token) in models.items():
            if stats.blobs_read >= self.max_blobs:
                stats.skipped["budget"] = stats.skipped.get("budget", 0) + 1
                continue
            marks = snapshot_marks(snaps, model)
            watermark = max(marks.values(), default=NO_WATERMARK)
            if watermark == NO_WATERMARK:
                continue
            fence = fence_key(model)
            windows = blobs.get(model, {})
            gone = self._compact(model, span, token, fence, windows, marks, stats)
            pending = {(k.version, k.start_ms) for k in windows if k not in gone}
            records = self._roll(model, span, token, fence, watermark, pending, stats)
            self.measure(model, {k: ps for k, ps in windows.items() if k not in gone}, records)
        return stats

    def measure(self, model: str, windows: Mapping[WindowKey, Mapping[int, int]],
                records: Iterable[Record]) -> None:
        """Store what ``model``'s windows take now (bytes of the partition blobs still
        there and of its ``records``), for ``driftline status``."""
        pipe = self.tiers.client.pipeline(transaction=False)
        blobs = [(p, k) for k, parts in windows.items() for p in parts]
        for p, k in blobs:
            pipe.strlen(self.store.window_key(p, k))
        records = list(records)
        for r in records:
            pipe.strlen(self.tiers.blob_key(model, r))
        sizes = pipe.execute()
        tiers: dict[str, list[int]] = {t: [0, 0] for t in TIERS}
        for r, size in zip(records, sizes[len(blobs):], strict=True):
            tiers[r.tier][0] += 1
            tiers[r.tier][1] += int(size)
        self.tiers.save_usage(model, {
            "partition_blobs": len(blobs), "partition_bytes": sum(sizes[:len(blobs)]),
            "partitions": len({p for p, _ in blobs}),
            "records": {t: n for t, (n, _) in tiers.items()},
            "record_bytes": sum(b for _, b in tiers.values())})

    # -- 1. compaction -------------------------------------------------------------------
    def _compact(self, model: str, span: ModelSpan, token: int, fence: str,
                 windows: Mapping[WindowKey, dict[int, int]], marks: Mapping[int, int],
                 stats: CompactionStats) -> set[WindowKey]:
        """Compact the closed windows; those whose partition blobs are all gone now."""
        gone: set[WindowKey] = set()
        closed = [k for k, parts in windows.items()
                  if all(marks.get(p, NO_WATERMARK) >= k.start_ms + span.window_ms
                         + span.retention_ms for p in parts)]
        if not closed:
            return gone
        existing = self.tiers.records(model, min(k.start_ms for k in closed),
                                      max(k.start_ms for k in closed))
        for key in sorted(closed, key=lambda k: k.start_ms):
            if stats.blobs_read >= self.max_blobs:
                return gone
            parts = windows[key]
            record = Record("w", key.version, key.start_ms)
            old_meta = existing.get(record)
            had = parse_contributors(old_meta)
            new = {p: g for p, g in parts.items() if not included(p, had)}
            if new:
                merged = DatasetProfile()
                if old_meta is not None:
                    prior = self.tiers.blobs(model, [record]).get(record)
                    if prior is None:  # the record expired under us: start it again
                        had, old_meta = {}, None
                        new = dict(parts)
                    else:
                        merged.merge(DatasetProfile.from_bytes(prior))
                for p in new:
                    blob = self.store.window_blobs(p, [key]).get(key)
                    stats.blobs_read += 1
                    if blob is not None:
                        merged.merge(DatasetProfile.from_bytes(blob))
                meta = contributors_text({**had, **new})
                done = self.tiers.write(model, token, fence,
                                        put={record: (merged.to_bytes(), meta)},
                                        expect={record: old_meta or ""}, keep_ms=span.keep_ms)
                if done != 1:
                    stats.skipped["fenced" if done == 0 else "raced"] = stats.skipped.get(
                        "fenced" if done == 0 else "raced", 0) + 1
                    if done == 0:
                        return gone
                    continue
                stats.compacted += 1
            dropped = sum(self.store.drop_windows(p, {key: gen}) for p, gen in parts.items())
            stats.dropped += dropped  # every listed blob is in the record now
            if dropped == len(parts):
                gone.add(key)
        return gone

    # -- 2. tiers ------------------------------------------------------------------------
    def _roll(self, model: str, span: ModelSpan, token: int, fence: str, watermark: int,
              pending: set[tuple[str, int]], stats: CompactionStats) -> dict[Record, str]:
        """Roll finer records up and expire old daily ones; the model's records after."""
        keep = span.keep_ms
        records = self.tiers.records(model)
        steps = (("w", "h", HOUR_MS, watermark - keep),
                 ("h", "d", DAY_MS, watermark - self.tiers.hourly_ms))
        for fine, coarse, size, before in steps:
            groups: dict[Record, list[Record]] = defaultdict(list)
            for r in records:
                if r.tier != fine or r.start_ms + (span.window_ms if fine == "w" else HOUR_MS) \
                        > before:
                    continue
                if fine == "w" and (r.version, r.start_ms) in pending:
                    continue  # a partition copy still waits for deletion: roll it later
                groups[Record(coarse, r.version, r.start_ms - r.start_ms % size)].append(r)
            for target, parts in groups.items():
                merged = DatasetProfile()
                had = target in records
                sources = self.tiers.blobs(model, [*parts, *([target] if had else [])])
                for blob in sources.values():
                    merged.merge(DatasetProfile.from_bytes(blob))
                expect = {r: records[r] for r in parts}
                blob = merged.to_bytes()
                meta = rollup_meta(blob)
                done = self.tiers.write(model, token, fence, put={target: (blob, meta)},
                                        delete=parts, expect=expect)
                if done == 0:
                    return records
                if done == 1:
                    stats.rolled += len(parts)
                    for r in parts:
                        records.pop(r, None)
                    records[target] = meta
        old = [r for r in records if r.tier == "d" and r.start_ms + DAY_MS
               <= watermark - self.tiers.daily_ms]
        if old and self.tiers.write(model, token, fence, delete=old) == 1:
            stats.expired += len(old)
            for r in old:
                records.pop(r)
        return records


def snapshot_marks(snaps: Mapping[int, PartitionSnapshot], model: str) -> dict[int, int]:
    """partition -> the watermark that decides lateness of ``model``'s events there."""
    return {p: s.watermarks.get(model, s.watermark_ms) for p, s in snaps.items()}
