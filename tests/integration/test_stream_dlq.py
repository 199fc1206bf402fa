"""Every malformed record lands, unchanged, in the DLQ with its reason; the worker goes on."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from tests.streamutil import (
    T0,
    Worker,
    end_offsets,
    make_events,
    produce,
    store_for,
    wait_applied,
    worker_cmd,
)

pytestmark = pytest.mark.integration

GOOD = {"model": "m1", "features": {"x": 1.0}, "prediction": 0.5, "ts": T0 / 1000}

BAD: list[tuple[bytes, str]] = [
    (b"{" + b" " * 70_000 + b"}", "oversized"),
    (b'{"model": "m1", "features": {"x": "\xff\xfe"}, "prediction": 1}', "not_utf8"),
    (b'{"model":"m1","features":{},"prediction":1,"x":' + b"[" * 3000 + b"]" * 3000 + b"}",
     "too_deep"),
    (b'{"model": "m1", "features": {"x": NaN}, "prediction": 1}', "non_finite"),
    (b'{"model": "m1", "features": {"x": 1}, "prediction": -Infinity}', "non_finite"),
    (b'{"model": "m1", "features": {"x": 1e400}, "prediction": 1}', "non_finite"),
    (b"not json at all", "invalid_json"),
    (json.dumps({"features": {}, "prediction": 1}).encode(), "missing_field"),
    (json.dumps({"model": "m1", "prediction": 1}).encode(), "missing_field"),
    (json.dumps({"model": "m1", "features": {}}).encode(), "missing_field"),
    (json.dumps({"model": ["m1"], "features": {}, "prediction": 1}).encode(), "wrong_type"),
    (json.dumps({"model": "m1", "features": {"x": {"y": 1}}, "prediction": 1}).encode(),
     "wrong_type"),
    (json.dumps({"model": "m1", "features": {}, "prediction": [1]}).encode(), "wrong_type"),
    (json.dumps({"model": "no spaces allowed", "features": {}, "prediction": 1}).encode(),
     "invalid_value"),
    (json.dumps({**GOOD, "model": "not-configured"}).encode(), "unknown_model"),
    (json.dumps({**GOOD, "ts": "last tuesday"}).encode(), "bad_ts"),
    (json.dumps({**GOOD, "ts": "2026-11-23T08:00:00"}).encode(), "bad_ts"),
    (json.dumps({**GOOD, "ts": -1e12}).encode(), "bad_ts"),
]


@pytest.fixture()
def dlq_topic_cleanup(kafka_bootstrap: str) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for fut in admin.delete_topics(names, operation_timeout=30).values():
        with contextlib.suppress(Exception):  # cleanup is best effort
            fut.result(timeout=30)


@pytest.mark.timeout(120)
def test_every_malformed_case_goes_to_dlq_with_reason(
    kafka_bootstrap: str, redis_url: str, make_topic: Callable[..., str], key_prefix: str,
    tmp_path: Path, dlq_topic_cleanup: list[str],
) -> None:
    topic = make_topic(2)
    dlq = f"{topic}.dlq"
    dlq_topic_cleanup.append(dlq)
    good, _exp = make_events(2000, seed=4)
    values = list(good)
    bad_at: dict[int, str] = {}
    for i, (value, _reason) in enumerate(BAD):  # interleave with good events
        pos = 50 + i * 100
        values.insert(pos, value)
    for pos, value in enumerate(values):
        for bad_value, reason in BAD:
            if value is bad_value:
                bad_at[pos] = reason
    produce(kafka_bootstrap, topic, values, 2)
    models = tmp_path / "models.yaml"
    models.write_text("defaults: {window: 5m, retention: 1h}\nmodels:\n  m1: {}\n  m2: {}\n")
    store = store_for(redis_url, key_prefix, topic)
    w = Worker(worker_cmd(kafka_bootstrap, redis_url, topic, key_prefix, f"g-{uuid.uuid4().hex}",
                          "--models-config", str(models), "--max-event-bytes", "65536"),
               tmp_path / "worker.log")
    try:
        w.wait_log("assigned topic=")
        wait_applied(store, end_offsets(kafka_bootstrap, topic, 2), 60, check=lambda: None)
        assert w.alive(), w.tail()
        got = _consume(kafka_bootstrap, dlq, len(BAD))
        assert w.stop() == 0, w.tail()
    finally:
        if w.alive():
            w.kill9()
    expected = {(pos % 2, pos // 2): (values[pos], reason) for pos, reason in bad_at.items()}
    seen = {}
    for value, headers in got:
        h = {k: v.decode() for k, v in headers}
        assert h["driftline.source.topic"] == topic
        assert h["driftline.error"]
        seen[(int(h["driftline.source.partition"]), int(h["driftline.source.offset"]))] = (
            value, h["driftline.reason"])
    assert seen == expected  # unchanged bytes, right reason, right source coordinates
    from streams.reader import WindowReader

    counters = WindowReader(store).counters()
    want: dict[str, int] = {}
    for _value, reason in BAD:
        want[reason] = want.get(reason, 0) + 1
    assert counters.invalid == want
    assert sum(counters.ok.values()) == len(good)


def _consume(bootstrap: str, topic: str, expected: int) -> list[tuple[bytes, list[tuple[str, bytes]]]]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"dlq-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    out: list[tuple[bytes, list[tuple[str, bytes]]]] = []
    deadline = time.monotonic() + 30
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for m in c.consume(100, 1.0):
                if m.error() is None:
                    assert m.key() is None  # produced without key, so none
                    out.append((m.value(), m.headers() or []))
        for m in c.consume(100, 1.0):
            if m.error() is None:
                out.append((m.value(), m.headers() or []))
    finally:
        c.close()
    return out
