"""A data file cut in chunks (``driftline compare --chunk``), each profiled like one window.

Duration chunks (``--chunk 1d``, ``1h``, ``30m``) are the stream's tumbling windows: a row
whose event time is ``ts`` (epoch ms, from ``--timestamp-column``) belongs to the chunk
starting at ``ts - ts % size`` — aligned to the epoch, so ``1d`` chunks are UTC days —
exactly as :class:`streams.core.Processor` assigns an event to its window. Only chunks
holding rows exist (as windows do); rows without a timestamp are in the whole-file result
only and counted. Row chunks (``--chunk 5000``) are consecutive rows in file order.

Every chunk's :class:`~sketches.profile.DatasetProfile` is built with the reference's types
and KLL ``k`` and compared with :func:`sketches.drift.compare_profiles` under the same
rules as the whole file, so a chunk's values are a stream window's values for the same rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from alerts.message import rfc3339
from driftline.datafiles import DataBatch, FloatArray
from sketches import _codec
from sketches.drift import DriftReport
from sketches.errors import ConfigError
from sketches.profile import DatasetProfile, _ProfileState
from sketches.reference import Reference
from sketches.types import ColumnType
from streams.durations import NUMBER, UNIT, parse_duration_ms

MAX_CHUNKS = 10_000
"""More chunks than this is a mistake (``--chunk 1m`` over a year of data): refused."""

_MAX_EXACT_MS = float(2**53)
"""Event times beyond this (far past year 200,000) cannot be whole ms: no chunk."""
_DURATION = re.compile(rf"^\s*{NUMBER}\s*(?:{UNIT})\s*$")


@dataclass(frozen=True, slots=True)
class ChunkSpec:
    """``--chunk``: a duration (``size_ms``) or a row count (``rows``)."""

    text: str
    size_ms: int | None = None
    rows: int | None = None

    @property
    def by(self) -> str:
        return "time" if self.size_ms is not None else "rows"

    def to_json_dict(self) -> dict[str, object]:
        if self.size_ms is not None:
            return {"by": "time", "size": self.text, "size_ms": self.size_ms}
        return {"by": "rows", "size": self.rows}


def parse_chunk(text: str) -> ChunkSpec:
    """``"5000"`` -> 5000 rows; ``"1d"``, ``"1h"``, ``"30m"`` -> a duration. A bare number
    is a row count here (elsewhere in driftline it would be seconds): give a unit."""
    t = text.strip()
    if t.isdigit():
        if int(t) < 1:
            raise ConfigError("--chunk: a row count must be at least 1")
        return ChunkSpec(t, rows=int(t))
    if not _DURATION.match(t):
        raise ConfigError(
            f"--chunk: {text!r} is neither a row count (5000) nor a duration like 30m, 1h, 1d"
        )
    ms = parse_duration_ms(t, "--chunk")
    if ms < 1:
        raise ConfigError(f"--chunk: {text!r} is shorter than a millisecond")
    return ChunkSpec(t, size_ms=ms)


@dataclass
class Chunk:
    """One chunk's profile. ``start_ms`` / ``end_ms``: a duration chunk's window
    ``[start, end)``; a row chunk's first and last event time (None without timestamps)."""

    profile: DatasetProfile
    start_ms: int | None = None
    end_ms: int | None = None
    first_row: int | None = None

    def to_json_dict(self, index: int, report: DriftReport) -> dict[str, object]:
        whole = report.to_json_dict()
        out: dict[str, object] = {
            "index": index,
            "start": _time(self.start_ms),
            "end": _time(self.end_ms),
            "rows": report.rows,
        }
        if self.first_row is not None:
            out["first_row"] = self.first_row
        out.update(
            columns=whole["columns"],
            drifted=whole["drifted"],
            insufficient_data=whole["insufficient_data"],
        )
        return out


def _time(ms: int | None) -> str | None:
    return None if ms is None else rfc3339(ms / 1000)


