"""What ``driftline simulate`` generates: models, feature distributions, drift schedule,
ground-truth labels and their performance schedule.

Pure data and parsing; the generator is :mod:`streams.simulate`.

Drift (``--drift``: shift, scale, seasonal cycle, nulls, unseen categories): grammar,
parser and effect in :mod:`streams.simulate_drift`, e.g. ``income:shift=0.5sd@60s``,
``income:cycle=1sd/24h@0s``; imported here too.

Performance grammar (one per ``--performance`` flag; labels get worse, inputs need not)::

    [MODEL:]METRIC=AMOUNT@START[..END]      (``MODEL/`` works too, as in --drift)

    accuracy=-0.15@10m          binary: realized accuracy 0.15 lower from t = 10 min
    fraud:accuracy=-0.1@1m..2m  only model fraud, between 1 and 2 min
    mae=+5@30s                  regression: mean absolute error 5 higher from t = 30 s
    rmse=+5@30s                 regression: root mean squared error 5 higher

Label delay grammar (``--label-delay``; event time between a prediction and its label)::

    30s  |  fixed:30s           always 30 s
    exp:30s                     exponential, mean 30 s
    uniform:10s..2m             uniform between 10 s and 2 min

Times are event-time offsets from the first event, durations of
:mod:`streams.durations` (``500ms``, ``30s``, ``2m``, ``1h``; bare numbers are seconds).

Tasks (``--task``): ``binary`` models predict a calibrated probability score in [0, 1]
(the default); ``regression`` models predict a number (``REG_CENTER + REG_SCALE *
logit``), whose label is the prediction plus Gaussian noise of ``LabelPlan.noise_sd``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from sketches.errors import ConfigError
from streams.durations import NUMBER, UNIT, parse_duration_s
from streams.simulate_drift import Drift as Drift
from streams.simulate_drift import DriftKind as DriftKind
from streams.simulate_drift import check_drifts
from streams.simulate_drift import parse_drift as parse_drift
from streams.simulate_ops import OpsChange, Timeline, parse_ops

BadKind = Literal["not_json", "non_utf8", "missing_fields", "wrong_types", "nan", "unknown_model"]
BAD_KINDS: tuple[BadKind, ...] = (
    "not_json", "non_utf8", "missing_fields", "wrong_types", "nan", "unknown_model",
)
UNKNOWN_MODEL = "zz-unknown-model"
Task = Literal["binary", "regression"]
TASKS: tuple[Task, ...] = ("binary", "regression")
PerfMetric = Literal["accuracy", "mae", "rmse"]
METRIC_TASK: dict[PerfMetric, Task] = {"accuracy": "binary", "mae": "regression",
                                       "rmse": "regression"}
DelayKind = Literal["fixed", "exp", "uniform"]
REG_CENTER = 100.0
REG_SCALE = 25.0
"""A regression model predicts ``REG_CENTER + REG_SCALE * logit`` (the logit a binary
model's score is the sigmoid of), rounded to 2 decimals."""

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
    task: Task = "binary"

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.numeric) + tuple(f.name for f in self.categorical)


