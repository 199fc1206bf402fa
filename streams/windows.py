"""Event-time tumbling windows: model specs, window keys and per-partition counters.

Pure data and arithmetic; no Kafka, no Redis, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from sketches.segments import SEP, segment_of, segment_version
from sketches.types import ColumnType
from streams.events import InvalidEvent

MINUTE_MS = 60_000
DEFAULT_WINDOW_MS = 5 * MINUTE_MS
DEFAULT_RETENTION_MS = 60 * MINUTE_MS
_MAX_CACHED_SPECS = 10_000


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """How a model's predictions are joined with their labels (``[models.M.performance]``
    in the models file; see :mod:`streams.join`). ``task``: binary | multiclass |
    regression. ``positive`` / ``negative``: the binary classes; a score is predicted
    positive iff >= ``threshold``. ``label_ttl_ms``: how long (event time) a prediction
    waits for its label; ``max_pending``: size bound of the waiting predictions.
    ``keep_ms``: how long the per-window aggregates are kept beyond that."""

    task: str = "binary"
    positive: str = "1"
    negative: str = "0"
    threshold: float = 0.5
    label_ttl_ms: int = 7 * 24 * 3_600_000
    max_pending: int = 1_000_000
    window_ms: int = 5 * 60_000
    retention_ms: int = 60 * 60_000
    keep_ms: int = 24 * 3_600_000

    def __post_init__(self) -> None:
        if self.task not in ("binary", "multiclass", "regression"):
            raise ValueError(f"task must be binary, multiclass or regression, not {self.task!r}")
        if self.label_ttl_ms <= 0 or self.max_pending < 1:
            raise ValueError("label_ttl must be > 0 and max_pending >= 1")
        if self.task == "binary" and self.positive == self.negative:
            raise ValueError("the positive and negative classes must differ")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """How one model's events are windowed.

    ``window_ms``: tumbling window size. ``retention_ms``: how long after its end a
    window still accepts late events (measured against the partition's watermark, the
    largest event time seen). ``types``: optional column type overrides.
    """

    name: str
    window_ms: int = DEFAULT_WINDOW_MS
    retention_ms: int = DEFAULT_RETENTION_MS
    types: Mapping[str, ColumnType] = field(default_factory=dict)
    labels: LabelSpec | None = None
    """Set when the model's predictions are joined with labels (ground truth)."""
    segments: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Segment column -> its roster (the values with windows of their own; the others
    pooled as "other"): see :mod:`sketches.segments`."""
    segment_top_k: int = 10
    """Roster size when the roster comes from the reference (``segments = ["col"]``)."""

    def segment_versions(self, version: str, features: Mapping[str, object]) -> list[str]:
        """The segment windows (version names) an event of ``version`` also goes to."""
        return [segment_version(version, column, segment_of(features.get(column), members))
                for column, members in self.segments.items()]

    def __post_init__(self) -> None:
        if self.window_ms <= 0 or self.retention_ms < 0:
            raise ValueError(f"model {self.name}: window must be > 0 and retention >= 0")

    def window_start(self, ts_ms: int) -> int:
        return ts_ms - ts_ms % self.window_ms


DEFAULT_MAX_MODELS = 100
DEFAULT_MAX_VERSIONS = 20
DEFAULT_MAX_COLUMNS = 1000


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on names taken from payloads, so no producer can grow state or metrics
    without end. ``models``: models a partition accepts that are not in the models file
    (listed models are always accepted). ``columns``: columns in one window of a model
    (features + prediction columns). ``versions``: versions of one model with open
    windows in a partition (segment windows not counted: their roster bounds them).
    Events beyond any of them are rejected with ``limit``."""

    models: int = DEFAULT_MAX_MODELS
    columns: int = DEFAULT_MAX_COLUMNS
    versions: int = DEFAULT_MAX_VERSIONS

    def __post_init__(self) -> None:
        if self.models < 1 or self.columns < 1 or self.versions < 1:
            raise ValueError("limits must be >= 1")

    def admit_version(self, key: WindowKey, open_keys: Iterable[WindowKey]) -> None:
        """Reject (``limit``) a new window of a version beyond the model's limit, counted
        over the partition's ``open_keys``."""
        versions = {k.version for k in open_keys if k.model == key.model and SEP not in k.version}
        if key.version not in versions and len(versions) >= self.versions:
            raise InvalidEvent("limit", f"model {key.model!r} has {len(versions)} versions "
                               f"with open windows (limit {self.versions})")


