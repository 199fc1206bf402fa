"""What the window reader keeps between evaluations (:mod:`streams.reader`): the items of
a measurement, the serialized merges kept per (model, version), and how a kept merge is
reused when the measurement window moves on. No Redis here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, cast

from sketches.profile import DatasetProfile
from streams.core import NO_WATERMARK, PartitionSnapshot


class Item(NamedTuple):
    """One unit of a measurement: a window merged across partitions (``source`` "p") or
    one model-level record of :mod:`streams.compaction` (``source`` = its tier)."""

    model: str
    version: str
    start_ms: int
    source: str


Signature = tuple[object, ...]


@dataclass(slots=True)
class Kept:
    """What is kept of one (model, version) between evaluations, serialized (bytes take
    no more memory than live sketches and are shared with the measurements handed out):
    the merge of every item but the newest (with the items and signatures it was made
    from), the newest item's merge (which changes while its window fills) and the
    *ahead* merge: a suffix of the older items, grown backwards a few items per call
    until it holds all of them but the oldest — what the older merge becomes, with the
    newest, when the oldest item drops out. Updated in place: a measurement handed out
    shows its model's latest read."""

    older: tuple[tuple[Item, Signature], ...]
    older_bytes: bytes | None
    newest: tuple[Item, Signature]
    newest_bytes: bytes
    ahead: tuple[tuple[Item, Signature], ...] = ()
    ahead_bytes: bytes | None = None
    deep: tuple[tuple[Item, Signature], ...] = ()
    """For a few calls after the measurement moved on (``hold``): the older items but the
    last one — the window that was the newest until then, which still takes stragglers —
    and their merge (``deep_bytes``), so that late events in that window cost a read of
    that window only, not of every older one."""
    deep_bytes: bytes | None = None
    hold: int = 0

    def waits(self) -> bool:
        """One call of the hold passes: True while the ahead merge still waits for the
        previous window's stragglers; once it stops waiting the deep merge is let go."""
        if self.hold:
            self.hold -= 1
            if self.hold:
                return True
        self.deep, self.deep_bytes = (), None
        return False

    def behind(self) -> int:
        """Older items (but the oldest) the ahead merge does not hold yet."""
        return max(0, len(self.older) - 1 - len(self.ahead))

    def profile(self) -> DatasetProfile:
        """The measurement: the older merge and the newest item, merged (a new object)."""
        out = DatasetProfile.from_bytes(self.newest_bytes if self.older_bytes is None
                                        else self.older_bytes)
        if self.older_bytes is not None:
            out.merge(DatasetProfile.from_bytes(self.newest_bytes))
        return out


class _Versions(Mapping[str, DatasetProfile]):
    """version -> the measurement's merged profile, built from the kept bytes on each
    access (a new object each time, free to be changed): a measurement held between
    evaluations costs no memory beyond what the reader keeps anyway. It shows the
    reader's latest read of its model: valid until the next :meth:`WindowReader.
    measurements` that covers the model (which returns its successor)."""

    def __init__(self) -> None:
        self._kept: dict[str, Kept] = {}

    def __setitem__(self, version: str, kept: Kept) -> None:
        self._kept[version] = kept

    def __getitem__(self, version: str) -> DatasetProfile:
        return self._kept[version].profile()

    def __iter__(self) -> Iterator[str]:
        return iter(self._kept)

    def __len__(self) -> int:
        return len(self._kept)


@dataclass
class Merged:
    start_ms: int
    end_ms: int
    versions: _Versions = field(default_factory=_Versions)
    incomplete: bool = False
    """Some merged window was rebuilt after part of its input aged out of the topic."""


def is_legacy(item: Item, signature: Signature) -> bool:
    """A window with a blob written before generations were kept: always re-read."""
    return item.source == "p" and any(cast(tuple[int, int], pair)[1] < 0 for pair in signature)


