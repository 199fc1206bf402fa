"""A topic deleted and recreated under a RUNNING worker (issue 11): the new topic is read
from its first record even when it already holds more records than the old position, and
nothing of the old topic is merged in."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from streams.reader import WindowReader
from tests.integration.test_recovery import _metric, _port
from tests.streamutil import (
    Worker,
    assert_exact,
    make_events,
    produce,
    recreate_topic,
    store_for,
    worker_cmd,
)

pytestmark = pytest.mark.integration


@pytest.mark.timeout(180)
def test_topic_recreated_under_a_running_worker_is_read_from_the_start(
    kafka_bootstrap: str, redis_url: str, key_prefix: str, tmp_path: Path,
) -> None:
    topic = f"recreate-live-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    store = store_for(redis_url, key_prefix, topic)
    w: Worker | None = None
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
        old, _ = make_events(500, seed=18)
        produce(kafka_bootstrap, topic, old, 1)
        # a session that outlives the SIGSTOP below: no rebalance may come to the rescue
        w = Worker(worker_cmd(kafka_bootstrap, redis_url, topic, key_prefix,
                              f"g-{uuid.uuid4().hex}", "--no-evaluate",
                              "--session-timeout-ms", "30000"), tmp_path / "worker.log")
        deadline = time.monotonic() + 60
        while store.read(0, min_start_ms=1 << 62).applied_offset < 499:
            assert w.alive() and time.monotonic() < deadline, w.tail()
            time.sleep(0.1)
        new, exp = make_events(1500, seed=19)
        w.proc.send_signal(signal.SIGSTOP)  # no fetch until the new topic holds more records
        try:
            recreate_topic(admin, topic, 1)
            # more records than the old position (500): the consumer's old fetch position
            # is inside the new topic, so only a topic-id check can tell 0..499 exist
            produce(kafka_bootstrap, topic, new, 1)
        finally:
            w.proc.send_signal(signal.SIGCONT)
        w.wait_log("rebuilt up to offset 1499", timeout=90)
        port = _port(w)
        assert _metric(port, "driftline_state_resets_total") == 1
        assert w.stop() == 0, w.tail()
    finally:
        if w is not None and w.alive():
            w.kill9()
        admin.delete_topics([topic, f"{topic}.notices"])
    assert "changed from" in w.log_path.read_text()  # found by the topic id, while running
    note = store.client.hget(store.incidents_key(), "0")
    assert isinstance(note, bytes) and b'"cause": "topic_recreated"' in note
    assert_exact(store, exp)  # the 1,500 new events, none of the 500 old
    assert WindowReader(store).counters().total_ok == 1500
