"""A training reference: the dataset profile, its metadata, and the data split in chunks.

The chunks let thresholds be learned from the reference's own variation: each chunk
is compared with the merge of all the *other* chunks (not with the whole reference,
which contains the chunk and biases the spread low — nannyml issue #426), and the
threshold is mean + k·sd of those chunk-vs-rest values. Such thresholds describe
windows of about one chunk's size (``rows / chunks``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import msgspec

from sketches import _codec
from sketches.column import NullProfile
from sketches.errors import InputDataError, StateFormatError
from sketches.metrics import column_metrics
from sketches.numeric import DEFAULT_KLL_K
from sketches.profile import DatasetProfile
from sketches.reference_performance import ReferencePerformance
from sketches.types import ColumnType
from sketches.values import ColumnValues


class _ReferenceState(msgspec.Struct, array_like=True):
    model: str
    version: str
    created: str
    profile: bytes
    chunks: list[bytes]
    performance: bytes | None = None
    """Added with issue #13; references written before have no such field and load."""
    segments: dict[str, dict[str, bytes]] = {}
    """Added with issue #14: column -> segment token -> profile bytes."""


class Reference:
    """A reference profile plus metadata; ``created`` is passed in, never read from a clock."""

    MAGIC = b"DLRF"
    VERSION = 1

    def __init__(
        self,
        profile: DatasetProfile,
        *,
        model: str,
        version: str,
        created: str,
        chunks: Iterable[DatasetProfile] = (),
        performance: ReferencePerformance | None = None,
        segments: Mapping[str, Mapping[str, DatasetProfile]] | None = None,
    ) -> None:
        self.profile = profile
        self.model = model
        self.version = version
        self.created = created
        self.chunks: list[DatasetProfile] = list(chunks)
        self.performance = performance
        """The reference's realized performance and CBPE calibrator, when it had labels."""
        self.segments: dict[str, dict[str, DatasetProfile]] = {
            c: dict(v) for c, v in (segments or {}).items()}
        """Segment column -> segment token -> the profile of its rows (sketches.segments)."""
        self._segment_refs: dict[tuple[str, str], Reference] = {}
        self._learned: dict[float, dict[str, dict[str, float]]] = {}
        self.chunks_left_out = 0
        """Chunks stored but not decoded (``from_bytes(chunks=False)``)."""

    @property
    def rows(self) -> int:
        return self.profile.rows

    @property
    def types(self) -> dict[str, ColumnType]:
        return self.profile.types

    def learned_thresholds(self, k_sd: float = 3.0) -> dict[str, dict[str, float]]:
        """column -> metric -> mean + k_sd * sd of the chunk-vs-rest metric values.

        Empty when there are fewer than two non-empty chunks. Computed once per k_sd.
        """
        if k_sd in self._learned:
            return self._learned[k_sd]
        if self.chunks_left_out:
            raise RuntimeError("this reference was read without its chunks; read it with "
                               "chunks=True to learn thresholds")
        chunks = [c for c in self.chunks if c.rows]
        out: dict[str, dict[str, float]] = {}
        if len(chunks) >= 2:
            values: dict[str, dict[str, list[float]]] = {}
            for i, rest in enumerate(_leave_one_out(chunks)):
                for name, ref_col in rest.columns.items():
                    cur_col = chunks[i].columns.get(name)
                    if cur_col is None or isinstance(ref_col, NullProfile):
                        continue
                    if isinstance(cur_col, NullProfile) or type(ref_col) is not type(cur_col):
                        continue
                    for metric, mv in column_metrics(ref_col, cur_col).metrics.items():
                        values.setdefault(name, {}).setdefault(metric, []).append(mv.value)
            for name, metrics in values.items():
                out[name] = {}
                for metric, xs in metrics.items():
                    mean = sum(xs) / len(xs)
                    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / max(len(xs) - 1, 1))
                    out[name][metric] = mean + k_sd * sd
        self._learned[k_sd] = out
        return out

    def to_bytes(self) -> bytes:
        state = _ReferenceState(
            self.model,
            self.version,
            self.created,
            self.profile.to_bytes(),
            [c.to_bytes() for c in self.chunks],
            self.performance.to_bytes() if self.performance is not None else None,
            {c: {t: p.to_bytes() for t, p in v.items()} for c, v in self.segments.items()},
        )
        return _codec.pack(self.MAGIC, self.VERSION, state)

    def segment(self, column: str, tok: str) -> Reference | None:
        """The reference of one segment (its rows only), or None when it has none."""
        key = (column, tok)
        if key not in self._segment_refs:
            prof = self.segments.get(column, {}).get(tok)
            if prof is None:
                return None
            self._segment_refs[key] = Reference(prof, model=self.model, version=self.version,
                                                created=self.created)
        return self._segment_refs[key]

    @classmethod
    def from_bytes(cls, data: bytes, *, chunks: bool = True) -> Reference:
        """``chunks=False``: the chunk profiles (only :meth:`learned_thresholds` reads
        them; most of a reference's bytes) are not decoded — for a reader that keeps
        many references and compares without learned thresholds (the evaluator)."""
        s = _codec.unpack(data, cls.MAGIC, cls.VERSION, _ReferenceState)
        profile = DatasetProfile.from_bytes(s.profile)
        parts = [DatasetProfile.from_bytes(b) for b in s.chunks] if chunks else []
        if parts and sum(c.rows for c in parts) != profile.rows:
            raise StateFormatError("reference chunks do not add up to the profile's rows")
        perf = ReferencePerformance.from_bytes(s.performance) if s.performance else None
        segments = {c: {t: DatasetProfile.from_bytes(b) for t, b in v.items()}
                    for c, v in s.segments.items()}
        out = cls(
            profile, model=s.model, version=s.version, created=s.created, chunks=parts,
            performance=perf, segments=segments,
        )  # fmt: skip
        out.chunks_left_out = len(s.chunks) if not chunks else 0
        return out


