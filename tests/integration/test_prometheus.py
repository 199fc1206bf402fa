"""A real Prometheus (Debian's) scrapes driftline's endpoint; the shipped rules pass promtool."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from alerts.http import ApiServer
from alerts.metrics import DriftlineCollector, Health
from alerts.results import ColumnResult, MetricResult, ModelResult

pytestmark = pytest.mark.integration
RULES = Path(__file__).resolve().parents[2] / "driftline" / "stack" / "prometheus"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_promtool_checks_and_unit_tests_the_shipped_rules() -> None:
    check = subprocess.run(["promtool", "check", "rules", "rules.yml"], cwd=RULES,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 6 rules found" in check.stdout + check.stderr
    unit = subprocess.run(["promtool", "test", "rules", "rules_test.yml"], cwd=RULES,
                          capture_output=True, text=True, timeout=60)
    assert unit.returncode == 0, unit.stdout + unit.stderr


@pytest.fixture()
def endpoint() -> Iterator[ApiServer]:
    result = ModelResult(
        model="credit-risk", version="7", status="drift", window_start=0, window_end=60,
        rows=1000, evaluated_at=time.time(),
        columns={"income": ColumnResult("income", "numeric", 1000, 0.01, "drift",
                                        {"psi": MetricResult(0.31, 0.004, 0.25, True)})},
        firing=["credit-risk/income/psi"], severities={"credit-risk/income/psi": "critical"},
    )
    registry = CollectorRegistry()
    registry.register(DriftlineCollector(lambda: [result], lambda: Health(is_leader=True)))
    api = ApiServer(registry, lambda: [result], lambda: True, port=_free_port())
    api.start()
    yield api
    api.close()


def _query(port: int, expr: str) -> list[dict[str, object]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as r:
        data: list[dict[str, object]] = json.loads(r.read())["data"]["result"]
        return data


def test_real_prometheus_scrapes_the_endpoint(endpoint: ApiServer, tmp_path: Path) -> None:
    prom_port = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{RULES / 'rules.yml'}']\n"
        "scrape_configs:\n"
        "  - job_name: driftline\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{endpoint.port}']}}]\n"
    )
    log = (tmp_path / "prom.log").open("w")
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        found: list[dict[str, object]] = []
        while time.monotonic() < deadline and not found:
            time.sleep(1)
            assert proc.poll() is None, (tmp_path / "prom.log").read_text()[-2000:]
            try:
                found = _query(prom_port, 'driftline_drift{model="credit-risk",column="income",metric="psi"}')
            except OSError:
                continue
        assert found, "prometheus never scraped driftline_drift"
        value = found[0]["value"]
        assert isinstance(value, list) and float(value[1]) == pytest.approx(0.31)
        up = _query(prom_port, 'up{job="driftline"}')
        assert up and isinstance(up[0]["value"], list) and up[0]["value"][1] == "1"
        firing = _query(prom_port, 'driftline_alerts_firing{severity="critical"}')
        assert firing and isinstance(firing[0]["value"], list) and firing[0]["value"][1] == "1"
    finally:
        proc.terminate()
        proc.wait(30)
