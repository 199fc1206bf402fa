"""`make stack` on a private stack: recovers after a kill, refuses a taken port clearly.

These tests start their own broker and redis on other ports in a temporary STACK_DIR,
so the shared stack other tests use is never touched.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from confluent_kafka.admin import AdminClient

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def private_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP", "REDIS_URL")}
    env.update(
        STACK_DIR=str(tmp_path / "stack"),
        KAFKA_PORT=str(_free_port()),
        KAFKA_CONTROLLER_PORT=str(_free_port()),
        REDIS_PORT=str(_free_port()),
    )
    yield env
    subprocess.run(["make", "-s", "stack-down"], cwd=REPO, env=env, check=False, timeout=120)


def _make(target: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", target], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def _answers(env: dict[str, str]) -> None:
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{env['KAFKA_PORT']}"})
    brokers = admin.list_topics(timeout=20).brokers
    assert len(brokers) == 1
    r = redis.Redis(host="127.0.0.1", port=int(env["REDIS_PORT"]))
    try:
        assert r.ping()
    finally:
        r.close()


def test_killed_stack_recovers_with_make_stack(private_env: dict[str, str]) -> None:
    first = _make("stack", private_env)
    assert first.returncode == 0, first.stderr
    assert f"127.0.0.1:{private_env['KAFKA_PORT']}" in first.stderr
    _answers(private_env)

    again = _make("stack", private_env)  # idempotent: nothing new started
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stderr

    stack_dir = Path(private_env["STACK_DIR"])
    for name in ("kafka", "redis"):
        os.kill(int((stack_dir / f"{name}.pid").read_text()), signal.SIGKILL)

    recovered = _make("stack", private_env)
    assert recovered.returncode == 0, recovered.stderr
    assert "starting kafka" in recovered.stderr
    _answers(private_env)

    down = _make("stack-down", private_env)
    assert down.returncode == 0, down.stderr
    assert not (stack_dir / "kafka.pid").exists()
    assert not (stack_dir / "redis.pid").exists()


def test_taken_port_gives_clear_error(private_env: dict[str, str]) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(private_env["REDIS_PORT"])))
        squatter.listen()
        result = _make("stack", private_env)
    assert result.returncode != 0
    assert f"port {private_env['REDIS_PORT']} (for redis) is already in use" in result.stderr
    assert "REDIS_PORT=" in result.stderr
