"""Sharded, fenced evaluation on Kafka's own group protocol.

Models are spread over evaluator *shards*: shard ``s`` is partition ``s`` of the notices
topic (``<events topic>.notices``) and a model's shard is ``crc32(model) % shards`` — the
partition librdkafka's ``consistent`` partitioner gives a notice keyed by the model name.
Evaluator processes form one consumer group on that topic, so **the group assignment is
the shard map**: adding an evaluator spreads the shards, a dead one's shards move to the
others after the group's session timeout, and nothing here elects anyone.

Workers produce a small notice (model, partition) after every checkpoint that changed a
model's windows (:mod:`streams.notices`); an evaluator consumes the notices of its shards,
and they are the *dirty set*: only those models' windows are re-read. Every owned model is
still evaluated on the wall clock (alert timers, windows sliding out), and all of them are
re-read every ``sweep`` seconds in case a notice was lost (notices are hints, the state in
Redis is the truth).

Fencing — a paused or partitioned evaluator must never act beside its successor:

* **Kafka**: alerts are published in a transaction that also commits the notices
  consumed (``send_offsets_to_transaction`` with the consumer's group metadata, KIP-447).
  The group coordinator refuses the commit of a member of an older generation, so a
  zombie's alerts are aborted — consumers of the alerts topic read ``read_committed``
  (librdkafka's default) and never see them.
* **Redis**: every assignment takes a new token from one counter (``INCR``), so tokens
  grow across all evaluators. Alert state (tracks, results) is written by one Lua script
  per model that refuses a token smaller than the model's stored fence and raises the
  fence to its own: once the successor has written a model, the zombie cannot.

What is left: a crash *between* a committed publish and the state write makes the
successor publish the same transition again (at-least-once; the message repeats ``id``,
``state`` and ``since``, so consumers can drop it). The window is one Redis round trip.
"""

from __future__ import annotations

