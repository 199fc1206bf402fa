"""Driving the simulator: predictions and their labels in event-time order, pacing them
into sinks at a rate, and training files.

Kafka is not imported here either: a sink is any ``send(value, key)`` callable
(``PredictionProducer.send_bytes`` in the CLI), and time is injected.

:class:`LabelledStream` merges the predictions with their labels by event time: a
prediction's label enters a heap once the prediction has been handed on (so a label never
precedes its prediction, and a prediction the run stopped before sending gets none), and
a label leaves the heap just before the first prediction at or after its ts. The merged
stream's event times never decrease. When the predictions end (``--count``) or the run
stops (``--duration``), :meth:`LabelledStream.rest` gives the labels still waiting:
with ``flush="due"`` (the default) only those due by the last prediction's event time —
the rest would have arrived after the run, so they never do (a run of ``--count`` events
ends with roughly ``delay x rate`` predictions unlabelled); with ``flush="all"`` every one,
some then stamped up to the longest delay after the last prediction.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np

from sketches.errors import ConfigError
from streams.simulate import (
    SimLabel,
    generate_events,
    generate_labelled,
    generate_payloads,
    without_drift,
)
from streams.simulate_spec import LabelPlan, SimSpec

log = logging.getLogger(__name__)

Sink = Callable[[bytes, bytes | None], object]
Progress = Callable[["RunStats"], None]
Flush = Literal["due", "all"]
FLUSH_MODES: tuple[Flush, ...] = ("due", "all")


@dataclass(frozen=True, slots=True)
class LabelOut:
    """A label message (value: the label event's JSON; key: the prediction id)."""

    key: bytes
    value: bytes


Message = tuple[bytes | None, bytes]
_TIE_S = 1e-6
"""Event times this close count as equal (start + i / rate + delay is a float sum)."""


class LabelledStream:
    """``n`` (``None``: endless) prediction messages — the bytes of
    :func:`~streams.simulate.generate_records` — with their labels as :class:`LabelOut`,
    merged by event time (module docstring). ``labels=False``: the predictions alone."""

    def __init__(self, spec: SimSpec, n: int | None, start_ts: float, seed: int = 0, *,
                 labels: bool = True, flush: Flush = "due") -> None:
        if flush not in FLUSH_MODES:
            raise ConfigError(f"label flush must be one of {', '.join(FLUSH_MODES)}")
        self.spec = spec
        self.n = n
        self.start_ts = start_ts
        self.seed = seed
        self.labels = labels and spec.labels.ratio > 0
        self.flush = flush
        self.last_ts = float("-inf")  # event time of the last prediction handed on
        self._heap: list[tuple[float, int, SimLabel]] = []

    def __iter__(self) -> Iterator[Message | LabelOut]:
        if not self.labels:  # the fast path, the same bytes
            for batch in generate_payloads(self.spec, self.n, self.start_ts, self.seed):
                yield from batch
            return
        heap, timeline, t0 = self._heap, self.spec.timeline(), self.start_ts
        for chunk in generate_labelled(self.spec, self.n, self.start_ts, self.seed):
            offsets = timeline.offsets(np.array([r.index for r, _ in chunk])).tolist()
            for (record, label), offset in zip(chunk, offsets, strict=True):
                ts = t0 + offset
                while heap and heap[0][0] <= ts + _TIE_S:
                    yield self._out(heapq.heappop(heap)[2])
                yield record.key, record.value
                self.last_ts = ts  # handed on: now its label may wait
                if label is not None and self.labels:
                    heapq.heappush(heap, (label.ts, label.index, label))
        yield from self.rest()

    def rest(self) -> Iterator[LabelOut]:
        """The labels still waiting, in event-time order (``flush``: which of them)."""
        heap = self._heap
        while heap and (self.flush == "all" or heap[0][0] <= self.last_ts + _TIE_S):
            yield self._out(heapq.heappop(heap)[2])

    @staticmethod
    def _out(label: SimLabel) -> LabelOut:
        return LabelOut(label.id.encode(), label.encode())


@dataclass(frozen=True, slots=True)
class RunStats:
    sent: int
    elapsed_s: float
    labels: int = 0

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


def pace(
    messages: Iterable[Message | LabelOut],
    send: Sink,
    *,
    rate: float | None,
    duration_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    progress: Progress | None = None,
    progress_every_s: float = 2.0,
    send_label: Sink | None = None,
    rest: Callable[[], Iterable[LabelOut]] | None = None,
    schedule: Callable[[int], float] | None = None,
) -> RunStats:
    """Send ``(key, value)`` pairs (as :func:`~streams.simulate.generate_payloads` yields)
    to ``send(value, key)`` at ``rate`` per second (``None``: as fast as possible),
    stopping when ``messages`` ends or after ``duration_s``.

    :class:`LabelOut` items (a :class:`LabelledStream`) go to ``send_label`` at once; they
    do not count towards the rate. When the run stops, the labels ``rest()`` gives (e.g.
    :meth:`LabelledStream.rest`) are sent too. ``schedule(k)``: when (seconds after the
    start) to send message ``k`` instead of ``k / rate`` — a spec's
    :meth:`~streams.simulate_spec.SimSpec.timeline` under volume changes and stalls (a
    stall really pauses sending)."""
    if rate is not None and rate <= 0:
        raise ConfigError("rate must be > 0 (or 'max')")
    start = clock()
    next_report = start + progress_every_s
    sent = labels = 0
    now = start
    for item in messages:
        if isinstance(item, LabelOut):
            if send_label is not None:
                send_label(item.value, item.key)
                labels += 1
            continue
        key, value = item
        if rate is not None:
            ahead = start + (schedule(sent) if schedule else sent / rate) - now
            if ahead > 0.002:
                sleep(ahead)
            now = clock()
        elif sent % 1024 == 0:
            now = clock()
        if duration_s is not None and now - start >= duration_s:
            break
        send(value, key)
        sent += 1
        if progress is not None and now >= next_report:
            progress(RunStats(sent, now - start, labels))
            next_report = now + progress_every_s
    if rest is not None and send_label is not None:
        for label in rest():
            send_label(label.value, label.key)
            labels += 1
    stats = RunStats(sent, clock() - start, labels)
    if progress is not None:
        progress(stats)
    return stats


def _columns(events: Iterator[dict[str, Any]], names: tuple[str, ...]) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {name: [] for name in (*names, "prediction")}
    for event in events:
        features = event["features"]
        for name in names:
            cols[name].append(features[name])
        cols["prediction"].append(event["prediction"])
    return cols


def _labelled_columns(spec: SimSpec, rows: int, start_ts: float, seed: int,
                      names: tuple[str, ...]) -> dict[str, list[Any]]:
    every = replace(spec, labels=LabelPlan(ratio=1.0, noise_sd=spec.labels.noise_sd))
    pairs = [(r.event, lab) for chunk in generate_labelled(every, rows, start_ts, seed)
             for r, lab in chunk]
    cols = _columns((e for e, _ in pairs if e is not None), names)
    cols["label"] = [lab.label for _, lab in pairs if lab is not None]
    return cols


def write_training(spec: SimSpec, path: str | Path, rows: int, *, seed: int = 0,
                   start_ts: float = 0.0, labels: bool = False) -> list[Path]:
    """Write ``rows`` training rows per model from the undrifted distributions.

    One column per feature plus ``prediction`` (and with ``labels`` a ``label`` column:
    every row's calibrated ground truth, no performance change). The format follows the suffix:
    ``.parquet`` or ``.jsonl`` / ``.json``. With several models the path must contain
    ``{model}`` (one file each). Returns the files written.
    """
    target = str(path)
    if len(spec.models) > 1 and "{model}" not in target:
        raise ConfigError("with several models the training path needs a {model} placeholder")
    suffix = Path(target).suffix.lower()
    if suffix not in (".parquet", ".jsonl", ".json"):
        raise ConfigError(f"training file must end in .parquet or .jsonl, got {target!r}")
    base = without_drift(spec)
    written = []
    for model in spec.models:
        one = replace(base, models=(model,))
        out = Path(target.replace("{model}", model.name))
        out.parent.mkdir(parents=True, exist_ok=True)
        cols = (_labelled_columns(one, rows, start_ts, seed, model.feature_names) if labels
                else _columns(generate_events(one, rows, start_ts, seed), model.feature_names))
        if suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.table(cols), out)
        else:
            encode = msgspec.json.Encoder().encode
            names = list(cols)
            with out.open("wb") as fh:
                for row in zip(*cols.values(), strict=True):
                    fh.write(encode(dict(zip(names, row, strict=True))) + b"\n")
        log.info("wrote %d training rows of %s to %s", rows, model.name, out)
        written.append(out)
    return written
