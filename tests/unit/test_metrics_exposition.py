"""``/metrics`` is prometheus-client's exposition: content negotiation, gzip, ``describe()``."""

from __future__ import annotations

import gzip
import urllib.request
from collections.abc import Iterator

import msgspec
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from alerts.http import ApiServer
from alerts.metrics import FAMILIES, DriftlineCollector, Health
from alerts.results import ColumnResult, MetricResult, ModelResult
from alerts.webhook import WebhookStats

RESULT = ModelResult(
    model="credit-risk", version="7", status="drift", window_start=0.0, window_end=3600.0,
    rows=48211, evaluated_at=3605.0,
    columns={"income": ColumnResult("income", "numeric", 48000, 0.004, "drift",
                                    {"psi": MetricResult(0.31, 0.01, 0.2, True)})},
    firing=["credit-risk/income/psi"], severities={"credit-risk/income/psi": "critical"},
)
WEBHOOK = WebhookStats(delivered=3, failures=7, dropped={"queue_full": 0, "retries_exhausted": 2},
                       queued=1)


def collector(webhook: WebhookStats | None = WEBHOOK) -> DriftlineCollector:
    return DriftlineCollector(
        lambda: [RESULT],
        lambda: Health(events={("credit-risk", "ok"): 10}, lag={0: 5}, flush_seconds=0.02,
                       is_leader=True, webhook=webhook),
    )


@pytest.fixture()
def api() -> Iterator[ApiServer]:
    registry = CollectorRegistry()
    registry.register(collector())
    server = ApiServer(registry, lambda: [RESULT], lambda: True, port=0)
    server.start()
    yield server
    server.close()


def fetch(api: ApiServer, path: str, **headers: str) -> tuple[dict[str, str], bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{api.port}{path}", headers=headers)
    with urllib.request.urlopen(req, timeout=5) as r:
        return dict(r.headers.items()), r.read()


def test_plain_scrape_is_the_prometheus_text_format(api: ApiServer) -> None:
    headers, body = fetch(api, "/metrics")
    assert headers["Content-Type"].startswith("text/plain")
    assert "Content-Encoding" not in headers
    names = {f.name for f in text_string_to_metric_families(body.decode())}
    assert {"driftline_events", "driftline_drift", "driftline_webhook_failures"} <= names


def test_openmetrics_accept_header_gets_openmetrics(api: ApiServer) -> None:
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    headers, body = fetch(api, "/metrics", Accept=accept)
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    text = body.decode()
    assert text.endswith("# EOF\n")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in openmetrics_families(text) for s in fam.samples}
    assert samples[("driftline_events_total", (("model", "credit-risk"), ("outcome", "ok")))] == 10
    assert samples[("driftline_webhook_dropped_total", (("reason", "retries_exhausted"),))] == 2


def test_gzip_when_the_client_accepts_it(api: ApiServer) -> None:
    headers, body = fetch(api, "/metrics", **{"Accept-Encoding": "gzip, deflate"})
    assert headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(body).decode()
    assert "driftline_drift{" in text
    _, plain = fetch(api, "/metrics")
    assert text == plain.decode()


def test_name_selects_families(api: ApiServer) -> None:
    _, body = fetch(api, "/metrics?name[]=driftline_window_rows")
    assert {f.name for f in text_string_to_metric_families(body.decode())} == {
        "driftline_window_rows"}


def test_describe_returns_every_family_collect_yields() -> None:
    described = {m.name: m.type for m in collector().describe()}
    assert described == {name: f.new().type for name, f in FAMILIES.items()}
    collected = {m.name: m.type for m in collector().collect()}
    assert collected.items() <= described.items()
    # a registry now knows the names up front: registering them twice is refused
    registry = CollectorRegistry()
    registry.register(collector())
    with pytest.raises(ValueError):
        registry.register(collector())


def test_webhook_figures_only_where_there_is_a_webhook() -> None:
    names = {m.name for m in collector(webhook=None).collect()}
    assert not any(n.startswith("driftline_webhook") for n in names)
    samples = {s.name: s.value for m in collector().collect() for s in m.samples
               if not s.labels}
    assert samples["driftline_webhook_deliveries_total"] == 3
    assert samples["driftline_webhook_failures_total"] == 7
    assert samples["driftline_webhook_queued_alerts"] == 1


def test_performance_and_label_health_are_exposed() -> None:
    from alerts.results import PerformanceResult

    perf = PerformanceResult(
        state="ok", labels=900, predictions=1000, label_ratio=0.9,
        metrics={"accuracy": MetricResult(0.81), "auc": MetricResult(0.88, 0.002)},
        estimated={"estimated_accuracy": MetricResult(0.84, 0.01)},
        reference={"accuracy": 0.85},
        counters={"joined": 900, "pending": 100, "expired": 3, "orphan": 2, "early_total": 5},
        delay_s={"0.5": 30.0, "0.99": 600.0}, detections=2)
    result = msgspec.structs.replace(RESULT, performance=perf)
    c = DriftlineCollector(lambda: [result], lambda: Health())
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in c.collect() for s in fam.samples}
    model = ("model", "credit-risk")
    assert samples[("driftline_performance", (("metric", "accuracy"), model))] == 0.81
    assert samples[("driftline_performance_estimated", (("metric", "accuracy"), model))] == 0.84
    assert samples[("driftline_label_ratio", (model,))] == 0.9
    assert samples[("driftline_label_delay_seconds", (model, ("quantile", "0.99")))] == 600.0
    assert samples[("driftline_labels_total", (model, ("outcome", "expired")))] == 3
    assert samples[("driftline_labels_total", (model, ("outcome", "early")))] == 5
    assert samples[("driftline_labels_pending", (model,))] == 100
    assert samples[("driftline_concept_drift_detections_total", (model,))] == 2
    # a model without labels configured exposes none of them
    bare = {fam.name for fam in DriftlineCollector(lambda: [RESULT], lambda: Health()).collect()
            for _ in fam.samples}
    assert not {n for n in bare if "performance" in n or n.startswith("driftline_label")}
