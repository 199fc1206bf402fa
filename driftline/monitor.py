"""The monitoring side of a worker process: evaluator loop, metrics and HTTP API.

Every worker (and every ``driftline evaluator``) runs one :class:`Monitor`. All of them
serve ``/metrics``, ``/healthz``, ``/readyz`` and ``/models``. Evaluating ones join the
evaluator group (:mod:`alerts.shards`): each evaluates, alerts on and reports the drift
figures of the models of the shards it owns; the owner of shard 0 also reports the totals
(``driftline_events_total`` summed over all partitions from Redis), so a Prometheus
summing over processes never double counts. Each worker reports its own lag and flush
duration. At each full sweep the evaluator also compacts its models' closed windows and
rolls them up (:mod:`streams.compaction`).

Which models are evaluated: those listed in the models file, plus every model with a
reference in Redis (with the file's default rules).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import redis
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry

from alerts.evaluator import Evaluator, ModelRules, load_results
from alerts.http import ApiServer
from alerts.metrics import DriftlineCollector, Health
from alerts.publish import KafkaAlertPublisher, WebhookPublisher
from alerts.results import ModelResult
from alerts.shards import Fence, Owner, ShardGroup
from alerts.sources import Publisher
from alerts.webhook import WebhookNotifier
from driftline.alerting import check_columns, for_model
from sketches.errors import ConfigError
from sketches.store import ReferenceStore
from streams.baseline import ReferenceChoices, TrailingReferences
from streams.compaction import Compactor
from streams.health import WorkerHealth
from streams.health_source import StoredHealth
from streams.kafka_config import KafkaConnection, client_config
from streams.label_worker import join_store, label_specs
from streams.notices import DEFAULT_SHARDS, ensure_topic, notices_topic
from streams.produce import producer_config
from streams.reader import WindowReader
from streams.redis_client import RedisConnection, connect_redis
from streams.state import RedisStateStore
from streams.tiers import DEFAULT_DAILY_MS, DEFAULT_HOURLY_MS, TierStore
from streams.windows import ModelCatalog

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
    """The evaluator group's session timeout: a dead evaluator's shards move after this."""
    webhook_url: str | None = None
    evaluate: bool = True
    shards: int = DEFAULT_SHARDS
    """Evaluator shards (partitions of the notices topic) when this process creates it."""
    sweep_s: float = 60.0
    """Re-read every owned model at least this often (notices are only hints); closed
    windows are compacted and rolled up at each sweep."""
    keep_hourly_ms: int = DEFAULT_HOURLY_MS
    keep_daily_ms: int = DEFAULT_DAILY_MS
    kafka: KafkaConnection | None = None  # security settings; None: plain kafka_bootstrap
    redis: RedisConnection | None = None  # ACL / TLS; None: plain redis_url
    id_key: bytes | None = None  # the label join's id-hash key; None: the one in Redis

    def __post_init__(self) -> None:
        if self.interval_s <= 0:
            raise ConfigError("--evaluate-interval must be > 0")
        if self.evaluate and self.lease_ttl_s <= self.interval_s:
            raise ConfigError(
                f"--evaluator-lease ({self.lease_ttl_s:g}s) must be longer than "
                f"--evaluate-interval ({self.interval_s:g}s), or an evaluator is taken for "
                "dead between evaluations"
            )
        if self.shards < 1:
            raise ConfigError(f"--evaluator-shards must be >= 1, got {self.shards}")


def learns_thresholds(models: Mapping[str, ModelRules], fallback: ModelRules
                      ) -> Callable[[str], bool]:
    """Whether a model's rules learn thresholds from its reference's chunks: the evaluator
    reads (and keeps) the chunk profiles of those models' references only."""
    return lambda model: (models.get(model) or fallback).rules.learned


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
        catalog: ModelCatalog | None = None,
    ) -> None:
        """``catalog``: the models file's windowing (when windows close, for compaction)."""
        self.settings = settings
        self._catalog = catalog or ModelCatalog()
        self._models = models
        self._fallback = fallback
        self._health = health
        self._clock = clock
        self._client = connect_redis(settings.redis or settings.redis_url, socket_timeout=10,
                                     socket_connect_timeout=5)
        self._refs = ReferenceStore(self._client, settings.key_prefix,
                                    chunks=learns_thresholds(models, fallback))
        store = RedisStateStore(self._client, prefix=settings.key_prefix, topic=settings.topic,
                                horizon_ms=max([m.measure_ms for m in models.values()]
                                               + [fallback.measure_ms]))
        self._reader = WindowReader(store)
        self._store = store
        trailing = {name: (rules.reference, self._window_ms(name))
                    for name, rules in models.items() if rules.reference.trailing}
        self._baselines = TrailingReferences(store, trailing) if trailing else None
        self._references = ReferenceChoices(self._refs, self._baselines)
        """Per model, its training reference or trailing baseline (``[models.M.reference]``)."""
        specs = label_specs(self._catalog)
        self._join = (join_store(self._client, settings.key_prefix, specs, settings.id_key)
                      if specs else None)
        """The label join (models with ``[models.M.performance]``), for the evaluator."""
        self._compactor = Compactor(
            store, TierStore(self._client, prefix=settings.key_prefix, topic=settings.topic,
                             hourly_ms=settings.keep_hourly_ms, daily_ms=settings.keep_daily_ms))
        self._kafka = settings.kafka or KafkaConnection(settings.kafka_bootstrap)
        self._publishers: list[Publisher] = []
        self._alerts: KafkaAlertPublisher | None = None
        self._webhook: WebhookNotifier | None = None
        self._group: ShardGroup | None = None
        self._evaluator: Evaluator | None = None
        self._full = True  # re-read every model at the next evaluation
        if settings.evaluate:
            self._group = self._shard_group()
            holder = f"{socket.gethostname()}-{os.getpid()}"

            def alerts_producer() -> Producer:
                return Producer(producer_config(self._kafka, "alerts", **{
                    "transactional.id": f"driftline-evaluator-{settings.key_prefix}-"
                                        f"{settings.topic}-{holder}",
                    # a crashed evaluator's open transaction blocks read_committed readers
                    # of the alerts topic until it times out: transactions last milliseconds
                    "transaction.timeout.ms": 10_000}))

            self._alerts = KafkaAlertPublisher(alerts_producer(), settings.alerts_topic,
                                               commit=self._group.commit_into,
                                               renew=alerts_producer)
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
        out = []
        for name in evaluated_models(self._models, self._refs):
            rules = for_model(name, self._models, self._fallback)
            spec = self._catalog.get(name)
            if spec is not None:
                rules = replace(rules, window_ms=spec.window_ms, retention_ms=spec.retention_ms)
            out.append(rules)
        return out

    def _window_ms(self, model: str) -> int:
        spec = self._catalog.get(model)
        return spec.window_ms if spec is not None else self._catalog.default_window_ms

    def check_config(self) -> None:
        """Refuse to start half-configured: column overrides must exist in references.
        Warn when a trailing baseline reaches back past the hourly roll-ups: daily records
        straddle its ends and are left out whole."""
        for rules in self._models.values():
            choice = rules.reference
            back = choice.offset_ms + choice.span_ms + rules.measure_ms
            if choice.trailing and back > self.settings.keep_hourly_ms:
                log.warning("model %s: its trailing baseline reaches back %.1f h, past the "
                            "hourly roll-ups (--keep-hourly %.1f h): only whole daily "
                            "records inside it are used", rules.model, back / 3.6e6,
                            self.settings.keep_hourly_ms / 3.6e6)
            if choice.trailing and back > self.settings.keep_daily_ms:
                log.warning("model %s: its trailing baseline reaches back %.1f h, past the "
                            "daily roll-ups (--keep-daily %.1f h): its oldest part is "
                            "deleted", rules.model, back / 3.6e6,
                            self.settings.keep_daily_ms / 3.6e6)
            if choice.trailing:
                continue  # compared with its own production: no training reference needed
            ref = self._refs.get(rules.model)
            if ref is not None:
                check_columns(rules, ref)

    def _shard_group(self) -> ShardGroup:
        """The evaluator's consumer group on the notices topic (created when missing)."""
        topic = notices_topic(self.settings.topic)
        try:
            shards = ensure_topic(AdminClient(client_config(self._kafka)), topic,
                                  self.settings.shards)
        except KafkaException as exc:
            raise ConfigError(
                f"the evaluator needs the topic {topic} (its partitions are the evaluator "
                f"shards): create it, e.g. with {self.settings.shards} partitions, or allow "
                f"this client to: {exc}") from None
        timeout_ms = int(self.settings.lease_ttl_s * 1000)
        consumer = Consumer(client_config(self._kafka, {
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": timeout_ms,
            "heartbeat.interval.ms": max(300, timeout_ms // 5),
            "enable.partition.eof": False,
        }, fixed={
            "group.id": f"driftline-evaluator.{self.settings.key_prefix}.{self.settings.topic}",
            "enable.auto.commit": False,  # offsets go with the alert transactions
        }))
        owner = Owner(Fence(self._client, self.settings.key_prefix), shards)
        return ShardGroup(consumer, topic, owner, on_change=self._gained)

    def _gained(self, _shards: set[int]) -> None:
        self._full = True

    def evaluator(self) -> Evaluator:
        """The process's one evaluator (its caches live across evaluations), with the models
        to evaluate refreshed from the models file and the reference index."""
        if self._group is None:
            raise ConfigError("this process does not evaluate (--no-evaluate)")
        if self._evaluator is None:
            self._evaluator = Evaluator(
                self._client, prefix=self.settings.key_prefix, models=self.model_rules(),
                windows=self._reader, references=self._references,
                publishers=self._publishers,
                owner=self._group.owner, notifiers=[self._webhook] if self._webhook else [],
                incidents=self._store, topic=self.settings.topic,
                housekeeping=self._compactor, performance=self._join,
                id_key=self._join.key if self._join is not None else b"",
                health=StoredHealth(self._store))
        else:
            self._evaluator.models = self.model_rules()
        return self._evaluator

    # -- scrape-time views --------------------------------------------------------------
    def owned_results(self) -> list[ModelResult]:
        """The results of the models this process evaluates now (for ``/metrics``)."""
        if self._group is None:
            return []
        owner = self._group.owner
        return load_results(self._client, self.settings.key_prefix,
                            [m.model for m in self.model_rules() if owner.token(m.model)])

    def results(self) -> list[ModelResult]:
        return load_results(self._client, self.settings.key_prefix,
                            [m.model for m in self.model_rules()])

    def _leader(self) -> bool:
        """Reports the global figures: owns shard 0 (exactly one evaluator does)."""
        return self._group is not None and 0 in self._group.owner.tokens

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
                      shards=len(self._group.owner.tokens) if self._group else 0,
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
            registry.register(DriftlineCollector(self.owned_results, self.health))
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
        assert self._group is not None
        group = self._group
        group.subscribe()
        next_run = next_sweep = time.monotonic()
        try:
            while not self._stop.is_set():
                try:  # serves the group (assignments) and collects notices meanwhile
                    group.poll(max(0.0, min(0.5, next_run - time.monotonic())))
                except Exception:
                    log.exception("evaluator group poll failed")
                    self._stop.wait(1.0)
                now = time.monotonic()
                if now < next_run:
                    continue
                full = self._full or now >= next_sweep
                try:
                    self.run_once(full=full)
                    if full:
                        next_sweep = now + self.settings.sweep_s
                except Exception:
                    log.exception("evaluation failed; retrying in %.1fs",
                                  self.settings.interval_s)
                next_run = now + self.settings.interval_s
        finally:
            group.consumer.close()  # leaves the group: the shards move at once

    def run_once(self, full: bool = True) -> Sequence[object]:
        """One evaluation of the owned models: all re-read (``full``) or only those the
        notices since the last one named."""
        assert self._group is not None
        dirty = self._group.take_dirty()
        if full:
            self._full = False
        alerts = self.evaluator().run_once(self._clock(), dirty=None if full else dirty,
                                           compact=full)
        self.evaluations += 1
        return alerts

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        if self._server is not None:
            self._server.close()
        if self._webhook is not None:
            self._webhook.close()
        if self._alerts is not None:
            self._alerts.close()
        self._client.close()
