"""Column types and the small value objects shared by the whole package."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ColumnType(enum.StrEnum):
    """What a column holds; decides which profile and which drift metrics apply."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"
    UNKNOWN = "unknown"
    """Only missing values seen so far; becomes a real type at the first non-missing value."""


@dataclass(frozen=True, slots=True)
class MetricValue:
    """A drift metric and the bound on its error caused by the sketches (0 when exact)."""

    value: float
    error_bound: float = 0.0

    @property
    def lower(self) -> float:
        """The smallest value consistent with the sketch error (never below 0)."""
        return max(0.0, self.value - self.error_bound)
