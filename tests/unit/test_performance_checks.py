"""alerts.performance and alerts.detectors: the checks an evaluation makes from the label
join's aggregates, label health and River's detectors (an in-memory source stands in for
the join: this is the pure logic between it and the alert state machine)."""

from __future__ import annotations

import numpy as np
import pytest

from alerts.detectors import DetectorState
from alerts.performance import PerformanceConfig, evaluate
from sketches.errors import StateFormatError
from sketches.performance import score_bin
from sketches.performance_rules import PerformanceRules

KEY = b"k" * 32
WINDOW = 60_000


class Source:
    """Windows of aggregates and an outcome stream, as streams.join.JoinStore gives them."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.stream: list[tuple[str, str, float]] = []
        self.trimmed: str | None = None

    def add(self, start: int, fields: dict[str, int]) -> None:
        self.rows.setdefault("v1", []).append((start, {k: str(v) for k, v in fields.items()}))

    def windows(self, model: str, start_ms: int, end_ms: int
                ) -> dict[str, list[tuple[int, dict[str, str]]]]:
        return {v: [(s, f) for s, f in rows if start_ms <= s < end_ms]
                for v, rows in self.rows.items()}

    def counters(self, model: str) -> dict[str, int]:
        return {"pending": 3}

    def outcomes(self, model: str, after: str, count: int = 100_000
                 ) -> list[tuple[str, str, float]]:
        seq = int(after.split("-")[0])
        return [r for r in self.stream if int(r[0].split("-")[0]) > seq][:count]

    def trim(self, model: str, upto: str) -> None:
        self.trimmed = upto

    def expire(self, model: str) -> int:
        return 0


def binary_fields(correct: int, wrong: int, predictions: int) -> dict[str, int]:
    return {"p": predictions, "n": correct + wrong, "c:1|1": correct, "c:1|0": wrong,
            f"s:1:{score_bin(0.9)}": correct, f"s:0:{score_bin(0.9)}": wrong}


def run(src: Source, cfg: PerformanceConfig, blob: bytes | None = None, now: float = 0.0):  # type: ignore[no-untyped-def]
    return evaluate(cfg, "m", src, end_ms=10 * WINDOW, measure_ms=5 * WINDOW, reference=None,
                    estimate=None, detector=blob, key=KEY, now=now)


def test_accuracy_rule_fires_below_its_minimum_and_not_above() -> None:
    cfg = PerformanceConfig(min_labels=100, detector="none",
                            rules=PerformanceRules.parse({"accuracy": {"min": 0.8}}))
    src = Source()
    for w in range(5, 10):
        src.add(w * WINDOW, binary_fields(140, 60, 220))  # accuracy 0.7
    [check] = run(src, cfg).checks
    assert (check.metric, check.kind, check.column, check.breached) == (
        "accuracy", "performance", None, True)
    assert check.value is not None and check.value.value == pytest.approx(0.7)
    assert check.count == 1000
    good = Source()
    for w in range(5, 10):
        good.add(w * WINDOW, binary_fields(180, 20, 220))
    assert run(good, cfg).checks[0].breached is False


def test_too_few_labels_is_its_own_state_not_a_verdict() -> None:
    cfg = PerformanceConfig(min_labels=500, detector="none",
                            rules=PerformanceRules.parse({"accuracy": {"min": 0.8}}))
    src = Source()
    src.add(9 * WINDOW, binary_fields(10, 90, 200))
    out = run(src, cfg)
    assert out.checks[0].breached is None
    assert out.result.state == "insufficient_labels" and out.result.metrics == {}


def test_label_ratio_collapse_is_an_operational_check_on_windows_old_enough() -> None:
    cfg = PerformanceConfig(min_labels=100, detector="none", min_label_ratio=0.5,
                            label_wait_ms=2 * WINDOW)
    src = Source()
    for w in range(3, 8):  # old enough: 10 % labeled
        src.add(w * WINDOW, binary_fields(15, 5, 200))
    for w in (8, 9):  # recent: no labels yet, and that is expected
        src.add(w * WINDOW, {"p": 200})
    [check] = run(src, cfg).checks
    assert (check.metric, check.kind, check.breached) == ("label_ratio", "operational", True)
    assert check.value is not None and check.value.value == pytest.approx(0.1)
    healthy = Source()
    for w in range(3, 8):
        healthy.add(w * WINDOW, binary_fields(150, 30, 200))
    assert run(healthy, cfg).checks[0].breached is False
    assert run(Source(), cfg).checks[0].breached is None  # no predictions: nothing to judge


def test_detector_sees_each_outcome_once_across_evaluations_and_holds_then_resolves() -> None:
    cfg = PerformanceConfig(min_labels=1, detector="adwin", hold_s=60.0)
    rng = np.random.default_rng(3)
    errors = np.concatenate([rng.random(1500) < 0.1, rng.random(1500) < 0.5]).astype(float)
    src = Source()
    src.stream = [(f"{i + 1}-0", "v1", float(e)) for i, e in enumerate(errors)]
    blob = None
    seen_total = 0
    fired_at = None
    for step, now in enumerate(range(0, 3000, 10)):
        chunk = src.stream[:(step + 1) * 100]
        cur = Source()
        cur.stream = chunk
        out = run(cur, cfg, blob, now=float(now))
        assert out.detector is not None
        blob = out.detector.to_bytes(KEY)
        seen_total = sum(out.detector.seen.values())
        [check] = out.checks
        if check.breached and fired_at is None:
            fired_at = seen_total
        if seen_total == len(errors):
            break
    assert seen_total == len(errors)  # each outcome fed exactly once
    assert fired_at is not None and 1500 < fired_at <= 2300, fired_at
    later = run(src, cfg, blob, now=float(now) + 120)  # hold passed, no new change
    assert later.checks[0].breached is False


def test_detector_state_is_authenticated() -> None:
    state = DetectorState()
    state.update([("1-0", "v1", 0.0)], "page_hinkley", True, 0.0)
    blob = state.to_bytes(KEY)
    assert DetectorState.from_bytes(blob, KEY).seen == {"v1": 1}
    with pytest.raises(StateFormatError):
        DetectorState.from_bytes(blob, b"x" * 32)
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(StateFormatError):
        DetectorState.from_bytes(tampered, KEY)
    with pytest.raises(ValueError, match="ddm"):
        DetectorState().update([("1-0", "v1", 3.5)], "ddm", True, 0.0)
