"""Evaluation cost as models × partitions grow, against the same run's naive evaluation.

State is written through the real store, as workers write it: per model 20 numeric
columns, 12 five-minute windows of 2,000 rows on each partition, and a reference of
20,000 rows. One evaluation (the evaluator reading every model's measurement hour,
merging, comparing, stepping alerts) is timed twice per size, alternating:

- **driftline**: the worker's long-lived window reader and reference store — only windows
  some partition rewrote since the last evaluation are read and merged again, a reference
  is re-read only when its digest changes and its distributions are computed once;
- **naive**: a fresh reader and reference store per evaluation (every blob read and merged,
  references read and their distributions rebuilt) — the behaviour before the caches.

Before every evaluation the current (last) window of every model is rewritten on every
partition, as the workers' checkpoints do while traffic flows.

Needs REDIS_URL (``make bench`` starts the stack). Writes the ``## evaluation cost``
section of bench/RESULTS.md. Run: ``python bench/evaluate.py [--sizes 10x4,50x4]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from alerts.evaluator import Evaluator, ModelRules
from alerts.lease import Lease
from bench._results import write_section
from sketches.profile import DatasetProfile
from sketches.reference import build_reference
from sketches.store import ReferenceStore
from streams.core import Checkpoint
from streams.reader import WindowReader
from streams.state import RedisStateStore
from streams.windows import Counters, WindowKey

COLUMNS, WINDOWS, ROWS = 20, 12, 2000
WINDOW_MS = 5 * 60_000
T0 = 1_800_000_000_000


def batch(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {f"x{j}": rng.normal(j, 1 + j / 10, n) for j in range(COLUMNS)}


class State:
    """The run's state, written through the real store as workers write it."""

    def __init__(self, client: redis.Redis, prefix: str, models: int, partitions: int) -> None:
        rng = np.random.default_rng(1)
        self.models, self.partitions = models, partitions
        self.store = RedisStateStore(client, prefix=prefix, topic="bench", horizon_ms=3_600_000)
        self.blobs = []
        for _ in range(4):  # a few distinct window blobs, reused (building them dominates)
            prof = DatasetProfile()
            prof.update(batch(rng, ROWS), ROWS)
            self.blobs.append(prof.to_bytes())
        refs = ReferenceStore(client, prefix)
        for m in range(models):
            refs.put(build_reference([batch(rng, 20_000)], model=f"m{m}", version="default",
                                     created="2026-12-01T00:00:00Z", chunks=4), f"m{m}")
        self.epochs = {p: self.store.load(p).epoch for p in range(partitions)}
        self.gens = dict.fromkeys(range(partitions), 0)
        self.round = 0
        self.write(range(WINDOWS))

    def write(self, windows: Iterable[int]) -> None:
        end = T0 + WINDOWS * WINDOW_MS - 1
        marks = {f"m{i}": end for i in range(self.models)}
        for p in range(self.partitions):
            written = {WindowKey(f"m{m}", "1", T0 + w * WINDOW_MS):
                       self.blobs[(m + w + p + self.round) % 4]
                       for m in range(self.models) for w in windows}
            self.store.write(Checkpoint(
                p, self.epochs[p], self.gens[p], end, Counters(ok=dict.fromkeys(marks, ROWS)),
                written, {k: k.start_ms + WINDOW_MS for k in written}, watermarks=marks,
                generation=self.gens[p]))
            self.gens[p] += 1
        self.round += 1

    def next_interval(self) -> None:
        self.write([WINDOWS - 1])


def evaluate_once(client: redis.Redis, prefix: str, state: State, reader: WindowReader,
                  refs: ReferenceStore) -> float:
    ev = Evaluator(client, prefix=prefix,
                   models=[ModelRules(f"m{m}", measure_ms=3_600_000)
                           for m in range(state.models)],
                   windows=reader, references=refs, publishers=[],
                   lease=Lease(client, prefix, "bench", 600_000))
    started = time.perf_counter()
    ev.run_once(now=time.time())
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10x4,50x4", help="models x partitions, comma-separated")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    url = os.environ.get("REDIS_URL")
    if not url:
        raise SystemExit("set REDIS_URL (or run `make bench`)")
    client = redis.Redis.from_url(url)
    rows = []
    for size in args.sizes.split(","):
        models, partitions = (int(x) for x in size.split("x"))
        prefix = f"bench-eval-{uuid.uuid4().hex[:8]}"
        try:
            state = State(client, prefix, models, partitions)
            memory = sum(int(client.memory_usage(k) or 0)
                         for k in client.scan_iter(match=f"{prefix}*", count=5000))
            reader, kept = WindowReader(state.store), ReferenceStore(client, prefix)
            evaluate_once(client, prefix, state, reader, kept)  # the worker's warm caches
            times: dict[str, list[float]] = {"driftline": [], "naive": []}
            reads: list[int] = []
            for _ in range(args.repeat):
                state.next_interval()
                times["driftline"].append(evaluate_once(client, prefix, state, reader, kept))
                reads.append(reader.reads)
                times["naive"].append(evaluate_once(client, prefix, state,
                                                    WindowReader(state.store),
                                                    ReferenceStore(client, prefix)))
        finally:
            for k in client.scan_iter(match=f"{prefix}*", count=5000):
                client.delete(k)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append(f"| {models} × {partitions} | {models * partitions * WINDOWS:,} | "
                    f"{statistics.median(reads):,.0f} | {memory / 2**20:.0f} | "
                    f"{med['driftline']:.2f} | {med['naive']:.2f} | "
                    f"{med['driftline'] / med['naive']:.2f} |")
        print(size, med, file=sys.stderr)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    body = f"""
`python bench/evaluate.py --sizes {args.sizes}` — {dt.date.today()}, {platform.machine()},
{os.cpu_count()} CPUs, Python {platform.python_version()}. Per model {COLUMNS} numeric
columns, {WINDOWS} five-minute windows of {ROWS:,} rows per partition, a 20,000-row
reference; one evaluation = every model's measurement hour read, merged, compared.
Median of {args.repeat} alternating runs; naive = a fresh reference store per evaluation.
Peak RSS of the whole run: {peak:.0f} MiB.

| models × partitions | window blobs | blobs read | Redis MiB | driftline s | naive s | ratio |
|---|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

The naive evaluation reads every blob each time; driftline reads the rewritten windows
only (one per model and partition here) and still merges every model's cached windows
and compares every model. Compaction of closed windows, storage tiers and sharded
evaluators (issue 12) are not built yet.
"""
    write_section("## evaluation cost\n" + body.strip("\n"))
    print(body)


if __name__ == "__main__":
    main()
