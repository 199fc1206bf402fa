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
