"""``driftline simulate`` with ground truth against the real broker: predictions and labels
on two fresh topics, every label joins a prediction of its model, none precedes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime

import numpy as np
import pytest
from confluent_kafka import Consumer

from streams.events import decode_event
from streams.labels import decode_label
from streams.simulate_run import LabelledStream, LabelOut
from streams.simulate_spec import build_spec
from streams.windows import LabelSpec

pytestmark = pytest.mark.integration
T0 = 1_800_000_000.0


def read_topic(bootstrap: str, topic: str, n: int, timeout_s: float = 30.0) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    out: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(out) < n and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, 0.5):
                assert msg.error() is None, msg.error()
                out.append(msg.value() or b"")
        for msg in consumer.consume(10_000, 0.5):  # anything more would be a duplicate
            out.append(msg.value() or b"")
    finally:
        consumer.close()
    return out


def epoch(ts: str | float) -> float:
    return datetime.fromisoformat(ts).timestamp() if isinstance(ts, str) else float(ts)


@pytest.mark.timeout(60)
def test_simulate_produces_labels_that_join_their_predictions(
        kafka_bootstrap: str, make_topic: Callable[..., str]) -> None:
    predictions, labels = make_topic(3), make_topic(2)
    n, ratio = 20_000, 0.6
    flags = ["--models", "credit-risk,demand", "--task", "demand=regression",
             "--label-ratio", str(ratio), "--label-delay", "exp:2s",
             "--performance", "credit-risk:accuracy=-0.2@10s", "--label-flush", "all"]
    cmd = [sys.executable, "-m", "driftline.cli", "simulate", "--topic", predictions,
           "--labels-topic", labels, "--count", str(n), "--rate", "max", "--seed", "5",
           "--start-ts", str(T0), "--no-progress", *flags]
    env = dict(os.environ, DRIFTLINE_KAFKA_BOOTSTRAP=kafka_bootstrap)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    expected = [x.value for x in LabelledStream(
        build_spec(["credit-risk", "demand"], 5, 2, tasks="demand=regression",
                   label_ratio=ratio, label_delay="exp:2s",
                   performance=["credit-risk:accuracy=-0.2@10s"]), n, T0, 5, flush="all")
        if isinstance(x, LabelOut)]
    assert f"sent {n} events to {predictions}" in done.stderr
    assert f"sent {len(expected)} labels to {labels}, delivered {len(expected)}, failed 0" \
        in done.stderr

    got_preds = read_topic(kafka_bootstrap, predictions, n)
    got_labels = read_topic(kafka_bootstrap, labels, len(expected))
    assert len(got_preds) == n and len(got_labels) == len(expected)  # none lost or doubled
    assert sorted(got_labels) == sorted(expected)  # the very bytes the generator makes
    pred_ts: dict[tuple[str, str], float] = {}
    for value in got_preds:
        event = decode_event(value)  # valid under the prediction contract
        assert event.id is not None
        pred_ts[(event.model, event.id)] = epoch(json.loads(value)["ts"])
    per_model: dict[str, int] = {}
    specs = {"credit-risk": LabelSpec(task="binary"), "demand": LabelSpec(task="regression")}
    for i, value in enumerate(got_labels):
        item = decode_label(value, i, 0, specs)  # what the label worker accepts
        label = json.loads(value)
        assert (item.model, item.id) == (label["model"], label["id"])
        assert set(label) == {"model", "id", "label", "ts"}
        assert isinstance(label["label"], int | float) and not isinstance(label["label"], bool)
        at = pred_ts[(label["model"], label["id"])]  # joins a prediction of its own model
        assert epoch(label["ts"]) >= at  # never before its prediction
        per_model[label["model"]] = per_model.get(label["model"], 0) + 1
    share = len(got_labels) / n
    assert abs(share - ratio) < 4 * np.sqrt(ratio * (1 - ratio) / n)
    assert set(per_model) == {"credit-risk", "demand"}
