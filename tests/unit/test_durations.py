"""One duration grammar for every flag, the models file and the simulator's drift schedule."""

from __future__ import annotations

import argparse

import pytest

from driftline.models import parse_duration_ms as models_parse
from driftline.options import duration
from sketches.errors import ConfigError
from streams.durations import parse_duration_ms, parse_duration_s
from streams.simulate_spec import parse_drift


@pytest.mark.parametrize(("text", "ms"), [
    ("500ms", 500), ("2s", 2000), ("1.5m", 90_000), ("1h", 3_600_000), ("7d", 604_800_000),
    ("90", 90_000), (" 5 m ", 300_000), ("4.35s", 4350), ("0s", 0), (30, 30_000), (0.25, 250),
])
def test_grammar(text: object, ms: int) -> None:
    assert parse_duration_ms(text) == ms
    assert parse_duration_s(text) == pytest.approx(ms / 1000)


@pytest.mark.parametrize("bad", ["", "soon", "-1s", "5 minutes", "1e3s", "inf", "1.s", "5w",
                                 float("inf"), float("nan"), -1, True, None, [1]])
def test_not_durations(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"--flag: .* is not a duration"):
        parse_duration_ms(bad, "--flag")


def test_every_caller_uses_it() -> None:
    assert models_parse is parse_duration_ms  # the models file's (and --checkpoint-interval's)
    assert parse_drift("income:shift=1@500ms..2m").start_s == 0.5  # simulate --drift
    assert parse_drift("income:shift=1@500ms..2m").end_s == 120.0
    assert parse_drift("income:shift=1@1d").start_s == 86_400.0
    assert duration("500ms") == "500ms"  # argparse type of every duration flag
    with pytest.raises(argparse.ArgumentTypeError):
        duration("soon")


def test_simulate_duration_takes_milliseconds(capsys: pytest.CaptureFixture[str]) -> None:
    from driftline.cli import main

    assert main(["simulate", "--models", "m", "--rate", "1000", "--duration", "500ms",
                 "--out", "-", "--seed", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 500
