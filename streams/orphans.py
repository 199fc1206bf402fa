"""Stored partition states that no partition of the current topic will ever write again.

A topic deleted and recreated with FEWER partitions leaves the old topic's partitions
``>= count`` in Redis. No worker is assigned them, so nothing resets them on assignment
(:meth:`streams.recovery.Recovery.start_offset` does that for partitions that still
exist), yet every reader — :class:`streams.reader.WindowReader`, compaction, the health
reader — reads every partition in the ``partitions`` set: the old topic's windows would
leak into measurements. A worker that learns the topic's id and partition count (on
assignment, and when it finds the topic recreated under it) deletes them here.

The rule: a stored partition ``p`` is deleted when ``p >= count`` **and** its stored topic
id is not the current one. Why each side is needed, and why it is safe:

- ``p < count`` is never touched: the partition exists in the current topic, so some group
  member owns it and resets another incarnation's state itself on assignment. Only its
  owner knows whether it is writing it.
- ``p >= count`` but stored topic id == the current id: the writer saw more partitions than
  the ``count`` read here (partitions were added and this worker's describe was older than
  the writer's): a live owner of the same topic writes it — kept.
- no stored id and generation 0: nothing was checkpointed (an owner just took it: loading
  bumps the epoch before the first checkpoint records the id, or a reset left only the
  epoch) — it holds no windows, so nothing can leak: kept.
- no stored id but checkpoints taken (state written before topic ids were recorded, or
  while the id could not be read) with ``p >= count``: another incarnation's — deleted.

The check and the delete are one script on the partition's hash slot, so a checkpoint
cannot land between them. Even where the rule guessed wrong (a live owner whose id was
unreadable, partitions added a moment ago) nothing is miscounted: that owner's next write
finds its state missing and rebuilds the partition from Kafka (:mod:`streams.recovery`) —
a needless rebuild, never a wrong window. A zombie worker of the old topic cannot bring the
windows back: its writes are dropped once it reads the new topic id before writing.
"""

from __future__ import annotations

from typing import Final

from streams.state import RedisStateStore
from streams.windows import WindowKey

# KEYS: meta, idx, written, then the window keys listed; ARGV: the topic's current id.
# Returns 1 when the state was deleted, 0 when kept, 2 when nothing is stored.
_DROP_OTHER_LUA: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 2 end
local tid = redis.call('HGET', KEYS[1], 'topic_id')
if tid == ARGV[1] then return 0 end
if not tid and tonumber(redis.call('HGET', KEYS[1], 'gen') or '0') == 0 then return 0 end
for i = 1, #KEYS do redis.call('DEL', KEYS[i]) end
return 1
"""

DELETED: Final = 1
NOTHING: Final = 2


def drop_if_foreign(store: RedisStateStore, partition: int, topic_id: str) -> int:
    """Delete ``partition``'s stored state unless it was written for ``topic_id`` (see the
    module doc); ``DELETED``, ``NOTHING`` (no meta: only a stale entry in the partitions
    set) or 0 (kept). After a delete the partition leaves the partitions set — unless an
    owner took it meanwhile (its load recreates the meta before it adds the partition,
    so the meta is checked after the removal)."""
    client = store.client
    meta, index = store.meta_key(partition), store.index_key(partition)
    # listed first: a foreign state takes no more windows (only a state of the current
    # topic does, and that one the script keeps)
    members: list[bytes] = client.zrange(index, 0, -1)  # type: ignore[assignment]
    windows = [store.window_key(partition, WindowKey.decode(m.decode())) for m in members]
    keys = [meta, index, store.written_key(partition), *windows]
    status = int(client.register_script(_DROP_OTHER_LUA)(keys=keys, args=[topic_id]))
    if status != 0:
        client.srem(store.partitions_key(), partition)
        if client.exists(meta):
            client.sadd(store.partitions_key(), partition)
    return status
