"""Shared set-up of the end-to-end tests: a model with a reference and a models file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MODEL = "credit-risk"
CLI = [sys.executable, "-m", "driftline.cli"]


def cli(*args: str) -> str:
    out = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout + out.stderr


def prepare_model(tmp_path: Path, redis_args: list[str], window_s: int = 5) -> Path:
    """Profile synthetic training data into a reference in Redis; return a models file
    with ``window_s`` windows and measurement window."""
    cli("simulate", "--training-out", str(tmp_path / "train.parquet"), "--rows", "30000",
        "--models", MODEL, "--seed", "1", "--no-progress")
    cli("profile", str(tmp_path / "train.parquet"), "--out", str(tmp_path / "ref.bin"),
        "--model", MODEL)
    cli("reference", "put", str(tmp_path / "ref.bin"), "--model", MODEL, *redis_args)
    models = tmp_path / "models.toml"
    models.write_text(
        f'[defaults]\nwindow = "{window_s}s"\nretention = "30s"\nmeasure = "{window_s}s"\n'
        f"[models.{MODEL}]\nmin_count = 200\n"
    )
    return models
