"""Configuration mistakes stop the service with one clear line and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import redis

from sketches.reference import build_reference
from sketches.store import ReferenceStore

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "driftline.cli"]


def worker(models: Path, kafka_bootstrap: str, redis_url: str, prefix: str,
           *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "worker", "--kafka-bootstrap", kafka_bootstrap, "--redis-url", redis_url,
         "--key-prefix", prefix, "--topic", f"{prefix}-none", "--models-config", str(models),
         "--http-port", "-1", *extra],
        capture_output=True, text=True, timeout=60,
    )


def one_clear_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        ('[models.m]\nrules = { thresholds = { psi = -1 } }\n', ("models.m.rules.thresholds.psi", ">= 0")),
        ('[models.m]\nrules = { thresholds = { psi = "high" } }\n', ("psi", "number")),
        ('[models.m]\nrules = { thresholds = { sharpness = 0.2 } }\n', ("unknown metric 'sharpness'",)),
        ('[models.m]\nrules = { mode = "vibes" }\n', ("unknown mode",)),
        ('[models.m]\nrules = { correction = "holm" }\n', ("unknown correction",)),
        ('[models.m]\nfor = 0\n', ("models.m.for", ">= 1")),
        ('[models.m]\nseverity = "page"\n', ("severity",)),
        ('[models.m]\nwindow = "soon"\n', ("window", "duration")),
        ('[models."bad name!"]\n', ("invalid model name",)),
        ('[models.m]\nwindows = "5m"\n', ("unknown keys", "windows")),
        ("[models.m\n", ("models file",)),
        ('[models.m]\nranges = { age = [10, 1] }\n', ("ranges.age", "above high")),
        ('[models.m]\nranges = { age = [0, "lots"] }\n', ("ranges.age", "range bound")),
        ('[models.m]\nranges = { age = 5 }\n', ("expected [low, high]",)),
        ('[models.m]\nmax_out_of_range = 2\n', ("max_out_of_range", "[0, 1]")),
        ("", ("no models listed",)),
    ],
)
def test_bad_models_file(body: str, needles: tuple[str, ...], tmp_path: Path,
                         kafka_bootstrap: str, redis_url: str, key_prefix: str) -> None:
    models = tmp_path / "models.toml"
    models.write_text(body)
    one_clear_line(worker(models, kafka_bootstrap, redis_url, key_prefix), *needles)


def test_rules_naming_a_column_the_reference_lacks(tmp_path: Path, kafka_bootstrap: str,
                                                   redis_url: str, key_prefix: str) -> None:
    rng = np.random.default_rng(0)
    client = redis.Redis.from_url(redis_url)
    ReferenceStore(client, key_prefix).put(
        build_reference([{"age": list(rng.normal(size=500))}], model="m", version="default",
                        created="2026-11-23T00:00:00Z", chunks=0), "m")
    client.close()
    models = tmp_path / "models.toml"
    models.write_text('[models.m]\nrules = { columns = { income = { psi = 0.1 } } }\n')
    one_clear_line(worker(models, kafka_bootstrap, redis_url, key_prefix),
                   "unknown column(s) ['income']", "['age']")


def test_range_on_a_non_numeric_column(tmp_path: Path, kafka_bootstrap: str, redis_url: str,
                                       key_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    ReferenceStore(client, key_prefix).put(
        build_reference([{"country": ["DE", "FR"] * 100}], model="m", version="default",
                        created="2026-11-23T00:00:00Z", chunks=0), "m")
    client.close()
    models = tmp_path / "models.toml"
    models.write_text('[models.m]\nranges = { country = [0, 1] }\n')
    one_clear_line(worker(models, kafka_bootstrap, redis_url, key_prefix),
                   "ranges need numeric columns", "country")


def test_lease_shorter_than_interval(tmp_path: Path, kafka_bootstrap: str, redis_url: str,
                                     key_prefix: str) -> None:
    models = tmp_path / "models.toml"
    models.write_text("[models.m]\n")
    one_clear_line(worker(models, kafka_bootstrap, redis_url, key_prefix,
                          "--evaluate-interval", "5s", "--evaluator-lease", "2s"),
                   "--evaluator-lease")


def test_status_of_an_unknown_model(redis_url: str, key_prefix: str) -> None:
    result = subprocess.run([*CLI, "status", "--model", "nope", "--redis-url", redis_url,
                             "--key-prefix", key_prefix], capture_output=True, text=True,
                            timeout=60)
    one_clear_line(result, "unknown model 'nope'")


def test_unreachable_redis_is_one_line() -> None:
    result = subprocess.run([*CLI, "reference", "list", "--redis-url", "redis://127.0.0.1:1/0"],
                            capture_output=True, text=True, timeout=60)
    one_clear_line(result, "cannot reach Redis")
