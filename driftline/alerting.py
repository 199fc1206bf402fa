"""The alerting part of the models file: measurement window, rules and alert policy.

Same file as :mod:`driftline.models` (TOML or YAML); these keys sit beside ``window`` /
``retention`` / ``types``, in ``[defaults]`` or per model::

    [defaults]
    measure = "1h"        # measurement window: the merge of the windows in the last 1h
    min_count = 100       # fewer values than this on either side -> "insufficient_data"
    for = 1               # consecutive breaching evaluations before an alert fires
    cooldown = "0s"       # after a resolution, ignore breaches this long
    repeat = "1h"         # re-send a firing alert this often (omit: never)
    severity = "critical"           # of drift alerts
    quality_severity = "warning"    # of null_ratio / type_mismatch / unseen alerts

    [models.credit-risk.rules]
    mode = "effect"       # "effect": value - error bound >= threshold (and significant)
                          # "pvalue": test p-value < alpha after correction
    alpha = 0.001
    correction = "bonferroni"   # or "bh" (Benjamini-Hochberg) or "none"
    learned = false       # thresholds learned from the reference's chunks (mean + k_sd*sd)
    k_sd = 3.0
    thresholds = { psi = 0.2, js = 0.15 }           # every column of the model
    columns = { income = { psi = 0.1 } }            # one column

    [models.credit-risk]
    ranges = { age = [18, 120], income = [0, "inf"] }   # allowed values (data quality)
    max_out_of_range = 0.0    # share outside its range tolerated (0: any value alerts)

    [models.credit-risk.reference]   # what windows are compared with (sketches.baseline)
    kind = "trailing"     # "training" (the stored reference; default) or "trailing":
    span = "24h"          # the model's own production over this much event time,
    offset = "0s"         # ending this long before the measurement window starts
    exclude = [["2026-12-24T00:00:00Z", "2026-12-27T00:00:00Z"]]   # never taken
    min_rows = 1000       # a baseline with fewer rows: "no_reference", never "no drift"

Every key is checked: an unknown key, metric or negative threshold stops the worker
with one message before it starts. Columns named in ``columns`` are checked against the
model's reference when the worker starts (:func:`check_columns`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from alerts.detectors import DETECTORS
from alerts.evaluator import ModelRules
from alerts.machine import Policy
from alerts.performance import PerformanceConfig
from driftline.health_config import health_rules
from driftline.models import ALERTING_KEYS, _table, load_raw, parse_duration_ms
from sketches.baseline import DEFAULT_MIN_ROWS, KINDS, ReferenceChoice
from sketches.errors import ConfigError
from sketches.metrics import METRIC_TEST
from sketches.performance_rules import PerformanceRules
from sketches.reference import Reference
from sketches.rules import DEFAULT_THRESHOLDS, DriftRules
from sketches.types import ColumnType
from streams.join_items import label_text

RULE_KEYS = frozenset({"mode", "alpha", "correction", "learned", "k_sd", "thresholds", "columns"})
SEVERITIES = ("info", "warning", "critical")
DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {"measure": "1h", "min_count": 100, "for": 1, "cooldown": "0s", "repeat": None,
     "severity": "critical", "quality_severity": "warning", "rules": {}, "ranges": {},
     "max_out_of_range": 0.0, "reference": {}}
)


def _bound(value: object, where: str) -> float | None:
    if isinstance(value, str) and value.strip().lstrip("+-") in ("inf", "infinity"):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ConfigError(f"{where}: a range bound must be a number or \"inf\" / \"-inf\", "
                          f"got {value!r}")
    return float(value)


def _ranges(raw: object, where: str) -> dict[str, tuple[float | None, float | None]]:
    out: dict[str, tuple[float | None, float | None]] = {}
    for column, pair in _table(raw, where).items():
        if not isinstance(pair, list) or len(pair) != 2:
            raise ConfigError(f"{where}.{column}: expected [low, high], got {pair!r}")
        lo, hi = _bound(pair[0], f"{where}.{column}"), _bound(pair[1], f"{where}.{column}")
        if lo is not None and hi is not None and lo > hi:
            raise ConfigError(f"{where}.{column}: low {lo:g} is above high {hi:g}")
        out[column] = (lo, hi)
    return out


def _thresholds(raw: object, where: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for metric, value in _table(raw, where).items():
        if metric not in METRIC_TEST:
            raise ConfigError(f"{where}: unknown metric {metric!r} "
                              f"(known: {', '.join(sorted(METRIC_TEST))})")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{where}.{metric}: threshold must be a number >= 0, got {value!r}")
        out[metric] = float(value)
    return out


def _rules(raw: Mapping[str, Any], min_count: int, where: str) -> DriftRules:
    extra = set(raw) - RULE_KEYS
    if extra:
        raise ConfigError(f"{where}: unknown keys {sorted(extra)}")
    model_wide = _thresholds(raw.get("thresholds", {}), f"{where}.thresholds")
    thresholds = {
        ctype: MappingProxyType({**per_type, **{k: v for k, v in model_wide.items()}})
        for ctype, per_type in DEFAULT_THRESHOLDS.items()
    }
    columns = {
        col: MappingProxyType(_thresholds(t, f"{where}.columns.{col}"))
        for col, t in _table(raw.get("columns", {}), f"{where}.columns").items()
    }
    try:
        return DriftRules(
            thresholds=MappingProxyType(thresholds),
            column_thresholds=MappingProxyType(columns),
            mode=raw.get("mode", "effect"),
            alpha=float(raw.get("alpha", DriftRules.alpha)),
            correction=raw.get("correction", "bonferroni"),
            min_count=min_count,
            learned=bool(raw.get("learned", False)),
            k_sd=float(raw.get("k_sd", 3.0)),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def model_rules(name: str, spec: Mapping[str, Any], defaults: Mapping[str, Any],
                where: str) -> ModelRules:
    merged = {**DEFAULTS, **{k: v for k, v in defaults.items() if k in ALERTING_KEYS}}
    merged.update({k: v for k, v in spec.items() if k in ALERTING_KEYS})
    for key in ("severity", "quality_severity"):
        if merged[key] not in SEVERITIES:
            raise ConfigError(f"{where}.{key}: {merged[key]!r} is not one of {SEVERITIES}")
    min_count = merged["min_count"]
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise ConfigError(f"{where}.min_count: must be an integer >= 1, got {min_count!r}")
    for_n = merged["for"]
    if isinstance(for_n, bool) or not isinstance(for_n, int) or for_n < 1:
        raise ConfigError(f"{where}.for: must be an integer >= 1, got {for_n!r}")
    repeat = merged["repeat"]
    policy = Policy(
        for_evaluations=for_n,
        cooldown_s=parse_duration_ms(merged["cooldown"], f"{where}.cooldown") / 1000,
        repeat_s=None if repeat is None else parse_duration_ms(repeat, f"{where}.repeat") / 1000,
    )
    share = merged["max_out_of_range"]
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise ConfigError(f"{where}.max_out_of_range: must be a share in [0, 1], got {share!r}")
    rules_raw = dict(_table(defaults.get("rules", {}), f"{where}.rules"))
    rules_raw.update(_table(merged["rules"], f"{where}.rules"))
    return ModelRules(
        model=name,
        measure_ms=parse_duration_ms(merged["measure"], f"{where}.measure"),
        rules=_rules(rules_raw, min_count, f"{where}.rules"),
        policy=policy,
        drift_severity=merged["severity"],
        quality_severity=merged["quality_severity"],
        ranges=_ranges(merged["ranges"], f"{where}.ranges"),
        max_out_of_range=float(share),
        compare_versions=_versions_pair(spec.get("compare_versions"), f"{where}.compare_versions"),
        reference=reference_choice(_table(merged["reference"], f"{where}.reference"),
                                   f"{where}.reference"),
        performance=(performance_config(_table(spec["performance"], f"{where}.performance"),
                                        f"{where}.performance")
                     if "performance" in spec else None),
        health=health_rules(defaults.get("health"), spec.get("health"), where),
    )


REFERENCE_KEYS = frozenset({"kind", "span", "offset", "exclude", "min_rows"})


def _instant_ms(value: object, where: str) -> int:
    """An RFC 3339 time with a zone (a string, or a TOML offset date-time) -> epoch ms."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"{where}: {value!r} is not an RFC 3339 time like "
                              "2026-12-24T00:00:00Z") from None
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ConfigError(f"{where}: give an RFC 3339 time with its zone, e.g. "
                          f"2026-12-24T00:00:00Z; got {value!r}")
    return round(value.timestamp() * 1000)


