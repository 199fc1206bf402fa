"""Confidence-based performance estimation (CBPE) of binary classifiers with scores.

Like NannyML's CBPE: a :class:`Calibrator` maps the model's score to the probability that
the label is the positive class, fitted on the labelled reference by isotonic regression
(``scipy.optimize.isotonic_regression``, pool-adjacent-violators; linear interpolation
between the fitted points as scikit-learn's ``IsotonicRegression`` does, clipped at the
ends). For a window of scores s_i with calibrated probabilities p_i and predictions
``s_i >= threshold``, the expected confusion matrix is TP = sum p_i [pred], FP = sum
(1 - p_i) [pred], FN = sum p_i [not pred], TN = sum (1 - p_i) [not pred]; accuracy,
precision, recall and F1 are computed from it, and ROC AUC from the expected ROC curve
(tied scores are one step, counted 0.5). The estimate is only as good as the calibration
on the *current* data: it holds under covariate shift (P(y | score) unchanged), not
under concept drift.

:func:`estimate_from_profile` uses the KLL sketch of the prediction column as the score
sample (its retained items with their weights). Exact while the sketch is exact; in
estimation mode its CDF is within the sketch's rank error eps everywhere, which moves
every expected share by at most eps times the total variation of its integrand: the
reported bound is that worst case (accuracy <= 3 eps; TP share, predicted-positive share
and positive share <= eps each; AUC numerator <= 2 eps, P and N <= eps; propagated
through the ratios). It does not include the sampling
error of the estimate itself (a window of n scores: about sqrt(sum p(1-p)) / n).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import numpy as np
import numpy.typing as npt
from scipy.optimize import isotonic_regression

from sketches import _codec
from sketches.errors import InputDataError, StateFormatError
from sketches.numeric import NumericProfile
from sketches.types import MetricValue

FloatArray = npt.NDArray[np.float64]
ESTIMATED = ("accuracy", "precision", "recall", "f1", "auc")


class _CalibratorState(msgspec.Struct, array_like=True):
    x: list[float]
    y: list[float]
    n: int
    positives: float


class Calibrator:
    """Monotone map score -> P(label = positive); fitted once, read-only after."""

    MAGIC = b"DLCB"
    VERSION = 1

    def __init__(self, x: FloatArray, y: FloatArray, n: int, positives: float) -> None:
        """``x`` increasing scores, ``y`` non-decreasing probabilities at them."""
        if x.size == 0 or x.size != y.size:
            raise ValueError("calibrator needs equally long, non-empty x and y")
        self.x = x
        self.y = y
        self.n = n
        self.positives = positives

    @classmethod
    def fit(
        cls,
        scores: npt.ArrayLike,
        positive: npt.ArrayLike,
        weights: npt.ArrayLike | None = None,
    ) -> Calibrator:
        """Fit on ``scores`` and booleans ``positive`` (label is the positive class).
        Non-finite scores are dropped; raises InputDataError when none are left."""
        s = np.asarray(scores, dtype=np.float64)
        t = np.asarray(positive, dtype=np.float64)
        w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=np.float64)
        keep = np.isfinite(s) & np.isfinite(t) & (w > 0)
        s, t, w = s[keep], t[keep], w[keep]
        if s.size == 0:
            raise InputDataError("no finite scores to calibrate on")
        ux, inv = np.unique(s, return_inverse=True)
        sw = np.bincount(inv, weights=w)
        mean = np.bincount(inv, weights=w * t) / sw
        fitted = np.clip(isotonic_regression(mean, weights=sw).x, 0.0, 1.0)
        # keep the ends of each constant block: interpolation is then unchanged
        edge = np.ones(ux.size, dtype=bool)
        edge[1:-1] = (fitted[1:-1] != fitted[:-2]) | (fitted[1:-1] != fitted[2:])
        return cls(ux[edge], fitted[edge], int(s.size), float(np.dot(w, t)))

    def predict(self, scores: npt.ArrayLike) -> FloatArray:
        """Calibrated probabilities of ``scores`` (clipped to the fitted range)."""
        out: FloatArray = np.interp(np.asarray(scores, dtype=np.float64), self.x, self.y)
        return out

    def to_bytes(self) -> bytes:
        state = _CalibratorState(self.x.tolist(), self.y.tolist(), self.n, self.positives)
        return _codec.pack(self.MAGIC, self.VERSION, state)

    @classmethod
    def from_bytes(cls, data: bytes) -> Calibrator:
        s = _codec.unpack(data, cls.MAGIC, cls.VERSION, _CalibratorState)
        x, y = np.asarray(s.x, dtype=np.float64), np.asarray(s.y, dtype=np.float64)
        ok = (
            x.size > 0 and x.size == y.size and bool(np.all(np.diff(x) > 0))
            and bool(np.all(np.diff(y) >= 0)) and bool(np.all((y >= 0) & (y <= 1)))
        )  # fmt: skip
        if not ok:
            raise StateFormatError("calibrator state is not a monotone map into [0, 1]")
        return cls(x, y, s.n, s.positives)


@dataclass(frozen=True)
class EstimatedPerformance:
    """CBPE estimates of one window; a value is None when undefined (e.g. no predicted
    positives for precision). ``n`` is the number (weight) of scores it rests on."""

    n: float
    accuracy: MetricValue | None
    precision: MetricValue | None
    recall: MetricValue | None
    f1: MetricValue | None
    auc: MetricValue | None

    def metric(self, name: str) -> MetricValue | None:
        """By rule name: ``estimated_accuracy`` (or plain ``accuracy``) etc."""
        base = name.removeprefix("estimated_")
        if base not in ESTIMATED:
            raise KeyError(name)
        value: MetricValue | None = getattr(self, base)
        return value

    def metrics(self) -> dict[str, MetricValue | None]:
        return {f"estimated_{m}": getattr(self, m) for m in ESTIMATED}


def estimate(
    calibrator: Calibrator,
    scores: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
    threshold: float = 0.5,
    *,
    eps: float = 0.0,
) -> EstimatedPerformance:
    """Expected performance of a window from its scores (optionally weighted). ``eps``:
    the Kolmogorov distance of this sample from the window's scores (0 for the raw
    scores), which sets the error bounds as described in the module docs."""
    s = np.asarray(scores, dtype=np.float64)
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = np.isfinite(s) & (w > 0)
    s, w = s[keep], w[keep]
    total = float(w.sum())
    if total <= 0:
        return EstimatedPerformance(0.0, None, None, None, None, None)
    p = calibrator.predict(s)
    pred = s >= threshold
    tp = float(np.dot(w[pred], p[pred])) / total
    fp = float(w[pred].sum()) / total - tp
    fn = float(np.dot(w, p)) / total - tp
    tn = 1.0 - tp - fp - fn
    return EstimatedPerformance(
        total,
        MetricValue(min(max(tp + tn, 0.0), 1.0), min(3 * eps, 1.0)),
        _ratio(tp, tp + fp, eps, eps),
        _ratio(tp, tp + fn, eps, eps),
        _ratio(2 * tp, 2 * tp + fp + fn, 2 * eps, 2 * eps),
        _auc(s, w, p, eps),
    )


def _ratio(num: float, den: float, num_err: float, den_err: float) -> MetricValue | None:
    """``num / den`` and its worst-case error when num and den are each off by up to
    their errors (capped at 1); None when ``den`` is 0."""
    if den <= 1e-12:
        return None
    value = min(max(num / den, 0.0), 1.0)
    if not (num_err or den_err):
        return MetricValue(value)
    if den - den_err <= 0:
        return MetricValue(value, 1.0)
    worst = max(abs((num + a) / (den + b) - value)
                for a in (-num_err, num_err) for b in (-den_err, den_err))  # fmt: skip
    return MetricValue(value, min(worst, 1.0))


def _auc(s: FloatArray, w: FloatArray, p: FloatArray, eps: float) -> MetricValue | None:
    _, inv = np.unique(s, return_inverse=True)
    pos = np.bincount(inv, weights=w * p)
    neg = np.bincount(inv, weights=w * (1.0 - p))
    total = float(w.sum())
    big_p, big_n = float(pos.sum()) / total, float(neg.sum()) / total
    if big_p <= 1e-12 or big_n <= 1e-12:
        return None
    below = np.cumsum(neg) - neg
    u = (float(np.dot(pos, below)) + 0.5 * float(np.dot(pos, neg))) / total**2
    return _ratio(u, big_p * big_n, 2 * eps, eps * (big_p + big_n) + eps * eps)


def estimate_from_profile(
    calibrator: Calibrator, profile: NumericProfile, threshold: float = 0.5
) -> EstimatedPerformance:
    """:func:`estimate` on the score sketch of a window (its weighted retained items), with
    the sketch's rank error as ``eps``. Missing and non-finite scores are not counted."""
    dist = profile.distribution()
    if dist.empty:
        return EstimatedPerformance(0.0, None, None, None, None, None)
    weights = np.diff(dist.cum, prepend=0.0) * dist.n
    return estimate(calibrator, dist.items, weights, threshold, eps=dist.epsilon)
