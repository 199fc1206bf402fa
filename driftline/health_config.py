"""``[models.M.health]`` (and ``[defaults.health]``) of the models file: the operational
health rules of :mod:`alerts.health`::

    [models.credit-risk.health]
    volume_drop = 0.5          # fire when a window has < 50 % of the trailing median (on)
    volume_spike = 3.0         # fire when it has > 3x (off unless set)
    trailing_windows = 12      # the expectation: median of this many windows before it
    latency_p99 = "250ms"      # absolute maxima of the window's quantiles (also p50, p95)
    latency_rise = 2.0         # p95 at least 2x the trailing windows' median p95
    stale_after = "5m"         # no event accepted for this long, wall clock (on: 3 windows,
                               # at least 5m)
    max_invalid_ratio = 0.05   # dead-letter share of the topic's events over ratio_window
    max_late_ratio = 0.01      # the model's late events over its late + accepted ones
    max_lag = 100000           # records behind the log end, over the topic's partitions
    ratio_window = "10m"       # period of the two ratios (default: two windows)
    min_events = 30            # fewer events (expected, or in the window) -> no verdict

Any key set to ``false`` turns its check off (``volume_drop = false``, ``stale_after =
false``). Keys in ``[defaults.health]`` apply to every model, a model's own keys win.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alerts.health import QUANTILE_KEYS, HealthRules
from sketches.errors import ConfigError
from streams.durations import parse_duration_s

HEALTH_KEYS = frozenset({
    "volume_drop", "volume_spike", "trailing_windows", *QUANTILE_KEYS, "latency_rise",
    "stale_after", "max_invalid_ratio", "max_late_ratio", "max_lag", "ratio_window",
    "min_events"})


def health_rules(defaults: object, model: object, where: str) -> HealthRules:
    """The merged ``[defaults.health]`` and ``[models.M.health]`` tables."""
    raw: dict[str, Any] = {}
    for table, at in ((defaults, "defaults.health"), (model, f"{where}.health")):
        if table is None:
            continue
        if not isinstance(table, Mapping):
            raise ConfigError(f"{at} must be a table / mapping")
        extra = set(table) - HEALTH_KEYS
        if extra:
            raise ConfigError(f"{at}: unknown keys {sorted(extra)} (known: "
                              f"{', '.join(sorted(HEALTH_KEYS))})")
        raw.update(table)
    at = f"{where}.health"
    off = {k for k, v in raw.items() if v is False}
    base = HealthRules()

    def number(key: str, default: float | None, low: float, high: float = float("inf")
               ) -> float | None:
        if key in off or key not in raw:
            return None if key in off else default
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
                low <= value <= high):
            raise ConfigError(f"{at}.{key}: must be a number in [{low:g}, {high:g}] or false, "
                              f"got {value!r}")
        return float(value)

    def seconds(key: str) -> float | None:
        return None if key in off or key not in raw else parse_duration_s(raw[key],
                                                                            f"{at}.{key}")

    def count(key: str, default: int) -> int:
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{at}.{key}: must be an integer >= 1, got {value!r}")
        return value

    lag = number("max_lag", None, 0)
    ratio = seconds("ratio_window")
    if ratio is not None and ratio <= 0:
        raise ConfigError(f"{at}.ratio_window: must be > 0")
    trailing = count("trailing_windows", base.trailing_windows)
    return HealthRules(
        volume_drop=number("volume_drop", base.volume_drop, 0, 1),
        volume_spike=number("volume_spike", base.volume_spike, 1),
        trailing_windows=trailing,
        min_trailing=min(base.min_trailing, trailing),
        min_events=count("min_events", base.min_events),
        latency_s={k: s for k in sorted(QUANTILE_KEYS) if (s := seconds(k)) is not None},
        latency_rise=number("latency_rise", base.latency_rise, 1),
        stale_after_s=seconds("stale_after"),
        stale_default="stale_after" not in off,
        max_invalid_ratio=number("max_invalid_ratio", None, 0, 1),
        max_late_ratio=number("max_late_ratio", None, 0, 1),
        max_lag=None if lag is None else int(lag),
        ratio_window_s=ratio,
    )