@dataclass(frozen=True, slots=True)
class LabelDelay:
    """Event time from a prediction to its label: ``fixed`` (``low_s``), ``exp`` (mean
    ``low_s``) or ``uniform`` (``low_s`` .. ``high_s``)."""

    kind: DelayKind = "fixed"
    low_s: float = 30.0
    high_s: float = 30.0

    @property
    def mean_s(self) -> float:
        return (self.low_s + self.high_s) / 2 if self.kind == "uniform" else self.low_s

    def quantile(self, u: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Delays (seconds) at the uniform draws ``u`` in [0, 1) — the inverse CDF."""
        if self.kind == "exp":
            return -self.low_s * np.log1p(-u)
        if self.kind == "uniform":
            return self.low_s + (self.high_s - self.low_s) * u
        return np.full(u.shape, self.low_s)


@dataclass(frozen=True, slots=True)
class PerformanceChange:
    """From ``start_s`` to ``end_s`` (event-time offsets) the labels of ``model`` (None:
    every model of the metric's task) make ``metric`` change by ``amount``."""

    metric: PerfMetric
    amount: float
    start_s: float
    end_s: float = float("inf")
    model: str | None = None


@dataclass(frozen=True, slots=True)
class LabelPlan:
    """How ground truth is drawn: the share of predictions that ever get a label, the
    delay, the regression noise and the performance schedule (see :mod:`streams.simulate`)."""

    ratio: float = 1.0
    delay: LabelDelay = LabelDelay()
    changes: tuple[PerformanceChange, ...] = ()
    noise_sd: float = 10.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio <= 1.0:
            raise ConfigError(f"label ratio must be within [0, 1], got {self.ratio}")
        if not self.noise_sd >= 0:
            raise ConfigError(f"label noise must be >= 0, got {self.noise_sd}")


@dataclass(frozen=True, slots=True)
class SimSpec:
    """Everything that decides the generated stream (with the seed and start time)."""

    models: tuple[SimModel, ...]
    drifts: tuple[Drift, ...] = ()
    events_per_s: float = 1000.0  # event-time spacing: event i has ts = start + i / rate
    null_ratio: float = 0.01  # baseline share of missing values in every feature
    bad_ratio: float = 0.0
    ts_format: Literal["rfc3339", "epoch"] = "rfc3339"
    labels: LabelPlan = LabelPlan()
    ops: tuple[OpsChange, ...] = ()
    """Operational incidents (:mod:`streams.simulate_ops`): volume, stalls, latency, invalid."""

    def timeline(self) -> Timeline:
        """Event index <-> event-time offset (``i / events_per_s`` without volume changes)."""
        return Timeline(self.events_per_s, self.ops)

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("at least one model is needed")
        if self.events_per_s <= 0:
            raise ConfigError("events_per_s must be > 0")
        for name, ratio in (("null_ratio", self.null_ratio), ("bad_ratio", self.bad_ratio)):
            if not 0.0 <= ratio <= 1.0:
                raise ConfigError(f"{name} must be within [0, 1], got {ratio}")
        first = self.models[0]
        check_drifts(self.drifts, [f.name for f in first.numeric],
                     [f.name for f in first.categorical], [m.name for m in self.models])
        tasks = {m.name: m.task for m in self.models}
        for change in self.labels.changes:
            task = METRIC_TASK[change.metric]
            if change.model is not None and change.model not in tasks:
                raise ConfigError(f"performance change names unknown model {change.model!r}")
            if task not in ({tasks[change.model]} if change.model else set(tasks.values())):
                raise ConfigError(f"{change.metric} applies to {task} models, and "
                                  f"{change.model or 'no model'} is one (see --task)")


def _unit(name: str, salt: str) -> float:
    """A deterministic number in [0, 1) from a name (stable across runs, unlike hash())."""
    return zlib.crc32(f"{salt}/{name}".encode()) / 2**32


def numeric_names(n: int) -> list[str]:
    return [_NUMERIC[i][0] if i < len(_NUMERIC) else f"num_{i}" for i in range(n)]


def categorical_names(n: int) -> list[str]:
    return [_CATEGORICAL[i][0] if i < len(_CATEGORICAL) else f"cat_{i}" for i in range(n)]


def make_model(name: str, n_numeric: int, n_categorical: int, version: str = "1",
               task: Task = "binary") -> SimModel:
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
    return SimModel(name, version, tuple(numeric), tuple(categorical), task)


_PERF_RE = re.compile(
    r"^(?:(?P<model>[A-Za-z0-9._-]+)[:/])?(?P<metric>accuracy|mae|rmse)"
    r"=(?P<amount>[-+]?[0-9.]+(?:e[-+]?\d+)?)"
    rf"@(?P<start>{NUMBER}(?:{UNIT})?)(?:\.\.(?P<end>{NUMBER}(?:{UNIT})?))?$"
)
MAX_ACCURACY_DROP = 0.5
"""A calibrated prediction is right with probability >= 0.5, so a drop up to 0.5 can be
made exact for every prediction (:mod:`streams.simulate`)."""


def parse_performance(text: str) -> PerformanceChange:
    """Parse one performance change (grammar in the module docstring)."""
    match = _PERF_RE.match(text.strip())
    if not match:
        raise ConfigError(f"bad performance change {text!r}; expected "
                          "[MODEL:]METRIC=AMOUNT@START[..END] with METRIC accuracy|mae|rmse, "
                          "e.g. accuracy=-0.15@10m or fraud:mae=+5@30s..2m")
    metric: PerfMetric = match["metric"]  # type: ignore[assignment]
    try:
        amount = float(match["amount"])
    except ValueError:
        raise ConfigError(f"bad amount in performance change {text!r}") from None
    if metric == "accuracy" and not -MAX_ACCURACY_DROP <= amount < 0:
        raise ConfigError(f"accuracy can only fall, by at most {MAX_ACCURACY_DROP} (a negative "
                          f"amount; end the fall with ..END): {text!r}")
    start = parse_duration_s(match["start"], f"performance change {text!r}")
    end = (parse_duration_s(match["end"], f"performance change {text!r}") if match["end"]
           else float("inf"))
    if end <= start:
        raise ConfigError(f"performance change ends before it starts: {text!r}")
    return PerformanceChange(metric, amount, start, end, match["model"])


_DURATION_RE = rf"{NUMBER}(?:{UNIT})?"
_DELAY_RE = re.compile(
    rf"^(?:(?:fixed:)?(?P<fixed>{_DURATION_RE})|exp:(?P<exp>{_DURATION_RE})"
    rf"|uniform:(?P<lo>{_DURATION_RE})\.\.(?P<hi>{_DURATION_RE}))$"
)


def parse_delay(text: str) -> LabelDelay:
    """``30s`` / ``fixed:30s``, ``exp:30s`` (mean), ``uniform:10s..2m``."""
    match = _DELAY_RE.match(text.strip())
    if not match:
        raise ConfigError(f"bad label delay {text!r}; expected DURATION, fixed:DURATION, "
                          "exp:MEAN or uniform:LOW..HIGH, e.g. 30s, exp:30s, uniform:10s..2m")
    what = f"label delay {text!r}"
    if match["fixed"]:
        d = parse_duration_s(match["fixed"], what)
        return LabelDelay("fixed", d, d)
    if match["exp"]:
        d = parse_duration_s(match["exp"], what)
        return LabelDelay("exp", d, d)
    lo, hi = parse_duration_s(match["lo"], what), parse_duration_s(match["hi"], what)
    if hi < lo:
        raise ConfigError(f"label delay range ends below its start: {text!r}")
    return LabelDelay("uniform", lo, hi)


def parse_tasks(text: str, models: Sequence[str]) -> dict[str, Task]:
    """``binary`` / ``regression`` for every model, or ``MODEL=TASK,...`` (a bare TASK in
    the list is the default of the models not named)."""
    default: Task = "binary"
    named: dict[str, Task] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        model, _, task = part.rpartition("=")
        if task not in TASKS:
            raise ConfigError(f"bad task {part!r}; expected binary or regression, "
                              "or MODEL=TASK")
        if not model:
            default = task
        elif model not in models:
            raise ConfigError(f"task names unknown model {model!r}")
        else:
            named[model] = task
    return {m: named.get(m, default) for m in models}


def build_spec(models: Sequence[str], n_numeric: int, n_categorical: int, *,
               drifts: Sequence[str] = (),
               events_per_s: float = 1000.0, null_ratio: float = 0.01, bad_ratio: float = 0.0,
               version: str = "1", tasks: str = "binary", label_ratio: float = 1.0,
               label_delay: str = "30s", performance: Sequence[str] = (),
               label_noise: float = 10.0, ops: Sequence[str] = ()) -> SimSpec:
    """The spec ``driftline simulate`` builds from its flags."""
    task_of = parse_tasks(tasks, models)
    return SimSpec(
        models=tuple(make_model(m, n_numeric, n_categorical, version, task_of[m])
                     for m in models),
        drifts=tuple(parse_drift(d) for d in drifts),
        events_per_s=events_per_s, null_ratio=null_ratio, bad_ratio=bad_ratio,
        labels=LabelPlan(ratio=label_ratio, delay=parse_delay(label_delay),
                         changes=tuple(parse_performance(p) for p in performance),
                         noise_sd=label_noise),
        ops=tuple(parse_ops(o) for o in ops),
    )
