"""Performance checks of one model per evaluation: realized metrics from the label join's
per-window aggregates, CBPE estimates from the window's scores, label health, and the
concept-drift detectors on the error stream. Every finding is a :class:`Check` of kind
``performance`` (``label_ratio``: ``operational``) that drives an alert through the same
state machine as drift; alert ids are ``model/-/metric`` (model-level, ``column: null``).

Realized performance is measured over the *prediction* windows of the last ``measure``
(labels arrive later and are added to the window of their prediction). The label ratio
is judged on windows that ended ``label_wait`` ago or more — recent windows are expected
to be short of labels.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, cast

from alerts.detectors import DetectorState
from alerts.outcome import Check
from alerts.results import MetricResult, PerformanceResult
from sketches import segments
from sketches.cbpe import EstimatedPerformance, estimate_from_profile
from sketches.errors import StateFormatError
from sketches.numeric import NumericProfile
from sketches.performance import Fields, PerformanceWindow, realized
from sketches.performance_rules import PerformanceRules, performance_checks
from sketches.profile import DatasetProfile
from sketches.reference import Reference
from sketches.reference_performance import ReferencePerformance
from sketches.types import MetricValue

log = logging.getLogger(__name__)

PREDICTION_COLUMN = "prediction"
OUTCOMES_PER_EVALUATION = 200_000


class PerformanceSource(Protocol):
    """The label join's state (:class:`streams.join.JoinStore`)."""

    def windows(self, model: str, start_ms: int, end_ms: int
                ) -> Mapping[str, list[tuple[int, dict[str, str]]]]: ...
    def counters(self, model: str) -> dict[str, int]: ...
    def outcomes(self, model: str, after: str, count: int = ...
                 ) -> list[tuple[str, str, float, int | None]]: ...
    def trim(self, model: str, upto: str) -> None: ...
    def expire(self, model: str) -> int: ...


@dataclass(frozen=True)
class PerformanceConfig:
    """``[models.M.performance]`` as the evaluator uses it (see README, "Ground truth")."""

    task: str = "binary"
    positive: str = "1"
    threshold: float = 0.5
    min_labels: int = 200
    measure_ms: int | None = None
    """None: the model's drift measurement window."""
    label_wait_ms: int = 30 * 60_000
    min_label_ratio: float = 0.0
    detector: str = "adwin"
    estimate: bool = True
    rules: PerformanceRules = field(default_factory=PerformanceRules)
    hold_s: float = 3600.0
    """How long a detector's detection keeps ``concept_drift`` firing."""


@dataclass
class PerformanceOutcome:
    checks: list[Check]
    result: PerformanceResult
    detector: DetectorState | None


def estimated(cfg: PerformanceConfig, reference: Reference | None,
              current: DatasetProfile) -> EstimatedPerformance | None:
    """CBPE on the window's ``prediction`` scores (binary models with a calibrated
    reference); computed when the measurement changes."""
    perf = reference.performance if reference is not None else None
    col = current.columns.get(PREDICTION_COLUMN)
    if (not cfg.estimate or cfg.task != "binary" or perf is None or perf.calibrator is None
            or not isinstance(col, NumericProfile) or col.count == 0):
        return None
    return estimate_from_profile(perf.calibrator, col, cfg.threshold)


