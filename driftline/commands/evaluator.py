"""``driftline evaluator``: the evaluator in a process of its own.

It evaluates every model (the models file's, plus every model with a reference), drives
the alert state machine, publishes alerts and serves ``/metrics``, ``/readyz`` and the
JSON API — what a worker does besides ingest, without competing with an ingest loop for
the interpreter. Run workers with ``--no-evaluate`` beside it. Several evaluators may run:
they form one Kafka consumer group on ``<topic>.notices`` whose partitions are the
evaluator shards, so the models are spread over them and a dead one's shards move to the
others (fenced in Kafka and Redis, see :mod:`alerts.shards`).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType

from driftline.commands.common import (
    add_kafka_security_options,
    add_redis_security_options,
    check_kafka,
    check_redis_access,
    kafka_connection,
    redis_connection,
)
from driftline.commands.worker import _HealthBox, add_monitor_options, monitor_from_args
from driftline.options import add_option

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("evaluator", help="run the evaluator on its own (workers: --no-evaluate)",
                       description=__doc__)
    add_option(p, "--kafka-bootstrap", help="Kafka bootstrap servers (alerts are published "
               "there)", required=True, fallback_env="KAFKA_BOOTSTRAP")
    add_option(p, "--redis-url", help="Redis URL of the workers' state (rediss:// for TLS)",
               required=True, fallback_env="REDIS_URL")
    add_kafka_security_options(p)
    add_redis_security_options(p)
    add_option(p, "--topic", help="prediction events topic the workers read",
               default="predictions")
    add_option(p, "--models-config", help="models file (TOML or YAML)")
    add_option(p, "--key-prefix", help="Redis key prefix", default="driftline")
    add_monitor_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_redis_access(redis_connection(args))
    check_kafka(kafka_connection(args))
    monitor = monitor_from_args(args, _HealthBox(), evaluate=True)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping the evaluator", signum)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    monitor.start()
    try:
        stop.wait()
    finally:
        monitor.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0
