"""``driftline status`` finds evaluated models where the evaluator finds them (models file +
reference index) and reads their results by key: it never scans the keyspace."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import redis

from alerts.keys import AlertKeys
from alerts.results import ModelResult, result_to_bytes
from sketches.reference import build_reference
from sketches.store import ReferenceStore

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "driftline.cli"]


def result(model: str) -> ModelResult:
    return ModelResult(model=model, version="1", status="ok", window_start=0.0,
                       window_end=60.0, rows=5, evaluated_at=61.0)


def test_status_lists_evaluated_models_without_scanning(
    redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = AlertKeys(key_prefix)
    rng = np.random.default_rng(3)
    ReferenceStore(client, key_prefix).put(
        build_reference([{"x": list(rng.normal(size=500))}], model="with-ref", version="default",
                        created="2026-11-23T00:00:00Z", chunks=0), "with-ref")
    for model in ("with-ref", "in-file", "orphan"):
        client.set(keys.result(model), result_to_bytes(result(model)))
    models_file = tmp_path / "models.toml"
    models_file.write_text("[models.in-file]\n")

    commands: list[str] = []
    monitor = redis.Redis.from_url(redis_url)

    def watch() -> None:
        with monitor.monitor() as m:
            for event in m.listen():
                commands.append(str(event["command"]).upper())
                if "STOP-WATCHING" in commands[-1]:
                    return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        base = [*CLI, "status", "--redis-url", redis_url, "--key-prefix", key_prefix]
        plain = subprocess.run(base, capture_output=True, text=True, timeout=60)
        with_file = subprocess.run([*base, "--models-config", str(models_file)],
                                   capture_output=True, text=True, timeout=60)
    finally:
        client.get("stop-watching")
        watcher.join(30)
    assert plain.returncode == 0, plain.stderr
    assert "with-ref (version 1)" in plain.stdout and "in-file" not in plain.stdout
    assert with_file.returncode == 0, with_file.stderr
    assert "with-ref (version 1)" in with_file.stdout and "in-file (version 1)" in with_file.stdout
    assert "orphan" not in plain.stdout + with_file.stdout  # neither configured nor referenced
    # results are read by key (one GET per model, pipelined: the keys span cluster slots)
    assert f"GET {keys.result('with-ref')}".upper() in commands, commands
    assert not any(c.startswith(("SCAN", "KEYS")) for c in commands), commands
    client.close()
    monitor.close()