@dataclass(frozen=True, slots=True)
class ModelCatalog:
    """The models a worker accepts.

    With ``models`` empty and ``accept_unknown`` true (the default when no models file is
    given) every valid model name is accepted with ``default`` windowing; otherwise an
    event naming a model not listed goes to the DLQ with reason ``unknown_model``.
    ``declared``: column types of models not listed (from their references), so their
    windows are typed like the reference rather than by the first value seen.
    """

    models: Mapping[str, ModelSpec] = field(default_factory=dict)
    accept_unknown: bool = True
    default_window_ms: int = DEFAULT_WINDOW_MS
    default_retention_ms: int = DEFAULT_RETENTION_MS
    declared: Mapping[str, Mapping[str, ColumnType]] = field(default_factory=dict)

    _defaults: dict[str, ModelSpec] = field(default_factory=dict, compare=False, repr=False)

    def get(self, name: str) -> ModelSpec | None:
        spec = self.models.get(name)
        if spec is None and self.accept_unknown:
            spec = self._defaults.get(name)
            if spec is None:
                spec = ModelSpec(name, self.default_window_ms, self.default_retention_ms,
                                 types=self.declared.get(name, {}))
                if len(self._defaults) < _MAX_CACHED_SPECS:  # names come from payloads
                    self._defaults[name] = spec
        return spec

    @property
    def max_horizon_ms(self) -> int:
        """Largest window + retention among the known models (and the default)."""
        spans = [m.window_ms + m.retention_ms for m in self.models.values()]
        spans.append(self.default_window_ms + self.default_retention_ms)
        return max(spans)


class WindowKey(NamedTuple):
    """One tumbling window of one model version: ``start_ms`` inclusive."""

    model: str
    version: str
    start_ms: int

    def encode(self) -> str:
        """``model|version|start``: unambiguous, as model and version names exclude ``|``
        (both are validated against ``[A-Za-z0-9._-]{1,128}`` when events are decoded)."""
        return f"{self.model}|{self.version}|{self.start_ms}"

    @classmethod
    def decode(cls, text: str) -> WindowKey:
        model, version, start = text.split("|")
        return cls(model, version, int(start))


@dataclass(slots=True)
class Counters:
    """Per-partition event counts: ok and late per model, invalid per reason."""

    ok: dict[str, int] = field(default_factory=dict)
    late: dict[str, int] = field(default_factory=dict)
    invalid: dict[str, int] = field(default_factory=dict)

    def to_fields(self) -> dict[str, int]:
        out = {f"ok:{k}": v for k, v in self.ok.items()}
        out.update({f"late:{k}": v for k, v in self.late.items()})
        out.update({f"invalid:{k}": v for k, v in self.invalid.items()})
        return out

    @classmethod
    def from_fields(cls, fields: Mapping[str, int]) -> Counters:
        c = cls()
        for name, value in fields.items():
            kind, _, key = name.partition(":")
            target = {"ok": c.ok, "late": c.late, "invalid": c.invalid}.get(kind)
            if target is not None:
                target[key] = int(value)
        return c

    def copy(self) -> Counters:
        return Counters(dict(self.ok), dict(self.late), dict(self.invalid))

    @property
    def total_ok(self) -> int:
        return sum(self.ok.values())

    @property
    def total_late(self) -> int:
        return sum(self.late.values())

    @property
    def total_invalid(self) -> int:
        return sum(self.invalid.values())
