"""Realized performance of a model from the stored per-window label-join aggregates.

The aggregates (one Redis hash per model, version and prediction window; field names in
/tmp/perf_contract.md, issue #13) are written by the join's Lua script in
``streams/join_lua.py``, which mirrors :func:`score_bin` and :func:`log_bucket` here. Every
field is additive, so a measurement window is the field-wise sum of its windows
(:meth:`PerformanceWindow.total`).

Errors of the values (``MetricValue.error_bound``):

- counts-based metrics (accuracy, precision, recall, F1) and MAE / RMSE / mean error are
  exact (bound 0; float sums up to rounding);
- ROC AUC comes from 1,000 equal score bins per label class. Positive/negative pairs
  in different bins are ordered exactly; pairs sharing a bin count 0.5 (as a tie), so the
  value is within ``0.5 x (share of positive x negative pairs sharing a bin)`` of the exact
  Mann-Whitney AUC (ties in the raw scores counted 0.5);
- error and delay quantiles come from DDSketch-style log buckets (``GAMMA``): within
  ``RELATIVE_ACCURACY`` (1 %) of the exact order statistic; values in the zero bucket
  (``|e| <= 1e-9``, delay ``<= 1 ms``) are reported as 0 with that width as the bound.

"Not enough labels" is a state of :class:`RealizedPerformance`, never a value; a metric
undefined on the window (precision without predicted positives, AUC with one label class)
has ``value None``. Rules and checks: :mod:`sketches.performance_rules`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import numpy as np

from sketches.errors import StateFormatError
from sketches.types import MetricValue

FieldValue = bytes | str | int | float
Fields = Mapping[bytes, FieldValue] | Mapping[str, FieldValue]
"""One stored window hash as Redis returns it (field -> count or float sum)."""
Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression")
State = Literal["ok", "insufficient_labels"]

BINS = 1000
"""Equal-width score bins on [0, 1] of the binary score histograms (``s:<label>:<bin>``)."""
RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
"""Log-bucket ratio of the error and delay histograms (DDSketch, 1 % relative accuracy)."""
LOG_GAMMA = math.log(GAMMA)
ZERO_ERROR = 1e-9  # |pred - label| at most this is counted in e0
ZERO_DELAY = 1e-3  # label delays (seconds) at most this are counted in d0
MAX_CLASSES = 20  # class names kept per model; further ones are recorded as OTHER
OTHER = "~other"
DEFAULT_QUANTILES = (0.5, 0.9, 0.99)


def score_bin(score: float) -> int:
    """The bin of a probability score: ``min(floor(score * 1000), 999)`` (clamped at 0)."""
    return max(0, min(math.floor(score * BINS), BINS - 1))


def log_bucket(x: float) -> int:
    """The log bucket ``ceil(ln(x) / ln(GAMMA))`` of ``x > 0``: x is in (GAMMA^(i-1), GAMMA^i]."""
    return math.ceil(math.log(x) / LOG_GAMMA)


def bucket_value(i: int) -> float:
    """The value reported for bucket ``i``: within 1 % of everything in it."""
    return 2.0 * GAMMA**i / (GAMMA + 1.0)


def class_key(value: object) -> str:
    """The class string of a label / predicted class (contract): ``str(int(v))`` for
    integral numbers, ``"true"`` / ``"false"`` for bools, the string itself otherwise."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        return str(int(v)) if math.isfinite(v) and v.is_integer() else repr(v)
    return str(value)


