"""Operational health of one model: volume, latency, staleness, invalid / late ratio and
consumer lag as ``operational`` checks (alert ids ``model/-/<metric>``, ``column: null``),
stepped by the evaluator through the same alert state machine as drift.

Pure: :func:`checks` takes plain figures (:class:`HealthFigures`, read by a
:class:`HealthSource` — :class:`streams.health_source.StoredHealth` in a worker), the
model's :class:`HealthRules` and ``now``. What is judged:

- ``volume_drop`` / ``volume_spike`` — the events of the latest *complete* window (event
  time: every partition that carries the model has passed its end) against the median of
  the ``trailing_windows`` before it. Windows without a single event are left out of the
  expectation, and an empty window or the first one after such a gap is not judged: no
  event at all is a stall, which is the ``stale`` alert's business (one alert per cause).
- ``latency_p50`` / ``latency_p95`` / ``latency_p99`` — the latest complete window's
  quantile of ``latency_ms`` against an absolute maximum (values in seconds);
  ``latency_rise`` — its p95 against the median p95 of the trailing windows.
- ``stale`` — wall-clock seconds since a worker last accepted an event of the model (the
  checkpoint stamps it): noticed although event time stops when the producer does.
- ``invalid_ratio`` — the dead-letter share of *all* events of the topic (a record that
  does not decode names no model) over the last ``ratio_window``; ``late_ratio`` — the
  model's late events over its late + accepted ones, same period; ``consumer_lag`` —
  records behind the log end, summed over the topic's partitions.

Not enough data (a short history, too few events in a window) is ``None``: the alert holds
its state. A level the trailing windows have held for more than half of them is the new
normal (median): a drop that lasts longer than ``trailing_windows / 2`` windows resolves.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from alerts.outcome import Check
from sketches.types import MetricValue

KIND = "operational"
RISE_QUANTILE = 0.95
"""The quantile ``latency_rise`` compares (p99 of a small window rests on a few events)."""
QUANTILE_KEYS: Mapping[str, float] = {"latency_p50": 0.5, "latency_p95": 0.95,
                                      "latency_p99": 0.99}


@dataclass(frozen=True)
class HealthRules:
    """``[models.M.health]`` (README, "Operational health"); ``None`` turns a check off.
    Durations in seconds. ``stale_after_s=None`` with ``stale_default`` means "three
    windows, at least 5 minutes" (:meth:`stale_limit`)."""

    volume_drop: float | None = 0.5
    volume_spike: float | None = None
    trailing_windows: int = 12
    min_trailing: int = 3
    min_events: int = 30
    latency_s: Mapping[str, float] = field(default_factory=dict)
    """``latency_p50`` / ``latency_p95`` / ``latency_p99`` -> maximum seconds."""
    latency_rise: float | None = None
    stale_after_s: float | None = None
    stale_default: bool = True
    max_invalid_ratio: float | None = None
    max_late_ratio: float | None = None
    max_lag: int | None = None
    ratio_window_s: float | None = None
    """Period of the invalid / late ratios (None: two windows)."""

    def stale_limit(self, window_ms: int) -> float | None:
        if self.stale_after_s is not None:
            return self.stale_after_s
        return max(3 * window_ms / 1000, 300.0) if self.stale_default else None

    def ratio_period(self, window_ms: int) -> float:
        return self.ratio_window_s if self.ratio_window_s is not None else 2 * window_ms / 1000


@dataclass(frozen=True)
class WindowFigures:
    """One complete tumbling window of the model (all partitions and versions)."""

    start_ms: int
    rows: int
    latency_s: Mapping[float, float] = field(default_factory=dict)
    """quantile (0.5, 0.95, 0.99) -> seconds; empty when the events carry no latency."""
    versions: Mapping[str, tuple[int, Mapping[float, float]]] = field(default_factory=dict)
    """When the window holds several versions: version -> (its events, its latency)."""


@dataclass(frozen=True)
class Ratio:
    """Events counted over the last ratio period (wall clock)."""

    part: int
    whole: int

    @property
    def value(self) -> float | None:
        return self.part / self.whole if self.whole > 0 else None


