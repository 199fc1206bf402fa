"""What the evaluator reads and writes through: its injected sources and sinks.

Protocols only (the implementations live in ``streams`` and ``driftline``, which
``alerts`` does not import — DESIGN.md §2).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from alerts.message import Alert
from sketches.profile import DatasetProfile
from sketches.reference import Reference


class Measurement(Protocol):
    """The merged profiles of a model's measurement window (per version) and its bounds."""

    @property
    def start_ms(self) -> int: ...
    @property
    def end_ms(self) -> int: ...
    @property
    def versions(self) -> Mapping[str, DatasetProfile]: ...
    @property
    def incomplete(self) -> bool:
        """Part of the window's input aged out of the topic before it was rebuilt."""
        ...


class WindowSource(Protocol):
    def measurements(self, measures: Mapping[str, int]) -> Mapping[str, Measurement]:
        """model -> its measurement window (``measure_ms`` before the watermark); models
        with no data are left out. One call per evaluation, so one read of the state."""
        ...

    def forget(self, models: Iterable[str]) -> None:
        """Drop what is cached for ``models`` (no longer evaluated here)."""
        ...


class Housekeeping(Protocol):
    def compact(self, models: Mapping[str, tuple[int, int, int, int]],
                fence_key: Callable[[str], str]) -> object:
        """Compact and roll up the stored windows of ``models`` (model -> (window_ms,
        retention_ms, measure_ms, fencing token)); writes fenced by ``fence_key(model)``."""
        ...


class ReferenceSource(Protocol):
    def get(self, model: str, version: str) -> Reference | None: ...


@runtime_checkable
class Prefetching(Protocol):
    """A reference source that can check many references at once, before they are asked
    for one by one (``sketches.store.ReferenceStore.prefetch``)."""

    def prefetch(self, pairs: Iterable[tuple[str, str]]) -> None: ...


@runtime_checkable
class WindowReferenceSource(Protocol):
    """A source whose reference may follow the measurement window (a trailing production
    baseline, ``[models.M.reference]``; ``streams.baseline``): asked with its start."""

    def get(self, model: str, version: str) -> Reference | None: ...
    def for_window(self, model: str, version: str, start_ms: int) -> Reference | None: ...


class Publisher(Protocol):
    def publish(self, alerts: Sequence[Alert]) -> None: ...
