"""The models file loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftline.models import load_catalog, parse_duration_ms
from sketches.errors import ConfigError
from sketches.types import ColumnType


def test_durations() -> None:
    assert parse_duration_ms("5m", "w") == 300_000
    assert parse_duration_ms("1.5h", "w") == 5_400_000
    assert parse_duration_ms("250ms", "w") == 250
    assert parse_duration_ms(30, "w") == 30_000
    with pytest.raises(ConfigError):
        parse_duration_ms("soon", "w")


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_file_defaults_overrides_and_unknown_models(tmp_path: Path, suffix: str) -> None:
    text = {
        ".toml": '[defaults]\nwindow = "10m"\nretention = "2h"\n'
                 '[models.a]\n[models.b]\nwindow = "1m"\ntypes = { zip = "categorical" }\n',
        ".yaml": "defaults: {window: 10m, retention: 2h}\n"
                 "models:\n  a: {}\n  b: {window: 1m, types: {zip: categorical}}\n",
    }[suffix]
    path = tmp_path / f"models{suffix}"
    path.write_text(text)
    cat = load_catalog(path)
    a, b = cat.get("a"), cat.get("b")
    assert a is not None and (a.window_ms, a.retention_ms) == (600_000, 7_200_000)
    assert b is not None and (b.window_ms, b.retention_ms) == (60_000, 7_200_000)
    assert b.types == {"zip": ColumnType.CATEGORICAL}
    assert cat.get("other") is None
    assert cat.max_horizon_ms == 600_000 + 7_200_000


def test_no_file_accepts_any_model_with_defaults() -> None:
    spec = load_catalog(None).get("anything")
    assert spec is not None and spec.window_ms == 300_000 and spec.retention_ms == 3_600_000


@pytest.mark.parametrize("text", ['[models.a]\nwindow = "forever"\n', "[models]\n",
                                  '[models."bad name"]\n', '[models.a]\ntypes = { x = "y" }\n',
                                  "[other]\n", "not toml ["])
def test_bad_files(tmp_path: Path, text: str) -> None:
    path = tmp_path / "m.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_catalog(path)
