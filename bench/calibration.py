"""Calibration of driftline's drift metrics (issue 10): bound coverage and tightness
against exact statistics recomputed from the raw data, false alarms on same-distribution
data, and power against Evidently's default numeric rule (normed Wasserstein >= 0.1,
recomputed exactly with scipy) on the same data in the same run.

Writes the "## Calibration" section of bench/RESULTS.md. No services needed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._results import write_section
from sketches.drift import compare_profiles
from sketches.metrics import categorical_metrics
from sketches.profile import DatasetProfile
from tests.unit.test_calibration import (
    NUMERIC,
    NUMERIC_SIZES,
    categorical_exact,
    categorical_profile,
    categorical_sample,
    numeric_errors,
)

TRIALS = 12
LEVELS = [5, 100, 3_000, 50_000, 300_000]
MODES = [(False, False), (True, False), (False, True), (True, True)]


def coverage() -> list[str]:
    rows = [
        "| group | metric | trials | covered | median bound | median error | bound / error |",
        "|---|---|---|---|---|---|---|",
    ]
    for dist in NUMERIC:
        acc: dict[str, list[tuple[float, float]]] = {}
        for sizes in NUMERIC_SIZES:
            for seed in range(TRIALS):
                rng = np.random.default_rng(seed * 977 + len(dist))
                rx, cx = NUMERIC[dist](rng, sizes[0]), NUMERIC[dist](rng, sizes[1])
                for m, v in numeric_errors(rx, cx).items():
                    acc.setdefault(m, []).append(v)
        for m, vs in acc.items():
            e, b = np.array(vs).T
            ratio = np.median(b[e > 0] / e[e > 0]) if (e > 0).any() else float("nan")
            rows.append(
                f"| numeric {dist} | {m} | {e.size} | {np.mean(e <= b + 1e-9):.3f} | "
                f"{np.median(b):.4f} | {np.median(e):.5f} | {ratio:.1f} |"
            )
    for levels in LEVELS:
        for modes in MODES:
            acc = {}
            for seed in range(TRIALS // 3):
                rng = np.random.default_rng(seed * 31 + levels)
                kind = "zipf" if seed % 2 else "uniform"
                rx = categorical_sample(rng, levels, kind, 100_000)
                cx = categorical_sample(rng, levels, kind, 10_000)
                ms = categorical_metrics(
                    categorical_profile(rx, modes[0]), categorical_profile(cx, modes[1])
                )
                for m, ex in categorical_exact(rx, cx).items():
                    mv = ms.metrics[m]
                    acc.setdefault(m, []).append((abs(mv.value - ex), mv.error_bound))
            tag = "/".join("sketch" if s else "exact" for s in modes)
            for m, vs in acc.items():
                e, b = np.array(vs).T
                rows.append(
                    f"| categorical {levels} ({tag}) | {m} | {e.size} | "
                    f"{np.mean(e <= b + 1e-9):.3f} | {np.median(b):.4f} | "
                    f"{np.median(e):.5f} | - |"
                )
    return rows


def false_alarms(reports: int) -> list[str]:
    rng = np.random.default_rng(2026)
    nref = 100_000
    cols = {
        "normal": lambda n: rng.normal(size=n),
        "lognormal2": lambda n: rng.lognormal(0, 2, n),
        "t2": lambda n: rng.standard_t(2, n),
        "nulls1pct": lambda n: np.where(rng.random(n) < 0.01, np.nan, rng.normal(size=n)),
        "zipf1000": lambda n: list(categorical_sample(rng, 1_000, "zipf", n)),
        "uniform5000": lambda n: list(categorical_sample(rng, 5_000, "uniform", n)),
        "zipf50000": lambda n: list(categorical_sample(rng, 50_000, "zipf", n)),
    }
    ref = DatasetProfile()
    ref.update({k: f(nref) for k, f in cols.items()}, nref)
    rows = [
        "| window rows | reports | " + " | ".join(cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for n in (100, 200, 1_000, 10_000):
        hits = dict.fromkeys(cols, 0)
        for _ in range(reports):
            cur = DatasetProfile(types=ref.types)
            cur.update({k: f(n) for k, f in cols.items()}, n)
            for name in compare_profiles(ref, cur).drifted:
                hits[name] += 1
        rows.append(f"| {n} | {reports} | " + " | ".join(str(hits[k]) for k in cols) + " |")
    return rows


def power(reps: int) -> list[str]:
    rows = [
        "| rows | shift (sd) | driftline detected | Evidently rule (exact W >= 0.1) |",
        "|---|---|---|---|",
    ]
    rng = np.random.default_rng(7)
    ref_x = rng.normal(size=1_000_000)
    ref = DatasetProfile()
    ref.update({"x": ref_x}, ref_x.size)
    sd = ref_x.std()
    for n in (10_000, 100_000):
        for shift in (0.08, 0.095, 0.1, 0.105, 0.11, 0.12, 0.14):
            ours = evid = 0
            for _ in range(reps):
                x = rng.normal(shift, 1.0, n)
                cur = DatasetProfile(types=ref.types)
                cur.update({"x": x}, n)
                ours += bool(compare_profiles(ref, cur).drifted)
                evid += sps.wasserstein_distance(ref_x, x) / sd >= 0.1
            rows.append(f"| {n:,} | {shift} | {ours}/{reps} | {evid}/{reps} |")
    return rows


def main() -> None:
    t0 = time.time()
    cov = coverage()
    fa = false_alarms(200)
    pw = power(40)
    section = "\n".join(
        [
            "## Calibration",
            "",
            f"`bench/calibration.py` (issue 10), {time.time() - t0:.0f} s. Exact statistics "
            "recomputed from the raw data with driftline's definitions (PSI/JS on the reference "
            "sketch's deciles, Wasserstein in reference sds). Numeric sizes (ref, cur): "
            f"{NUMERIC_SIZES}; categorical 100 k vs 10 k rows, uniform and Zipf.",
            "",
            "### Bound coverage and tightness",
            "",
            *cov,
            "",
            "### False alarms (default rules, same distribution, reference 100 k rows)",
            "",
            *fa,
            "",
            "### Power: normal mean shift, reference 1 M rows",
            "",
            *pw,
            "",
        ]
    )
    write_section(section)
    print(section)


if __name__ == "__main__":
    main()
