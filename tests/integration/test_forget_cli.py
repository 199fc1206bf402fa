"""``driftline forget``: the right to be forgotten, from the command line, on a real Redis."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis

from driftline.models import load_catalog
from streams.join_items import JoinItem
from streams.label_worker import join_store, label_specs

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "driftline.cli"]


def test_forget_erases_the_waiting_prediction_and_drops_its_later_label(
    redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    models = tmp_path / "models.toml"
    models.write_text('[models.m]\nwindow = "1m"\n[models.m.performance]\ntask = "binary"\n')
    client = redis.Redis.from_url(redis_url)
    join = join_store(client, key_prefix, label_specs(load_catalog(models)))
    ts = 1_800_000_000_000
    join.put("p", 0, [JoinItem(0, "m", "alice", ts, "v1", "", "0.9"),
                      JoinItem(1, "m", "bob", ts, "v1", "", "0.2")])
    before = {k for k in client.scan_iter(f"{key_prefix}:perf:*:j:*")}
    assert sum(client.hlen(k) for k in before) == 2
    ids = tmp_path / "ids.txt"
    ids.write_text("alice\ncarol\n")
    args = ["forget", "--model", "m", "--models-config", str(models), "--redis-url", redis_url,
            "--key-prefix", key_prefix]
    first = subprocess.run([*CLI, *args, "--ids-file", str(ids)], capture_output=True,
                           text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "2 newly erased" in first.stdout
    again = subprocess.run([*CLI, *args, "--id", "alice"], capture_output=True, text=True,
                           timeout=60)
    assert again.returncode == 0 and "0 newly erased" in again.stdout, again.stdout
    # alice's entry is now only a 1-byte marker, nothing about her prediction
    hid = join.hid("m", "alice")
    values = [client.hget(k, hid) for k in client.scan_iter(f"{key_prefix}:perf:*:j:*")]
    assert [v for v in values if v is not None] == [b"F"]
    assert join.counters("m")["pending"] == 1  # bob still waits
    join.put("l", 0, [JoinItem(0, "m", "alice", ts + 5_000, label="1"),
                      JoinItem(1, "m", "bob", ts + 5_000, label="0")])
    counters = join.counters("m")
    assert counters["forgotten"] == 1 and counters["joined"] == 1  # only bob's outcome
    windows = join.windows("m", ts - 60_000, ts + 60_000)
    assert sum(int(f.get("n", 0)) for rows in windows.values() for _, f in rows) == 1
    unknown = subprocess.run([*CLI, *args[:2], "other", *args[3:], "--id", "x"],
                             capture_output=True, text=True, timeout=60)
    assert unknown.returncode != 0 and "no [models.other.performance]" in unknown.stderr
    client.close()
