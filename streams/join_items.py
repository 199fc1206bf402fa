"""What the label join keeps of a prediction or label: pure functions (no Redis).

:mod:`streams.core` turns accepted prediction events with an ``id`` into
:class:`JoinItem` s for models with a :class:`~streams.windows.LabelSpec`;
:mod:`streams.labels` does the same for label events; :mod:`streams.join` applies them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

from streams.windows import LabelSpec

MAX_TEXT = 64
"""Longest class / label string kept (longer ones are cut)."""


class JoinItem(NamedTuple):
    """One record bound for the join, as the processor / label runner hand it over."""

    offset: int
    model: str
    id: str
    ts_ms: int
    version: str = ""
    """The version; for predictions of a segmented model followed by its segments'
    version names, comma-separated (the outcome counts in each of their windows)."""
    pclass: str = ""
    number: str = ""
    """A binary score, or the regression prediction, formatted (``repr`` of a float)."""
    label: str = ""
    """Inline label (predictions) or the label (label records); "" for none."""


MAX_NUMBER = 1e100
"""Larger predictions or labels are not scored (their squared error would overflow)."""


def label_text(value: float | str | bool) -> str:
    """A label / class value as the join stores it: integral numbers without ``.0``,
    bools as ``true`` / ``false``, strings as they are but ``|`` (it separates the
    predicted and the true class in the stored confusion cells) written ``/``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | int):
        f = float(value)
        return str(int(f)) if f.is_integer() and abs(f) < 2**53 else repr(f)
    return value.replace("|", "/")


def _number(value: object) -> float | None:
    """A finite number within :data:`MAX_NUMBER`, else None."""
    if isinstance(value, bool) or not isinstance(value, float | int):
        return None
    try:
        f = float(value)
    except OverflowError:
        return None
    return f if math.isfinite(f) and abs(f) <= MAX_NUMBER else None


def prediction_fields(spec: LabelSpec, prediction: float | str | Mapping[str, float]
                      ) -> tuple[str, str] | None:
    """(class, number) the join keeps for a prediction under ``spec``; None when the
    prediction cannot be scored for the model's task (counted, not joined)."""
    if spec.task == "regression":
        num = _number(prediction)
        return None if num is None else ("", repr(num))
    if isinstance(prediction, Mapping):
        if not prediction:
            return None
        best = max(prediction, key=lambda c: prediction[c])
        if spec.task == "binary" and spec.positive in prediction:
            score = float(prediction[spec.positive])
            return "", repr(min(1.0, max(0.0, score)))
        return label_text(best)[:MAX_TEXT], ""
    if isinstance(prediction, str):
        return label_text(prediction)[:MAX_TEXT], ""
    if isinstance(prediction, bool):
        return label_text(prediction), ""
    score = float(prediction)
    if spec.task == "binary" and 0.0 <= score <= 1.0:
        return "", repr(score)
    return label_text(score)[:MAX_TEXT], ""


def label_fits(spec: LabelSpec, label: float | str | bool) -> str | None:
    """The stored label text, or None when the label has the wrong type for the task."""
    if spec.task == "regression":
        num = _number(label)
        return None if num is None else repr(num)
    text = label_text(label)[:MAX_TEXT]
    if spec.task == "binary" and text not in (spec.positive, spec.negative):
        return None
    return text




def prediction_item(spec: LabelSpec, offset: int, model: str, ident: str, ts_ms: int,
                    version: str, prediction: float | str | Mapping[str, float],
                    label: float | str | bool | None) -> JoinItem | None:
    """The join item of an accepted prediction event (None: not scorable for the task)."""
    fields = prediction_fields(spec, prediction)
    if fields is None:
        return None
    inline = "" if label is None else (label_fits(spec, label) or "")
    return JoinItem(offset, model, ident, ts_ms, version, fields[0], fields[1], inline)
