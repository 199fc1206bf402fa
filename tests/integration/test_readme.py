"""The README's quick tour runs as written (the block after the readme-test marker)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def tour() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- readme-test[^>]*-->\n```sh\n(.*?)```", text, re.S)
    assert block, "README lost its readme-test block"
    return [ln for ln in block.group(1).splitlines() if ln.strip()]


def test_readme_quick_tour_runs(tmp_path: Path) -> None:
    commands = tour()
    assert len(commands) >= 4
    # the `driftline` of this interpreter's environment (the project venv), first on PATH
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for cmd in commands:
        done = subprocess.run(cmd, shell=True, cwd=tmp_path, capture_output=True, text=True,
                              timeout=300, env=env)
        # compare exits 1 when it finds drift; anything else non-zero is a failure
        ok = (0, 1) if cmd.startswith("driftline compare") else (0,)
        assert done.returncode in ok, f"{cmd}\n{done.stderr}"
    report = json.loads((tmp_path / "drift.json").read_text())
    assert report["rows"] == 20000
    assert set(report["columns"]) >= {"age", "income", "country"}
    # same distributions, different seed: nothing may drift
    assert report["drifted"] == []


def test_readme_models_file_is_valid(tmp_path: Path) -> None:
    from driftline.alerting import load_alerting
    from driftline.models import load_catalog

    text = (REPO / "README.md").read_text()
    block = re.search(r"```toml\n(.*?)```", text, re.S)
    assert block
    path = tmp_path / "models.toml"
    path.write_text(block.group(1))
    catalog = load_catalog(path)
    assert catalog.models["credit-risk"].window_ms == 300_000
    models, _ = load_alerting(path)
    rules = models["credit-risk"]
    assert rules.policy.for_evaluations == 2 and rules.policy.repeat_s == 3600
    assert rules.rules.correction == "bh"
    assert rules.rules.column_thresholds["income"]["psi"] == 0.1
    assert rules.ranges == {"age": (18.0, 120.0), "income": (0.0, None)}


def test_readme_performance_table_is_valid(tmp_path: Path) -> None:
    from driftline.alerting import load_alerting
    from driftline.models import load_catalog

    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", text, re.S)
    perf = [b for b in blocks if "[models.credit-risk.performance]" in b]
    assert perf, "README lost its performance table example"
    path = tmp_path / "models.toml"
    path.write_text(blocks[0] + perf[0])
    spec = load_catalog(path).models["credit-risk"].labels
    assert spec is not None and spec.task == "binary" and spec.label_ttl_ms == 7 * 86_400_000
    cfg = load_alerting(path)[0]["credit-risk"].performance
    assert cfg is not None and cfg.detector == "adwin" and cfg.min_label_ratio == 0.5
    assert cfg.rules.rules["accuracy"] == {"min": 0.8}


def test_readme_versions_and_segments_block_is_valid(tmp_path: Path) -> None:
    from driftline.alerting import load_alerting
    from driftline.models import load_catalog

    text = (REPO / "README.md").read_text()
    block = [b for b in re.findall(r"```toml\n(.*?)```", text, re.S) if "compare_versions" in b]
    assert block, "README lost its versions / segments example"
    path = tmp_path / "models.toml"
    path.write_text(block[0])
    spec = load_catalog(path).models["credit-risk"]
    assert spec.segments == {"country": frozenset()} and spec.segment_top_k == 10
    assert load_alerting(path)[0]["credit-risk"].compare_versions == ("7", "8")
