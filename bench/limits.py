"""Bounded state under hostile names: 100,000 distinct model names and 10,000 distinct
column names against one ``driftline worker``.

Three runs, each with a fresh topic (2 partitions) and key prefix, one worker (no models
file, evaluation every second so ``/metrics`` carries the leader's per-model counters):

- **baseline**: the same number of events for one model with five columns;
- **hostile, default limits**: 10,000 events of one model each bring a new column, then
  every event names a new model (100,000);
- **hostile, limits lifted** (``--max-models``/``--max-columns`` 10^9), 20,000 new model
  names and 10,000 new columns: what the limits prevent.

Reported per run: Redis memory of the run's keys (sum of ``MEMORY USAGE``), their count,
the ``driftline_*`` series on ``/metrics`` and the dead letters by reason. Needs
KAFKA_BOOTSTRAP and REDIS_URL (``make bench`` starts the stack). Writes the
``## bounded state under hostile names`` section of bench/RESULTS.md.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import redis
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._results import write_section
from streams.reader import WindowReader
from streams.state import RedisStateStore

CLI = [sys.executable, "-m", "driftline.cli"]
PARTITIONS = 2
T0 = time.time()


def events(kind: str, n_models: int, n_columns: int) -> list[bytes]:
    ts = T0
    base = {"features": {"a": 1.0, "b": 2.0, "c": "x", "d": True, "e": 3.0},
            "prediction": 0.5, "ts": ts}
    if kind == "baseline":
        return [json.dumps({**base, "model": "only"}).encode()
                for _ in range(n_models + n_columns)]
    out = [json.dumps({**base, "model": "wide", "features": {f"col{i:05d}": 1.0}}).encode()
           for i in range(n_columns)]  # first, so "wide" is admitted before the models fill up
    out += [json.dumps({**base, "model": f"m{i:06d}"}).encode() for i in range(n_models)]
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run(kind: str, n_models: int, n_columns: int, extra: list[str], bootstrap: str,
        redis_url: str, work: Path) -> dict[str, object]:
    tag = uuid.uuid4().hex[:8]
    topic, prefix = f"bench-limits-{tag}", f"bench-limits-{tag}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, PARTITIONS, 1),
                                  NewTopic(f"{topic}.dlq", 1, 1)]).values():
        f.result(30)
    values = events(kind, n_models, n_columns)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50,
                         "queue.buffering.max.messages": 1_000_000})
    for i, v in enumerate(values):
        producer.produce(topic, v, partition=i % PARTITIONS)
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    port = free_port()
    worker = subprocess.Popen(
        [*CLI, "worker", "--kafka-bootstrap", bootstrap, "--redis-url", redis_url,
         "--key-prefix", prefix, "--topic", topic, "--dlq-topic", f"{topic}.dlq",
         "--group", f"g-{tag}", "--evaluate-interval", "1s", "--http-port", str(port),
         "--checkpoint-interval", "1s", *extra],
        stdout=subprocess.DEVNULL, stderr=(work / f"worker-{kind}.log").open("wb"),
    )
    client = redis.Redis.from_url(redis_url)
    store = RedisStateStore(client, prefix=prefix, topic=topic, horizon_ms=3_600_000)
    started = time.monotonic()
    try:
        while True:
            done = sum(store.read(p, min_start_ms=1 << 62).applied_offset + 1
                       for p in range(PARTITIONS))
            if done >= len(values):
                break
            if worker.poll() is not None or time.monotonic() - started > 900:
                raise SystemExit(f"{kind}: worker stopped or too slow ({done} of {len(values)})")
            time.sleep(1)
        seconds = time.monotonic() - started
        time.sleep(3)  # one more evaluation, so /metrics shows the final counters
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        series = [ln for ln in metrics.decode().splitlines()
                  if ln.startswith("driftline_") and not ln.startswith("#")]
        keys = list(client.scan_iter(match=f"{prefix}*", count=5000))
        memory = sum(int(client.memory_usage(k) or 0) for k in keys)
        counters = WindowReader(store).counters()
    finally:
        worker.terminate()
        worker.wait(60)
        for k in client.scan_iter(match=f"{prefix}*", count=5000):
            client.delete(k)
        client.close()
        admin.delete_topics([topic, f"{topic}.dlq"])
    return {"events": len(values), "seconds": seconds, "memory": memory, "keys": len(keys),
            "series": len(series), "ok": counters.total_ok, "invalid": dict(counters.invalid)}


def main() -> None:
    bootstrap, redis_url = os.environ.get("KAFKA_BOOTSTRAP"), os.environ.get("REDIS_URL")
    if not bootstrap or not redis_url:
        raise SystemExit("set KAFKA_BOOTSTRAP and REDIS_URL (or run `make bench`)")
    work = Path(tempfile.mkdtemp(prefix="driftline-bench-limits-"))
    lifted = ["--max-models", "1000000000", "--max-columns", "1000000000"]
    runs = {
        "baseline (1 model, 5 columns)": run("baseline", 100_000, 10_000, [], bootstrap,
                                             redis_url, work),
        "100,000 models + 10,000 columns, default limits": run(
            "hostile", 100_000, 10_000, [], bootstrap, redis_url, work),
        "20,000 models + 10,000 columns, limits lifted": run(
            "hostile", 20_000, 10_000, lifted, bootstrap, redis_url, work),
    }
    base = runs["baseline (1 model, 5 columns)"]
    rows = []
    for name, r in runs.items():
        mem = int(r["memory"])  # type: ignore[call-overload]
        rows.append(f"| {name} | {r['events']:,} | {r['ok']:,} | {r['invalid']} | "
                    f"{mem / 2**20:.2f} | {mem / int(base['memory']):.1f} | "  # type: ignore[call-overload]
                    f"{r['keys']:,} | {r['series']:,} | {float(r['seconds']):.0f} |")  # type: ignore[arg-type]
        print(name, r, file=sys.stderr)
    body = f"""
`python bench/limits.py` — {dt.date.today()}, {platform.machine()}, {os.cpu_count()} CPUs,
Python {platform.python_version()}. One worker, {PARTITIONS} partitions, no models file;
defaults `--max-models 100` (per partition) and `--max-columns 1000` (per window).
Memory = sum of Redis `MEMORY USAGE` over the run's keys; series = `driftline_*` samples
on `/metrics`; ratio = memory / the baseline's in the same run.

| run | events | ok | dead letters | Redis MiB | × baseline | keys | /metrics series | s |
|---|---:|---:|---|---:|---:|---:|---:|---:|
{chr(10).join(rows)}
"""
    write_section("## bounded state under hostile names\n" + body.strip("\n"))
    print(body)


if __name__ == "__main__":
    main()