@dataclass
class Chunker:
    """Routes the rows of each batch to their chunk's profile."""

    spec: ChunkSpec
    types: Mapping[str, ColumnType]
    kll_k: int
    rows_without_timestamp: int = 0
    _chunks: dict[int, Chunk] = field(default_factory=dict)
    _seen: int = 0

    def add(self, columns: dict[str, pa.Array], batch: DataBatch) -> None:
        """Add one batch (``columns``: its selected features)."""
        if self.spec.size_ms is not None:
            if batch.ts_ms is None:
                raise ConfigError("--chunk with a duration needs --timestamp-column")
            self._add_by_time(columns, batch.rows, batch.ts_ms, self.spec.size_ms)
        else:
            assert self.spec.rows is not None
            self._add_by_rows(columns, batch.rows, batch.ts_ms, self.spec.rows)

    def chunks(self) -> list[Chunk]:
        """Chunks with rows, in time (or file) order."""
        return [self._chunks[k] for k in sorted(self._chunks) if self._chunks[k].profile.rows]

    def _chunk(self, key: int, **kw: int | None) -> Chunk:
        chunk = self._chunks.get(key)
        if chunk is None:
            if len(self._chunks) >= MAX_CHUNKS:
                raise ConfigError(f"--chunk {self.spec.text}: more than {MAX_CHUNKS:,} chunks; "
                                  "use a longer period or more rows per chunk")
            chunk = Chunk(DatasetProfile(types=self.types, kll_k=self.kll_k), **kw)
            self._chunks[key] = chunk
        return chunk

    def _add_by_time(
        self, columns: dict[str, pa.Array], n: int, ts_ms: FloatArray, size: int
    ) -> None:
        valid = np.abs(ts_ms) < _MAX_EXACT_MS  # False for NaN
        self.rows_without_timestamp += int(n - np.count_nonzero(valid))
        rows = np.flatnonzero(valid)
        ts = ts_ms[rows].astype(np.int64)
        starts = ts - ts % size  # as the stream: floor to the window, aligned to the epoch
        order = np.argsort(starts, kind="stable")  # file order kept within a chunk
        keys, firsts = np.unique(starts[order], return_index=True)
        bounds = [*firsts.tolist(), len(order)]
        for key, a, b in zip(keys.tolist(), bounds, bounds[1:], strict=False):
            chunk = self._chunk(key, start_ms=key, end_ms=key + size)
            if b - a == n:  # the whole batch in one chunk
                chunk.profile.update(columns, n)
                continue
            take = pa.array(rows[order[a:b]])
            chunk.profile.update({k: v.take(take) for k, v in columns.items()}, b - a)

    def _add_by_rows(
        self, columns: dict[str, pa.Array], n: int, ts_ms: FloatArray | None, size: int
    ) -> None:
        start = 0
        while start < n:
            index = self._seen // size
            take = min(n - start, (index + 1) * size - self._seen)
            chunk = self._chunk(index, first_row=index * size)
            part = columns if take == n else {k: v.slice(start, take) for k, v in columns.items()}
            chunk.profile.update(part, take)
            if ts_ms is not None:
                _widen(chunk, ts_ms[start : start + take])
            start += take
            self._seen += take


def _widen(chunk: Chunk, ts_ms: FloatArray) -> None:
    finite = ts_ms[np.isfinite(ts_ms)]
    if finite.size:
        lo, hi = int(finite.min()), int(finite.max())
        chunk.start_ms = lo if chunk.start_ms is None else min(chunk.start_ms, lo)
        chunk.end_ms = hi if chunk.end_ms is None else max(chunk.end_ms, hi)


@dataclass
class TimeSpan:
    """Earliest and latest event time of the batches passing through :meth:`watch`."""

    start_ms: int | None = None
    end_ms: int | None = None
    missing: int = 0
    not_features: tuple[str, ...] = ()

    def watch(self, batches: Iterable[DataBatch]) -> Iterator[DataBatch]:
        for batch in batches:
            if not self.not_features:
                self.not_features = batch.not_features
            if batch.ts_ms is not None:
                finite = batch.ts_ms[np.isfinite(batch.ts_ms)]
                self.missing += batch.rows - int(finite.size)
                if finite.size:
                    lo, hi = int(finite.min()), int(finite.max())
                    self.start_ms = lo if self.start_ms is None else min(self.start_ms, lo)
                    self.end_ms = hi if self.end_ms is None else max(self.end_ms, hi)
            yield batch

    def describe(self) -> str:
        if self.start_ms is None or self.end_ms is None:
            return "no event times"
        text = f"event time {_time(self.start_ms)} .. {_time(self.end_ms)}"
        return text + (f" ({self.missing:,} rows without one)" if self.missing else "")


# ------------------------------------------------------------- reference columns


def select_reference(
    reference: Reference | DatasetProfile, keep: Callable[[str], bool]
) -> Reference | DatasetProfile:
    """``reference`` restricted to the columns ``keep`` accepts (itself when all are), its
    chunks too, so ``--columns`` / ``--exclude`` / time columns leave the comparison — and
    its multiple-testing correction — entirely, instead of showing up as absent columns."""
    profile = reference.profile if isinstance(reference, Reference) else reference
    if all(keep(name) for name in profile.columns):
        return reference
    if isinstance(reference, DatasetProfile):
        return select_profile(reference, keep)
    return Reference(
        select_profile(reference.profile, keep),
        model=reference.model,
        version=reference.version,
        created=reference.created,
        chunks=[select_profile(c, keep) for c in reference.chunks],
        performance=reference.performance,
    )


def select_profile(profile: DatasetProfile, keep: Callable[[str], bool]) -> DatasetProfile:
    """A copy of ``profile`` with the columns ``keep`` accepts. Goes through the profile's
    own byte format (``sketches.profile`` has no public column selection yet); the sketches
    are copied byte for byte, so their values and bounds do not change."""
    magic, version = DatasetProfile.MAGIC, DatasetProfile.VERSION
    state = _codec.unpack(profile.to_bytes(), magic, version, _ProfileState)
    kept = _ProfileState(
        state.rows,
        state.kll_k,
        {k: v for k, v in state.types.items() if keep(k)},
        {k: v for k, v in state.columns.items() if keep(k)},
    )
    return DatasetProfile.from_bytes(_codec.pack(magic, version, kept))
