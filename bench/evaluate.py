"""Evaluation cost as models × partitions grow: incremental, sharded and compacted,
against the same run's naive evaluation (a full re-merge of every stored blob).

State is written through the real store, as workers write it: per model 20 numeric
columns, 12 five-minute windows on each partition (``--rows`` rows each), a reference of
20,000 rows. Before every evaluation the newest window of every model is rewritten on
every partition, as the workers' checkpoints do while traffic flows (one new window's
worth of changes per interval), and every model is named dirty. Per size:

- **driftline**: one evaluator process, long-lived reader (only rewritten windows are read;
  the merge of the unchanged ones is kept) and reference store (what depends on the
  reference alone computed once per reference version): median wall and CPU time of one
  evaluation, peak RSS of that process;
- **slide**: in the same process, the evaluation right after the measurement moved on by
  one window (a new window written on every partition, the oldest dropped out): sketches
  cannot subtract, so the reader takes its *ahead* merge (the older windows but the
  oldest, which the warm-up's full read gave); then the evaluations that follow (the
  newest window rewritten each time) while the reader rebuilds the next ahead merge a
  budget of blobs per call — their count and slowest — and a second slide, which takes
  that incrementally built merge;
- **naive**: a fresh reader and reference store per evaluation (every blob read and merged,
  every reference read and its distributions rebuilt) — the behaviour before issue 12;
- **2 shards**: two evaluator processes owning half the shards each, evaluating at the same
  time (a barrier aligns their rounds): capacity = one process's wall / the slower shard's;
- **compacted**: the windows then closed (watermarks past end + retention) and compacted
  by :class:`streams.compaction.Compactor`: Redis memory before and after.

Runs its own redis-server without persistence (a port of its own) so gigabytes of bench
state never touch the stack's AOF. Writes the ``## evaluation cost`` section of
bench/RESULTS.md. Run: ``python bench/evaluate.py [--sizes 10x4,100x16,500x16]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import os
import platform
import resource
import shutil
import statistics
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from alerts.evaluator import Evaluator, ModelRules
from alerts.keys import AlertKeys
from alerts.shards import Owner, shard_of
from bench._redis import start_redis
from bench._results import write_section
from sketches.profile import DatasetProfile
from sketches.reference import build_reference
from sketches.store import ReferenceStore
from streams.compaction import Compactor, ModelSpan
from streams.core import Checkpoint
from streams.reader import AHEAD_BLOBS, WindowReader
from streams.state import RedisStateStore
from streams.tiers import TierStore
from streams.windows import Counters, WindowKey

COLUMNS, WINDOWS = 20, 12
WINDOW_MS, RETENTION_MS, MEASURE_MS = 5 * 60_000, 3_600_000, 3_600_000
T0 = 1_800_000_000_000
SLID_MARK = T0 + (WINDOWS + 1) * WINDOW_MS - 1
"""Watermark once the measurement moved on by one window (window WINDOWS is the newest)."""
AFTER_MARK = SLID_MARK + WINDOW_MS
"""Watermark after :func:`run_single`'s second slide (window WINDOWS + 1 is the newest)."""
FOLLOW_UP = 60
"""At most this many evaluations after the slide, waiting for the ahead merges."""
STRAGGLERS = 3
"""Evaluations after the 2nd slide whose checkpoints also rewrite the previous window."""
SHARDS = 16
PREFIX = "bench"


