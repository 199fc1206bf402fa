"""Compare a current dataset profile with a reference: per-column metrics and verdicts.

Verdicts: ``"drift"`` (a rule fired), ``"no_drift"`` (every rule could be evaluated and
none fired) and ``"insufficient_data"`` (too few values to judge the distribution —
never reported as "no drift").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from sketches.column import ColumnProfile, NullProfile
from sketches.columns import new_column
from sketches.metrics import METRIC_TEST, MetricSet, column_metrics, prepare_numeric
from sketches.profile import DatasetProfile
from sketches.reference import Reference
from sketches.rules import DriftRules
from sketches.stats import adjust_pvalues
from sketches.types import ColumnType, MetricValue

Verdict = Literal["drift", "no_drift", "insufficient_data"]
_QUALITY_TESTS = ("null_ratio", "type_mismatch")


@dataclass(frozen=True)
class ColumnDrift:
    """The comparison of one column."""

    name: str
    type: ColumnType
    count: int
    """Values in the current profile's distribution (non-missing, right type, finite)."""
    rows: int
    null_ratio: float
    reference_null_ratio: float
    metrics: Mapping[str, MetricValue]
    p_values: Mapping[str, float]
    """Test name -> p-value adjusted for multiple testing across the report."""
    thresholds: Mapping[str, float]
    verdict: Verdict
    reasons: tuple[str, ...]
    fired: frozenset[str] = frozenset()
    """Names of the metrics whose rule fired (empty unless verdict is "drift")."""

    @property
    def drift(self) -> bool:
        return self.verdict == "drift"

    def to_json_dict(self) -> dict[str, object]:
        return {
            "type": str(self.type),
            "count": self.count,
            "rows": self.rows,
            "null_ratio": _num(self.null_ratio),
            "reference_null_ratio": _num(self.reference_null_ratio),
            "metrics": {k: _num(v.value) for k, v in self.metrics.items()},
            "error_bounds": {k: _num(v.error_bound) for k, v in self.metrics.items()},
            "p_values": {k: _num(v) for k, v in self.p_values.items()},
            "thresholds": {k: _num(v) for k, v in self.thresholds.items()},
            "drift": self.drift,
            "verdict": self.verdict,
            "fired": sorted(self.fired),
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class DriftReport:
    """All columns of one comparison."""

    rows: int
    reference_rows: int
    columns: Mapping[str, ColumnDrift]
    rules: DriftRules = field(default_factory=DriftRules)

    @property
    def drifted(self) -> list[str]:
        return [name for name, c in self.columns.items() if c.verdict == "drift"]

    @property
    def insufficient(self) -> list[str]:
        return [name for name, c in self.columns.items() if c.verdict == "insufficient_data"]

    def to_json_dict(self) -> dict[str, object]:
        """The DESIGN.md §1 ``compare`` JSON shape (plus verdict, error bounds, p-values)."""
        return {
            "rows": self.rows,
            "reference_rows": self.reference_rows,
            "columns": {name: c.to_json_dict() for name, c in self.columns.items()},
            "drifted": self.drifted,
            "insufficient_data": self.insufficient,
        }


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


@dataclass
class _Pending:
    name: str
    ref: ColumnProfile
    cur: ColumnProfile
    metrics: MetricSet
    thresholds: dict[str, float]
    reasons: list[str]
    dist_ok: bool
    quality_ok: bool


def compare_profiles(
    reference: Reference | DatasetProfile,
    current: DatasetProfile,
    rules: DriftRules | None = None,
) -> DriftReport:
    """Drift of ``current`` against ``reference``, column by column, under ``rules``."""
    rules = rules or DriftRules()
    ref_profile = reference.profile if isinstance(reference, Reference) else reference
    learned: dict[str, dict[str, float]] = {}
    if rules.learned and isinstance(reference, Reference):
        learned = reference.learned_thresholds(rules.k_sd)

    prepare_numeric(
        (ref_profile.columns[name], col)
        for name, col in current.columns.items()
        if name in ref_profile.columns
    )
    pending: list[_Pending] = []
    for name in list(ref_profile.columns) + [
        c for c in current.columns if c not in ref_profile.columns
    ]:
        pending.append(_prepare(name, ref_profile, current, rules, learned))

    # Multiple-testing correction over every test that could be evaluated.
    keys: list[tuple[int, str]] = []
    raw: list[float] = []
    for i, p in enumerate(pending):
        for test, pval in p.metrics.tests.items():
            ok = p.quality_ok if test in _QUALITY_TESTS else p.dist_ok
            if ok:
                keys.append((i, test))
                raw.append(pval)
    adjusted: dict[int, dict[str, float]] = {}
    for (i, test), pval in zip(keys, adjust_pvalues(raw, rules.correction), strict=True):
        adjusted.setdefault(i, {})[test] = pval

    columns = {
        p.name: _decide(p, adjusted.get(i, {}), rules, current.rows) for i, p in enumerate(pending)
    }
    return DriftReport(current.rows, ref_profile.rows, columns, rules)


def _prepare(
    name: str,
    ref_profile: DatasetProfile,
    current: DatasetProfile,
    rules: DriftRules,
    learned: Mapping[str, Mapping[str, float]],
) -> _Pending:
    ref = ref_profile.columns.get(name)
    cur = current.columns.get(name)
    reasons: list[str] = []
    if cur is None:
        cur = NullProfile()
        cur.add_missing(current.rows)
        reasons.append("column absent from the current data")
    if ref is None:
        empty = NullProfile()
        return _Pending(name, empty, cur, MetricSet(), {}, ["column not in the reference"],
                        False, False)  # fmt: skip
    col_type = ref.column_type if ref.column_type is not ColumnType.UNKNOWN else cur.column_type
    thresholds = rules.thresholds_for(name, col_type)
    if name in learned:
        thresholds.update(learned[name])
        thresholds.update(rules.column_thresholds.get(name, {}))
    if (
        ColumnType.UNKNOWN not in (ref.column_type, cur.column_type)
        and ref.column_type != cur.column_type
    ):
        # The reference decides a column's type: values of another type are mismatches,
        # so a type change is measured (and alerts) as the ``type_mismatch`` check.
        reasons.append(f"type changed: {ref.column_type} -> {cur.column_type}")
        retyped = new_column(ref.column_type, kll_k=current.kll_k)
        retyped.merge(cur)
        cur = retyped
    metrics = column_metrics(ref, cur)
    dist_ok = min(ref.count, cur.count) >= rules.min_count
    quality_ok = min(ref.total, cur.total) >= rules.min_count
    return _Pending(name, ref, cur, metrics, thresholds, reasons, dist_ok, quality_ok)


def _decide(p: _Pending, pvals: Mapping[str, float], rules: DriftRules, rows: int) -> ColumnDrift:
    reasons = list(p.reasons)
    fired = False
    fired_metrics: set[str] = set()
    for metric, mv in p.metrics.metrics.items():
        test = METRIC_TEST.get(metric, "distribution")
        ok = p.quality_ok if test in _QUALITY_TESTS else p.dist_ok
        if not ok:
            continue
        pval = pvals.get(test, 1.0)
        significant = pval < rules.alpha
        if rules.mode == "pvalue":
            if metric in p.thresholds and significant:
                fired = True
                fired_metrics.add(metric)
                reasons.append(f"{metric} {mv.value:.4g} (test p={pval:.3g} < {rules.alpha:g})")
            continue
        threshold = p.thresholds.get(metric)
        if threshold is None:
            continue
        # Decide on the estimate, less what the metric reaches by chance, less a
        # bound-aware margin capped at a small share of the threshold (rules.py).
        margin = min(mv.error_bound, rules.bound_margin * threshold)
        if mv.value - p.metrics.baselines.get(metric, 0.0) - margin < threshold:
            continue
        if not significant:
            continue
        fired = True
        fired_metrics.add(metric)
        bound = f" ± {mv.error_bound:.2g}" if mv.error_bound else ""
        reasons.append(f"{metric} {mv.value:.4g}{bound} >= {threshold:.4g} (p={pval:.3g})")
        if metric == "null_ratio":
            reasons[-1] += f"; null ratio {p.ref.null_ratio:.2%} -> {p.cur.null_ratio:.2%}"
    verdict: Verdict
    if fired:
        verdict = "drift"
    elif not p.dist_ok or not p.quality_ok:
        verdict = "insufficient_data"
        if not p.reasons:
            reasons.append(
                f"too few values to judge: reference {p.ref.count}, current {p.cur.count} "
                f"(need {rules.min_count})"
            )
    else:
        verdict = "no_drift"
    return ColumnDrift(
        name=p.name,
        type=_column_type(p),
        count=p.cur.count,
        rows=rows,
        null_ratio=p.cur.null_ratio,
        reference_null_ratio=p.ref.null_ratio,
        metrics=dict(p.metrics.metrics),
        p_values=dict(pvals),
        thresholds=dict(p.thresholds),
        verdict=verdict,
        reasons=tuple(reasons),
        fired=frozenset(fired_metrics),
    )


def _column_type(p: _Pending) -> ColumnType:
    return p.ref.column_type if p.ref.column_type is not ColumnType.UNKNOWN else p.cur.column_type
