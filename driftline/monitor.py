"""The monitoring side of a worker process: evaluator loop, metrics and HTTP API.

Every worker runs one :class:`Monitor` beside its stream runner. All of them serve
``/metrics``, ``/healthz``, ``/readyz`` and ``/models``; only the one holding the
evaluator lease evaluates, publishes alerts and reports the global figures (drift,
alerts firing, ``driftline_events_total`` summed over all partitions from Redis), so a
Prometheus summing over workers never double counts. Each worker reports its own lag
and flush duration.

Which models are evaluated: those listed in the models file, plus every model with a
reference in Redis (with the file's default rules).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import redis
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from alerts.evaluator import Evaluator, ModelRules, Publisher, load_results
from alerts.http import ApiServer
from alerts.lease import Lease
from alerts.metrics import DriftlineCollector, Health
from alerts.publish import KafkaAlertPublisher, WebhookPublisher
from alerts.results import ModelResult
from alerts.webhook import WebhookNotifier
from driftline.alerting import check_columns, for_model
from sketches.errors import ConfigError
from sketches.store import ReferenceStore
from streams.health import WorkerHealth
from streams.produce import producer_config
from streams.reader import WindowReader
from streams.state import RedisStateStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorSettings:
    redis_url: str
    kafka_bootstrap: str
    key_prefix: str = "driftline"
    topic: str = "predictions"
    alerts_topic: str = "alerts"
    http_host: str = "127.0.0.1"
    http_port: int = 9464  # < 0: no HTTP endpoint
    interval_s: float = 5.0
    lease_ttl_s: float = 10.0
    webhook_url: str | None = None
    evaluate: bool = True

    def __post_init__(self) -> None:
        if self.interval_s <= 0:
            raise ConfigError("--evaluate-interval must be > 0")
        if self.evaluate and self.lease_ttl_s <= self.interval_s:
            raise ConfigError(
                f"--evaluator-lease ({self.lease_ttl_s:g}s) must be longer than "
                f"--evaluate-interval ({self.interval_s:g}s), or the leader loses its lease "
                "between evaluations"
            )


def evaluated_models(configured: Iterable[str], refs: ReferenceStore) -> list[str]:
    """The models the evaluator evaluates: those in the models file and every model with a
    reference (read from the reference index, not by scanning keys)."""
    return sorted(set(configured) | refs.models())


class Monitor:
    def __init__(
        self,
        settings: MonitorSettings,
        models: dict[str, ModelRules],
        fallback: ModelRules,
        health: Callable[[], WorkerHealth | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._models = models
        self._fallback = fallback
        self._health = health
        self._clock = clock
        self._client = redis.Redis.from_url(settings.redis_url, socket_timeout=10,
                                            socket_connect_timeout=5)
        self._refs = ReferenceStore(self._client, settings.key_prefix)
        store = RedisStateStore(self._client, prefix=settings.key_prefix, topic=settings.topic,
                                horizon_ms=max([m.measure_ms for m in models.values()]
                                               + [fallback.measure_ms]))
        self._reader = WindowReader(store)
        self._store = store
        holder = f"{socket.gethostname()}:{os.getpid()}"
        self._lease = Lease(self._client, f"{settings.key_prefix}:evaluator:{settings.topic}",
                            holder, int(settings.lease_ttl_s * 1000))
        self._publishers: list[Publisher] = []
        self._alerts: KafkaAlertPublisher | None = None
        self._webhook: WebhookNotifier | None = None
        if settings.evaluate:
            producer = Producer(producer_config(settings.kafka_bootstrap, "alerts"))
            self._alerts = KafkaAlertPublisher(producer, settings.alerts_topic)
            self._publishers.append(self._alerts)
            if settings.webhook_url:
                self._webhook = WebhookNotifier(WebhookPublisher(settings.webhook_url).publish,
                                                what=f"webhook {settings.webhook_url}")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: ApiServer | None = None
        self.evaluations = 0

    # -- what is evaluated ------------------------------------------------------------
    def model_rules(self) -> list[ModelRules]:
        return [for_model(n, self._models, self._fallback)
                for n in evaluated_models(self._models, self._refs)]

    def check_config(self) -> None:
        """Refuse to start half-configured: column overrides must exist in references."""
        for rules in self._models.values():
            ref = self._refs.get(rules.model)
            if ref is not None:
                check_columns(rules, ref)

    def evaluator(self) -> Evaluator:
        return Evaluator(self._client, prefix=self.settings.key_prefix,
                         models=self.model_rules(), windows=self._reader,
                         references=self._refs, publishers=self._publishers, lease=self._lease,
                         notifiers=[self._webhook] if self._webhook else [],
                         incidents=self._store, topic=self.settings.topic)

    # -- scrape-time views --------------------------------------------------------------
    def results(self) -> list[ModelResult]:
        return load_results(self._client, self.settings.key_prefix,
                            [m.model for m in self.model_rules()])

    def _leader(self) -> bool:
        return self._client.get(self._lease.key) == self._lease.holder.encode()

    def health(self) -> Health:
        wh = self._health()
        lag = {p: h.lag for p, h in wh.partitions.items() if h.lag is not None} if wh else {}
        leader = self._leader()
        events: dict[tuple[str, str], int] = {}
        if leader:
            c = self._reader.counters()
            for model, n in c.ok.items():
                events[(model, "ok")] = n
            for model, n in c.late.items():
                events[(model, "late")] = n
            if c.invalid:
                events[("_undecoded", "invalid")] = sum(c.invalid.values())
        return Health(events=events, lag=lag, flush_seconds=wh.last_flush_s if wh else None,
                      flushes=wh.checkpoints if wh else 0, is_leader=leader,
                      webhook=self._webhook.stats() if self._webhook else None,
                      topic=self.settings.topic,
                      state_resets=dict(wh.state_resets) if wh else {},
                      offset_gaps=dict(wh.offset_gaps) if wh else {},
                      rebuilding=dict(wh.rebuilding) if wh else {})

    def ready(self) -> list[str]:
        """Why this worker is not ready (empty: ready), for ``/readyz``."""
        wh = self._health()
        try:
            self._client.ping()
        except redis.exceptions.RedisError as exc:
            return [f"Redis unreachable: {exc}"]
        reasons = wh.not_ready(time.monotonic()) if wh is not None else []
        if reasons:  # rebuilding lost state, partitions it does not process, stuck writes
            return reasons
        if wh is None or wh.partitions or wh.records > 0 or self.evaluations > 0:
            return []
        return ["no partition assigned yet"]

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        if self.settings.evaluate:
            self.check_config()
        if self.settings.http_port >= 0:
            registry = CollectorRegistry()
            registry.register(DriftlineCollector(self.results, self.health))
            try:
                self._server = ApiServer(registry, self.results, self.ready,
                                         self.settings.http_host, self.settings.http_port)
            except OSError as exc:
                raise ConfigError(
                    f"cannot serve HTTP on {self.settings.http_host}:{self.settings.http_port}: "
                    f"{exc} (choose another --http-port, or -1 for none)"
                ) from exc
            self._server.start()
        if self.settings.evaluate:
            if self._webhook is not None:
                self._webhook.start()
            self._thread = threading.Thread(target=self._loop, name="driftline-evaluator",
                                            daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.run_once()
            except Exception:
                log.exception("evaluation failed; retrying in %.1fs", self.settings.interval_s)
            self._stop.wait(max(0.0, self.settings.interval_s - (time.monotonic() - started)))

    def run_once(self) -> Sequence[object]:
        alerts = self.evaluator().run_once(self._clock())
        self.evaluations += 1
        return alerts

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        if self._server is not None:
            self._server.close()
        if self.settings.evaluate:
            with contextlib.suppress(redis.exceptions.RedisError):
                self._lease.release()
        if self._webhook is not None:
            self._webhook.close()
        if self._alerts is not None:
            self._alerts.close()
        self._client.close()
