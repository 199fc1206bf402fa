"""The simulator: reproducible, drift does what it says, every malformed kind fails decoding."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow.parquet as pq
import pytest

from driftline.cli import main
from sketches.errors import ConfigError
from streams.durations import parse_duration_s
from streams.events import InvalidEvent, decode_event
from streams.simulate import (
    CHUNK,
    count_columns,
    generate_events,
    generate_payloads,
    generate_records,
)
from streams.simulate_run import pace, write_training
from streams.simulate_spec import BAD_KINDS, SimSpec, build_spec, parse_drift

T0 = 1_800_000_000.0


def spec_(**kw: Any) -> SimSpec:
    return build_spec(["credit-risk", "fraud"], 5, 2, **kw)


def column(events: list[dict[str, Any]], name: str, model: str | None = None) -> np.ndarray:
    vals = [e["features"][name] for e in events if model is None or e["model"] == model]
    return np.array([v for v in vals if v is not None], dtype=float)


def test_same_seed_same_stream_and_prefix_stable() -> None:
    spec = spec_(bad_ratio=0.05)
    a = [r.value for r in generate_records(spec, 5000, T0, seed=7)]
    b = [r.value for r in generate_records(spec, 5000, T0, seed=7)]
    c = [r.value for r in generate_records(spec, 100, T0, seed=7)]
    d = [r.value for r in generate_records(spec, 100, T0, seed=8)]
    assert a == b and a[:100] == c and c != d


def test_events_are_valid_contract_events() -> None:
    spec = spec_()
    events = list(generate_events(spec, 3000, T0, seed=1))
    assert len(events) == 3000
    for e in events[:500]:
        decoded = decode_event(msgspec.json.encode(e))
        assert decoded.model in ("credit-risk", "fraud")
        assert set(e["features"]) == {"age", "income", "tenure", "balance", "num_accounts",
                                      "country", "device"}
        assert 0.0 <= e["prediction"] <= 1.0
    assert events[0]["ts"] == "2027-01-15T08:00:00.000Z"
    assert events[1000]["ts"] == "2027-01-15T08:00:01.000Z"  # 1000 events/s of event time
    assert len({e["id"] for e in events}) == 3000


def test_records_good_ones_equal_events_and_bad_ones_fail_decoding() -> None:
    spec = spec_(bad_ratio=0.02)
    events = list(generate_events(spec, 2 * CHUNK, T0, seed=3))
    records = list(generate_records(spec, 2 * CHUNK, T0, seed=3))
    bad = [r for r in records if r.bad]
    assert 0.01 * len(records) < len(bad) < 0.03 * len(records)
    assert {r.bad for r in bad} == set(BAD_KINDS)
    for r in records:
        if r.event is not None:
            assert r.event == events[r.index]
            continue
        if r.bad == "unknown_model":  # decodes; the processor rejects it (not configured)
            assert decode_event(r.value).model not in ("credit-risk", "fraud")
            continue
        with pytest.raises(InvalidEvent):
            decode_event(r.value)


def test_shift_scale_nulls_unseen_drift() -> None:
    spec = spec_(drifts=["income:shift=0.5sd@2s", "credit-risk/age:scale=2@2s",
                         "tenure:nulls=0.3@2s..4s", "country:unseen=0.1@2s"])
    base = spec_()
    n = 6000  # 0..6 s of event time
    drifted = list(generate_events(spec, n, T0, seed=5))
    plain = list(generate_events(base, n, T0, seed=5))
    assert drifted[:2000] == plain[:2000]  # drift starts at 2 s
    before, after = drifted[:2000], drifted[2000:]
    model = spec.models[0]
    sd = model.numeric[1].sd
    shift = column(after, "income", "credit-risk").mean() - column(plain[2000:], "income",
                                                                   "credit-risk").mean()
    assert shift == pytest.approx(0.5 * sd, rel=0.02)
    assert column(after, "age", "credit-risk").std() == pytest.approx(
        2 * column(before, "age", "credit-risk").std(), rel=0.15)
    assert column(after, "age", "fraud").std() == pytest.approx(
        column(before, "age", "fraud").std(), rel=0.15)
    nulls = np.mean([e["features"]["tenure"] is None for e in drifted[2000:4000]])
    assert nulls == pytest.approx(0.3, abs=0.04)
    assert np.mean([e["features"]["tenure"] is None for e in drifted[4000:]]) < 0.03
    unseen = np.mean([str(e["features"]["country"]).startswith("country_unseen")
                      for e in after])
    assert unseen == pytest.approx(0.1 * 0.99, abs=0.02)
    assert not any(str(e["features"]["country"]).startswith("country_unseen") for e in before)


def test_payloads_match_records_and_counts() -> None:
    spec = build_spec(["m"], 20, 3)
    payloads = list(itertools.chain.from_iterable(generate_payloads(spec, 5000, T0, 2)))
    records = list(generate_records(spec, 5000, T0, 2))
    assert payloads == [(r.key, r.value) for r in records]
    counts = count_columns(r.event for r in records if r.event)
    assert counts["m"]["__events__"]["count"] == 5000
    assert len(counts["m"]) == 24
    missing = counts["m"]["num_10"]["missing"]
    assert 20 < missing < 90  # 1 % baseline nulls


@pytest.mark.parametrize("text,expected", [
    ("income:shift=0.5sd@60s", ("income", "shift", 0.5, 60.0, float("inf"), True, None)),
    ("m1/age:scale=1.5@30s", ("age", "scale", 1.5, 30.0, float("inf"), False, "m1")),
    ("tenure:nulls=0.2@10s..1m", ("tenure", "nulls", 0.2, 10.0, 60.0, False, None)),
    ("country:unseen=0.05@20", ("country", "unseen", 0.05, 20.0, float("inf"), False, None)),
    ("income:shift=-1000@1h", ("income", "shift", -1000.0, 3600.0, float("inf"), False, None)),
])
def test_parse_drift(text: str, expected: tuple[object, ...]) -> None:
    d = parse_drift(text)
    assert (d.feature, d.kind, d.amount, d.start_s, d.end_s, d.in_sd, d.model) == expected


@pytest.mark.parametrize("text", ["income", "income:shift=1", "income:grow=1@1s",
                                  "tenure:nulls=2@1s", "age:scale=2sd@1s", "a:shift=1@5s..2s"])
def test_parse_drift_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_drift(text)


def test_spec_rejects_unknown_feature_and_bad_ratios() -> None:
    with pytest.raises(ConfigError, match="unknown feature"):
        spec_(drifts=["salary:shift=1@1s"])
    with pytest.raises(ConfigError):
        spec_(bad_ratio=1.5)
    assert parse_duration_s("2m") == 120.0


def test_pace_with_injected_clock() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    sent: list[bytes] = []
    msgs = [(None, str(i).encode()) for i in range(100)]
    stats = pace(msgs, lambda v, k: sent.append(v), rate=50.0, clock=lambda: now[0], sleep=sleep)
    assert stats.sent == 100 and len(sent) == 100
    assert now[0] == pytest.approx(99 / 50.0)
    stats = pace(iter(msgs), lambda v, k: None, rate=50.0, duration_s=1.0,
                 clock=lambda: now[0], sleep=sleep)
    assert stats.sent == 50


def test_training_parquet_and_jsonl(tmp_path: Path) -> None:
    spec = spec_(drifts=["income:shift=3sd@0s"], bad_ratio=0.5)
    files = write_training(spec, tmp_path / "{model}.parquet", 2000, seed=1)
    assert [f.name for f in files] == ["credit-risk.parquet", "fraud.parquet"]
    table = pq.read_table(files[0])
    assert table.num_rows == 2000
    assert set(table.column_names) == {"age", "income", "tenure", "balance", "num_accounts",
                                       "country", "device", "prediction"}
    income = np.array([v for v in table.column("income").to_pylist() if v is not None])
    model = spec.models[0]
    assert abs(income.mean() - model.numeric[1].mean) < 0.1 * model.numeric[1].sd  # undrifted
    one = build_spec(["m"], 2, 1)
    (path,) = write_training(one, tmp_path / "t.jsonl", 10)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 10 and set(rows[0]) == {"age", "income", "country", "prediction"}
    with pytest.raises(ConfigError):
        write_training(spec, tmp_path / "x.parquet", 10)


def test_cli_out_and_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "events.jsonl"
    argv = ["simulate", "--count", "50", "--rate", "max", "--seed", "4", "--start-ts", str(T0),
            "--out", str(out), "--bad-ratio", "0.1", "--no-progress",
            "--drift", "income:shift=0.5sd@0s"]
    assert main(argv) == 0
    first = out.read_bytes()
    assert main(argv) == 0
    assert out.read_bytes() == first and first.count(b"\n") >= 50
    assert main(["simulate", "--training-out", str(tmp_path / "r.parquet"), "--rows", "100",
                 "--numeric", "3", "--categorical", "1"]) == 0
    assert pq.read_table(tmp_path / "r.parquet").num_rows == 100
    assert main(["simulate", "--drift", "nope", "--out", "-", "--count", "1"]) == 2
