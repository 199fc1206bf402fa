"""Per-partition window state in Redis (DESIGN.md §3), with epoch fencing.

Key scheme, version 1 (``P`` = key prefix, ``T`` = topic, ``p`` = partition)::

    P:v1:{P:T:p<p>}:meta              hash: epoch, offset, watermark, c:<counter>=n,
                                      wm:<model>=ms (per-model watermark; absent in
                                      state written before them: ``watermark`` stands in)
    P:v1:{P:T:p<p>}:idx               zset: window member "model|version|start" -> start
    P:v1:{P:T:p<p>}:w:<member>        string: DatasetProfile bytes (versioned header)
    P:v1:{P:T}:partitions             set of partition numbers written (informational)

All keys of one partition share the hash tag ``{P:T:p<p>}``, so the checkpoint script
touches one Redis Cluster slot. :meth:`RedisStateStore.load` bumps the partition's epoch
(``HINCRBY``) and returns what is stored; :meth:`RedisStateStore.write` runs one Lua
script that first compares the stored epoch with the writer's and raises
:class:`FencedError` when they differ (a newer owner took the partition), else sets the
changed windows (with TTL), the index, the applied offset, watermark and counters —
all or nothing. Writes are idempotent, so a retry after a lost reply is safe.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
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
    ConnectionResetError,
)
"""Errors worth waiting out (Redis down, restarting, loading its AOF)."""

_WRITE_LUA: Final = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
if cur ~= tonumber(ARGV[1]) then
  return {0, cur}
end
local ncount = tonumber(ARGV[5])
local i = 6
redis.call('HSET', KEYS[1], 'offset', ARGV[2], 'watermark', ARGV[3])
local fields = {}
for n = 1, ncount do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  i = i + 2
  if #fields >= 1000 or n == ncount then  -- unpack() has a stack limit: set in chunks
    redis.call('HSET', KEYS[1], unpack(fields))
    fields = {}
  end
end
for k = 3, #KEYS do
  redis.call('SET', KEYS[k], ARGV[i + 3], 'PX', ARGV[i + 2])
  redis.call('ZADD', KEYS[2], ARGV[i + 1], ARGV[i])
  i = i + 4
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4])
return {1, cur}
"""


class FencedError(DriftlineError):
    """A write carried an older epoch than Redis holds: another worker owns the partition."""


class RedisStateStore:
    """Loads and checkpoints partitions of one topic (see module doc for keys).

    ``client`` is a ``redis.Redis`` with ``decode_responses=False``. ``window_ttl_ms``
    is the TTL set on a window's key at each write (and how far behind the watermark
    index entries are trimmed); keep it above every model's window + retention.
    ``horizon_ms``: windows starting before ``watermark - horizon_ms`` are not loaded.
    ``fsync``: after each write wait for the local AOF fsync (``WAITAOF 1 0``), for
    Redis run with ``appendfsync everysec`` where a crash could lose the last second.
    Redis errors propagate (the runner wraps calls in a RetryPolicy).
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
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.topic = topic
        self.horizon_ms = horizon_ms
        self.window_ttl_ms = window_ttl_ms
        self.fsync = fsync
        self._script = client.register_script(_WRITE_LUA)

    # -- keys ------------------------------------------------------------------------
    def _base(self, partition: int) -> str:
        return f"{self.prefix}:{SCHEME}:{{{self.prefix}:{self.topic}:p{partition}}}"

    def meta_key(self, partition: int) -> str:
        return self._base(partition) + ":meta"

    def index_key(self, partition: int) -> str:
        return self._base(partition) + ":idx"

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
        log.info(
            "loaded topic=%s partition=%d epoch=%d applied_offset=%d windows=%d",
            self.topic, partition, epoch, snap.applied_offset, len(snap.windows),
        )
        return dataclasses.replace(snap, epoch=epoch)

    def write(self, cp: Checkpoint) -> None:
        """Store one checkpoint atomically; raise :class:`FencedError` on an old epoch."""
        p = cp.partition
        keys: list[str] = [self.meta_key(p), self.index_key(p)]
        counters = cp.counters.to_fields()
        argv: list[Any] = [
            cp.epoch,
            cp.applied_offset,
            cp.watermark_ms,
            min(cp.watermarks.values(), default=cp.watermark_ms) - self.window_ttl_ms,
            len(counters) + len(cp.watermarks),
        ]
        for name, value in counters.items():
            argv += [f"c:{name}", value]
        for model, mark in cp.watermarks.items():
            argv += [f"wm:{model}", mark]
        for key, blob in cp.windows.items():
            keys.append(self.window_key(p, key))
            argv += [key.encode(), key.start_ms, self.window_ttl_ms, blob]
        ok, current = self._script(keys=keys, args=argv)
        if not int(ok):
            raise FencedError(
                f"topic={self.topic} partition={p}: write with epoch {cp.epoch} rejected, "
                f"Redis holds epoch {int(current)}"
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
            partition, int(meta.get("epoch", 0)), offset, watermark, counters, windows, watermarks
        )

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
