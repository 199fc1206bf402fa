"""End to end on the real stack: the simulator's four operational incidents → worker →
Redis → evaluator → exactly one ``operational`` alert each, resolved when it ends; a
stationary stream of the same length, in parallel on its own topic and worker, raises none.

One stream of ``svc-ops`` (200 events/s, 2 s windows, one evaluation a second) carries, one
after the other: a volume drop (rate x 0.2), a latency rise (x 3), a producer stall (the
simulator sends nothing for 6 s) and an invalid-event burst (30 % malformed). The
incidents start on window boundaries (the stream starts on one).
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.support import CLI
from tests.e2e.test_alerts_e2e import kcat_alerts
from tests.streamutil import Worker

pytestmark = pytest.mark.integration
RATE = 200
DURATION_S = 56
INCIDENTS = {  # metric -> (--ops, start, end)
    "volume_drop": ("volume=0.2@8s..14s", 8, 14),
    "latency_rise": ("latency=x3@20s..26s", 20, 26),
    "stale": ("stall@32s..38s", 32, 38),
    "invalid_ratio": ("invalid=0.3@44s..50s", 44, 50),
}
HEALTH = ('volume_drop = 0.5\ntrailing_windows = 8\nlatency_rise = 2.0\nstale_after = "4s"\n'
          'max_invalid_ratio = 0.1\nratio_window = "4s"\nmin_events = 30\n')


@pytest.mark.timeout(150)
def test_each_incident_raises_one_operational_alert_and_a_calm_stream_none(
    kafka_bootstrap: str, redis_url: str, make_topic: Callable[..., str], key_prefix: str,
    tmp_path: Path,
) -> None:
    start_ts = math.ceil(time.time() / 2) * 2 + 2.0  # a window boundary, just ahead
    runs: dict[str, tuple[Worker, subprocess.Popen[str], str, str]] = {}
    for name, flags in (("svc-ops", [o for o, _, _ in INCIDENTS.values()]), ("svc-calm", [])):
        topic = make_topic(2, prefix=name)
        make_topic(1, prefix=f"{topic}.dlq")
        alerts = make_topic(1, prefix=f"alerts-{name}")
        models = tmp_path / f"{name}.toml"
        models.write_text('[defaults]\nwindow = "2s"\nretention = "4s"\nmeasure = "10s"\n'
                          f"[models.{name}]\n[models.{name}.health]\n{HEALTH}")
        worker = Worker(
            [*CLI, "worker", "--kafka-bootstrap", kafka_bootstrap, "--redis-url", redis_url,
             "--key-prefix", key_prefix, "--topic", topic, "--dlq-topic", f"{topic}.dlq",
             "--group", f"g-{topic}", "--alerts-topic", alerts, "--models-config",
             str(models), "--evaluate-interval", "1s", "--checkpoint-interval", "300ms",
             "--evaluator-sweep", "2s", "--http-port", "-1"],
            tmp_path / f"{name}.log")
        sim = subprocess.Popen(
            [*CLI, "simulate", "--kafka-bootstrap", kafka_bootstrap, "--topic", topic,
             "--models", name, "--rate", str(RATE), "--duration", f"{DURATION_S}s",
             "--start-ts", str(start_ts), "--numeric", "2", "--categorical", "1",
             "--no-labels", "--no-progress", "--seed", "3",
             *[a for o in flags for a in ("--ops", o)]],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        runs[name] = (worker, sim, alerts, topic)
    try:
        for worker, sim, _, _ in runs.values():
            out, _ = sim.communicate(timeout=DURATION_S + 30)
            assert sim.returncode == 0, out
            assert worker.alive(), worker.tail()
        ended = time.time()
    finally:
        codes = {name: w.stop() for name, (w, _, _, _) in runs.items()}
    assert codes == {"svc-ops": 0, "svc-calm": 0}, [w.tail() for w, _, _, _ in runs.values()]
    # the producers stopped at the end: a `stale` alert from then on is right, not noise
    def relevant(alert: dict[str, object]) -> bool:
        return not (alert["metric"] == "stale" and str(alert["since"]) >= _iso(ended - 1))

    ops = [a for a in kcat_alerts(kafka_bootstrap, runs["svc-ops"][2]) if relevant(a)]
    calm = [a for a in kcat_alerts(kafka_bootstrap, runs["svc-calm"][2]) if relevant(a)]
    assert calm == [], calm
    assert {a["kind"] for a in ops} == {"operational"}, ops
    sent0 = _first_sent(kafka_bootstrap, runs["svc-ops"][3])  # the simulator's wall start
    for metric, (_, begin, end) in INCIDENTS.items():
        mine = [a for a in ops if a["metric"] == metric]
        assert [a["state"] for a in mine] == ["firing", "resolved"], (metric, ops)
        fired, resolved = mine
        assert fired["id"] == f"svc-ops/-/{metric}" and fired["column"] is None
        # fired during the incident, resolved after it ended (wall-clock seconds since the
        # simulator sent its first event; its schedule starts up to ~1 s before that send)
        at = (float(str(fired["_kafka_ts_ms"])) / 1000 - sent0,
              float(str(resolved["_kafka_ts_ms"])) / 1000 - sent0)
        print(f"{metric}: incident {begin}..{end}s, fired at {at[0]:.1f}s, "
              f"resolved at {at[1]:.1f}s: {fired['summary']}")
        assert begin - 1 < at[0] < end and end - 1 < at[1] < end + 6, (metric, at)
        assert at[0] < at[1]
    assert len(ops) == 2 * len(INCIDENTS), ops


def _first_sent(bootstrap: str, topic: str) -> float:
    """Kafka timestamp (producer create time, epoch s) of the topic's first message."""
    stamps = []
    for p in (0, 1):
        out = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-p", str(p), "-o",
                              "beginning", "-c", "1", "-e", "-J", "-q"], capture_output=True,
                             text=True, timeout=30, check=True).stdout
        stamps += [float(json.loads(line)["ts"]) / 1000 for line in out.splitlines()]
    return min(stamps)


def _iso(epoch_s: float) -> str:
    from alerts.message import rfc3339

    return rfc3339(epoch_s)
