"""How soon ground truth sees an accuracy fall (issue #13): the performance alert, in
event-time windows, and River's ADWIN, in outcomes — and that the same stream without
the fall raises neither.

The stream is the one ``tests/e2e/test_performance_e2e.py`` sends (:func:`generate`, which
the test imports): binary scores s ~ Beta(0.5, 0.5), calibrated labels (P(y=1 | s) = s,
accuracy ~0.82), 400 predictions per 5 s window, 12 windows, 90 % of them labeled; from
window 6 on, labels flip so accuracy falls by 0.15. No wall clock anywhere: both figures
are counted from the data with the real code.

- **alert**: for each window w, the performance checks of :func:`alerts.performance.evaluate`
  (rule ``accuracy = { min = 0.72 }``, ``min_labels = 300``, ``measure = 30s``) on the
  join's aggregates of windows w-5..w, as the evaluator sees them when the watermark
  reaches w's last event. Figure: the first w that breaches, as *k* = windows after the
  change point in the measurement (1 = the first window after it). The configured bound:
  the measure span, 6 windows (then the measurement holds only windows after the change).
- **detector**: the labeled outcomes (0/1 error) in stream order through
  :class:`alerts.detectors.DetectorState` (River's ADWIN, default delta 0.002). Figure: the
  outcomes after the change point fed before its first detection after it; detections
  before the change (false alarms) and on the flat stream (same length) are counted.

Writes the ``## performance delay`` section of bench/RESULTS.md.
Run: ``python bench/performance_delay.py [--seeds 1000]`` (about a minute).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import textwrap
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from alerts.detectors import DetectorState
from alerts.performance import PerformanceConfig, evaluate
from bench._results import write_section
from sketches.performance import score_bin
from sketches.performance_rules import PerformanceRules

WINDOW_S = 5
WINDOWS = 12
PER_WINDOW = 400
CHANGE_AT = WINDOWS // 2
"""The first window whose labels are flipped."""
DROP = 0.15
LABELED = 0.9
MEASURE_S = 30
ACCURACY_MIN = 0.72
MIN_LABELS = 300
CONFIG = PerformanceConfig(
    task="binary", min_labels=MIN_LABELS, measure_ms=MEASURE_S * 1000, label_wait_ms=5000,
    detector="none", rules=PerformanceRules.parse({"accuracy": {"min": ACCURACY_MIN}}))
MEASURE_WINDOWS = MEASURE_S // WINDOW_S
"""The alert's configured bound, in windows after the change point."""
DETECTION_DELAY_BOUND = 1000
"""ADWIN's stated delay on this stream, in outcomes after the change (the e2e test holds
the live run to it): above the largest of 1,000 seeds (845)."""


@dataclass(frozen=True)
class Window:
    """One 5 s window of a model's stream (event i at :func:`event_ms`)."""

    scores: np.ndarray
    truth: np.ndarray
    x: np.ndarray
    labeled: np.ndarray

    @property
    def correct(self) -> np.ndarray:
        """Of the labeled events: was the prediction (score >= 0.5) right?"""
        return ((self.scores >= 0.5) == self.truth)[self.labeled]


def generate(seed: int, drop: bool) -> list[Window]:
    """The e2e test's stream of one model (``drop``: accuracy falls by DROP at CHANGE_AT)."""
    rng = np.random.default_rng(seed)
    out = []
    for w in range(WINDOWS):
        scores = rng.beta(0.5, 0.5, PER_WINDOW)
        truth = rng.random(PER_WINDOW) < scores  # calibrated: P(y=1 | s) = s
        if drop and w >= CHANGE_AT:
            acc = float(np.mean(np.maximum(scores, 1 - scores)))
            truth = truth ^ (rng.random(PER_WINDOW) < DROP / (2 * acc - 1))
        out.append(Window(scores, truth, rng.normal(size=PER_WINDOW),
                          rng.random(PER_WINDOW) < LABELED))
    return out


def outcomes_before_change(stream: list[Window]) -> int:
    return sum(int(w.labeled.sum()) for w in stream[:CHANGE_AT])


