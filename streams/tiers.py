"""Model-level window records of one topic: compacted windows and their roll-ups.

Written by :class:`streams.compaction.Compactor` (fenced, atomic scripts), read by
:class:`streams.reader.WindowReader`.

Keys (``P`` prefix, ``T`` topic, ``M`` model)::

    P:v1:{P:M}:T:cidx          zset  "tier|version|start" -> start
    P:v1:{P:M}:T:cmeta         hash  member -> contributors JSON {"p": gen} (tier w), or
                                     "#" + a digest of the bytes (roll-ups)
    P:v1:{P:M}:T:c:<member>    string  DatasetProfile bytes (wall-clock TTL as a backstop)

The compactor deletes records by event time; the TTL only catches what it never comes
back for (a retired model, a compactor stopped for good). It is therefore the longest a
record of its tier can legitimately live after its last write, plus a week
(:meth:`TierStore.ttl_ms`): an hourly record lives ``hourly_ms`` (``--keep-hourly``), a
daily one ``daily_ms`` (``--keep-daily``), a compacted window the model's measurement
needs. A shorter TTL would drop records the compactor still means to roll up.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Final, NamedTuple

import redis

from streams.state import SCHEME

HOUR_MS: Final = 3_600_000
DAY_MS: Final = 24 * HOUR_MS
DEFAULT_HOURLY_MS: Final = 7 * DAY_MS
DEFAULT_DAILY_MS: Final = 90 * DAY_MS
TIERS: Final = ("w", "h", "d")
BACKSTOP_MS: Final = 7 * DAY_MS

# KEYS: fence, cidx, cmeta, blob keys set (nset), blob keys deleted (ndel)
# ARGV: token, nset, ndel, ncas; per set: member, start, blob, meta ('' none), ttl_ms;
#       per delete: member; per check: member, expected meta ('' absent)
_WRITE_LUA: Final = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local token = tonumber(ARGV[1])
if token < cur then return 0 end
local nset, ndel, ncas = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local a = 5 + 5 * nset + ndel
for _ = 1, ncas do
  local got = redis.call('HGET', KEYS[3], ARGV[a]) or ''
  if got ~= ARGV[a + 1] then return 2 end
  a = a + 2
end
if token > cur then redis.call('SET', KEYS[1], token) end
a = 5
for i = 1, nset do
  redis.call('SET', KEYS[3 + i], ARGV[a + 2], 'PX', ARGV[a + 4])
  redis.call('ZADD', KEYS[2], ARGV[a + 1], ARGV[a])
  if ARGV[a + 3] ~= '' then redis.call('HSET', KEYS[3], ARGV[a], ARGV[a + 3])
  else redis.call('HDEL', KEYS[3], ARGV[a]) end
  a = a + 5
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
                 hourly_ms: int = DEFAULT_HOURLY_MS, daily_ms: int = DEFAULT_DAILY_MS) -> None:
        self.client = client
        self.prefix = prefix
        self.topic = topic
        self.hourly_ms = hourly_ms
        self.daily_ms = daily_ms
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

    def records_many(self, spans: Mapping[str, tuple[int, int]]
                     ) -> dict[str, dict[Record, str]]:
        """:meth:`records` of several models (model -> (first, last) start) in two round
        trips instead of two per model."""
        names = list(spans)
        pipe = self.client.pipeline(transaction=False)  # (keys span cluster slots)
        for model in names:
            pipe.zrangebyscore(self.index_key(model), *spans[model])
        listed: list[list[bytes]] = pipe.execute()
        found = [(model, members) for model, members in zip(names, listed, strict=True)
                 if members]
        for model, members in found:
            pipe.hmget(self.meta_key(model), members)
        metas: list[list[bytes | None]] = pipe.execute() if found else []
        out: dict[str, dict[Record, str]] = {model: {} for model in names}
        for (model, members), values in zip(found, metas, strict=True):
            out[model] = {Record.decode(m.decode()): (v.decode() if v else "")
                          for m, v in zip(members, values, strict=True)}
        return out

    def blobs(self, model: str, records: Iterable[Record]) -> dict[Record, bytes]:
        wanted = list(records)
        if not wanted:
            return {}
        raw = self.client.mget([self.blob_key(model, r) for r in wanted])
        return {r: b for r, b in zip(wanted, raw, strict=True) if isinstance(b, bytes)}

    def usage_key(self, model: str) -> str:
        return self._base(model) + ":usage"

    def ttl_ms(self, record: Record, keep_ms: int = 0) -> int:
        """The backstop TTL of ``record`` (see the module doc); ``keep_ms``: how long the
        model's measurement keeps compacted windows (tier ``w``)."""
        life = {"w": keep_ms + HOUR_MS, "h": self.hourly_ms + HOUR_MS,
                "d": self.daily_ms + DAY_MS}[record.tier]
        return life + BACKSTOP_MS

    def save_usage(self, model: str, usage: Mapping[str, Any]) -> None:
        self.client.set(self.usage_key(model), json.dumps(usage), px=BACKSTOP_MS)

    def usage(self, model: str) -> dict[str, Any] | None:
        """What the model's stored windows took at the last compaction pass (see
        :meth:`Compactor.measure`), or None."""
        raw = self.client.get(self.usage_key(model))
        return json.loads(raw) if isinstance(raw, bytes) else None

    def write(self, model: str, token: int, fence_key: str, *,
              put: Mapping[Record, tuple[bytes, str]] | None = None,
              delete: Iterable[Record] = (), expect: Mapping[Record, str] | None = None,
              keep_ms: int = 0) -> int:
        """One fenced, atomic change: set ``put`` (record -> (blob, meta)), delete
        ``delete``, provided every ``expect`` record's meta is still as given. 1: done,
        0: a newer evaluator owns the model, 2: a record changed meanwhile. ``keep_ms``:
        see :meth:`ttl_ms`."""
        put = put or {}
        expect = expect or {}
        gone = list(delete)
        keys = [fence_key, self.index_key(model), self.meta_key(model),
                *(self.blob_key(model, r) for r in put),
                *(self.blob_key(model, r) for r in gone)]
        args: list[Any] = [token, len(put), len(gone), len(expect)]
        for r, (blob, meta) in put.items():
            args += [r.encode(), r.start_ms, blob, meta, self.ttl_ms(r, keep_ms)]
        args += [r.encode() for r in gone]
        for r, meta in expect.items():
            args += [r.encode(), meta]
        return int(self._script(keys=keys, args=args))


def rollup_meta(blob: bytes) -> str:
    """The meta of a roll-up record: a digest of its bytes (changes whenever it does)."""
    return "#" + hashlib.blake2b(blob, digest_size=8).hexdigest()
