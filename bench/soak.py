"""Redis memory over simulated days of event time: flat once the tiers are full.

One ``driftline worker --no-evaluate`` and one ``driftline evaluator`` (sweeping — so
compacting and rolling up — every 2 s, hourly roll-ups kept 1 day, daily ones 3 days)
against the stack's Kafka and Redis, a fresh topic (4 partitions) and key prefix. Events
of one model (6 numeric columns, 1 categorical), ``--per-window`` per five-minute window,
stamped across ``--days`` days of event time, are produced one simulated day at a time;
after each day the run waits until the worker has applied everything and the evaluator
has compacted what closed, then measures the run's Redis memory (sum of ``MEMORY USAGE``
over its keys) and what it holds: partition blobs (open windows) and model-level records
per tier. Needs KAFKA_BOOTSTRAP and REDIS_URL (``make bench`` starts the stack). Writes
the ``## storage over time`` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import msgspec
import numpy as np
import redis
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._results import write_section
from streams.state import RedisStateStore
from streams.tiers import TierStore

MODEL = "soak"
WINDOW_MS = 300_000
DAY_MS = 86_400_000
PARTITIONS = 4
COLUMNS = 7


HEADER = ("| day | events | baseline MiB | baseline partition blobs | compacted MiB "
          "| partition blobs | w records | h records | d records |\n"
          "|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def produce_day(producer: Producer, topic: str, day0_ms: int, per_window: int,
                rng: np.random.Generator, seq: int) -> int:
    enc = msgspec.json.Encoder()
    for w in range(DAY_MS // WINDOW_MS):
        start = day0_ms + w * WINDOW_MS
        ts = np.sort(rng.integers(start, start + WINDOW_MS, per_window))
        x = rng.normal(0, 1, (per_window, COLUMNS - 1))
        for i in range(per_window):
            feats: dict[str, object] = {f"x{j}": float(x[i, j]) for j in range(COLUMNS - 1)}
            feats["c"] = f"k{int(rng.integers(0, 20))}"
            event = {"model": MODEL, "id": f"e{seq}", "ts": int(ts[i]) / 1000,
                     "features": feats, "prediction": float(x[i, 0] > 0)}
            while True:
                try:
                    producer.produce(topic, enc.encode(event), key=f"e{seq}".encode())
                    break
                except BufferError:
                    producer.poll(0.05)
            seq += 1
    producer.flush(120)
    return seq


def memory(client: redis.Redis, prefix: str) -> int:
    return sum(int(client.memory_usage(k) or 0) for k in client.scan_iter(match=f"{prefix}*",
                                                                            count=5000))


def soak(bootstrap: str, url: str, days: int, per_window: int, compact: bool
         ) -> list[tuple[int, int, float, int | None, Counter[str] | None]]:
    """One run (fresh topic and prefix): per simulated day (events, MiB, partition blobs,
    records per tier). ``compact`` False: the evaluator sweeps (compacts) only once, at its
    start — storage as before issue 12."""
    run = uuid.uuid4().hex[:8]
    topic, prefix = f"soak-{run}", f"soak-{run}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1), NewTopic(f"{topic}.dlq", 1, 1),
                         NewTopic(f"{topic}.alerts", 1, 1)])[topic].result(30)
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    models = tmp / "models.toml"
    models.write_text(f'[models.{MODEL}]\nwindow = "5m"\nretention = "1h"\nmeasure = "1h"\n')
    cli = [sys.executable, "-m", "driftline.cli"]
    common = ["--kafka-bootstrap", bootstrap, "--redis-url", url, "--key-prefix", prefix,
              "--topic", topic, "--models-config", str(models), "--evaluator-shards", "2"]
    procs = [
        subprocess.Popen([*cli, "worker", *common, "--dlq-topic", f"{topic}.dlq",
                          "--group", f"g-{run}", "--no-evaluate", "--http-port", "-1",
                          "--checkpoint-interval", "1s", "--max-future-skew", "8d"],
                         stdout=subprocess.DEVNULL, stderr=(tmp / "worker.log").open("w")),
        subprocess.Popen([*cli, "-v", "evaluator", *common, "--alerts-topic", f"{topic}.alerts",
                          "--http-port", "-1", "--evaluate-interval", "1s",
                          "--evaluator-sweep", "2s" if compact else "100d",
                          "--keep-hourly", "1d", "--keep-daily", "3d"],
                         stdout=subprocess.DEVNULL, stderr=(tmp / "evaluator.log").open("w")),
    ]
    client = redis.Redis.from_url(url)
    store = RedisStateStore(client, prefix=prefix, topic=topic, horizon_ms=3_600_000)
    tiers = TierStore(client, prefix=prefix, topic=topic)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                         "queue.buffering.max.messages": 500_000})
    rng = np.random.default_rng(11)
    now = int(time.time() * 1000)
    start = now - now % DAY_MS - days * DAY_MS
    rows: list[tuple[int, int, float, int | None, Counter[str] | None]] = []
    seq = 0
    try:
        for day in range(days):
            seq = produce_day(producer, topic, start + day * DAY_MS, per_window, rng, seq)
            deadline = time.time() + 300
            while time.time() < deadline:  # the worker applied every event...
                applied = 0
                for p in store.stored_partitions():
                    c = store.read(p, min_start_ms=1 << 62).counters
                    applied += (c.ok.get(MODEL, 0) + c.late.get(MODEL, 0)
                                + sum(c.invalid.values()))
                if applied >= seq:
                    break
                time.sleep(0.5)
            blobs: int | None = None
            records: Counter[str] | None = None
            for _ in range(30):  # ...and the evaluator compacted what closed (stable)
                time.sleep(2.5)
                now_blobs = sum(len(store.written(p, min_start_ms=0))
                                for p in store.stored_partitions())
                now_records = Counter(r.tier for r in tiers.records(MODEL))
                if (now_blobs, now_records) == (blobs, records):
                    break
                blobs, records = now_blobs, now_records
            mib = memory(client, prefix) / 2**20
            rows.append((day + 1, seq, mib, blobs, records))
            print(f"{'compacted' if compact else 'baseline'} day {day + 1}: {seq:,} events, "
                  f"{mib:.2f} MiB, partition blobs {blobs}, records {dict(records or {})}",
                  file=sys.stderr)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)
        for k in client.scan_iter(match=f"{prefix}*", count=5000):
            client.delete(k)
        admin.delete_topics([topic, f"{topic}.dlq", f"{topic}.alerts", f"{topic}.notices"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--per-window", type=int, default=100)
    args = ap.parse_args()
    bootstrap, url = os.environ.get("KAFKA_BOOTSTRAP"), os.environ.get("REDIS_URL")
    if not bootstrap or not url:
        raise SystemExit("set KAFKA_BOOTSTRAP and REDIS_URL (or run `make bench`)")
    base = soak(bootstrap, url, args.days, args.per_window, compact=False)
    rows = soak(bootstrap, url, args.days, args.per_window, compact=True)
    table = "\n".join(
        f"| {d} | {n:,} | {b_mib:.2f} | {b_blobs} | {mib:.2f} | {blobs} | "
        f"{' | '.join(str(r[t] if r else 0) for t in 'whd')} |"
        for (d, n, mib, blobs, r), (_d, _n, b_mib, b_blobs, _r) in zip(rows, base, strict=True))
    steady, before = rows[-1][2], base[-1][2]
    body = f"""
