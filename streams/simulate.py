"""Seeded, reproducible prediction-event generator (pure: no Kafka, no clock).

- :func:`generate_events` — ``n`` well-formed event dicts (DESIGN.md §1);
- :func:`generate_records` — ``n`` :class:`SimRecord` (key, value bytes) where a
  ``spec.bad_ratio`` share are malformed, cycling through every kind in ``BAD_KINDS``;
- :func:`generate_payloads` — the fast path for benchmarks: lists of ``(key, value)``;
- :func:`generate_labelled` — chunks of records, each with its ground-truth
  :class:`SimLabel` (or ``None``), for ``driftline simulate``'s labels topic.

Same ``(spec, seed, start_ts)`` → same stream, byte for byte. Values are drawn column-wise
with numpy in fixed chunks of ``CHUNK`` events, so the first ``k`` events do not depend
on ``n``; malformed records draw from their own random stream and replace the event
at their index, so the well-formed events of :func:`generate_records` are exactly those
of :func:`generate_events` at the same indices; and every random draw happens whether or
not a drift uses it, so a drifted stream and an undrifted one share their base values.
Event ``i`` has event time ``start_ts + i / spec.events_per_s`` (without ``spec.ops``
volume changes or stalls); drift starts and ends, and a cycle's phase, are offsets in
that event time (:mod:`streams.simulate_drift`).

``generate_events(..., first=k)`` draws the events from index ``k`` on without the ``k``
before them: the ids, event times, drift (cycles included) and distributions of the
stream's events ``k, k + 1, ...``, but their random values come from a random state of
their own (seeded by ``seed`` and ``k``), so they are not the values the stream from 0
has there — those depend on every draw before them. The same ``(spec, seed, start_ts,
k)`` gives the same events; ``first=0`` is the stream itself.

Labels (``spec.labels``, a :class:`~streams.simulate_spec.LabelPlan`) come from a third
random stream, drawn in the same fixed chunks whether or not labels are used, so the
predictions are the same with or without labels and every label setting:

- *binary* models are **calibrated** where no performance change applies: the label is
  1 with probability ``s`` (the emitted score), so with threshold 0.5 the prediction is
  right with probability ``c = max(s, 1 - s)`` and the expected accuracy is ``E[c]``.
- ``accuracy=-d`` (``0 < d <= 0.5``) makes each affected prediction right with
  probability ``c - d`` instead (``c >= 0.5``, so that is a probability for every
  prediction): the expected accuracy falls by exactly ``d``, whatever the score
  distribution — so with or without input drift. (A global label-flip probability
  ``q = d / (2 E[c] - 1)`` does the same on average but needs ``E[c]`` of the current,
  possibly drifted, scores and fails once ``d > 2 E[c] - 1``.) Several changes at once
  add up; the probability is clipped to [0, 1].
- *regression*: label = prediction + N(0, sd), ``sd = noise_sd`` (MAE ``sd * sqrt(2/pi)``,
  RMSE ``sd``); ``mae=+x`` raises sd by ``x * sqrt(pi/2)``, ``rmse=+x`` by ``x`` (sd is
  clipped at 0), so the expected MAE / RMSE rise by exactly ``x``.
- a ``labels.ratio`` share of the predictions gets a label (a uniform draw below it),
  ``labels.delay`` after the prediction in event time; malformed records get none.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from sketches.errors import ConfigError
from streams.simulate_drift import active, drift_numeric
from streams.simulate_ops import scaled
from streams.simulate_spec import (
    BAD_KINDS,
    REG_CENTER,
    REG_SCALE,
    UNKNOWN_MODEL,
    BadKind,
    SimSpec,
)

CHUNK = 4096
_ENCODER = msgspec.json.Encoder()
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class SimRecord:
    """One generated Kafka message; ``event`` is ``None`` for a malformed one."""

    index: int
    key: bytes | None
    value: bytes
    event: dict[str, Any] | None
    bad: BadKind | None


@dataclass(frozen=True, slots=True)
class SimLabel:
    """The ground truth of prediction ``index``: ``ts`` = ``prediction_ts`` + delay
    (epoch seconds; ``wire_ts`` is how the event carries it, like the predictions' ts);
    :meth:`event` is the label event of DESIGN.md §1."""

    index: int
    model: str
    id: str
    label: int | float
    ts: float
    prediction_ts: float
    wire_ts: str | float

    def event(self) -> dict[str, Any]:
        return {"model": self.model, "id": self.id, "label": self.label, "ts": self.wire_ts}

    def encode(self) -> bytes:
        return _ENCODER.encode(self.event())


def _iso_ms(epoch_s: FloatArray) -> list[str]:
    ms = np.round(epoch_s * 1000.0).astype("int64").astype("datetime64[ms]")
    return [s + "Z" for s in np.datetime_as_string(ms, unit="ms").tolist()]


def _with_nulls(values: list[Any], null: BoolArray) -> list[Any]:
    for i in np.flatnonzero(null).tolist():
        values[i] = None
    return values


class _ChunkMaker:
    """Draws chunk after chunk of events for one spec (the only stateful part)."""

    def __init__(self, spec: SimSpec, seed: int, start_ts: float, first: int = 0) -> None:
        self.spec = spec
        self.seed = seed
        self.start_ts = start_ts
        # from event 0: the stream's own random state; from ``first`` > 0 a fresh one of
        # its own (module docstring)
        entropy = (np.random.SeedSequence(seed).spawn(2)[0] if first == 0
                   else np.random.SeedSequence(seed, spawn_key=(0, first)))
        self.rng = np.random.default_rng(entropy)
        models = spec.models
        self.names = list(models[0].feature_names)
        self.model_names = [m.name for m in models]
        numeric = range(len(models[0].numeric))
        self.mu = [np.array([m.numeric[j].mean for m in models]) for j in numeric]
        self.sd = [np.array([m.numeric[j].sd for m in models]) for j in numeric]
        self.w = [np.array([m.numeric[j].weight for m in models]) for j in numeric]
        self.cum = [[np.cumsum(m.categorical[j].weights) for m in models]
                    for j in range(len(models[0].categorical))]
        self.cats = [np.array(c.categories, dtype=object) for c in models[0].categorical]
        self.regression = np.array([m.task == "regression" for m in models])
        self.timeline = spec.timeline()

    def _null_p(self, feature: str, t: FloatArray, mi: npt.NDArray[np.int64]) -> FloatArray:
        p = np.full(t.shape, self.spec.null_ratio)
        for d, mask in active(self.spec.drifts, feature, "nulls", t, mi, self.model_names):
            p[mask] = d.amount
        return p

    def chunk(self, first: int) -> list[dict[str, Any]]:
        spec, rng, size = self.spec, self.rng, CHUNK
        t = self.timeline.offsets(first + np.arange(size))
        mi = rng.integers(0, len(spec.models), size)
        logit = np.zeros(size)
        columns: list[list[Any]] = []
        for j, f in enumerate(spec.models[0].numeric):
            z, u = rng.standard_normal(size), rng.random(size)
            mu, sd = self.mu[j][mi], self.sd[j][mi]
            x = mu + sd * z
            drift_numeric(spec.drifts, f.name, x, mu, sd, t, mi, self.model_names)
            null = u < self._null_p(f.name, t, mi)
            logit += np.where(null, 0.0, self.w[j][mi] * (x - mu) / sd)
            x = np.rint(x) if f.integer else np.round(x, 2)
            values = x.astype(np.int64).tolist() if f.integer else x.tolist()
            columns.append(_with_nulls(values, null))
        for j, c in enumerate(spec.models[0].categorical):
            u_cat, u_null, u_new = rng.random(size), rng.random(size), rng.random(size)
            ci = np.zeros(size, dtype=np.int64)
            for m in range(len(spec.models)):
                sel = mi == m
                ci[sel] = np.searchsorted(self.cum[j][m], u_cat[sel], side="right")
            values = self.cats[j][np.minimum(ci, len(c.categories) - 1)].tolist()
            for d, mask in active(spec.drifts, c.name, "unseen", t, mi, self.model_names):
                for i in np.flatnonzero(mask & (u_new < d.amount)).tolist():
                    values[i] = f"{c.name}_unseen_{int(10 * u_new[i] / d.amount)}"
            columns.append(_with_nulls(values, u_null < self._null_p(c.name, t, mi)))
        score = np.round(1.0 / (1.0 + np.exp(-logit)), 4)
        if self.regression.any():
            score = np.where(self.regression[mi], np.round(REG_CENTER + REG_SCALE * logit, 2),
                             score)
        prediction = score.tolist()
        raw_latency = np.exp(rng.normal(2.3, 0.4, size))
        factor = scaled(spec.ops, "latency", t, 1.0)
        latency = np.round(raw_latency if factor is None else raw_latency * factor, 2).tolist()
        epoch = self.start_ts + t
        ts: list[Any] = _iso_ms(epoch) if spec.ts_format == "rfc3339" else np.round(
            epoch, 3).tolist()
        names, models, prefix = self.names, spec.models, f"req-{self.seed}-"
        return [
            {"model": models[m].name, "version": models[m].version, "id": f"{prefix}{first + i}",
             "ts": ts[i], "features": dict(zip(names, row, strict=True)),
             "prediction": prediction[i], "latency_ms": latency[i]}
            for i, (m, row) in enumerate(zip(mi.tolist(), zip(*columns, strict=True), strict=True))
        ]


def _chunks(spec: SimSpec, n: int | None, start_ts: float, seed: int, first: int = 0
            ) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    maker = _ChunkMaker(spec, seed, start_ts, first)
    end = None if n is None else first + n
    while end is None or first < end:
        events = maker.chunk(first)
        if end is not None and first + CHUNK > end:
            events = events[: end - first]
        yield first, events
        first += CHUNK


def generate_events(spec: SimSpec, n: int | None, start_ts: float, seed: int = 0, *,
                    first: int = 0) -> Iterator[dict[str, Any]]:
    """``n`` (``None``: endless) well-formed events; ``spec.bad_ratio`` is ignored.

    ``first``: the events from index ``first`` on, with the ids, event times and drift
    of the stream's events there, drawn without the events before them (module
    docstring: fresh values, not the stream's own)."""
    if first < 0:
        raise ConfigError(f"first must be >= 0, got {first}")
    for _, events in _chunks(spec, n, start_ts, seed, first):
        yield from events


def malformed(kind: BadKind, event: dict[str, Any]) -> bytes:
    """The bytes of a malformed message of ``kind``, derived from a good ``event``."""
    good = _ENCODER.encode(event)
    if kind == "not_json":
        return b"not json: " + good[:40]
    if kind == "non_utf8":
        return good.replace(b'"model":"', b'"model":"\xff\xfe', 1)
    if kind == "missing_fields":
        return _ENCODER.encode({k: v for k, v in event.items() if k != "features"})
    if kind == "wrong_types":
        return _ENCODER.encode(dict(event, prediction=[0.1, 0.9], features={"x": {"y": 1}}))
    if kind == "nan":
        return good.replace(b'"prediction":', b'"prediction":NaN,"was":', 1)
    return _ENCODER.encode(dict(event, model=UNKNOWN_MODEL))


def _record_chunks(spec: SimSpec, n: int | None, start_ts: float, seed: int
                   ) -> Iterator[tuple[int, list[dict[str, Any]], list[SimRecord]]]:
    bad_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])
    n_bad = 0
    timeline = spec.timeline()
    for first, events in _chunks(spec, n, start_ts, seed):
        share = scaled(spec.ops, "invalid", timeline.offsets(first + np.arange(CHUNK)),
                       spec.bad_ratio)
        bad_at = set(np.flatnonzero(bad_rng.random(CHUNK) < (
            spec.bad_ratio if share is None else share)).tolist())
        records = []
        for i, event in enumerate(events):
            key = event["id"].encode()
            if i in bad_at:
                kind = BAD_KINDS[n_bad % len(BAD_KINDS)]
                n_bad += 1
                records.append(SimRecord(first + i, key, malformed(kind, event), None, kind))
            else:
                records.append(SimRecord(first + i, key, _ENCODER.encode(event), event, None))
        yield first, events, records