@dataclass
class PerformanceWindow:
    """The aggregates of one or more (summed) windows. ``merge`` adds another in place."""

    predictions: int = 0
    labels: int = 0
    expired: int = 0
    confusion: dict[tuple[str, str], int] = field(default_factory=dict)
    """(predicted class, label class) -> count."""
    scores: dict[str, dict[int, int]] = field(default_factory=dict)
    """label class -> score bin -> count."""
    sae: float = 0.0
    sse: float = 0.0
    se: float = 0.0
    error_zero: int = 0
    error_pos: dict[int, int] = field(default_factory=dict)
    error_neg: dict[int, int] = field(default_factory=dict)
    delay_zero: int = 0
    delay: dict[int, int] = field(default_factory=dict)

    @classmethod
    def from_fields(cls, fields: Fields) -> PerformanceWindow:
        """Parse one stored hash (as Redis returns it). Unknown fields are ignored, so a
        newer writer's extra fields do not break an older reader."""
        w = cls()
        for raw_key, raw in fields.items():
            key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
            text = raw.decode() if isinstance(raw, bytes) else raw
            try:
                w._add(key, text)
            except ValueError as exc:
                raise StateFormatError(f"performance field {key!r}={raw!r}: {exc}") from None
        return w

    @classmethod
    def total(cls, windows: Iterable[Fields]) -> PerformanceWindow:
        """The sum of several stored windows (the fields are additive)."""
        out = cls()
        for fields in windows:
            out.merge(cls.from_fields(fields))
        return out

    def _add(self, key: str, text: str | int | float) -> None:
        if key in ("sae", "sse", "se"):
            setattr(self, key, getattr(self, key) + float(text))
            return
        count = _count(text)
        kind, _, rest = key.partition(":")
        if key in ("p", "n", "x", "e0", "d0"):
            attr = {"p": "predictions", "n": "labels", "x": "expired",
                    "e0": "error_zero", "d0": "delay_zero"}[key]  # fmt: skip
            setattr(self, attr, getattr(self, attr) + count)
        elif kind == "c":
            pred, sep, label = rest.partition("|")
            if not sep:
                raise ValueError("confusion field without '|'")
            _inc(self.confusion, (pred, label), count)
        elif kind == "s":
            label, sep, b = rest.rpartition(":")
            if not sep:
                raise ValueError("score field without a bin")
            _inc(self.scores.setdefault(label, {}), min(max(int(b), 0), BINS - 1), count)
        elif kind in ("e+", "e-", "d"):
            hist = {"e+": self.error_pos, "e-": self.error_neg, "d": self.delay}[kind]
            _inc(hist, int(rest), count)

    def merge(self, other: PerformanceWindow) -> None:
        self.predictions += other.predictions
        self.labels += other.labels
        self.expired += other.expired
        self.sae += other.sae
        self.sse += other.sse
        self.se += other.se
        self.error_zero += other.error_zero
        self.delay_zero += other.delay_zero
        for k, v in other.confusion.items():
            _inc(self.confusion, k, v)
        for label, hist in other.scores.items():
            for b, v in hist.items():
                _inc(self.scores.setdefault(label, {}), b, v)
        for mine, theirs in ((self.error_pos, other.error_pos), (self.error_neg, other.error_neg),
                             (self.delay, other.delay)):  # fmt: skip
            for i, v in theirs.items():
                _inc(mine, i, v)

    @property
    def label_ratio(self) -> float | None:
        """Labeled outcomes per prediction with an id (``n / p``); None without predictions."""
        return self.labels / self.predictions if self.predictions else None


def _count(text: str | int | float) -> int:
    value = float(text)
    if not value.is_integer() or value < 0:
        raise ValueError("count is not a non-negative integer")
    return int(value)


K = TypeVar("K")


def _inc(d: dict[K, int], key: K, n: int) -> None:
    d[key] = d.get(key, 0) + n


# ------------------------------------------------------------------ results
@dataclass(frozen=True, slots=True)
class Measured:
    """A realized metric (``None``: undefined on this window) and the count it rests on."""

    value: MetricValue | None
    count: int


@dataclass(frozen=True, slots=True)
class ClassScores:
    """Precision, recall and F1 of one class; support = labels of that class."""

    precision: float | None
    recall: float | None
    f1: float | None
    predicted: int
    support: int


