"""Decision rules: which metric values count as drift.

Defaults alert on *effect size*, because with large windows every p-value is tiny.
A rule fires only when (a) the metric's value, less what it reaches by chance
(``MetricSet.baselines``) and less a margin of ``min(error bound, bound_margin x
threshold)`` (0 by default), reaches the threshold, and (b) the metric's test is
significant after correcting for the number of tests across all columns; the tests
discount sketch error (KS less its bound, chi-square at its smallest possible value), so
neither sketch error nor sampling noise on small windows raises an alert.
``mode="pvalue"`` alerts on (b) alone.

Defaults and their sources (sketches/README.md has the long form):

- numeric ``wasserstein`` >= 0.1 (Wasserstein distance in reference standard deviations):
  Evidently's default drift method for numeric columns with more than 1,000 rows.
- numeric ``psi`` >= 0.25: the conventional "significant shift" level of the population
  stability index (Siddiqi, *Credit Risk Scorecards*, 2006; 0.1–0.25 is "moderate").
- categorical / boolean ``js`` >= 0.1 (Jensen–Shannon distance, base 2): Evidently's
  default for categorical columns with more than 1,000 rows.
- categorical / boolean ``linf`` >= 0.1: any category's share moving by 10 percentage
  points (driftline's choice; catches a change JS dilutes across many categories).
- categorical ``unseen`` >= 0.01: 1 % of current values in categories the reference
  never had (driftline's choice; a data-quality signal, e.g. a new code upstream).
- ``null_ratio`` change >= 0.02 (2 percentage points) and ``type_mismatch`` change
  >= 0.01 (driftline's choice, sized so a constant 1 % null rate never alerts and a
  new 5 % null rate always does).
- tests at ``alpha`` = 0.001 with Bonferroni correction across all tests of a report
  (0.01 let ~3 per 1,000 same-distribution 200-row windows alarm on KS; issue 10).
- ``min_count`` = 100 values on each side, below which the verdict is
  "insufficient_data" (the asymptotic KS / chi-square p-values need it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from sketches.types import ColumnType

Mode = Literal["effect", "pvalue"]
Correction = Literal["none", "bonferroni", "bh"]

DEFAULT_THRESHOLDS: Mapping[ColumnType, Mapping[str, float]] = MappingProxyType(
    {
        ColumnType.NUMERIC: MappingProxyType({"wasserstein": 0.1, "psi": 0.25}),
        ColumnType.CATEGORICAL: MappingProxyType({"js": 0.1, "linf": 0.1, "unseen": 0.01}),
        ColumnType.BOOLEAN: MappingProxyType({"js": 0.1, "linf": 0.1}),
    }
)
DEFAULT_QUALITY: Mapping[str, float] = MappingProxyType({"null_ratio": 0.02, "type_mismatch": 0.01})


@dataclass(frozen=True)
class DriftRules:
    """How a :class:`~sketches.drift.DriftReport` decides drift. Immutable; pass it down."""

    thresholds: Mapping[ColumnType, Mapping[str, float]] = field(
        default_factory=lambda: DEFAULT_THRESHOLDS
    )
    quality: Mapping[str, float] = field(default_factory=lambda: DEFAULT_QUALITY)
    column_thresholds: Mapping[str, Mapping[str, float]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Per-column overrides: column -> metric -> threshold."""
    mode: Mode = "effect"
    alpha: float = 0.001
    correction: Correction = "bonferroni"
    min_count: int = 100
    learned: bool = False
    """Use thresholds learned from the reference's chunks (mean + k_sd * sd) when the
    reference has at least two chunks; fixed thresholds otherwise."""
    k_sd: float = 3.0
    bound_margin: float = 0.0
    """A rule fires when ``value - baseline - min(error_bound, bound_margin * threshold)``
    reaches the threshold: the sketch bound can raise the bar by at most this share of the
    threshold, so a loose (worst-case) bound never costs more sensitivity than that.
    0 by measurement (bench/calibration.py, sketches/README.md): the estimates' actual
    error is ~0.3 % of the threshold (Wasserstein), and 0.01 already cost detections
    against Evidently's rule at 100 k rows. Sketch error is kept out of alerts by the
    tests instead (KS reduced by its bound, chi-square at its smallest possible value)."""

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if not 0 <= self.bound_margin <= 1:
            raise ValueError(f"bound_margin must be in [0, 1], got {self.bound_margin}")
        if self.min_count < 1:
            raise ValueError("min_count must be >= 1")
        if self.mode not in ("effect", "pvalue"):
            raise ValueError(f"unknown mode {self.mode!r}")
        if self.correction not in ("none", "bonferroni", "bh"):
            raise ValueError(f"unknown correction {self.correction!r}")

    def thresholds_for(self, column: str, column_type: ColumnType) -> dict[str, float]:
        """Fixed thresholds that apply to ``column``: defaults, quality, then overrides."""
        out = dict(self.thresholds.get(column_type, {}))
        out.update(self.quality)
        out.update(self.column_thresholds.get(column, {}))
        return out
