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

Keys (``P`` prefix, ``T`` topic, ``M`` model)::

    P:v1:{P:M}:T:cidx          zset  "tier|version|start" -> start
    P:v1:{P:M}:T:cmeta         hash  member -> contributors JSON {"p": gen} (tier w), or
                                     "#" + a digest of the bytes (roll-ups)
    P:v1:{P:M}:T:c:<member>    string  DatasetProfile bytes (wall-clock TTL as a backstop)
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import redis

from sketches.profile import DatasetProfile
from streams.core import NO_WATERMARK, PartitionSnapshot
from streams.state import SCHEME, RedisStateStore
from streams.windows import WindowKey

log = logging.getLogger(__name__)

HOUR_MS: Final = 3_600_000
DAY_MS: Final = 24 * HOUR_MS
DEFAULT_HOURLY_MS: Final = 7 * DAY_MS
DEFAULT_DAILY_MS: Final = 90 * DAY_MS
TIERS: Final = ("w", "h", "d")

# KEYS: fence, cidx, cmeta, blob keys set (nset), blob keys deleted (ndel)
# ARGV: token, nset, ndel, ncas, ttl_ms; per set: member, start, blob, meta ('' none);
#       per delete: member; per check: member, expected meta ('' absent)
_WRITE_LUA: Final = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local token = tonumber(ARGV[1])
if token < cur then return 0 end
local nset, ndel, ncas = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local a = 6 + 4 * nset + ndel
for _ = 1, ncas do
  local got = redis.call('HGET', KEYS[3], ARGV[a]) or ''
  if got ~= ARGV[a + 1] then return 2 end
  a = a + 2
end
if token > cur then redis.call('SET', KEYS[1], token) end
a = 6
for i = 1, nset do
  redis.call('SET', KEYS[3 + i], ARGV[a + 2], 'PX', ARGV[5])
  redis.call('ZADD', KEYS[2], ARGV[a + 1], ARGV[a])
  if ARGV[a + 3] ~= '' then redis.call('HSET', KEYS[3], ARGV[a], ARGV[a + 3])
  else redis.call('HDEL', KEYS[3], ARGV[a]) end
  a = a + 4
end
for i = 1, ndel do
  redis.call('DEL', KEYS[3 + nset + i])
  redis.call('ZREM', KEYS[2], ARGV[a])
  redis.call('HDEL', KEYS[3], ARGV[a])
  a = a + 1
end
return 1
"""


class Record(NamedTuple):
    """One model-level record: a compacted window (``w``) or a roll-up (``h``, ``d``)."""

    tier: str
    version: str
    start_ms: int

    def encode(self) -> str:
        return f"{self.tier}|{self.version}|{self.start_ms}"

    @classmethod
    def decode(cls, text: str) -> Record:
        tier, version, start = text.split("|")
        return cls(tier, version, int(start))


def contributors_text(parts: Mapping[int, int]) -> str:
    return json.dumps({str(p): g for p, g in sorted(parts.items())}, separators=(",", ":"))


def parse_contributors(text: str | bytes | None) -> dict[int, int]:
    if not text:
        return {}
    return {int(p): int(g) for p, g in json.loads(text).items()}


def included(partition: int, contributors: Mapping[int, int]) -> bool:
    """Whether a partition blob of a compacted window is already counted in the record:
    any blob of a contributor is (see the module doc), a newcomer's is not."""
    return partition in contributors


