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
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
    finally:
        client.close()
    return proc, url, workdir
