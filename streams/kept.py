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


def merged_bytes(a: bytes, b: bytes) -> bytes:
    out = DatasetProfile.from_bytes(a)
    out.merge(DatasetProfile.from_bytes(b))
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