def generate_records(spec: SimSpec, n: int | None, start_ts: float, seed: int = 0
                     ) -> Iterator[SimRecord]:
    """``n`` (``None``: endless) messages, a ``spec.bad_ratio`` share of them malformed
    (kinds in turn, so every kind appears once there are ``len(BAD_KINDS)`` bad ones)."""
    for _, _, records in _record_chunks(spec, n, start_ts, seed):
        yield from records


class _Labeler:
    """Draws the labels of chunk after chunk of events (module docstring: the rules)."""

    def __init__(self, spec: SimSpec, seed: int, start_ts: float) -> None:
        self.spec = spec
        self.start_ts = start_ts
        self.rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[2])
        self.model_index = {m.name: k for k, m in enumerate(spec.models)}
        self.regression = np.array([m.task == "regression" for m in spec.models])
        self.timeline = spec.timeline()

    def _active(self, metric: str, t: FloatArray, mi: npt.NDArray[np.int64]
                ) -> Iterator[tuple[BoolArray, float]]:
        for c in self.spec.labels.changes:
            if c.metric != metric:
                continue
            mask = (t >= c.start_s) & (t < c.end_s)
            if c.model is not None:
                mask &= mi == self.model_index[c.model]
            if mask.any():
                yield mask, c.amount

    def chunk(self, first: int, events: list[dict[str, Any]]) -> list[SimLabel | None]:
        plan, rng, n = self.spec.labels, self.rng, len(events)
        # every draw, every chunk, whatever the plan: the stream stays reproducible
        u_keep, u_delay, u_right = rng.random(CHUNK)[:n], rng.random(CHUNK)[:n], rng.random(
            CHUNK)[:n]
        z = rng.standard_normal(CHUNK)[:n]
        t = self.timeline.offsets(first + np.arange(n))
        mi = np.array([self.model_index[e["model"]] for e in events], dtype=np.int64)
        pred = np.array([e["prediction"] for e in events], dtype=np.float64)
        # binary: P(right) = max(s, 1 - s) - drop
        positive = pred >= 0.5
        right_p = np.where(positive, pred, 1.0 - pred)
        for mask, amount in self._active("accuracy", t, mi):
            right_p[mask] += amount
        right = u_right < np.clip(right_p, 0.0, 1.0)
        binary = (right == positive).astype(np.int64)
        # regression: prediction + N(0, sd)
        sd = np.full(n, plan.noise_sd)
        for mask, amount in self._active("mae", t, mi):
            sd[mask] += amount * np.sqrt(np.pi / 2)
        for mask, amount in self._active("rmse", t, mi):
            sd[mask] += amount
        numeric = np.round(pred + np.clip(sd, 0.0, None) * z, 2)
        values: list[int | float] = binary.tolist()
        if self.regression.any():  # ints stay ints for binary models
            reg = self.regression[mi]
            values = [v if not r else x for v, r, x in zip(
                values, reg.tolist(), numeric.tolist(), strict=True)]
        prediction_ts = self.start_ts + t
        label_ts = prediction_ts + plan.delay.quantile(u_delay)
        wire: list[Any] = (_iso_ms(label_ts) if self.spec.ts_format == "rfc3339"
                           else np.round(label_ts, 3).tolist())
        keep = (u_keep < plan.ratio).tolist()
        return [
            SimLabel(first + i, e["model"], e["id"], values[i], lts, pts, wire[i])
            if keep[i] else None
            for i, (e, lts, pts) in enumerate(zip(events, label_ts.tolist(),
                                                  prediction_ts.tolist(), strict=True))
        ]


