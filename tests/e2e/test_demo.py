"""`driftline demo` (what `make demo` runs) finds the drift, null spike and unseen category,
and the accuracy fall only the labels show, with realized beside estimated accuracy."""

from __future__ import annotations

import re
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
    for alert in ("credit-risk/income/", "credit-risk/tenure/null_ratio", "credit-risk/country/",
                  "credit-risk/-/accuracy"):
        assert alert in summary.replace("\n", ""), summary
    assert "alerts resolved" in summary
    flat = " ".join(summary.split())
    match = re.search(r"realized (\S+), estimated without labels \(CBPE\) (\S+), "
                      r"reference (\S+)", flat)
    assert match, summary
    realized, estimated, reference = (float(x) for x in match.groups())
    assert realized < reference - 0.1  # the labels show the fall ...
    assert abs(estimated - reference) < 0.05  # ... the scores alone cannot (concept drift)
    assert "estimated (CBPE)" in done.stdout
