"""The processor core: batches of records → per-partition event-time window profiles.

Independent of any Kafka library, Redis and the clock; both runners (confluent-kafka in
:mod:`streams.runner`, faust in ``streams.faust_runner``) drive it the same way::

    proc = Processor(catalog)
    proc.assign(store.load(p))              # on assignment (store bumps the epoch)
    rejected = proc.process(records)        # any number of times; Record per message
    #   -> send each Rejected's original bytes to the DLQ (streams.dlq)
    cp = proc.checkpoint(p)                 # None when nothing changed since last flush
    store.write(cp)                         # one atomic Redis write (raises Fenced)
    proc.flushed(cp)                        # then commit Kafka offset cp.applied_offset + 1
    proc.revoke(p)                          # on revocation, after a final checkpoint

Guarantees the runner relies on: records at or below the partition's applied offset are
skipped (so replays after a crash count nothing twice); records for partitions not
assigned are ignored; the watermark (largest event time seen) and lateness decision are
computed record by record in offset order and stored with the offset, so the result
does not depend on how the stream is cut into batches.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, NamedTuple

from sketches.profile import DatasetProfile
from streams.events import (
    _DECODER as _EVENT_DECODER,
)
from streams.events import (
    DEFAULT_MAX_BYTES,
    Event,
    InvalidEvent,
    decode_event,
    event_time_ms,
)
from streams.windows import Counters, ModelCatalog, ModelSpec, WindowKey

log = logging.getLogger(__name__)

NO_OFFSET = -1
NO_WATERMARK = -(1 << 62)
DEFAULT_MAX_FUTURE_MS = 24 * 3600 * 1000
_MAX_FAST_TS_S = 253_402_300_799.0  # epoch-seconds ts below this need no further checks


class Record(NamedTuple):
    """One Kafka message as the core sees it."""

    partition: int
    offset: int
    timestamp_ms: int
    value: bytes | None
    key: bytes | None = None
    """Only used to route a rejected record to the DLQ with its original key."""


class Rejected(NamedTuple):
    """A record that failed decoding/validation; route ``record.value`` to the DLQ."""

    record: Record
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class PartitionSnapshot:
    """A partition's stored state as loaded on assignment (``windows`` as bytes)."""

    partition: int
    epoch: int
    applied_offset: int = NO_OFFSET
    watermark_ms: int = NO_WATERMARK
    counters: Counters = field(default_factory=Counters)
    windows: Mapping[WindowKey, bytes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What one atomic store write persists for one partition: changed windows,
    the applied offset (last offset whose effect is included), watermark and counters."""

    partition: int
    epoch: int
    applied_offset: int
    watermark_ms: int
    counters: Counters
    windows: Mapping[WindowKey, bytes]
    window_ends_ms: Mapping[WindowKey, int]


@dataclass(slots=True)
class _Partition:
    epoch: int
    applied: int
    watermark: int
    counters: Counters
    windows: dict[WindowKey, DatasetProfile]
    ends: dict[WindowKey, int] = field(default_factory=dict)  # start + window + retention
    dirty: set[WindowKey] = field(default_factory=set)
    flushed_offset: int = NO_OFFSET


class Processor:
    """Per-partition window state for the partitions this worker owns (see module doc)."""

    def __init__(
        self,
        catalog: ModelCatalog,
        *,
        max_event_bytes: int = DEFAULT_MAX_BYTES,
        max_future_ms: int = DEFAULT_MAX_FUTURE_MS,
    ):
        """``max_future_ms``: an event time further than this ahead of its Kafka timestamp
        is ``bad_ts`` — one event from the far future would otherwise move the partition's
        watermark and make every later event "late"."""
        self.catalog = catalog
        self.max_event_bytes = max_event_bytes
        self.max_future_ms = max_future_ms
        self._parts: dict[int, _Partition] = {}

    # -- assignment ------------------------------------------------------------------
    def assign(self, snap: PartitionSnapshot) -> None:
        """Take ownership of ``snap.partition`` with the state loaded from the store."""
        windows: dict[WindowKey, DatasetProfile] = {}
        ends: dict[WindowKey, int] = {}
        for key, blob in snap.windows.items():
            spec = self.catalog.get(key.model)
            if spec is None:
                continue
            end = key.start_ms + spec.window_ms + spec.retention_ms
            if end <= snap.watermark_ms:
                continue  # closed: only kept in the store for readers
            windows[key] = DatasetProfile.from_bytes(blob)
            ends[key] = end
        self._parts[snap.partition] = _Partition(
            epoch=snap.epoch,
            applied=snap.applied_offset,
            watermark=snap.watermark_ms,
            counters=snap.counters.copy(),
            windows=windows,
            ends=ends,
            flushed_offset=snap.applied_offset,
        )

    def revoke(self, partition: int) -> None:
        """Forget a partition (after its final checkpoint, or when fenced/lost)."""
        self._parts.pop(partition, None)

    @property
    def partitions(self) -> list[int]:
        return sorted(self._parts)

    def applied_offset(self, partition: int) -> int:
        """Last offset whose effect is in memory (``NO_OFFSET`` when none)."""
        return self._parts[partition].applied

    def counters(self, partition: int) -> Counters:
        return self._parts[partition].counters.copy()

    def open_windows(self, partition: int) -> int:
        return len(self._parts[partition].windows)

    # -- processing ------------------------------------------------------------------
    def process(self, records: Iterable[Record]) -> list[Rejected]:
        """Apply records (any partitions, offset order within a partition)."""
        rejected: list[Rejected] = []
        # (partition, model, version, window start) -> (spec, events); hot loop, so plain
        # tuples, local names and the ok counters added per group afterwards
        groups: dict[tuple[int, str, str, int], tuple[ModelSpec, list[Event]]] = {}
        parts = self._parts
        max_bytes = self.max_event_bytes
        max_future = self.max_future_ms
        catalog_get = self.catalog.get
        specs: dict[str, ModelSpec | None] = {}
        fast_decode = _EVENT_DECODER.decode
        for rec in records:
            st = parts.get(rec.partition)
            if st is None or rec.offset <= st.applied:
                continue
            st.applied = rec.offset
            try:
                value = rec.value
                ev = None
                if value and len(value) <= max_bytes:
                    try:
                        ev = fast_decode(value)
                    except Exception:  # classified below, by the careful path
                        ev = None
                    if ev is not None and ev.prediction.__class__ is dict and not ev.prediction:
                        ev = None
                if ev is None:  # the careful path raises InvalidEvent with a reason
                    ev = decode_event(value, max_bytes=max_bytes)
                model = ev.model
                if model in specs:
                    spec = specs[model]
                else:
                    spec = specs[model] = catalog_get(model)
                if spec is None:
                    raise InvalidEvent("unknown_model", f"model {ev.model!r} is not configured")
                raw_ts = ev.ts
                if raw_ts.__class__ is float and 0.0 <= raw_ts < _MAX_FAST_TS_S:
                    ts = round(raw_ts * 1000)
                else:
                    ts = event_time_ms(ev, rec.timestamp_ms)
                if ts > rec.timestamp_ms + max_future > max_future:  # Kafka ts known (> 0)
                    raise InvalidEvent(
                        "bad_ts", f"ts {ts} is over {max_future} ms ahead of the Kafka timestamp"
                    )
            except InvalidEvent as exc:
                inv = st.counters.invalid
                inv[exc.reason] = inv.get(exc.reason, 0) + 1
                rejected.append(Rejected(rec, exc.reason, exc.message))
                continue
            if ts > st.watermark:
                st.watermark = ts
            size = spec.window_ms
            start = ts - ts % size
            if start + size + spec.retention_ms <= st.watermark:
                late = st.counters.late
                late[ev.model] = late.get(ev.model, 0) + 1
                continue
            gkey = (rec.partition, ev.model, ev.version, start)
            group = groups.get(gkey)
            if group is None:
                groups[gkey] = (spec, [ev])
            else:
                group[1].append(ev)
        for (partition, model, version, start), (spec, events) in groups.items():
            st = parts[partition]
            ok = st.counters.ok
            ok[model] = ok.get(model, 0) + len(events)
            self._apply(st, WindowKey(model, version, start), spec, events)
        return rejected

    def _apply(self, st: _Partition, key: WindowKey, spec: ModelSpec, events: list[Event]) -> None:
        profile = st.windows.get(key)
        if profile is None:
            profile = DatasetProfile(types=spec.types or None)
            st.windows[key] = profile
            st.ends[key] = key.start_ms + spec.window_ms + spec.retention_ms
        columns = columnarise(events)
        profile.update(columns, len(events))
        st.dirty.add(key)

    # -- checkpoints -----------------------------------------------------------------
    def checkpoint(self, partition: int) -> Checkpoint | None:
        """The partition's unflushed changes, or None when there are none."""
        st = self._parts.get(partition)
        if st is None or st.applied == st.flushed_offset:
            return None
        return Checkpoint(
            partition=partition,
            epoch=st.epoch,
            applied_offset=st.applied,
            watermark_ms=st.watermark,
            counters=st.counters.copy(),
            windows={k: st.windows[k].to_bytes() for k in st.dirty},
            window_ends_ms={k: st.ends[k] for k in st.dirty},
        )

    def flushed(self, cp: Checkpoint) -> None:
        """Mark ``cp`` as durably stored; evict windows closed by the watermark."""
        st = self._parts.get(cp.partition)
        if st is None or st.epoch != cp.epoch:
            return
        st.flushed_offset = cp.applied_offset
        st.dirty.difference_update(cp.windows)
        closed = [k for k, end in st.ends.items() if end <= st.watermark and k not in st.dirty]
        for k in closed:
            del st.windows[k]
            del st.ends[k]


def columnarise(events: Sequence[Event]) -> dict[str, Sequence[object]]:
    """Columns of a group of events: every feature, ``prediction`` (scalar) or
    ``prediction.<class>`` (class → probability objects), and ``latency_ms`` when any
    event has it. A column some events lack gets None there (counted as missing);
    columns absent from a whole group are counted missing by ``DatasetProfile``.
    A feature named ``prediction``, ``prediction.*`` or ``latency_ms`` is shadowed."""
    feats = [e.features for e in events]
    order = tuple(feats[0])
    cols: dict[str, Sequence[object]] = {}
    rows: list[Any] | None = None
    if len(order) > 1 and all(n == len(order) for n in map(len, feats)):
        # the common case: every event has the same feature names; pick them in one
        # order and transpose, all in C, instead of one dict lookup per value
        try:
            rows = list(map(itemgetter(*order), feats))
        except KeyError:
            rows = None
    if rows is not None:
        cols = dict(zip(order, zip(*rows, strict=True), strict=True))
    else:
        names: dict[str, None] = {}
        for f in feats:
            names.update(dict.fromkeys(f))
        cols = {name: [f.get(name) for f in feats] for name in names}
    preds = [e.prediction for e in events]
    classes: dict[str, None] = {}
    for p in preds:
        if isinstance(p, dict):
            classes.update(dict.fromkeys(p))
    if classes:
        for c in classes:
            cols[f"prediction.{c}"] = [p.get(c) if isinstance(p, dict) else None for p in preds]
    if len(classes) == 0 or not all(isinstance(p, dict) for p in preds):
        cols["prediction"] = [None if isinstance(p, dict) else p for p in preds]
    latency = [e.latency_ms for e in events]
    if any(v is not None for v in latency):
        cols["latency_ms"] = list(latency)
    return cols
