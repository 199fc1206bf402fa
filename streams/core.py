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

Guarantees: records at or below the applied offset are skipped (replays count nothing
twice); watermarks (per partition *and model*) and lateness are decided record by record
in offset order and stored with the offset, so batching changes nothing; one model's clock
never moves another's windows; an event further than ``max_future_ms`` ahead of its Kafka
timestamp is ``bad_ts``. Predictions with an ``id`` of labelled models ride along for the
label join.

Nothing in a payload makes :meth:`Processor.process` raise: bad records are rejected with
a reason, values a sketch cannot take are type mismatches, names beyond the
:class:`Limits` are rejected (``limit``). Should anything still raise, the runner discards
the in-memory state unsaved and resumes from Redis: a batch is stored all or nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field
from typing import NamedTuple

from sketches.profile import DatasetProfile
from streams.columnarise import columnarise
from streams.events import _DECODER as _EVENT_DECODER
from streams.events import DEFAULT_MAX_BYTES, Event, InvalidEvent, decode_event, event_time_ms
from streams.join_items import JoinItem, prediction_item
from streams.windows import Counters, Limits, ModelCatalog, ModelSpec, WindowKey

log = logging.getLogger(__name__)

NO_OFFSET = -1
NO_WATERMARK = -(1 << 62)
DEFAULT_MAX_FUTURE_MS = 5 * 60 * 1000
"""Allowed event-time skew ahead of the Kafka timestamp (below the default retention)."""
_MAX_FAST_TS_S = 253_402_300_799.0  # epoch-seconds ts below this need no further checks
_PREDICTION_COLUMNS = 2  # room kept for ``prediction`` and ``latency_ms`` in the limit


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
    watermarks: Mapping[str, int] = field(default_factory=dict)
    """Per model; a model missing here (state written before 0.2) uses ``watermark_ms``."""
    generation: int = 0
    """How many checkpoints the stored state has taken (0: none)."""
    topic_id: str | None = None
    """The Kafka topic id the state was built from (None: not recorded)."""
    incomplete: Mapping[str, int] = field(default_factory=dict)
    """model -> windows starting at or before this are incomplete (rebuilt from Kafka
    after part of their input had aged out of the topic)."""

    def model_watermark(self, model: str) -> int:
        return self.watermarks.get(model, self.watermark_ms)


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
    watermarks: Mapping[str, int] = field(default_factory=dict)
    """Per model (``watermark_ms`` is their maximum)."""
    generation: int = 0
    """The stored generation this checkpoint builds on (the store bumps it)."""
    topic_id: str | None = None
    incomplete: Mapping[str, int] = field(default_factory=dict)
    joins: tuple[JoinItem, ...] = ()
    """Accepted predictions with an ``id`` bound for the label join (written first)."""


@dataclass(slots=True)
class _Partition:
    epoch: int
    applied: int
    watermarks: dict[str, int]  # per model; every model the partition accepted is a key
    counters: Counters
    windows: dict[WindowKey, DatasetProfile]
    ends: dict[WindowKey, int] = field(default_factory=dict)  # start + window + retention
    dirty: set[WindowKey] = field(default_factory=set)
    flushed_offset: int = NO_OFFSET
    columns: dict[WindowKey, set[str]] = field(default_factory=dict)  # names per window
    generation: int = 0
    topic_id: str | None = None
    incomplete: dict[str, int] = field(default_factory=dict)
    incomplete_pending: bool = False  # rebuilding after data aged out: mark new models
    joins: list[JoinItem] = field(default_factory=list)  # for the label join, unflushed

    @property
    def watermark(self) -> int:
        return max(self.watermarks.values(), default=NO_WATERMARK)


