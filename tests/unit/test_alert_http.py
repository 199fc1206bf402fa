"""Metrics collector and HTTP API: scrape-time values, bounded labels, JSON routes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from alerts.http import ApiServer
from alerts.metrics import DriftlineCollector, Health
from alerts.results import (
    ColumnResult,
    MetricResult,
    ModelResult,
    result_from_bytes,
    result_to_bytes,
)

RESULT = ModelResult(
    model="credit-risk", version="7", status="drift", window_start=0.0, window_end=3600.0,
    rows=48211, evaluated_at=3605.0,
    columns={
        "income": ColumnResult("income", "numeric", 48000, 0.004, "drift",
                               {"psi": MetricResult(0.31, 0.01, 0.2, True)}),
        "age": ColumnResult("age", "numeric", 48211, 0.0, "no_drift",
                            {"psi": MetricResult(0.01, 0.01, 0.2, False)}),
    },
    firing=["credit-risk/income/psi"], severities={"credit-risk/income/psi": "critical"},
    latency_ms={"0.5": 12.0, "0.99": 40.0},
)


@pytest.fixture()
def server() -> Iterator[tuple[ApiServer, dict[str, bool]]]:
    registry = CollectorRegistry()
    state = {"ready": False}
    registry.register(DriftlineCollector(
        lambda: [RESULT],
        lambda: Health(events={("credit-risk", "ok"): 10, ("credit-risk", "invalid"): 2},
                       lag={0: 5}, flush_seconds=0.02, is_leader=True),
    ))
    api = ApiServer(registry, lambda: [RESULT], lambda: [] if state["ready"] else ["not yet"], port=0)
    api.start()
    yield api, state
    api.close()


def get(api: ApiServer, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{api.port}{path}", timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_metrics_contract(server: tuple[ApiServer, dict[str, bool]]) -> None:
    api, _ = server
    code, body = get(api, "/metrics")
    assert code == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(body.decode()) for s in fam.samples
    }
    assert samples[("driftline_events_total", (("model", "credit-risk"), ("outcome", "ok")))] == 10
    key = ("driftline_drift", (("column", "income"), ("metric", "psi"), ("model", "credit-risk")))
    assert samples[key] == pytest.approx(0.31)
    assert samples[("driftline_alerts_firing", (("model", "credit-risk"), ("severity", "critical")))] == 1
    assert samples[("driftline_alerts_firing", (("model", "credit-risk"), ("severity", "warning")))] == 0
    assert samples[("driftline_null_ratio", (("column", "income"), ("model", "credit-risk")))] == 0.004
    assert samples[("driftline_consumer_lag", (("partition", "0"),))] == 5
    assert samples[("driftline_prediction_latency_ms", (("model", "credit-risk"), ("quantile", "0.99")))] == 40
    assert ("driftline_flush_duration_seconds", ()) in samples


def test_health_ready_and_json_api(server: tuple[ApiServer, dict[str, bool]]) -> None:
    api, state = server
    assert get(api, "/healthz")[0] == 200
    assert get(api, "/readyz")[0] == 503
    state["ready"] = True
    assert get(api, "/readyz")[0] == 200
    code, body = get(api, "/models")
    assert code == 200
    models = json.loads(body)["models"]
    assert models[0]["model"] == "credit-risk" and models[0]["drifted"] == ["income"]
    code, body = get(api, "/models/credit-risk/drift")
    assert code == 200 and json.loads(body)["columns"]["income"]["metrics"]["psi"]["value"] == 0.31
    assert get(api, "/models/nope/drift")[0] == 404
    assert get(api, "/nothing")[0] == 404


def test_result_bytes_round_trip() -> None:
    assert result_from_bytes(result_to_bytes(RESULT)) == RESULT
