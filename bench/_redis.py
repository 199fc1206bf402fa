"""A redis-server of a benchmark's own (no persistence), so its memory is measured clean."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time

import redis


def start_redis(prefix: str = "bench-redis-") -> tuple[subprocess.Popen[bytes], str, str]:
    """(process, URL, working directory) of a fresh redis-server on a free port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix=prefix)
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", workdir],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ping(port)
    return proc, f"redis://127.0.0.1:{port}/0", workdir


def wait_ping(port: int, timeout_s: float = 10.0) -> None:
    """Until the redis-server on ``port`` answers (RuntimeError after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    with redis.Redis(port=port) as client:
        while True:
            try:
                client.ping()
                return
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {port} never answered") from None
                time.sleep(0.05)
