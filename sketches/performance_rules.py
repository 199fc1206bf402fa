"""Performance rules (the ``rules`` table of a model's ``performance`` section) and checks.

Rule kinds per metric (/tmp/perf_contract.md): ``min`` (fires when value < min), ``max``
(value > max), ``max_drop`` (score metrics: reference - value > max_drop; error metrics:
value - reference > max_drop) and ``band`` (k: outside the reference's chunk mean +- k sd).
Like the drift rules, a rule fires only when the whole interval value +- error bound is
on the wrong side of its threshold, so sketch error alone never raises an alert.

``breached`` is None, never False, when the check cannot be made: fewer labeled outcomes
than ``min_labels`` (realized metrics), no estimate (CBPE metrics), no reference value for
a ``max_drop`` / ``band`` rule, or a metric undefined on the window.

``estimated_*`` metrics are compared with the reference's *realized* value and chunk
spread (on a calibrated reference the two agree; the reference's own estimate would be
in-sample).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from sketches.errors import ConfigError
from sketches.performance import PerformanceWindow, Task, realized
from sketches.types import MetricValue

if TYPE_CHECKING:
    from sketches.cbpe import EstimatedPerformance
    from sketches.reference_performance import ReferenceMetric, ReferencePerformance

SCORE_METRICS = frozenset({"accuracy", "precision", "recall", "f1", "auc"})
ERROR_METRICS = frozenset({"mae", "rmse"})
ESTIMATED_METRICS = frozenset(f"estimated_{m}" for m in SCORE_METRICS)
METRICS = SCORE_METRICS | ERROR_METRICS | ESTIMATED_METRICS
KINDS = ("min", "max", "max_drop", "band")


@dataclass(frozen=True)
class PerformanceRules:
    """metric -> rule kind -> parameter. Immutable; build it with :meth:`parse`."""

    rules: Mapping[str, Mapping[str, float]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @classmethod
    def parse(cls, table: Mapping[str, object]) -> PerformanceRules:
        """From the TOML ``rules`` table, e.g. ``{"accuracy": {"min": 0.8}}``; raises
        :class:`ConfigError` on an unknown metric or kind or a bad parameter."""
        out: dict[str, Mapping[str, float]] = {}
        for metric, spec in table.items():
            if metric not in METRICS:
                raise ConfigError(
                    f"performance rule for unknown metric {metric!r} "
                    f"(use one of: {', '.join(sorted(METRICS))})"
                )
            if not isinstance(spec, Mapping) or not spec:
                raise ConfigError(
                    f"performance rule {metric!r} must be a table like {{ min = 0.8 }}"
                )
            kinds: dict[str, float] = {}
            for kind, raw in spec.items():
                if kind not in KINDS:
                    raise ConfigError(
                        f"performance rule {metric}.{kind}: unknown kind (use {', '.join(KINDS)})"
                    )
                if isinstance(raw, bool) or not isinstance(raw, int | float):
                    raise ConfigError(f"performance rule {metric}.{kind} must be a number")
                value = float(raw)
                if not math.isfinite(value) or (kind in ("max_drop", "band") and value < 0):
                    raise ConfigError(
                        f"performance rule {metric}.{kind} must be finite"
                        + (" and >= 0" if kind in ("max_drop", "band") else "")
                    )
                kinds[kind] = value
            out[metric] = MappingProxyType(kinds)
        return cls(MappingProxyType(out))


@dataclass(frozen=True, slots=True)
class PerfCheck:
    """One rule applied to one metric. ``threshold`` is the limit the value was held
    against (for ``band`` the nearer edge); ``breached`` None: could not be checked."""

    metric: str
    kind: str
    value: float | None
    error_bound: float
    threshold: float | None
    breached: bool | None
    count: float = 0
    """Labeled outcomes (realized) or scores (estimated) the value rests on."""


def performance_checks(
    window: PerformanceWindow,
    estimated: EstimatedPerformance | None,
    reference: ReferencePerformance | None,
    rules: PerformanceRules,
    min_labels: int,
    *,
    task: Task | None = None,
    positive: str | None = None,
) -> list[PerfCheck]:
    """Every rule of ``rules`` on the realized metrics of ``window`` and the CBPE
    ``estimated`` ones. ``task`` / ``positive`` default to the reference's."""
    if task is None:
        if reference is None:
            raise ConfigError("performance checks need the task (no reference to take it from)")
        task = reference.task
    pos = positive if positive is not None else (reference.positive if reference else "1")
    real = realized(window, task, positive=pos, min_labels=min_labels)
    out = []
    for metric, kinds in rules.rules.items():
        value: MetricValue | None
        if metric in ESTIMATED_METRICS:
            value = estimated.metric(metric) if estimated is not None else None
            count = estimated.n if estimated is not None else 0.0
        else:
            m = real.metrics.get(metric)
            value, count = (m.value, m.count) if m is not None else (None, real.labels)
        base = metric.removeprefix("estimated_")
        ref = reference.metrics.get(base) if reference is not None else None
        higher_is_better = base in SCORE_METRICS
        for kind, param in kinds.items():
            out.append(_check(metric, kind, param, value, count, ref, higher_is_better))
    return out


def _check(
    metric: str,
    kind: str,
    param: float,
    value: MetricValue | None,
    count: float,
    ref: ReferenceMetric | None,
    higher_is_better: bool,
) -> PerfCheck:
    v = value.value if value is not None else None
    bound = value.error_bound if value is not None else 0.0
    lo, hi = (v - bound, v + bound) if v is not None else (math.nan, math.nan)
    threshold: float | None = None
    breached: bool | None = None
    ref_value = ref.value if ref is not None else None
    if kind == "min":
        threshold = param
        breached = hi < param if v is not None else None
    elif kind == "max":
        threshold = param
        breached = lo > param if v is not None else None
    elif kind == "max_drop" and ref_value is not None:
        threshold = ref_value - param if higher_is_better else ref_value + param
        if v is not None:
            breached = hi < threshold if higher_is_better else lo > threshold
    elif kind == "band" and ref is not None:
        mean, sd = ref.chunk_mean, ref.chunk_sd
        if mean is not None and sd is not None:
            low, high = mean - param * sd, mean + param * sd
            threshold = low if v is None or v <= mean else high
            if v is not None:
                breached = hi < low or lo > high
    return PerfCheck(metric, kind, v, bound, threshold, breached, count)
