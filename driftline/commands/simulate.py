"""``driftline simulate``: a seeded load / drift generator into Kafka (or a file).

Examples::

    driftline simulate --models credit-risk --rate 2000 --duration 5m \\
        --drift "income:shift=0.5sd@60s" --drift "country:unseen=0.05@20s" --bad-ratio 0.01
    driftline simulate --rate max --count 1000000 --numeric 20 --categorical 3
    driftline simulate --training-out ref.parquet --rows 100000   # training data, no Kafka
    driftline simulate --count 10 --out -                          # JSON lines to stdout
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from driftline.commands.common import add_kafka_options, check_kafka, kafka_connection
from driftline.options import add_option, duration, env_name
from sketches.errors import ConfigError
from streams.durations import parse_duration_s
from streams.simulate_spec import SimSpec, build_spec

if TYPE_CHECKING:
    from streams.simulate_run import RunStats

TRAINING_SEED_OFFSET = 1_000_003  # training rows are fresh draws, not the stream's first rows


def _rate(text: str) -> float | None:
    if text.strip().lower() == "max":
        return None
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("rate must be > 0 or 'max'")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("simulate", help="generate prediction events (load, drift, bad records)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_kafka_options(p)
    add_option(p, "--topic", help="topic to produce to", default="predictions")
    add_option(p, "--models", help="comma-separated model names", default="credit-risk")
    add_option(p, "--model-version", help="version field of the events", default="1")
    add_option(p, "--rate", help="events per second, or 'max'", default="1000", type=str)
    add_option(p, "--count", help="number of events (default: endless unless --duration)",
               type=int)
    add_option(p, "--duration", help="stop after this long (e.g. 90s, 5m)", type=duration)
    add_option(p, "--numeric", help="number of numeric features", default=5, type=int)
    add_option(p, "--categorical", help="number of categorical features", default=2, type=int)
    drift_env = env_name("--drift")
    p.add_argument("--drift", action="append", default=None, metavar="RULE",
                   help="drift rule [MODEL/]FEATURE:KIND=AMOUNT@START[..END], KIND one of "
                        "shift (e.g. 0.5sd or absolute), scale, nulls, unseen; repeatable "
                        f"[env {drift_env}, ';'-separated]")
    add_option(p, "--null-ratio", help="baseline share of missing feature values",
               default=0.01, type=float)
    add_option(p, "--bad-ratio", help="share of malformed records (every kind in turn)",
               default=0.0, type=float)
    add_option(p, "--seed", help="random seed (same seed, same stream)", default=0, type=int)
    add_option(p, "--start-ts", help="event time of the first event, epoch seconds "
               "(default: now; with --rate max and --count, so that the last event is now)",
               type=float)
    add_option(p, "--event-rate", help="event-time spacing in events/s for --rate max",
               default=1000.0, type=float)
    add_option(p, "--out", help="write JSON lines to this file ('-' = stdout) instead of Kafka")
    add_option(p, "--training-out", help="write training rows (.parquet/.jsonl, {model} "
               "placeholder for several models) from the undrifted distributions and exit")
    add_option(p, "--rows", help="rows per model for --training-out", default=100_000, type=int)
    add_option(p, "--progress", help="print progress to stderr", default=True, type=bool)
    p.set_defaults(func=run)


def _spec(args: argparse.Namespace, rate: float | None) -> SimSpec:
    drifts = list(args.drift or [])
    if not drifts and os.environ.get(env_name("--drift")):
        drifts = [d for d in os.environ[env_name("--drift")].split(";") if d.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    return build_spec(models, args.numeric, args.categorical, drifts=drifts,
                      events_per_s=rate or args.event_rate, null_ratio=args.null_ratio,
                      bad_ratio=args.bad_ratio, version=args.model_version)


def _report(stats: RunStats) -> None:
    print(f"\rsent {stats.sent:>10,d}  {stats.elapsed_s:7.1f}s  {stats.rate:>10,.0f} ev/s",
          end="", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from streams.simulate import generate_payloads, generate_records
    from streams.simulate_run import pace, write_training

    try:
        rate = _rate(args.rate)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise ConfigError(f"--rate: {exc}") from None
    spec = _spec(args, rate)
    start_ts = args.start_ts if args.start_ts is not None else time.time()
    if args.training_out:
        files = write_training(spec, args.training_out, args.rows,
                               seed=args.seed + TRAINING_SEED_OFFSET, start_ts=start_ts)
        for path in files:
            print(f"wrote {args.rows} training rows to {path}")
        return 0
    duration = parse_duration_s(args.duration, "--duration") if args.duration else None
    count: int | None = args.count
    if count is None and duration is not None and rate is not None:
        count = int(rate * duration)
    if count is None and duration is None and args.out:
        raise ConfigError("--out needs --count or --duration")
    if args.start_ts is None and rate is None and count is not None:
        # As fast as possible the event times (spaced by --event-rate) outrun the wall
        # clock; ending them now keeps every event behind its Kafka timestamp, as real
        # producers' are (the worker rejects events far ahead of it: --max-future-skew).
        start_ts -= count / spec.events_per_s
    progress = _report if args.progress else None
    if args.out:
        out = sys.stdout.buffer if args.out == "-" else open(args.out, "wb")  # noqa: SIM115
        try:
            records: Iterator[tuple[bytes | None, bytes]] = (
                (r.key, r.value) for r in generate_records(spec, count, start_ts, args.seed))
            stats = pace(records, lambda v, k: out.write(v + b"\n"), rate=rate,
                         duration_s=duration, progress=None if args.out == "-" else progress)
        finally:
            if out is not sys.stdout.buffer:
                out.close()
        print(f"\nwrote {stats.sent} events", file=sys.stderr)
        return 0
    from streams.producer import PredictionProducer

    payloads = (kv for batch in generate_payloads(spec, count, start_ts, args.seed)
                for kv in batch)
    kafka = kafka_connection(args)
    check_kafka(kafka)
    with PredictionProducer.connect(kafka, topic=args.topic) as producer:
        stats = pace(payloads, producer.send_bytes, rate=rate, duration_s=duration,
                     progress=progress)
        producer.flush(120.0)
    if progress:
        print(file=sys.stderr)
    print(f"sent {stats.sent} events to {args.topic} in {stats.elapsed_s:.1f}s "
          f"({stats.rate:,.0f} ev/s), delivered {producer.delivered}, failed {producer.failed}",
          file=sys.stderr)
    return 0 if producer.failed == 0 else 1