`python bench/soak.py --days {args.days} --per-window {args.per_window}` — {dt.date.today()},
{platform.machine()}, {os.cpu_count()} CPUs. One model, {COLUMNS} columns (6 numeric, 1
categorical of 20 levels), {PARTITIONS} partitions, 5-minute windows, 1 h retention and
measurement, {args.per_window} events per window, produced one simulated day at a time
through a real worker and evaluator. *compacted*: evaluator sweep 2 s, hourly roll-ups
kept 1 day, daily ones 3 days (event time). *baseline*, same run: no sweeps after the
evaluator's start — every window stays one blob per partition (the 7-day TTL never comes
in simulated time), as before issue 12.

{HEADER}
{table}

Compacted, memory is flat once the tiers are full (day 4 on): {steady:.2f} MiB for this
model after {args.days} days against {before:.2f} MiB for the baseline
({steady / before:.2f}×), ≈ {steady * 1024 / COLUMNS:.0f} KiB per column. It is made of the
open windows' partition blobs ((retention + window) / window windows × partitions — the
only part that grows with partitions), the compacted windows the measurement hour needs,
and the hourly and daily records (one per period, whatever the partitions).
"""
    write_section("## storage over time\n" + body.strip("\n"))
    print(body)


if __name__ == "__main__":
    main()
