"""The one duration grammar of driftline's flags and files.

``NUMBER[UNIT]``: a non-negative decimal number, optionally followed by a unit ``ms``,
``s``, ``m``, ``h`` or ``d`` (blanks around are ignored); a bare number is seconds. A
number given as a number (TOML ``retention = 30``) is seconds too. ``500ms``, ``2s``,
``1.5m``, ``1h``, ``7d`` and ``90`` are durations; ``-1s``, ``5 minutes``, ``1e3s`` and
``inf`` are not.

It lives in ``streams`` because its callers are the CLI and models file (``driftline``) and
the simulator's drift schedule (``streams``), and ``driftline`` may import ``streams``.
"""

from __future__ import annotations

import math
import re

from sketches.errors import ConfigError

UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
NUMBER = r"\d+(?:\.\d+)?"
UNIT = r"ms|s|m|h|d"
"""Regex pieces, for grammars that embed a duration (``--drift income:shift=1@30s..2m``)."""

_DURATION = re.compile(rf"^\s*({NUMBER})\s*({UNIT})?\s*$")


def parse_duration_ms(value: object, what: str = "duration") -> int:
    """``"5m"`` → 300000, ``"250ms"`` → 250, ``90`` → 90000 (rounded to whole ms)."""
    return round(_ms(value, what))


def parse_duration_s(value: object, what: str = "duration") -> float:
    """``"90"`` → 90.0, ``"1.5m"`` → 90.0, ``"500ms"`` → 0.5."""
    return _ms(value, what) / 1000


def _ms(value: object, what: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if math.isfinite(value) and value >= 0:
            return float(value) * 1000
    elif isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * UNITS_MS[m.group(2) or "s"]
    raise ConfigError(f"{what}: {value!r} is not a duration like 500ms, 30s, 5m, 1h, 7d")
