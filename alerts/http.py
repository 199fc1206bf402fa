"""The worker's HTTP endpoint: ``/metrics``, ``/healthz``, ``/readyz`` and a small JSON API.

- ``GET /metrics`` — the injected registry in prometheus-client's exposition: the
  Prometheus text format, or OpenMetrics when the ``Accept`` header asks for it
  (Prometheus does), gzip-compressed when ``Accept-Encoding`` allows, ``name[]=`` to
  select families — what ``prometheus_client.make_wsgi_app`` serves;
- ``GET /healthz`` — 200 while the process runs;
- ``GET /readyz`` — 200 when ``ready()`` gives no reason against, else 503 with the
  reasons (not connected, nothing assigned yet, rebuilding lost state, orphaned partitions);
- ``GET /models`` — ``{"models": [{"model", "version", "status", "rows", "firing", ...}]}``;
- ``GET /models/{model}/drift`` — the latest evaluation of that model, 404 if none.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast
from urllib.parse import parse_qs, unquote

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import Collector

from alerts.results import ModelResult, to_json_dict

log = logging.getLogger(__name__)


class ApiServer:
    def __init__(
        self,
        registry: CollectorRegistry,
        results: Callable[[], Iterable[ModelResult]],
        ready: Callable[[], Sequence[str]],
        host: str = "127.0.0.1",
        port: int = 9464,
    ) -> None:
        self._registry = registry
        self._results = results
        self._ready = ready
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="driftline-http", daemon=True
        )
        self._thread.start()
        log.info("http endpoint on port %d (/metrics, /healthz, /readyz, /models)", self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                log.debug("http %s", format % args)

            def _send(self, code: int, body: bytes, ctype: str = "application/json",
                      headers: Sequence[tuple[str, str]] = ()) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, code: int, obj: object) -> None:
                self._send(code, json.dumps(obj).encode())

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                path = path.rstrip("/") or "/"
                if path == "/metrics":
                    body, ctype, headers = exposition(
                        api._registry, self.headers.get("Accept", ""),
                        self.headers.get("Accept-Encoding", ""), parse_qs(query))
                    self._send(200, body, ctype, headers)
                elif path == "/healthz":
                    self._json(200, {"status": "ok"})
                elif path == "/readyz":
                    reasons = list(api._ready())
                    self._json(200 if not reasons else 503,
                               {"ready": not reasons, "reasons": reasons})
                elif path == "/models":
                    self._json(200, {"models": [_summary(r) for r in api._results()]})
                elif path.startswith("/models/") and path.endswith("/drift"):
                    name = unquote(path[len("/models/"):-len("/drift")])
                    found = [r for r in api._results() if r.model == name]
                    if found:
                        self._json(200, to_json_dict(found[0]))
                    else:
                        self._json(404, {"error": f"no evaluation for model {name!r}"})
                else:
                    self._json(404, {"error": f"no route {path}"})

        return Handler


def exposition(
    registry: CollectorRegistry, accept: str, accept_encoding: str,
    params: Mapping[str, list[str]],
) -> tuple[bytes, str, list[tuple[str, str]]]:
    """Body, content type and extra headers of ``/metrics`` for a request's headers and
    query (as ``prometheus_client.exposition._bake_output`` decides them)."""
    encoder, content_type = choose_encoder(accept)
    source: Collector = registry
    if "name[]" in params:  # a RestrictedRegistry: not a Collector subclass, but one by duck type
        source = cast(Collector, registry.restricted_registry(params["name[]"]))
    body = encoder(source)
    headers = [("Vary", "Accept, Accept-Encoding")]
    if gzip_accepted(accept_encoding):
        body = gzip.compress(body)
        headers.append(("Content-Encoding", "gzip"))
    return body, content_type, headers


def _summary(r: ModelResult) -> dict[str, object]:
    return {
        "model": r.model,
        "version": r.version,
        "status": r.status,
        "rows": r.rows,
        "evaluated_at": r.evaluated_at,
        "drifted": sorted(c.column for c in r.columns.values() if c.verdict == "drift"),
        "firing": list(r.firing),
    }
