"""`driftline demo` (what `make demo` runs) finds the drift, null spike and unseen category."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.timeout(300)
def test_demo_finds_what_it_injects(kafka_bootstrap: str, redis_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "driftline.cli", "demo", "--duration", "30", "--http-port", "0",
         "--kafka-bootstrap", kafka_bootstrap, "--redis-url", redis_url],
        capture_output=True, text=True, timeout=280,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    summary = done.stdout[done.stdout.index("4/4 summary"):]
    for alert in ("credit-risk/income/", "credit-risk/tenure/null_ratio", "credit-risk/country/"):
        assert alert in summary.replace("\n", ""), summary
    assert "alerts resolved" in summary