def evaluate(cfg: PerformanceConfig, model: str, source: PerformanceSource, *,
             end_ms: int, measure_ms: int, reference: Reference | None,
             estimate: EstimatedPerformance | None, detector: bytes | None, key: bytes,
             now: float) -> PerformanceOutcome:
    span = cfg.measure_ms or measure_ms
    found = source.windows(model, end_ms - span - cfg.label_wait_ms, end_ms)
    recent: list[Fields] = []
    waited: list[Fields] = []
    by_segment: dict[tuple[str, str], list[Fields]] = {}
    for version, rows in found.items():
        seg = segments.parse(version)
        for start, fields in rows:
            if seg is not None:  # a segment's windows: its own checks, not the model's
                if start >= end_ms - span:
                    by_segment.setdefault(seg[1:], []).append(cast(Fields, fields))
                continue
            if start >= end_ms - span:
                recent.append(cast(Fields, fields))
            if start < end_ms - cfg.label_wait_ms:
                waited.append(cast(Fields, fields))
    window = PerformanceWindow.total(recent)
    ref_perf = reference.performance if reference is not None else None
    checks = _checks(cfg, window, estimate, ref_perf)
    seg_metrics: dict[str, dict[str, MetricResult]] = {}
    for (column, tok), parts in sorted(by_segment.items()):
        # realized rules only: the reference's performance is not kept per segment
        named = (column, segments.value_of(tok))
        suffix = segments.suffix(column, tok)
        found_checks = _checks(cfg, PerformanceWindow.total(parts), None, None)
        checks += [dataclasses.replace(c, scope=suffix, segment=named) for c in found_checks]
        seg_metrics[suffix] = {c.metric: MetricResult(c.value.value, c.value.error_bound)
                               for c in found_checks if c.value is not None}
    checks += _label_ratio(cfg, PerformanceWindow.total(waited))
    state = _detector(cfg, model, source, detector, key, now)
    if state is not None:
        held = state.held(now, cfg.hold_s)
        total = sum(len(v) for v in state.detections.values())
        checks.append(Check(None, "concept_drift", MetricValue(float(total), 0.0), 0.0,
                            held, kind="performance", rule=cfg.detector,
                            count=sum(state.seen.values())))
    real = realized(window, cfg.task, positive=cfg.positive,  # type: ignore[arg-type]
                    min_labels=cfg.min_labels)
    result = PerformanceResult(
        state=real.state, labels=real.labels, predictions=real.predictions,
        label_ratio=real.label_ratio,
        metrics={k: MetricResult(m.value.value, m.value.error_bound)
                 for k, m in real.metrics.items() if m.value is not None},
        estimated={k: MetricResult(v.value, v.error_bound)
                   for k, v in (estimate.metrics() if estimate else {}).items() if v is not None},
        reference={k: m.value for k, m in (ref_perf.metrics if ref_perf else {}).items()
                   if m.value is not None},
        counters={**source.counters(model),
                  **({"trimmed": state.trimmed} if state is not None else {})},
        delay_s={str(q): v.value for q, v in real.delay_quantiles.items()},
        detections=0 if state is None else sum(len(v) for v in state.detections.values()),
        segments=seg_metrics,
    )
    return PerformanceOutcome(checks, result, state)


def _checks(cfg: PerformanceConfig, window: PerformanceWindow,
            estimate: EstimatedPerformance | None, ref_perf: ReferencePerformance | None
            ) -> list[Check]:
    out = []
    for pc in performance_checks(window, estimate, ref_perf, cfg.rules, cfg.min_labels,
                                 task=cfg.task, positive=cfg.positive):  # type: ignore[arg-type]
        value = None if pc.value is None else MetricValue(pc.value, pc.error_bound)
        out.append(Check(None, pc.metric, value, pc.threshold or 0.0, pc.breached,
                         kind="performance", rule=pc.kind, count=int(pc.count)))
    return out


def _label_ratio(cfg: PerformanceConfig, waited: PerformanceWindow) -> list[Check]:
    if cfg.min_label_ratio <= 0:
        return []
    ratio = waited.label_ratio
    enough = waited.predictions >= cfg.min_labels and ratio is not None
    value = MetricValue(ratio, 0.0) if ratio is not None else None
    return [Check(None, "label_ratio", value, cfg.min_label_ratio,
                  (ratio < cfg.min_label_ratio) if enough and ratio is not None else None,
                  kind="operational", rule="min", count=waited.predictions)]


def _detector(cfg: PerformanceConfig, model: str, source: PerformanceSource,
              blob: bytes | None, key: bytes, now: float) -> DetectorState | None:
    if cfg.detector == "none":
        return None
    state = DetectorState()
    if blob:
        try:
            state = DetectorState.from_bytes(blob, key)
        except StateFormatError as exc:
            log.error("model %s: starting its change detectors afresh: %s", model, exc)
            state = DetectorState(last_n=None)  # what it read before is not "trimmed"
    rows = source.outcomes(model, state.position, OUTCOMES_PER_EVALUATION)
    trimmed = state.trimmed
    for version, n in state.update(rows, cfg.detector, cfg.task == "regression", now):
        log.warning("model %s version %s: %s detected a change in the error stream after "
                    "%d outcomes", model, version, cfg.detector, n)
    if state.trimmed > trimmed:
        log.warning("model %s: %d joined outcomes were trimmed from the capped outcome "
                    "stream before the change detectors read them: the evaluator fell "
                    "behind (%d so far)", model, state.trimmed - trimmed, state.trimmed)
    return state
