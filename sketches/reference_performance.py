"""The reference's own performance: realized metrics over the labelled reference and per
contiguous chunk (their mean and sd feed ``band`` rules), plus the CBPE calibrator.

Built from two arrays, prediction and label, in row order. Rows where either is missing
(None / NaN) are left out. Values are exact (computed from the raw arrays; AUC by ranks,
ties counted 0.5), so every reference metric has error bound 0. Class names follow the
contract (:func:`sketches.performance.class_key`); beyond the 20 most frequent label
classes, classes become ``~other`` as the join does.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import msgspec
import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

from sketches import _codec
from sketches.cbpe import Calibrator
from sketches.errors import InputDataError, StateFormatError
from sketches.performance import (
    MAX_CLASSES,
    OTHER,
    TASKS,
    PerformanceWindow,
    Task,
    class_key,
    classification_metrics,
)

AnyArray = npt.NDArray[np.generic]
NEGATIVE = "~negative"
"""Predicted class of a binary score below the threshold when the labels do not name
exactly one negative class (metrics only distinguish positive from not positive)."""


@dataclass(frozen=True, slots=True)
class ReferenceMetric:
    """A metric on the whole reference and its values per chunk (defined ones only)."""

    value: float | None
    count: int
    chunks: tuple[float, ...] = ()

    @property
    def chunk_mean(self) -> float | None:
        return sum(self.chunks) / len(self.chunks) if len(self.chunks) >= 2 else None

    @property
    def chunk_sd(self) -> float | None:
        """Sample standard deviation of the chunk values; None with fewer than two."""
        mean = self.chunk_mean
        if mean is None:
            return None
        return math.sqrt(sum((x - mean) ** 2 for x in self.chunks) / (len(self.chunks) - 1))


class _MetricState(msgspec.Struct, array_like=True):
    value: float | None
    count: int
    chunks: list[float]


class _State(msgspec.Struct, array_like=True):
    task: str
    positive: str
    threshold: float
    rows: int
    classes: list[str]
    metrics: dict[str, _MetricState]
    calibrator: bytes | None


@dataclass(frozen=True)
class ReferencePerformance:
    task: Task
    positive: str
    threshold: float
    rows: int
    """Labelled rows (prediction and label both present)."""
    classes: tuple[str, ...]
    metrics: Mapping[str, ReferenceMetric]
    calibrator: Calibrator | None = None
    """Binary with scores only."""

    MAGIC = b"DLRP"
    VERSION = 1

    def to_bytes(self) -> bytes:
        metrics = {k: _MetricState(m.value, m.count, list(m.chunks))
                   for k, m in self.metrics.items()}  # fmt: skip
        cal = self.calibrator.to_bytes() if self.calibrator is not None else None
        state = _State(self.task, self.positive, self.threshold, self.rows, list(self.classes),
                       metrics, cal)  # fmt: skip
        return _codec.pack(self.MAGIC, self.VERSION, state)

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferencePerformance:
        s = _codec.unpack(data, cls.MAGIC, cls.VERSION, _State)
        if s.task not in TASKS:
            raise StateFormatError(f"reference performance has unknown task {s.task!r}")
        metrics = {k: ReferenceMetric(m.value, m.count, tuple(m.chunks))
                   for k, m in s.metrics.items()}  # fmt: skip
        cal = Calibrator.from_bytes(s.calibrator) if s.calibrator is not None else None
        return cls(s.task, s.positive, s.threshold, s.rows, tuple(s.classes), metrics, cal)


def infer_task(predictions: AnyArray, labels: AnyArray) -> Task:
    """String / bool labels: classification (binary with two classes). Numeric labels:
    binary when they are only 0 / 1 and the predictions are numbers in [0, 1] (or
    classes); classification when the predictions are not numbers; else regression."""
    pred, lab = _present(predictions, labels)
    if lab.size == 0:
        raise InputDataError("no rows with both a prediction and a label")
    if _numeric(lab):
        values = np.unique(lab.astype(np.float64))
        if np.isin(values, (0.0, 1.0)).all() and (
            not _numeric(pred) or _in_unit(pred)
        ):
            return "binary"
        if _numeric(pred):
            return "regression"
    classes = np.unique(class_keys(lab))
    return "binary" if classes.size <= 2 else "multiclass"


Metrics = Callable[[int, int], dict[str, float | None]]


def build_reference_performance(
    predictions: AnyArray,
    labels: AnyArray,
    *,
    task: Task | None = None,
    positive: str = "1",
    threshold: float = 0.5,
    chunks: int = 10,
) -> ReferencePerformance:
    """Metrics of the whole reference and of ``chunks`` contiguous chunks of
    ``ceil(rows / chunks)`` rows (counted before dropping unlabelled rows)."""
    if len(predictions) != len(labels):
        raise InputDataError(f"{len(predictions)} predictions but {len(labels)} labels")
    task = task or infer_task(predictions, labels)
    keep = _mask(predictions) & _mask(labels)
    rows = int(keep.sum())
    if rows == 0:
        raise InputDataError("no rows with both a prediction and a label")
    pred, lab = np.asarray(predictions)[keep], np.asarray(labels)[keep]
    classes: tuple[str, ...] = ()
    calibrator = None
    if task == "regression":
        metrics = _regression(pred, lab)
    else:
        metrics, classes, calibrator = _classification(pred, lab, task, positive, threshold)
    whole = metrics(0, rows)
    parts: list[dict[str, float | None]] = []
    if chunks >= 2:
        size = math.ceil(len(labels) / chunks)
        edges = np.searchsorted(np.flatnonzero(keep), np.arange(0, len(labels) + size, size))
        parts = [metrics(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]
    out = {}
    for name, value in whole.items():
        values = tuple(v for m in parts if (v := m.get(name)) is not None)
        out[name] = ReferenceMetric(value, rows, values)
    return ReferencePerformance(task, positive, threshold, rows, classes, out, calibrator)


def _regression(pred: AnyArray, lab: AnyArray) -> Metrics:
    if not (_numeric(pred) and _numeric(lab)):
        raise InputDataError("regression needs numeric predictions and labels")
    p64, l64 = pred.astype(np.float64), lab.astype(np.float64)

    def metrics(a: int, b: int) -> dict[str, float | None]:
        e = p64[a:b] - l64[a:b]
        return {"mae": float(np.abs(e).mean()), "rmse": math.sqrt(float(np.square(e).mean())),
                "mean_error": float(e.mean())}  # fmt: skip

    return metrics


def _classification(
    pred: AnyArray, lab: AnyArray, task: Task, positive: str, threshold: float
) -> tuple[Metrics, tuple[str, ...], Calibrator | None]:
    lk = class_keys(lab)
    kept = [c for c, _ in Counter(lk.tolist()).most_common(MAX_CLASSES)]
    if task == "binary" and positive not in kept:
        if positive not in lk:
            raise InputDataError(
                f"positive class {positive!r} is not among the label classes "
                f"({', '.join(sorted(kept)[:5])}): set the positive class"
            )
        kept = [positive, *kept[: MAX_CLASSES - 1]]
    classes = tuple(sorted(kept))
    lk = np.where(np.isin(lk, classes), lk, OTHER)
    scores = pred.astype(np.float64) if task == "binary" and _numeric(pred) else None
    calibrator = None
    if scores is not None:
        negatives = [c for c in classes if c != positive]
        neg = negatives[0] if len(negatives) == 1 else NEGATIVE
        pk = np.where(scores >= threshold, positive, neg)
        calibrator = Calibrator.fit(scores, lk == positive)
    else:
        pk = class_keys(pred)
        pk = np.where(np.isin(pk, classes), pk, OTHER)

    def metrics(a: int, b: int) -> dict[str, float | None]:
        window = PerformanceWindow(labels=b - a, confusion=_confusion(pk[a:b], lk[a:b]))
        out = {k: m.value.value if m.value is not None else None
               for k, m in classification_metrics(window, task, positive).items()}  # fmt: skip
        if scores is not None:
            out["auc"] = exact_auc(scores[a:b], lk[a:b] == positive)
        else:
            out.pop("auc", None)
        return out

    return metrics, classes, calibrator


def exact_auc(scores: npt.NDArray[np.float64], positive: npt.NDArray[np.bool_]) -> float | None:
    """Mann-Whitney ROC AUC (ties 0.5); None unless both classes occur."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(scores)
    u = float(ranks[positive].sum()) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def class_keys(values: AnyArray) -> npt.NDArray[np.str_]:
    """The contract's class string of every value (vectorised for numeric arrays)."""
    arr = np.asarray(values)
    if arr.dtype.kind == "b":
        return np.where(arr, "true", "false")
    if arr.dtype.kind in "iu":
        return arr.astype(str)
    if arr.dtype.kind == "f" and bool(np.all(np.mod(arr, 1) == 0)):
        return arr.astype(np.int64).astype(str)
    return np.asarray([class_key(v) for v in arr.tolist()], dtype=str)


def _confusion(pred: AnyArray, lab: AnyArray) -> dict[tuple[str, str], int]:
    return dict(Counter(zip(pred.tolist(), lab.tolist(), strict=True)))


def _numeric(arr: AnyArray) -> bool:
    a = np.asarray(arr)
    if a.dtype.kind in "iuf":
        return True
    if a.dtype.kind != "O":
        return False
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in a.tolist())


def _in_unit(arr: AnyArray) -> bool:
    a = np.asarray(arr, dtype=np.float64)
    return bool(np.all((a >= 0) & (a <= 1)))


def _mask(arr: AnyArray) -> npt.NDArray[np.bool_]:
    a = np.asarray(arr)
    if a.dtype.kind == "f":
        return ~np.isnan(a)
    if a.dtype.kind == "O":
        return np.asarray([not (v is None or (isinstance(v, float) and math.isnan(v)))
                           for v in a.tolist()], dtype=bool)  # fmt: skip
    return np.ones(a.shape, dtype=bool)


def _present(predictions: AnyArray, labels: AnyArray) -> tuple[AnyArray, AnyArray]:
    keep = _mask(predictions) & _mask(labels)
    return np.asarray(predictions)[keep], np.asarray(labels)[keep]