def reference_choice(raw: Mapping[str, Any], where: str) -> ReferenceChoice:
    """``[models.M.reference]``: the training reference (default) or a trailing baseline."""
    extra = set(raw) - REFERENCE_KEYS
    if extra:
        raise ConfigError(f"{where}: unknown keys {sorted(extra)}")
    kind = raw.get("kind", "training")
    if kind not in KINDS:
        raise ConfigError(f"{where}.kind: {kind!r} is not one of {KINDS}")
    exclude = raw.get("exclude", [])
    if not isinstance(exclude, list):
        raise ConfigError(f"{where}.exclude: expected a list of [start, end] pairs")
    ranges = []
    for i, pair in enumerate(exclude):
        if not isinstance(pair, list) or len(pair) != 2:
            raise ConfigError(f"{where}.exclude[{i}]: expected [start, end], got {pair!r}")
        lo, hi = (_instant_ms(v, f"{where}.exclude[{i}]") for v in pair)
        if lo >= hi:
            raise ConfigError(f"{where}.exclude[{i}]: the start is not before the end")
        ranges.append((lo, hi))
    min_rows = raw.get("min_rows", DEFAULT_MIN_ROWS)
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
        raise ConfigError(f"{where}.min_rows: must be an integer >= 1, got {min_rows!r}")
    span = parse_duration_ms(raw.get("span", "24h"), f"{where}.span")
    if span <= 0:
        raise ConfigError(f"{where}.span: must be longer than 0")
    return ReferenceChoice(kind=kind, span_ms=span,
                           offset_ms=parse_duration_ms(raw.get("offset", "0s"), f"{where}.offset"),
                           exclude=tuple(sorted(ranges)), min_rows=min_rows)


