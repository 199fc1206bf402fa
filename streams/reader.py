"""Read side of the window state: merged measurement windows and totals across partitions.

Used by the evaluator (through the :class:`alerts.evaluator.WindowSource` protocol the
CLI wires in) and by ``driftline status``. It never takes ownership of a partition: the
epoch is untouched. Event time rules: a measurement window ends at the stream's
watermark (the largest event time any partition has seen), not at the wall clock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from sketches.profile import DatasetProfile
from streams.core import NO_WATERMARK
from streams.state import RedisStateStore
from streams.windows import Counters


@dataclass(frozen=True)
class Merged:
    start_ms: int
    end_ms: int
    versions: dict[str, DatasetProfile]


class WindowReader:
    def __init__(self, store: RedisStateStore) -> None:
        self._store = store

    def watermark_ms(self) -> int | None:
        marks = [self._store.read(p, min_start_ms=1 << 62).watermark_ms
                 for p in self._store.stored_partitions()]  # fmt: skip
        marks = [m for m in marks if m != NO_WATERMARK]
        return max(marks) if marks else None

    def measurement(self, model: str, measure_ms: int) -> Merged | None:
        """Merge, per version, every window of ``model`` starting in the last ``measure_ms``
        before the watermark; ``None`` when nothing was ever stored."""
        return self.measurements({model: measure_ms}).get(model)

    def measurements(self, measures: Mapping[str, int]) -> dict[str, Merged]:
        """:meth:`measurement` for several models (model -> measure_ms) with one read of
        the stored windows; models never stored are left out."""
        end = self.watermark_ms()
        if end is None or not measures:
            return {}
        starts = {model: end - ms for model, ms in measures.items()}
        merged = {model: Merged(start, end, {}) for model, start in starts.items()}
        for windows in self._store.windows(min_start_ms=min(starts.values())).values():
            for key, blob in windows.items():
                start = starts.get(key.model)
                if start is None or key.start_ms < start:
                    continue
                prof = DatasetProfile.from_bytes(blob)
                versions = merged[key.model].versions
                if key.version in versions:
                    versions[key.version].merge(prof)
                else:
                    versions[key.version] = prof
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
