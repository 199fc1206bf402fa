"""Alert latency: from the first drifted event produced to the alert on the topic.

Each run: fresh topics and key prefix, a reference from synthetic training data, one
``driftline worker`` (5 s windows, 5 s measurement window, evaluation every 1 s), normal
traffic at 2,000 events/s, then ``income`` shifted by 1 sd from second 15. The clock
starts when the first drifted event is handed to the producer and stops at the Kafka
timestamp of the first ``firing`` alert for ``income``. It is set against the issue's
target, one window + 5 s (10 s here). What bounds it from below is the evaluation interval
(1 s) plus the worker's checkpoint interval (0.5 s): the measurement window includes the
current, partial window, so a strong shift is visible after a few hundred events.

Needs KAFKA_BOOTSTRAP and REDIS_URL (``make bench`` starts the stack). Writes the
``## alert latency`` section of bench/RESULTS.md. Run: ``python bench/alert_latency.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._results import write_section
from streams.producer import PredictionProducer
from streams.simulate import generate_payloads
from streams.simulate_spec import build_spec

RUNS = int(os.environ.get("ALERT_LATENCY_RUNS", "5"))
RATE, DRIFT_AT_S, WINDOW_S, INTERVAL_S, MAX_S = 2000, 15, 5, 1, 45
MODEL = "credit-risk"
CLI = [sys.executable, "-m", "driftline.cli"]


def one_run(bootstrap: str, redis_url: str, work: Path) -> float:
    tag = uuid.uuid4().hex[:8]
    events, alerts, prefix = f"bench-pred-{tag}", f"bench-alerts-{tag}", f"bench-{tag}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(events, 2, 1), NewTopic(alerts, 1, 1),
                                  NewTopic(f"{events}.dlq", 1, 1)]).values():
        f.result(30)
    common = ["--redis-url", redis_url, "--key-prefix", prefix]
    subprocess.run([*CLI, "reference", "put", str(work / "ref.bin"), "--model", MODEL, *common],
                   check=True, capture_output=True)
    worker = subprocess.Popen(
        [*CLI, "worker", "--kafka-bootstrap", bootstrap, *common, "--topic", events,
         "--dlq-topic", f"{events}.dlq", "--alerts-topic", alerts, "--group", f"g-{tag}",
         "--models-config", str(work / "models.toml"), "--evaluate-interval", f"{INTERVAL_S}s",
         "--checkpoint-interval", "500ms", "--http-port", "-1"],
        stdout=subprocess.DEVNULL, stderr=(work / f"worker-{tag}.log").open("wb"),
    )
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": tag,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([alerts])
    spec = build_spec([MODEL], 5, 2, drifts=[f"income:shift=1sd@{DRIFT_AT_S}s"],
                      events_per_s=RATE, null_ratio=0.01, bad_ratio=0.0, version="1")
    marks: dict[str, float] = {}
    first_drifted = DRIFT_AT_S * RATE
    def poll_alerts(timeout: float) -> None:
        for m in consumer.consume(100, timeout=timeout):
            a = json.loads(m.value()) if not m.error() else {}
            if a.get("column") == "income" and a.get("state") == "firing":
                marks.setdefault("alert", m.timestamp()[1] / 1000)

    try:
        time.sleep(2)  # let the worker join its group
        deadline = time.time() + MAX_S + 15
        with PredictionProducer.connect(bootstrap, topic=events) as producer:
            start = time.time()
            payloads = generate_payloads(spec, RATE * MAX_S, start, 1)
            sent = 0
            for batch in payloads:
                for key, value in batch:
                    if sent == first_drifted:
                        marks["drift"] = time.time()
                    producer.send_bytes(value, key)
                    sent += 1
                    if sent % 200 == 0:
                        poll_alerts(0)
                        ahead = start + sent / RATE - time.time()  # keep the rate
                        if ahead > 0:
                            time.sleep(ahead)
                if "alert" in marks or time.time() > deadline:
                    break
            producer.flush(30)
        while "alert" not in marks and time.time() < deadline:
            poll_alerts(0.5)
    finally:
        consumer.close()
        worker.terminate()
        worker.wait(30)
        admin.delete_topics([events, alerts, f"{events}.dlq"])
    if "alert" not in marks or "drift" not in marks:
        raise SystemExit(f"run {tag}: no income alert within {MAX_S}s (see {work})")
    return marks["alert"] - marks["drift"]


def main() -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    redis_url = os.environ.get("REDIS_URL")
    if not bootstrap or not redis_url:
        raise SystemExit("set KAFKA_BOOTSTRAP and REDIS_URL (or run `make bench`)")
    work = Path(tempfile.mkdtemp(prefix="driftline-bench-latency-"))
    subprocess.run([*CLI, "simulate", "--training-out", str(work / "train.parquet"),
                    "--rows", "30000", "--models", MODEL, "--numeric", "5",
                    "--categorical", "2", "--no-progress"], check=True, capture_output=True)
    subprocess.run([*CLI, "profile", str(work / "train.parquet"), "--out", str(work / "ref.bin"),
                    "--model", MODEL], check=True, capture_output=True)
    (work / "models.toml").write_text(
        f'[defaults]\nwindow = "{WINDOW_S}s"\nretention = "30s"\nmeasure = "{WINDOW_S}s"\n'
        f"[models.{MODEL}]\nmin_count = 200\n"
    )
    latencies = []
    for i in range(RUNS):
        latencies.append(one_run(bootstrap, redis_url, work))
        print(f"run {i + 1}/{RUNS}: {latencies[-1]:.2f} s", file=sys.stderr)
    median = statistics.median(latencies)
    target = WINDOW_S + 5
    body = f"""
`python bench/alert_latency.py` — {dt.date.today()}, {platform.machine()}, {os.cpu_count()} CPUs,
Python {platform.python_version()}. One worker, {WINDOW_S} s windows, {WINDOW_S} s measurement
window, evaluation every {INTERVAL_S} s, {RATE:,} events/s, `income` shifted by 1 sd.
Latency = Kafka timestamp of the first `firing` alert minus the wall time the first drifted
event was handed to the producer.

| runs | median s | min s | max s | target (window + 5 s) | median / target |
|---:|---:|---:|---:|---:|---:|
| {RUNS} | {median:.2f} | {min(latencies):.2f} | {max(latencies):.2f} | {target} s \
| {median / target:.2f} |

All runs: {", ".join(f"{x:.2f}" for x in latencies)} s.
"""
    write_section("## alert latency\n" + body.strip("\n"))
    print(body)


if __name__ == "__main__":
    main()
