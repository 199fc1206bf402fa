"""End to end on the real stack: predictions + late labels → worker (label join) → Redis →
evaluator → a ``performance`` alert and River's detection, only where accuracy fell.

Two binary models share one worker: ``acc-drop``'s labels are corrupted from the middle
of the stream so its accuracy falls by 0.15 (no input drift at all: only ground truth can
see it); ``acc-flat`` gets the same kind of stream without the fall. The stream is
``bench/performance_delay.py``'s :func:`generate` (12 windows of 5 s, 400 predictions
each, labels for 90 %), sent one window at a time: the window's predictions, then its
labels (one second later in event time), then a wait until the evaluator has stored an
evaluation of exactly that much data (watermark at the window's last event, every label
of the measurement joined). So the alert's measurement window says, in event time, how
many windows after the change point it fired — counted from the data, never from the
clock — and ADWIN's detection count says how many outcomes after the change it needed
(all outcomes before the change are joined before any after it).

Expected: ``acc-drop/-/accuracy`` fires (kind performance, column null) within the
measure span (6 windows) after the change, ADWIN flags the change within
``DETECTION_DELAY_BOUND`` outcomes, ``acc-flat`` raises nothing and its detector stays
quiet over the same length. The figures over 1,000 seeds are in bench/RESULTS.md
("performance delay").
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from pathlib import Path

import pytest
import redis
from confluent_kafka import Producer

from alerts.detectors import DetectorState
from alerts.keys import AlertKeys
from alerts.results import ModelResult, result_from_bytes
from bench.performance_delay import (
    CHANGE_AT,
    DETECTION_DELAY_BOUND,
    MEASURE_WINDOWS,
    PER_WINDOW,
    WINDOW_S,
    WINDOWS,
    Window,
    alert_windows,
    detector_delay,
    event_ms,
    generate,
    last_event_ms,
    outcomes_before_change,
)
from streams.join import id_key
from tests.e2e.support import CLI
from tests.e2e.test_alerts_e2e import kcat_alerts
from tests.streamutil import Worker

pytestmark = pytest.mark.integration
SEED = 11
"""bench/performance_delay.py's figures for it: alert at 4 windows, ADWIN after 172."""
MODELS = ("acc-drop", "acc-flat")


def events(model: str, stream: list[Window], w: int, base_ms: int
           ) -> tuple[list[bytes], list[bytes]]:
    """(prediction events, label events) of window ``w`` of one model's stream."""
    win = stream[w]
    preds, labels = [], []
    for i in range(PER_WINDOW):
        ts = (base_ms + event_ms(w, i)) / 1000
        ident = f"{model}-{w}-{i}"
        preds.append(json.dumps({
            "model": model, "id": ident, "ts": ts, "prediction": float(win.scores[i]),
            "features": {"x": float(win.x[i])}}).encode())
        if win.labeled[i]:
            labels.append(json.dumps({"model": model, "id": ident,
                                      "label": int(win.truth[i]), "ts": ts + 1.0}).encode())
    return preds, labels


def labels_measured(stream: list[Window], w: int) -> int:
    """Labeled outcomes of the measurement ending at window w (windows w-5..w)."""
    return sum(int(x.labeled.sum()) for x in stream[max(0, w - MEASURE_WINDOWS + 1):w + 1])


def send(producer: Producer, topic: str, values: list[bytes]) -> None:
    for i, v in enumerate(values):
        producer.produce(topic, value=v, partition=i % 2)
    assert producer.flush(30) == 0


def wait_evaluated(client: redis.Redis, keys: AlertKeys, worker: Worker,
                   want: dict[str, tuple[int, int]]) -> dict[str, ModelResult]:
    """Until each model's stored evaluation ends at its (watermark ms, labels measured)."""
    deadline = time.monotonic() + 60
    while True:
        got = {}
        for model, (end_ms, labels) in want.items():
            blob = client.get(keys.result(model))
            r = result_from_bytes(blob) if isinstance(blob, bytes) else None
            if (r is not None and r.performance is not None
                    and round(r.window_end * 1000) == end_ms and r.performance.labels == labels):
                got[model] = r
        if len(got) == len(want):
            return got
        assert worker.alive(), worker.tail()
        assert time.monotonic() < deadline, (want, worker.tail())
        time.sleep(0.2)


def windows_after_change(alert: dict[str, object], base_ms: int) -> int:
    """Windows after the change point in the alert's measurement (1: the first one)."""
    end = dt.datetime.fromisoformat(str(alert["window"]["end"]))  # type: ignore[index]
    end_ms = round(end.timestamp() * 1000) - base_ms
    return math.floor((end_ms - CHANGE_AT * WINDOW_S * 1000) / (WINDOW_S * 1000)) + 1


