"""`driftline evaluator` as a process of its own beside `driftline worker --no-evaluate`:
the worker only ingests, the evaluator alone publishes the drift alert (real stack)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.support import CLI, MODEL, prepare_model
from tests.e2e.test_alerts_e2e import kcat_alerts
from tests.streamutil import Worker

pytestmark = pytest.mark.integration


def drift_then_firing(kafka_bootstrap: str, events: str, alerts: str
                      ) -> list[dict[str, object]]:
    """Simulate 25 s of events with income drifting from 8 s; the firing income alerts
    on the alerts topic (waiting up to 40 s for them)."""
    sim = subprocess.run(
        [*CLI, "simulate", "--kafka-bootstrap", kafka_bootstrap, "--topic", events,
         "--models", MODEL, "--rate", "2000", "--duration", "25s", "--seed", "3",
         "--drift", "income:shift=1.5sd@8s", "--no-progress"],
        capture_output=True, text=True, timeout=90)
    assert sim.returncode == 0, sim.stderr
    deadline = time.time() + 40
    fired: list[dict[str, object]] = []
    while not fired and time.time() < deadline:
        fired = [a for a in kcat_alerts(kafka_bootstrap, alerts)
                 if a["column"] == "income" and a["state"] == "firing"]
        time.sleep(1)
    return fired


def worker(kafka_bootstrap: str, common: list[str], events: str, alerts: str, models: Path,
           log: Path, *extra: str) -> Worker:
    """A ``driftline worker`` of the e2e model on ``events``, publishing to ``alerts``."""
    return Worker(
        [*CLI, "-v", "worker", "--kafka-bootstrap", kafka_bootstrap, *common, "--topic", events,
         "--dlq-topic", f"{events}.dlq", "--group", f"g-{events}", "--alerts-topic", alerts,
         "--models-config", str(models), "--checkpoint-interval", "500ms",
         "--evaluator-shards", "2", *extra], log)


@pytest.mark.timeout(240)
def test_a_separate_evaluator_process_fires_the_alert(
    kafka_bootstrap: str, redis_url: str, make_topic, key_prefix: str, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    events = make_topic(2, prefix="pred")
    alerts = make_topic(1, prefix="alerts")
    common = ["--redis-url", redis_url, "--key-prefix", key_prefix]
    models = prepare_model(tmp_path, common, 5)
    ingest = worker(kafka_bootstrap, common, events, alerts, models, tmp_path / "worker.log",
                    "--no-evaluate", "--http-port", "-1")
    evaluator = Worker(
        [*CLI, "-v", "evaluator", "--kafka-bootstrap", kafka_bootstrap, *common,
         "--topic", events, "--alerts-topic", alerts, "--models-config", str(models),
         "--evaluate-interval", "1s", "--http-port", "0", "--evaluator-shards", "2"],
        tmp_path / "evaluator.log")
    try:
        fired = drift_then_firing(kafka_bootstrap, events, alerts)
        assert ingest.alive() and evaluator.alive(), evaluator.tail()
    finally:
        assert evaluator.stop() == 0, evaluator.tail()
        assert ingest.stop() == 0, ingest.tail()
    assert fired, evaluator.tail()
    alert_line = f"alert {MODEL}/income/"
    assert alert_line in evaluator.log_path.read_text()  # published by the evaluator...
    assert alert_line not in ingest.log_path.read_text()  # ...and never by the worker


@pytest.mark.timeout(240)
def test_the_worker_starts_its_evaluator_as_a_child_and_restarts_it(
    kafka_bootstrap: str, redis_url: str, make_topic, key_prefix: str, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    """``worker --evaluator-process``: the alert comes from the child evaluator (not from a
    thread of the ingest process); a kill -9 of the child starts another; stopping the
    worker stops the child."""
    events = make_topic(2, prefix="pred")
    alerts = make_topic(1, prefix="alerts")
    common = ["--redis-url", redis_url, "--key-prefix", key_prefix]
    models = prepare_model(tmp_path, common, 5)
    parent = worker(kafka_bootstrap, common, events, alerts, models, tmp_path / "parent.log",
                    "--evaluator-process", "--evaluate-interval", "1s", "--http-port", "0",
                    "--evaluator-lease", "6s")
    children: list[int] = []
    try:
        parent.wait_log("evaluator process", timeout=60)
        first = int(re.findall(r"evaluator process (\d+) started", parent.tail())[0])
        os.kill(first, signal.SIGKILL)  # the child dies: the worker starts another
        parent.wait_log("exited (code -9)", timeout=30)
        deadline = time.time() + 30
        while len(children) < 2:
            assert time.time() < deadline and parent.alive(), parent.tail()
            children = [int(p) for p in re.findall(r"evaluator process (\d+) started",
                                                   parent.log_path.read_text())]
            time.sleep(0.2)
        assert len(children) == 2 and children[0] == first, parent.tail()
        fired = drift_then_firing(kafka_bootstrap, events, alerts)
        assert parent.alive(), parent.tail()
    finally:
        code = parent.stop()
    assert code == 0, parent.tail()
    assert fired, parent.tail()
    per_id = Counter(a["id"] for a in fired)
    assert set(per_id.values()) == {1}, fired  # one firing message per alert
    # the worker's own monitor does not evaluate: the alert came from the child
    assert f"alert {MODEL}/income/" in parent.log_path.read_text(), parent.tail()
    with pytest.raises(ProcessLookupError):
        os.kill(children[-1], 0)  # stopped with the worker
