"""A model's reference choice: its training reference, or a trailing production baseline.

Pure arithmetic of ``[models.M.reference]`` (parsed by ``driftline.alerting``; read from
Redis by :mod:`streams.baseline`): no Redis, no clock. For a measurement window starting
at ``s`` a trailing baseline covers the event time ``[s - offset - span, s - offset)``:

- ``offset = 0``: the ``span`` just before the measurement (e.g. the previous 24 h);
- the same hours last week: ``span`` = the measurement, ``offset`` = 7 d - the measurement
  (``167h`` for a 1 h measurement; ``offset = 7d`` takes the ``span`` *before* those hours).

What it is made of is whole stored items — windows, and the hourly / daily records they
are rolled up into (``streams.compaction``) — so it lives on the model's window grid: the
windows starting in the range (:meth:`ReferenceChoice.grid`). An item that reaches past
the grid (a roll-up straddling either end) or overlaps an excluded range is left out
*whole* (:meth:`ReferenceChoice.takes`): sketches cannot subtract the part inside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sketches.errors import ConfigError

Kind = Literal["training", "trailing"]
KINDS: tuple[Kind, ...] = ("training", "trailing")
DEFAULT_SPAN_MS = 24 * 3_600_000
DEFAULT_MIN_ROWS = 1000


def ceil_to(ms: int, step: int) -> int:
    """The first multiple of ``step`` at or after ``ms`` (window starts are multiples)."""
    return -(-ms // step) * step


@dataclass(frozen=True)
class ReferenceChoice:
    """What a model is compared with (``[models.M.reference]``)."""

    kind: Kind = "training"
    span_ms: int = DEFAULT_SPAN_MS
    offset_ms: int = 0
    exclude: tuple[tuple[int, int], ...] = ()
    """Event-time ranges ``[start, end)`` (epoch ms) never taken into a baseline."""
    min_rows: int = DEFAULT_MIN_ROWS
    """A baseline with fewer rows is no reference ("no_reference"), never "no drift"."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"reference kind {self.kind!r} is not one of {KINDS}")
        if self.span_ms <= 0 or self.offset_ms < 0:
            raise ConfigError("reference span must be > 0 and offset >= 0")
        if self.min_rows < 1:
            raise ConfigError(f"reference min_rows must be >= 1, got {self.min_rows}")
        for lo, hi in self.exclude:
            if lo >= hi:
                raise ConfigError(f"reference exclude range [{lo}, {hi}) is empty")

    @property
    def trailing(self) -> bool:
        return self.kind == "trailing"

    def bounds(self, start_ms: int) -> tuple[int, int]:
        """``[lo, hi)``: the baseline's event time for a measurement starting at ``start_ms``."""
        hi = start_ms - self.offset_ms
        return hi - self.span_ms, hi

    def grid(self, start_ms: int, window_ms: int) -> tuple[int, int]:
        """``[g0, g1)``: the baseline on the window grid — the windows starting in
        :meth:`bounds`, from ``g0`` to the last one ending at ``g1``. It stays the same while
        the measurement moves within one window, so it keys the cached baseline."""
        lo, hi = self.bounds(start_ms)
        return ceil_to(lo, window_ms), ceil_to(hi, window_ms)

    def excluded(self, start_ms: int, end_ms: int) -> bool:
        """Whether ``[start_ms, end_ms)`` overlaps an excluded range."""
        return any(start_ms < hi and lo < end_ms for lo, hi in self.exclude)

    def takes(self, grid: tuple[int, int], start_ms: int, length_ms: int) -> str | None:
        """Why an item covering ``[start_ms, start_ms + length_ms)`` is left out of the
        baseline on ``grid`` (None: it is taken): ``"outside"`` (not wholly inside the
        grid) or ``"excluded"`` (it overlaps an excluded range)."""
        end = start_ms + length_ms
        if start_ms < grid[0] or end > grid[1]:
            return "outside"
        if self.excluded(start_ms, end):
            return "excluded"
        return None
