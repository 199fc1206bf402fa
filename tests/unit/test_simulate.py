"""The simulator: reproducible, drift does what it says, every malformed kind fails decoding."""

from __future__ import annotations

import itertools
import json
import re
from datetime import datetime
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
    SimLabel,
    count_columns,
    generate_events,
    generate_labelled,
    generate_payloads,
    generate_records,
)
from streams.simulate_run import Flush, LabelledStream, LabelOut, pace, write_training
from streams.simulate_spec import (
    BAD_KINDS,
    LabelDelay,
    SimSpec,
    build_spec,
    parse_delay,
    parse_drift,
    parse_performance,
    parse_tasks,
)

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


# -- ground truth (issue #13) -------------------------------------------------------------

LABEL_MODEL = r"^[A-Za-z0-9._-]{1,128}$"


def label_pairs(spec: SimSpec, n: int, seed: int = 0
                ) -> list[tuple[dict[str, Any], SimLabel | None]]:
    return [(r.event, lab) for chunk in generate_labelled(spec, n, T0, seed) for r, lab in chunk
            if r.event is not None]


def assert_label_contract(value: bytes) -> dict[str, Any]:
    """A label event as DESIGN.md §1 has it: model, id, label number|string|bool, ts."""
    event = json.loads(value)
    assert set(event) == {"model", "id", "label", "ts"}
    assert re.match(LABEL_MODEL, event["model"]) and isinstance(event["id"], str)
    assert isinstance(event["label"], int | float | str | bool)
    ts = event["ts"]
    if isinstance(ts, str):
        assert datetime.fromisoformat(ts).tzinfo is not None
    else:
        assert isinstance(ts, int | float) and ts > 0
    return dict(event)


def accuracy(pairs: list[tuple[dict[str, Any], SimLabel | None]]) -> tuple[float, float, int]:
    """(realized accuracy, expected calibrated accuracy E[max(s, 1-s)], n labelled)."""
    s = np.array([e["prediction"] for e, lab in pairs if lab is not None])
    y = np.array([lab.label for _, lab in pairs if lab is not None])
    right = (s >= 0.5) == (y == 1)
    return float(right.mean()), float(np.maximum(s, 1 - s).mean()), len(s)