def _versions_pair(raw: object, where: str) -> tuple[str, str] | None:
    """``compare_versions = ["7", "8"]``: (baseline, canary)."""
    if raw is None:
        return None
    if (not isinstance(raw, list | tuple) or len(raw) != 2
            or not all(isinstance(v, str | int) and not isinstance(v, bool) for v in raw)
            or str(raw[0]) == str(raw[1])):
        raise ConfigError(f"{where}: give two different versions, e.g. [\"7\", \"8\"] "
                          "(baseline first, then the canary)")
    return str(raw[0]), str(raw[1])


def performance_config(raw: Mapping[str, Any], where: str) -> PerformanceConfig:
    """The evaluator's part of ``[models.M.performance]`` (the join's: driftline.models)."""
    detector = str(raw.get("detector", "adwin"))
    if detector not in DETECTORS:
        raise ConfigError(f"{where}.detector: {detector!r} is not one of {DETECTORS}")
    task = str(raw.get("task", "binary"))
    if detector == "ddm" and task == "regression":
        raise ConfigError(f"{where}.detector: ddm watches 0/1 errors; use adwin or "
                          "page_hinkley for a regression model")
    try:
        ratio = float(raw.get("min_label_ratio", 0.0))
        min_labels = int(raw.get("min_labels", 200))
        if not 0 <= ratio <= 1 or min_labels < 1:
            raise ValueError("min_label_ratio must be in [0, 1] and min_labels >= 1")
        return PerformanceConfig(
            task=task,
            positive=label_text(raw.get("positive", "1")),
            threshold=float(raw.get("threshold", 0.5)),
            min_labels=min_labels,
            measure_ms=(parse_duration_ms(raw["measure"], f"{where}.measure")
                        if "measure" in raw else None),
            label_wait_ms=parse_duration_ms(raw.get("label_wait", "30m"), f"{where}.label_wait"),
            min_label_ratio=ratio,
            detector=detector,
            estimate=bool(raw.get("estimate", True)),
            rules=PerformanceRules.parse(_table(raw.get("rules", {}), f"{where}.rules")),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def load_alerting(path: str | Path | None) -> tuple[dict[str, ModelRules], ModelRules]:
    """Rules per model in the models file, and the rules for models not listed in it."""
    if path is None:
        return {}, model_rules("*", {}, {}, "defaults")
    data = load_raw(path)
    defaults = _table(data.get("defaults", {}), f"{path}: defaults")
    fallback = model_rules("*", {}, defaults, f"{path}: defaults")
    models = {
        name: model_rules(name, _table(spec, f"{path}: models.{name}"), defaults,
                          f"{path}: models.{name}")
        for name, spec in _table(data.get("models", {}), f"{path}: models").items()
    }
    return models, fallback


def for_model(name: str, models: Mapping[str, ModelRules], fallback: ModelRules) -> ModelRules:
    return models.get(name) or replace(fallback, model=name)


def check_columns(rules: ModelRules, reference: Reference) -> None:
    """Column overrides and ranges must name columns the reference has."""
    named = set(rules.rules.column_thresholds) | set(rules.ranges)
    unknown = sorted(named - set(reference.profile.columns))
    if unknown:
        raise ConfigError(
            f"model {rules.model}: rules name unknown column(s) {unknown}; the reference has "
            f"{sorted(reference.profile.columns)}"
        )
    cols = reference.profile.columns
    not_numeric = sorted(c for c in rules.ranges if cols[c].column_type != ColumnType.NUMERIC)
    if not_numeric:
        raise ConfigError(f"model {rules.model}: ranges need numeric columns; {not_numeric} "
                          "are not numeric in the reference")
