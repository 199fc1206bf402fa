"""Read side of the window state: merged measurement windows and totals across partitions.

Used by the evaluator (through the :class:`alerts.evaluator.WindowSource` protocol the
CLI wires in) and by ``driftline status``. It never takes ownership of a partition: the
epoch is untouched. Event time rules: a model's measurement window ends at that model's
watermark (the largest event time any partition has seen of it), not at the wall clock
and not at another model's clock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import cast

from sketches.profile import DatasetProfile
from streams.core import NO_WATERMARK, PartitionSnapshot
from streams.kept import (
    HOLD,
    Item,
    ItemCache,
    Kept,
    Merged,
    Signature,
    base_merge,
    deep_base,
    is_legacy,
    merged_bytes,
    model_watermarks,
    slid_deep,
)
from streams.state import RedisStateStore
from streams.tiers import Record, TierStore, included, parse_contributors
from streams.windows import Counters, WindowKey

READ_CHUNK = 256
"""Blobs fetched per round trip (a first evaluation of many models reads them all)."""
MODEL_CHUNK = 16
"""Models read and merged together: bounds the live sketches of a first evaluation."""
AHEAD_BLOBS = 4096
"""Blobs one call may read to grow the ahead merges (:meth:`WindowReader.measurements`)."""


class WindowReader:
    def __init__(self, store: RedisStateStore, *, window_cache_bytes: int = 0,
                 ahead_blobs: int = AHEAD_BLOBS) -> None:
        """``window_cache_bytes``: memory for single windows' merges (serialized), so a late
        event in an older window does not make the others be read again (0: none).
        ``ahead_blobs``: blobs a call may read to grow the ahead merges (:meth:`measurements`)."""
        self._store = store
        self._tiers = TierStore(store.client, prefix=store.prefix, topic=store.topic)
        self._kept: dict[tuple[str, str], Kept] = {}  # (model, version) -> its merges
        self._cache = ItemCache(window_cache_bytes)
        self._ahead_budget = ahead_blobs
        self._ahead_left = 0
        self.reads = 0
        """Blobs read by the last :meth:`measurements` (for tests and benchmarks)."""
        self.ahead_reads = 0
        """Of those, blobs read to grow ahead merges."""
        self.behind = 0
        """Older items the kept ahead merges lack (0: no re-read when the oldest drops);
        ``held``: of merges whose ahead merge waits for stragglers (``HOLD``)."""
        self.held = 0

    def watermarks(self, models: Iterable[str],
                   snaps: Mapping[int, PartitionSnapshot] | None = None) -> dict[str, int]:
        """:func:`streams.kept.model_watermarks` of the partitions (``snaps``: their meta,
        when already read)."""
        return model_watermarks(snaps if snaps is not None else self._metas(), models)

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

        Incremental: per model and version three merges are kept between calls,
        serialized, with what they were made from (partition blob generations, records'
        meta): the newest item (a window merged across partitions, or a record), the merge
        of all the others ("older") and an *ahead* merge: older but its oldest item, built
        backwards a few items per call. While only the newest window changes — traffic — a
        measurement reads that window's blobs and costs one more merge. When the
        measurement moves on and none drops out, the kept merges are merged; sketches
        cannot subtract, so when the oldest window drops out the new older merge is the
        ahead merge and the old newest merged — no re-read — provided the ahead merge was
        finished: each call reads at most ``ahead_blobs`` blobs to grow them, which must
        cover models × partitions × (windows − 2) blobs per window length (500 × 16 × 10
        = 80,000: 20 calls at the default 4,096); what is missing is read at the slide.
        Stragglers: after it moved on, until ``HOLD`` calls pass without a late event in
        the window that was the newest, the merge of the other older windows is held, so
        such events cost a read of that window only (the ahead merge waits). Any other merge
        holding an item whose blobs changed (a late event further back) is not used: the
        older items are read again, unless ``window_cache_bytes`` keeps single windows'
        merges (~10 KB per numeric column each: none by default); that pass gives the
        ahead merge too. Compacted windows are one record each: cheap to re-read."""
        snaps = self._metas()
        ends = self.watermarks(measures, snaps)
        if not ends:
            return {}
        merged = {model: Merged(end - measures[model], end) for model, end in ends.items()}
        return self._merge(merged, snaps, measures)

    def ranges(self, spans: Mapping[str, tuple[int, int]],
               keep: Callable[[Item], bool] | None = None) -> dict[str, Merged]:
        """Like :meth:`measurements` for explicit ranges (model -> (first, last) item start,
        both included) instead of ranges ending at the watermark, taking only the items
        ``keep`` accepts (e.g. :mod:`streams.baseline`: a trailing baseline leaves out
        records reaching past its end or into an excluded range). ``keep`` must decide a
        window's partition blobs as it decides the window's compacted record (by start
        and tier length), or a window could count twice. Keep one reader per kind of
        range: the kept merges are per (model, version)."""
        merged = {model: Merged(start, end) for model, (start, end) in spans.items()}
        return self._merge(merged, self._metas(), spans, keep)

    def _merge(self, merged: dict[str, Merged], snaps: Mapping[int, PartitionSnapshot],
               asked: Iterable[str], keep: Callable[[Item], bool] | None = None
               ) -> dict[str, Merged]:
        """The body of :meth:`measurements` and :meth:`ranges`: list, read, merge."""
        if not merged:
            return {}
        self._ahead_left, self.ahead_reads = self._ahead_budget, 0
        sources: dict[Item, Signature] = {}
        counted: dict[tuple[str, str, int], dict[int, int]] = {}
        listed = self._tiers.records_many({m: (mm.start_ms, mm.end_ms)
                                           for m, mm in merged.items()})
        for model, records in listed.items():
            for record, meta in records.items():
                item = Item(model, record.version, record.start_ms, record.tier)
                if keep is not None and not keep(item):
                    continue
                sources[item] = (meta,)
                if record.tier == "w":
                    counted[(model, record.version, record.start_ms)] = parse_contributors(meta)
        parts: dict[Item, list[tuple[int, int]]] = defaultdict(list)
        first = min(m.start_ms for m in merged.values())
        for p, snap in snaps.items():
            for key, gen in self._store.written(p, min_start_ms=first, models=merged).items():
                m = merged.get(key.model)
                if m is None or not m.start_ms <= key.start_ms <= m.end_ms:
                    continue
                if included(p, counted.get((key.model, key.version, key.start_ms), {})):
                    continue  # its compacted record holds it
                item = Item(key.model, key.version, key.start_ms, "p")
                if keep is not None and not keep(item):
                    continue
                parts[item].append((p, gen))
                if key.start_ms <= snap.incomplete.get(key.model, NO_WATERMARK):
                    m.incomplete = True
        for item, pairs in parts.items():
            sources[item] = tuple(sorted(pairs))
        by_model: dict[str, dict[Item, Signature]] = defaultdict(dict)
        for item, signature in sources.items():
            by_model[item.model][item] = signature
        for model in set(asked) - set(by_model):
            self.forget([model])  # nothing stored in its window any more
        names = sorted(by_model)
        reads = 0
        for i in range(0, len(names), MODEL_CHUNK):  # a batch of models at a time: what is
            chunk = names[i:i + MODEL_CHUNK]       # read and merged fresh stays bounded
            groups: dict[tuple[str, str], list[Item]] = defaultdict(list)
            for name in chunk:
                for item in by_model[name]:
                    groups[(item.model, item.version)].append(item)
            for items in groups.values():
                items.sort(key=lambda it: (it.start_ms, it.source))
            built = self._build(groups, sources)
            reads += self.reads
            for (model, version), kept in built.items():
                merged[model].versions[version] = kept
            for mv in [mv for mv in self._kept if mv[0] in chunk and mv not in built]:
                del self._kept[mv]  # a version no longer in the window
            self._cache.drop(set(chunk), sources)
        self.reads = reads
        self.behind = sum(k.behind() for k in self._kept.values() if not k.hold)
        self.held = sum(k.behind() for k in self._kept.values() if k.hold)
        return {model: m for model, m in merged.items() if m.versions}

    def _build(self, groups: Mapping[tuple[str, str], list[Item]],
               sources: Mapping[Item, Signature]) -> dict[tuple[str, str], Kept]:
        """The kept merges of each (model, version) of ``groups`` (items sorted by start),
        reading only what no kept merge holds; items whose blobs all expired meanwhile are
        left out. Then the ahead merges are grown within the call's budget."""
        fresh: dict[Item, DatasetProfile] = {}
        gone: set[Item] = set()
        reads = 0
        while True:  # twice at most: a blob that expired since it was listed changes the plan
            wanted = {item for mv, items in groups.items()
                      for item in self._needed(mv, [i for i in items if i not in gone],
                                               sources)} - fresh.keys() - gone
            if not wanted:
                break
            got = self._read({item: sources[item] for item in wanted})
            reads += self.reads
            fresh.update(got)
            gone |= wanted - got.keys()
        out: dict[tuple[str, str], Kept] = {}
        for mv, items in groups.items():
            present = [i for i in items if i not in gone]
            if present:
                out[mv] = self._keep(mv, present, sources, fresh)
        del fresh
        reads += self._advance(out)
        self.reads = reads
        return out

    def _needed(self, mv: tuple[str, str], items: list[Item],
                sources: Mapping[Item, Signature]) -> list[Item]:
        """The items of ``mv`` that must be read: the newest unless it is kept unchanged;
        the older ones that no kept merge holds (:meth:`_base`) nor the cache."""
        if not items:
            return []
        kept = self._kept.get(mv)
        newest, older = items[-1], items[:-1]
        out = []
        if kept is None or kept.newest != (newest, sources[newest]) or is_legacy(
                newest, sources[newest]):
            out.append(newest)
        signature = tuple((i, sources[i]) for i in older)
        base = base_merge(kept, signature)
        rest = signature[:len(signature) - len(base[0])] if base else signature
        if len(rest) > 1 and deep_base(kept, signature) is not None:
            rest = signature[-1:]  # late events in the previous window: that window only
        return out + [i for i, sig in rest if self._older_item(kept, i, sig) is None]

    def _older_item(self, kept: Kept | None, item: Item, signature: Signature) -> bytes | None:
        """The kept bytes of one single item: the kept newest (a window that was the newest
        until the measurement moved on) or the budgeted cache."""
        if kept is not None and kept.newest == (item, signature) and not is_legacy(item,
                                                                                  signature):
            return kept.newest_bytes
        return self._cache.get(item, signature)

    def _keep(self, mv: tuple[str, str], items: list[Item], sources: Mapping[Item, Signature],
              fresh: Mapping[Item, DatasetProfile]) -> Kept:
        """Update and return the kept merges of ``mv``. The older items' merge is the
        longest kept merge that ends them (:func:`_base`) with the items before it read
        (or cached) and merged in — merged newest first, so that the merge of all of them
        but the oldest is had on the way: the new ahead merge. When nothing had to be
        read, the ahead merge is the longest kept one that still fits."""
        kept = self._kept.get(mv)
        newest, older = items[-1], items[:-1]
        signature = tuple((i, sources[i]) for i in older)
        if kept is not None and kept.older == signature and newest not in fresh and \
                kept.newest[0] == newest and not any(i in fresh for i in older):
            return kept  # nothing changed
        base = base_merge(kept, signature)
        base_sig, base_bytes = (base[0], base[1]()) if base else ((), None)
        rest = signature[:len(signature) - len(base_sig)]
        ahead: tuple[tuple[Item, Signature], ...] = ()
        ahead_bytes: bytes | None = None
        deep = deep_base(kept, signature) if len(rest) > 1 else None
        slid = slid_deep(kept, base_sig) if not rest else None
        older_bytes: bytes | None
        if deep is not None:  # the previous window changed: onto the merge of the others
            i, sig = signature[-1]
            blob = None if i in fresh else self._older_item(kept, i, sig)
            older_bytes = merged_bytes(deep, fresh[i] if blob is None else blob)
        elif rest:
            acc = DatasetProfile() if base_bytes is None else DatasetProfile.from_bytes(
                base_bytes)
            for n in range(len(rest) - 1, -1, -1):
                if n == 0:  # all but the oldest: the next slide's older merge
                    ahead = signature[1:]
                    ahead_bytes = base_bytes if len(rest) == 1 else acc.to_bytes()
                i, sig = rest[n]
                blob = None if i in fresh else self._older_item(kept, i, sig)
                acc.merge(fresh[i] if blob is None else DatasetProfile.from_bytes(blob))
            older_bytes = acc.to_bytes()
        else:  # the older merge is kept as it is, or the kept merges merged
            older_bytes = base_bytes
            fits = base_merge(kept, signature, proper=True)
            if fits and slid is None and not (kept is not None and kept.hold):
                ahead, ahead_bytes = fits[0], fits[1]()
        if newest in fresh:
            newest_bytes = fresh[newest].to_bytes()
        else:
            assert kept is not None and kept.newest[0] == newest
            newest_bytes = kept.newest_bytes
        if kept is not None and kept.newest[0] != newest:
            # the old newest joined the older items (the window slid): cache it, budget
            # allowing, so the next slide need not read it again
            self._cache.admit(kept.newest[0], kept.newest[1], kept.newest_bytes)
        for i in older:
            if i in fresh:
                self._cache.admit(i, sources[i], None, fresh[i])
        if kept is None:
            kept = self._kept[mv] = Kept(signature, older_bytes, (newest, sources[newest]),
                                          newest_bytes, ahead, ahead_bytes)
        else:  # in place: the bytes replaced are freed now, not when the evaluator lets go
            kept.older, kept.older_bytes = signature, older_bytes  # of the old measurement
            kept.newest, kept.newest_bytes = (newest, sources[newest]), newest_bytes
            kept.ahead, kept.ahead_bytes = ahead, ahead_bytes
        if slid is not None:  # moved on: hold what the older items were but the newest
            kept.deep, kept.deep_bytes = slid
        kept.hold = HOLD if slid is not None or deep is not None else kept.hold
        return kept

    def _advance(self, kept: Mapping[tuple[str, str], Kept]) -> int:
        """Grow the ahead merges of ``kept`` backwards by the items before them, as far as
        the call's budget of blobs goes (models in order: the first ones are finished
        first); the blobs read. One model at a time: few live sketches."""
        reads = 0
        for k in kept.values():
            if k.waits():  # stragglers may still change the previous window
                continue
            steps: list[tuple[Item, Signature]] = []
            wanted: dict[Item, Signature] = {}
            at = len(k.older) - len(k.ahead) - 1  # the next item to fold in; 0 is not
            while at >= 1 and self._ahead_left > 0:
                item, sig = k.older[at]
                steps.append((item, sig))
                if self._cache.get(item, sig) is None:
                    wanted[item] = sig
                    self._ahead_left -= len(sig) if item.source == "p" else 1
                at -= 1
            if not steps:
                continue
            fresh = self._read(wanted) if wanted else {}
            reads += self.reads if wanted else 0
            acc = None if k.ahead_bytes is None else DatasetProfile.from_bytes(k.ahead_bytes)
            folded = 0
            for item, sig in steps:  # newest first, each just before the ahead merge
                blob = self._cache.get(item, sig)
                prof = fresh.get(item) if blob is None else DatasetProfile.from_bytes(blob)
                if prof is None:
                    break  # expired since listed: the next listing changes the plan
                if acc is None:
                    acc = DatasetProfile()
                acc.merge(prof)
                folded += 1
            if folded and acc is not None:
                k.ahead = k.older[len(k.older) - len(k.ahead) - folded:]
                k.ahead_bytes = acc.to_bytes()
        self.ahead_reads += reads
        return reads

    def forget(self, models: Iterable[str]) -> None:
        """Drop the merges kept for ``models`` (evaluated elsewhere now)."""
        gone = set(models)
        self._cache.drop(gone)
        for mv in [mv for mv in self._kept if mv[0] in gone]:
            del self._kept[mv]

    def _read(self, sources: Mapping[Item, Signature]) -> dict[Item, DatasetProfile]:
        """Read and merge ``sources`` (each a window merged across its partitions, or one
        record); those whose blobs all expired meanwhile are left out."""
        fresh: dict[Item, DatasetProfile] = {}
        reads = 0
        windows = [item for item in sources if item.source == "p"]
        per_call = max(1, READ_CHUNK // max((len(sources[w]) for w in windows), default=1))
        for i in range(0, len(windows), per_call):  # bounded replies: memory stays flat
            by_partition: dict[int, list[WindowKey]] = defaultdict(list)
            for item in windows[i:i + per_call]:
                for pair in sources[item]:
                    by_partition[cast(tuple[int, int], pair)[0]].append(
                        WindowKey(item.model, item.version, item.start_ms))
            got: dict[Item, list[bytes]] = defaultdict(list)
            for p, keys in by_partition.items():
                for key, blob in self._store.window_blobs(p, keys).items():
                    got[Item(key.model, key.version, key.start_ms, "p")].append(blob)
            for item, blobs in got.items():  # a window's blobs merged from their bytes
                reads += len(blobs)
                fresh[item] = DatasetProfile.merged(blobs)
        records: dict[str, list[Record]] = defaultdict(list)
        for item in sources:
            if item.source != "p":
                records[item.model].append(Record(item.source, item.version, item.start_ms))
        for model, wanted in records.items():
            for record, blob in self._tiers.blobs(model, wanted).items():
                reads += 1
                fresh[Item(model, record.version, record.start_ms, record.tier)] = \
                    DatasetProfile.from_bytes(blob)
        self.reads = reads
        return fresh

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
