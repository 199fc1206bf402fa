"""End to end on the real stack: predictions + late labels → worker (label join) → Redis →
evaluator → a ``performance`` alert and River's detection, only where accuracy fell.

Two binary models share one worker: ``acc-drop``'s labels are corrupted from the middle
of the stream so its accuracy falls by 0.15 (no input drift at all: only ground truth can
see it); ``acc-flat`` gets the same kind of stream without the fall. Labels reach the
``labels`` topic after their predictions, one second later in event time, for 90 % of
the ids. Expected: ``acc-drop/-/accuracy`` fires (kind performance, column null) and
ADWIN flags a change within a stated number of outcomes after the change point;
``acc-flat`` raises nothing and its detector stays quiet.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import redis
from confluent_kafka import Producer

from alerts.detectors import DetectorState
from alerts.keys import AlertKeys
from streams.join import id_key
from tests.e2e.support import CLI
from tests.e2e.test_alerts_e2e import kcat_alerts
from tests.streamutil import Worker

pytestmark = pytest.mark.integration
WINDOW_S = 5
WINDOWS = 12
PER_WINDOW = 400
DROP = 0.15
SEED = 11
MAX_DETECTION_DELAY = 1500
"""Outcomes between the change point and ADWIN's detection (measured ~300–700)."""


def stream(model: str, drop: bool, base_s: float, rng: np.random.Generator
           ) -> tuple[list[bytes], list[bytes], int]:
    """(prediction events, label events, outcomes before the change) of one model."""
    events, labels = [], []
    change_at = WINDOWS // 2
    before = 0
    for w in range(WINDOWS):
        scores = rng.beta(0.5, 0.5, PER_WINDOW)
        truth = rng.random(PER_WINDOW) < scores  # calibrated: P(y=1 | s) = s
        if drop and w >= change_at:
            acc = float(np.mean(np.maximum(scores, 1 - scores)))
            flip = rng.random(PER_WINDOW) < DROP / (2 * acc - 1)
            truth = truth ^ flip
        for i in range(PER_WINDOW):
            ts = base_s + w * WINDOW_S + i * WINDOW_S / PER_WINDOW
            ident = f"{model}-{w}-{i}"
            events.append(json.dumps({
                "model": model, "id": ident, "ts": ts, "prediction": float(scores[i]),
                "features": {"x": float(rng.normal())}}).encode())
            if rng.random() < 0.9:
                labels.append(json.dumps({"model": model, "id": ident, "label": int(truth[i]),
                                          "ts": ts + 1.0}).encode())
                if w < change_at:
                    before += 1
    return events, labels, before


def send(bootstrap: str, topic: str, values: list[bytes]) -> None:
    """Produce with the broker's clock as Kafka timestamp (the events' ts are "now")."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for i, v in enumerate(values):
        producer.produce(topic, value=v, partition=i % 2)
        if i % 5000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0


@pytest.mark.timeout(240)
def test_accuracy_fall_fires_a_performance_alert_and_the_detector(
    kafka_bootstrap: str, redis_url: str, make_topic, key_prefix: str, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    events = make_topic(2, prefix="pred")
    labels = make_topic(2, prefix="labels")
    alerts = make_topic(1, prefix="alerts")
    make_topic(1, prefix=f"{events}.dlq")
    make_topic(1, prefix=f"{labels}.dlq")
    models = tmp_path / "models.toml"
    perf = ('task = "binary"\nmin_labels = 300\nmeasure = "30s"\nlabel_wait = "5s"\n'
            'label_ttl = "10m"\nrules = { accuracy = { min = 0.72 } }\n')
    models.write_text(
        f'[defaults]\nwindow = "{WINDOW_S}s"\nretention = "10s"\nmeasure = "30s"\n'
        + "".join(f"[models.{m}]\nmin_count = 100\n[models.{m}.performance]\n{perf}"
                  for m in ("acc-drop", "acc-flat")))
    rng = np.random.default_rng(SEED)
    base = time.time() // WINDOW_S * WINDOW_S - WINDOWS * WINDOW_S  # whole tumbling windows
    drop_events, drop_labels, change_n = stream("acc-drop", True, base, rng)
    flat_events, flat_labels, _ = stream("acc-flat", False, base, rng)
    common = ["--redis-url", redis_url, "--key-prefix", key_prefix]
    worker = Worker(
        [*CLI, "-v", "worker", "--kafka-bootstrap", kafka_bootstrap, *common,
         "--topic", events, "--dlq-topic", f"{events}.dlq", "--group", f"g-{events}",
         "--labels-topic", labels, "--labels-dlq-topic", f"{labels}.dlq",
         "--alerts-topic", alerts, "--models-config", str(models),
         "--evaluate-interval", "1s", "--checkpoint-interval", "300ms", "--http-port", "-1",
         "--evaluator-sweep", "2s"],
        tmp_path / "worker.log",
    )
    client = redis.Redis.from_url(redis_url)
    try:
        send(kafka_bootstrap, events, [e for pair in zip(drop_events, flat_events, strict=True)
                                       for e in pair])
        send(kafka_bootstrap, labels, [e for pair in zip(drop_labels, flat_labels, strict=False)
                                       for e in pair] + drop_labels[len(flat_labels):]
                                       + flat_labels[len(drop_labels):])
        deadline = time.time() + 90
        got: list[dict[str, object]] = []
        while time.time() < deadline:
            got = kcat_alerts(kafka_bootstrap, alerts)
            if any(a["id"] == "acc-drop/-/accuracy" for a in got):
                break
            time.sleep(2)
        time.sleep(3)  # two more evaluations: the flat model had its chance to misfire
        got = kcat_alerts(kafka_bootstrap, alerts)
        assert worker.alive(), worker.tail()
        key = id_key(client, key_prefix)
        states = {m: DetectorState.from_bytes(
            client.get(AlertKeys(key_prefix).detector(m)) or b"", key)
            for m in ("acc-drop", "acc-flat")}
    finally:
        code = worker.stop()
        client.close()
    assert code == 0, worker.tail()
    perf = [a for a in got if a["kind"] == "performance"]
    fired = [a for a in perf if a["id"] == "acc-drop/-/accuracy" and a["state"] == "firing"]
    assert len(fired) == 1, got
    assert fired[0]["column"] is None and fired[0]["model"] == "acc-drop"
    assert float(fired[0]["value"]) < 0.72, fired  # type: ignore[arg-type]
    assert not [a for a in got if a["model"] == "acc-flat"], got

    drop, flat = states["acc-drop"], states["acc-flat"]
    assert sum(drop.seen.values()) == len(drop_labels), drop.seen  # every outcome, once
    hits = [n for ns in drop.detections.values() for n in ns]
    assert hits, "ADWIN saw no change"
    after = [n - change_n for n in hits if n > change_n]
    assert after and after[0] <= MAX_DETECTION_DELAY, (hits, change_n)
    print(f"ADWIN detection delay: {after[0]} outcomes after the change "
          f"(change at outcome {change_n}; detections {hits})")
    assert not [n for ns in flat.detections.values() for n in ns], flat.detections
    assert sum(flat.seen.values()) == len(flat_labels)