class TierStore:
    """The model-level records of one topic (see the module doc for keys)."""

    def __init__(self, client: redis.Redis, *, prefix: str, topic: str,
                 ttl_ms: int = 7 * DAY_MS) -> None:
        self.client = client
        self.prefix = prefix
        self.topic = topic
        self.ttl_ms = ttl_ms
        self._script = client.register_script(_WRITE_LUA)

    def _base(self, model: str) -> str:
        return f"{self.prefix}:{SCHEME}:{{{self.prefix}:{model}}}:{self.topic}"

    def index_key(self, model: str) -> str:
        return self._base(model) + ":cidx"

    def meta_key(self, model: str) -> str:
        return self._base(model) + ":cmeta"

    def blob_key(self, model: str, record: Record) -> str:
        return f"{self._base(model)}:c:{record.encode()}"

    def records(self, model: str, min_start_ms: int = 0, max_start_ms: int | None = None
                ) -> dict[Record, str]:
        """Records of ``model`` starting in the range -> their meta ('' for roll-ups)."""
        members: list[bytes] = self.client.zrangebyscore(  # type: ignore[assignment]
            self.index_key(model), min_start_ms, "+inf" if max_start_ms is None else max_start_ms)
        if not members:
            return {}
        metas: list[bytes | None] = self.client.hmget(  # type: ignore[assignment]
            self.meta_key(model), members)
        return {Record.decode(m.decode()): (v.decode() if v else "")
                for m, v in zip(members, metas, strict=True)}

    def blobs(self, model: str, records: Iterable[Record]) -> dict[Record, bytes]:
        wanted = list(records)
        if not wanted:
            return {}
        raw = self.client.mget([self.blob_key(model, r) for r in wanted])
        return {r: b for r, b in zip(wanted, raw, strict=True) if isinstance(b, bytes)}

    def usage_key(self, model: str) -> str:
        return self._base(model) + ":usage"

    def save_usage(self, model: str, usage: Mapping[str, Any]) -> None:
        self.client.set(self.usage_key(model), json.dumps(usage), px=self.ttl_ms)

    def usage(self, model: str) -> dict[str, Any] | None:
        """What the model's stored windows took at the last compaction pass (see
        :meth:`Compactor.measure`), or None."""
        raw = self.client.get(self.usage_key(model))
        return json.loads(raw) if isinstance(raw, bytes) else None

    def write(self, model: str, token: int, fence_key: str, *,
              put: Mapping[Record, tuple[bytes, str]] | None = None,
              delete: Iterable[Record] = (), expect: Mapping[Record, str] | None = None) -> int:
        """One fenced, atomic change: set ``put`` (record -> (blob, meta)), delete
        ``delete``, provided every ``expect`` record's meta is still as given. 1: done,
        0: a newer evaluator owns the model, 2: a record changed meanwhile."""
        put = put or {}
        expect = expect or {}
        gone = list(delete)
        keys = [fence_key, self.index_key(model), self.meta_key(model),
                *(self.blob_key(model, r) for r in put),
                *(self.blob_key(model, r) for r in gone)]
        args: list[Any] = [token, len(put), len(gone), len(expect), self.ttl_ms]
        for r, (blob, meta) in put.items():
            args += [r.encode(), r.start_ms, blob, meta]
        args += [r.encode() for r in gone]
        for r, meta in expect.items():
            args += [r.encode(), meta]
        return int(self._script(keys=keys, args=args))


@dataclass(frozen=True)
class ModelSpan:
    """What compaction needs to know of a model (from the models file)."""

    window_ms: int
    retention_ms: int
    measure_ms: int


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
                 hourly_ms: int = DEFAULT_HOURLY_MS, daily_ms: int = DEFAULT_DAILY_MS,
                 max_blobs: int = 5000) -> None:
        self.store = store
        self.tiers = tiers
        self.hourly_ms = hourly_ms
        self.daily_ms = daily_ms
        self.max_blobs = max_blobs
        self.totals = CompactionStats()

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
        self.totals.compacted += stats.compacted
        self.totals.dropped += stats.dropped
        self.totals.rolled += stats.rolled
        self.totals.expired += stats.expired
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
            self._roll(model, span, token, fence, watermark, pending, stats)
            self.measure(model, {k: ps for k, ps in windows.items() if k not in gone})
        return stats

    def measure(self, model: str, windows: Mapping[WindowKey, Mapping[int, int]]) -> None:
        """Store what ``model``'s windows take now (bytes of the partition blobs still
        there and of its records per tier), for ``driftline status``."""
        pipe = self.tiers.client.pipeline(transaction=False)
        blobs = [(p, k) for k, parts in windows.items() for p in parts]
        for p, k in blobs:
            pipe.strlen(self.store.window_key(p, k))
        records = list(self.tiers.records(model))
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
                                        expect={record: old_meta or ""})
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
              pending: set[tuple[str, int]], stats: CompactionStats) -> None:
        keep = span.measure_ms + span.window_ms + span.retention_ms
        records = self.tiers.records(model)
        steps = (("w", "h", HOUR_MS, watermark - keep),
                 ("h", "d", DAY_MS, watermark - self.hourly_ms))
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
                done = self.tiers.write(model, token, fence,
                                        put={target: (blob, rollup_meta(blob))},
                                        delete=parts, expect=expect)
                if done == 0:
                    return
                if done == 1:
                    stats.rolled += len(parts)
                    for r in parts:
                        records.pop(r, None)
                    records[target] = rollup_meta(blob)
        old = [r for r in records if r.tier == "d" and r.start_ms + DAY_MS
               <= watermark - self.daily_ms]
        if old and self.tiers.write(model, token, fence, delete=old) == 1:
            stats.expired += len(old)


def snapshot_marks(snaps: Mapping[int, PartitionSnapshot], model: str) -> dict[int, int]:
    """partition -> the watermark that decides lateness of ``model``'s events there."""
    return {p: s.watermarks.get(model, s.watermark_ms) for p, s in snaps.items()}


def rollup_meta(blob: bytes) -> str:
    """The meta of a roll-up record: a digest of its bytes (changes whenever it does)."""
    return "#" + hashlib.blake2b(blob, digest_size=8).hexdigest()
