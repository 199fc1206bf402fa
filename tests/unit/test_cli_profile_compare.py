"""`driftline profile` / `driftline compare` end to end, in process, on small files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from driftline.cli import build_parser, main
from sketches.reference import Reference


def _table(seed: int, n: int, shift: float = 0.0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "income": rng.lognormal(10 + shift, 0.5, n),
            "age": rng.integers(18, 90, n),
            "country": rng.choice(["DE", "FR", "US"], n),
            "member": rng.random(n) < 0.4,
        }
    )


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    out = {
        "train": tmp_path / "train.parquet",
        "same": tmp_path / "same.csv",
        "drift": tmp_path / "drift.jsonl",
        "ref": tmp_path / "ref.dlr",
    }
    pq.write_table(_table(1, 20_000), out["train"], row_group_size=5000)
    pacsv.write_csv(_table(2, 5_000), out["same"])
    with out["drift"].open("w") as f:
        for rec in _table(3, 5_000, shift=0.5).to_pylist():
            f.write(json.dumps(rec) + "\n")
    return out


def test_profile_then_compare(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["profile", str(files["train"]), "--out", str(files["ref"]), "--model", "credit",
         "--version", "7", "--created", "2026-11-23T00:00:00Z", "--batch-rows", "3000"]
    )  # fmt: skip
    assert code == 0
    assert "profiled 20,000 rows x 4 columns" in capsys.readouterr().err
    ref = Reference.from_bytes(files["ref"].read_bytes())
    assert (ref.model, ref.version, ref.rows, len(ref.chunks)) == ("credit", "7", 20_000, 10)
    assert all(c.rows == 2000 for c in ref.chunks)

    assert main(["compare", str(files["ref"]), str(files["same"]), "--format", "json"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["rows"] == 5000 and same["drifted"] == []
    assert set(same["columns"]) == {"income", "age", "country", "member"}
    assert same["columns"]["income"]["type"] == "numeric"
    assert same["columns"]["member"]["type"] == "boolean"

    assert main(["compare", str(files["ref"]), str(files["drift"]), "--format", "json"]) == 1
    drift = json.loads(capsys.readouterr().out)
    assert drift["drifted"] == ["income"]
    assert drift["columns"]["income"]["drift"] is True

    assert main(["compare", str(files["ref"]), str(files["drift"])]) == 1
    table = capsys.readouterr().out
    assert "income" in table and "drift" in table and "1 of 4 columns drifted" in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "{ref}", "{empty}"], "file is empty"),
        (["compare", "{ref}", "{missing}"], "no such file"),
        (["compare", "{corrupt}", "{same}"], "not a usable reference"),
        (["compare", "{same}", "{same}"], "not a usable reference"),
        (["compare", "{ref}", "{weird}"], "unknown file type"),
        (["profile", "{header_only}", "--out", "{out}"], "no rows"),
        (["profile", "{same}", "--out", "{out}", "--types", "age=date"], "bad --types"),
        (["profile", "{same}", "--out", "{out}", "--chunks", "1"], "--chunks"),
        (["compare", "{ref}", "{same}", "--alpha", "2"], "alpha"),
        (["compare", "{ref}", "{same}", "--columns", "income,nope"],
         "--columns: no column 'nope' in"),
        (["compare", "{ref}", "{same}", "--exclude", "nope"], "--exclude: no column 'nope'"),
        (["compare", "{ref}", "{same}", "--timestamp-column", "ts"],
         "--timestamp-column: no column 'ts'"),
        (["profile", "{same}", "--out", "{out}", "--columns", "nope"], "--columns: no column"),
        (["compare", "{ref}", "{same}", "--columns", "a,,b"], "not a comma-separated list"),
        (["compare", "{ref}", "{same}", "--columns", "age", "--timestamp-column", "age"],
         "is not a feature"),
        (["compare", "{ref}", "{same}", "--columns", "age", "--exclude", "age"],
         "both in --columns and --exclude"),
        (["compare", "{ref}", "{same}", "--chunk", "1d"], "needs --timestamp-column"),
        (["compare", "{ref}", "{same}", "--chunk", "1w"], "neither a row count"),
        (["compare", "{ref}", "{same}", "--chunk=-1d"], "neither a row count"),
        (["compare", "{ref}", "{same}", "--chunk", "0"], "row count must be at least 1"),
        (["compare", "{ref}", "{same}", "--chunk", "1h", "--timestamp-column", "country"],
         "'DE' is not an RFC 3339 time"),
        (["compare", "{ref}", "{same}", "--timestamp-column", "member"],
         "has type bool"),
    ],
)
def test_garbage_in_is_one_line_and_exit_2(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    assert main(["profile", str(files["train"]), "--out", str(files["ref"])]) == 0
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "header_only.csv").write_text("a,b\n")
    (tmp_path / "weird.xlsx").write_bytes(b"xx")
    (tmp_path / "corrupt.dlr").write_bytes(files["ref"].read_bytes()[:500])
    paths = {
        "ref": files["ref"], "same": files["same"], "empty": tmp_path / "empty.csv",
        "missing": tmp_path / "nope.parquet", "corrupt": tmp_path / "corrupt.dlr",
        "weird": tmp_path / "weird.xlsx", "header_only": tmp_path / "header_only.csv",
        "out": tmp_path / "out.dlr",
    }  # fmt: skip
    capsys.readouterr()
    code = main([a.format(**{k: str(v) for k, v in paths.items()}) for a in args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_all_null_and_mixed_columns_get_explicit_verdicts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train, cur, ref = tmp_path / "t.jsonl", tmp_path / "c.jsonl", tmp_path / "r.dlr"
    rng = np.random.default_rng(0)
    with train.open("w") as f:
        for i in range(2000):
            f.write(
                json.dumps({"x": float(rng.normal()), "gone": None, "code": f"c{i % 3}"}) + "\n"
            )
    with cur.open("w") as f:
        for i in range(2000):
            code = i if i % 10 == 0 else f"c{i % 3}"  # 10 % numbers in a string column
            f.write(json.dumps({"x": None, "gone": None, "code": str(code)}) + "\n")
    assert main(["profile", str(train), "--out", str(ref), "--types", "code=categorical"]) == 0
    assert main(["compare", str(ref), str(cur), "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["columns"]["x"]["verdict"] == "drift"
    assert "null_ratio" in out["columns"]["x"]["fired"]
    assert out["columns"]["gone"]["verdict"] == "insufficient_data"
    assert out["columns"]["code"]["verdict"] == "drift"


def test_every_flag_has_an_env_twin_in_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in ("profile", "compare"):
        cmd = sub.choices[name]  # type: ignore[index]
        text = cmd.format_help()
        for action in cmd._actions:
            for flag in action.option_strings:
                if (
                    flag.startswith("--")
                    and flag not in ("--help",)
                    and not flag.startswith("--no-")
                ):
                    env = "DRIFTLINE_" + flag[2:].replace("-", "_").upper()
                    assert env in text, (name, flag)


def test_help_says_time_columns_are_not_features() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in ("profile", "compare"):
        text = " ".join(sub.choices[name].format_help().split())  # type: ignore[index]
        assert "columns of timestamp or date type are not features" in text
        assert "< 1e11 seconds, < 1e14 ms" in text


def test_env_twin_sets_the_default(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["profile", str(files["train"]), "--out", str(files["ref"])]) == 0
    monkeypatch.setenv("DRIFTLINE_FORMAT", "json")
    assert main(["compare", str(files["ref"]), str(files["same"])]) == 0
    assert json.loads(capsys.readouterr().out)["drifted"] == []


def test_json_column_changing_type_is_a_clear_error(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["profile", str(files["train"]), "--out", str(files["ref"])]) == 0
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("".join(json.dumps({"age": 3 if i else "x"}) + "\n" for i in range(50)))
    capsys.readouterr()
    assert main(["compare", str(files["ref"]), str(mixed)]) == 2
    err = capsys.readouterr().err
    assert "changed from" in err and len(err.strip().splitlines()) == 1