@dataclass(frozen=True)
class HealthFigures:
    windows: Sequence[WindowFigures] = ()
    """The latest complete window last, the trailing ones before it, oldest first (a
    window without events is there with ``rows == 0``)."""
    last_seen: float | None = None
    """Wall clock (epoch s) a worker last accepted an event of the model."""
    invalid: Ratio | None = None
    late: Ratio | None = None
    lag: int | None = None
    topic: str = "predictions"


class HealthSource(Protocol):
    def figures(self, model: str, *, window_ms: int, windows: int, ratio_s: float,
                now: float) -> HealthFigures:
        """The model's figures: its last ``windows`` + 1 complete windows, the ratios over
        the last ``ratio_s`` seconds of wall clock, last-seen time and lag."""
        ...


def checks(rules: HealthRules, fig: HealthFigures, *, model: str, window_ms: int,
           now: float) -> list[Check]:
    """Every enabled health check of one model (see the module doc)."""
    out = _volume(rules, fig, model) + _latency(rules, fig, model) + _version_latency(
        rules, fig, model)
    stale = rules.stale_limit(window_ms)
    if stale is not None:
        age = None if fig.last_seen is None else max(0.0, now - fig.last_seen)
        out.append(_check(
            "stale", age, stale, "max", 0,
            None if age is None else age >= stale,
            f"{model}: no event for {_s(age)} (stale after {_s(stale)})"
            if age is not None and age >= stale
            else f"{model}: events again (last {_s(age)} ago)"))
    for metric, ratio, limit, whose in (
            ("invalid_ratio", fig.invalid, rules.max_invalid_ratio,
             f"all models of topic {fig.topic}"),
            ("late_ratio", fig.late, rules.max_late_ratio, model)):
        if limit is None:
            continue
        value = ratio.value if ratio is not None else None
        n = ratio.whole if ratio is not None else 0
        out.append(_check(metric, value, limit, "max", n,
                          None if value is None else value > limit,
                          f"{model}: {metric.replace('_', ' ')} {_pct(value)} above "
                          f"{_pct(limit)} ({whose}, n={n})"
                          if value is not None and value > limit else
                          f"{model}: {metric.replace('_', ' ')} back to {_pct(value)} "
                          f"({whose})"))
    if rules.max_lag is not None:
        lag = fig.lag
        out.append(_check("consumer_lag", None if lag is None else float(lag),
                          float(rules.max_lag), "max", 0,
                          None if lag is None else lag > rules.max_lag,
                          f"{model}: consumer lag {lag} records above {rules.max_lag} "
                          f"(topic {fig.topic})" if lag is not None and lag > rules.max_lag
                          else f"{model}: consumer lag back to {lag} records"))
    return out


def _judged(rules: HealthRules, fig: HealthFigures
            ) -> tuple[WindowFigures, list[WindowFigures]] | None:
    """The latest complete window and the trailing windows with events, or None when it is
    not to be judged (too short a history, empty, or the first after a gap)."""
    if len(fig.windows) < 2:
        return None
    last, before = fig.windows[-1], fig.windows[-1 - rules.trailing_windows:-1]
    if last.rows == 0 or before[-1].rows == 0:
        return None
    trailing = [w for w in before if w.rows > 0]
    if len(trailing) < rules.min_trailing:
        return None
    return last, trailing


def _volume(rules: HealthRules, fig: HealthFigures, model: str) -> list[Check]:
    wanted = [(m, v) for m, v in (("volume_drop", rules.volume_drop),
                                  ("volume_spike", rules.volume_spike)) if v is not None]
    if not wanted:
        return []
    judged = _judged(rules, fig)
    out = []
    for metric, limit in wanted:
        assert limit is not None
        if judged is None:
            out.append(_check(metric, None, limit, "min" if metric == "volume_drop" else "max",
                              0, None, ""))
            continue
        last, trailing = judged
        expected = statistics.median(w.rows for w in trailing)
        ratio = last.rows / expected if expected > 0 else None
        enough = ratio is not None and expected >= rules.min_events
        drop = metric == "volume_drop"
        breached = (None if not enough or ratio is None
                    else ratio < limit if drop else ratio > limit)
        what = "fell to" if drop else "rose to"
        out.append(_check(
            metric, ratio, limit, "min" if drop else "max", last.rows, breached,
            f"{model}: events per window {what} {last.rows} ({_pct(ratio)} of the "
            f"{expected:g} expected from the last {len(trailing)} windows)"
            if breached else
            f"{model}: events per window back to {last.rows} ({_pct(ratio)} of {expected:g})"))
    return out


