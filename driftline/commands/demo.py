"""``driftline demo`` — everything together on one machine, stopping by itself.

1. recreates the demo topics (``driftline-demo.predictions``, ``….dlq``, ``….alerts``);
2. profiles synthetic training data into a reference and stores it in Redis;
3. starts a ``driftline worker`` (5 s windows, 10 s measurement window, evaluation
   every second, metrics on ``--http-port``);
4. runs ``driftline simulate``: normal traffic, then income drift, a null spike in
   ``tenure``, unseen ``country`` values and a few malformed records; ground-truth labels
   follow the predictions 2 s later (event time), and from 60 % of the run they are
   corrupted so the model's accuracy falls by 0.25 — a concept drift no input shows;
5. shows the live drift table, realized beside estimated (CBPE) accuracy, and each alert
   as it arrives on the alerts topic;
6. prints a summary of what it found and where to look.

Needs a Kafka and a Redis: ``make demo`` starts the project's own stack first.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from alerts.evaluator import load_results
from driftline.commands.common import (
    add_kafka_options,
    add_redis_options,
    child_env,
    kafka_connection,
    redis_client,
)
from driftline.commands.status import render
from driftline.options import add_option
from sketches.errors import ConfigError
from streams.kafka_config import KafkaConnection, client_config
from streams.secret import redact_url

MODEL = "credit-risk"
TOPIC = "driftline-demo.predictions"
LABELS = "driftline-demo.labels"
PERFORMANCE = (
    '[models.{model}.performance]\ntask = "binary"\nmin_labels = 500\nlabel_wait = "3s"\n'
    'label_ttl = "10m"\nrules = {{ accuracy = {{ max_drop = 0.1 }} }}\n'
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="run driftline end to end on this machine",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_kafka_options(p)
    add_redis_options(p)
    add_option(p, "--duration", help="seconds of simulated traffic", default=75, type=int)
    add_option(p, "--rate", help="events per second", default=2000, type=int)
    add_option(p, "--http-port", help="worker metrics / API port", default=9464, type=int)
    p.set_defaults(func=run, key_prefix=None)


def _recreate_topics(kafka: KafkaConnection, names: list[str]) -> None:
    admin = AdminClient(client_config(kafka))
    try:
        existing = set(admin.list_topics(timeout=10).topics)
    except Exception as exc:
        raise ConfigError(f"cannot reach Kafka at {kafka.bootstrap} ({exc}); start it with "
                          "`make stack` or set KAFKA_BOOTSTRAP") from exc
    stale = [n for n in names if n in existing]
    if stale:
        for fut in admin.delete_topics(stale, operation_timeout=30).values():
            fut.result(30)
        time.sleep(1.0)
    for attempt in range(20):
        futures = admin.create_topics(
            [NewTopic(n, num_partitions=4 if n == TOPIC else 1, replication_factor=1)
             for n in names])
        try:
            for fut in futures.values():
                fut.result(30)
            return
        except Exception:  # topic deletion still in progress: try again
            if attempt == 19:
                raise
            time.sleep(0.5)


class AlertTail(threading.Thread):
    """Reads the alerts topic and prints each alert as it arrives."""

    def __init__(self, kafka: KafkaConnection, topic: str, console: Console) -> None:
        super().__init__(name="demo-alerts", daemon=True)
        self.consumer = Consumer(client_config(kafka, {"auto.offset.reset": "earliest"},
                                               fixed={"group.id": uuid.uuid4().hex}))
        self.consumer.subscribe([topic])
        self.console = console
        self.alerts: list[dict[str, object]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for msg in self.consumer.consume(100, timeout=0.5):
                if msg.error():
                    continue
                alert = json.loads(msg.value() or b"{}")
                self.alerts.append(alert)
                style = "bold red" if alert["state"] == "firing" else "bold green"
                self.console.print(Text(f"ALERT {alert['state'].upper():8} {alert['severity']:8} "
                                        f"{alert['summary']}", style=style))
        self.consumer.close()


def run(args: argparse.Namespace) -> int:
    console = Console()
    client = redis_client(args)  # fails clearly when Redis is down
    prefix = f"demo-{uuid.uuid4().hex[:8]}"
    dlq, alerts = f"{TOPIC}.dlq", "driftline-demo.alerts"
    console.print(f"[bold]driftline demo[/] — Kafka {args.kafka_bootstrap}, Redis "
                  f"{redact_url(args.redis_url)}, key prefix {prefix}")
    env = child_env(args)  # the children get the same client settings, secrets not in argv
    kafka = kafka_connection(args)
    _recreate_topics(kafka, [TOPIC, dlq, alerts, LABELS, f"{LABELS}.dlq"])
    cli = [sys.executable, "-m", "driftline.cli"]
    env["DRIFTLINE_REDIS_URL"] = args.redis_url  # may hold a password: not in argv
    common = ["--key-prefix", prefix]
    work = Path(tempfile.mkdtemp(prefix="driftline-demo-"))

    console.print("1/4 building the reference (with its accuracy and a calibrator) from "
                  "50,000 labelled synthetic training rows")
    for step in (
        ["simulate", "--training-out", str(work / "train.parquet"), "--rows", "50000",
         "--models", MODEL, "--training-labels", "--no-progress"],
        ["profile", str(work / "train.parquet"), "--out", str(work / "ref.bin"), "--model", MODEL,
         "--label-column", "label"],
        ["reference", "put", str(work / "ref.bin"), "--model", MODEL, *common],
    ):
        done = subprocess.run([*cli, *step], capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise ConfigError(f"demo step `driftline {step[0]}` failed: {done.stderr.strip()}")
    (work / "models.toml").write_text(
        '[defaults]\nwindow = "5s"\nretention = "1m"\nmeasure = "10s"\n'
        f'[models.{MODEL}]\nmin_count = 200\n' + PERFORMANCE.format(model=MODEL)
    )
    console.print(f"2/4 starting a worker (metrics: http://127.0.0.1:{args.http_port}/metrics)")
    worker_log = (work / "worker.log").open("wb")
    worker = subprocess.Popen(
        [*cli, "-v", "worker", "--kafka-bootstrap", args.kafka_bootstrap, *common,
         "--topic", TOPIC, "--dlq-topic", dlq, "--alerts-topic", alerts,
         "--group", f"demo-{prefix}", "--models-config", str(work / "models.toml"),
         "--labels-topic", LABELS, "--labels-dlq-topic", f"{LABELS}.dlq",
         "--evaluate-interval", "1s", "--checkpoint-interval", "500ms",
         "--http-port", str(args.http_port)],
        stdout=worker_log, stderr=subprocess.STDOUT, env=env,
    )
    d = args.duration
    drifts = [f"income:shift=1sd@{d * 0.2:.0f}s..{d * 0.55:.0f}s",
              f"tenure:nulls=0.3@{d * 0.35:.0f}s..{d * 0.65:.0f}s",
              f"country:unseen=0.1@{d * 0.45:.0f}s..{d * 0.8:.0f}s"]
    fall = f"accuracy=-0.25@{d * 0.6:.0f}s"
    console.print("3/4 simulating traffic: normal, then " + "; ".join(drifts)
                  + f"; labels 2 s after each prediction, {fall}")
    sim_log = (work / "simulate.log").open("wb")
    sim = subprocess.Popen(
        [*cli, "simulate", "--kafka-bootstrap", args.kafka_bootstrap, "--topic", TOPIC,
         "--models", MODEL, "--rate", str(args.rate), "--duration", f"{d}s",
         "--bad-ratio", "0.002", "--no-progress", *[a for x in drifts for a in ("--drift", x)],
         "--labels-topic", LABELS, "--label-delay", "2s", "--performance", fall],
        stdout=sim_log, stderr=subprocess.STDOUT, env=env,
    )
    tail = AlertTail(kafka, alerts, console)
    tail.start()
    try:
        with Live(console=console, refresh_per_second=2, transient=True) as live:
            settle_until: float | None = None
            while True:
                elapsed = d if sim.poll() is not None else None
                results = load_results(client, prefix, [MODEL])
                live.update(Group(render(results), Text(f"simulator: "
                            f"{'done' if elapsed else 'running'} — alerts so far: "
                            f"{len(tail.alerts)}", style="dim")))
                if worker.poll() is not None:
                    raise ConfigError(f"the worker exited early; log: {work / 'worker.log'}")
                if sim.poll() is not None:
                    settle_until = settle_until or time.time() + 8
                    if time.time() >= settle_until:
                        break
                time.sleep(0.5)
        console.print(render(load_results(client, prefix, [MODEL])))
    finally:
        for proc in (sim, worker):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
        tail.stop.set()
        tail.join(10)
    fired = sorted({str(a["id"]) for a in tail.alerts if a["state"] == "firing"})
    resolved = sorted({str(a["id"]) for a in tail.alerts if a["state"] == "resolved"})
    console.print("\n4/4 [bold]summary[/]")
    console.print(f"  alerts fired: {len(fired)} — " + (", ".join(fired) or "none"))
    console.print(f"  alerts resolved: {len(resolved)}")
    console.print(f"  alerts topic: {alerts}  (kcat -C -b {args.kafka_bootstrap} -t {alerts} -e)")
    console.print(f"  dead letters: {dlq}")
    console.print(f"  drift state: driftline status --redis-url {redact_url(args.redis_url)} "
                  f"--key-prefix {prefix}")
    console.print(f"  metrics were at http://127.0.0.1:{args.http_port}/metrics; logs in {work}")
    final = load_results(client, prefix, [MODEL])
    perf = final[0].performance if final else None
    if perf is not None:
        real, est = perf.metrics.get("accuracy"), perf.estimated.get("estimated_accuracy")
        console.print(f"  accuracy over the last window: realized "
                      f"{real.value if real else float('nan'):.3f}, estimated without labels "
                      f"(CBPE) {est.value if est else float('nan'):.3f}, reference "
                      f"{perf.reference.get('accuracy', float('nan')):.3f}")
    columns = {a.split("/")[1] + ("/" + a.split("/")[2] if a.split("/")[1] == "-" else "")
               for a in fired}
    expected = {"income", "tenure", "country", "-/accuracy"}
    missing = expected - columns
    if missing:
        console.print(f"[red]expected alerts for {sorted(missing)} did not fire[/]")
        return 1
    return 0
