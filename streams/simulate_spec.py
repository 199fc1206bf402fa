"""What ``driftline simulate`` generates: models, feature distributions, drift schedule.

Pure data and parsing; the generator is :mod:`streams.simulate`.

Drift grammar (one per ``--drift`` flag)::

    [MODEL/]FEATURE:KIND=AMOUNT@START[..END]

    income:shift=0.5sd@60s      mean + 0.5 standard deviations from t = 60 s
    income:shift=-1000@2m       mean - 1000 (absolute units) from t = 120 s
    age:scale=1.5@30s           spread x 1.5 around the mean from t = 30 s
    tenure:nulls=0.2@10s..40s   20 % missing between t = 10 s and t = 40 s
    country:unseen=0.05@20s     5 % of values are categories the reference never saw
    credit-risk/income:...      only for that model

Times are event-time offsets from the first event, durations of
:mod:`streams.durations` (``500ms``, ``30s``, ``2m``, ``1h``; bare numbers are seconds).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sketches.errors import ConfigError
from streams.durations import NUMBER, UNIT, parse_duration_s

DriftKind = Literal["shift", "scale", "nulls", "unseen"]
BadKind = Literal["not_json", "non_utf8", "missing_fields", "wrong_types", "nan", "unknown_model"]
BAD_KINDS: tuple[BadKind, ...] = (
    "not_json", "non_utf8", "missing_fields", "wrong_types", "nan", "unknown_model",
)
UNKNOWN_MODEL = "zz-unknown-model"

# Named features get realistic parameters; further ones are derived from their name.
_NUMERIC: tuple[tuple[str, float, float, bool], ...] = (
    ("age", 41.0, 12.0, True),
    ("income", 52_000.0, 18_000.0, False),
    ("tenure", 6.0, 4.0, True),
    ("balance", 2_500.0, 900.0, False),
    ("num_accounts", 3.0, 1.5, True),
    ("credit_score", 680.0, 60.0, True),
)
_CATEGORICAL: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("country", ("DE", "FR", "US", "GB", "ES", "IT", "NL", "PL", "SE", "AT")),
    ("device", ("ios", "android", "web", "api")),
    ("channel", ("branch", "online", "partner", "phone", "mail")),
)


@dataclass(frozen=True, slots=True)
class NumericFeature:
    name: str
    mean: float
    sd: float
    integer: bool = False
    weight: float = 0.0  # contribution of the standardised value to the prediction logit


@dataclass(frozen=True, slots=True)
class CategoricalFeature:
    name: str
    categories: tuple[str, ...]
    weights: tuple[float, ...]  # probabilities, same length as categories, sum 1


@dataclass(frozen=True, slots=True)
class SimModel:
    name: str
    version: str
    numeric: tuple[NumericFeature, ...]
    categorical: tuple[CategoricalFeature, ...]

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.numeric) + tuple(f.name for f in self.categorical)


@dataclass(frozen=True, slots=True)
class Drift:
    feature: str
    kind: DriftKind
    amount: float
    start_s: float
    end_s: float = float("inf")
    in_sd: bool = False  # shift amount is in standard deviations
    model: str | None = None  # None: every model

    def applies_to(self, model: str) -> bool:
        return self.model is None or self.model == model


@dataclass(frozen=True, slots=True)
class SimSpec:
    """Everything that decides the generated stream (with the seed and start time)."""

    models: tuple[SimModel, ...]
    drifts: tuple[Drift, ...] = ()
    events_per_s: float = 1000.0  # event-time spacing: event i has ts = start + i / rate
    null_ratio: float = 0.01  # baseline share of missing values in every feature
    bad_ratio: float = 0.0
    ts_format: Literal["rfc3339", "epoch"] = "rfc3339"

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("at least one model is needed")
        if self.events_per_s <= 0:
            raise ConfigError("events_per_s must be > 0")
        for name, ratio in (("null_ratio", self.null_ratio), ("bad_ratio", self.bad_ratio)):
            if not 0.0 <= ratio <= 1.0:
                raise ConfigError(f"{name} must be within [0, 1], got {ratio}")
        known = set(self.models[0].feature_names)
        for drift in self.drifts:
            if drift.feature not in known:
                raise ConfigError(f"drift names unknown feature {drift.feature!r}; "
                                  f"features are {', '.join(sorted(known))}")
            if drift.model is not None and drift.model not in {m.name for m in self.models}:
                raise ConfigError(f"drift names unknown model {drift.model!r}")


def _unit(name: str, salt: str) -> float:
    """A deterministic number in [0, 1) from a name (stable across runs, unlike hash())."""
    return zlib.crc32(f"{salt}/{name}".encode()) / 2**32


def numeric_names(n: int) -> list[str]:
    return [_NUMERIC[i][0] if i < len(_NUMERIC) else f"num_{i}" for i in range(n)]


def categorical_names(n: int) -> list[str]:
    return [_CATEGORICAL[i][0] if i < len(_CATEGORICAL) else f"cat_{i}" for i in range(n)]


def make_model(name: str, n_numeric: int, n_categorical: int, version: str = "1") -> SimModel:
    """A model with ``n_numeric`` + ``n_categorical`` features; parameters vary by model name."""
    if n_numeric < 0 or n_categorical < 0 or n_numeric + n_categorical == 0:
        raise ConfigError("a model needs at least one feature")
    numeric = []
    for i, fname in enumerate(numeric_names(n_numeric)):
        jitter = 0.9 + 0.2 * _unit(fname, name)
        if i < len(_NUMERIC):
            _, mean, sd, integer = _NUMERIC[i]
        else:
            mean, sd, integer = 100.0 * _unit(fname, "mean"), 1.0 + 20 * _unit(fname, "sd"), False
        weight = (_unit(fname, name + "/w") - 0.5) * 2.0 / max(n_numeric, 1) ** 0.5
        numeric.append(NumericFeature(fname, mean * jitter, sd * jitter, integer, weight))
    categorical = []
    for i, fname in enumerate(categorical_names(n_categorical)):
        cats = _CATEGORICAL[i][1] if i < len(_CATEGORICAL) else tuple(
            f"{fname}_{k}" for k in range(3 + int(10 * _unit(fname, "k"))))
        raw = [1.0 / (k + 1) ** (0.8 + 0.4 * _unit(fname, name)) for k in range(len(cats))]
        total = sum(raw)
        categorical.append(CategoricalFeature(fname, cats, tuple(r / total for r in raw)))
    return SimModel(name, version, tuple(numeric), tuple(categorical))


_DRIFT_RE = re.compile(
    r"^(?:(?P<model>[A-Za-z0-9._-]+)/)?(?P<feature>[A-Za-z0-9_.-]+):"
    r"(?P<kind>shift|scale|nulls|unseen)=(?P<amount>[-+]?[0-9.]+(?:e[-+]?\d+)?)(?P<sd>sd)?"
    rf"@(?P<start>{NUMBER}(?:{UNIT})?)(?:\.\.(?P<end>{NUMBER}(?:{UNIT})?))?$"
)


def parse_drift(text: str) -> Drift:
    """Parse one drift rule (grammar in the module docstring)."""
    match = _DRIFT_RE.match(text.strip())
    if not match:
        raise ConfigError(f"bad drift {text!r}; expected [MODEL/]FEATURE:KIND=AMOUNT@START[..END] "
                          "with KIND shift|scale|nulls|unseen, e.g. income:shift=0.5sd@60s")
    kind: DriftKind = match["kind"]  # type: ignore[assignment]
    amount = float(match["amount"])
    if match["sd"] and kind != "shift":
        raise ConfigError(f"'sd' units only apply to shift: {text!r}")
    if kind in ("nulls", "unseen") and not 0.0 <= amount <= 1.0:
        raise ConfigError(f"{kind} is a ratio within [0, 1]: {text!r}")
    if kind == "scale" and amount < 0:
        raise ConfigError(f"scale must be >= 0: {text!r}")
    start = parse_duration_s(match["start"], f"drift {text!r}")
    end = parse_duration_s(match["end"], f"drift {text!r}") if match["end"] else float("inf")
    if end <= start:
        raise ConfigError(f"drift ends before it starts: {text!r}")
    return Drift(match["feature"], kind, amount, start, end, bool(match["sd"]), match["model"])


def build_spec(models: Sequence[str], n_numeric: int, n_categorical: int, *,
               drifts: Sequence[str] = (),
               events_per_s: float = 1000.0, null_ratio: float = 0.01, bad_ratio: float = 0.0,
               version: str = "1") -> SimSpec:
    """The spec ``driftline simulate`` builds from its flags."""
    return SimSpec(
        models=tuple(make_model(m, n_numeric, n_categorical, version) for m in models),
        drifts=tuple(parse_drift(d) for d in drifts),
        events_per_s=events_per_s, null_ratio=null_ratio, bad_ratio=bad_ratio,
    )