def window_fields(w: Window) -> dict[str, str]:
    """What the label join stores for the window once every label came."""
    c: Counter[str] = Counter({"p": PER_WINDOW, "n": int(w.labeled.sum())})
    for s, y in zip(w.scores[w.labeled], w.truth[w.labeled], strict=True):
        lab = "1" if y else "0"
        c[f"c:{'1' if s >= 0.5 else '0'}|{lab}"] += 1
        c[f"s:{lab}:{score_bin(float(s))}"] += 1
    return {k: str(v) for k, v in c.items()}


class _Join:
    """The join's windows, as streams.join.JoinStore returns them (alerts.performance)."""

    def __init__(self, stream: list[Window]) -> None:
        self.rows = [(w * WINDOW_S * 1000, window_fields(win)) for w, win in enumerate(stream)]

    def windows(self, model: str, start_ms: int, end_ms: int
                ) -> dict[str, list[tuple[int, dict[str, str]]]]:
        return {"1": [(s, f) for s, f in self.rows if start_ms <= s < end_ms]}

    def counters(self, model: str) -> dict[str, int]:
        return {}

    def outcomes(self, model: str, after: str, count: int = 0
                 ) -> list[tuple[str, str, float, int | None]]:
        return []

    def trim(self, model: str, upto: str) -> None:
        pass

    def expire(self, model: str) -> int:
        return 0


def event_ms(w: int, i: int) -> int:
    """Event i of window w: its time in ms from the stream's start (whole ms)."""
    return w * WINDOW_S * 1000 + i * WINDOW_S * 1000 // PER_WINDOW


def last_event_ms(w: int) -> int:
    """The watermark once window w is in: its last event's time."""
    return event_ms(w, PER_WINDOW - 1)


def alert_windows(stream: list[Window]) -> tuple[int | None, int]:
    """(k of the first breach at or after the change, or None; breaches before it)."""
    join = _Join(stream)
    early = 0
    for w in range(WINDOWS):
        [check] = evaluate(CONFIG, "m", join, end_ms=last_event_ms(w),
                           measure_ms=MEASURE_S * 1000, reference=None, estimate=None,
                           detector=None, key=b"", now=0.0).checks
        if check.breached and w < CHANGE_AT:
            early += 1
        elif check.breached:
            return w - CHANGE_AT + 1, early
    return None, early


def detections(stream: list[Window]) -> list[int]:
    """ADWIN's detections (outcome counts) on the stream's labeled outcomes, in order."""
    errors = np.concatenate([1.0 - w.correct for w in stream])
    rows = [(f"{i + 1}-0", "1", float(e), i + 1) for i, e in enumerate(errors)]
    return [n for _, n in DetectorState().update(rows, "adwin", False, 0.0)]


def detector_delay(stream: list[Window]) -> tuple[int | None, int]:
    """(outcomes after the change before the first detection after it; false alarms)."""
    change_n = outcomes_before_change(stream)
    hits = detections(stream)
    after = [n - change_n for n in hits if n > change_n]
    return (after[0] if after else None), sum(1 for n in hits if n <= change_n)


@dataclass(frozen=True)
class Seed:
    seed: int
    k: int | None
    early_alerts: int
    delay: int | None
    early_detections: int
    before_change: int
    after_change: int
    flat_alerts: int
    flat_detections: int
    flat_outcomes: int


def measure(seed: int) -> Seed:
    """One seed: the falling stream (``seed``) and the flat one (``seed + 1``), as the e2e
    test pairs them."""
    fall, flat = generate(seed, True), generate(seed + 1, False)
    k, early = alert_windows(fall)
    delay, false_hits = detector_delay(fall)
    flat_k, flat_early = alert_windows(flat)
    before = outcomes_before_change(fall)
    return Seed(seed, k, early, delay, false_hits, before,
                sum(int(w.labeled.sum()) for w in fall) - before,
                flat_early + (flat_k is not None), len(detections(flat)),
                sum(int(w.labeled.sum()) for w in flat))


