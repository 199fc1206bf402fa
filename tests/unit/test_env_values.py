"""A bad environment twin stops every command with one line naming it (exit 2), not a
traceback — even a command that does not use the flag, since every parser is built."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "driftline.cli"]


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    return subprocess.run([*CLI, *args], env={**clean, **env}, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize(("var", "value", "needle"), [
    ("DRIFTLINE_BATCH_SIZE", "abc", "not an integer"),        # int (a worker flag)
    ("DRIFTLINE_WATCH", "often", "not a number"),             # float
    ("DRIFTLINE_CHECKPOINT_INTERVAL", "soon", "not a duration"),  # duration
    ("DRIFTLINE_ENGINE", "spark", "not one of: confluent, faust"),  # choice
    ("DRIFTLINE_EVALUATE", "maybe", "not a boolean"),          # bool
])
def test_bad_env_value_is_one_clear_line(var: str, value: str, needle: str) -> None:
    result = run({var: value}, "status", "--help")
    assert result.returncode == 2, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"{var}={value!r}" in lines[0] and needle in lines[0], lines[0]
    assert result.stdout == ""


def test_good_env_values_are_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"DRIFTLINE_BATCH_SIZE": "10", "DRIFTLINE_WATCH": "2.5",
           "DRIFTLINE_CHECKPOINT_INTERVAL": "500ms", "DRIFTLINE_ENGINE": "faust",
           "DRIFTLINE_EVALUATE": "off"}
    result = run(env, "worker", "--help")
    assert result.returncode == 0, result.stderr
    from driftline.cli import build_parser

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    worker = build_parser().parse_args(["worker", "--kafka-bootstrap", "k", "--redis-url", "r"])
    assert (worker.batch_size, worker.checkpoint_interval, worker.engine, worker.evaluate) == (
        10, "500ms", "faust", False)
    assert build_parser().parse_args(["status"]).watch == 2.5
