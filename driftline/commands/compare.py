"""``driftline compare REF DATA``: drift of a data file against a reference profile.

Exit codes: 0 — no column drifted (columns with too little data are listed as
"insufficient_data" but do not change the code); 1 — at least one column drifted;
2 — error (unreadable reference or data, bad flags).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from driftline.datafiles import DEFAULT_BATCH_ROWS, iter_columns
from driftline.options import add_option
from sketches import _codec
from sketches.drift import DriftReport, compare_profiles
from sketches.errors import ConfigError, InputDataError, StateFormatError
from sketches.profile import DatasetProfile
from sketches.reference import Reference
from sketches.rules import DriftRules
from sketches.types import ColumnType

EXIT_NO_DRIFT = 0
EXIT_DRIFT = 1

_SHOWN = {
    ColumnType.NUMERIC: ("ks", "psi", "wasserstein"),
    ColumnType.CATEGORICAL: ("linf", "js", "unseen"),
    ColumnType.BOOLEAN: ("linf", "js"),
    ColumnType.UNKNOWN: (),
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "compare",
        help="drift of a data file against a reference (exit 0 none, 1 drift, 2 error)",
        description="Profile DATA in record batches and compare it with the reference REF. "
        "Exit code 0: no drift; 1: at least one column drifted; 2: error.",
    )
    p.add_argument("reference", metavar="REF", help="reference written by 'driftline profile'")
    p.add_argument("data", metavar="DATA", help="Parquet, CSV/TSV or JSON-lines file")
    add_option(p, "--format", choices=("table", "json"), default="table", help="output format")
    add_option(
        p, "--mode", choices=("effect", "pvalue"), default="effect",
        help="decide on effect size (+ significance) or on corrected p-values alone",
    )  # fmt: skip
    add_option(p, "--alpha", type=float, default=0.01, help="significance level of the tests")
    add_option(
        p, "--correction", choices=("bonferroni", "bh", "none"), default="bonferroni",
        help="multiple-testing correction across columns",
    )  # fmt: skip
    add_option(
        p, "--min-count", type=int, default=100,
        help="values needed on each side, else the verdict is insufficient_data",
    )  # fmt: skip
    add_option(
        p, "--learned-thresholds", type=bool, default=False,
        help="use thresholds learned from the reference's chunks (mean + k*sd)",
    )  # fmt: skip
    add_option(p, "--k-sd", type=float, default=3.0, help="k of learned thresholds")
    add_option(
        p, "--batch-rows", type=int, default=DEFAULT_BATCH_ROWS, help="rows per record batch"
    )
    p.set_defaults(func=run)


def load_reference(path: str) -> Reference | DatasetProfile:
    """A Reference (or bare DatasetProfile) from a file; typed errors when unreadable."""
    try:
        blob = Path(path).read_bytes()
    except OSError as exc:
        raise InputDataError(f"{path}: cannot read reference: {exc.strerror or exc}") from exc
    try:
        if _codec.peek_magic(blob) == DatasetProfile.MAGIC:
            return DatasetProfile.from_bytes(blob)
        return Reference.from_bytes(blob)
    except StateFormatError as exc:
        raise StateFormatError(f"{path}: not a usable reference: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    try:
        rules = DriftRules(
            mode=args.mode,
            alpha=args.alpha,
            correction=args.correction,
            min_count=args.min_count,
            learned=args.learned_thresholds,
            k_sd=args.k_sd,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    reference = load_reference(args.reference)
    ref_profile = reference.profile if isinstance(reference, Reference) else reference
    current = DatasetProfile(types=ref_profile.types_known(), kll_k=ref_profile.kll_k)
    for batch in iter_columns(args.data, batch_rows=args.batch_rows):
        n = len(next(iter(batch.values()))) if batch else 0
        current.update(batch, n)
    if current.rows == 0:
        raise InputDataError(f"{args.data}: no rows")
    report = compare_profiles(reference, current, rules)
    try:
        if args.format == "json":
            json.dump(report.to_json_dict(), sys.stdout, indent=2)
            sys.stdout.write("\n")
            sys.stdout.flush()
        else:
            print_table(report, Console())
    except BrokenPipeError:  # e.g. piped into head
        sys.stderr.close()
    return EXIT_DRIFT if report.drifted else EXIT_NO_DRIFT


def print_table(report: DriftReport, console: Console) -> None:
    """A terminal table: one row per column, verdict coloured, reasons in the last cell."""
    table = Table(
        title=f"drift: {report.rows:,} rows vs reference of {report.reference_rows:,}",
        header_style="bold",
    )
    for head, justify in (
        ("column", "left"), ("type", "left"), ("count", "right"), ("null %", "right"),
        ("metrics (value ± bound)", "left"), ("verdict", "left"), ("reasons", "left"),
    ):  # fmt: skip
        table.add_column(head, justify=justify)  # type: ignore[arg-type]
    style = {"drift": "bold red", "no_drift": "green", "insufficient_data": "yellow"}
    for name, col in report.columns.items():
        shown = []
        for metric in _SHOWN[col.type]:
            mv = col.metrics.get(metric)
            if mv is not None:
                bound = f"±{mv.error_bound:.3f}" if mv.error_bound else ""
                shown.append(f"{metric} {mv.value:.3f}{bound}")
        table.add_row(
            name,
            str(col.type),
            f"{col.count:,}",
            f"{100 * col.null_ratio:.1f}",
            "  ".join(shown),
            f"[{style[col.verdict]}]{col.verdict}[/]",
            "; ".join(col.reasons),
        )
    console.print(table)
    drifted = report.drifted
    console.print(
        f"[bold]{len(drifted)} of {len(report.columns)} columns drifted[/]"
        + (f": {', '.join(drifted)}" if drifted else "")
    )
