"""``driftline status`` — the current drift table per model, read from Redis.

Shows what the evaluator leader stored at its last evaluation: per column the verdict,
the metric values with their sketch error bounds (``0.31±0.01``; a ``*`` marks a rule
that fired) and n; plus the alerts firing. ``--watch`` refreshes it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from alerts.evaluator import load_results
from alerts.results import ModelResult, PerformanceResult
from driftline import monitor
from driftline.alerting import load_alerting
from driftline.commands.common import add_redis_options, redis_client
from driftline.options import add_option
from sketches.errors import ConfigError
from sketches.store import ReferenceStore
from streams.tiers import TierStore

VERDICT_STYLE = {"drift": "bold red", "no_drift": "green", "insufficient_data": "yellow"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="current drift table per model")
    add_option(p, "--model", help="only this model (default: every evaluated model)")
    add_option(p, "--watch", type=float, help="refresh every SECONDS until Ctrl-C")
    add_option(p, "--models-config", help="the worker's models file: its models are listed "
               "besides every model with a reference")
    add_option(p, "--topic", help="predictions topic (for the storage line)",
               default="predictions")
    add_redis_options(p)
    p.set_defaults(func=run)


def render(results: list[ModelResult], usage: dict[str, dict[str, Any]] | None = None) -> Group:
    if not results:
        return Group(Text("no model evaluated yet (is a worker running, with a reference?)"))
    parts: list[Table | Text] = []
    for r in results:
        window = (f"{_t(r.window_start)} → {_t(r.window_end)}")
        title = (f"{r.model} (version {r.version}) — {r.status} — n={r.rows} — "
                 f"window {window} — evaluated {_t(r.evaluated_at)}")
        parts.append(columns_table(r, title))
        if r.traffic:
            total = sum(r.traffic.values()) or 1
            parts.append(Text("traffic by version: " + ", ".join(
                f"{v} {n / total:.1%} (n={n})" for v, n in sorted(r.traffic.items()))))
        for suffix, scoped in sorted(r.scopes.items()):
            what = suffix.replace("@version=", "version ").replace("@vs=", " vs version ")
            parts.append(columns_table(scoped, f"{r.model} {what} — {scoped.status} — "
                                               f"n={scoped.rows}"))
        if r.firing:
            parts.append(Text("firing: " + ", ".join(f"{a} ({r.severities.get(a, '?')})"
                                                     for a in r.firing), style="bold red"))
        if r.latency_ms:
            parts.append(Text("latency ms: " + ", ".join(f"p{float(q) * 100:g}={v:.1f}"
                                                         for q, v in sorted(r.latency_ms.items()))))
        if r.performance is not None:
            parts.append(performance_table(r.performance))
        if usage and r.model in usage:
            parts.append(Text(storage_line(usage[r.model], len(r.columns))))
    return Group(*parts)


def performance_table(p: PerformanceResult) -> Table:
    """Realized beside estimated (CBPE) and reference performance, and label health."""
    ratio = "n/a" if p.label_ratio is None else f"{p.label_ratio:.1%}"
    delay = ", ".join(f"p{float(q) * 100:g}={v:.3g}s" for q, v in sorted(p.delay_s.items()))
    c = p.counters
    title = (f"performance — {p.state} — {p.labels} labels / {p.predictions} predictions "
             f"(label ratio {ratio}) — delay {delay or 'n/a'} — waiting {c.get('pending', 0)}, "
             f"expired {c.get('expired', 0)}, orphan {c.get('orphan', 0)}, duplicate "
             f"{c.get('duplicate', 0)}, late {c.get('late', 0)}, forgotten "
             f"{c.get('forgotten', 0)}, change detections {p.detections}")
    table = Table(title=title, title_justify="left", expand=False)
    for col in ("metric", "realized", "estimated (CBPE)", "reference"):
        table.add_column(col)
    names = sorted(set(p.metrics) | {k.removeprefix("estimated_") for k in p.estimated}
                   | set(p.reference))
    for name in names:
        real = p.metrics.get(name)
        est = p.estimated.get(f"estimated_{name}")
        ref = p.reference.get(name)
        table.add_row(
            name,
            "" if real is None or real.value is None else f"{real.value:.3f}",
            "" if est is None or est.value is None else f"{est.value:.3f}±{est.error_bound:.2g}",
            "" if ref is None else f"{ref:.3f}")
    return table


def columns_table(r: ModelResult, title: str) -> Table:
    """One scope's columns: verdict, counts, nulls and each metric with its bound."""
    table = Table(title=title, title_justify="left", expand=False)
    for col in ("column", "type", "verdict", "n", "nulls", "value±bound (*=rule fired)"):
        table.add_column(col)
    for c in sorted(r.columns.values(), key=lambda c: (c.verdict != "drift", c.column)):
        metrics = "  ".join(
            f"{name} {m.value:.3g}±{m.error_bound:.2g}{'*' if m.breached else ''}"
            for name, m in sorted(c.metrics.items())
            if m.value is not None and m.threshold is not None and name != "type_mismatch"
        )
        nulls = "" if c.null_ratio is None else f"{c.null_ratio:.1%}"
        table.add_row(c.column, c.type, Text(c.verdict, style=VERDICT_STYLE.get(c.verdict, "")),
                      str(c.count), nulls, metrics)
    return table


def storage_line(u: dict[str, Any], columns: int) -> str:
    """One line on what the model's windows take in Redis (from the last compaction)."""
    total = u["partition_bytes"] + u["record_bytes"]
    rec = u["records"]
    per_col = f", ≈ {total / columns / 1024:.0f} KiB per column" if columns else ""
    return (f"redis: {total / 2**20:.2f} MiB of window state{per_col} — "
            f"{u['partition_blobs']} open-window blobs on {u['partitions']} partitions "
            f"({u['partition_bytes'] / 2**20:.2f} MiB), records {rec.get('w', 0)} windows / "
            f"{rec.get('h', 0)} hours / {rec.get('d', 0)} days "
            f"({u['record_bytes'] / 2**20:.2f} MiB)")


def _t(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC).strftime("%H:%M:%S")


def run(args: argparse.Namespace) -> int:
    client = redis_client(args)
    console = Console()
    configured, _ = load_alerting(args.models_config)
    refs = ReferenceStore(client, args.key_prefix)

    tiers = TierStore(client, prefix=args.key_prefix, topic=args.topic)

    def snapshot() -> list[ModelResult]:
        # The models the evaluator evaluates (models file + reference index), read by key:
        # the keyspace is never scanned.
        models = [args.model] if args.model else monitor.evaluated_models(configured, refs)
        return load_results(client, args.key_prefix, models)

    def usage(results: list[ModelResult]) -> dict[str, dict[str, Any]]:
        return {r.model: u for r in results if (u := tiers.usage(r.model)) is not None}

    results = snapshot()
    if args.model and not results:
        known = [r.model for r in load_results(client, args.key_prefix,
                                               monitor.evaluated_models(configured, refs))]
        raise ConfigError(f"unknown model {args.model!r}: no evaluation stored under prefix "
                          f"{args.key_prefix!r} (evaluated: {', '.join(known) or 'none'})")
    if not args.watch:
        console.print(render(results, usage(results)))
        return 1 if any(r.status == "drift" for r in results) else 0
    with Live(render(results, usage(results)), console=console, refresh_per_second=4) as live:
        while True:
            time.sleep(args.watch)
            now = snapshot()
            live.update(render(now, usage(now)))
