"""``driftline profile DATA --out REF``: build a reference profile from a data file."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from driftline.datafiles import DEFAULT_BATCH_ROWS, iter_columns, row_count
from driftline.options import add_option
from sketches.errors import ConfigError, DriftlineError
from sketches.numeric import DEFAULT_KLL_K
from sketches.reference import build_reference
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
    data = Path(args.data)
    ref = build_reference(
        iter_columns(data, batch_rows=args.batch_rows),
        model=args.model,
        version=args.version,
        created=created,
        chunks=args.chunks,
        total_rows=row_count(data),
        types=parse_types(args.types),
        kll_k=args.kll_k,
    )
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
    return 0
