"""Events of one window group → columns for :meth:`DatasetProfile.update`."""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from streams.events import Event


def columnarise(events: Sequence[Event]) -> dict[str, Sequence[object]]:
    """Columns of a group of events: every feature, ``prediction`` (scalar) or
    ``prediction.<class>`` (class → probability objects), and ``latency_ms`` when any
    event has it. A column some events lack gets None there (counted as missing);
    columns absent from a whole group are counted missing by ``DatasetProfile``.
    A feature named ``prediction``, ``prediction.*`` or ``latency_ms`` is shadowed."""
    feats = [e.features for e in events]
    order = tuple(feats[0])
    cols: dict[str, Sequence[object]] = {}
    rows: list[Any] | None = None
    if len(order) > 1 and all(n == len(order) for n in map(len, feats)):
        # the common case: every event has the same feature names; pick them in one
        # order and transpose, all in C, instead of one dict lookup per value
        try:
            rows = list(map(itemgetter(*order), feats))
        except KeyError:
            rows = None
    if rows is not None:
        cols = dict(zip(order, zip(*rows, strict=True), strict=True))
    else:
        names: dict[str, None] = {}
        for f in feats:
            names.update(dict.fromkeys(f))
        cols = {name: [f.get(name) for f in feats] for name in names}
    preds = [e.prediction for e in events]
    classes: dict[str, None] = {}
    for p in preds:
        if isinstance(p, dict):
            classes.update(dict.fromkeys(p))
    if classes:
        for c in classes:
            cols[f"prediction.{c}"] = [p.get(c) if isinstance(p, dict) else None for p in preds]
    if len(classes) == 0 or not all(isinstance(p, dict) for p in preds):
        cols["prediction"] = [None if isinstance(p, dict) else p for p in preds]
    latency = [e.latency_ms for e in events]
    if any(v is not None for v in latency):
        cols["latency_ms"] = list(latency)
    return cols
