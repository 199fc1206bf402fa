"""The models file: which models a worker accepts and how each is windowed.

TOML (``.toml``) or YAML (``.yaml`` / ``.yml``), same shape::

    [defaults]                 # optional
    window = "5m"              # tumbling window size: 500ms, 30s, 5m, 1h, 1d
    retention = "1h"           # how long after its end a window still takes late events

    [models.credit-risk]
    window = "5m"
    retention = "2h"
    types = { country = "categorical", zip = "categorical" }   # optional overrides

With a models file, events of any other model go to the DLQ (reason ``unknown_model``).
Without one (:func:`default_catalog`), every valid model name is accepted with 5-minute
windows and 1-hour retention.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from sketches.errors import ConfigError
from sketches.reference import Reference
from sketches.segments import DEFAULT_TOP_K, OTHER, roster, value_of
from sketches.types import ColumnType
from streams.durations import parse_duration_ms
from streams.events import MODEL_PATTERN
from streams.join_items import label_text
from streams.windows import (
    DEFAULT_RETENTION_MS,
    DEFAULT_WINDOW_MS,
    LabelSpec,
    ModelCatalog,
    ModelSpec,
)

log = logging.getLogger(__name__)


def default_catalog() -> ModelCatalog:
    return ModelCatalog(accept_unknown=True)


def _table(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{what} must be a table / mapping")
    return value


# Keys of the same file read by driftline.alerting (measurement window, rules, policy).
ALERTING_KEYS = frozenset(
    {"measure", "min_count", "for", "cooldown", "repeat", "severity", "quality_severity", "rules",
     "ranges", "max_out_of_range", "compare_versions", "reference", "health"}
)


def parse_catalog(data: Mapping[str, Any], source: str = "models file") -> ModelCatalog:
    unknown = set(data) - {"defaults", "models"}
    if unknown:
        raise ConfigError(f"{source}: unknown sections {sorted(unknown)}")
    defaults = _table(data.get("defaults", {}), f"{source}: defaults")
    window = parse_duration_ms(defaults.get("window", "5m"), f"{source}: defaults.window")
    retention = parse_duration_ms(defaults.get("retention", "1h"), f"{source}: defaults.retention")
    models: dict[str, ModelSpec] = {}
    for name, raw in _table(data.get("models", {}), f"{source}: models").items():
        where = f"{source}: models.{name}"
        if not re.match(MODEL_PATTERN, name):
            raise ConfigError(f"{where}: invalid model name")
        spec = _table(raw, where)
        extra = (set(spec) - {"window", "retention", "types", "performance", "segments",
                              "segment_top_k"} - ALERTING_KEYS)
        if extra:
            raise ConfigError(f"{where}: unknown keys {sorted(extra)}")
        try:
            types = {
                col: ColumnType(t) for col, t in _table(spec.get("types", {}), where).items()
            }
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        try:
            win = (parse_duration_ms(spec["window"], f"{where}.window")
                   if "window" in spec else window)
            ret = (parse_duration_ms(spec["retention"], f"{where}.retention")
                   if "retention" in spec else retention)
            labels = (label_spec(_table(spec["performance"], f"{where}.performance"),
                                 f"{where}.performance", win, ret)
                      if "performance" in spec else None)
            top_k = int(spec.get("segment_top_k", DEFAULT_TOP_K))
            if top_k < 1:
                raise ValueError("segment_top_k must be >= 1")
            models[name] = ModelSpec(name, win, ret, types, labels,
                                     segment_columns(spec.get("segments"), f"{where}.segments"),
                                     top_k)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    if not models:
        raise ConfigError(f"{source}: no models listed")
    return ModelCatalog(models, accept_unknown=False, default_window_ms=window,
                        default_retention_ms=retention)


def segment_columns(raw: object, where: str) -> dict[str, frozenset[str]]:
    """``segments = ["country"]`` (rosters from the reference, filled in by
    :func:`with_rosters`) or ``segments = { country = ["DE", "FR"] }`` (given rosters)."""
    if raw is None:
        return {}
    if isinstance(raw, list):
        raw = {c: [] for c in raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: a list of columns or a table column -> values")
    out: dict[str, frozenset[str]] = {}
    for column, values in raw.items():
        if not isinstance(column, str) or not column or set(column) & set("~=|@/"):
            raise ConfigError(f"{where}: segment column {column!r} (no ~ = | @ / in names)")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ConfigError(f"{where}.{column}: a list of values (strings)")
        out[column] = frozenset(values)
    return out


def with_rosters(catalog: ModelCatalog, reference_of: Callable[[str], Reference | None]
                 ) -> ModelCatalog:
    """Fill the segment rosters not given in the models file from each model's default
    reference: its segment profiles' values, else the top-K of the column. A model whose
    reference has neither pools every event as "other" (logged)."""
    models = dict(catalog.models)
    for name, spec in catalog.models.items():
        if not spec.segments or all(spec.segments.values()):
            continue
        ref = reference_of(name)
        filled = {}
        for column, members in spec.segments.items():
            if members:
                filled[column] = members
                continue
            found: frozenset[str] = frozenset()
            if ref is not None and column in ref.segments:
                found = frozenset(value_of(t) for t in ref.segments[column] if t != OTHER)
            elif ref is not None:
                found = roster(ref.profile, column, spec.segment_top_k)
            if not found:
                log.warning("model %s: no reference values for segment column %s: every "
                            "event counts as segment 'other' (profile the reference with "
                            "--segments %s)", name, column, column)
            filled[column] = found
        models[name] = dataclasses.replace(spec, segments=filled)
    return dataclasses.replace(catalog, models=models)


def with_reference_types(catalog: ModelCatalog, names: Iterable[str],
                         reference_of: Callable[[str], Reference | None]) -> ModelCatalog:
    """Declare each model's column types as its default reference has them (types given
    in the models file win), so a window's column is typed like the reference from its
    first event on: one odd value arriving first counts as a mismatch instead of typing
    the column, and windows merge the same in any order (finding #9.3)."""
    models = dict(catalog.models)
    declared = dict(catalog.declared)
    for name in names:
        ref = reference_of(name)
        if ref is None:
            continue
        types = ref.profile.types_known()
        spec = models.get(name)
        if spec is not None:
            models[name] = dataclasses.replace(spec, types={**types, **spec.types})
        elif catalog.accept_unknown:
            declared[name] = types
    return dataclasses.replace(catalog, models=models, declared=declared)


PERFORMANCE_KEYS = frozenset(
    {"task", "positive", "negative", "threshold", "label_ttl", "max_pending", "keep",
     "min_labels", "measure", "label_wait", "min_label_ratio", "detector", "estimate", "rules"}
)
_NEGATIVE = {"1": "0", "true": "false", "yes": "no"}


def label_spec(raw: Mapping[str, Any], where: str, window_ms: int, retention_ms: int
               ) -> LabelSpec:
    """The join part of ``[models.M.performance]`` (the rules are read by
    :mod:`driftline.alerting`)."""
    extra = set(raw) - PERFORMANCE_KEYS
    if extra:
        raise ConfigError(f"{where}: unknown keys {sorted(extra)}")
    positive = label_text(raw.get("positive", "1"))
    try:
        return LabelSpec(
            task=str(raw.get("task", "binary")),
            positive=positive,
            negative=label_text(raw.get("negative", _NEGATIVE.get(positive, f"not-{positive}"))),
            threshold=float(raw.get("threshold", 0.5)),
            label_ttl_ms=parse_duration_ms(raw.get("label_ttl", "7d"), f"{where}.label_ttl"),
            max_pending=int(raw.get("max_pending", 1_000_000)),
            window_ms=window_ms,
            retention_ms=retention_ms,
            keep_ms=parse_duration_ms(raw.get("keep", "1d"), f"{where}.keep"),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def load_raw(path: str | Path) -> Mapping[str, Any]:
    """The parsed models file (TOML, or YAML by extension), or one clear ConfigError."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read models file {p}: {exc}") from exc
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except Exception as exc:  # both parsers raise their own error types
        raise ConfigError(f"models file {p}: {exc}") from exc
    return _table(data, str(p))


def load_catalog(path: str | Path | None) -> ModelCatalog:
    """Read a models file; None → :func:`default_catalog`."""
    if path is None:
        return default_catalog()
    return parse_catalog(load_raw(path), str(path))


__all__ = [
    "DEFAULT_RETENTION_MS",
    "DEFAULT_WINDOW_MS",
    "default_catalog",
    "load_catalog",
    "parse_catalog",
    "parse_duration_ms",
]
