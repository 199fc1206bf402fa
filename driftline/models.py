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

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sketches.errors import ConfigError
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


def default_catalog() -> ModelCatalog:
    return ModelCatalog(accept_unknown=True)


def _table(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{what} must be a table / mapping")
    return value


# Keys of the same file read by driftline.alerting (measurement window, rules, policy).
ALERTING_KEYS = frozenset(
    {"measure", "min_count", "for", "cooldown", "repeat", "severity", "quality_severity", "rules",
     "ranges", "max_out_of_range", "compare_versions", "reference"}
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
        extra = set(spec) - {"window", "retention", "types", "performance"} - ALERTING_KEYS
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
            models[name] = ModelSpec(name, win, ret, types, labels)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    if not models:
        raise ConfigError(f"{source}: no models listed")
    return ModelCatalog(models, accept_unknown=False, default_window_ms=window,
                        default_retention_ms=retention)


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