def test_binary_labels_are_calibrated_then_accuracy_falls_as_requested() -> None:
    n = 120_000  # 0..120 s of event time; the change starts at 60 s
    spec = build_spec(["credit-risk"], 5, 2, performance=["accuracy=-0.15@60s"])
    pairs = label_pairs(spec, n, seed=3)
    before, after = pairs[: n // 2], pairs[n // 2:]
    got, expected, k = accuracy(before)
    tol = 4 * 0.5 / np.sqrt(k)  # 4 sd of a mean of Bernoulli draws
    assert abs(got - expected) < tol, (got, expected, tol)
    got_after, expected_after, k = accuracy(after)
    assert abs((expected_after - got_after) - 0.15) < 4 * 0.5 / np.sqrt(k)
    # calibrated: within score bins the positive rate is the mean score
    s = np.array([e["prediction"] for e, _ in before])
    y = np.array([lab.label for _, lab in before if lab is not None])
    for lo, hi in ((0.0, 0.45), (0.45, 0.55), (0.55, 1.0)):
        sel = (s >= lo) & (s < hi)
        assert abs(y[sel].mean() - s[sel].mean()) < 4 * 0.5 / np.sqrt(sel.sum())


def test_accuracy_drop_holds_under_input_drift_and_ends() -> None:
    n = 90_000
    drift = ["income:scale=4@30s", "age:scale=4@30s", "tenure:scale=4@30s"]
    plain = label_pairs(build_spec(["m"], 5, 2, drifts=drift), n, seed=4)
    worse = label_pairs(build_spec(["m"], 5, 2, drifts=drift,
                                   performance=["m:accuracy=-0.2@30s..60s"]), n, seed=4)
    assert [e for e, _ in plain] == [e for e, _ in worse]  # same predictions either way
    for part in (slice(0, 30_000), slice(60_000, n)):  # calibrated, drifted inputs or not
        got, expected, k = accuracy(plain[part])
        assert abs(got - expected) < 4 * 0.5 / np.sqrt(k)
        assert accuracy(worse[part])[0] == got  # outside the change: the very same labels
    got, expected, k = accuracy(worse[30_000:60_000])
    assert abs((expected - got) - 0.2) < 4 * 0.5 / np.sqrt(k)
    # the drift itself moved the scores (so the calibrated accuracy differs from before)
    assert abs(accuracy(plain[30_000:60_000])[1] - accuracy(plain[:30_000])[1]) > 0.01


def test_regression_labels_add_noise_then_error() -> None:
    n = 60_000
    spec = build_spec(["demand"], 5, 2, tasks="regression", label_noise=10.0,
                      performance=["mae=+5@20s..40s", "demand/rmse=+5@40s"])
    pairs = label_pairs(spec, n, seed=5)
    err = np.array([lab.label - e["prediction"] for e, lab in pairs if lab is not None])
    preds = np.array([e["prediction"] for e, _ in pairs])
    assert preds.std() > 5 and not ((preds >= 0) & (preds <= 1)).all()  # not a probability
    parts = err[:20_000], err[20_000:40_000], err[40_000:]
    sd_mae = 10 * np.sqrt(1 - 2 / np.pi) / np.sqrt(20_000)
    assert abs(np.abs(parts[0]).mean() - 10 * np.sqrt(2 / np.pi)) < 4 * sd_mae + 0.01
    assert abs(np.abs(parts[1]).mean() - (10 * np.sqrt(2 / np.pi) + 5)) < 6 * sd_mae + 0.01
    assert abs(np.sqrt((parts[2] ** 2).mean()) - 15) < 0.3
    assert abs(parts[0].mean()) < 4 * 10 / np.sqrt(20_000)  # unbiased


def test_label_ratio_and_delay_distributions() -> None:
    n = 40_000
    for delay, check in (
        ("30s", lambda d: np.allclose(d, 30.0)),
        ("exp:30s", lambda d: abs(d.mean() - 30) < 4 * 30 / np.sqrt(len(d))
         and abs(np.median(d) - 30 * np.log(2)) < 1.0 and d.min() >= 0),
        ("uniform:10s..2m", lambda d: d.min() >= 10 and d.max() <= 120
         and abs(d.mean() - 65) < 4 * 110 / np.sqrt(12 * len(d))
         and abs(np.quantile(d, 0.25) - 37.5) < 2.0),
    ):
        spec = build_spec(["a", "b"], 3, 1, label_ratio=0.8, label_delay=delay)
        labels = [lab for _, lab in label_pairs(spec, n, seed=6) if lab is not None]
        assert abs(len(labels) / n - 0.8) < 4 * np.sqrt(0.8 * 0.2 / n)
        d = np.array([lab.ts - lab.prediction_ts for lab in labels])
        assert check(d), delay
    # a smaller ratio keeps a subset of the same labels (draws do not depend on the plan)
    many = {lab.id for _, lab in label_pairs(build_spec(["a"], 3, 1, label_ratio=0.8), 5000)
            if lab}
    few = {lab.id for _, lab in label_pairs(build_spec(["a"], 3, 1, label_ratio=0.3), 5000)
           if lab}
    assert few < many and abs(len(few) / 5000 - 0.3) < 0.03


def stream_items(spec: SimSpec, n: int, flush: Flush, seed: int = 0
                 ) -> list[tuple[str, dict[str, Any] | None, bytes]]:
    out: list[tuple[str, dict[str, Any] | None, bytes]] = []
    for item in LabelledStream(spec, n, T0, seed, flush=flush):
        if isinstance(item, LabelOut):
            out.append(("label", assert_label_contract(item.value), item.key))
        else:
            _, value = item
            try:
                decoded: dict[str, Any] | None = msgspec.json.decode(value)
                decode_event(value)
            except (InvalidEvent, msgspec.DecodeError):
                decoded = None
            out.append(("prediction", decoded, value))
    return out


def as_epoch(ts: str | float) -> float:
    return datetime.fromisoformat(ts).timestamp() if isinstance(ts, str) else float(ts)


@pytest.mark.parametrize("flush", ["due", "all"])
def test_stream_is_in_event_time_order_and_labels_follow_their_predictions(
        flush: Flush) -> None:
    n = 12_000  # 12 s of event time; delays up to 3 s
    spec = build_spec(["a", "b"], 3, 1, bad_ratio=0.02, label_ratio=0.7,
                      label_delay="uniform:0s..3s")
    items = stream_items(spec, n, flush, seed=8)
    preds = [(i, e) for i, (kind, e, _) in enumerate(items) if kind == "prediction"]
    assert [v for k, _, v in items if k == "prediction"] == [
        r.value for r in generate_records(spec, n, T0, seed=8)]  # the same bytes
    seen: dict[tuple[str, str], tuple[int, float]] = {}
    last = float("-inf")
    for i, (kind, e, key) in enumerate(items):
        if e is None:  # malformed prediction
            continue
        ts = as_epoch(e["ts"])
        assert ts >= last - 1e-9, (i, kind)  # event time never goes back
        last = ts
        if kind == "prediction":
            seen[(e["model"], e["id"])] = (i, ts)
            continue
        assert key == e["id"].encode()
        at, pred_ts = seen[(e["model"], e["id"])]  # its prediction came first
        assert at < i and ts >= pred_ts and ts - pred_ts <= 3.0 + 1e-3
    labels = [e for k, e, _ in items if k == "label"]
    good = sum(1 for _, e in preds if e is not None)
    assert len({(e["model"], e["id"]) for e in labels if e}) == len(labels)  # one per id
    if flush == "all":
        assert abs(len(labels) / good - 0.7) < 4 * np.sqrt(0.21 / good)
    else:  # nothing after the last prediction: about 1.5 s x 1000/s x 0.7 are missing
        last_pred = max(as_epoch(e["ts"]) for _, e in preds if e)
        assert all(as_epoch(e["ts"]) <= last_pred for e in labels if e)
        missing = 0.7 * good - len(labels)
        assert 700 < missing < 1400


def test_pace_sends_labels_apart_and_stops_cleanly() -> None:
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    spec = build_spec(["a"], 2, 1, events_per_s=100.0, label_delay="1s")
    preds: list[bytes] = []
    labels: list[bytes] = []
    stream = LabelledStream(spec, None, T0, flush="all")
    stats = pace(stream, lambda v, k: preds.append(v), rate=100.0, duration_s=5.0,
                 clock=lambda: now[0], sleep=sleep, send_label=lambda v, k: labels.append(v),
                 rest=stream.rest)
    assert stats.sent == len(preds) == 500  # the rate counts predictions only
    assert stats.labels == len(labels) == 500  # flush "all": every sent prediction's label
    sent_ids = {json.loads(v)["id"] for v in preds}
    assert {json.loads(v)["id"] for v in labels} == sent_ids  # none for the unsent one
    due = LabelledStream(spec, 500, T0)
    got = [x for x in due if isinstance(x, LabelOut)]
    assert len(got) == 400  # labels of predictions 0..399 (1 s before the last one) are due


@pytest.mark.parametrize("text,expected", [
    ("accuracy=-0.15@10m", ("accuracy", -0.15, 600.0, float("inf"), None)),
    ("fraud:accuracy=-0.1@1m..2m", ("accuracy", -0.1, 60.0, 120.0, "fraud")),
    ("m.v2/mae=+5@30s", ("mae", 5.0, 30.0, float("inf"), "m.v2")),
    ("rmse=2.5@0..90", ("rmse", 2.5, 0.0, 90.0, None)),
])
def test_parse_performance(text: str, expected: tuple[object, ...]) -> None:
    c = parse_performance(text)
    assert (c.metric, c.amount, c.start_s, c.end_s, c.model) == expected


@pytest.mark.parametrize("text,match", [
    ("accuracy=-0.15", "expected"), ("precision=-0.1@1s", "expected"),
    ("accuracy=0.1@1s", "can only fall"), ("accuracy=-0.6@1s", "at most 0.5"),
    ("accuracy=-0.1@5s..2s", "ends before"), ("mae=1.2.3@1s", "amount"),
])
def test_parse_performance_rejects(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_performance(text)


def test_parse_delay_and_tasks() -> None:
    assert parse_delay("30s") == LabelDelay("fixed", 30.0, 30.0)
    assert parse_delay("fixed:2m") == LabelDelay("fixed", 120.0, 120.0)
    assert parse_delay("exp:500ms").mean_s == 0.5
    assert parse_delay(" uniform:10s..2m ") == LabelDelay("uniform", 10.0, 120.0)
    for bad in ("-1s", "exp:", "uniform:10s", "uniform:2m..10s", "gamma:3s", "soon"):
        with pytest.raises(ConfigError, match="label delay"):
            parse_delay(bad)
    assert parse_tasks("regression", ["a", "b"]) == {"a": "regression", "b": "regression"}
    assert parse_tasks("regression,b=binary", ["a", "b"]) == {"a": "regression", "b": "binary"}
    with pytest.raises(ConfigError, match="bad task"):
        parse_tasks("ranking", ["a"])
    with pytest.raises(ConfigError, match="unknown model"):
        parse_tasks("c=binary", ["a"])


def test_spec_rejects_performance_that_does_not_fit() -> None:
    with pytest.raises(ConfigError, match="regression models"):
        build_spec(["a"], 2, 1, performance=["mae=+1@1s"])
    with pytest.raises(ConfigError, match="binary models"):
        build_spec(["a", "b"], 2, 1, tasks="b=regression", performance=["b:accuracy=-0.1@1s"])
    with pytest.raises(ConfigError, match="unknown model"):
        build_spec(["a"], 2, 1, performance=["zz:accuracy=-0.1@1s"])
    with pytest.raises(ConfigError, match="label ratio"):
        build_spec(["a"], 2, 1, label_ratio=1.5)
    # a fitting one among mixed tasks is fine, and training data ignores it
    spec = build_spec(["a", "b"], 2, 1, tasks="b=regression",
                      performance=["accuracy=-0.1@0s", "b:mae=+1@0s"])
    assert len(spec.labels.changes) == 2


def test_training_labels_column(tmp_path: Path) -> None:
    spec = build_spec(["a", "b"], 3, 1, tasks="b=regression",
                      performance=["a:accuracy=-0.5@0s"], label_ratio=0.1)
    files = write_training(spec, tmp_path / "{model}.parquet", 20_000, seed=2, labels=True)
    a = pq.read_table(files[0]).to_pydict()
    assert len(a["label"]) == 20_000 and set(a["label"]) == {0, 1}  # every row, ints
    s, y = np.array(a["prediction"]), np.array(a["label"])
    right = ((s >= 0.5) == (y == 1)).mean()
    assert abs(right - np.maximum(s, 1 - s).mean()) < 4 * 0.5 / np.sqrt(20_000)  # no change
    b = pq.read_table(files[1]).to_pydict()
    assert abs(np.abs(np.array(b["label"]) - np.array(b["prediction"])).mean()
               - 10 * np.sqrt(2 / np.pi)) < 0.3


def test_cli_labels_to_files_and_env_twins(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    out, lab = tmp_path / "p.jsonl", tmp_path / "l.jsonl"
    argv = ["simulate", "--count", "3000", "--rate", "max", "--seed", "1", "--start-ts",
            str(T0), "--out", str(out), "--labels-out", str(lab), "--no-progress",
            "--label-flush", "all"]
    monkeypatch.setenv("DRIFTLINE_LABEL_RATIO", "0.5")
    monkeypatch.setenv("DRIFTLINE_LABEL_DELAY", "exp:1s")
    monkeypatch.setenv("DRIFTLINE_PERFORMANCE", "accuracy=-0.1@1s;accuracy=-0.1@2s")
    assert main(argv) == 0
    preds = [json.loads(x) for x in out.read_text().splitlines()]
    labels = [assert_label_contract(x.encode()) for x in lab.read_text().splitlines()]
    assert len(preds) == 3000 and 1300 < len(labels) < 1700
    assert f"wrote 3000 events and {len(labels)} labels" in capsys.readouterr().err
    assert {x["id"] for x in labels} <= {x["id"] for x in preds}
    assert main([*argv[:-2], "--label-ratio", "0"]) == 0  # the flag wins over the env
    assert lab.read_text() == ""
    monkeypatch.setenv("DRIFTLINE_LABEL_DELAY", "soon")
    assert main(argv) == 2  # a bad env twin: one line, exit 2
    assert "DRIFTLINE_LABEL_DELAY" in capsys.readouterr().err
    monkeypatch.delenv("DRIFTLINE_LABEL_DELAY")
    monkeypatch.setenv("DRIFTLINE_PERFORMANCE", "accuracy=+0.1@1s")
    assert main(argv) == 2
    assert "can only fall" in capsys.readouterr().err
    monkeypatch.delenv("DRIFTLINE_PERFORMANCE")
    assert main(["simulate", "--labels-out", str(lab), "--count", "1"]) == 2
