"""``driftline compare REF DATA``: drift of a data file against a reference profile.

Exit codes: 0 — no column drifted (columns with too little data are listed as
"insufficient_data" but do not change the code); 1 — at least one column drifted, in the
whole file or in any chunk; 2 — error (unreadable reference or data, bad flags).

``--timestamp-column`` / ``--columns`` / ``--exclude`` choose the features (the reference's
other columns leave the comparison too); ``--chunk`` adds drift per chunk of the file
(:mod:`driftline.chunks`): JSON ``"chunks": [{"index", "start", "end", "rows", "columns",
"drifted", "insufficient_data"}, ...]`` beside the unchanged whole-file fields, and a chunk
x column matrix of verdicts in the table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from itertools import chain
from pathlib import Path

from rich.console import Console
from rich.table import Table

from driftline.chunks import Chunk, Chunker, ChunkSpec, parse_chunk, select_reference
from driftline.datafiles import (
    DEFAULT_BATCH_ROWS,
    ColumnSelection,
    add_selection_options,
    iter_batches,
)
from driftline.options import add_option
from sketches import _codec
from sketches.drift import ColumnDrift, DriftReport, compare_profiles
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
    add_selection_options(p)
    add_option(
        p, "--chunk",
        help="also compare each chunk of DATA: a duration (30m, 1h, 1d; needs "
        "--timestamp-column; chunks aligned to the epoch like the stream's windows, so 1d is a "
        "UTC day) or a row count (5000: consecutive rows in file order)",
    )  # fmt: skip
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
    selection = ColumnSelection.from_flags(args.columns, args.exclude, args.timestamp_column)
    spec = parse_chunk(args.chunk) if args.chunk is not None else None
    if spec is not None and spec.size_ms is not None and selection.timestamp is None:
        raise ConfigError(f"--chunk {spec.text} is a duration: it needs --timestamp-column")
    reference = load_reference(args.reference)
    batches = iter_batches(args.data, selection=selection, batch_rows=args.batch_rows)
    first = next(batches, None)
    if first is None:
        raise InputDataError(f"{args.data}: no rows")
    dropped = [n for n in first.not_features if n != selection.timestamp]
    if dropped:
        print(f"not features (time columns): {', '.join(dropped)}", file=sys.stderr)
    reference = select_reference(
        reference, lambda n: selection.is_feature(n) and n not in first.not_features
    )
    ref_profile = reference.profile if isinstance(reference, Reference) else reference
    types = ref_profile.types_known()
    current = DatasetProfile(types=types, kll_k=ref_profile.kll_k)
    chunker = Chunker(spec, types, ref_profile.kll_k) if spec is not None else None
    for batch in chain([first], batches):
        columns = selection.apply(batch.columns)
        current.update(columns, batch.rows)
        if chunker is not None:
            chunker.add(columns, batch)
    if current.rows == 0:
        raise InputDataError(f"{args.data}: no rows")
    report = compare_profiles(reference, current, rules)
    chunks = chunker.chunks() if chunker is not None else []
    reports = [compare_profiles(reference, c.profile, rules) for c in chunks]
    drifted = bool(report.drifted) or any(r.drifted for r in reports)
    try:
        if args.format == "json":
            out = report.to_json_dict()
            if chunker is not None:
                out["chunk"] = chunker.spec.to_json_dict()
                if chunker.spec.size_ms is not None:
                    out["rows_without_timestamp"] = chunker.rows_without_timestamp
                out["chunks"] = [c.to_json_dict(i, r) for i, (c, r) in
                                 enumerate(zip(chunks, reports, strict=True))]
            json.dump(out, sys.stdout, indent=2)
            sys.stdout.write("\n")
            sys.stdout.flush()
        else:
            console = Console()
            print_table(report, console)
            if chunker is not None:
                print_chunks(chunker, chunks, reports, console)
    except BrokenPipeError:  # e.g. piped into head
        sys.stderr.close()
    return EXIT_DRIFT if drifted else EXIT_NO_DRIFT


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


MATRIX_COLUMNS = 8
"""Feature columns shown in the chunk matrix; the rest are summed up in "others"."""
DETAIL_LINES = 60
"""Reasons printed below the matrix at most (all of them are in the JSON)."""
_CELL = {"no_drift": "[green]ok[/]", "insufficient_data": "[yellow]n/a[/]"}
_SHORT = {"wasserstein": "wass", "null_ratio": "nulls", "type_mismatch": "types"}


def print_chunks(
    chunker: Chunker, chunks: list[Chunk], reports: list[DriftReport], console: Console
) -> None:
    """A chunk x column matrix of verdicts (a drifted cell shows its strongest metric),
    then the reasons of every drifted cell, then a one-line summary."""
    spec = chunker.spec
    names = list(reports[0].columns) if reports else []
    ever = [n for n in names if any(r.columns[n].drift for r in reports if n in r.columns)]
    shown = (ever + [n for n in names if n not in ever])[:MATRIX_COLUMNS]
    others = [n for n in names if n not in shown]
    table = Table(title=f"drift per chunk of {spec.text} ({len(chunks)} chunks)",
                  header_style="bold")
    table.add_column("chunk", no_wrap=True)
    table.add_column("rows", justify="right", no_wrap=True)
    for name in shown:
        table.add_column(name, no_wrap=True, overflow="ellipsis")
    if others:
        table.add_column(f"{len(others)} others")
    details: list[str] = []
    for chunk, report in zip(chunks, reports, strict=True):
        label = chunk_label(chunk, spec, report.rows)
        cells = [_cell(report.columns.get(n)) for n in shown]
        if others:
            cells.append(_others(report, others))
        table.add_row(label, f"{report.rows:,}", *cells)
        for name in report.drifted:
            details.append(f"[bold]{label}[/] {name}: {'; '.join(report.columns[name].reasons)}")
    console.print(table)
    for line in details[:DETAIL_LINES]:
        console.print(line, highlight=False)
    if len(details) > DETAIL_LINES:
        console.print(f"... {len(details) - DETAIL_LINES} more drifted cells (--format json)")
    hit = [chunk_label(c, spec, r.rows) for c, r in zip(chunks, reports, strict=True) if r.drifted]
    summary = f"[bold]{len(hit)} of {len(chunks)} chunks drifted[/]"
    if hit:
        summary += f" (first: {hit[0]}): {', '.join(ever)}"
    if chunker.rows_without_timestamp:
        n = chunker.rows_without_timestamp
        summary += f"; {n:,} rows without a timestamp (in the whole file only)"
    console.print(summary, highlight=False)


def chunk_label(chunk: Chunk, spec: ChunkSpec, rows: int) -> str:
    """``2026-11-23`` for day chunks, ``2026-11-23 08:00`` for minute-aligned ones, else
    RFC 3339; ``rows 5,000-9,999`` for row chunks."""
    if spec.size_ms is None or chunk.start_ms is None:
        first = chunk.first_row or 0
        return f"rows {first:,}-{first + rows - 1:,}"
    t = dt.datetime.fromtimestamp(chunk.start_ms / 1000, tz=dt.UTC)
    if spec.size_ms % 86_400_000 == 0:
        return t.strftime("%Y-%m-%d")
    if spec.size_ms % 60_000 == 0:
        return t.strftime("%Y-%m-%d %H:%M")
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _cell(col: ColumnDrift | None) -> str:
    if col is None:
        return ""
    if not col.drift:
        return _CELL[col.verdict]
    # the fired metric furthest past its threshold
    metric = max(sorted(col.fired), key=lambda m: _ratio(col, m))
    return f"[bold red]drift[/] {_SHORT.get(metric, metric)} {col.metrics[metric].value:.3g}"


def _ratio(col: ColumnDrift, metric: str) -> float:
    threshold = col.thresholds.get(metric, 0.0)
    value = col.metrics[metric].value
    return value / threshold if threshold > 0 else value


def _others(report: DriftReport, names: list[str]) -> str:
    verdicts: list[str] = [report.columns[n].verdict for n in names if n in report.columns]
    words = (("drift", "drift"), ("no_drift", "ok"), ("insufficient_data", "n/a"))
    return ", ".join(f"{verdicts.count(v)} {w}" for v, w in words if v in verdicts)
