"""Where does the faust runner's time go? (the "why" behind (c) in bench/RESULTS.md)

Runs :class:`streams.faust_runner.FaustRunner` over an existing, filled topic twice:

  noop  the batch handler only counts records: faust's own ceiling for a
        ``take_events`` agent on this machine;
  real  the real handler, timing the time spent inside it.

    python bench/faust_probe.py TOPIC EVENTS [--take 10000]

(fill TOPIC first, e.g. with ``bench/stream.py``'s ``fill()``).

Prints one JSON line per mode: total seconds, seconds until the first batch (group join),
seconds inside the handler, and the steady-state rate.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def probe(mode: str, topic: str, n: int, take: int, bootstrap: str, redis_url: str) -> None:
    import redis
    from confluent_kafka import Producer

    from streams.core import Processor, Record
    from streams.dlq import DlqSender
    from streams.faust_runner import FaustConfig, FaustRunner
    from streams.runner import producer_config
    from streams.state import RedisStateStore
    from streams.windows import ModelCatalog

    catalog = ModelCatalog()
    prefix = f"probe-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    store = RedisStateStore(client, prefix=prefix, topic=topic, horizon_ms=catalog.max_horizon_ms)
    runner = FaustRunner(
        bootstrap=bootstrap, store=store, processor=Processor(catalog),
        dlq=DlqSender(Producer(producer_config(bootstrap)), topic=f"{topic}.dlq",
                      source_topic=topic),
        config=FaustConfig(topic=topic, group=f"probe-{uuid.uuid4().hex}", take_max=take),
    )
    real = runner.handle_batch
    inside = 0.0
    first: float | None = None

    def handle(records: list[Record]) -> None:
        nonlocal inside, first
        t = time.perf_counter()
        first = first or t
        if mode == "real":
            real(records)
        else:
            runner.health.records += len(records)
        inside += time.perf_counter() - t
        if runner.health.records >= n:
            runner.stop()

    runner.handle_batch = handle  # type: ignore[method-assign]
    started = time.perf_counter()
    try:
        runner.run()
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    total = time.perf_counter() - started
    join = (first or started) - started
    out: dict[str, Any] = {"mode": mode, "take": take, "total_s": round(total, 2),
                           "join_s": round(join, 2), "in_handler_s": round(inside, 2),
                           "steady_events_per_s": round(n / (total - join))}
    print(json.dumps(out), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("topic")
    ap.add_argument("events", type=int)
    ap.add_argument("--take", type=int, default=10_000)
    ap.add_argument("--mode", choices=["noop", "real"])
    ap.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    ap.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:16379/0"))
    args = ap.parse_args()
    if args.mode:
        probe(args.mode, args.topic, args.events, args.take, args.bootstrap, args.redis_url)
        return
    for mode in ("noop", "real"):  # each in a fresh process, like bench/stream.py
        done = subprocess.run([sys.executable, __file__, args.topic, str(args.events),
                               "--take", str(args.take), "--mode", mode, "--bootstrap",
                               args.bootstrap, "--redis-url", args.redis_url],
                              check=True, capture_output=True, text=True)
        print(done.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
