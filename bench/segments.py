"""Segments whose column has many distinct values: state, evaluation time and metric series
stay bounded by the roster (top K + "other"), not by the cardinality.

One model (``country`` segment column, roster = the reference's top 4, two numeric
features), 30,000 events in one window through the real processor and store, then one
evaluation by the real evaluator — for a segment column with 50, 1,000 and 10,000
distinct values (80 % of the events carry a rare value) and, as the baseline in the same
run, the same stream with no segments declared. Reported per case (median of
``--repeat`` runs, each under a fresh key prefix): window keys and their Redis memory
(``MEMORY USAGE``), the first evaluation's wall time, the ``driftline_scope_drift``
series the collector exports, and the ratios to the 50-value case.

Uses a redis-server of its own. Writes the ``## segments`` section of bench/RESULTS.md.
Run: ``python bench/segments.py [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._redis import start_redis
from bench._results import write_section
from sketches.store import ReferenceStore
from tests.integration.test_segments import T0, Pipeline, events, reference, rows

CASES = (("no segments (baseline)", 50, False), ("50 values", 50, True),
         ("1,000 values", 1_000, True), ("10,000 values", 10_000, True))


def one(client: redis.Redis, ref: object, members: frozenset[str], rare: int,
        segmented: bool, seed: int) -> tuple[int, int, float, int]:
    prefix = f"bench-seg-{uuid.uuid4().hex[:8]}"
    try:
        ReferenceStore(client, prefix).put(ref, "m")  # type: ignore[arg-type]
        pipe = Pipeline(client, prefix, members if segmented else None)
        ev = pipe.evaluator()
        data = rows(np.random.default_rng(seed), 30_000, rare=rare, rare_share=0.8)
        pipe.send(events(data, T0), T0)
        started = time.perf_counter()
        ev.run_once(now=1.0)
        seconds = time.perf_counter() - started
        keys, memory, series = pipe.footprint(ev)
        return keys, memory, seconds, series
    finally:
        for k in client.scan_iter(f"{prefix}*", count=1000):
            client.delete(k)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    proc, url, workdir = start_redis("bench-segments-")
    client = redis.Redis.from_url(url)
    try:
        ref, members = reference(np.random.default_rng(22), 4)
        got: dict[str, list[tuple[int, int, float, int]]] = {name: [] for name, _, _ in CASES}
        for r in range(args.repeat):  # cases interleaved, so machine drift hits them alike
            for name, rare, segmented in CASES:
                got[name].append(one(client, ref, members, rare, segmented, 100 + r))
    finally:
        client.close()
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)
    med = {name: (runs[0][0], statistics.median(x[1] for x in runs),
                  statistics.median(x[2] for x in runs), runs[0][3])
           for name, runs in got.items()}
    base = med["50 values"]
    lines = []
    for name, (keys, memory, seconds, series) in med.items():
        lines.append(f"| {name} | {keys} | {memory / 1024:,.0f} | {memory / base[1]:.2f} | "
                     f"{seconds * 1000:,.0f} | {seconds / base[2]:.2f} | {series} |")
    section = f"""## segments

`python bench/segments.py --repeat {args.repeat}` — {dt.date.today()}, {platform.machine()},
{os.cpu_count()} CPUs, Python {platform.python_version()}. One model, segment column
`country` (roster: the reference's top 4 + "other"), 30,000 events in one window, 80 % of
them with a rare value; one evaluation. Medians of {args.repeat} interleaved runs; ratios
to the 50-value case of the same run.

| case | window keys | Redis KiB | × 50 values | evaluation ms | × 50 values | scope series |
|---|---:|---:|---:|---:|---:|---:|
{chr(10).join(lines)}

The rare values are pooled into "other": keys and series are the same at 10,000 values as
at 50; memory grows only with the "other" window's categorical sketch of the segment
column (exact up to 2,048 values, then a bounded frequent-items sketch)."""
    print(section)
    write_section(section)


if __name__ == "__main__":
    main()