def base_merge(kept: Kept | None, signature: tuple[tuple[Item, Signature], ...],
          proper: bool = False) -> tuple[tuple[tuple[Item, Signature], ...],
                                         Callable[[], bytes]] | None:
    """The longest kept merge that ends the older items ``signature`` (the same items,
    same signatures, none legacy) and how to get its bytes: the older merge, the older
    and newest merges merged (the measurement moved on, none dropped), the ahead merge
    with or without the newest (the oldest dropped out), the newest alone. ``proper``:
    only merges shorter than ``signature`` (what may be kept as its ahead merge)."""
    if kept is None or not signature:
        return None
    k = kept
    newest = (k.newest,)
    candidates: list[tuple[tuple[tuple[Item, Signature], ...], Callable[[], bytes]]] = [
        ((*k.older, *newest), lambda: k.profile().to_bytes()),
        (newest, lambda: k.newest_bytes)]
    if k.older and k.older_bytes is not None:
        older_bytes = k.older_bytes
        candidates.append((k.older, lambda: older_bytes))
    if k.ahead and k.ahead_bytes is not None:
        ahead_bytes = k.ahead_bytes
        candidates += [((*k.ahead, *newest), lambda: merged_bytes(ahead_bytes, k.newest_bytes)),
                       (k.ahead, lambda: ahead_bytes)]
    best = None
    for sig, make in candidates:
        n = len(sig)
        if n > len(signature) or (proper and n == len(signature)) or (
                best is not None and n <= len(best[0])):
            continue
        if signature[len(signature) - n:] == sig and not any(is_legacy(i, s) for i, s in sig):
            best = (sig, make)
    return best


HOLD = 3
"""Calls after the measurement moved on — and after each late event in the window that
was the newest — during which the kept deep merge is held (late events in that window are
merged onto it) and the ahead merge waits (it would hold that window)."""


def deep_base(kept: Kept | None, signature: tuple[tuple[Item, Signature], ...]
              ) -> bytes | None:
    """The kept deep merge's bytes when the older items ``signature`` are its items and
    one more (the previous window, changed since); else None."""
    if kept is None or kept.deep_bytes is None or len(signature) != len(kept.deep) + 1:
        return None
    if signature[:-1] != kept.deep or is_legacy(*signature[-1]):
        return None
    return kept.deep_bytes


def slid_deep(kept: Kept | None, base: tuple[tuple[Item, Signature], ...]
              ) -> tuple[tuple[tuple[Item, Signature], ...], bytes] | None:
    """When the new older merge ``base`` is a kept merge and the old newest (the
    measurement moved on): that kept merge, the deep merge of the next calls."""
    if kept is None or len(base) < 2 or base[-1] != kept.newest:
        return None
    head = base[:-1]
    for sig, data in ((kept.ahead, kept.ahead_bytes), (kept.older, kept.older_bytes)):
        if head == sig and data is not None:
            return head, data
    return None


class ItemCache:
    """Single older items' merges (serialized) within a byte budget (``window_cache_
    bytes``), so that a late event in one older window does not make the others be read
    again; 0 keeps none."""

    def __init__(self, budget: int) -> None:
        self._items: dict[Item, tuple[Signature, bytes]] = {}
        self._budget = budget
        self._bytes = 0

    def get(self, item: Item, signature: Signature) -> bytes | None:
        hit = self._items.get(item)
        if hit is None or hit[0] != signature or is_legacy(item, signature):
            return None
        return hit[1]

    def admit(self, item: Item, signature: Signature, blob: bytes | None,
              prof: DatasetProfile | None = None) -> None:
        """Cache one older item's merge while the cache stays within its budget."""
        if self._budget <= 0 or item in self._items:
            return
        data = blob if blob is not None else prof.to_bytes() if prof is not None else b""
        if self._bytes + len(data) > self._budget:
            return
        self._items[item] = (signature, data)
        self._bytes += len(data)

    def drop(self, models: set[str], sources: Mapping[Item, Signature] | None = None) -> None:
        """Forget the items of ``models`` that changed or left their window (``sources``:
        what they are now; None: forget them all)."""
        for item in [i for i in self._items if i.model in models]:
            if sources is None or sources.get(item) != self._items[item][0]:
                self._bytes -= len(self._items.pop(item)[1])


def merged_bytes(a: bytes, b: bytes | DatasetProfile) -> bytes:
    out = DatasetProfile.from_bytes(a)
    out.merge(b if isinstance(b, DatasetProfile) else DatasetProfile.from_bytes(b))
    return out.to_bytes()


def model_watermarks(snaps: Mapping[int, PartitionSnapshot], models: Iterable[str]
                     ) -> dict[str, int]:
    """model -> the largest event time any partition has seen of it (models never seen
    are left out). A partition that never saw a model neither holds it back nor pushes
    it; state written before per-model watermarks lends its partition watermark to
    every model."""
    marks: dict[str, int] = {}
    legacy = NO_WATERMARK
    for snap in snaps.values():
        if snap.watermarks:
            for model, mark in snap.watermarks.items():
                marks[model] = max(marks.get(model, NO_WATERMARK), mark)
        else:
            legacy = max(legacy, snap.watermark_ms)
    ends = {m: max(marks.get(m, NO_WATERMARK), legacy) for m in models}
    return {m: end for m, end in ends.items() if end != NO_WATERMARK}
