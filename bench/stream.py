"""Stream benchmark: how close does the worker get to a bare Kafka consumer?

Fills a fresh topic with N prediction events (20 numeric + 3 categorical features), then,
in the same run, times each case in its own child process (fresh interpreter, peak RSS
from ``getrusage``), reading the whole topic from the start:

  (a) ``raw``        confluent-kafka consume-only loop (the ceiling)
  (b) ``confluent``  the confluent runner end to end: decode, window profiles, Redis
                     checkpoints, Kafka commits

Add a case by writing ``def case_<name>(args) -> None`` that consumes the whole topic and
adding it to ``CASES`` (the faust runner goes in as (c)). Results are written under the
``## stream`` heading of ``bench/RESULTS.md`` (other sections are left alone).

    python bench/stream.py [--events 1000000] [--partitions 4] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import msgspec

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench._results import write_section  # noqa: E402

T0_S = 1_795_420_800.0


# ----------------------------------------------------------------------- fill the topic
def fill(bootstrap: str, topic: str, n: int, partitions: int) -> int:
    """Produce n events; returns the payload bytes written."""
    from confluent_kafka import Producer

    rnd = random.Random(42)
    enc = msgspec.json.Encoder()
    cats = (["DE", "FR", "US", "IT", "ES"], [f"seg{i}" for i in range(12)], ["a", "b"])
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50,
                         "batch.num.messages": 10000, "queue.buffering.max.messages": 1_000_000,
                         "compression.type": "none", "enable.idempotence": True})
    total = 0
    for i in range(n):
        feats: dict[str, object] = {f"n{j}": round(rnd.gauss(j, 1 + j / 10), 4)
                                    for j in range(20)}
        for j, values in enumerate(cats):
            feats[f"c{j}"] = rnd.choice(values)
        body = {"model": "bench", "version": "1", "id": f"r{i}",
                "ts": T0_S + i * 0.002, "features": feats,
                "prediction": round(rnd.random(), 4), "latency_ms": round(rnd.uniform(1, 20), 2)}
        value = enc.encode(body)
        total += len(value)
        while True:
            try:
                producer.produce(topic, value=value, partition=i % partitions)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10000 == 0:
            producer.poll(0)
    if producer.flush(300):
        raise SystemExit("bench: producer could not deliver everything")
    return total


# ----------------------------------------------------------------------- the cases
def case_raw(args: argparse.Namespace) -> None:
    """(a) consume every message, touching value/partition/offset: the ceiling."""
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": f"bench-raw-{uuid.uuid4()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([args.topic])
    seen = 0
    nbytes = 0
    try:
        while seen < args.events:
            for m in c.consume(5000, 1.0):
                if m.error() is None:
                    nbytes += len(m.value())
                    m.partition()
                    m.offset()
                    m.timestamp()
                    seen += 1
    finally:
        c.close()


def case_confluent(args: argparse.Namespace, group: str | None = None,
                   shared: bool = False) -> None:
    """(b) ConfluentRunner + Processor + RedisStateStore until every offset is in Redis.

    ``shared``: one of several workers in ``group``; stop when Redis holds every offset
    of the topic, whichever worker applied it."""
    import redis
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient

    from streams.core import Processor
    from streams.dlq import DlqSender
    from streams.notices import NOTICE_TUNING, NoticeSender, ensure_topic, notices_topic
    from streams.produce import producer_config as tuned_producer
    from streams.runner import ConfluentRunner, RunnerConfig, consumer_config, producer_config
    from streams.state import RedisStateStore
    from streams.windows import ModelCatalog

    catalog = ModelCatalog()
    store = RedisStateStore(redis.Redis.from_url(args.redis_url), prefix=args.prefix,
                            topic=args.topic, horizon_ms=catalog.max_horizon_ms)
    consumer = Consumer(consumer_config(args.bootstrap, group or f"bench-runner-{uuid.uuid4()}"))
    producer = Producer(producer_config(args.bootstrap))
    # change notices after each checkpoint, as `driftline worker` sends them
    ensure_topic(AdminClient({"bootstrap.servers": args.bootstrap}), notices_topic(args.topic), 16)
    notices = NoticeSender(Producer(tuned_producer(args.bootstrap, "alerts", **NOTICE_TUNING)),
                           notices_topic(args.topic))
    runner = ConfluentRunner(
        consumer=consumer, store=store, processor=Processor(catalog),
        dlq=DlqSender(producer, topic=f"{args.topic}.dlq", source_topic=args.topic),
        config=RunnerConfig(topic=args.topic, batch_size=5000), notices=notices.send,
    )
    consumer.subscribe([args.topic], on_assign=runner._on_assign, on_revoke=runner._on_revoke)

    def applied_everywhere() -> int:
        return sum(store.read(p, min_start_ms=1 << 62).applied_offset + 1
                   for p in store.stored_partitions())

    last_check = time.monotonic()
    while True:
        if not shared and runner.health.records >= args.events:
            break
        if shared and time.monotonic() - last_check > 0.25:
            runner.checkpoint(runner.processor.partitions)
            last_check = time.monotonic()
            if applied_everywhere() >= args.events:
                break
        runner.poll_once()
    runner.checkpoint(runner.processor.partitions)
    consumer.close()


def case_confluent_share(args: argparse.Namespace) -> None:
    case_confluent(args, group=f"bench-x2-{args.prefix}", shared=True)


def case_confluent_x2(args: argparse.Namespace) -> None:
    """(b2) two confluent worker processes in one group (the way driftline scales out)."""
    cmd = [sys.executable, __file__, "--child", "confluent_share", "--topic", args.topic,
           "--prefix", args.prefix, "--events", str(args.events), "--bootstrap",
           args.bootstrap, "--redis-url", args.redis_url]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, cwd=REPO) for _ in range(2)]
    if any(p.wait() != 0 for p in procs):
        raise SystemExit("a (b2) worker failed")


def case_faust(args: argparse.Namespace) -> None:
    """(c) FaustRunner (faust-streaming agent, take_events batches) + the same Processor and
    RedisStateStore, until every event is checkpointed."""
    import redis
    from confluent_kafka import Producer

    from streams.core import Processor
    from streams.dlq import DlqSender
    from streams.faust_runner import FaustConfig, FaustRunner
    from streams.runner import producer_config
    from streams.state import RedisStateStore
    from streams.windows import ModelCatalog

    catalog = ModelCatalog()
    store = RedisStateStore(redis.Redis.from_url(args.redis_url), prefix=args.prefix,
                            topic=args.topic, horizon_ms=catalog.max_horizon_ms)
    producer = Producer(producer_config(args.bootstrap))
    runner = FaustRunner(
        bootstrap=args.bootstrap, store=store, processor=Processor(catalog),
        dlq=DlqSender(producer, topic=f"{args.topic}.dlq", source_topic=args.topic),
        config=FaustConfig(topic=args.topic, group=f"bench-faust-{uuid.uuid4()}",
                           take_max=int(os.environ.get("BENCH_FAUST_TAKE", "10000"))),
    )
    handle = runner.handle_batch

    def handle_and_stop(records: list[Any]) -> None:
        handle(records)
        if runner.health.records >= args.events:
            runner.stop()

    runner.handle_batch = handle_and_stop  # type: ignore[method-assign]
    runner.run()


CASES: dict[str, tuple[str, Callable[[argparse.Namespace], None]]] = {
    "raw": ("(a) raw confluent-kafka consume loop", case_raw),
    "confluent": ("(b) confluent runner → Redis", case_confluent),
    "faust": ("(c) faust runner → Redis", case_faust),
    "confluent_x2": ("(b2) two confluent workers, one group → Redis", case_confluent_x2),
    "confluent_share": ("one of the (b2) workers", case_confluent_share),
}


NOTES: dict[str, str] = {
    "confluent": (
        "**(b) misses the 0.5 goal; what limits it (measured).** cProfile of the (b) child over "
        "300 k of these events: msgspec decode + validation 18 %, turning confluent `Message`s "
        "into `Record`s 10 %, the per-record core loop (skip/offset, event time, window key) "
        "11 %, columnarising 13 %, sketch updates (`sketches.numeric`/`values`) 18 %, "
        "`consume()` 6 %, Redis checkpoints ~1 %. The decoder alone runs at ~245 k events/s "
        "on these 406-byte events (typed `msgspec` Struct; untyped decoding is no faster), "
        "i.e. about the raw consume rate on this box, so any single Python process that fully "
        "validates every event sits near 0.5 × (a) *before* any windowing; (b) does the "
        "windowing too. Tried: C-level transpose of features (`itemgetter` + `zip`), a "
        "decode fast path, per-batch model-spec cache (+~15 %); raising the cyclic GC's "
        "thresholds and `gc.freeze()` changed nothing (+1–2 %, within noise). Scaling out is by "
        "partitions: one worker process per core, each with its own partitions and Redis keys "
        "— (b2) measures exactly that, two `ConfluentRunner` processes in one consumer group "
        "sharing the 4 partitions (the broker and Redis share the same 2 cores), timed until "
        "Redis holds every offset."
    ),
}


def child(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    CASES[args.child][1](args)
    elapsed = time.perf_counter() - started
    # (b2) runs its workers as child processes: report the largest of them
    peak_mib = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                   resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    print(json.dumps({"seconds": elapsed, "peak_mib": peak_mib}))


def run_case(name: str, args: argparse.Namespace, topic: str, prefix: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", name, "--topic", topic, "--prefix", prefix,
           "--events", str(args.events), "--bootstrap", args.bootstrap,
           "--redis-url", args.redis_url]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["events_per_s"] = args.events / result["seconds"]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    ap.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:16379/0"))
    ap.add_argument("--cases", default="raw,confluent,confluent_x2,faust")
    ap.add_argument("--repeat", type=int, default=3, help="alternating runs per case (median)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--child", choices=list(CASES))
    ap.add_argument("--topic")
    ap.add_argument("--prefix")
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    import redis
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"bench-stream-{uuid.uuid4().hex[:8]}"
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(30)
    try:
        t = time.perf_counter()
        nbytes = fill(args.bootstrap, topic, args.events, args.partitions)
        print(f"filled {topic}: {args.events:,} events, {nbytes / 1e6:.0f} MB "
              f"in {time.perf_counter() - t:.1f}s", flush=True)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in args.cases.split(",")}
        for i in range(args.repeat):  # alternate the cases so machine noise hits all alike
            for name in runs:
                r = run_case(name, args, topic, f"{prefix}-{name}-{i}")
                runs[name].append(r)
                print(f"{CASES[name][0]} run {i + 1}: {r['events_per_s']:,.0f} ev/s, "
                      f"{r['seconds']:.2f}s, peak {r['peak_mib']:.0f} MiB", flush=True)
        results = {name: sorted(rs, key=lambda r: r["seconds"])[len(rs) // 2]
                   for name, rs in runs.items()}
    finally:
        admin.delete_topics([topic, f"{topic}.dlq"], operation_timeout=30)
        client = redis.Redis.from_url(args.redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    ceiling = results.get("raw", {}).get("events_per_s")
    rows = []
    for name, r in results.items():
        ratio = f"{r['events_per_s'] / ceiling:.2f}" if ceiling else "–"
        every = ", ".join(f"{x['events_per_s'] / 1000:.0f}k" for x in runs[name])
        rows.append(f"| {CASES[name][0]} | {r['seconds']:.2f} | {r['events_per_s']:,.0f} | "
                    f"{ratio} | {max(x['peak_mib'] for x in runs[name]):.0f} | {every} |")
    section = "\n".join([
        "## stream",
        "",
        f"`python bench/stream.py` — {date.today()}, {platform.machine()}, {os.cpu_count()} CPUs "
        f"(the broker and Redis share them), Python {platform.python_version()}.",
        f"Topic: {args.events:,} events over {args.partitions} partitions, 20 numeric + 3 "
        f"categorical features, {nbytes / args.events:.0f} B/event, one model, 5-min windows. "
        "Each case is a fresh process reading the topic from the start (group join included); "
        f"median of {args.repeat} alternating runs; peak RSS from getrusage (max over runs).",
        "",
        "| case | s (median) | events/s | ratio to (a) | peak RSS MiB | all runs ev/s |",
        "|---|---:|---:|---:|---:|---|",
        *rows,
        "",
        *[f"{NOTES[name]}\n" for name in results if name in NOTES],
    ])
    print(section)
    if not args.no_write:
        write_section(section)


if __name__ == "__main__":
    main()
