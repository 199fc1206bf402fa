"""`driftline compare --chunk`: drift per period / per row count of a file, equal to the
stream's window values for the same rows (issue 14, "Offline, by time and by column")."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from driftline.chunks import Chunker, parse_chunk, select_profile
from driftline.cli import main
from driftline.datafiles import DataBatch
from sketches.drift import compare_profiles
from sketches.errors import ConfigError
from sketches.profile import DatasetProfile
from sketches.reference import Reference
from sketches.rules import DriftRules
from sketches.types import ColumnType
from streams.core import PartitionSnapshot, Processor, Record
from streams.windows import ModelCatalog, ModelSpec

DAY_MS = 86_400_000
T0_MS = 1_795_392_000_000  # 2026-11-23T00:00:00Z, a whole UTC day
PER_DAY = 500  # < KLL k = 800: each chunk's sketch is exact, so runs agree exactly
DAYS = 10
CLI_RULES = ["--alpha", "0.001", "--correction", "bonferroni", "--min-count", "100"]
RULES = DriftRules(alpha=0.001, correction="bonferroni", min_count=100)


def rows(seed: int, days: int, start_ms: int, *, shift_from_day: int | None = None,
         per_day: int = PER_DAY) -> dict[str, np.ndarray]:
    """``per_day`` rows per UTC day in time order; income (mean 50 k, sd 10 k) shifted
    by one sd from ``shift_from_day`` on."""
    rng = np.random.default_rng(seed)
    n = days * per_day
    day = np.repeat(np.arange(days), per_day)
    ts = start_ms + day * DAY_MS + np.sort(rng.integers(0, DAY_MS, n).reshape(days, per_day),
                                           axis=1).ravel()
    income = rng.normal(50_000, 10_000, n)
    if shift_from_day is not None:
        income = income + np.where(day >= shift_from_day, 10_000.0, 0.0)
    return {
        "ts_ms": ts.astype(np.int64),
        "income": income,
        "age": rng.integers(18, 90, n),
        "country": rng.choice(["DE", "FR", "US"], n),
        "member": rng.random(n) < 0.4,
        "prediction": rng.random(n),
    }


def table(cols: dict[str, np.ndarray], ts_format: str = "arrow") -> pa.Table:
    ms = cols["ts_ms"]
    ts: pa.Array
    if ts_format == "arrow":
        ts = pa.array(ms, pa.timestamp("ms", tz="UTC"))
    elif ts_format == "arrow-naive-us":
        ts = pa.array(ms * 1000, pa.timestamp("us"))
    elif ts_format == "rfc3339":
        ts = pa.array(ms, pa.timestamp("ms", tz="UTC")).cast(pa.string())
        ts = pa.array([s.replace(" ", "T").replace("Z", "") + "Z" for s in ts.to_pylist()])
    elif ts_format == "epoch-s":
        ts = pa.array(ms / 1000)
    elif ts_format == "epoch-ms":
        ts = pa.array(ms)
    else:
        raise AssertionError(ts_format)
    body = {k: v for k, v in cols.items() if k != "ts_ms"}
    return pa.table({"event_ts": ts, **body})


def write(t: pa.Table, path: Path) -> Path:
    if path.suffix == ".parquet":
        pq.write_table(t, path)
    elif path.suffix == ".csv":
        pacsv.write_csv(t, path)
    else:
        with path.open("w") as f:
            for rec in t.to_pylist():
                f.write(json.dumps(rec) + "\n")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 20-day training file, and 10 days whose income shifts by 1 sd from day 5 on."""
    d = tmp_path_factory.mktemp("chunks")
    train = write(table(rows(1, 20, T0_MS - 30 * DAY_MS, per_day=1000)), d / "train.parquet")
    ref = d / "ref.dlr"
    assert main(["profile", str(train), "--out", str(ref), "--timestamp-column", "event_ts",
                 "--created", "2026-11-23T00:00:00Z"]) == 0
    current = write(table(rows(2, DAYS, T0_MS, shift_from_day=5)), d / "current.parquet")
    return {"train": train, "ref": ref, "current": current, "dir": d}