@dataclass(frozen=True)
class RealizedPerformance:
    task: Task
    state: State
    labels: int
    predictions: int
    expired: int
    label_ratio: float | None
    metrics: Mapping[str, Measured]
    """accuracy, precision, recall, f1, auc | mae, rmse, mean_error; empty when insufficient."""
    per_class: Mapping[str, ClassScores]
    error_quantiles: Mapping[float, MetricValue]
    """Quantiles of the signed error ``pred - label`` (regression)."""
    abs_error_quantiles: Mapping[float, MetricValue]
    delay_quantiles: Mapping[float, MetricValue]
    """Label delay in seconds; reported whatever the state."""


def realized(
    window: PerformanceWindow,
    task: Task,
    *,
    positive: str = "1",
    min_labels: int = 1,
    quantiles: Iterable[float] = DEFAULT_QUANTILES,
) -> RealizedPerformance:
    """The realized metrics of ``window``; ``state="insufficient_labels"`` (no metrics)
    when it holds fewer than ``min_labels`` labeled outcomes."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}")
    qs = tuple(quantiles)
    enough = window.labels >= max(min_labels, 1)
    metrics: dict[str, Measured] = {}
    per_class: dict[str, ClassScores] = {}
    errq: dict[float, MetricValue] = {}
    abserrq: dict[float, MetricValue] = {}
    if enough and task == "regression":
        metrics = regression_metrics(window)
        errq = _present({q: error_quantile(window, q) for q in qs})
        abserrq = _present({q: error_quantile(window, q, absolute=True) for q in qs})
    elif enough:
        per_class = class_scores(window.confusion)
        metrics = classification_metrics(window, task, positive, per_class)
    return RealizedPerformance(
        task, "ok" if enough else "insufficient_labels", window.labels, window.predictions,
        window.expired, window.label_ratio, metrics, per_class, errq, abserrq,
        _present({q: delay_quantile(window, q) for q in qs}),
    )  # fmt: skip


def _present(d: Mapping[float, MetricValue | None]) -> dict[float, MetricValue]:
    return {k: v for k, v in d.items() if v is not None}


def class_scores(confusion: Mapping[tuple[str, str], int]) -> dict[str, ClassScores]:
    """Per-class precision / recall / F1 over every class seen as prediction or label."""
    predicted: dict[str, int] = {}
    support: dict[str, int] = {}
    for (p, lab), c in confusion.items():
        _inc(predicted, p, c)
        _inc(support, lab, c)
    out = {}
    for cls in sorted(set(predicted) | set(support)):
        tp, np_, nl = confusion.get((cls, cls), 0), predicted.get(cls, 0), support.get(cls, 0)
        out[cls] = ClassScores(
            tp / np_ if np_ else None, tp / nl if nl else None,
            2 * tp / (np_ + nl) if np_ + nl else None, np_, nl,
        )  # fmt: skip
    return out


def classification_metrics(
    window: PerformanceWindow,
    task: Task,
    positive: str,
    per_class: Mapping[str, ClassScores] | None = None,
) -> dict[str, Measured]:
    """accuracy; precision / recall / f1 of ``positive`` (binary: every other class is
    negative, whatever its name) or their macro average over the classes that occur as
    labels (multiclass; a class never predicted has precision 0); auc from the score
    histograms (binary)."""
    cm = window.confusion
    total = sum(cm.values())
    pcs = class_scores(cm) if per_class is None else per_class
    out: dict[str, Measured] = {}
    if task == "binary":
        tp = cm.get((positive, positive), 0)
        pred_pos = sum(c for (p, _), c in cm.items() if p == positive)
        lab_pos = sum(c for (_, lab), c in cm.items() if lab == positive)
        tn = total - pred_pos - lab_pos + tp
        out["accuracy"] = _ratio(tp + tn, total)
        out["precision"] = _ratio(tp, pred_pos)
        out["recall"] = _ratio(tp, lab_pos)
        out["f1"] = _ratio(2 * tp, pred_pos + lab_pos)
        out["auc"] = roc_auc(window, positive)
        return out
    out["accuracy"] = _ratio(sum(c for (p, lab), c in cm.items() if p == lab), total)
    labelled = [s for s in pcs.values() if s.support]
    for name in ("precision", "recall", "f1"):
        xs = [getattr(s, name) or 0.0 for s in labelled]
        out[name] = Measured(MetricValue(sum(xs) / len(xs)) if xs else None, total)
    return out


def _ratio(num: int, den: int) -> Measured:
    return Measured(MetricValue(num / den) if den else None, den)


def roc_auc(window: PerformanceWindow, positive: str) -> Measured:
    """ROC AUC of ``positive`` against every other label class from the score bins, with
    the bound of the module docs; value None unless both sides have scores."""
    pos = np.zeros(BINS)
    neg = np.zeros(BINS)
    for label, hist in window.scores.items():
        side = pos if label == positive else neg
        for b, c in hist.items():
            side[b] += c
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    count = int(n_pos + n_neg)
    if n_pos == 0 or n_neg == 0:
        return Measured(None, count)
    below = np.cumsum(neg) - neg
    same = float(np.dot(pos, neg))
    u = float(np.dot(pos, below)) + 0.5 * same
    pairs = n_pos * n_neg
    return Measured(MetricValue(u / pairs, 0.5 * same / pairs), count)


def regression_metrics(window: PerformanceWindow) -> dict[str, Measured]:
    n = window.labels
    if not n:
        return {}
    return {
        "mae": Measured(MetricValue(window.sae / n), n),
        "rmse": Measured(MetricValue(math.sqrt(max(window.sse, 0.0) / n)), n),
        "mean_error": Measured(MetricValue(window.se / n), n),
    }


def error_quantile(
    window: PerformanceWindow, q: float, *, absolute: bool = False
) -> MetricValue | None:
    """The ``q`` quantile (the ``ceil(q n)``-th smallest value) of the signed regression
    error, or of ``|error|``; None when the histogram is empty."""
    if absolute:
        merged = dict(window.error_pos)
        for i, c in window.error_neg.items():
            _inc(merged, i, c)
        return _hist_quantile({}, window.error_zero, merged, q, ZERO_ERROR)
    return _hist_quantile(window.error_neg, window.error_zero, window.error_pos, q, ZERO_ERROR)


def delay_quantile(window: PerformanceWindow, q: float) -> MetricValue | None:
    """The ``q`` quantile of the label delay in seconds; None when no label was joined."""
    return _hist_quantile({}, window.delay_zero, window.delay, q, ZERO_DELAY)


def rank_of(q: float, n: int) -> int:
    """1-based rank of the ``q`` quantile among ``n`` values (numpy's ``inverted_cdf``)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile rank must be in [0, 1], got {q}")
    return max(1, min(n, math.ceil(round(q * n, 9))))


def _hist_quantile(
    neg: Mapping[int, int], zero: int, pos: Mapping[int, int], q: float, zero_width: float
) -> MetricValue | None:
    n = zero + sum(neg.values()) + sum(pos.values())
    if n == 0:
        return None
    k = rank_of(q, n)
    seen = 0
    for i in sorted(neg, reverse=True):
        seen += neg[i]
        if seen >= k:
            return _bucket_metric(-bucket_value(i))
    seen += zero
    if seen >= k:
        return MetricValue(0.0, zero_width)
    for i in sorted(pos):
        seen += pos[i]
        if seen >= k:
            return _bucket_metric(bucket_value(i))
    raise AssertionError("unreachable: rank beyond the histogram")


def _bucket_metric(v: float) -> MetricValue:
    # x in (GAMMA^(i-1), GAMMA^i] and v = 2 GAMMA^i / (GAMMA + 1): |x - v| <= |v| a / (1 - a)
    return MetricValue(v, abs(v) * RELATIVE_ACCURACY / (1 - RELATIVE_ACCURACY))
