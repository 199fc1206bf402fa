"""Operational incidents for ``driftline simulate --ops``: volume changes, producer stalls,
latency rises and invalid-event bursts (pure: parsing and the event-time arithmetic).

Grammar (one per ``--ops`` flag; times as in ``--drift``, offsets from the first event)::

    volume=0.2@30s..60s     the event rate x 0.2 between t = 30 s and 60 s (x 3: a spike)
    stall@30s..50s          no event at all between 30 s and 50 s: sending pauses (the
                            wall clock keeps running), event time jumps over the gap
    latency=x3@30s..60s     latency_ms x 3
    invalid=0.3@30s..60s    30 % of the records malformed (the kinds of --bad-ratio in turn)

Without changes event ``i`` is at offset ``i / rate`` exactly (the stream is byte for
byte the one without ``--ops``). With volume changes and stalls the rate is piecewise
constant; :class:`Timeline` maps event indices to offsets (and back), so the paced sender
(:func:`streams.simulate_run.pace`) sends event ``i`` at its offset on the wall clock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from sketches.errors import ConfigError
from streams.durations import NUMBER, UNIT, parse_duration_s

OpsKind = Literal["volume", "stall", "latency", "invalid"]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class OpsChange:
    """From ``start_s`` to ``end_s``: ``volume`` multiplies the rate by ``amount``,
    ``stall`` stops it, ``latency`` multiplies latency_ms by ``amount``, ``invalid`` makes
    an ``amount`` share of the records malformed."""

    kind: OpsKind
    amount: float
    start_s: float
    end_s: float


_TIME = rf"{NUMBER}(?:{UNIT})?"
_OPS_RE = re.compile(
    r"^(?:(?P<kind>volume|invalid)=(?P<amount>[0-9.]+(?:e[-+]?\d+)?)"
    r"|latency=x(?P<factor>[0-9.]+(?:e[-+]?\d+)?)|(?P<stall>stall))"
    rf"@(?P<start>{_TIME})\.\.(?P<end>{_TIME})$"
)


def parse_ops(text: str) -> OpsChange:
    """Parse one incident (grammar in the module docstring)."""
    match = _OPS_RE.match(text.strip())
    if not match:
        raise ConfigError(f"bad ops change {text!r}; expected volume=FACTOR@START..END, "
                          "stall@START..END, latency=xFACTOR@START..END or "
                          "invalid=SHARE@START..END, e.g. volume=0.2@30s..60s")
    what = f"ops change {text!r}"
    start, end = parse_duration_s(match["start"], what), parse_duration_s(match["end"], what)
    if end <= start:
        raise ConfigError(f"ops change ends before it starts: {text!r}")
    try:
        amount = float(match["amount"] or match["factor"] or 0.0)
    except ValueError:
        raise ConfigError(f"bad amount in {what}") from None
    if match["stall"]:
        return OpsChange("stall", 0.0, start, end)
    kind: OpsKind = match["kind"] or "latency"  # type: ignore[assignment]
    if kind in ("volume", "latency") and not 0 < amount < math.inf:
        raise ConfigError(f"{kind} factor must be > 0 (a stall stops the events): {text!r}")
    if kind == "invalid" and not 0 <= amount <= 1:
        raise ConfigError(f"invalid is a share within [0, 1]: {text!r}")
    return OpsChange(kind, amount, start, end)


class Timeline:
    """Event index <-> event-time offset at ``rate`` events/s under volume changes and
    stalls (piecewise constant rate)."""

    def __init__(self, rate: float, changes: Sequence[OpsChange] = ()) -> None:
        self.rate = rate
        paced = [c for c in changes if c.kind in ("volume", "stall")]
        self.plain = not paced
        points = sorted({0.0, *(c.start_s for c in paced), *(c.end_s for c in paced)})
        factors = []
        for t in points:
            f = 1.0
            for c in paced:
                if c.start_s <= t < c.end_s:
                    f *= 0.0 if c.kind == "stall" else c.amount
            factors.append(f)
        counts = [0.0]
        for k in range(len(points) - 1):
            counts.append(counts[-1] + rate * factors[k] * (points[k + 1] - points[k]))
        self._points = np.array(points)
        self._factors = np.array(factors)
        self._counts = np.array(counts)

    def offsets(self, index: npt.NDArray[np.int64] | FloatArray) -> FloatArray:
        """Event-time offsets (seconds from the first event) of events ``index``."""
        if self.plain:
            return np.asarray(index / self.rate, dtype=np.float64)
        k = np.searchsorted(self._counts, index, side="right") - 1
        return np.asarray(self._points[k] + (index - self._counts[k])
                          / (self.rate * self._factors[k]), dtype=np.float64)

    def offset(self, index: int) -> float:
        return float(self.offsets(np.array([index], dtype=np.int64))[0])

    def count_before(self, t: float) -> int:
        """Events with an offset below ``t``."""
        if self.plain:
            return int(self.rate * t)
        k = int(np.searchsorted(self._points, t, side="right")) - 1
        return int(self._counts[k] + self.rate * self._factors[k] * (t - self._points[k]))


def scaled(changes: Sequence[OpsChange], kind: OpsKind, t: FloatArray, base: float
           ) -> FloatArray | None:
    """Per event: ``base`` with the ``latency`` factors multiplied in / the ``invalid``
    shares set where they apply; None when no change of ``kind`` touches ``t``."""
    out: FloatArray | None = None
    for c in changes:
        if c.kind != kind:
            continue
        mask = (t >= c.start_s) & (t < c.end_s)
        if not mask.any():
            continue
        if out is None:
            out = np.full(t.shape, base)
        if kind == "latency":
            out[mask] *= c.amount
        else:
            out[mask] = c.amount
    return out