class Processor:
    """Per-partition window state for the partitions this worker owns (see module doc)."""

    def __init__(
        self,
        catalog: ModelCatalog,
        *,
        max_event_bytes: int = DEFAULT_MAX_BYTES,
        max_future_ms: int = DEFAULT_MAX_FUTURE_MS,
        limits: Limits | None = None,
    ):
        """``max_future_ms``: an event time further than this ahead of its Kafka timestamp
        is ``bad_ts`` — one event from the far future would otherwise move its model's
        watermark and make every later event "late"."""
        if max_future_ms < 0:
            raise ValueError("max_future_ms must be >= 0")
        self.catalog = catalog
        self.max_event_bytes = max_event_bytes
        self.max_future_ms = max_future_ms
        self.limits = limits or Limits()
        self._parts: dict[int, _Partition] = {}

    # -- assignment ------------------------------------------------------------------
    def assign(self, snap: PartitionSnapshot) -> None:
        """Take ownership of ``snap.partition`` with the state loaded from the store."""
        windows: dict[WindowKey, DatasetProfile] = {}
        ends: dict[WindowKey, int] = {}
        models = set(snap.watermarks) | set(snap.counters.ok) | set(snap.counters.late)
        watermarks = {m: snap.model_watermark(m) for m in models}
        for key, blob in snap.windows.items():
            spec = self.catalog.get(key.model)
            if spec is None:
                continue
            end = key.start_ms + spec.window_ms + spec.retention_ms
            if end <= snap.model_watermark(key.model):
                continue  # closed: only kept in the store for readers
            windows[key] = DatasetProfile.from_bytes(blob)
            ends[key] = end
            watermarks.setdefault(key.model, snap.model_watermark(key.model))
        self._parts[snap.partition] = _Partition(
            epoch=snap.epoch,
            applied=snap.applied_offset,
            watermarks=watermarks,
            counters=snap.counters.copy(),
            windows=windows,
            ends=ends,
            flushed_offset=snap.applied_offset,
            generation=snap.generation,
            topic_id=snap.topic_id,
            incomplete=dict(snap.incomplete),
        )

    def revoke(self, partition: int) -> None:
        """Forget a partition (after its final checkpoint, or when fenced/lost)."""
        self._parts.pop(partition, None)

    def mark_incomplete(self, partition: int, pending: bool = True) -> None:
        """While ``pending``, each model's first event in ``partition`` marks its window and
        every earlier one incomplete (the partition is rebuilt from Kafka after records
        that fed those windows aged out of the topic)."""
        st = self._parts.get(partition)
        if st is not None:
            st.incomplete_pending = pending

    def discard(self) -> None:
        """Forget every partition *without* a checkpoint: after a failure in the middle of
        a batch, whatever is in memory may be half applied; the state resumes from Redis."""
        self._parts.clear()

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
                    spec = specs[model] = self._spec(model)
                if spec is None:
                    raise InvalidEvent("unknown_model", f"model {ev.model!r} is not configured")
                raw_ts = ev.ts
                if raw_ts.__class__ is float and 0.0 <= raw_ts < _MAX_FAST_TS_S:
                    ts = round(raw_ts * 1000)
                else:
                    ts = event_time_ms(ev, rec.timestamp_ms)
                if ts > rec.timestamp_ms + max_future and rec.timestamp_ms > 0:
                    raise InvalidEvent(
                        "bad_ts", f"ts {ts} is over {max_future} ms ahead of the Kafka timestamp"
                    )
                wms = st.watermarks
                mark = wms.get(model)
                size = spec.window_ms
                start = ts - ts % size
                if mark is None:
                    self._admit_model(st, model)
                    mark = NO_WATERMARK
                    if st.incomplete_pending:
                        st.incomplete[model] = start
                if start + size + spec.retention_ms <= mark:  # (never when ts > mark)
                    late = st.counters.late
                    late[model] = late.get(model, 0) + 1
                    continue
                self._admit_columns(st, WindowKey(model, ev.version, start), ev)
                if ts > mark:
                    wms[model] = ts
                segs = spec.segment_versions(ev.version, ev.features) if spec.segments else []
                if spec.labels is not None and ev.id is not None:  # the join: segments too
                    item = prediction_item(spec.labels, rec.offset, model, ev.id, ts,
                                           ",".join([ev.version, *segs]), ev.prediction, ev.label)
                    if item is not None:
                        st.joins.append(item)
            except InvalidEvent as exc:
                self._reject(st, rejected, rec, exc.reason, exc.message)
                continue
            except Exception as exc:  # a bug, not the payload's fault: never stop the stream
                log.exception("topic partition=%d offset=%d: could not process the record",
                              rec.partition, rec.offset)
                self._reject(st, rejected, rec, "invalid_value",
                             f"could not be processed ({type(exc).__name__})")
                continue
            gkey = (rec.partition, model, ev.version, start)
            group = groups.get(gkey)
            if group is None:
                groups[gkey] = (spec, [ev])
            else:
                group[1].append(ev)
            for seg in segs:
                groups.setdefault((rec.partition, model, seg, start), (spec, []))[1].append(ev)
        for (partition, model, version, start), (spec, events) in groups.items():
            st = parts[partition]
            if "~" not in version:  # segment windows count their events again
                st.counters.ok[model] = st.counters.ok.get(model, 0) + len(events)
            self._apply(st, WindowKey(model, version, start), spec, events)
        return rejected

    @staticmethod
    def _reject(st: _Partition, out: list[Rejected], rec: Record, reason: str, msg: str) -> None:
        inv = st.counters.invalid
        inv[reason] = inv.get(reason, 0) + 1
        out.append(Rejected(rec, reason, msg))

    def _spec(self, model: str) -> ModelSpec | None:
        return self.catalog.get(model)

    def _admit_model(self, st: _Partition, model: str) -> None:
        """A model new to this partition: listed ones always, others up to the limit."""
        if model in self.catalog.models:
            return
        implicit = sum(1 for m in st.watermarks if m not in self.catalog.models)
        if implicit >= self.limits.models:
            raise InvalidEvent("limit", f"partition already holds {implicit} models not in the "
                               f"models file (limit {self.limits.models}); list {model!r} there")

    def _admit_columns(self, st: _Partition, key: WindowKey, ev: Event) -> None:
        """Reject an event that would take its window past the column or version limit."""
        known = st.columns.get(key)
        if known is None:
            profile = st.windows.get(key)
            if profile is None:  # a new window: of a version beyond the limit?
                self.limits.admit_version(key, (*st.windows, *st.columns))
            known = st.columns[key] = set(profile.columns) if profile is not None else set()
        names: Set[str] = ev.features.keys()
        pred = ev.prediction
        if isinstance(pred, dict):
            names = names | {f"prediction.{c}" for c in pred}
        if names <= known:
            return
        new = names - known
        limit = self.limits.columns
        if len(known) + len(new) + _PREDICTION_COLUMNS > limit:
            raise InvalidEvent(
                "limit", f"window {key.encode()} would hold over {limit} columns "
                f"({len(known)} known, {len(new)} new)"
            )
        known |= new

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
    def checkpoint(self, partition: int, idle: bool = False) -> Checkpoint | None:
        """The partition's unflushed changes; None when there are none, unless ``idle``."""
        st = self._parts.get(partition)
        if st is None or (st.applied == st.flushed_offset and not idle):
            return None
        return Checkpoint(
            partition=partition,
            epoch=st.epoch,
            applied_offset=st.applied,
            watermark_ms=st.watermark,
            counters=st.counters.copy(),
            windows={k: st.windows[k].to_bytes() for k in st.dirty},
            window_ends_ms={k: st.ends[k] for k in st.dirty},
            watermarks={m: w for m, w in st.watermarks.items() if w != NO_WATERMARK},
            generation=st.generation,
            topic_id=st.topic_id,
            incomplete=dict(st.incomplete),
            joins=tuple(st.joins),
        )

    def flushed(self, cp: Checkpoint) -> None:
        """Mark ``cp`` as durably stored; evict windows closed by the watermark."""
        st = self._parts.get(cp.partition)
        if st is None or st.epoch != cp.epoch:
            return
        st.flushed_offset = cp.applied_offset
        st.generation = cp.generation + 1
        st.dirty.difference_update(cp.windows)
        st.joins = [j for j in st.joins if j.offset > cp.applied_offset]
        wms = st.watermarks
        closed = [k for k, end in st.ends.items()
                  if end <= wms.get(k.model, NO_WATERMARK) and k not in st.dirty]
        for k in closed:
            del st.windows[k]
            del st.ends[k]
            st.columns.pop(k, None)
