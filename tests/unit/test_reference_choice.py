"""``[models.M.reference]``: parsing, and the pure arithmetic of a trailing baseline."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftline.alerting import load_alerting
from driftline.models import load_catalog
from sketches.baseline import ReferenceChoice
from sketches.errors import ConfigError

H = 3_600_000
W = 600_000
XMAS = (1_798_070_400_000, 1_798_329_600_000)  # 2026-12-24T00:00Z .. 2026-12-27T00:00Z

FILE = """
[models.credit-risk]
window = "10m"
[models.credit-risk.reference]
kind = "trailing"
span = "24h"
offset = "7d"
exclude = [["2026-12-24T00:00:00Z", "2026-12-27T00:00:00+00:00"]]
min_rows = 500

[models.plain]
"""


def test_the_models_file_takes_a_reference_table(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(FILE)
    load_catalog(path)  # the catalog accepts the key too
    models, fallback = load_alerting(path)
    assert models["credit-risk"].reference == ReferenceChoice(
        "trailing", span_ms=24 * H, offset_ms=7 * 24 * H, exclude=(XMAS,), min_rows=500)
    assert models["plain"].reference == ReferenceChoice() == fallback.reference
    assert not models["plain"].reference.trailing


@pytest.mark.parametrize("table", [
    'kind = "rolling"', 'span = "0s"', "min_rows = 0", 'colour = "red"',
    'exclude = [["2026-12-27T00:00:00Z", "2026-12-24T00:00:00Z"]]',
    'exclude = [["2026-12-24T00:00:00", "2026-12-27T00:00:00"]]',  # no zone
    'exclude = [["yesterday", "today"]]', 'exclude = "2026-12-24"',
])
def test_bad_reference_tables(tmp_path: Path, table: str) -> None:
    path = tmp_path / "models.toml"
    path.write_text(f"[models.m]\n[models.m.reference]\n{table}\n")
    with pytest.raises(ConfigError, match="reference"):
        load_alerting(path)


def test_the_baseline_range_sits_on_the_window_grid() -> None:
    day = ReferenceChoice("trailing", span_ms=24 * H)
    start = 100 * H + 7 * 60_000  # the measurement starts 7 min into an hour
    assert day.bounds(start) == (start - 24 * H, start)
    # the windows starting in the range: from the first at or after its start
    assert day.grid(start, W) == (76 * H + W, 100 * H + W)
    # unchanged while the measurement moves within a window: the cache key
    assert day.grid(start + 2 * 60_000, W) == day.grid(start, W)
    assert day.grid(start + 3 * 60_000 + 1, W) != day.grid(start, W)
    week = ReferenceChoice("trailing", span_ms=H, offset_ms=7 * 24 * H - H)
    assert week.grid(100 * H, W) == (100 * H - 7 * 24 * H, 101 * H - 7 * 24 * H)


def test_items_are_taken_or_left_out_whole() -> None:
    holiday = ReferenceChoice("trailing", span_ms=24 * H, exclude=((5 * H + 1, 6 * H),))
    grid = (0, 24 * H)
    assert holiday.takes(grid, 4 * H, H) is None
    assert holiday.takes(grid, 5 * H, W) == "excluded"  # overlaps by a millisecond
    assert holiday.takes(grid, 5 * H, H) == "excluded"  # an hourly record: left out whole
    assert holiday.takes(grid, 6 * H, W) is None  # ranges are half-open
    assert holiday.takes(grid, 23 * H + 50 * 60_000, W) is None
    assert holiday.takes(grid, 23 * H + 30 * 60_000, H) == "outside"  # reaches past the end
    assert holiday.takes(grid, 0, 24 * H) == "excluded"
    assert holiday.takes(grid, -W, W) == "outside"


def test_choices_are_checked() -> None:
    with pytest.raises(ConfigError):
        ReferenceChoice("trailing", span_ms=0)
    with pytest.raises(ConfigError):
        ReferenceChoice("trailing", exclude=((2, 1),))
    with pytest.raises(ConfigError):
        ReferenceChoice("weekly")  # type: ignore[arg-type]


def test_the_readme_reference_block_is_valid(tmp_path: Path) -> None:
    import re

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = [b for b in re.findall(r"```toml\n(.*?)```", text, re.S)
              if "[models.credit-risk.reference]" in b]
    assert blocks, "README lost its reference choices example"
    path = tmp_path / "models.toml"
    path.write_text(blocks[0])
    choice = load_alerting(path)[0]["credit-risk"].reference
    assert choice == ReferenceChoice("trailing", span_ms=24 * H, exclude=(XMAS,))
