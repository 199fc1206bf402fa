"""Prometheus metrics, computed at scrape time by a custom collector (DESIGN.md §1).

The collector reads two injected snapshot functions, never globals:

- ``results()`` → the latest :class:`ModelResult` per model (drift, null ratio, alerts
  firing, latency quantiles) — served by the evaluator leader, which holds the truth;
- ``health()`` → :class:`Health`, this process's stream counters, lag and flush times.

Label values are bounded: model, column, metric, severity, outcome, quantile and
partition — never a request id or a category value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from alerts.results import ModelResult


@dataclass(frozen=True)
class Health:
    """Stream-side figures: ``events[(model, outcome)]``, ``lag[partition]``, last flush."""

    events: Mapping[tuple[str, str], int] = field(default_factory=dict)
    lag: Mapping[int, int] = field(default_factory=dict)
    flush_seconds: float | None = None
    flushes: int = 0
    is_leader: bool = False


class DriftlineCollector(Collector):
    def __init__(
        self,
        results: Callable[[], Iterable[ModelResult]],
        health: Callable[[], Health],
    ) -> None:
        self._results = results
        self._health = health

    def describe(self) -> Iterator[Metric]:
        return iter(())  # collected lazily; no names registered up front

    def collect(self) -> Iterator[Metric]:
        health = self._health()
        events = CounterMetricFamily(
            "driftline_events", "Prediction events by outcome", labels=["model", "outcome"]
        )
        for (model, outcome), n in sorted(health.events.items()):
            events.add_metric([model, outcome], n)
        yield events
        lag = GaugeMetricFamily(
            "driftline_consumer_lag", "Records behind the log end", labels=["partition"]
        )
        for partition, n in sorted(health.lag.items()):
            lag.add_metric([str(partition)], n)
        yield lag
        if health.flush_seconds is not None:
            yield GaugeMetricFamily(
                "driftline_flush_duration_seconds",
                "Duration of the last checkpoint write to Redis",
                value=health.flush_seconds,
            )
        yield GaugeMetricFamily(
            "driftline_evaluator_leader", "1 when this process holds the evaluator lease",
            value=1.0 if health.is_leader else 0.0,
        )
        yield from self._result_metrics(list(self._results()))

    @staticmethod
    def _result_metrics(results: list[ModelResult]) -> Iterator[Metric]:
        drift = GaugeMetricFamily(
            "driftline_drift", "Latest drift metric value", labels=["model", "column", "metric"]
        )
        bound = GaugeMetricFamily(
            "driftline_drift_error_bound",
            "Sketch error bound of the latest drift value",
            labels=["model", "column", "metric"],
        )
        nulls = GaugeMetricFamily(
            "driftline_null_ratio", "Missing-value ratio in the measurement window",
            labels=["model", "column"],
        )
        firing = GaugeMetricFamily(
            "driftline_alerts_firing", "Alerts firing now", labels=["model", "severity"]
        )
        rows = GaugeMetricFamily(
            "driftline_window_rows", "Events in the measurement window", labels=["model"]
        )
        latency = GaugeMetricFamily(
            "driftline_prediction_latency_ms", "Model latency quantiles (latency_ms field)",
            labels=["model", "quantile"],
        )
        evaluated = GaugeMetricFamily(
            "driftline_last_evaluation_timestamp_seconds", "When the model was last evaluated",
            labels=["model"],
        )
        for r in results:
            rows.add_metric([r.model], r.rows)
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
        yield from (drift, bound, nulls, firing, rows, latency, evaluated)
