"""``driftline simulate``: a seeded load / drift / ground-truth generator into Kafka (or a file).

Every prediction gets an ``id``; a ``--label-ratio`` share of them get a label event
``{"model", "id", "label", "ts"}`` on ``--labels-topic``, ``--label-delay`` later in event
time, interleaved with the predictions in event-time order. Binary models (the default
``--task``) are calibrated — label ~ Bernoulli(score) — until a ``--performance`` change
makes their labels worse; regression labels are the prediction plus noise.

Examples::

    driftline simulate --models credit-risk --rate 2000 --duration 5m \\
        --drift "income:shift=0.5sd@60s" --drift "country:unseen=0.05@20s" --bad-ratio 0.01
    driftline simulate --rate max --count 200000 --event-rate 1 \\
        --drift "income:cycle=1sd/24h@0s"      # a daily cycle of the mean of income
    driftline simulate --label-delay exp:30s --label-ratio 0.8 \\
        --performance "accuracy=-0.15@10m..20m"            # labels to topic `labels`
    driftline simulate --models demand --task regression --performance "mae=+5@2m"
    driftline simulate --rate 500 --duration 2m --ops "volume=0.2@30s..60s" \\
        --ops "stall@70s..80s" --ops "latency=x3@90s..100s" --ops "invalid=0.3@105s..115s"
    driftline simulate --rate max --count 1000000 --numeric 20 --categorical 3
    driftline simulate --training-out ref.parquet --rows 100000   # training data, no Kafka
    driftline simulate --count 10 --out -                          # JSON lines to stdout
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from driftline.commands.common import add_kafka_options, check_kafka, kafka_connection
from driftline.options import add_option, duration, env_name
from sketches.errors import ConfigError
from streams.durations import parse_duration_s
from streams.simulate_spec import SimSpec, build_spec, parse_delay, parse_tasks

if TYPE_CHECKING:
    from streams.simulate_run import LabelledStream, RunStats

TRAINING_SEED_OFFSET = 1_000_003  # training rows are fresh draws, not the stream's first rows


def _rate(text: str) -> float | None:
    if text.strip().lower() == "max":
        return None
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("rate must be > 0 or 'max'")
    return value


def _label_delay(text: str) -> str:
    try:
        parse_delay(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a ratio within [0, 1]")
    return value


def _task(text: str) -> str:
    try:
        parse_tasks(text, [part.partition("=")[0].strip() for part in text.split(",")
                           if "=" in part])
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _repeated(args: argparse.Namespace, flag: str) -> list[str]:
    """A repeatable flag's values, else its environment twin's ';'-separated ones."""
    values = list(getattr(args, flag.lstrip("-").replace("-", "_")) or [])
    if not values and os.environ.get(env_name(flag)):
        values = [v for v in os.environ[env_name(flag)].split(";") if v.strip()]
    return values


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
                        "shift (e.g. 0.5sd or absolute), scale, nulls, unseen, or cycle "
                        "(seasonal: FEATURE:cycle=AMPLITUDE[sd]/PERIOD@START[..END], the mean "
                        "follows AMPLITUDE x sin(2 pi (t - START) / PERIOD) in event time, "
                        "e.g. income:cycle=1sd/24h@0s); repeatable "
                        f"[env {drift_env}, ';'-separated]")
    add_option(p, "--task", help="binary (a calibrated score in [0, 1]) or regression, for "
               "every model, or MODEL=TASK,... per model", default="binary", type=_task)
    add_option(p, "--labels", help="produce ground-truth labels to --labels-topic",
               default=True, type=bool)
    add_option(p, "--labels-topic", help="topic to produce label events to", default="labels")
    add_option(p, "--label-ratio", help="share of predictions that ever get a label "
               "(0: no labels)", default=1.0, type=_ratio)
    add_option(p, "--label-delay", help="event time from a prediction to its label: 30s "
               "(fixed), exp:30s (exponential, mean), uniform:10s..2m", default="30s",
               type=_label_delay)
    add_option(p, "--label-flush", help="labels still waiting when the run ends: 'due' sends "
               "those due by the last prediction's event time, 'all' every one",
               default="due", choices=("due", "all"))
    add_option(p, "--label-noise", help="regression: sd of the Gaussian label noise",
               default=10.0, type=float)
    perf_env = env_name("--performance")
    p.add_argument("--performance", action="append", default=None, metavar="CHANGE",
                   help="performance change [MODEL:]METRIC=AMOUNT@START[..END], METRIC one of "
                        "accuracy (binary, a negative amount >= -0.5), mae, rmse (regression),"
                        " e.g. accuracy=-0.15@10m..20m; labels get worse, inputs need not; "
                        f"repeatable [env {perf_env}, ';'-separated]")
    ops_env = env_name("--ops")
    p.add_argument("--ops", action="append", default=None, metavar="INCIDENT",
                   help="operational incident: volume=FACTOR@START..END (rate x FACTOR), "
                        "stall@START..END (nothing sent), latency=xFACTOR@START..END, "
                        "invalid=SHARE@START..END (malformed records); repeatable "
                        f"[env {ops_env}, ';'-separated]")
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
    add_option(p, "--labels-out", help="with --out: write the label events as JSON lines to "
               "this file ('-' = stdout; without it --out writes no labels)")
    add_option(p, "--training-out", help="write training rows (.parquet/.jsonl, {model} "
               "placeholder for several models) from the undrifted distributions and exit")
    add_option(p, "--rows", help="rows per model for --training-out", default=100_000, type=int)
    add_option(p, "--training-labels", help="with --training-out: add a 'label' column "
               "(calibrated ground truth)", default=False, type=bool)
    add_option(p, "--progress", help="print progress to stderr", default=True, type=bool)
    p.set_defaults(func=run)


def _spec(args: argparse.Namespace, rate: float | None) -> SimSpec:
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    return build_spec(models, args.numeric, args.categorical, drifts=_repeated(args, "--drift"),
                      events_per_s=rate or args.event_rate, null_ratio=args.null_ratio,
                      bad_ratio=args.bad_ratio, version=args.model_version, tasks=args.task,
                      label_ratio=args.label_ratio, label_delay=args.label_delay,
                      performance=_repeated(args, "--performance"),
                      label_noise=args.label_noise, ops=_repeated(args, "--ops"))


def _report(stats: RunStats) -> None:
    print(f"\rsent {stats.sent:>10,d}  labels {stats.labels:>10,d}  {stats.elapsed_s:7.1f}s  "
          f"{stats.rate:>10,.0f} ev/s", end="", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from streams.simulate_run import LabelledStream, pace, write_training

    try:
        rate = _rate(args.rate)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise ConfigError(f"--rate: {exc}") from None
    spec = _spec(args, rate)
    start_ts = args.start_ts if args.start_ts is not None else time.time()
    if args.training_out:
        files = write_training(spec, args.training_out, args.rows, labels=args.training_labels,
                               seed=args.seed + TRAINING_SEED_OFFSET, start_ts=start_ts)
        for path in files:
            print(f"wrote {args.rows} training rows to {path}")
        return 0
    if args.labels_out and not args.out:
        raise ConfigError("--labels-out needs --out (to Kafka, labels go to --labels-topic)")
    if args.labels_out and args.labels_out == args.out != "-":
        raise ConfigError("--labels-out must name another file than --out")
    duration = parse_duration_s(args.duration, "--duration") if args.duration else None
    count: int | None = args.count
    if count is None and duration is not None and rate is not None:
        count = spec.timeline().count_before(duration)
    if count is None and duration is None and args.out:
        raise ConfigError("--out needs --count or --duration")
    if args.start_ts is None and rate is None and count is not None:
        # As fast as possible the event times (spaced by --event-rate) outrun the wall
        # clock; ending them now keeps every event behind its Kafka timestamp, as real
        # producers' are (the worker rejects events far ahead of it: --max-future-skew).
        start_ts -= count / spec.events_per_s
    progress = _report if args.progress else None
    labels = args.labels and (bool(args.labels_out) or not args.out)
    stream = LabelledStream(spec, count, start_ts, args.seed, labels=labels,
                            flush=args.label_flush)
    if args.out:
        return _to_files(args, stream, rate, duration, progress)
    from confluent_kafka import Producer

    from streams.produce import producer_config
    from streams.producer import PredictionProducer

    kafka = kafka_connection(args)
    check_kafka(kafka)
    client = Producer(producer_config(kafka, "events"))  # one client, two topics
    with PredictionProducer(client, topic=args.topic) as producer, \
            PredictionProducer(client, topic=args.labels_topic) as label_producer:
        stats = pace(stream, producer.send_bytes, rate=rate, duration_s=duration,
                     progress=progress, send_label=label_producer.send_bytes, rest=stream.rest,
                     schedule=spec.timeline().offset if spec.ops else None)
        producer.flush(120.0)
        label_producer.flush(120.0)
    if progress:
        print(file=sys.stderr)
    summary = (f"sent {stats.sent} events to {args.topic} in {stats.elapsed_s:.1f}s "
               f"({stats.rate:,.0f} ev/s), delivered {producer.delivered}, "
               f"failed {producer.failed}")
    if stream.labels:
        summary += (f"; sent {stats.labels} labels to {args.labels_topic}, delivered "
                    f"{label_producer.delivered}, failed {label_producer.failed}")
    print(summary, file=sys.stderr)
    return 0 if producer.failed == 0 and label_producer.failed == 0 else 1


def _to_files(args: argparse.Namespace, stream: LabelledStream, rate: float | None,
              duration: float | None, progress: Callable[[RunStats], None] | None) -> int:
    from streams.simulate_run import pace

    with contextlib.ExitStack() as stack:
        def sink(path: str) -> Callable[[bytes, bytes | None], object]:
            fh = sys.stdout.buffer if path == "-" else stack.enter_context(open(path, "wb"))
            return lambda v, k: fh.write(v + b"\n")

        send_label = sink(args.labels_out) if args.labels_out else None
        stats = pace(stream, sink(args.out), rate=rate, duration_s=duration,
                     progress=None if "-" in (args.out, args.labels_out) else progress,
                     send_label=send_label, rest=stream.rest,
                     schedule=stream.spec.timeline().offset if stream.spec.ops else None)
    print(f"\nwrote {stats.sent} events" + (f" and {stats.labels} labels" if send_label
                                            else ""), file=sys.stderr)
    return 0