import logging
import os
import socket
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
import redis
from confluent_kafka import (
    OFFSET_END,
    OFFSET_INVALID,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from alerts.keys import AlertKeys

log = logging.getLogger(__name__)

def shard_of(model: str, shards: int) -> int:
    """The shard (notices partition) of ``model``: librdkafka's ``consistent`` partitioner
    (CRC-32 of the key) — the same number on the producing and the evaluating side."""
    return zlib.crc32(model.encode()) % shards


class Notice(msgspec.Struct, frozen=True):
    """A worker's note that a checkpoint changed ``model``'s windows on ``partition``."""

    model: str
    partition: int


_NOTICE = msgspec.json.Decoder(Notice)

# KEYS[1] fence, then string keys, then hash keys; ARGV: token, #strings, the string
# values, then per hash: field count, field, value, ... (a hash is replaced).
_FENCED_WRITE: Final = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local token = tonumber(ARGV[1])
if token < cur then return 0 end
if token > cur then redis.call('SET', KEYS[1], token) end
local nstr = tonumber(ARGV[2])
local a = 3
for k = 2, nstr + 1 do redis.call('SET', KEYS[k], ARGV[a]); a = a + 1 end
for k = nstr + 2, #KEYS do
  redis.call('DEL', KEYS[k])
  local n = tonumber(ARGV[a]); a = a + 1
  for _ = 1, n do redis.call('HSET', KEYS[k], ARGV[a], ARGV[a + 1]); a = a + 2 end
end
return 1
"""


class Fence:
    """Per-model fenced writes of alert state (all of a model's keys share a hash tag)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client = client
        self._keys = AlertKeys(prefix)
        self._script = client.register_script(_FENCED_WRITE)
        self.counter_key = f"{prefix}:evaluator:tokens"
        self.owners_key = f"{prefix}:evaluator:owners"
        """hash shard -> "holder token" of its latest term (for operators and status)."""

    def next_token(self, shard: int, holder: str) -> int:
        token = int(self._client.incr(self.counter_key))
        self._client.hset(self.owners_key, str(shard), f"{holder} {token}")
        return token

    def owners(self) -> dict[int, tuple[str, int]]:
        """shard -> (holder, token) of the latest term taken on it."""
        raw: dict[bytes, bytes] = self._client.hgetall(self.owners_key)  # type: ignore[assignment]
        out = {}
        for k, v in raw.items():
            holder, _, token = v.decode().rpartition(" ")
            out[int(k)] = (holder, int(token))
        return out

    def write(self, model: str, token: int, values: Mapping[str, bytes] | None = None,
              hashes: Mapping[str, Mapping[str, bytes]] | None = None) -> bool:
        """Atomically set ``values`` and replace ``hashes`` (keys of ``model``) unless a
        newer owner wrote the model; False when refused."""
        values = values or {}
        hashes = hashes or {}
        keys = [self._keys.fence(model), *values, *hashes]
        args: list[bytes | str | int | float] = [token, len(values), *values.values()]
        for mapping in hashes.values():
            args.append(len(mapping))
            for k, v in mapping.items():
                args += [k, v]
        return bool(self._script(keys=keys, args=args))


class Owner:
    """Which models this evaluator owns now, with the fencing token of each.

    :class:`ShardGroup` keeps one up to date from the consumer group's assignment;
    :meth:`static` makes one that owns given shards (tests, benchmarks, one-off runs)."""

    def __init__(self, fence: Fence, shards: int, holder: str = "") -> None:
        self.fence = fence
        self.shards = shards
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}"
        self.tokens: dict[int, int] = {}
        """shard -> token of this evaluator's current term on it."""

    @classmethod
    def static(cls, client: redis.Redis, prefix: str, shards: int = 1,
               owned: Iterable[int] | None = None, holder: str = "") -> Owner:
        owner = cls(Fence(client, prefix), shards, holder)
        owner.take(range(shards) if owned is None else owned)
        return owner

    def take(self, shards: Iterable[int]) -> None:
        for s in shards:
            self.tokens[s] = self.fence.next_token(s, self.holder)

    def drop(self, shards: Iterable[int]) -> None:
        for s in shards:
            self.tokens.pop(s, None)

    def token(self, model: str) -> int | None:
        """The fencing token for ``model`` if this evaluator owns it, else None."""
        return self.tokens.get(shard_of(model, self.shards))

    def owns_any(self) -> bool:
        return bool(self.tokens)


@dataclass
class ShardGroup:
    """The evaluator's consumer of the notices topic: assignment → :class:`Owner`, notices
    → dirty models, and the commit point of the alert transactions.

    ``consumer`` is a ``confluent_kafka.Consumer`` (``enable.auto.commit`` off: offsets are
    committed only inside alert transactions, :meth:`commit_into`)."""

    consumer: Any
    topic: str
    owner: Owner
    dirty: set[str] = field(default_factory=set)
    positions: dict[int, int] = field(default_factory=dict)
    on_change: Callable[[set[int]], None] | None = None
    """Called with the shards gained (a new term: re-read their models in full)."""

    def subscribe(self) -> None:
        self.consumer.subscribe([self.topic], on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_revoke)

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        try:
            committed = {tp.partition: tp.offset
                         for tp in consumer.committed(partitions, timeout=10)}
        except KafkaException as exc:  # closing, or the coordinator is away
            log.warning("evaluator shards: committed offsets unknown (%s); from the end", exc)
            committed = {}
        for tp in partitions:
            offset = committed.get(tp.partition, OFFSET_INVALID)
            if offset < 0:  # nothing committed yet: start at the end (state is in Redis)
                try:
                    offset = consumer.get_watermark_offsets(tp, timeout=10)[1]
                except KafkaException:
                    offset = OFFSET_END
            tp.offset = offset
            if offset >= 0:
                self.positions[tp.partition] = offset
        consumer.incremental_assign(partitions)
        gained = {tp.partition for tp in partitions}
        self.owner.take(gained)
        log.info("evaluator shards assigned: %s (now %s)", sorted(gained),
                 sorted(self.owner.tokens))
        if self.on_change is not None:
            self.on_change(gained)

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        lost = {tp.partition for tp in partitions}
        self.owner.drop(lost)
        for s in lost:
            self.positions.pop(s, None)
        log.info("evaluator shards revoked: %s (now %s)", sorted(lost), sorted(self.owner.tokens))

    def poll(self, timeout_s: float) -> None:
        """Serve the group (assignment callbacks) and collect notices for up to
        ``timeout_s``; returns early once notices arrived."""
        for msg in self.consumer.consume(1000, timeout=timeout_s):
            if msg.error():
                code = msg.error().code()
                if code == KafkaError.INVALID_SESSION_TIMEOUT:
                    log.error("the evaluator cannot join its group: the broker refuses its "
                              "session timeout (--evaluator-lease; brokers allow 6s-300s by "
                              "default): %s", msg.error())
                elif code != KafkaError._PARTITION_EOF:
                    log.warning("notices: %s", msg.error())
                continue
            self.positions[msg.partition()] = msg.offset() + 1
            try:
                self.dirty.add(_NOTICE.decode(msg.value()).model)
            except Exception as exc:  # whatever a bad notice raises (None, not msgpack...)
                log.warning("notices: skipping an unreadable notice at %s/%d: %s",
                            msg.partition(), msg.offset(), exc)

    def take_dirty(self) -> set[str]:
        out, self.dirty = self.dirty, set()
        return out

    def commit_into(self, producer: Any, timeout_s: float) -> None:
        """Add the notices consumed so far to ``producer``'s open transaction, with the
        group metadata: the coordinator refuses it if this member's generation is over."""
        offsets = [TopicPartition(self.topic, s, off) for s, off in self.positions.items()
                   if s in self.owner.tokens]
        if not offsets:
            raise KafkaException(KafkaError(KafkaError._STATE, "no shard assigned"))
        producer.send_offsets_to_transaction(offsets, self.consumer.consumer_group_metadata(),
                                             timeout_s)
