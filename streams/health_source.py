"""The stored figures behind the operational health alerts (:mod:`alerts.health`): it
implements :class:`alerts.health.HealthSource` for the evaluator, read-only.

From each partition's meta hash (:mod:`streams.state`): the model's watermark per
partition (which windows are complete), ``seen:<model>`` (wall clock of the last
checkpoint that accepted an event of it), ``lag`` and the counters. From the windows
(partition blobs, or the compacted record once :mod:`streams.compaction` merged them):
each window's event count and its ``latency_ms`` quantiles, merged over partitions and
versions. A window's figures are kept with what they were read from (blob generations,
the record's meta) and read again only when that changed, so an evaluation reads the
windows that changed since the last one — normally the newest.

The invalid / late ratios are deltas of the cumulative counters between the evaluator's
own samples (one per evaluation, kept in memory): a restarted evaluator has no ratio
until it has sampled for one ratio period (the alert holds its state meanwhile).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from alerts.health import HealthFigures, Ratio, WindowFigures
from sketches.numeric import NumericProfile
from sketches.profile import DatasetProfile
from sketches.segments import SEP
from streams.state import RedisStateStore
from streams.tiers import Record, TierStore, included, parse_contributors
from streams.windows import WindowKey

LATENCY_COLUMN = "latency_ms"
QUANTILES = (0.5, 0.95, 0.99)
_KEEP_SAMPLES_S = 24 * 3600.0


class _Source(NamedTuple):
    """One blob a window is read from: a partition's (``p``) or a compacted record (``w``)."""

    kind: str
    version: str
    partition: int = -1
    generation: int = 0
    meta: str = ""


@dataclass(frozen=True)
class _Meta:
    watermarks: dict[str, int]
    seen: dict[str, float]
    ok: dict[str, int]
    late: dict[str, int]
    invalid: int
    lag: int | None