def pct(values: list[int], q: float) -> int:
    return int(np.percentile(values, q, method="nearest"))


def report(rows: list[Seed], e2e_seed: int) -> str:
    ks = [r.k for r in rows if r.k is not None]
    delays = [r.delay for r in rows if r.delay is not None]
    hist = Counter(ks)
    mine = next((r for r in rows if r.seed == e2e_seed), None)
    per_window = PER_WINDOW * LABELED
    flat_hits = [r.seed + 1 for r in rows if r.flat_detections]
    head = (
        f"`bench/performance_delay.py`, {date.today().isoformat()}, {platform.machine()}, "
        f"{len(rows)} seeds (falling stream: seed s, flat stream: s + 1, as the e2e test "
        f"pairs them). The e2e test's stream (`generate`): {WINDOWS} windows of {WINDOW_S} s, "
        f"{PER_WINDOW} predictions each, {LABELED:.0%} labeled, accuracy ~0.82 falling by "
        f"{DROP} from window {CHANGE_AT}; rule `accuracy = {{ min = {ACCURACY_MIN} }}`, "
        f"`min_labels = {MIN_LABELS}`, `measure = \"{MEASURE_S}s\"`; River ADWIN "
        "(delta 0.002). Counted from the data with the real code (alerts.performance, "
        "alerts.detectors), no clock.")
    tail = (
        "Alert after k windows: " + ", ".join(f"k = {k}: {hist[k]} seeds"
                                              for k in sorted(hist))
        + f"; no alert: {sum(r.k is None for r in rows)}. ADWIN's median delay is "
        f"{statistics.median(delays) / per_window:.2f} windows of labels ({per_window:.0f} "
        f"labeled outcomes a window), its maximum {max(delays) / per_window:.2f}; it missed "
        f"the change on {sum(r.delay is None for r in rows)} seeds. Before the change: "
        f"{sum(r.early_detections for r in rows)} ADWIN detections (over "
        f"{sum(r.before_change for r in rows):,} outcomes) and "
        f"{sum(r.early_alerts for r in rows)} performance alerts. **Flat stream, same "
        f"length** ({min(r.flat_outcomes for r in rows):,}–"
        f"{max(r.flat_outcomes for r in rows):,} "
        f"labeled outcomes, {WINDOWS} windows), all {len(rows)} seeds together "
        f"({sum(r.flat_outcomes for r in rows):,} outcomes): performance alerts "
        f"{sum(r.flat_alerts for r in rows)}, ADWIN detections "
        f"{sum(r.flat_detections for r in rows)}"
        + (f" (flat stream of seed {', '.join(map(str, flat_hits))})" if flat_hits else "")
        + ".")
    if mine is not None:
        tail += (
            f" The e2e test's seed ({e2e_seed}): alert at k = {mine.k}, ADWIN after "
            f"{mine.delay} outcomes; the e2e test prints its live figures beside these (it "
            "joins outcomes in Kafka's order, which may differ from the generated one, and "
            "a partly labeled window may fire one window earlier).")
    table = [
        "| figure | min | median | p95 | max | bound |",
        "|---|---:|---:|---:|---:|---:|",
        f"| performance alert: windows after the change point in the first breaching "
        f"measurement | {min(ks)} | {statistics.median(ks):g} | {pct(ks, 95)} | {max(ks)} | "
        f"{MEASURE_WINDOWS} (the measure span) |",
        f"| ADWIN: outcomes after the change point before its detection | {min(delays)} | "
        f"{statistics.median(delays):g} | {pct(delays, 95)} | {max(delays)} | "
        f"{DETECTION_DELAY_BOUND:,} (stated; {min(r.after_change for r in rows):,}+ labeled "
        "outcomes follow the change) |",
    ]
    return "\n".join(["## performance delay", "", textwrap.fill(head, 90), "", *table, "",
                      textwrap.fill(tail, 90)]) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=1000)
    ap.add_argument("--e2e-seed", type=int, default=11)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows = [measure(s) for s in range(1, args.seeds + 1)]
    text = report(rows, args.e2e_seed)
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
