"""Names from payloads are bounded (issue 9): models, columns and versions beyond the limits go to
the DLQ with reason ``limit``; Redis and ``/metrics`` stay bounded (real Kafka, Redis and
``driftline worker``)."""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.reader import WindowReader
from tests.streamutil import T0, Worker, end_offsets, produce, store_for, wait_applied, worker_cmd

pytestmark = pytest.mark.integration


def event(model: str, features: dict[str, object], version: str = "default") -> bytes:
    return json.dumps({"model": model, "features": features, "prediction": 0.5,
                       "ts": T0 / 1000, "version": version}).encode()


@pytest.mark.timeout(180)
def test_models_and_columns_beyond_the_limits_are_dead_letters(
    kafka_bootstrap: str, redis_url: str, make_topic: Callable[..., str], key_prefix: str,
    tmp_path: Path,
) -> None:
    topic = make_topic(1)
    wide = [event("wide", {f"col{i:03d}": 1.0}) for i in range(300)]  # one new column each
    versions = [event("wide", {"col000": 1.0}, f"v{i}") for i in range(100)]  # new versions
    many = [event(f"m{i:04d}", {"x": 1.0}) for i in range(2000)]  # one new model each
    produce(kafka_bootstrap, topic, wide + versions + many, 1)
    ends = end_offsets(kafka_bootstrap, topic, 1)
    store = store_for(redis_url, key_prefix, topic)
    w = Worker(worker_cmd(kafka_bootstrap, redis_url, topic, key_prefix, f"g-{uuid.uuid4().hex}",
                          "--max-models", "10", "--max-columns", "50", "--max-versions", "5",
                          "--evaluate-interval", "1s"), tmp_path / "worker.log")
    try:
        wait_applied(store, ends, 120, check=lambda: None)
        time.sleep(2.5)  # an evaluation after the last checkpoint
        port = re.search(r"http endpoint on port (\d+)", w.log_path.read_text())
        assert port, w.tail()
        with urllib.request.urlopen(f"http://127.0.0.1:{port.group(1)}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        assert w.stop() == 0, w.tail()
    finally:
        if w.alive():
            w.kill9()
    counters = WindowReader(store).counters()
    # "wide" is the first model; 9 more fit under the limit of 10
    accepted_models = {"wide"} | {f"m{i:04d}" for i in range(9)}
    assert set(counters.ok) == accepted_models
    # a window holds 50 columns: 48 features + room for prediction and latency_ms; the
    # model has 5 versions: "default" and v0..v3
    assert counters.ok["wide"] == 48 + 4
    assert counters.invalid == {"limit": (300 - 48) + (100 - 4) + (2000 - 9)}
    snap = store.read(0, min_start_ms=0)
    assert set(snap.watermarks) == accepted_models
    assert {k.model for k in snap.windows} == accepted_models
    assert {k.version for k in snap.windows if k.model == "wide"} == {
        "default", "v0", "v1", "v2", "v3"}
    # bounded per accepted model: epoch, offset, watermark, gen, topic_id, lag, invalid
    # counters, and per model its ok / late counters, watermark and last-seen time
    assert len(store.client.hkeys(store.meta_key(0))) <= 8 + 4 * len(accepted_models)
    events_series = [ln for ln in metrics.splitlines()
                     if ln.startswith("driftline_events_total{")]
    assert 0 < len(events_series) <= len(accepted_models) + 1, events_series
