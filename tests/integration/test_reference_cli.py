"""`driftline reference` on a real Redis: put / get / list / delete, version fallback,
and a reference built from a production window (--from-window)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import redis

from sketches.profile import DatasetProfile
from sketches.reference import Reference, build_reference
from sketches.store import ReferenceStore
from streams.core import Checkpoint
from streams.state import RedisStateStore
from streams.windows import Counters, WindowKey

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "driftline.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)


def test_put_get_list_delete_and_fallback(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    rng = np.random.default_rng(1)
    ref = build_reference([{"x": list(rng.normal(size=1000)), "c": ["a", "b"] * 500}],
                          model="m", version="default", created="2026-11-23T00:00:00Z", chunks=4,
                          total_rows=1000)
    path = tmp_path / "ref.bin"
    path.write_bytes(ref.to_bytes())
    common = ["--redis-url", redis_url, "--key-prefix", key_prefix]
    put = run("reference", "put", str(path), "--model", "m", *common)
    assert put.returncode == 0 and "1000 rows, 2 columns, 4 chunks" in put.stdout, put.stderr
    assert run("reference", "put", str(path), "--model", "m", "--version", "7", *common).returncode == 0

    listed = run("reference", "list", *common).stdout.splitlines()
    assert [ln.split()[:3] for ln in listed[1:]] == [["m", "7", "1000"], ["m", "default", "1000"]]

    got = run("reference", "get", "--model", "m", "--version", "7", "--out", str(tmp_path / "o"), *common)
    info = json.loads(got.stdout)
    assert info["rows"] == 1000 and info["columns"] == {"x": "numeric", "c": "categorical"}
    assert Reference.from_bytes((tmp_path / "o").read_bytes()).rows == 1000

    client = redis.Redis.from_url(redis_url)
    store = ReferenceStore(client, key_prefix)
    assert store.models() == {"m"}
    assert store.get("m", "8") is not None  # no version 8: falls back to default
    assert run("reference", "delete", "--model", "m", *common).returncode == 0
    assert store.get("m", "8") is None and store.get("m", "7") is not None
    missing = run("reference", "get", "--model", "nope", *common)
    assert missing.returncode == 2 and "no reference for model 'nope'" in missing.stderr
    client.close()


def test_reference_from_a_production_window(redis_url: str, key_prefix: str) -> None:
    rng = np.random.default_rng(2)
    client = redis.Redis.from_url(redis_url)
    state = RedisStateStore(client, prefix=key_prefix, topic="predictions", horizon_ms=3_600_000)
    t0 = 1_800_000_000_000
    for p in (0, 1):
        snap = state.load(p)
        prof = DatasetProfile()
        prof.update({"x": list(rng.normal(size=700))}, 700)
        key = WindowKey("m", "3", t0 + p * 60_000)
        state.write(Checkpoint(p, snap.epoch, 699, t0 + p * 60_000 + 1, Counters(ok={"m": 700}),
                               {key: prof.to_bytes()}, {key: t0 + (p + 1) * 60_000}))
    done = run("reference", "put", "--from-window", "1h", "--model", "m",
               "--redis-url", redis_url, "--key-prefix", key_prefix)
    assert done.returncode == 0, done.stderr
    ref = ReferenceStore(client, key_prefix).get("m")
    assert ref is not None and ref.rows == 1400  # both partitions' windows merged
    empty = run("reference", "put", "--from-window", "1h", "--model", "other",
                "--redis-url", redis_url, "--key-prefix", key_prefix)
    assert empty.returncode == 2 and "no windows of model 'other'" in empty.stderr
    client.close()
