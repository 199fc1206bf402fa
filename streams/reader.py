"""Read side of the window state: merged measurement windows and totals across partitions.

Used by the evaluator (through the :class:`alerts.evaluator.WindowSource` protocol the
CLI wires in) and by ``driftline status``. It never takes ownership of a partition: the
epoch is untouched. Event time rules: a model's measurement window ends at that model's
watermark (the largest event time any partition has seen of it), not at the wall clock
and not at another model's clock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple, cast

from sketches.profile import DatasetProfile
from streams.core import NO_WATERMARK, PartitionSnapshot
from streams.state import RedisStateStore
from streams.tiers import Record, TierStore, included, parse_contributors
from streams.windows import Counters, WindowKey


@dataclass
class Merged:
    start_ms: int
    end_ms: int
    versions: dict[str, DatasetProfile]
    incomplete: bool = False
    """Some merged window was rebuilt after part of its input aged out of the topic."""


READ_CHUNK = 256
"""Blobs fetched per round trip (a first evaluation of many models reads them all)."""
MODEL_CHUNK = 16
"""Models read and merged together: bounds the live sketches of a first evaluation."""


class Item(NamedTuple):
    """One unit of a measurement: a window merged across partitions (``source`` "p") or
    one model-level record of :mod:`streams.compaction` (``source`` = its tier)."""

    model: str
    version: str
    start_ms: int
    source: str


Signature = tuple[object, ...]


class WindowReader:
    def __init__(self, store: RedisStateStore) -> None:
        self._store = store
        self._tiers = TierStore(store.client, prefix=store.prefix, topic=store.topic,
                                ttl_ms=store.window_ttl_ms)
        # item -> (what it was merged from: (partition, generation) pairs or the record's
        # meta; the merge, serialized: bytes take less memory than live sketches, and an
        # item is deserialized only when the kept merge of a model must be rebuilt)
        self._cache: dict[Item, tuple[Signature, bytes]] = {}
        # (model, version) -> (the items but the newest, with signatures; their merge)
        self._older: dict[tuple[str, str], tuple[tuple[tuple[Item, Signature], ...],
                                                 DatasetProfile]] = {}
        self.reads = 0
        """Blobs read by the last :meth:`measurements` (for tests and benchmarks)."""

    def watermarks(self, models: Iterable[str],
                   snaps: Mapping[int, PartitionSnapshot] | None = None) -> dict[str, int]:
        """model -> the largest event time any partition has seen of it (models never seen
        are left out). A partition that never saw a model neither holds it back nor pushes
        it; state written before per-model watermarks lends its partition watermark to
        every model. ``snaps``: the partitions' meta, when already read."""
        marks: dict[str, int] = {}
        legacy = NO_WATERMARK
        for snap in (snaps if snaps is not None else self._metas()).values():
            if snap.watermarks:
                for model, mark in snap.watermarks.items():
                    marks[model] = max(marks.get(model, NO_WATERMARK), mark)
            else:
                legacy = max(legacy, snap.watermark_ms)
        ends = {m: max(marks.get(m, NO_WATERMARK), legacy) for m in models}
        return {m: end for m, end in ends.items() if end != NO_WATERMARK}

    def _metas(self) -> dict[int, PartitionSnapshot]:
        """Every stored partition's meta (offsets, watermarks, counters; no windows)."""
        return {p: self._store.read(p, min_start_ms=1 << 62)
                for p in self._store.stored_partitions()}

    def measurement(self, model: str, measure_ms: int) -> Merged | None:
        """Merge, per version, every window of ``model`` starting in the last ``measure_ms``
        before the model's watermark; ``None`` when nothing was ever stored."""
        return self.measurements({model: measure_ms}).get(model)

    def measurements(self, measures: Mapping[str, int]) -> dict[str, Merged]:
        """:meth:`measurement` for several models (model -> measure_ms) with one pass over
        the stored windows; models never stored are left out.

        What is merged: every partition blob of a window starting in the range, and every
        model-level record (:mod:`streams.compaction`: compacted windows and, for ranges
        longer than the windows are kept, hourly and daily roll-ups) starting in it — a
        partition blob already counted in its window's compacted record is skipped.

        Incremental: each item (a window merged across partitions, or a record) is kept
        between calls with what it was made from (partition blob generations, the record's
        meta); only items that changed are read and merged again. Sketches cannot
        subtract, so a changed window is rebuilt from all its partition blobs. Per model
        and version the merge of all but the newest item is kept too, so while only the
        newest window changes a measurement costs two merges, not one per window."""
        snaps = self._metas()
        ends = self.watermarks(measures, snaps)
        if not ends:
            return {}
        merged = {model: Merged(end - measures[model], end, {}) for model, end in ends.items()}
        sources: dict[Item, Signature] = {}
        counted: dict[tuple[str, str, int], dict[int, int]] = {}
        for model, mm in merged.items():
            for record, meta in self._tiers.records(model, mm.start_ms, mm.end_ms).items():
                sources[Item(model, record.version, record.start_ms, record.tier)] = (meta,)
                if record.tier == "w":
                    counted[(model, record.version, record.start_ms)] = parse_contributors(meta)
        parts: dict[Item, list[tuple[int, int]]] = defaultdict(list)
        first = min(m.start_ms for m in merged.values())
        for p, snap in snaps.items():
            for key, gen in self._store.written(p, min_start_ms=first).items():
                m = merged.get(key.model)
                if m is None or not m.start_ms <= key.start_ms <= m.end_ms:
                    continue
                if included(p, counted.get((key.model, key.version, key.start_ms), {})):
                    continue  # its compacted record holds it
                parts[Item(key.model, key.version, key.start_ms, "p")].append((p, gen))
                if key.start_ms <= snap.incomplete.get(key.model, NO_WATERMARK):
                    m.incomplete = True
        for item, pairs in parts.items():
            sources[item] = tuple(sorted(pairs))
        by_model: dict[str, dict[Item, Signature]] = defaultdict(dict)
        for item, signature in sources.items():
            by_model[item.model][item] = signature
        for model in set(measures) - set(by_model):
            self.forget([model])  # nothing stored in its window any more
        names = sorted(by_model)
        reads = 0
        for i in range(0, len(names), MODEL_CHUNK):  # a batch of models at a time: what is
            chunk = names[i:i + MODEL_CHUNK]       # read and merged fresh stays bounded
            batch = {item: sig for m in chunk for item, sig in by_model[m].items()}
            fresh = self._items(batch, set(chunk))
            reads += self.reads
            groups: dict[tuple[str, str], list[Item]] = defaultdict(list)
            for item in batch:
                if item in self._cache:  # (blobs that expired meanwhile are left out)
                    groups[(item.model, item.version)].append(item)
            for (model, version), items in groups.items():
                items.sort(key=lambda it: (it.start_ms, it.source))
                merged[model].versions[version] = self._merge(model, version, items, fresh)
        self.reads = reads
        return {model: m for model, m in merged.items() if m.versions}

    def _merge(self, model: str, version: str, items: list[Item],
               fresh: Mapping[Item, DatasetProfile]) -> DatasetProfile:
        """Merge ``items`` (sorted by start) reusing the kept merge of all but the newest;
        ``fresh``: the items just read (the others come from the cache)."""

        def profile(i: Item) -> DatasetProfile:
            return fresh.get(i) or DatasetProfile.from_bytes(self._cache[i][1])

        older = tuple((i, self._cache[i][0]) for i in items[:-1])
        kept = self._older.get((model, version))
        if kept is None or kept[0] != older:
            base = DatasetProfile()
            for i in items[:-1]:
                base.merge(profile(i))
            kept = (older, base)
            self._older[(model, version)] = kept
        out = DatasetProfile()
        out.merge(kept[1])
        out.merge(profile(items[-1]))
        return out

    def forget(self, models: Iterable[str]) -> None:
        """Drop the merges kept for ``models`` (evaluated elsewhere now)."""
        gone = set(models)
        for item in [i for i in self._cache if i.model in gone]:
            del self._cache[item]
        for mv in [mv for mv in self._older if mv[0] in gone]:
            del self._older[mv]

    def _items(self, sources: Mapping[Item, Signature], models: set[str]
               ) -> dict[Item, DatasetProfile]:
        """Read and merge the items that changed (returned) and cache them; ``models``:
        those asked for (the cache of the others is left alone)."""
        stale_parts: dict[int, list[WindowKey]] = defaultdict(list)
        stale_records: dict[str, list[Record]] = defaultdict(list)
        out: dict[Item, DatasetProfile] = {}
        stale: list[Item] = []
        for item, signature in sources.items():
            cached = self._cache.get(item)
            if cached is not None and cached[0] == signature and not _legacy(item, signature):
                continue
            stale.append(item)
            if item.source == "p":
                for pair in signature:
                    p = cast(tuple[int, int], pair)[0]
                    stale_parts[p].append(WindowKey(item.model, item.version, item.start_ms))
            else:
                stale_records[item.model].append(Record(item.source, item.version,
                                                        item.start_ms))
        fresh: dict[Item, DatasetProfile] = {}
        reads = 0
        for p, keys in stale_parts.items():
            for i in range(0, len(keys), READ_CHUNK):  # bounded replies: memory stays flat
                for key, blob in self._store.window_blobs(p, keys[i:i + READ_CHUNK]).items():
                    reads += 1
                    prof = DatasetProfile.from_bytes(blob)
                    item = Item(key.model, key.version, key.start_ms, "p")
                    if item in fresh:
                        fresh[item].merge(prof)
                    else:
                        fresh[item] = prof
        for model, records in stale_records.items():
            for record, blob in self._tiers.blobs(model, records).items():
                reads += 1
                fresh[Item(model, record.version, record.start_ms, record.tier)] = \
                    DatasetProfile.from_bytes(blob)
        for item in stale:
            self._cache.pop(item, None)  # (what expired meanwhile is left out)
        for item, prof in fresh.items():
            self._cache[item] = (sources[item], prof.to_bytes())
            out[item] = prof
        for item in [i for i in self._cache if i.model in models and i not in sources]:
            del self._cache[item]  # slid out of the model's measurement window
        self.reads = reads
        return out

    def counters(self) -> Counters:
        """Counts over every partition: ok / late per model, invalid per reason."""
        total: dict[str, defaultdict[str, int]] = {
            "ok": defaultdict(int), "late": defaultdict(int), "invalid": defaultdict(int)
        }
        for p in self._store.stored_partitions():
            c = self._store.read(p, min_start_ms=1 << 62).counters
            for kind, src in (("ok", c.ok), ("late", c.late), ("invalid", c.invalid)):
                for k, v in src.items():
                    total[kind][k] += v
        return Counters(dict(total["ok"]), dict(total["late"]), dict(total["invalid"]))


def _legacy(item: Item, signature: Signature) -> bool:
    """A window with a blob written before generations were kept: always re-read."""
    return item.source == "p" and any(cast(tuple[int, int], pair)[1] < 0 for pair in signature)