def generate_labelled(spec: SimSpec, n: int | None, start_ts: float, seed: int = 0
                      ) -> Iterator[list[tuple[SimRecord, SimLabel | None]]]:
    """Chunks of the records of :func:`generate_records` (the same bytes), each with its
    label — ``None`` when the record is malformed or not among the labelled ``ratio``."""
    labeler = _Labeler(spec, seed, start_ts)
    for first, events, records in _record_chunks(spec, n, start_ts, seed):
        labels = labeler.chunk(first, events)
        yield [(r, lab if r.event is not None else None)
               for r, lab in zip(records, labels, strict=True)]


def generate_payloads(spec: SimSpec, n: int | None, start_ts: float, seed: int = 0
                      ) -> Iterator[list[tuple[bytes, bytes]]]:
    """The fast path: chunks of ``(key, value)``; with ``bad_ratio == 0`` it skips the
    per-record objects (the same bytes as :func:`generate_records`)."""
    if spec.bad_ratio > 0 or any(c.kind == "invalid" for c in spec.ops):
        batch: list[tuple[bytes, bytes]] = []
        for rec in generate_records(spec, n, start_ts, seed):
            batch.append((rec.key or b"", rec.value))
            if len(batch) == CHUNK:
                yield batch
                batch = []
        if batch:
            yield batch
        return
    encode = _ENCODER.encode
    for _, events in _chunks(spec, n, start_ts, seed):
        yield [(e["id"].encode(), encode(e)) for e in events]


def without_drift(spec: SimSpec) -> SimSpec:
    """The same spec with no drift, no malformed records and no performance change (the
    training distribution)."""
    return replace(spec, drifts=(), bad_ratio=0.0, labels=replace(spec.labels, changes=()))


ColumnCounts = dict[str, dict[str, dict[str, int]]]


def count_columns(events: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> ColumnCounts:
    """``{model: {column: {"count": n, "missing": k}}}`` plus a ``"__events__"`` column —
    the expected totals exactness tests compare the processor's windows against."""
    out: ColumnCounts = {}
    for event in events:
        cols = out.setdefault(event["model"], {"__events__": {"count": 0, "missing": 0}})
        cols["__events__"]["count"] += 1
        for name, value in event["features"].items():
            c = cols.setdefault(name, {"count": 0, "missing": 0})
            c["count"] += 1
            if value is None:
                c["missing"] += 1
    return out
