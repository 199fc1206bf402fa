"""Per-partition window state in Redis (DESIGN.md §3), with epoch fencing.

Key scheme, version 1 (``P`` = key prefix, ``T`` = topic, ``p`` = partition)::

    P:v1:{P:T:p<p>}:meta              hash: epoch, gen, offset, watermark, topic_id,
                                      c:<counter>=n, wm:<model>=ms (per-model watermark;
                                      absent in older state: ``watermark`` stands in),
                                      inc:<model>=ms (windows up to this start incomplete),
                                      seen:<model>=epoch s (wall clock of the last
                                      checkpoint that grew c:ok:<model>), lag=records
                                      behind the log end (as the owner last knew it)
    P:v1:{P:T:p<p>}:idx               zset: window member "model|version|start" -> start
    P:v1:{P:T:p<p>}:written           hash: window member -> generation of its last write
                                      (readers re-read only windows that changed)
    P:v1:{P:T:p<p>}:w:<member>        string: DatasetProfile bytes (versioned header); once
                                      the window is closed everywhere, compaction merges
                                      the partitions' blobs into one model-level record and
                                      deletes them (:mod:`streams.compaction`)
    P:v1:{P:T}:partitions             set of partition numbers written (informational)

All keys of one partition share the hash tag ``{P:T:p<p>}``, so the checkpoint script touches one
Redis Cluster slot. :meth:`RedisStateStore.load` bumps the partition's epoch (``HINCRBY``) and
returns what is stored; :meth:`RedisStateStore.write` runs one Lua script that first compares the
stored epoch and generation (a write counter) with the writer's: a newer epoch in Redis raises
:class:`FencedError` (a newer owner took the partition); an older epoch or another generation
raises :class:`StateLostError` (Redis lost what this worker wrote: restarted empty, flushed,
evicted, restored from an old snapshot). Otherwise it sets the changed windows (with TTL), the
index, the applied offset, watermark, counters and topic id, and bumps the generation — all or
nothing. A retry of a write whose reply was lost is recognised and succeeds.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final

import redis
import redis.exceptions

from sketches.errors import ConfigError, DriftlineError
from streams.core import NO_OFFSET, NO_WATERMARK, Checkpoint, PartitionSnapshot
from streams.windows import Counters, WindowKey

log = logging.getLogger(__name__)

SCHEME: Final = "v1"
DEFAULT_WINDOW_TTL_MS: Final = 7 * 24 * 3600 * 1000

REDIS_TRANSIENT: Final[tuple[type[BaseException], ...]] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    ConnectionResetError,
)
"""Errors worth waiting out (Redis down, restarting, loading its AOF)."""

_WRITE_LUA: Final = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
local want = tonumber(ARGV[1])
if cur > want then
  return {0, cur, gen}
end
if cur == want and gen == tonumber(ARGV[2]) + 1 and
   redis.call('HGET', KEYS[1], 'offset') == ARGV[3] then
  return {1, cur, gen}  -- a retry of a write that landed (its reply was lost)
end
if cur < want or gen ~= tonumber(ARGV[2]) then
  return {2, cur, gen}
end
local ncount = tonumber(ARGV[6])
local seen = ARGV[7]
local i = 8
redis.call('HSET', KEYS[1], 'offset', ARGV[3], 'watermark', ARGV[4], 'gen', gen + 1)
local fields = {}
for n = 1, ncount do
  local f, v = ARGV[i], ARGV[i + 1]
  if seen ~= '' and string.sub(f, 1, 5) == 'c:ok:' and
     tonumber(v) > tonumber(redis.call('HGET', KEYS[1], f) or '0') then
    fields[#fields + 1] = 'seen:' .. string.sub(f, 6)  -- the model took events: stamp it
    fields[#fields + 1] = seen
  end
  fields[#fields + 1] = f
  fields[#fields + 1] = v
  i = i + 2
  if #fields >= 1000 or n == ncount then  -- unpack() has a stack limit: set in chunks
    redis.call('HSET', KEYS[1], unpack(fields))
    fields = {}
  end
end
for k = 4, #KEYS do
  redis.call('SET', KEYS[k], ARGV[i + 3], 'PX', ARGV[i + 2])
  redis.call('ZADD', KEYS[2], ARGV[i + 1], ARGV[i])
  redis.call('HSET', KEYS[3], ARGV[i], gen + 1)
  i = i + 4
end
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[5])
for _, m in ipairs(old) do redis.call('HDEL', KEYS[3], m) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[5])
return {1, cur, gen + 1}
"""