def batch(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {f"x{j}": rng.normal(j, 1 + j / 10, n) for j in range(COLUMNS)}


class Writer:
    """Writes model windows through the real store as the partitions' owners would."""

    def __init__(self, client: redis.Redis, models: int, partitions: int, rows: int) -> None:
        self.store = RedisStateStore(client, prefix=PREFIX, topic="bench", horizon_ms=MEASURE_MS)
        self.models, self.partitions = models, partitions
        rng = np.random.default_rng(1)
        self.blobs = []
        for _ in range(4):  # a few distinct window blobs, reused (building them dominates)
            prof = DatasetProfile()
            prof.update(batch(rng, rows), rows)
            self.blobs.append(prof.to_bytes())
        self.rows = rows
        self.round = 0

    def write(self, windows: Iterable[int], models: Iterable[int] | None = None,
              mark_ms: int | None = None) -> None:
        wanted = list(range(self.models) if models is None else models)
        end = T0 + WINDOWS * WINDOW_MS - 1 if mark_ms is None else mark_ms
        marks = {f"m{i}": end for i in wanted}
        for p in range(self.partitions):
            snap = self.store.read(p, min_start_ms=1 << 62)
            written = {WindowKey(f"m{m}", "1", T0 + w * WINDOW_MS):
                       self.blobs[(m + w + p + self.round) % 4] for m in wanted for w in windows}
            self.store.write(Checkpoint(
                p, snap.epoch, snap.applied_offset + 1, end,
                Counters(ok=dict.fromkeys(marks, self.rows)), written,
                {k: k.start_ms + WINDOW_MS for k in written}, watermarks=marks,
                generation=snap.generation))
        self.round += 1


def populate(url: str, models: int, partitions: int, rows: int) -> None:
    client = redis.Redis.from_url(url, socket_timeout=600)
    w = Writer(client, models, partitions, rows)
    for p in range(partitions):
        w.store.load(p)
    refs = ReferenceStore(client, PREFIX)
    rng = np.random.default_rng(2)
    built = [build_reference([batch(rng, 20_000)], model="m", version="default",
                             created="2026-12-01T00:00:00Z", chunks=4) for _ in range(3)]
    for m in range(models):
        refs.put(built[m % 3], f"m{m}")
    for chunk in range(0, models, 50):  # bounded Lua payloads
        w.write(range(WINDOWS), range(chunk, min(models, chunk + 50)))


def evaluator(client: redis.Redis, models: int, owned: Iterable[int] | None,
              reader: WindowReader | None = None,
              refs: ReferenceStore | None = None) -> Evaluator:
    store = RedisStateStore(client, prefix=PREFIX, topic="bench", horizon_ms=MEASURE_MS)
    return Evaluator(client, prefix=PREFIX,
                     models=[ModelRules(f"m{m}", measure_ms=MEASURE_MS) for m in range(models)],
                     windows=reader or WindowReader(store),
                     references=refs or ReferenceStore(client, PREFIX, chunks=lambda _m: False),
                     publishers=[],
                     owner=Owner.static(client, PREFIX, SHARDS, owned))


def timed(ev: Evaluator, names: list[str]) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    ev.run_once(now=time.time(), dirty=names)
    return time.perf_counter() - w0, time.process_time() - c0


def run_single(url: str, models: int, partitions: int, rows: int, repeat: int,
               out: Any) -> None:
    """driftline's incremental evaluation in this (child) process: wall, CPU, peak RSS."""
    client = redis.Redis.from_url(url, socket_timeout=600)
    ev = evaluator(client, models, None)
    names = [f"m{m}" for m in range(models)]
    ev.run_once(now=time.time())  # warm caches, as a running evaluator has them
    w = Writer(client, models, partitions, rows)
    walls, cpus, reads = [], [], []
    for _ in range(repeat):
        w.write([WINDOWS - 1])
        wall, cpu = timed(ev, names)
        walls.append(wall)
        cpus.append(cpu)
        reads.append(ev._windows.reads)  # type: ignore[attr-defined]
    reader = cast(WindowReader, ev._windows)
    kept = list(reader._kept.values())
    older_kib = statistics.mean(len(k.older_bytes or b"") for k in kept) / 1024
    ahead_kib = statistics.mean(len(k.ahead_bytes or b"") for k in kept) / 1024
    w.write([WINDOWS], mark_ms=SLID_MARK)  # the measurement moves on: window 0 drops out
    slide_wall, slide_cpu = timed(ev, names)
    slide_reads = reader.reads
    follow: list[tuple[float, int, int]] = []  # (wall, blobs read, of those ahead)
    while (reader.behind or reader.held) and len(follow) < FOLLOW_UP:
        w.write([WINDOWS], mark_ms=SLID_MARK)
        wall, _ = timed(ev, names)
        follow.append((wall, reader.reads, reader.ahead_reads))
    behind = reader.behind + reader.held  # older windows the ahead merges still lack
    w.write([WINDOWS + 1], mark_ms=AFTER_MARK)  # and again: window 1 drops out
    again_wall, _ = timed(ev, names)
    again_reads = reader.reads
    stragglers: list[tuple[float, int]] = []  # late events for the window that was newest
    for _ in range(STRAGGLERS):
        w.write([WINDOWS + 1, WINDOWS], mark_ms=AFTER_MARK)
        stragglers.append((timed(ev, names)[0], reader.reads))
    out.put({"wall": statistics.median(walls), "cpu": statistics.median(cpus),
             "reads": statistics.median(reads), "slide": slide_wall, "slide_cpu": slide_cpu,
             "slide_reads": slide_reads, "follow": follow, "behind": behind,
             "again": again_wall, "again_reads": again_reads, "stragglers": stragglers,
             "older_kib": older_kib, "ahead_kib": ahead_kib,
             "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def run_naive(url: str, models: int, partitions: int, rows: int, repeat: int,
              out: Any) -> None:
    client = redis.Redis.from_url(url, socket_timeout=600)
    names = [f"m{m}" for m in range(models)]
    w = Writer(client, models, partitions, rows)
    walls, cpus = [], []
    for _ in range(repeat):
        w.write([WINDOWS + 1], mark_ms=AFTER_MARK)  # (after run_single: the newest)
        wall, cpu = timed(evaluator(client, models, None), names)
        walls.append(wall)
        cpus.append(cpu)
    out.put({"wall": statistics.median(walls), "cpu": statistics.median(cpus),
             "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def run_shard(url: str, models: int, partitions: int, rows: int, repeat: int, shard: int,
              barrier: Any, out: Any) -> None:
    """One of two evaluator processes: owns every other shard, evaluates its models."""
    client = redis.Redis.from_url(url, socket_timeout=600)
    owned = [s for s in range(SHARDS) if s % 2 == shard]
    mine = [m for m in range(models) if shard_of(f"m{m}", SHARDS) in owned]
    ev = evaluator(client, models, owned)
    names = [f"m{m}" for m in mine]
    ev.run_once(now=time.time())
    w = Writer(client, models, partitions, rows)
    walls, alone = [], []
    for _ in range(repeat):
        for turn in (0, 1, None):  # each shard alone while the other waits, then both
            w.write([WINDOWS + 1], mine, mark_ms=AFTER_MARK)  # (after run_single: newest)
            barrier.wait()
            if turn is None or turn == shard:
                (walls if turn is None else alone).append(timed(ev, names)[0])
            barrier.wait()
    out.put({"shard": shard, "wall": statistics.median(walls), "models": len(mine),
             "alone": statistics.median(alone)})


def compact_all(url: str, models: int, partitions: int, rows: int) -> dict[str, float]:
    """Close every window (watermarks past end + retention) and compact them."""
    client = redis.Redis.from_url(url, socket_timeout=600)
    before = used_mib(client)
    w = Writer(client, models, partitions, rows)
    store = w.store
    for p in range(partitions):  # watermarks move on: a checkpoint with no window change
        snap = store.read(p, min_start_ms=1 << 62)
        store.write(Checkpoint(p, snap.epoch, snap.applied_offset + 1,
                               T0 + (WINDOWS + 2) * WINDOW_MS + RETENTION_MS, Counters(), {}, {},
                               watermarks={f"m{m}": T0 + (WINDOWS + 2) * WINDOW_MS
                                           + RETENTION_MS for m in range(models)},
                               generation=snap.generation))
    comp = Compactor(store, TierStore(client, prefix=PREFIX, topic="bench"),
                     max_blobs=1 << 40)
    owner = Owner.static(client, PREFIX, SHARDS)
    started = time.perf_counter()
    spans = {f"m{m}": (ModelSpan(WINDOW_MS, RETENTION_MS, MEASURE_MS),
                       owner.token(f"m{m}") or 0) for m in range(models)}
    stats = comp.run(spans, AlertKeys(PREFIX).fence)
    return {"before": before, "after": used_mib(client), "seconds":
            time.perf_counter() - started, "compacted": stats.compacted}


HEADER = (
    "| models × partitions | window blobs | blobs read | Redis MiB | Redis MiB compacted "
    "| driftline s | CPU s | peak RSS MiB | slide s (blobs read) | after the slide: n, "
    "slowest s (blobs read) | 2nd slide s (blobs read) | naive s | ratio "
    "| 2 shards s (slower) | capacity × |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def used_mib(client: redis.Redis) -> float:
    return int(client.info("memory")["used_memory"]) / 2**20


def child(target: Any, *args: Any) -> dict[str, Any]:
    """Run ``target`` in a fresh interpreter (spawn: its peak RSS is its own)."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, out))
    proc.start()
    result: dict[str, Any] = out.get()
    proc.join()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10x4,100x16,500x16",
                    help="models x partitions, comma-separated")
    ap.add_argument("--rows", type=int, default=500, help="rows per window and partition")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--naive-up-to", type=int, default=2000,
                    help="run the naive evaluation only up to this many models × partitions")
    args = ap.parse_args()
    proc, url, workdir = start_redis()
    rows, notes, goals = [], [], []
    try:
        for size in args.sizes.split(","):
            models, partitions = (int(x) for x in size.split("x"))
            client = redis.Redis.from_url(url, socket_timeout=600)
            client.flushall()
            populate(url, models, partitions, args.rows)
            memory = used_mib(client)
            one = child(run_single, url, models, partitions, args.rows, args.repeat)
            naive = (child(run_naive, url, models, partitions, args.rows, 1)
                     if models * partitions <= args.naive_up_to else None)
            ctx = mp.get_context("spawn")
            barrier, out = ctx.Barrier(2), ctx.Queue()
            procs = [ctx.Process(target=run_shard, args=(url, models, partitions, args.rows,
                                                         args.repeat, s, barrier, out))
                     for s in (0, 1)]
            for p in procs:
                p.start()
            shards = [out.get() for _ in procs]
            for p in procs:
                p.join()
            slowest = max(s["wall"] for s in shards)
            interleaved = sum(s["alone"] for s in shards) / slowest
            alone = " + ".join(f"{s['alone']:.2f}" for s in shards)
            compacted = compact_all(url, models, partitions, args.rows)
            naive_s = f"{naive['wall']:.2f}" if naive else "—"
            slowest_after = max(one["follow"], default=(0.0, 0, 0))
            follow = (f"{len(one['follow'])}, {slowest_after[0]:.2f} ({slowest_after[1]:,})"
                      + (f", {one['behind']} behind" if one["behind"] else ""))
            ratio = f"{one['wall'] / naive['wall']:.2f}" if naive else "—"
            rows.append(
                f"| {models} × {partitions} | {models * partitions * WINDOWS:,} | "
                f"{one['reads']:,.0f} | {memory:,.0f} | {compacted['after']:,.0f} | "
                f"{one['wall']:.2f} | {one['cpu']:.2f} | {one['rss']:.0f} | "
                f"{one['slide']:.2f} ({one['slide_reads']:,}) | {follow} | "
                f"{one['again']:.2f} ({one['again_reads']:,}) | {naive_s} | "
                f"{ratio} | {slowest:.2f} | {one['wall'] / slowest:.2f} |")
            notes.append(f"{models} × {partitions}: kept per model {one['older_kib']:,.0f} KiB "
                         f"older merge, {one['ahead_kib']:,.0f} KiB ahead merge; evaluations "
                         "after the slide (wall s / blobs read / of those ahead): "
                         + ", ".join(f"{a:.1f}/{b:,}/{c:,}" for a, b, c in one["follow"]))
            notes.append(f"{models} × {partitions}: stragglers (the newest and the previous "
                         "window rewritten on every partition right after the 2nd slide), "
                         "wall s / blobs read: " + ", ".join(
                             f"{a:.2f}/{b:,}" for a, b in one["stragglers"])
                         + f" (normal: {one['wall']:.2f}/{one['reads']:,.0f})")
            notes.append(f"{models} × {partitions}: shards evaluated "
                         f"{'/'.join(str(s['models']) for s in shards)} models, alone "
                         f"{alone} s, "
                         f"together the slower {slowest:.2f} s: capacity within the same "
                         f"minute {interleaved:.2f}×; compaction "
                         f"of {compacted['compacted']:,} windows took "
                         f"{compacted['seconds']:.1f} s")
            if (models, partitions) == (500, 16):
                goals.append(
                    f"500 × 16 goals (issue 12): one evaluation within 10 s on one core — "
                    f"{'met' if one['wall'] <= 10 else 'NOT met'} ({one['wall']:.2f} s wall, "
                    f"{one['cpu']:.2f} s CPU); peak RSS at most 1 GiB — "
                    f"{'met' if one['rss'] <= 1024 else 'NOT met'} ({one['rss']:.0f} MiB); "
                    f"the evaluation after a slide: {one['slide']:.2f} s, the slowest while "
                    f"the next ahead merges are built: {slowest_after[0]:.2f} s, the next "
                    f"slide: {one['again']:.2f} s")
            print(size, one, naive, shards, compacted, file=sys.stderr)
            client.close()
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)
    body = f"""
`python bench/evaluate.py --sizes {args.sizes} --rows {args.rows} --repeat {args.repeat}` —
{dt.date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, Python
{platform.python_version()}, a redis-server of its own without persistence. Per model
{COLUMNS} numeric columns, {WINDOWS} five-minute windows of {args.rows:,} rows per partition
(all inside the default 1 h retention, so all open), a 20,000-row reference. Before each
evaluation the newest window of every model is rewritten on every partition and every
model is dirty: one evaluation reads, merges and compares every model. Medians of
{args.repeat} evaluations; naive: one (a full re-merge of every blob, references re-read).
*slide*: one evaluation right after a new window moved every measurement on (window 0
dropped out: the older merge is the reader's ahead merge and the old newest window
merged); *after the slide*: the evaluations that follow (the newest window rewritten
each time) until every ahead merge is rebuilt, at most {AHEAD_BLOBS:,} blobs per call for
them; *2nd slide*: window 1 drops out, taking those incrementally built merges; then
{STRAGGLERS} evaluations with late events for the window that was the newest. The naive
and shard runs come after it (they rewrite that newest window), and compaction closes
{WINDOWS + 2} windows.

{HEADER}
{chr(10).join(rows)}

{chr(10).join("- " + n for n in notes + goals)}

*Redis MiB compacted*: after every window was closed and compacted (one merged record per
window instead of one blob per partition). *capacity ×*: one process's evaluation of all
models / the slower of two shard processes evaluating half each at the same time (two
cores, shared with redis-server). The one-process figure is taken minutes before the shard
runs, and the machine's speed drifts; *capacity within the same minute*: the two shard
processes' halves evaluated one after the other (each alone, the other waiting) / the two
at once, interleaved in each round (each alone pays the fixed per-evaluation costs —
partition metas, window listing — that one process pays once: a few % in its favour).
"""
    write_section("## evaluation cost\n" + body.strip("\n"))
    print(body)


if __name__ == "__main__":
    main()