def _latency(rules: HealthRules, fig: HealthFigures, model: str) -> list[Check]:
    if not rules.latency_s and rules.latency_rise is None:
        return []
    last = fig.windows[-1] if fig.windows else None
    usable = last is not None and last.rows >= rules.min_events and bool(last.latency_s)
    out = []
    for metric, limit in sorted(rules.latency_s.items()):
        q = QUANTILE_KEYS[metric]
        value = last.latency_s.get(q) if usable and last is not None else None
        out.append(_check(
            metric, value, limit, "max", last.rows if last else 0,
            None if value is None else value > limit,
            f"{model}: latency p{round(q * 100)} {_s(value)} above the maximum {_s(limit)}"
            if value is not None and value > limit else
            f"{model}: latency p{round(q * 100)} back to {_s(value)}"))
    if rules.latency_rise is not None:
        judged = _judged(rules, fig)
        ratio = None
        if judged is not None and usable:
            now_q = judged[0].latency_s.get(RISE_QUANTILE)
            before = [w.latency_s[RISE_QUANTILE] for w in judged[1]
                      if w.rows >= rules.min_events and RISE_QUANTILE in w.latency_s]
            if now_q is not None and len(before) >= rules.min_trailing:
                base = statistics.median(before)
                ratio = now_q / base if base > 0 else None
        limit = rules.latency_rise
        out.append(_check(
            "latency_rise", ratio, limit, "max", last.rows if last else 0,
            None if ratio is None else ratio >= limit,
            f"{model}: latency p95 rose x{ratio:.2f} against the trailing windows "
            f"(alert at x{limit:g})" if ratio is not None and ratio >= limit else
            f"{model}: latency p95 back to x{ratio or 0:.2f} of the trailing windows"))
    return out


def _version_latency(rules: HealthRules, fig: HealthFigures, model: str) -> list[Check]:
    """The latency checks of each version when the latest window holds several (ids
    ``model/-/latency_p99@version=8``): a slow new version hides in the model's quantiles.
    Volume stays per model — a moving traffic split between versions is no incident."""
    last = fig.windows[-1] if fig.windows else None
    if last is None or len(last.versions) < 2:
        return []
    out = []
    for version in sorted(last.versions):
        series = [WindowFigures(w.start_ms, *w.versions.get(version, (0, {})))
                  for w in fig.windows]
        found = _latency(rules, HealthFigures(windows=series), f"{model} version {version}")
        out += [dataclasses.replace(c, scope=f"@version={version}", version=version)
                for c in found]
    return out


def _check(metric: str, value: float | None, threshold: float, rule: str, count: int,
           breached: bool | None, note: str) -> Check:
    return Check(None, metric, None if value is None else MetricValue(value, 0.0),
                 threshold, breached, kind=KIND, rule=rule, count=count, note=note)


def _s(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"


def _pct(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.1%}"


def model_checks(source: HealthSource | None, rules: HealthRules, *, model: str,
                 window_ms: int, now: float) -> list[Check]:
    """The evaluator's one call per model and evaluation: read the figures, judge them.
    Runs every evaluation, whether or not the model's windows changed (``stale`` grows
    on the wall clock)."""
    if source is None or not _enabled(rules, window_ms):
        return []
    fig = source.figures(model, window_ms=window_ms, windows=rules.trailing_windows,
                         ratio_s=rules.ratio_period(window_ms), now=now)
    return checks(rules, fig, model=model, window_ms=window_ms, now=now)


def _enabled(rules: HealthRules, window_ms: int) -> bool:
    return any(x is not None for x in (
        rules.volume_drop, rules.volume_spike, rules.latency_rise, rules.max_invalid_ratio,
        rules.max_late_ratio, rules.max_lag, rules.stale_limit(window_ms))) or bool(
        rules.latency_s)
