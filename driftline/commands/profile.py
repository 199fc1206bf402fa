"""``driftline profile DATA --out REF``: build a reference profile from a data file."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from driftline.chunks import TimeSpan
from driftline.datafiles import (
    DEFAULT_BATCH_ROWS,
    ColumnSelection,
    add_selection_options,
    iter_batches,
    row_count,
)
from driftline.options import add_option
from sketches.errors import ConfigError, DriftlineError, InputDataError
from sketches.numeric import DEFAULT_KLL_K
from sketches.performance import TASKS
from sketches.reference import Reference, build_reference
from sketches.reference_performance import AnyArray, build_reference_performance
from sketches.segments import DEFAULT_TOP_K, OTHER, roster, segment_profiles, value_of
from sketches.types import ColumnType


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "profile",
        help="build a reference profile from Parquet / CSV / JSON lines",
        description="Stream DATA in record batches into a mergeable reference profile "
        "(per-column sketches, metadata and chunks for learned thresholds).",
    )
    p.add_argument("data", metavar="DATA", help="Parquet, CSV/TSV or JSON-lines file")
    add_option(p, "--out", help="file to write the reference to", required=True)
    add_option(p, "--model", help="model name stored in the reference", default="default")
    add_option(p, "--version", help="model version stored in the reference", default="default")
    add_option(
        p, "--chunks", type=int, default=10,
        help="split the reference in this many chunks for learned thresholds (0: none)",
    )  # fmt: skip
    add_option(
        p, "--created",
        help="creation timestamp stored in the reference (RFC 3339; default: now, UTC)",
    )  # fmt: skip
    add_option(
        p, "--types",
        help="type overrides, e.g. 'zip=categorical,flag=boolean' (numeric|categorical|boolean)",
    )  # fmt: skip
    add_option(p, "--kll-k", type=int, default=DEFAULT_KLL_K, help="KLL sketch parameter k")
    add_option(
        p, "--batch-rows", type=int, default=DEFAULT_BATCH_ROWS, help="rows per record batch"
    )
    add_option(
        p, "--label-column",
        help="column holding the ground truth: stores the reference's performance (and, for "
        "binary scores, the CBPE calibrator); the column is not profiled as a feature",
    )  # fmt: skip
    add_option(
        p, "--prediction-column", default="prediction",
        help="column holding the model's prediction (score, class or number)",
    )  # fmt: skip
    add_option(
        p, "--task", choices=TASKS,
        help="binary | multiclass | regression (default: inferred from the two columns)",
    )  # fmt: skip
    add_option(p, "--positive", default="1", help="binary: the positive class (as a string)")
    add_option(
        p, "--threshold", type=float, default=0.5,
        help="binary scores: predicted positive iff score >= threshold",
    )  # fmt: skip
    add_option(p, "--segments", help="segment columns, e.g. 'country,channel': profile the "
               "top --segment-top-k values of each on their own (the rest pooled as 'other'), "
               "the baseline of the stream's per-segment drift")
    add_option(p, "--segment-top-k", type=int, default=DEFAULT_TOP_K,
               help="values per segment column with a profile of their own")
    add_selection_options(p)
    p.set_defaults(func=run)


def parse_types(spec: str | None) -> dict[str, ColumnType]:
    """``"a=numeric,b=categorical"`` -> {"a": NUMERIC, "b": CATEGORICAL}."""
    out: dict[str, ColumnType] = {}
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        name, sep, kind = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = ColumnType(kind.strip().lower())
        except ValueError:
            raise ConfigError(
                f"bad --types entry {item!r}: use NAME=numeric|categorical|boolean"
            ) from None
    return out


def run(args: argparse.Namespace) -> int:
    if args.chunks < 0 or args.chunks == 1:
        raise ConfigError("--chunks must be 0 or at least 2")
    if not 8 <= args.kll_k <= 65535:
        raise ConfigError("--kll-k must be in 8..65535")
    created = args.created or dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    if not 0.0 <= args.threshold <= 1.0:
        raise ConfigError("--threshold must be in [0, 1]")
    data = Path(args.data)
    selection = ColumnSelection.from_flags(args.columns, args.exclude, args.timestamp_column)
    span = TimeSpan()
    stream = span.watch(iter_batches(data, selection=selection, batch_rows=args.batch_rows))
    batches: Iterator[dict[str, pa.Array]] = (b.columns for b in stream)
    collected: LabelledColumns | None = None
    if args.label_column:
        if args.label_column == args.prediction_column:
            raise ConfigError("--label-column and --prediction-column must differ")
        collected = LabelledColumns(args.prediction_column, args.label_column)
        batches = collected.strip(batches)
    # after strip: the label and prediction columns are read even when not features
    batches = (selection.apply(b) for b in batches)
    ref = build_reference(
        batches,
        model=args.model,
        version=args.version,
        created=created,
        chunks=args.chunks,
        total_rows=row_count(data),
        types=parse_types(args.types),
        kll_k=args.kll_k,
    )
    if args.segments:
        add_segments(ref, data, args, selection)
    if collected is not None:
        predictions, labels = collected.arrays()
        ref.performance = build_reference_performance(
            predictions, labels, task=args.task, positive=args.positive,
            threshold=args.threshold, chunks=args.chunks,
        )  # fmt: skip
    blob = ref.to_bytes()
    try:
        Path(args.out).write_bytes(blob)
    except OSError as exc:
        raise DriftlineError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    types = ref.types
    summary = ", ".join(f"{sum(1 for t in types.values() if t == k)} {k}" for k in ColumnType)
    print(
        f"profiled {ref.rows:,} rows x {len(types)} columns ({summary}) "
        f"-> {args.out} ({len(blob):,} bytes, {len(ref.chunks)} chunks)",
        file=sys.stderr,
    )
    if span.not_features or selection.timestamp:
        shown = ", ".join(span.not_features) or "none"
        time = f"; {span.describe()}" if selection.timestamp else ""
        print(f"not features (time columns): {shown}{time}", file=sys.stderr)
    if ref.performance is not None:
        perf = ref.performance
        shown = ", ".join(
            f"{k} {m.value:.4g}" for k, m in perf.metrics.items() if m.value is not None
        )
        print(f"performance ({perf.task}, {perf.rows:,} labelled rows): {shown}", file=sys.stderr)
    return 0


def add_segments(ref: Reference, data: Path, args: argparse.Namespace,
                 selection: ColumnSelection) -> None:
    """Per-segment profiles for ``--segments`` (a second pass over the file): each
    column's top ``--segment-top-k`` values, the rest pooled as "other"."""
    if args.segment_top_k < 1:
        raise ConfigError("--segment-top-k must be >= 1")
    rosters = {}
    for column in (c.strip() for c in args.segments.split(",") if c.strip()):
        members = roster(ref.profile, column, args.segment_top_k)
        if not members:
            raise ConfigError(f"--segments: {column!r} is not a categorical column of the data")
        rosters[column] = members
    skip = {args.label_column} if args.label_column else set()
    batches = ({k: v for k, v in selection.apply(b.columns).items() if k not in skip}
               for b in iter_batches(data, selection=selection, batch_rows=args.batch_rows,
                                     progress=False))
    ref.segments = segment_profiles(batches, rosters, parse_types(args.types))
    for column, tokens in ref.segments.items():
        print(f"segments of {column}: {len(tokens) - (OTHER in tokens)} values + other "
              f"({', '.join(sorted(value_of(t) for t in tokens if t != OTHER))})",
              file=sys.stderr)


