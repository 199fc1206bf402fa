"""docker-compose.yml is valid for a real compose implementation (no engine needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_compose_file_is_valid_and_has_the_stack() -> None:
    check = subprocess.run(
        ["docker-compose", "-f", "docker-compose.yml", "config", "-q"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert check.returncode == 0, check.stderr
    services = subprocess.run(
        ["docker-compose", "-f", "docker-compose.yml", "config", "--services"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split()
    assert {"kafka", "redis", "prometheus", "grafana", "worker", "simulator", "reference"} <= set(
        services
    )


def test_compose_prometheus_config_is_valid() -> None:
    result = subprocess.run(
        ["promtool", "check", "config", "driftline/stack/prometheus.yml"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
