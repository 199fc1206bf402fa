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

from sketches.profile import DatasetProfile
from streams.core import NO_WATERMARK, PartitionSnapshot
from streams.state import RedisStateStore
from streams.windows import Counters, WindowKey


@dataclass
class Merged:
    start_ms: int
    end_ms: int
    versions: dict[str, DatasetProfile]
    incomplete: bool = False
    """Some merged window was rebuilt after part of its input aged out of the topic."""


class WindowReader:
    def __init__(self, store: RedisStateStore) -> None:
        self._store = store
        # window -> (the (partition, generation) pairs it was merged from, the merge)
        self._cache: dict[WindowKey, tuple[tuple[tuple[int, int], ...], DatasetProfile]] = {}
        self.reads = 0
        """Window blobs read by the last :meth:`measurements` (for tests and benchmarks)."""

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

        Incremental: each window merged across partitions is kept between calls with the
        generations of the partition blobs it was made from (``RedisStateStore.written``);
        only windows some partition rewrote since are read and merged again. Sketches
        cannot subtract, so a changed window is rebuilt from all its partition blobs."""
        snaps = self._metas()
        ends = self.watermarks(measures, snaps)
        if not ends:
            return {}
        merged = {model: Merged(end - measures[model], end, {}) for model, end in ends.items()}
        first = min(m.start_ms for m in merged.values())
        sources: dict[WindowKey, list[tuple[int, int]]] = defaultdict(list)
        for p, snap in snaps.items():
            for key, gen in self._store.written(p, min_start_ms=first).items():
                m = merged.get(key.model)
                if m is None or not m.start_ms <= key.start_ms <= m.end_ms:
                    continue
                sources[key].append((p, gen))
                if key.start_ms <= snap.incomplete.get(key.model, NO_WATERMARK):
                    m.incomplete = True
        windows = self._windows(sources)
        for key, prof in windows.items():
            versions = merged[key.model].versions
            versions.setdefault(key.version, DatasetProfile()).merge(prof)
        return {model: m for model, m in merged.items() if m.versions}

    def _windows(self, sources: Mapping[WindowKey, list[tuple[int, int]]]
                 ) -> dict[WindowKey, DatasetProfile]:
        """Every window merged across its partitions, from the cache where unchanged."""
        stale: dict[int, list[WindowKey]] = defaultdict(list)
        out: dict[WindowKey, DatasetProfile] = {}
        for key, parts in sources.items():
            signature = tuple(sorted(parts))
            cached = self._cache.get(key)
            if cached is not None and cached[0] == signature and min(g for _, g in parts) >= 0:
                out[key] = cached[1]
                continue
            for p, _ in parts:
                stale[p].append(key)
        fresh: dict[WindowKey, DatasetProfile] = {}
        for p, keys in stale.items():
            for key, blob in self._store.window_blobs(p, keys).items():
                prof = DatasetProfile.from_bytes(blob)
                if key in fresh:
                    fresh[key].merge(prof)
                else:
                    fresh[key] = prof
        for key, prof in fresh.items():
            self._cache[key] = (tuple(sorted(sources[key])), prof)
            out[key] = prof
        for key in set(self._cache) - set(sources):  # slid out of every measurement window
            del self._cache[key]
        self.reads = sum(len(k) for k in stale.values())
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