class LabelledColumns:
    """Collects the prediction and label columns while the batches stream past, and
    drops the label column from what is profiled (as a feature it would show as drift)."""

    def __init__(self, prediction: str, label: str) -> None:
        self.prediction = prediction
        self.label = label
        self._parts: dict[str, list[AnyArray]] = {prediction: [], label: []}

    def strip(self, batches: Iterable[dict[str, pa.Array]]) -> Iterator[dict[str, pa.Array]]:
        for batch in batches:
            for name, parts in self._parts.items():
                if name not in batch:
                    flag = "--label-column" if name == self.label else "--prediction-column"
                    raise InputDataError(f"no column {name!r} in the data (see {flag})")
                parts.append(_to_numpy(batch[name]))
            yield {k: v for k, v in batch.items() if k != self.label}

    def arrays(self) -> tuple[AnyArray, AnyArray]:
        return _concat(self._parts[self.prediction]), _concat(self._parts[self.label])


def _to_numpy(arr: pa.Array) -> AnyArray:
    t = arr.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return np.asarray(arr.cast(pa.float64()).to_numpy(zero_copy_only=False))
    out = np.empty(len(arr), dtype=object)
    out[:] = arr.to_pylist()
    return out


def _concat(parts: list[AnyArray]) -> AnyArray:
    if not parts:
        return np.empty(0)
    if all(p.dtype.kind == "f" for p in parts):
        return np.concatenate(parts)
    return np.concatenate([p.astype(object) for p in parts])
