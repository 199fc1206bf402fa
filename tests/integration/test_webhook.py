"""The Alertmanager webhook publisher posts to a real HTTP server on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from alerts.message import Alert, Window
from alerts.publish import PublishError, WebhookPublisher

ALERT = Alert(id="m/income/psi", state="firing", severity="critical", kind="drift", model="m",
              version="7", column="income", metric="psi", value=0.31, threshold=0.2,
              window=Window("2026-11-23T08:00:00.000Z", "2026-11-23T09:00:00.000Z"),
              since="2026-11-23T09:00:00.000Z", ts="2026-11-23T09:00:01.000Z",
              summary="income drifted")


@pytest.fixture()
def receiver() -> Iterator[tuple[HTTPServer, list[object]]]:
    got: list[object] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append(json.loads(body))
            self.send_response(200 if self.path == "/api/v2/alerts" else 500)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, got
    server.shutdown()


def test_alertmanager_payload(receiver: tuple[HTTPServer, list[object]]) -> None:
    server, got = receiver
    port = server.server_address[1]
    WebhookPublisher(f"http://127.0.0.1:{port}/api/v2/alerts").publish([ALERT])
    (body,) = got
    assert isinstance(body, list)
    assert body[0]["labels"] == {"alertname": "driftline_drift", "model": "m", "column": "income",
                                 "metric": "psi", "severity": "critical"}
    assert body[0]["startsAt"] == ALERT.since and "endsAt" not in body[0]
    with pytest.raises(PublishError):
        WebhookPublisher(f"http://127.0.0.1:{port}/wrong").publish([ALERT])


def test_failing_webhook_does_not_flood_the_alerts_topic(
    receiver: tuple[HTTPServer, list[object]], kafka_bootstrap: str, redis_url: str,
    make_topic, key_prefix: str,  # type: ignore[no-untyped-def]
) -> None:
    """The webhook answers 500 to everything: the topic (real Kafka) still gets exactly one
    firing message per alert, however many evaluations follow; the webhook is retried with
    backoff, then given up and counted."""
    import numpy as np

    from alerts.evaluator import Evaluator, ModelRules
    from alerts.shards import Owner
    from alerts.webhook import WebhookNotifier
    from sketches.retry import RetryPolicy
    from streams.reader import WindowReader
    from tests.integration.test_evaluator import (
        WINDOW_MS,
        alert_publisher,
        read_alerts,
        stored,
        window,
        write_window,
    )

    server, got = receiver
    failing_url = f"http://127.0.0.1:{server.server_address[1]}/fail"  # answers 500
    rng = np.random.default_rng(5)
    alerts_topic = make_topic(1)
    client, refs, store = stored(redis_url, key_prefix, rng)
    t0 = 1_800_000_000_000
    write_window(store, store.load(0).epoch, t0, 5000, window(rng, 5000, 1.0))  # income drifted
    publisher = alert_publisher(kafka_bootstrap, alerts_topic)
    notifier = WebhookNotifier(
        WebhookPublisher(failing_url).publish,
        retry=RetryPolicy((PublishError,), initial_s=0.01, max_s=0.05, max_attempts=3),
    )
    notifier.start()
    evaluator = Evaluator(client, prefix=key_prefix, models=[ModelRules("m", measure_ms=WINDOW_MS)],
                          windows=WindowReader(store), references=refs, publishers=[publisher],
                          notifiers=[notifier], owner=Owner.static(client, key_prefix))
    try:
        fired = evaluator.run_once(now=1.0)
        assert ("income", "firing") in {(a.column, a.state) for a in fired}
        for now in range(2, 7):  # the webhook keeps failing meanwhile
            assert evaluator.run_once(now=float(now)) == []
        while notifier.stats().queued:  # the one batch: retried, then given up
            threading.Event().wait(0.05)
    finally:
        notifier.close(timeout_s=30)
        publisher.close()
    messages = read_alerts(kafka_bootstrap, alerts_topic)
    assert sorted(m["id"] for m in messages) == sorted(a.id for a in fired)
    assert {m["state"] for m in messages} == {"firing"}
    stats = notifier.stats()
    assert stats.failures == 3 == len(got)  # 3 attempts of the same batch, then given up
    assert stats.delivered == 0 and stats.dropped["retries_exhausted"] == len(fired)
    assert all(body == got[0] for body in got) and len(got[0]) == len(fired)  # type: ignore[arg-type]
    results = evaluator.results()
    assert results[0].firing == sorted(a.id for a in fired)  # the state was stored
    client.close()
