"""Prometheus metrics, computed at scrape time by a custom collector (DESIGN.md §1).

The collector reads two injected snapshot functions, never globals:

- ``results()`` → the latest :class:`ModelResult` per model (drift, null ratio, alerts
  firing, latency quantiles) — of the models whose evaluator shard this process owns, so
  summing over processes never counts a model twice;
- ``health()`` → :class:`Health`, this process's stream counters, lag and flush times, and
  its webhook deliveries (:class:`~alerts.webhook.WebhookStats`) when it has a webhook.

Every family it can yield is declared once in :data:`FAMILIES`; ``describe()`` returns them
all (so a registry knows the names up front), ``collect()`` fills them.

Label values are bounded: model, column, metric, severity, outcome, quantile, partition
and drop reason — never a request id or a category value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from alerts.results import ModelResult
from alerts.webhook import WebhookStats


@dataclass(frozen=True)
class Health:
    """Stream-side figures: ``events[(model, outcome)]``, ``lag[partition]``, last flush."""

    events: Mapping[tuple[str, str], int] = field(default_factory=dict)
    lag: Mapping[int, int] = field(default_factory=dict)
    flush_seconds: float | None = None
    flushes: int = 0
    is_leader: bool = False
    """Owns evaluator shard 0: reports the figures summed over all partitions."""
    shards: int = 0
    """Evaluator shards this process owns (its models' drift and alerts are reported here)."""
    webhook: WebhookStats | None = None
    """``None``: this process has no webhook (no ``driftline_webhook_*`` samples)."""
    topic: str = "predictions"
    state_resets: Mapping[tuple[int, str], int] = field(default_factory=dict)
    """(partition, cause) -> times this process found the partition's state lost."""
    offset_gaps: Mapping[int, int] = field(default_factory=dict)
    """partition -> records deleted by retention before this process processed them."""
    rebuilding: Mapping[int, int] = field(default_factory=dict)
    """partition -> offset its rebuild from Kafka must reach."""


@dataclass(frozen=True)
class Family:
    kind: type[CounterMetricFamily] | type[GaugeMetricFamily]
    name: str
    help: str
    labels: tuple[str, ...] = ()

    def new(self) -> CounterMetricFamily | GaugeMetricFamily:
        return self.kind(self.name, self.help, labels=list(self.labels))


_C, _G = CounterMetricFamily, GaugeMetricFamily  # the two kinds, for the table below
FAMILIES: Mapping[str, Family] = {f.name: f for f in (
    Family(_C, "driftline_events", "Prediction events by outcome", ("model", "outcome")),
    Family(_G, "driftline_consumer_lag", "Records behind the log end", ("partition",)),
    Family(_G, "driftline_flush_duration_seconds",
           "Duration of the last checkpoint write to Redis"),
    Family(_G, "driftline_evaluator_leader", "1 when this process owns evaluator shard 0 "
           "(it reports the totals over all partitions)"),
    Family(_G, "driftline_evaluator_shards", "Evaluator shards this process owns"),
    Family(_C, "driftline_state_resets", "Times a partition's state was found lost or foreign "
           "and rebuilt from Kafka", ("topic", "partition", "cause")),
    Family(_C, "driftline_offset_gap_records", "Records deleted by retention before they were "
           "processed", ("topic", "partition")),
    Family(_G, "driftline_partition_rebuilding", "1 while a partition is rebuilt from Kafka",
           ("topic", "partition")),
    Family(_C, "driftline_webhook_deliveries", "Alerts delivered to the webhook"),
    Family(_C, "driftline_webhook_failures", "Failed webhook posts (every retry counts)"),
    Family(_C, "driftline_webhook_dropped", "Alerts the webhook never got, by reason",
           ("reason",)),
    Family(_G, "driftline_webhook_queued_alerts", "Alerts waiting for webhook delivery"),
    Family(_G, "driftline_drift", "Latest drift metric value", ("model", "column", "metric")),
    Family(_G, "driftline_drift_error_bound", "Sketch error bound of the latest drift value",
           ("model", "column", "metric")),
    Family(_G, "driftline_null_ratio", "Missing-value ratio in the measurement window",
           ("model", "column")),
    Family(_G, "driftline_alerts_firing", "Alerts firing now", ("model", "severity")),
    Family(_G, "driftline_window_rows", "Events in the measurement window", ("model",)),
    Family(_G, "driftline_window_incomplete", "1 while the measurement window holds windows "
           "rebuilt after part of their input aged out of the topic", ("model",)),
    Family(_G, "driftline_prediction_latency_ms", "Model latency quantiles (latency_ms field); "
           "kept for existing dashboards, prefer driftline_prediction_latency_seconds",
           ("model", "quantile")),
    Family(_G, "driftline_prediction_latency_seconds", "Model latency quantiles over the "
           "measurement window (latency_ms field, in seconds)", ("model", "quantile")),
    Family(_G, "driftline_last_evaluation_timestamp_seconds",
           "When the model was last evaluated", ("model",)),
    Family(_G, "driftline_scope_drift", "Latest drift value of a model's other scopes: each "
           "version when several have traffic, canary comparisons, top-K segments (scope = "
           "the alert id suffix, e.g. @version=8, @version=8@vs=7, @country=DE)",
           ("model", "scope", "column", "metric")),
    Family(_G, "driftline_version_rows", "Events per version in the measurement window "
           "(the traffic split)", ("model", "version")),
    Family(_G, "driftline_performance", "Realized performance over the measurement window "
           "(labeled predictions)", ("model", "metric")),
    Family(_G, "driftline_performance_estimated", "Performance estimated from the scores "
           "without labels (CBPE)", ("model", "metric")),
    Family(_G, "driftline_performance_labels", "Labeled outcomes in the measurement window",
           ("model",)),
    Family(_G, "driftline_label_ratio", "Labeled share of the predictions with an id in the "
           "measurement window", ("model",)),
    Family(_G, "driftline_label_delay_seconds", "Label delay quantiles (label ts - prediction "
           "ts)", ("model", "quantile")),
    Family(_C, "driftline_labels", "Label join outcomes: joined, early (before the "
           "prediction), late, duplicate, orphan, expired, evicted, forgotten, idle_expired, "
           "trimmed (cut from the capped outcome stream before the detectors read it)",
           ("model", "outcome")),
    Family(_G, "driftline_labels_pending", "Predictions waiting for their label", ("model",)),
    Family(_C, "driftline_concept_drift_detections", "Changes the detector found in the "
           "error stream", ("model",)),
)}


def _new(name: str) -> CounterMetricFamily | GaugeMetricFamily:
    return FAMILIES[name].new()


class DriftlineCollector(Collector):
    def __init__(
        self,
        results: Callable[[], Iterable[ModelResult]],
        health: Callable[[], Health],
    ) -> None:
        self._results = results
        self._health = health

    def describe(self) -> Iterator[Metric]:
        return (family.new() for family in FAMILIES.values())

    def collect(self) -> Iterator[Metric]:
        health = self._health()
        events = _new("driftline_events")
        for (model, outcome), n in sorted(health.events.items()):
            events.add_metric([model, outcome], n)
        yield events
        lag = _new("driftline_consumer_lag")
        for partition, n in sorted(health.lag.items()):
            lag.add_metric([str(partition)], n)
        yield lag
        if health.flush_seconds is not None:
            flush = _new("driftline_flush_duration_seconds")
            flush.add_metric([], health.flush_seconds)
            yield flush
        leader = _new("driftline_evaluator_leader")
        leader.add_metric([], 1.0 if health.is_leader else 0.0)
        yield leader
        shards = _new("driftline_evaluator_shards")
        shards.add_metric([], health.shards)
        yield shards
        yield from _recovery_metrics(health)
        if health.webhook is not None:
            yield from _webhook_metrics(health.webhook)
        yield from self._result_metrics(list(self._results()))

    @staticmethod
    def _result_metrics(results: list[ModelResult]) -> Iterator[Metric]:
        drift = _new("driftline_drift")
        bound = _new("driftline_drift_error_bound")
        nulls = _new("driftline_null_ratio")
        firing = _new("driftline_alerts_firing")
        rows = _new("driftline_window_rows")
        incomplete = _new("driftline_window_incomplete")
        latency = _new("driftline_prediction_latency_ms")
        latency_s = _new("driftline_prediction_latency_seconds")
        evaluated = _new("driftline_last_evaluation_timestamp_seconds")
        for r in results:
            rows.add_metric([r.model], r.rows)
            incomplete.add_metric([r.model], 1.0 if r.status == "incomplete" else 0.0)
            evaluated.add_metric([r.model], r.evaluated_at)
            for c in r.columns.values():
                if c.null_ratio is not None:
                    nulls.add_metric([r.model, c.column], c.null_ratio)
                for name, m in c.metrics.items():
                    if m.value is not None:
                        drift.add_metric([r.model, c.column, name], m.value)
                        bound.add_metric([r.model, c.column, name], m.error_bound)
            counts: dict[str, int] = {"warning": 0, "critical": 0}
            for sev in r.severities.values():
                counts[sev] = counts.get(sev, 0) + 1
            for sev, n in sorted(counts.items()):
                firing.add_metric([r.model, sev], n)
            for q, ms in sorted(r.latency_ms.items()):
                latency.add_metric([r.model, q], ms)
                latency_s.add_metric([r.model, q], ms / 1000)
        yield from (drift, bound, nulls, firing, rows, incomplete, latency, latency_s, evaluated)
        yield from _scope_metrics(results)
        yield from _performance_metrics(results)


def _scope_metrics(results: list[ModelResult]) -> Iterator[Metric]:
    scoped, traffic = _new("driftline_scope_drift"), _new("driftline_version_rows")
    for r in results:
        for version, n in sorted(r.traffic.items()):
            traffic.add_metric([r.model, version], n)
        for suffix, sr in sorted(r.scopes.items()):
            for c in sr.columns.values():
                for name, m in c.metrics.items():
                    if m.value is not None and m.threshold is not None:
                        scoped.add_metric([r.model, suffix, c.column, name], m.value)
    yield from (scoped, traffic)


_LABEL_OUTCOMES = ("joined", "early_total", "late", "duplicate", "duplicate_prediction",
                   "orphan", "expired", "evicted", "forgotten", "idle_expired", "trimmed")


def _performance_metrics(results: list[ModelResult]) -> Iterator[Metric]:
    real, est = _new("driftline_performance"), _new("driftline_performance_estimated")
    labels, ratio = _new("driftline_performance_labels"), _new("driftline_label_ratio")
    delay, joined = _new("driftline_label_delay_seconds"), _new("driftline_labels")
    pending, detections = (_new("driftline_labels_pending"),
                           _new("driftline_concept_drift_detections"))
    for r in results:
        p = r.performance
        if p is None:
            continue
        for name, m in sorted(p.metrics.items()):
            if m.value is not None:
                real.add_metric([r.model, name], m.value)
        for name, m in sorted(p.estimated.items()):
            if m.value is not None:
                est.add_metric([r.model, name.removeprefix("estimated_")], m.value)
        labels.add_metric([r.model], p.labels)
        if p.label_ratio is not None:
            ratio.add_metric([r.model], p.label_ratio)
        for q, seconds in sorted(p.delay_s.items()):
            delay.add_metric([r.model, q], seconds)
        for outcome in _LABEL_OUTCOMES:
            joined.add_metric([r.model, outcome.removesuffix("_total")],
                              p.counters.get(outcome, 0))
        pending.add_metric([r.model], p.counters.get("pending", 0))
        detections.add_metric([r.model], p.detections)
    yield from (real, est, labels, ratio, delay, joined, pending, detections)


def _recovery_metrics(health: Health) -> Iterator[Metric]:
    resets = _new("driftline_state_resets")
    for (partition, cause), n in sorted(health.state_resets.items()):
        resets.add_metric([health.topic, str(partition), cause], n)
    gaps = _new("driftline_offset_gap_records")
    for partition, n in sorted(health.offset_gaps.items()):
        gaps.add_metric([health.topic, str(partition)], n)
    rebuilding = _new("driftline_partition_rebuilding")
    for partition in sorted(health.rebuilding):
        rebuilding.add_metric([health.topic, str(partition)], 1.0)
    yield from (resets, gaps, rebuilding)


def _webhook_metrics(stats: WebhookStats) -> Iterator[Metric]:
    delivered = _new("driftline_webhook_deliveries")
    delivered.add_metric([], stats.delivered)
    failures = _new("driftline_webhook_failures")
    failures.add_metric([], stats.failures)
    dropped = _new("driftline_webhook_dropped")
    for reason, n in sorted(stats.dropped.items()):
        dropped.add_metric([reason], n)
    queued = _new("driftline_webhook_queued_alerts")
    queued.add_metric([], stats.queued)
    yield from (delivered, failures, dropped, queued)
