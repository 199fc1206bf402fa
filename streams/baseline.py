"""Trailing production baselines: references built from a model's own stored windows.

A model configured ``[models.M.reference] kind = "trailing"`` is compared with a past
stretch of its own production traffic instead of its training reference
(:class:`sketches.baseline.ReferenceChoice`: span, offset, excluded ranges, minimum
rows). :class:`TrailingReferences` builds that baseline with the same reader as the
measurement windows and ``driftline reference put --from-window``
(:meth:`streams.reader.WindowReader.ranges`: partition blobs of open windows, compacted
windows and hourly / daily roll-ups, nothing counted twice), leaving out whole items that
straddle the baseline's ends or overlap an excluded range.

A baseline is kept until its range moves to another window of the model's grid (once per
window length): evaluations in between cost no Redis read at all. Late events that reach
a baseline window meanwhile are therefore taken at the next move, not at once.

:class:`ReferenceChoices` is what the evaluator is given: per model, the training
reference (``sketches.store.ReferenceStore``) or the trailing baseline.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from sketches import segments
from sketches.baseline import ReferenceChoice
from sketches.profile import DatasetProfile
from sketches.reference import Reference
from sketches.store import DEFAULT_VERSION
from streams.kept import Item
from streams.reader import WindowReader
from streams.state import RedisStateStore
from streams.tiers import DAY_MS, HOUR_MS

log = logging.getLogger(__name__)

DEFAULT_CACHE_BYTES = 32 << 20
"""The baseline reader's budget for single items' merges: when the range slides by one
window, only the new items are read (sketches cannot subtract the one that left)."""


def version_reference(versions: Mapping[str, DatasetProfile], model: str, version: str,
                      created: str) -> Reference | None:
    """The reference of ``version`` from a merge's per-version profiles: that version's
    profile, or for ``default`` every version's merged (segments' windows, stored as
    versions ``v~column=value``, are copies of their version's rows: never merged in);
    None when the version is absent."""
    wanted = [v for v in versions
              if segments.SEP not in v and version in (DEFAULT_VERSION, v)]
    if not wanted:
        return None
    profile = DatasetProfile()
    for v in wanted:
        profile.merge(versions[v])
    return Reference(profile, model=model, version=version, created=created)


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TrainingSource(Protocol):
    def get(self, model: str, version: str) -> Reference | None: ...


@dataclass
class Baseline:
    """One model's baseline on one grid range, and what was left out of it."""

    grid: tuple[int, int]
    versions: Mapping[str, DatasetProfile]
    left_out: Mapping[str, int]
    """reason ("excluded" / "outside") -> items (windows or records) left out."""
    items: int
    refs: dict[str, Reference | None] = field(default_factory=dict)


class TrailingReferences:
    """Trailing baselines of the models configured so (model -> (choice, window_ms))."""

    def __init__(self, store: RedisStateStore, models: Mapping[str, tuple[ReferenceChoice, int]],
                 *, window_cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self._models = {m: cw for m, cw in models.items() if cw[0].trailing}
        self._reader = WindowReader(store, window_cache_bytes=window_cache_bytes)
        self._cache: dict[str, Baseline] = {}
        self.builds = 0
        """Baselines built (read from Redis) so far: once per model and grid range."""
        self.reads = 0
        """Blobs read by the last build."""

    def handles(self, model: str) -> bool:
        return model in self._models

    def baseline(self, model: str, start_ms: int) -> Baseline:
        """The baseline of ``model`` for a measurement starting at ``start_ms`` (kept until
        its grid range moves)."""
        choice, window_ms = self._models[model]
        grid = choice.grid(start_ms, window_ms)
        kept = self._cache.get(model)
        if kept is not None and kept.grid == grid:
            return kept
        taken: set[tuple[str, str, int]] = set()
        left: dict[tuple[str, str, int], str] = {}

        def keep(item: Item) -> bool:
            length = {"h": HOUR_MS, "d": DAY_MS}.get(item.source, window_ms)
            why = choice.takes(grid, item.start_ms, length)
            key = ("w" if item.source == "p" else item.source, item.version, item.start_ms)
            if why is None:
                taken.add(key)
            else:
                left[key] = why
            return why is None

        merged = self._reader.ranges({model: (grid[0], grid[1] - 1)}, keep).get(model)
        self.builds += 1
        self.reads = self._reader.reads
        out = Baseline(grid, merged.versions if merged is not None else {},
                       dict(Counter(left.values())), len(taken))
        rows = sum(out.versions[v].rows for v in out.versions) if out.versions else 0
        log.info("model %s: trailing baseline %s..%s: %d rows from %d windows / records "
                 "(%d blobs read); left out whole: %d overlapping excluded ranges, %d "
                 "reaching past the range", model, iso(grid[0]), iso(grid[1]), rows,
                 out.items, self.reads, out.left_out.get("excluded", 0),
                 out.left_out.get("outside", 0))
        self._cache[model] = out
        return out

    def get(self, model: str, version: str, start_ms: int) -> Reference | None:
        """``version``'s baseline (the model's, all versions merged, when that version has
        fewer than ``min_rows`` in it); None ("no reference") when even that has fewer."""
        choice, _ = self._models[model]
        base = self.baseline(model, start_ms)
        if version in base.refs:
            return base.refs[version]
        created = f"trailing {iso(base.grid[0])}..{iso(base.grid[1])}"
        ref = version_reference(base.versions, model, version, created)
        if (ref is None or ref.rows < choice.min_rows) and version != DEFAULT_VERSION:
            ref = version_reference(base.versions, model, DEFAULT_VERSION, created)
        if ref is not None and ref.rows < choice.min_rows:
            ref = None
        base.refs[version] = ref
        return ref

    def forget(self, models: Iterable[str]) -> None:
        gone = set(models)
        for model in gone:
            self._cache.pop(model, None)
        self._reader.forget(gone)


class ReferenceChoices:
    """The evaluator's reference source (``alerts.evaluator.WindowReferenceSource``): the
    trailing baseline for the models configured so, the training reference otherwise."""

    def __init__(self, training: TrainingSource, trailing: TrailingReferences | None) -> None:
        self._training = training
        self._trailing = trailing

    def get(self, model: str, version: str) -> Reference | None:
        """The training reference (what ``check_config`` and the CLI look at)."""
        return self._training.get(model, version)

    def prefetch(self, pairs: Iterable[tuple[str, str]]) -> None:
        prefetch = getattr(self._training, "prefetch", None)  # (a ReferenceStore's)
        if prefetch is not None:
            prefetch(pairs)

    def for_window(self, model: str, version: str, start_ms: int) -> Reference | None:
        if self._trailing is not None and self._trailing.handles(model):
            return self._trailing.get(model, version, start_ms)
        return self._training.get(model, version)
