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
from streams.core import NO_WATERMARK
from streams.state import RedisStateStore
from streams.windows import Counters


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

    def watermarks(self, models: Iterable[str]) -> dict[str, int]:
        """model -> the largest event time any partition has seen of it (models never seen
        are left out). A partition that never saw a model neither holds it back nor pushes
        it; state written before per-model watermarks lends its partition watermark to
        every model."""
        marks: dict[str, int] = {}
        legacy = NO_WATERMARK
        for p in self._store.stored_partitions():
            snap = self._store.read(p, min_start_ms=1 << 62)
            if snap.watermarks:
                for model, mark in snap.watermarks.items():
                    marks[model] = max(marks.get(model, NO_WATERMARK), mark)
            else:
                legacy = max(legacy, snap.watermark_ms)
        ends = {m: max(marks.get(m, NO_WATERMARK), legacy) for m in models}
        return {m: end for m, end in ends.items() if end != NO_WATERMARK}

    def measurement(self, model: str, measure_ms: int) -> Merged | None:
        """Merge, per version, every window of ``model`` starting in the last ``measure_ms``
        before the model's watermark; ``None`` when nothing was ever stored."""
        return self.measurements({model: measure_ms}).get(model)

    def measurements(self, measures: Mapping[str, int]) -> dict[str, Merged]:
        """:meth:`measurement` for several models (model -> measure_ms) with one read of
        the stored windows; models never stored are left out."""
        ends = self.watermarks(measures)
        if not ends:
            return {}
        merged = {model: Merged(end - measures[model], end, {}) for model, end in ends.items()}
        first = min(m.start_ms for m in merged.values())
        for p in self._store.stored_partitions():
            snap = self._store.read(p, min_start_ms=first)
            for key, blob in snap.windows.items():
                m = merged.get(key.model)
                if m is None or not m.start_ms <= key.start_ms <= m.end_ms:
                    continue
                if key.start_ms <= snap.incomplete.get(key.model, NO_WATERMARK):
                    m.incomplete = True
                prof = DatasetProfile.from_bytes(blob)
                if key.version in m.versions:
                    m.versions[key.version].merge(prof)
                else:
                    m.versions[key.version] = prof
        return {model: m for model, m in merged.items() if m.versions}

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