def _leave_one_out(chunks: list[DatasetProfile]) -> list[DatasetProfile]:
    """For each i, the merge of every chunk but i (prefix/suffix merges: O(n) merges)."""
    n = len(chunks)
    prefix: list[DatasetProfile | None] = [None] * (n + 1)
    suffix: list[DatasetProfile | None] = [None] * (n + 1)
    for i in range(n):
        prev = prefix[i]
        acc = prev.copy() if prev is not None else DatasetProfile(kll_k=chunks[i].kll_k)
        acc.merge(chunks[i])
        prefix[i + 1] = acc
    for i in range(n - 1, -1, -1):
        nxt = suffix[i + 1]
        acc = nxt.copy() if nxt is not None else DatasetProfile(kll_k=chunks[i].kll_k)
        acc.merge(chunks[i])
        suffix[i] = acc
    out = []
    for i in range(n):
        rest = DatasetProfile(kll_k=chunks[i].kll_k)
        for part in (prefix[i], suffix[i + 1]):
            if part is not None:
                rest.merge(part)
        out.append(rest)
    return out


Batch = Mapping[str, ColumnValues]


def build_reference(
    batches: Iterable[Batch],
    *,
    model: str,
    version: str,
    created: str,
    chunks: int = 10,
    total_rows: int | None = None,
    types: Mapping[str, ColumnType] | None = None,
    kll_k: int = DEFAULT_KLL_K,
) -> Reference:
    """Profile ``batches`` (column name -> values, equal lengths) into a :class:`Reference`.

    With ``total_rows`` known the chunks are contiguous slices of ``ceil(total/chunks)``
    rows (temporal chunks if the data is in time order); without it whole batches are
    dealt to the chunks round-robin. ``chunks=0`` keeps no chunks (no learned thresholds).
    Raises :class:`InputDataError` when there are no rows.
    """
    if chunks < 0:
        raise InputDataError(f"chunks must be >= 0, got {chunks}")
    parts = [DatasetProfile(types=types, kll_k=kll_k) for _ in range(max(chunks, 1))]
    size = math.ceil(total_rows / max(chunks, 1)) if total_rows else 0
    seen = 0
    for index, batch in enumerate(batches):
        n = _batch_rows(batch)
        if not size:
            parts[index % len(parts)].update(batch, n)
            seen += n
            continue
        start = 0
        while start < n:
            i = min(seen // size, len(parts) - 1)
            take = n - start if i == len(parts) - 1 else min(n - start, (i + 1) * size - seen)
            parts[i].update({k: v[start : start + take] for k, v in batch.items()}, take)
            start += take
            seen += take
    if seen == 0:
        raise InputDataError("no rows to profile")
    profile = DatasetProfile(types=types, kll_k=kll_k)
    for part in parts:
        profile.merge(part)
    keep = [p for p in parts if p.rows] if chunks >= 2 else []
    return Reference(profile, model=model, version=version, created=created, chunks=keep)


def _batch_rows(batch: Batch) -> int:
    lengths = {len(v) for v in batch.values()}
    if len(lengths) > 1:
        raise InputDataError(f"batch columns have different lengths: {sorted(lengths)}")
    return lengths.pop() if lengths else 0