class StoredHealth:
    def __init__(self, store: RedisStateStore) -> None:
        self._store = store
        self._tiers = TierStore(store.client, prefix=store.prefix, topic=store.topic)
        self._metas: tuple[float, dict[int, _Meta]] | None = None
        self._samples: deque[tuple[float, dict[str, int]]] = deque()
        # model -> window start -> (what it was read from, its figures)
        self._windows: dict[str, dict[int, tuple[tuple[_Source, ...], WindowFigures]]] = {}
        self._written_cache: tuple[float | None, int, dict[int, dict[WindowKey, int]]] | None = None
        self.reads = 0
        """Blobs read so far (for tests and benchmarks)."""

    # -- the protocol --------------------------------------------------------------------
    def figures(self, model: str, *, window_ms: int, windows: int, ratio_s: float,
                now: float) -> HealthFigures:
        metas = self._read_metas(now)
        marks = [m.watermarks[model] for m in metas.values() if model in m.watermarks]
        seen = [m.seen[model] for m in metas.values() if model in m.seen]
        lags = [m.lag for m in metas.values() if m.lag is not None]
        out = HealthFigures(last_seen=max(seen, default=None),
                            invalid=self._ratio(now, ratio_s, "invalid", "all"),
                            late=self._ratio(now, ratio_s, f"late:{model}", f"events:{model}"),
                            lag=sum(lags) if lags else None, topic=self._store.topic)
        if not marks:
            return out
        # complete: every partition carrying the model has passed the window's end (those
        # that fell silent over the whole trailing period are not waited for)
        span = (windows + 1) * window_ms
        through = min(m for m in marks if m >= max(marks) - span)
        last = (through - window_ms) // window_ms * window_ms
        first = last - windows * window_ms
        got = self._window_figures(model, first, last, window_ms)
        return HealthFigures(
            windows=[got.get(s, WindowFigures(s, 0)) for s in range(first, last + 1, window_ms)
                     if s >= min(got, default=last)],
            last_seen=out.last_seen, invalid=out.invalid, late=out.late, lag=out.lag,
            topic=out.topic)

    # -- partition meta and counters -----------------------------------------------------
    def _read_metas(self, now: float) -> dict[int, _Meta]:
        """Every partition's meta, read once per evaluation (``now``), and a counter sample."""
        if self._metas is not None and self._metas[0] == now:
            return self._metas[1]
        client = self._store.client
        parts = self._store.stored_partitions()
        pipe = client.pipeline(transaction=False)
        for p in parts:
            pipe.hgetall(self._store.meta_key(p))
        metas = {p: _parse(raw) for p, raw in zip(parts, pipe.execute(), strict=True)}
        self._metas = (now, metas)
        totals: dict[str, int] = {"invalid": 0, "all": 0}
        for m in metas.values():
            totals["invalid"] += m.invalid
            totals["all"] += m.invalid + sum(m.ok.values()) + sum(m.late.values())
            for model, n in m.late.items():
                totals[f"late:{model}"] = totals.get(f"late:{model}", 0) + n
            for model in m.ok.keys() | m.late.keys():
                key = f"events:{model}"
                totals[key] = totals.get(key, 0) + m.ok.get(model, 0) + m.late.get(model, 0)
        self._samples.append((now, totals))
        while self._samples and self._samples[0][0] < now - _KEEP_SAMPLES_S:
            self._samples.popleft()
        return metas

    def _ratio(self, now: float, period_s: float, part: str, whole: str) -> Ratio | None:
        """``part`` / ``whole`` counted since the newest sample at least ``period_s`` old;
        None without one, or when a counter went back (a partition's state was reset)."""
        base = None
        for t, totals in self._samples:
            if t > now - period_s:
                break
            base = totals
        if base is None or not self._samples:
            return None
        cur = self._samples[-1][1]
        d_part = cur.get(part, 0) - base.get(part, 0)
        d_whole = cur.get(whole, 0) - base.get(whole, 0)
        if d_part < 0 or d_whole < d_part:
            return None
        return Ratio(d_part, d_whole)

    # -- windows ---------------------------------------------------------------------------
    def _window_figures(self, model: str, first: int, last: int, window_ms: int
                        ) -> dict[int, WindowFigures]:
        """start -> figures of the model's windows starting in [first, last]."""
        records = {r: meta for r, meta in self._tiers.records(model, first, last).items()
                   if r.tier == "w"}
        compacted: dict[tuple[str, int], dict[int, int]] = {
            (r.version, r.start_ms): parse_contributors(meta) for r, meta in records.items()}
        sources: dict[int, list[_Source]] = {}
        for r, meta in records.items():
            if SEP not in r.version:  # segments' windows hold the same events again
                sources.setdefault(r.start_ms, []).append(_Source("w", r.version, meta=meta))
        for p, written in self._written(first).items():
            for key, gen in written.items():
                if (key.model != model or key.start_ms < first or key.start_ms > last
                        or SEP in key.version):
                    continue
                if included(p, compacted.get((key.version, key.start_ms), {})):
                    continue
                sources.setdefault(key.start_ms, []).append(_Source("p", key.version, p, gen))
        kept = self._windows.setdefault(model, {})
        for start in [s for s in kept if s < first]:
            del kept[start]
        out: dict[int, WindowFigures] = {}
        for start, parts in sources.items():
            signature = tuple(sorted(parts))
            hit = kept.get(start)  # (a generation < 0: written before they were kept)
            if hit is not None and hit[0] == signature and min(
                    s.generation for s in signature) >= 0:
                out[start] = hit[1]
                continue
            fig = self._read_window(model, start, parts)
            kept[start] = (signature, fig)
            out[start] = fig
        return out

    def _written(self, first: int) -> dict[int, dict[WindowKey, int]]:
        """Every partition's written windows from ``first`` on, read once per evaluation
        (the metas' ``now``) for all models, not once per model and partition."""
        now = self._metas[0] if self._metas is not None else None
        cached = self._written_cache
        if cached is not None and cached[0] == now and cached[1] <= first:
            return cached[2]
        got = {p: self._store.written(p, min_start_ms=first)
               for p in self._store.stored_partitions()}
        self._written_cache = (now, first, got)
        return got

    def _read_window(self, model: str, start: int, parts: list[_Source]) -> WindowFigures:
        blobs: list[tuple[str, bytes]] = []
        by_partition: dict[int, list[WindowKey]] = {}
        for s in parts:
            if s.kind == "p":
                by_partition.setdefault(s.partition, []).append(WindowKey(model, s.version, start))
        for p, keys in by_partition.items():
            blobs += [(k.version, b) for k, b in self._store.window_blobs(p, keys).items()]
        tiered = [Record("w", s.version, start) for s in parts if s.kind == "w"]
        blobs += [(r.version, b) for r, b in self._tiers.blobs(model, tiered).items()]
        self.reads += len(blobs)
        rows: dict[str, int] = {}
        latency: dict[str, NumericProfile] = {}
        for version, blob in blobs:
            prof = DatasetProfile.from_bytes(blob)
            rows[version] = rows.get(version, 0) + prof.rows
            col = prof.columns.get(LATENCY_COLUMN)
            if isinstance(col, NumericProfile):
                if version in latency:
                    latency[version].merge(col)
                else:
                    latency[version] = col
        per_version = {v: (n, _quantiles(latency.get(v))) for v, n in rows.items()}
        whole: NumericProfile | None = None
        for col in latency.values():
            if whole is None:
                whole = NumericProfile.from_bytes(col.to_bytes())
            else:
                whole.merge(col)
        return WindowFigures(start, sum(rows.values()), _quantiles(whole),
                             per_version if len(per_version) > 1 else {})


def _quantiles(latency: NumericProfile | None) -> dict[float, float]:
    """Latency quantiles in seconds (empty when the events carry none)."""
    if latency is None or latency.count == 0:
        return {}
    values = latency.quantiles(list(QUANTILES))
    return {q: v / 1000 for q, v in zip(QUANTILES, values, strict=True)}


def _parse(raw: Mapping[bytes, bytes]) -> _Meta:
    marks: dict[str, int] = {}
    seen: dict[str, float] = {}
    ok: dict[str, int] = {}
    late: dict[str, int] = {}
    invalid = 0
    lag = None
    for k, v in raw.items():
        key, value = k.decode(), v.decode()
        if key.startswith("wm:"):
            marks[key[3:]] = int(value)
        elif key.startswith("seen:"):
            seen[key[5:]] = float(value)
        elif key.startswith("c:ok:"):
            ok[key[5:]] = int(value)
        elif key.startswith("c:late:"):
            late[key[7:]] = int(value)
        elif key.startswith("c:invalid:"):
            invalid += int(value)
        elif key == "lag":
            lag = int(value)
    return _Meta(marks, seen, ok, late, invalid, lag)