_RESET_LUA: Final = """
local members = redis.call('ZRANGE', KEYS[2], 0, -1)
for _, m in ipairs(members) do redis.call('DEL', ARGV[1] .. m) end
local epoch = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0') + 1
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'epoch', epoch, 'gen', 0)
return epoch
"""

# KEYS: idx, written, then window keys; ARGV: per window key: member, generation
_DROP_LUA: Final = """
local n = 0
for i = 3, #KEYS do
  local m = ARGV[2 * (i - 3) + 1]
  if redis.call('HGET', KEYS[2], m) == ARGV[2 * (i - 3) + 2] then
    redis.call('DEL', KEYS[i])
    redis.call('ZREM', KEYS[1], m)
    redis.call('HDEL', KEYS[2], m)
    n = n + 1
  end
end
return n
"""


class StateLostError(DriftlineError):
    """The partition's state in Redis is missing or older than this worker last wrote
    (Redis restarted empty, FLUSHALL, eviction, an old snapshot restored): not fencing."""

    def __init__(self, message: str, *, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


class FencedError(DriftlineError):
    """A write carried an older epoch than Redis holds: another worker owns the partition."""


_STATUS_FENCED, _STATUS_OK, _STATUS_LOST = 0, 1, 2


class RedisStateStore:
    """Loads and checkpoints partitions of one topic (see module doc for keys).

    ``client`` is a ``redis.Redis`` with ``decode_responses=False``. ``window_ttl_ms`` is the TTL
    set on a window's key at each write (and how far behind the watermark index entries are
    trimmed); keep it above every model's window + retention. ``horizon_ms``: windows starting
    before ``watermark - horizon_ms`` are not loaded. ``fsync``: after each write wait for the
    local AOF fsync (``WAITAOF 1 0``), for Redis run with ``appendfsync everysec`` where a crash
    could lose the last second. Redis errors propagate (the runner wraps calls in a RetryPolicy).
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        topic: str,
        horizon_ms: int,
        window_ttl_ms: int = DEFAULT_WINDOW_TTL_MS,
        fsync: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        """Wall clock of the ``seen:<model>`` stamps (the operational ``stale`` alert)."""
        self.client = client
        self.prefix = prefix
        self.topic = topic
        self.horizon_ms = horizon_ms
        self.window_ttl_ms = window_ttl_ms
        self.fsync = fsync
        self._script = client.register_script(_WRITE_LUA)
        self._reset = client.register_script(_RESET_LUA)
        self._drop = client.register_script(_DROP_LUA)

    # -- keys ------------------------------------------------------------------------
    def _base(self, partition: int) -> str:
        return f"{self.prefix}:{SCHEME}:{{{self.prefix}:{self.topic}:p{partition}}}"

    def meta_key(self, partition: int) -> str:
        return self._base(partition) + ":meta"

    def index_key(self, partition: int) -> str:
        return self._base(partition) + ":idx"

    def written_key(self, partition: int) -> str:
        return self._base(partition) + ":written"

    def window_key(self, partition: int, key: WindowKey) -> str:
        return f"{self._base(partition)}:w:{key.encode()}"

    def partitions_key(self) -> str:
        return f"{self.prefix}:{SCHEME}:{{{self.prefix}:{self.topic}}}:partitions"

    # -- owner side ------------------------------------------------------------------
    def load(self, partition: int) -> PartitionSnapshot:
        """Bump the partition's epoch and return its stored state (open windows only)."""
        epoch = int(self.client.hincrby(self.meta_key(partition), "epoch", 1))
        self.client.sadd(self.partitions_key(), partition)
        snap = self.read(partition, min_start_ms=None)
        log.info("loaded topic=%s partition=%d epoch=%d applied_offset=%d windows=%d",
                 self.topic, partition, epoch, snap.applied_offset, len(snap.windows))
        return dataclasses.replace(snap, epoch=epoch)

    def stored_epochs(self, partitions: list[int]) -> list[tuple[int, int]]:
        """(epoch, generation) stored for each of ``partitions``, in one round trip."""
        pipe = self.client.pipeline(transaction=False)  # (metas span cluster slots)
        for p in partitions:
            pipe.hmget(self.meta_key(p), "epoch", "gen")
        return [(int(e or 0), int(g or 0)) for e, g in pipe.execute()]

    def reset(self, partition: int) -> PartitionSnapshot:
        """Delete the partition's stored state (its windows, index and meta) and take it
        with a new epoch: for state that belongs to another incarnation of the topic."""
        epoch = int(self._reset(keys=[self.meta_key(partition), self.index_key(partition),
                                      self.written_key(partition)],
                                args=[self._base(partition) + ":w:"]))
        self.client.sadd(self.partitions_key(), partition)
        return PartitionSnapshot(partition, epoch)

    def write(self, cp: Checkpoint, lag: int | None = None) -> None:
        """Store one checkpoint atomically. :class:`FencedError` when Redis holds a newer
        epoch (another worker owns the partition); :class:`StateLostError` when it holds an
        older epoch or another generation than this worker last wrote (state lost).
        Models whose ``ok`` counter grew get ``seen:<model>`` = now (:attr:`clock`);
        ``lag``: the partition's consumer lag, stored for the evaluator."""
        p = cp.partition
        keys: list[str] = [self.meta_key(p), self.index_key(p), self.written_key(p)]
        fields: list[Any] = []
        for name, value in cp.counters.to_fields().items():
            fields += [f"c:{name}", value]
        for model, mark in cp.watermarks.items():
            fields += [f"wm:{model}", mark]
        if cp.topic_id:
            fields += ["topic_id", cp.topic_id]
        for model, start in cp.incomplete.items():
            fields += [f"inc:{model}", start]
        if lag is not None:
            fields += ["lag", lag]
        argv: list[Any] = [
            cp.epoch,
            cp.generation,
            cp.applied_offset,
            cp.watermark_ms,
            min(cp.watermarks.values(), default=cp.watermark_ms) - self.window_ttl_ms,
            len(fields) // 2,
            repr(self.clock()),
            *fields,
        ]
        for key, blob in cp.windows.items():
            keys.append(self.window_key(p, key))
            argv += [key.encode(), key.start_ms, self.window_ttl_ms, blob]
        status, current, gen = (int(x) for x in self._script(keys=keys, args=argv))
        if status == _STATUS_FENCED:
            raise FencedError(
                f"topic={self.topic} partition={p}: write with epoch {cp.epoch} rejected, "
                f"Redis holds epoch {current}"
            )
        if status == _STATUS_LOST:
            raise StateLostError(
                f"topic={self.topic} partition={p}: state lost — this worker last wrote "
                f"generation {cp.generation} (epoch {cp.epoch}, applied offset up to the "
                f"previous checkpoint), Redis holds generation {gen} (epoch {current})",
                cause="missing" if current == 0 and gen == 0 else "older",
            )
        if self.fsync:
            try:
                self.client.execute_command(  # type: ignore[no-untyped-call]
                    "WAITAOF", 1, 0, 5000
                )
            except redis.exceptions.ResponseError as exc:
                raise ConfigError(f"fsync needs Redis >= 7.2 with appendonly on: {exc}") from exc

    # -- reader side -----------------------------------------------------------------
    def read(self, partition: int, *, min_start_ms: int | None = None) -> PartitionSnapshot:
        """The stored state of a partition without taking ownership (epoch unchanged).

        ``min_start_ms=None`` loads windows starting at or after ``watermark - horizon``,
        for the watermark of the model furthest behind.
        """
        raw = self.client.hgetall(self.meta_key(partition))
        meta = {_text(k): _text(v) for k, v in raw.items()}
        offset = int(meta.get("offset", NO_OFFSET))
        watermark = int(meta.get("watermark", NO_WATERMARK))
        counters = Counters.from_fields(
            {k[2:]: int(v) for k, v in meta.items() if k.startswith("c:")}
        )
        watermarks = {k[3:]: int(v) for k, v in meta.items() if k.startswith("wm:")}
        generation = int(meta.get("gen", 0))
        topic_id = meta.get("topic_id") or None
        incomplete = {k[4:]: int(v) for k, v in meta.items() if k.startswith("inc:")}
        if min_start_ms is None:
            # the model furthest behind decides: another model's clock must not hide its
            # still-open windows (a fresh, empty window would then overwrite the stored one)
            oldest = min(watermarks.values(), default=watermark)
            min_start_ms = oldest - self.horizon_ms if oldest != NO_WATERMARK else 0
        members = self.client.zrangebyscore(self.index_key(partition), min_start_ms, "+inf")
        keys = [WindowKey.decode(_text(m)) for m in members]
        windows: dict[WindowKey, bytes] = {}
        if keys:
            blobs = self.client.mget([self.window_key(partition, k) for k in keys])
            windows = {k: _blob(b) for k, b in zip(keys, blobs, strict=True) if b is not None}
        return PartitionSnapshot(
            partition, int(meta.get("epoch", 0)), offset, watermark, counters, windows, watermarks,
            generation, topic_id, incomplete,
        )

    def written(self, partition: int, *, min_start_ms: int,
                models: Collection[str] | None = None) -> dict[WindowKey, int]:
        """Windows starting at or after ``min_start_ms`` and the generation of their last
        write (-1: written before generations were kept, so always read); ``models``: of
        these models only (an evaluator shard lists every model's windows but reads the
        generations and decodes the keys of its own only)."""
        members: list[bytes] = self.client.zrangebyscore(  # type: ignore[assignment]
            self.index_key(partition), min_start_ms, "+inf")
        if models is not None:
            wanted = {m.encode() for m in models}
            members = [m for m in members if m.partition(b"|")[0] in wanted]
        if not members:
            return {}
        gens = self.client.hmget(self.written_key(partition), members)
        return {WindowKey.decode(_text(m)): int(g) if g is not None else -1
                for m, g in zip(members, gens, strict=True)}

    def window_blobs(self, partition: int, keys: list[WindowKey]) -> dict[WindowKey, bytes]:
        """The stored bytes of ``keys`` (those that expired are left out)."""
        if not keys:
            return {}
        blobs = self.client.mget([self.window_key(partition, k) for k in keys])
        return {k: _blob(b) for k, b in zip(keys, blobs, strict=True) if b is not None}

    def drop_windows(self, partition: int, windows: Mapping[WindowKey, int]) -> int:
        """Delete ``partition``'s blobs of ``windows`` (key -> generation) that are still at
        that generation — compaction (:mod:`streams.compaction`) merged them into a
        model-level record. The only write to a partition's keys besides its owner's
        checkpoints: it touches only closed windows the owner never writes again."""
        if not windows:
            return 0
        keys = [self.index_key(partition), self.written_key(partition),
                *(self.window_key(partition, k) for k in windows)]
        args: list[Any] = []
        for key, gen in windows.items():
            args += [key.encode(), gen]
        return int(self._drop(keys=keys, args=args))

    # -- incidents (read by the evaluator's operational alert) ---------------------------
    def incidents_key(self) -> str:
        return f"{self.prefix}:{SCHEME}:{{{self.prefix}:{self.topic}}}:incidents"

    def note_incident(self, partition: int, cause: str | None, *, rebuilding: bool,
                      records: int = 0, now: Callable[[], float] = time.time) -> None:
        """Record, for the operational alerts, that ``partition``'s state was reset
        (``cause``: lost, recreated topic, ...; counted in ``count``, stamped ``at``; None:
        no new reset), whether it is ``rebuilding``, and ``records`` skipped (a gap,
        stamped ``gap_at``)."""
        key = self.incidents_key()
        raw = self.client.hget(key, str(partition))
        cur: dict[str, Any] = json.loads(raw) if raw else {"count": 0, "records": 0}
        if cause is not None:
            cur.update(cause=cause, count=cur["count"] + 1, at=now())
        cur["rebuilding"] = rebuilding
        cur["records"] = cur.get("records", 0) + records
        if records:
            cur["gap_at"] = now()
        self.client.hset(key, str(partition), json.dumps(cur))

    def incidents(self) -> dict[int, dict[str, Any]]:
        """partition -> its last incident: cause, count, at (epoch s), rebuilding, records."""
        raw: dict[bytes, bytes] = self.client.hgetall(self.incidents_key())  # type: ignore[assignment]
        return {int(k): json.loads(v) for k, v in raw.items()}

    def stored_partitions(self) -> list[int]:
        return sorted(int(p) for p in self.client.smembers(self.partitions_key()))

    def windows(self, *, min_start_ms: int = 0) -> Mapping[int, Mapping[WindowKey, bytes]]:
        """Every stored window of every partition (for readers and tests)."""
        return {
            p: self.read(p, min_start_ms=min_start_ms).windows for p in self.stored_partitions()
        }


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def _blob(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    raise TypeError(f"expected bytes from Redis, got {type(value).__name__}")
