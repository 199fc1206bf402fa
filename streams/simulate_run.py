"""Driving the simulator: pacing messages into a sink at a rate, and training files.

Kafka is not imported here either: the sink is any ``send(key, value)`` callable
(``PredictionProducer.send_bytes`` in the CLI), and time is injected.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import msgspec

from sketches.errors import ConfigError
from streams.simulate import generate_events, without_drift
from streams.simulate_spec import SimSpec

log = logging.getLogger(__name__)

Sink = Callable[[bytes, bytes | None], object]
Progress = Callable[["RunStats"], None]


@dataclass(frozen=True, slots=True)
class RunStats:
    sent: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


def pace(
    messages: Iterable[tuple[bytes | None, bytes]],
    send: Sink,
    *,
    rate: float | None,
    duration_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    progress: Progress | None = None,
    progress_every_s: float = 2.0,
) -> RunStats:
    """Send ``(key, value)`` pairs (as :func:`~streams.simulate.generate_payloads` yields)
    to ``send(value, key)`` at ``rate`` per second (``None``: as fast as possible),
    stopping when ``messages`` ends or after ``duration_s``."""
    if rate is not None and rate <= 0:
        raise ConfigError("rate must be > 0 (or 'max')")
    start = clock()
    next_report = start + progress_every_s
    sent = 0
    now = start
    for key, value in messages:
        if rate is not None:
            ahead = start + sent / rate - now
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
            progress(RunStats(sent, now - start))
            next_report = now + progress_every_s
    stats = RunStats(sent, clock() - start)
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


def write_training(spec: SimSpec, path: str | Path, rows: int, *, seed: int = 0,
                   start_ts: float = 0.0) -> list[Path]:
    """Write ``rows`` training rows per model from the undrifted distributions.

    One column per feature plus ``prediction``. The format follows the suffix:
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
        cols = _columns(generate_events(one, rows, start_ts, seed), model.feature_names)
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
