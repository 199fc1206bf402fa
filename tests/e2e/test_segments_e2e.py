"""End to end: `driftline profile --segments` → `reference put` → a worker whose models file
declares the segment column (roster read from the reference at start) → a drift in one
country only → one segment alert per metric, `@country=IT`, nothing for the pooled whole."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Producer

from tests.e2e.support import CLI, cli
from tests.e2e.test_alerts_e2e import kcat_alerts
from tests.streamutil import Worker

pytestmark = pytest.mark.integration
SHARES = {"DE": 0.5, "FR": 0.3, "ES": 0.14, "IT": 0.06}


def frame(rng: np.random.Generator, n: int, shift_it: float = 0.0) -> dict[str, np.ndarray]:
    country = rng.choice(list(SHARES), n, p=list(SHARES.values()))
    income = rng.normal(50_000, 15_000, n) + (country == "IT") * shift_it * 15_000
    return {"country": country, "income": income, "age": rng.normal(40, 10, n)}


@pytest.mark.timeout(180)
def test_a_drift_in_one_country_alerts_that_segment(
    kafka_bootstrap: str, redis_url: str, make_topic, key_prefix: str, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    rng = np.random.default_rng(8)
    pq.write_table(pa.table(frame(rng, 40_000)), tmp_path / "train.parquet")
    common = ["--redis-url", redis_url, "--key-prefix", key_prefix]
    cli("profile", str(tmp_path / "train.parquet"), "--out", str(tmp_path / "ref.bin"),
        "--model", "seg", "--segments", "country", "--segment-top-k", "4")
    cli("reference", "put", str(tmp_path / "ref.bin"), "--model", "seg", *common)
    models = tmp_path / "models.toml"
    models.write_text('[defaults]\nwindow = "10s"\nretention = "10s"\nmeasure = "10s"\n'
                      '[models.seg]\nmin_count = 200\nsegments = ["country"]\n')
    events, alerts = make_topic(2, prefix="pred"), make_topic(1, prefix="alerts")
    make_topic(1, prefix=f"{events}.dlq")
    worker = Worker(
        [*CLI, "-v", "worker", "--kafka-bootstrap", kafka_bootstrap, *common, "--topic", events,
         "--dlq-topic", f"{events}.dlq", "--group", f"g-{events}", "--alerts-topic", alerts,
         "--models-config", str(models), "--evaluate-interval", "1s",
         "--checkpoint-interval", "300ms", "--http-port", "-1"],
        tmp_path / "worker.log")
    try:
        worker.wait_log("assigned topic=")
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 20})
        base = time.time() // 10 * 10 - 20  # two whole tumbling windows
        for w, shift in enumerate((0.0, 1.5)):  # two 10 s windows: normal, then IT shifted
            data = frame(rng, 20_000, shift)
            for i in range(20_000):
                producer.produce(events, json.dumps({
                    "model": "seg", "ts": base + w * 10 + i / 2000, "prediction": 0.5,
                    "features": {k: (v[i].item() if hasattr(v[i], "item") else v[i])
                                 for k, v in data.items()}}).encode())
            producer.flush(30)
        deadline = time.time() + 90
        got: list[dict[str, object]] = []
        while time.time() < deadline and not got:
            time.sleep(2)
            got = [a for a in kcat_alerts(kafka_bootstrap, alerts) if a["state"] == "firing"]
        time.sleep(3)
        got = [a for a in kcat_alerts(kafka_bootstrap, alerts) if a["state"] == "firing"]
        assert worker.alive(), worker.tail()
    finally:
        code = worker.stop()
    assert code == 0, worker.tail()
    assert got, worker.tail()
    assert {str(a["id"]).split("@", 1)[-1] for a in got} == {"country=IT"}, got
    assert all(a["segment"] == {"column": "country", "value": "IT"} for a in got)
    assert {a["column"] for a in got} == {"income"}
