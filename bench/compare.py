"""Benchmark: ``driftline compare`` against a bare numpy + datasketches loop, same file, same run.

Generates (and caches under ``bench/.data/``) a 1 M-row x 26-column Parquet file —
20 numeric, 4 categorical, 2 boolean — plus a 200 k-row reference profile, then times
in alternating subprocesses:

- ``driftline compare REF DATA --format json`` (the real CLI: read, profile, compare, print);
- a bare loop: read the same record batches, update one KLL (k as driftline's) per numeric
  column, one frequent-items sketch per categorical column (per-batch value counts),
  true counts per boolean column.

Wall time -> rows/s, and peak RSS of each child (``os.wait4`` rusage). Results go to the
``## compare`` section of ``bench/RESULTS.md``. Run: ``python bench/compare.py``.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / ".data"
DATA = DATA_DIR / "compare_1m_x26.parquet"
REF_DATA = DATA_DIR / "compare_ref_200k_x26.parquet"
REF = DATA_DIR / "compare_ref_200k_x26.dlr"
ROWS = 1_000_000
REPEATS = 3

BARE_LOOP = r"""
import sys, numpy as np, pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
import datasketches as ds
k = int(sys.argv[2])
kll, freq, trues = {}, {}, {}
with pq.ParquetFile(sys.argv[1], pre_buffer=sys.argv[3] == "1") as f:
    for batch in f.iter_batches(batch_size=65536):
        for name, col in zip(batch.schema.names, batch.columns):
            t = col.type
            if pa.types.is_floating(t) or pa.types.is_integer(t):
                arr = col.drop_null().cast(pa.float64()).to_numpy(zero_copy_only=False)
                arr = arr[~np.isnan(arr)]
                kll.setdefault(name, ds.kll_doubles_sketch(k)).update(np.ascontiguousarray(arr))
            elif pa.types.is_boolean(t):
                trues[name] = trues.get(name, 0) + (pc.sum(col).as_py() or 0)
            else:
                fi = freq.setdefault(name, ds.frequent_strings_sketch(11))
                vc = pc.value_counts(col.drop_null())
                for v, c in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
                    fi.update(v, c)
print(sum(s.n for s in kll.values()))
"""


def generate(path: Path, rows: int, seed: int) -> None:
    if path.exists():
        return
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    writer: pq.ParquetWriter | None = None
    cats = [np.array([f"{p}{i}" for i in range(n)]) for p, n in
            (("country_", 30), ("device_", 5), ("plan_", 12), ("merchant_", 800))]  # fmt: skip
    try:
        for start in range(0, rows, 250_000):
            n = min(250_000, rows - start)
            cols: dict[str, pa.Array] = {}
            for j in range(20):
                if j % 4 == 3:
                    x = rng.poisson(3 + j, n).astype(np.int64)
                    cols[f"num_{j:02d}"] = pa.array(x)
                    continue
                x = rng.lognormal(0, 1, n) if j % 4 == 2 else rng.normal(j, 1 + j / 10, n)
                x[rng.random(n) < 0.01] = np.nan
                cols[f"num_{j:02d}"] = pa.array(x, from_pandas=True)
            for j, levels in enumerate(cats):
                weights = 1 / np.arange(1, levels.size + 1)
                cols[f"cat_{j}"] = pa.array(rng.choice(levels, n, p=weights / weights.sum()))
            cols["bool_0"] = pa.array(rng.random(n) < 0.3)
            cols["bool_1"] = pa.array(rng.random(n) < 0.7)
            table = pa.table(cols)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=65_536)
    finally:
        if writer is not None:
            writer.close()


def run(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MiB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if code not in (0, 1):
        raise SystemExit(f"{cmd[:3]} failed with {code}: {err}")
    return wall, usage.ru_maxrss // 1024


def main() -> int:
    from sketches.numeric import DEFAULT_KLL_K

    t0 = time.perf_counter()
    generate(DATA, ROWS, seed=1)
    generate(REF_DATA, 200_000, seed=2)
    gen_s = time.perf_counter() - t0
    driftline = [sys.executable, "-m", "driftline.cli"]
    if not REF.exists():
        subprocess.run([*driftline, "profile", str(REF_DATA), "--out", str(REF),
                        "--created", "2026-01-01T00:00:00Z"], check=True)  # fmt: skip
    compare_cmd = [*driftline, "compare", str(REF), str(DATA), "--format", "json"]
    bare_cmd = [sys.executable, "-c", BARE_LOOP, str(DATA), str(DEFAULT_KLL_K), "1"]
    tuned_cmd = [sys.executable, "-c", BARE_LOOP, str(DATA), str(DEFAULT_KLL_K), "0"]
    cmds = {"bare": bare_cmd, "tuned": tuned_cmd, "driftline": compare_cmd}
    walls: dict[str, list[float]] = {k: [] for k in cmds}
    rss: dict[str, list[int]] = {k: [] for k in cmds}
    for _ in range(REPEATS):
        for name, cmd in cmds.items():
            w, m = run(cmd)
            walls[name].append(w)
            rss[name].append(m)
    med = {k: statistics.median(v) for k, v in walls.items()}
    rate = {k: ROWS / v for k, v in med.items()}
    ratio = rate["driftline"] / rate["bare"]
    peak = {k: max(v) for k, v in rss.items()}
    lines = [
        "## compare",
        "",
        f"`python bench/compare.py` — {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, KLL k={DEFAULT_KLL_K}.",
        f"File: {ROWS:,} rows x 26 columns (20 numeric incl. 5 integer, 4 categorical with "
        "30/5/12/800 levels, 2 boolean), Parquet, 1 % NaN in 15 numeric columns; "
        "reference profiled from a separate 200 k-row file. Median of "
        f"{REPEATS} alternating runs; each run is a fresh process (startup and imports included).",
        "",
        "| | wall s (median) | rows/s | peak RSS MiB |",
        "|---|---:|---:|---:|",
        f"| `driftline compare --format json` | {med['driftline']:.2f} | "
        f"{rate['driftline']:,.0f} | {peak['driftline']} |",
        f"| bare numpy + datasketches loop | {med['bare']:.2f} | {rate['bare']:,.0f} | "
        f"{peak['bare']} |",
        f"| bare loop, Parquet `pre_buffer=False` (as driftline reads) | {med['tuned']:.2f} | "
        f"{rate['tuned']:,.0f} | {peak['tuned']} |",
        "",
        f"**Ratio driftline / bare: {ratio:.2f}** (goal >= 0.6). Peak memory: driftline "
        f"{peak['driftline']} MiB vs bare {peak['bare']} MiB. "
        f"All runs: driftline {', '.join(f'{w:.2f}' for w in walls['driftline'])} s; "
        f"bare {', '.join(f'{w:.2f}' for w in walls['bare'])} s. "
        f"Against the bare loop given the same Parquet reader setting: "
        f"{rate['driftline'] / rate['tuned']:.2f}. The bare loop only fills sketches; "
        "driftline also keeps counts, moments and type checks, then compares "
        "26 columns with the reference and prints JSON.",
        "",
    ]
    from bench._results import write_section

    write_section("\n".join(lines))
    print("\n".join(lines))
    print(f"(data generation {gen_s:.1f} s; total {time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    import argparse

    argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0]).parse_args()
    sys.path.insert(0, str(HERE.parent))
    sys.exit(main())