@pytest.mark.timeout(300)
def test_accuracy_fall_fires_a_performance_alert_and_the_detector(
    kafka_bootstrap: str, redis_url: str, make_topic, key_prefix: str, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    topic = make_topic(2, prefix="pred")
    labels = make_topic(2, prefix="labels")
    alerts = make_topic(1, prefix="alerts")
    make_topic(1, prefix=f"{topic}.dlq")
    make_topic(1, prefix=f"{labels}.dlq")
    models = tmp_path / "models.toml"
    perf = ('task = "binary"\nmin_labels = 300\nmeasure = "30s"\nlabel_wait = "5s"\n'
            'label_ttl = "10m"\nrules = { accuracy = { min = 0.72 } }\n')
    models.write_text(
        f'[defaults]\nwindow = "{WINDOW_S}s"\nretention = "10s"\nmeasure = "30s"\n'
        + "".join(f"[models.{m}]\nmin_count = 100\n[models.{m}.performance]\n{perf}"
                  for m in MODELS))
    streams = {"acc-drop": generate(SEED, True), "acc-flat": generate(SEED + 1, False)}
    # whole tumbling windows, all of them in the past
    base_ms = int(time.time() // WINDOW_S * WINDOW_S - WINDOWS * WINDOW_S) * 1000
    common = ["--redis-url", redis_url, "--key-prefix", key_prefix]
    worker = Worker(
        [*CLI, "-v", "worker", "--kafka-bootstrap", kafka_bootstrap, *common,
         "--topic", topic, "--dlq-topic", f"{topic}.dlq", "--group", f"g-{topic}",
         "--labels-topic", labels, "--labels-dlq-topic", f"{labels}.dlq",
         "--alerts-topic", alerts, "--models-config", str(models),
         "--evaluate-interval", "1s", "--checkpoint-interval", "300ms", "--http-port", "-1",
         "--evaluator-sweep", "2s"],
        tmp_path / "worker.log",
    )
    client = redis.Redis.from_url(redis_url)
    keys = AlertKeys(key_prefix)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5})
    accuracy: list[tuple[int, float | None, bool]] = []
    try:
        for w in range(WINDOWS):
            sent = {m: events(m, s, w, base_ms) for m, s in streams.items()}
            send(producer, topic, [e for pair in zip(*(p for p, _ in sent.values()),
                                                     strict=True) for e in pair])
            send(producer, labels, [e for m in MODELS for e in sent[m][1]])
            done = wait_evaluated(client, keys, worker, {
                m: (base_ms + last_event_ms(w), labels_measured(s, w))
                for m, s in streams.items()})
            r = done["acc-drop"]
            acc = r.performance.metrics.get("accuracy") if r.performance else None
            accuracy.append((w, None if acc is None else acc.value,
                             "acc-drop/-/accuracy" in r.firing))
        time.sleep(3)  # more evaluations of the whole stream: the flat model's chance to misfire
        got = kcat_alerts(kafka_bootstrap, alerts)
        assert worker.alive(), worker.tail()
        key = id_key(client, key_prefix)
        states = {m: DetectorState.from_bytes(client.get(keys.detector(m)) or b"", key)
                  for m in MODELS}
    finally:
        code = worker.stop()
        client.close()
    assert code == 0, worker.tail()
    perf_alerts = [a for a in got if a["kind"] == "performance"]
    fired = [a for a in perf_alerts if a["id"] == "acc-drop/-/accuracy"
             and a["state"] == "firing"]
    assert len(fired) == 1, got
    assert fired[0]["column"] is None and fired[0]["model"] == "acc-drop"
    assert float(fired[0]["value"]) < 0.72, fired  # type: ignore[arg-type]
    assert not [a for a in got if a["model"] == "acc-flat"], got
    k = windows_after_change(fired[0], base_ms)
    first_stored = next(w for w, _, firing in accuracy if firing) - CHANGE_AT + 1
    offline, _ = alert_windows(streams["acc-drop"])  # the same checks on the complete data
    print(f"performance alert: {k} windows after the change point (firing in the stored "
          f"evaluation after window {first_stored} of the fall; from the data alone: "
          f"{offline}; bound {MEASURE_WINDOWS}; accuracy per window end: "
          + ", ".join(f"{w}: {'-' if a is None else f'{a:.3f}'}" for w, a, _ in accuracy)
          + ")")
    # each window's complete data was evaluated before the next was sent, so it fired by
    # the window the data says (earlier only on a partly labeled window)
    assert offline is not None and 1 <= k <= first_stored <= offline <= MEASURE_WINDOWS, (
        k, first_stored, offline, accuracy)

    drop, flat = states["acc-drop"], states["acc-flat"]
    change_n = outcomes_before_change(streams["acc-drop"])
    total = {m: sum(int(x.labeled.sum()) for x in s) for m, s in streams.items()}
    assert sum(drop.seen.values()) == total["acc-drop"], drop.seen  # every outcome, once
    assert drop.trimmed == 0 and flat.trimmed == 0
    hits = [n for ns in drop.detections.values() for n in ns]
    assert not [n for n in hits if n <= change_n], (hits, change_n)  # no false alarm before
    after = [n - change_n for n in hits if n > change_n]
    assert after, f"ADWIN saw no change (detections {hits}, change at outcome {change_n})"
    print(f"ADWIN detection delay: {after[0]} outcomes after the change (change at outcome "
          f"{change_n}; detections {hits}; in the generated order: "
          f"{detector_delay(streams['acc-drop'])[0]}; bound {DETECTION_DELAY_BOUND})")
    assert after[0] <= DETECTION_DELAY_BOUND, (hits, change_n)
    assert not [n for ns in flat.detections.values() for n in ns], flat.detections
    assert sum(flat.seen.values()) == total["acc-flat"]
    print(f"flat stream: no alert and no detection over {total['acc-flat']} outcomes "
          f"({WINDOWS} windows)")
