"""What one evaluation decides and says: the checks (one per column and metric, each
driving one alert), the alert messages and the stored :class:`ModelResult`.

Pure functions of a drift report, a model's rules and the measurement; the
:class:`~alerts.evaluator.Evaluator` sequences them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from alerts.machine import Emit, Track
from alerts.message import Alert, Window, alert_id, rfc3339
from alerts.results import ColumnResult, MetricResult, ModelResult
from sketches import segments
from sketches.drift import DriftReport
from sketches.numeric import NumericProfile
from sketches.profile import DatasetProfile
from sketches.ranges import breaches as range_breaches
from sketches.ranges import out_of_range
from sketches.types import MetricValue

if TYPE_CHECKING:
    from alerts.evaluator import ModelRules
    from alerts.scopes import Compared
    from alerts.sources import Measurement

QUALITY_METRICS = frozenset({"null_ratio", "type_mismatch", "unseen", "out_of_range"})
LATENCY_COLUMN = "latency_ms"
LATENCY_QUANTILES = (0.5, 0.9, 0.95, 0.99)


@dataclass(frozen=True)
class Check:
    """One (column, metric) decision of an evaluation: what drives one alert."""

    column: str | None  # None: a model-level check (performance, operational)
    metric: str
    value: MetricValue | None
    threshold: float
    breached: bool | None  # None: not enough data
    kind: str | None = None
    """The alert kind when not drift / data_quality (``performance``, ``operational``)."""
    rule: str = ""
    """Model-level checks: the rule kind (min, max, max_drop, band, a detector name)."""
    count: int = 0
    """Model-level checks: what the value rests on (labeled outcomes, scores)."""
    scope: str = ""
    """Alert id suffix of the scope (``@version=8``, ``@version=8@vs=7``; see alerts.scopes)."""
    version: str | None = None
    compare_to: str | None = None
    segment: tuple[str, str] | None = None
    """Segment checks: (column, value) — the value as sent, or ``other``."""
    note: str = ""
    """Model-level checks: the alert summary, when the check words its own (health)."""

    @property
    def quality(self) -> bool:
        return self.kind is None and self.metric in QUALITY_METRICS

    @property
    def alert_kind(self) -> str:
        return self.kind or ("data_quality" if self.quality else "drift")

    def alert_id(self, model: str) -> str:
        return alert_id(model, self.alert_column, self.metric) + self.scope

    @property
    def alert_column(self) -> str:
        """The column part of the alert id (``-`` for model-level checks)."""
        return self.column if self.column is not None else "-"


def report_checks(report: DriftReport, **scope: Any) -> list[Check]:
    """One check per (column, metric) of ``report``; ``scope``: Check fields of them all."""
    return [
        Check(col.name, metric, col.metrics.get(metric), threshold,
              None if col.verdict == "insufficient_data" else metric in col.fired, **scope)
        for col in report.columns.values()
        for metric, threshold in col.thresholds.items()
    ]


def range_checks(cfg: ModelRules, current: DatasetProfile, **scope: Any) -> list[Check]:
    checks = []
    for column, (lo, hi) in cfg.ranges.items():
        value = out_of_range(current.columns.get(column), lo, hi)
        breached = None if value is None else range_breaches(value, cfg.max_out_of_range)
        checks.append(Check(column, "out_of_range", value, cfg.max_out_of_range, breached,
                            **scope))
    return checks


def build_alert(
    cfg: ModelRules, version: str, m: Measurement, check: Check, new: Track, old: Track,
    emit: Emit, severity: str, now: float, rows: int,
) -> Alert:
    value = None if check.value is None else round(check.value.value, 6)
    firing = emit is not Emit.RESOLVED
    since = new.since if firing else old.since
    span = _span((m.end_ms - m.start_ms) / 1000)
    what = "data quality" if check.quality else "drifted"
    shown = "n/a" if value is None else f"{value:.4g}"
    if check.column is None:
        summary = check.note or _model_summary(cfg.model, check, shown, span, firing)
    elif firing:
        summary = (f"{check.column} {what}: {check.metric} {shown} >= {check.threshold:.4g} "
                   f"over the last {span} (n={rows})")
    else:
        summary = (f"{check.column} back to normal: {check.metric} {shown} < "
                   f"{check.threshold:.4g} over the last {span}")
    seg = check.segment
    if seg is not None:
        summary = f"segment {seg[0]}={seg[1]}: {summary}"
    if check.compare_to is not None:
        summary = f"version {check.version} vs {check.compare_to}: {summary}"
    elif "@version=" in check.scope:
        summary = f"version {check.version}: {summary}"
    return Alert(
        id=check.alert_id(cfg.model),
        state="firing" if firing else "resolved",
        severity=severity,
        kind=check.alert_kind,
        model=cfg.model,
        version=check.version or version,
        column=check.column,  # None for model-level checks
        metric=check.metric,
        value=value,
        threshold=check.threshold,
        window=Window(rfc3339(m.start_ms / 1000), rfc3339(m.end_ms / 1000)),
        since=rfc3339(since) if since is not None else None,
        ts=rfc3339(now),
        summary=summary,
        repeat=emit is Emit.REPEAT,
        compare_to=check.compare_to,
        segment=None if seg is None else {"column": seg[0], "value": seg[1]},
    )


_RULE_WORDS = {"min": "below the minimum", "max": "above the maximum",
               "max_drop": "worse than the reference by more than",
               "band": "outside the reference's band, edge"}


def _model_summary(model: str, check: Check, shown: str, span: str, firing: bool) -> str:
    if check.metric == "concept_drift":
        return (f"{model}: {check.rule} detected a change in the error stream "
                f"({shown} detections, {check.count} outcomes)" if firing else
                f"{model}: no new change in the error stream ({check.rule})")
    words = _RULE_WORDS.get(check.rule, check.rule)
    if firing:
        return (f"{model} {check.metric} {shown} {words} {check.threshold:.4g} over the "
                f"last {span} (n={check.count})")
    return f"{model} {check.metric} back to normal: {shown} over the last {span}"


def _span(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


def latency(profile: DatasetProfile) -> dict[str, float]:
    col = profile.columns.get(LATENCY_COLUMN)
    if not isinstance(col, NumericProfile) or col.count == 0:
        return {}
    values = col.quantiles(list(LATENCY_QUANTILES))
    return {str(q): float(v) for q, v in zip(LATENCY_QUANTILES, values, strict=True)}


def build_result(
    model: str, version: str, m: Measurement, report: DriftReport, checks: list[Check],
    now: float, firing: dict[str, str], latency: dict[str, float],
) -> ModelResult:
    metrics: dict[str, dict[str, MetricResult]] = {}
    for c in checks:
        if c.value is not None and c.column is not None:
            metrics.setdefault(c.column, {})[c.metric] = MetricResult(
                c.value.value, c.value.error_bound, c.threshold, c.breached)
    columns = {
        c.name: ColumnResult(
            column=c.name, type=str(c.type), count=c.count,
            null_ratio=c.null_ratio if c.rows else None, verdict=c.verdict,
            metrics={
                **{k: MetricResult(v.value, v.error_bound, None, None)
                   for k, v in c.metrics.items()},
                **metrics.get(c.name, {}),
            },
            reasons=list(c.reasons),
        )
        for c in report.columns.values()
        if c.name != LATENCY_COLUMN
    }
    for col in columns.values():
        if any(mr.breached for mr in col.metrics.values()) and col.verdict != "drift":
            columns[col.column] = msgspec.structs.replace(
                col, verdict="drift", reasons=[*col.reasons, "out of its allowed range"])
    verdicts = {c.verdict for c in columns.values()}
    status = "drift" if "drift" in verdicts else (
        "insufficient_data" if verdicts and verdicts <= {"insufficient_data"} else "ok")
    if m.incomplete:
        status = "incomplete"
    return ModelResult(
        model=model, version=version, status=status, window_start=m.start_ms / 1000,
        window_end=m.end_ms / 1000, rows=report.rows, evaluated_at=now, columns=columns,
        firing=sorted(firing), severities=firing, latency_ms=latency,
    )


def scoped_result(model: str, m: Measurement, compared: list[Compared], now: float,
                  firing: dict[str, str]) -> ModelResult:
    """The stored result: the primary scope's, the others in ``scopes``, the traffic split."""
    results = {}
    for c in compared:
        mine = {k: v for k, v in firing.items() if k.endswith(c.scope.suffix) and
                (c.scope.suffix or "@" not in k.split("/", 2)[-1])}
        if c.report is not None:
            r = build_result(model, c.scope.version, m, c.report, c.checks, now, mine, c.latency)
        else:
            r = ModelResult(model, c.scope.version, "no_reference", m.start_ms / 1000,
                            m.end_ms / 1000, c.rows, now, firing=sorted(mine),
                            severities=mine, latency_ms=c.latency)  # fmt: skip
        results[c.scope.suffix] = r
    main = results.pop(compared[0].scope.suffix)
    rows = version_rows(m)
    traffic = rows if len(rows) > 1 else {}
    return msgspec.structs.replace(main, firing=sorted(firing), severities=firing,
                                   scopes=results, traffic=traffic)


def version_rows(m: Measurement) -> dict[str, int]:
    """Rows per version in the measurement window (its traffic split; no segments)."""
    return {v: p.rows for v, p in m.versions.items() if segments.SEP not in v}