def compare_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    capsys.readouterr()
    code = main(["compare", *args, "--format", "json", *CLI_RULES])
    out = capsys.readouterr().out
    return code, json.loads(out)


@pytest.mark.parametrize("chunk", ["1d", "500", "24h"])
def test_drift_from_halfway_flags_only_the_later_chunks(
    data: dict[str, Path], capsys: pytest.CaptureFixture[str], chunk: str
) -> None:
    code, out = compare_json(capsys, str(data["ref"]), str(data["current"]), "--chunk", chunk,
                             "--timestamp-column", "event_ts", "--batch-rows", "333")
    assert code == 1
    chunks = out["chunks"]
    assert isinstance(chunks, list) and len(chunks) == DAYS
    assert [c["rows"] for c in chunks] == [PER_DAY] * DAYS
    assert [c["drifted"] for c in chunks] == [[]] * 5 + [["income"]] * 5
    assert all(c["insufficient_data"] == [] for c in chunks)
    # the whole-file result is there as before (fields of DESIGN.md §1)
    assert out["rows"] == DAYS * PER_DAY and out["drifted"] == ["income"]
    assert set(out["columns"]) == {"income", "age", "country", "member", "prediction"}
    first = chunks[0]
    assert set(first["columns"]) == set(out["columns"])
    assert set(first["columns"]["income"]) == set(out["columns"]["income"])
    if chunk == "500":
        assert out["chunk"] == {"by": "rows", "size": 500}
        assert [c["first_row"] for c in chunks] == list(range(0, DAYS * PER_DAY, PER_DAY))
        assert "rows_without_timestamp" not in out
    else:
        assert out["chunk"] == {"by": "time", "size": chunk, "size_ms": DAY_MS}
        assert out["rows_without_timestamp"] == 0
        assert chunks[0]["start"] == "2026-11-23T00:00:00.000Z"
        assert chunks[0]["end"] == "2026-11-24T00:00:00.000Z"
        assert chunks[9]["start"] == "2026-12-02T00:00:00.000Z"


