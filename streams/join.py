"""The label join: predictions wait in Redis for their ground truth, labels find them.

Why it is built this way (issue #13, "nothing lost, nothing counted twice"):

- Predictions and labels come from different topics, keyed however producers like, so
  no partition owner sees both halves of a pair. The join state is therefore kept per
  *model* (one Redis Cluster slot, hash tag ``{P:<model>}``), and each record's effect —
  park a prediction, park an early label, or *complete* a pair by adding it to the
  prediction window's aggregates — is applied by one Lua script per (model, batch)
  (:mod:`streams.join_lua`).
- Exactly once per record: the script keeps, per model, the highest offset applied from
  each partition of each topic (``hw``) and skips records at or below it, in the same
  atomic call that applies them. The prediction worker calls it *before* its window
  checkpoint (so a replay after a crash reaches the join again and is skipped there); the
  label worker calls it before committing its Kafka offsets. A zombie worker replaying
  the same records changes nothing either. So a kill -9 anywhere neither loses nor
  double-counts a labeled outcome.
- What is stored about a person: the id is never stored, only an 8-byte keyed BLAKE2b
  hash of (model, id) (the key: ``--id-key-file`` / ``DRIFTLINE_ID_KEY``, else a random
  key kept in Redis); beside it the prediction time, version and score / class — no
  features. Entries live until their slice of time is ``label_ttl`` behind the model's
  newest prediction (then counted ``expired`` / ``orphan``) or until ``driftline forget``.
  The aggregates are counts and histograms: no per-person data.
- The idle backstop: event time stands still when a model stops sending, so the buckets
  that hold the hashed ids also carry a wall-clock TTL, ``label_ttl`` + one slice +
  :data:`~streams.join_lua.IDLE_MARGIN_MS` (7 days), set again on every write. A live
  model's entries go by event time first; a retired model's are gone that long after its
  last write (:meth:`JoinStore.idle_ttl_ms`). The backstop only removes keys: which
  record was applied (``hw``) and every counter stay in the model's meta hash, which has
  no TTL, so it changes nothing above. A pipeline stalled longer than the margin loses
  the predictions still waiting; the expiry finds and counts them (``idle_expired``,
  besides ``expired`` / ``orphan``), and their labels, when they come, wait as orphans.
- The outcome stream (the detectors' input) is capped at :data:`STREAM_MAXLEN` entries
  (approximately). Each entry carries its number ``n`` (the ``joined`` counter), so an
  evaluator that fell further behind finds the gap and counts it ``trimmed``
  (:mod:`alerts.detectors`) instead of losing outcomes silently.

Memory: entries sit in hashes bucketed by (time slice, hash of the id) so each stays
small enough for Redis's compact listpack encoding (``bench/labels.py`` measures bytes
per pending prediction).
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from streams import join_lua
from streams.join_items import JoinItem
from streams.join_lua import IDLE_MARGIN_MS, SLICES, TARGET_PER_BUCKET
from streams.windows import LabelSpec

log = logging.getLogger(__name__)

MAX_CLASSES = 20
STREAM_MAXLEN = 200_000
"""Joined outcomes kept for the change detectors between two evaluations (approximate)."""
CHUNK = 2000
"""Records per script call (keeps each call short: Redis is single-threaded)."""
_TASK_CODE = {"binary": "b", "multiclass": "m", "regression": "r"}


@dataclass(frozen=True, slots=True)
class JoinKeys:
    prefix: str

    def base(self, model: str) -> str:
        return f"{self.prefix}:perf:{{{self.prefix}:{model}}}"

    def meta(self, model: str) -> str:
        return self.base(model) + ":meta"

    def window(self, model: str, version: str, start_ms: int) -> str:
        return f"{self.base(model)}:w:{version}|{start_ms}"

    def versions(self, model: str) -> str:
        return self.base(model) + ":versions"

    def outcomes(self, model: str) -> str:
        return self.base(model) + ":o"


def id_key(client: redis.Redis, prefix: str, given: bytes | None = None) -> bytes:
    """The key of the id hash: ``given``, else the deployment's random key in Redis
    (created once; every worker and ``driftline forget`` read the same)."""
    if given:
        return given
    name = f"{prefix}:perf:idkey"
    client.set(name, secrets.token_bytes(32), nx=True)
    value = client.get(name)
    if not isinstance(value, bytes):
        raise RuntimeError(f"could not read the id hash key {name}")
    return value


class JoinStore:
    """Writes and reads one deployment's join state (see the module doc)."""

    def __init__(self, client: redis.Redis, *, prefix: str, specs: Mapping[str, LabelSpec],
                 key: bytes, stream_maxlen: int = STREAM_MAXLEN) -> None:
        self.client = client
        self.stream_maxlen = stream_maxlen
        self.keys = JoinKeys(prefix)
        self.specs = dict(specs)
        self._key = key
        self._put = client.register_script(join_lua.PUT)
        self._expire = client.register_script(join_lua.EXPIRE)
        self._forget = client.register_script(join_lua.FORGET)

    @property
    def key(self) -> bytes:
        """The id-hash key (it also authenticates the evaluator's detector state)."""
        return self._key

    def hid(self, model: str, ident: str) -> bytes:
        return hashlib.blake2b(f"{model}\0{ident}".encode(), key=self._key,
                               digest_size=8).digest()

    def slice_ms(self, model: str) -> int:
        spec = self.specs[model]
        return max(spec.window_ms, math.ceil(spec.label_ttl_ms / SLICES))

    def idle_ttl_ms(self, model: str) -> int:
        """The wall-clock TTL every write gives a bucket of waiting entries (module doc)."""
        return self.specs[model].label_ttl_ms + self.slice_ms(model) + IDLE_MARGIN_MS

    def _config(self, model: str) -> list[Any]:
        spec = self.specs[model]
        slice_ms = self.slice_ms(model)
        buckets = max(1, math.ceil(spec.max_pending / SLICES / TARGET_PER_BUCKET))
        wttl = spec.label_ttl_ms + spec.window_ms + spec.retention_ms + spec.keep_ms
        return [self.keys.base(model), _TASK_CODE[spec.task], spec.positive, spec.negative,
                spec.threshold, spec.window_ms, spec.retention_ms, slice_ms, buckets,
                spec.label_ttl_ms, wttl, MAX_CLASSES, self.stream_maxlen]

    # -- writers ---------------------------------------------------------------------------
    def put(self, topic_kind: str, partition: int, items: Iterable[JoinItem]) -> int:
        """Apply ``items`` (offset order) of one partition of the predictions (``"p"``) or
        labels (``"l"``) topic; returns how many were new (not replays)."""
        by_model: dict[str, list[JoinItem]] = {}
        for item in items:
            if item.model in self.specs:
                by_model.setdefault(item.model, []).append(item)
        applied = 0
        for model, todo in by_model.items():
            config = self._config(model)
            for i in range(0, len(todo), CHUNK):
                chunk = todo[i:i + CHUNK]
                args: list[Any] = [*config, topic_kind, partition, len(chunk)]
                for it in chunk:
                    args += [it.offset, self.hid(model, it.id), it.ts_ms, it.version,
                             it.pclass, it.number, it.label]
                applied += int(self._put(keys=[self.keys.meta(model)], args=args))
        return applied

    def expire(self, model: str) -> int:
        """Drop the model's slices past the label TTL (and the oldest beyond
        ``max_pending``), counting what waited in them; returns slices dropped."""
        return int(self._expire(keys=[self.keys.meta(model)],
                                args=[*self._config(model), self.specs[model].max_pending]))

    def forget(self, model: str, ids: Sequence[str]) -> int:
        """Erase what the join holds for ``ids`` and drop their later labels (idempotent);
        returns how many were newly forgotten."""
        if model not in self.specs:
            raise KeyError(model)
        total = 0
        for i in range(0, len(ids), CHUNK):
            hids = [self.hid(model, x) for x in ids[i:i + CHUNK]]
            total += int(self._forget(keys=[self.keys.meta(model)],
                                      args=[*self._config(model), *hids]))
        return total

    # -- readers ---------------------------------------------------------------------------
    def counters(self, model: str) -> dict[str, int]:
        raw: dict[bytes, bytes] = self.client.hgetall(self.keys.meta(model))  # type: ignore[assignment]
        return {k.decode(): int(float(v)) for k, v in raw.items()
                if not k.startswith(b"hw:")}

    def windows(self, model: str, start_ms: int, end_ms: int
                ) -> dict[str, list[tuple[int, dict[str, str]]]]:
        """version -> [(window start, aggregate fields)] for windows starting in
        [start_ms, end_ms) that have aggregates."""
        spec = self.specs[model]
        members: set[bytes] = self.client.smembers(self.keys.versions(model))  # type: ignore[assignment]
        versions = sorted(v.decode() for v in members)
        first = start_ms - start_ms % spec.window_ms
        starts = list(range(first, end_ms, spec.window_ms))
        pipe = self.client.pipeline(transaction=False)
        for v in versions:
            for s in starts:
                pipe.hgetall(self.keys.window(model, v, s))
        replies = iter(pipe.execute())
        out: dict[str, list[tuple[int, dict[str, str]]]] = {}
        for v in versions:
            for s in starts:
                raw = next(replies)
                if raw:
                    out.setdefault(v, []).append(
                        (s, {k.decode(): val.decode() for k, val in raw.items()}))
        return out

    def outcomes(self, model: str, after: str, count: int = 100_000
                 ) -> list[tuple[str, str, float, int | None]]:
        """Joined outcomes after stream id ``after``: (id, version, error, number); the
        number (1, 2, ... per model) is None on entries written before it was kept."""
        rows: list[tuple[bytes, dict[bytes, bytes]]] = self.client.xrange(  # type: ignore[assignment]
            self.keys.outcomes(model), min=f"({after}", count=count)
        return [(i.decode(), f[b"v"].decode(), float(f[b"e"]),
                 int(f[b"n"]) if b"n" in f else None) for i, f in rows]

    def trim(self, model: str, upto: str) -> None:
        """Drop outcomes up to stream id ``upto`` (consumed by the detectors)."""
        self.client.xtrim(self.keys.outcomes(model), minid=upto)


__all__ = ["JoinItem", "JoinKeys", "JoinStore", "id_key"]
