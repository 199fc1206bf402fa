"""Input drift for ``driftline simulate --drift``: the grammar, its parser and what a drift
does to a column (pure: numpy only; the generator is :mod:`streams.simulate`).

Drift grammar (one per ``--drift`` flag)::

    [MODEL/]FEATURE:KIND=AMOUNT[sd][/PERIOD]@START[..END]

    income:shift=0.5sd@60s      mean + 0.5 standard deviations from t = 60 s
    income:shift=-1000@2m       mean - 1000 (absolute units) from t = 120 s
    age:scale=1.5@30s           spread x 1.5 around the mean from t = 30 s
    income:cycle=1sd/24h@0s     seasonal: the mean follows 1 sd x sin(2 pi (t - 0 s) / 24 h)
    balance:cycle=300/1h@1h..5h   mean + 300 sin(2 pi (t - 1 h) / 1 h) between 1 h and 5 h
    tenure:nulls=0.2@10s..40s   20 % missing between t = 10 s and t = 40 s
    country:unseen=0.05@20s     5 % of values are categories the reference never saw
    credit-risk/income:...      only for that model

Times and the ``cycle`` period are durations of :mod:`streams.durations` (``500ms``,
``30s``, ``2m``, ``1h``, ``1d``; bare numbers are seconds); START and END are event-time
offsets from the first event, and a cycle's phase runs in event time from its START.
``sd`` (standard deviations of the feature) applies to ``shift`` and ``cycle``; a
``/PERIOD`` (> 0) is required for ``cycle`` and allowed for no other kind. ``shift``,
``scale`` and ``cycle`` apply to numeric features, ``unseen`` to categorical ones,
``nulls`` to both. On one feature, shifts are added, then scales applied around the
feature's mean (a shift active at the same time is scaled too), then cycles added.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from sketches.errors import ConfigError
from streams.durations import NUMBER, UNIT, parse_duration_s

DriftKind = Literal["shift", "scale", "cycle", "nulls", "unseen"]
NUMERIC_KINDS: frozenset[str] = frozenset({"shift", "scale", "cycle"})
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Drift:
    feature: str
    kind: DriftKind
    amount: float  # a cycle's amplitude
    start_s: float
    end_s: float = float("inf")
    in_sd: bool = False  # shift / cycle amount is in standard deviations
    model: str | None = None  # None: every model
    period_s: float = 0.0  # cycle only: its period in event time

    def applies_to(self, model: str) -> bool:
        return self.model is None or self.model == model


_TIME = rf"{NUMBER}(?:{UNIT})?"
_DRIFT_RE = re.compile(
    r"^(?:(?P<model>[A-Za-z0-9._-]+)/)?(?P<feature>[A-Za-z0-9_.-]+):"
    r"(?P<kind>shift|scale|cycle|nulls|unseen)=(?P<amount>[-+]?[0-9.]+(?:e[-+]?\d+)?)(?P<sd>sd)?"
    rf"(?:/(?P<period>[^@]*))?@(?P<start>{_TIME})(?:\.\.(?P<end>{_TIME}))?$"
)


def parse_drift(text: str) -> Drift:
    """Parse one drift rule (grammar in the module docstring)."""
    match = _DRIFT_RE.match(text.strip())
    if not match:
        raise ConfigError(f"bad drift {text!r}; expected [MODEL/]FEATURE:KIND=AMOUNT@START[..END] "
                          "with KIND shift|scale|cycle|nulls|unseen, e.g. income:shift=0.5sd@60s "
                          "or income:cycle=1sd/24h@0s")
    kind: DriftKind = match["kind"]  # type: ignore[assignment]
    try:
        amount = float(match["amount"])
    except ValueError:
        raise ConfigError(f"bad amount in drift {text!r}") from None
    if match["sd"] and kind not in ("shift", "cycle"):
        raise ConfigError(f"'sd' units only apply to shift and cycle: {text!r}")
    if kind in ("nulls", "unseen") and not 0.0 <= amount <= 1.0:
        raise ConfigError(f"{kind} is a ratio within [0, 1]: {text!r}")
    if kind == "scale" and amount < 0:
        raise ConfigError(f"scale must be >= 0: {text!r}")
    period = 0.0
    if kind == "cycle":
        if match["period"] is None:
            raise ConfigError(f"cycle needs a period, AMPLITUDE[sd]/PERIOD (e.g. "
                              f"income:cycle=1sd/24h@0s): {text!r}")
        period = parse_duration_s(match["period"], f"cycle period in drift {text!r}")
        if not 0 < period < float("inf"):
            raise ConfigError(f"cycle period must be > 0: {text!r}")
    elif match["period"] is not None:
        raise ConfigError(f"only cycle takes a /PERIOD, {kind} does not: {text!r}")
    start = parse_duration_s(match["start"], f"drift {text!r}")
    end = parse_duration_s(match["end"], f"drift {text!r}") if match["end"] else float("inf")
    if end <= start:
        raise ConfigError(f"drift ends before it starts: {text!r}")
    return Drift(match["feature"], kind, amount, start, end, bool(match["sd"]), match["model"],
                 period)


def check_drifts(drifts: Sequence[Drift], numeric: Sequence[str], categorical: Sequence[str],
                 models: Sequence[str]) -> None:
    """ConfigError unless every drift names a known model and a feature of a type its
    kind applies to."""
    known = {*numeric, *categorical}
    for drift in drifts:
        if drift.feature not in known:
            raise ConfigError(f"drift names unknown feature {drift.feature!r}; "
                              f"features are {', '.join(sorted(known))}")
        if drift.model is not None and drift.model not in models:
            raise ConfigError(f"drift names unknown model {drift.model!r}")
        if drift.kind in NUMERIC_KINDS and drift.feature not in numeric:
            raise ConfigError(f"{drift.kind} applies to numeric features; "
                              f"{drift.feature!r} is categorical")
        if drift.kind == "unseen" and drift.feature not in categorical:
            raise ConfigError(f"unseen applies to categorical features; "
                              f"{drift.feature!r} is numeric")


def active(drifts: Sequence[Drift], feature: str, kind: str, t: FloatArray, mi: IntArray,
           models: Sequence[str]) -> Iterator[tuple[Drift, BoolArray]]:
    """The drifts of ``kind`` on ``feature`` that touch some of the events at offsets
    ``t`` of models ``mi`` (indices into ``models``), each with the events it applies to."""
    for d in drifts:
        if d.feature != feature or d.kind != kind:
            continue
        mask = (t >= d.start_s) & (t < d.end_s)
        if d.model is not None:
            mask &= mi == models.index(d.model)
        if mask.any():
            yield d, mask


def drift_numeric(drifts: Sequence[Drift], feature: str, x: FloatArray, mu: FloatArray,
                  sd: FloatArray, t: FloatArray, mi: IntArray, models: Sequence[str]) -> None:
    """Apply the shifts, scales and cycles (in that order) on ``feature`` to its values
    ``x`` in place; ``mu`` / ``sd``: each event's undrifted mean and standard deviation."""
    for d, mask in active(drifts, feature, "shift", t, mi, models):
        x[mask] += d.amount * sd[mask] if d.in_sd else d.amount
    for d, mask in active(drifts, feature, "scale", t, mi, models):
        x[mask] = mu[mask] + (x[mask] - mu[mask]) * d.amount
    for d, mask in active(drifts, feature, "cycle", t, mi, models):
        amplitude = d.amount * sd[mask] if d.in_sd else d.amount
        x[mask] += amplitude * np.sin(2 * np.pi * (t[mask] - d.start_s) / d.period_s)