def test_row_chunks_without_timestamps_have_null_times(
    data: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = compare_json(capsys, str(data["ref"]), str(data["current"]), "--chunk", "2500")
    assert code == 1
    chunks = out["chunks"]
    assert isinstance(chunks, list)
    assert [(c["start"], c["end"], c["rows"], c["drifted"]) for c in chunks] == [
        (None, None, 2500, []), (None, None, 2500, ["income"])]
    # an Arrow timestamp column is not a feature even without --timestamp-column
    assert "event_ts" not in out["columns"]
    plain = data["dir"] / "plain.dlr"
    assert main(["profile", str(data["train"]), "--out", str(plain)]) == 0
    assert "not features (time columns): event_ts" in capsys.readouterr().err
    assert "event_ts" not in Reference.from_bytes(plain.read_bytes()).types


def stream_windows(cols: dict[str, np.ndarray], window_ms: int) -> dict[int, DatasetProfile]:
    """The same rows as prediction events through the stream's processor core: window
    start -> the checkpoint's window profile."""
    catalog = ModelCatalog({"m": ModelSpec("m", window_ms, window_ms)}, accept_unknown=False)
    proc = Processor(catalog)
    proc.assign(PartitionSnapshot(0, epoch=1))
    records = []
    for i in range(len(cols["ts_ms"])):
        event = {
            "model": "m",
            "ts": int(cols["ts_ms"][i]) / 1000,
            "features": {"income": float(cols["income"][i]), "age": int(cols["age"][i]),
                         "country": str(cols["country"][i]), "member": bool(cols["member"][i])},
            "prediction": float(cols["prediction"][i]),
        }
        records.append(Record(0, i, 0, json.dumps(event).encode()))
    assert proc.process(records) == []
    cp = proc.checkpoint(0)
    assert cp is not None
    return {key.start_ms: DatasetProfile.from_bytes(blob) for key, blob in cp.windows.items()}


def assert_same_column(chunk: dict[str, Any], window: dict[str, Any], rel: float) -> None:
    for part in ("metrics", "error_bounds", "p_values", "thresholds"):
        a, b = chunk[part], window[part]
        assert isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys(), part
        for k in a:
            if a[k] is None or b[k] is None or rel == 0:
                assert a[k] == b[k], (part, k)
            else:
                assert a[k] == pytest.approx(b[k], rel=rel, abs=1e-15), (part, k)
    for key in ("type", "count", "rows", "drift", "verdict", "fired"):
        assert chunk[key] == window[key], key


@pytest.mark.parametrize(
    ("chunk", "batch_rows", "rel"),
    [
        ("1d", "65536", 0.0),  # one update per chunk, as the stream's one group: identical
        ("500", "65536", 0.0),
        # chunks cut across record batches: the moments are merged (Chan et al.), which
        # rounds differently in the last digits (measured 1e-14 relative)
        ("1d", "333", 1e-12),
        ("500", "333", 1e-12),
    ],
)
def test_chunk_values_equal_the_streams_window_values(
    data: dict[str, Path], capsys: pytest.CaptureFixture[str], chunk: str, batch_rows: str,
    rel: float,
) -> None:
    cols = rows(2, DAYS, T0_MS, shift_from_day=5)  # the rows of data["current"]
    windows = stream_windows(cols, DAY_MS)
    assert sorted(windows) == [T0_MS + d * DAY_MS for d in range(DAYS)]
    reference = Reference.from_bytes(data["ref"].read_bytes())
    _, out = compare_json(capsys, str(data["ref"]), str(data["current"]), "--chunk", chunk,
                          "--timestamp-column", "event_ts", "--batch-rows", batch_rows)
    chunks = out["chunks"]
    assert isinstance(chunks, list) and len(chunks) == DAYS
    for day, (start, window) in enumerate(sorted(windows.items())):
        # through JSON as the CLI's output went (None for non-finite values)
        stream: Any = json.loads(json.dumps(compare_profiles(reference, window, RULES).to_json_dict()))
        got = chunks[day]
        assert got["rows"] == stream["rows"] == PER_DAY
        assert got["drifted"] == stream["drifted"] == (["income"] if day >= 5 else [])
        assert got["columns"].keys() == stream["columns"].keys()
        for name in stream["columns"]:
            assert_same_column(got["columns"][name], stream["columns"][name], rel)
        if chunk == "1d":
            assert got["start"] == f"{np.datetime64(start, 'ms')}Z"


def test_large_chunks_agree_with_the_stream_within_the_sketch_bounds(
    data: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Past k = 800 values, KLL compacts with random coin flips (unseeded in datasketches):
    two sketches of the same rows differ, each within its documented bound of the exact
    statistic, so the file's chunk and the stream's window differ by at most both bounds."""
    cols = rows(3, 2, T0_MS, shift_from_day=1, per_day=3000)
    current = write(table(cols), data["dir"] / "large.parquet")
    windows = stream_windows(cols, DAY_MS)
    reference = Reference.from_bytes(data["ref"].read_bytes())
    _, out = compare_json(capsys, str(data["ref"]), str(current), "--chunk", "1d",
                          "--timestamp-column", "event_ts")
    chunks = out["chunks"]
    assert isinstance(chunks, list)
    assert [c["drifted"] for c in chunks] == [[], ["income"]]
    for got, window in zip(chunks, [windows[k] for k in sorted(windows)], strict=True):
        stream: Any = compare_profiles(reference, window, RULES).to_json_dict()
        for name in ("income", "age", "prediction"):
            mine, theirs = got["columns"][name], stream["columns"][name]
            for metric in ("ks", "psi", "wasserstein"):
                slack = mine["error_bounds"][metric] + theirs["error_bounds"][metric]
                assert abs(mine["metrics"][metric] - theirs["metrics"][metric]) <= slack + 1e-12
            assert mine["verdict"] == theirs["verdict"]


@pytest.mark.parametrize(
    ("suffix", "ts_format"),
    [
        (".parquet", "arrow"),
        (".parquet", "arrow-naive-us"),
        (".csv", "rfc3339"),  # pyarrow reads these as an Arrow timestamp column
        (".jsonl", "rfc3339"),  # ... and these as strings
        (".jsonl", "epoch-s"),
        (".parquet", "epoch-ms"),
        (".csv", "epoch-s"),
    ],
)
def test_timestamp_column_in_any_format_is_not_a_feature(
    data: dict[str, Path], capsys: pytest.CaptureFixture[str], suffix: str, ts_format: str
) -> None:
    cols = rows(4, DAYS, T0_MS, shift_from_day=5)
    path = write(table(cols, ts_format), data["dir"] / f"ts-{ts_format}{suffix}")
    ref = data["dir"] / f"ref-{ts_format}{suffix}.dlr"
    assert main(["profile", str(path), "--out", str(ref), "--timestamp-column", "event_ts"]) == 0
    err = capsys.readouterr().err
    assert "x 5 columns" in err and "event time 2026-11-23T" in err
    assert "event_ts" not in Reference.from_bytes(ref.read_bytes()).types
    code, out = compare_json(capsys, str(data["ref"]), str(path), "--chunk", "1d",
                             "--timestamp-column", "event_ts")
    assert code == 1 and out["drifted"] == ["income"]
    assert "event_ts" not in out["columns"]
    chunks = out["chunks"]
    assert isinstance(chunks, list)
    assert [c["start"][:10] for c in chunks] == [f"2026-11-{23 + d}" if d < 8 else
                                                 f"2026-12-{d - 7:02d}" for d in range(DAYS)]
    assert [c["rows"] for c in chunks] == [PER_DAY] * DAYS
    assert [c["drifted"] for c in chunks] == [[]] * 5 + [["income"]] * 5


def test_an_old_reference_with_the_timestamp_as_a_feature_loses_it(
    data: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The bug of issue 14: an epoch ``event_ts`` profiled as a number reads as drifted."""
    d = data["dir"]
    train = write(table(rows(5, 20, T0_MS - 30 * DAY_MS), "epoch-s"), d / "old-train.jsonl")
    current = write(table(rows(6, DAYS, T0_MS), "epoch-s"), d / "old-current.jsonl")
    old = d / "old.dlr"
    assert main(["profile", str(train), "--out", str(old)]) == 0
    assert Reference.from_bytes(old.read_bytes()).types["event_ts"] is ColumnType.NUMERIC
    code, out = compare_json(capsys, str(old), str(current))
    assert code == 1 and out["drifted"] == ["event_ts"]  # time always "drifts"
    code, out = compare_json(capsys, str(old), str(current), "--timestamp-column", "event_ts")
    assert code == 0 and out["drifted"] == [] and "event_ts" not in out["columns"]


def test_columns_and_exclude_select_the_features(
    data: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ref, cur = str(data["ref"]), str(data["current"])
    _, out = compare_json(capsys, ref, cur, "--columns", "age, income")
    assert list(out["columns"]) == ["income", "age"]
    code, out = compare_json(capsys, ref, cur, "--exclude", "income,member", "--chunk", "1000")
    assert code == 0 and set(out["columns"]) == {"age", "country", "prediction"}
    chunks = out["chunks"]
    assert isinstance(chunks, list) and all(set(c["columns"]) == set(out["columns"])
                                            for c in chunks)
    # a reference profiled from a subset; the others are "not in the reference" as before
    sub = data["dir"] / "sub.dlr"
    assert main(["profile", str(data["train"]), "--out", str(sub), "--columns", "income,age"]) == 0
    assert set(Reference.from_bytes(sub.read_bytes()).types) == {"income", "age"}
    assert main(["profile", str(data["train"]), "--out", str(sub), "--exclude", "country"]) == 0
    assert set(Reference.from_bytes(sub.read_bytes()).types) == {
        "income", "age", "member", "prediction"}


def test_table_shows_a_chunk_matrix(
    data: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    code = main(["compare", str(data["ref"]), str(data["current"]), "--chunk", "1d",
                 "--timestamp-column", "event_ts", *CLI_RULES])
    text = capsys.readouterr().out
    assert code == 1
    assert "1 of 5 columns drifted: income" in text  # the whole-file table, as before
    assert "drift per chunk of 1d (10 chunks)" in text
    assert "5 of 10 chunks drifted (first: 2026-11-28): income" in text
    assert "2026-11-23" in text and "2026-12-02" in text


def test_rows_without_a_timestamp_are_counted_not_chunked(
    data: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cols = rows(7, 2, T0_MS)
    t = table(cols)
    ts = t.column("event_ts").to_pylist()
    ts[::10] = [None] * len(ts[::10])
    path = write(t.set_column(0, "event_ts", pa.array(ts, t.schema.field(0).type)),
                 data["dir"] / "holes.parquet")
    _, out = compare_json(capsys, str(data["ref"]), str(path), "--chunk", "1d",
                          "--timestamp-column", "event_ts")
    assert out["rows"] == 1000 and out["rows_without_timestamp"] == 100
    assert [c["rows"] for c in out["chunks"]] == [450, 450]


# ------------------------------------------------------------------ the pieces


def test_parse_chunk() -> None:
    assert parse_chunk("5000").rows == 5000
    assert parse_chunk("1d").size_ms == DAY_MS
    assert parse_chunk(" 30m ").size_ms == 1_800_000
    assert parse_chunk("1.5h").size_ms == 5_400_000
    for bad in ("0", "1w", "-1d", "1.5", "abc", "", "0ms", "5 minutes"):
        with pytest.raises(ConfigError, match="--chunk"):
            parse_chunk(bad)


def test_chunker_aligns_to_the_epoch_like_the_stream() -> None:
    hour = 3_600_000
    ts = np.array([T0_MS + 5, T0_MS - 1, T0_MS + hour, np.nan, T0_MS + hour - 1])
    x = pa.array([1.0, 2.0, 3.0, 4.0, 5.0])
    chunker = Chunker(parse_chunk("1h"), {}, 800)
    chunker.add({"x": x}, DataBatch({"x": x}, 5, ts, ()))
    got = [(c.start_ms, c.end_ms, c.profile.rows) for c in chunker.chunks()]
    assert got == [(T0_MS - hour, T0_MS, 1), (T0_MS, T0_MS + hour, 2), (T0_MS + hour,
                                                                        T0_MS + 2 * hour, 1)]
    assert chunker.rows_without_timestamp == 1
    assert [c.profile.columns["x"].count for c in chunker.chunks()] == [1, 2, 1]


def test_select_profile_keeps_the_sketches_byte_for_byte() -> None:
    prof = DatasetProfile()
    rng = np.random.default_rng(0)
    prof.update({"a": rng.normal(size=5000), "b": rng.choice(["x", "y"], 5000)}, 5000)
    only_a = select_profile(prof, lambda n: n == "a")
    assert list(only_a.columns) == ["a"] and only_a.rows == 5000
    assert only_a.columns["a"].to_bytes() == prof.columns["a"].to_bytes()
    same = compare_profiles(prof, only_a)
    assert math.isclose(same.columns["a"].metrics["ks"].value, 0.0, abs_tol=1e-12)
