"""alerts.performance and alerts.detectors: the checks an evaluation makes from the label
join's aggregates, label health and River's detectors (an in-memory source stands in for
the join: this is the pure logic between it and the alert state machine)."""

from __future__ import annotations

import hashlib
import hmac
import pickle
from dataclasses import dataclass, field

import numpy as np
import pytest

from alerts.detectors import DetectorState
from alerts.evaluator import ModelRules
from alerts.machine import Emit, Policy, Track
from alerts.machine import step as machine_step
from alerts.outcome import build_alert
from alerts.performance import PerformanceConfig, estimated, evaluate
from sketches.errors import StateFormatError
from sketches.performance import score_bin
from sketches.performance_rules import PerformanceRules
from sketches.profile import DatasetProfile
from sketches.reference import Reference
from sketches.reference_performance import build_reference_performance

KEY = b"k" * 32
WINDOW = 60_000


class Source:
    """Windows of aggregates and an outcome stream, as streams.join.JoinStore gives them."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.stream: list[tuple[str, str, float, int | None]] = []
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
                 ) -> list[tuple[str, str, float, int | None]]:
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
    src.stream = [(f"{i + 1}-0", "v1", float(e), i + 1) for i, e in enumerate(errors)]
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
    state.update([("1-0", "v1", 0.0, 1)], "page_hinkley", True, 0.0)
    blob = state.to_bytes(KEY)
    assert DetectorState.from_bytes(blob, KEY).seen == {"v1": 1}
    with pytest.raises(StateFormatError):
        DetectorState.from_bytes(blob, b"x" * 32)
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(StateFormatError):
        DetectorState.from_bytes(tampered, KEY)
    with pytest.raises(ValueError, match="ddm"):
        DetectorState().update([("1-0", "v1", 3.5, 1)], "ddm", True, 0.0)


def test_outcomes_trimmed_unread_are_counted_once_and_logged(caplog: pytest.LogCaptureFixture
                                                              ) -> None:
    """The outcome stream is capped: a jump in the outcomes' numbers between two reads is
    counted ``trimmed`` (with the stored state, so a re-read does not count it again) and
    logged; seen + trimmed is every outcome the join numbered."""
    cfg = PerformanceConfig(min_labels=1, detector="adwin")
    src = Source()
    src.stream = [(f"{n}-0", "v1", 0.0, n) for n in range(1, 101)]
    out = run(src, cfg)
    assert out.detector is not None and out.detector.trimmed == 0
    assert out.result.counters == {"pending": 3, "trimmed": 0}
    blob = out.detector.to_bytes(KEY)
    src.stream = [(f"{n}-0", "v1", 0.0, n) for n in range(351, 401)]  # 101..350 trimmed
    with caplog.at_level("WARNING", logger="alerts.performance"):
        out = run(src, cfg, blob)
    assert out.detector is not None and out.detector.trimmed == 250
    assert sum(out.detector.seen.values()) + out.detector.trimmed == 400
    assert out.result.counters["trimmed"] == 250
    assert "250 joined outcomes were trimmed" in caplog.text
    again = run(src, cfg, out.detector.to_bytes(KEY))  # nothing new: nothing counted
    assert again.detector is not None and again.detector.trimmed == 250
    fresh = Source()  # never evaluated: what left the stream before counts too
    fresh.stream = [(f"{n}-0", "v1", 0.0, n) for n in range(41, 51)]
    assert run(fresh, cfg).detector.trimmed == 40  # type: ignore[union-attr]


def test_detector_state_format_1_still_loads_and_counts_from_its_next_outcome() -> None:
    body = pickle.dumps(("5-0", {}, {"v1": 5}, {}, None))
    old = b"DLCD" + bytes([1]) + hmac.new(KEY, body, hashlib.sha256).digest() + body
    state = DetectorState.from_bytes(old, KEY)
    assert (state.position, state.seen, state.last_n, state.trimmed) == ("5-0", {"v1": 5},
                                                                        None, 0)
    state.update([("9-0", "v1", 0.0, 9), ("12-0", "v1", 0.0, 12)], "adwin", False, 0.0)
    assert state.trimmed == 2  # 10 and 11; before 9 it cannot know
    state.update([("13-0", "v1", 0.0, None), ("20-0", "v1", 0.0, 20)], "adwin", False, 0.0)
    assert state.trimmed == 2  # an unnumbered outcome between: not known, not counted
    state.update([("21-0", "v1", 0.0, 1)], "adwin", False, 0.0)  # the join began again
    assert state.trimmed == 2 and state.last_n == 1
    cfg = PerformanceConfig(min_labels=1, detector="adwin")
    src = Source()
    src.stream = [("30-0", "v1", 0.0, 30)]
    out = run(src, cfg, b"DLCD" + bytes([2]) + b"\0" * 40)  # unreadable: afresh, uncounted
    assert out.detector is not None and out.detector.trimmed == 0


@dataclass(frozen=True)
class Window:
    """A measurement (alerts.sources.Measurement) of the last 5 windows."""

    start_ms: int = 5 * WINDOW
    end_ms: int = 10 * WINDOW
    versions: dict[str, DatasetProfile] = field(default_factory=dict)
    incomplete: bool = False


def scores_profile(scores: np.ndarray) -> DatasetProfile:
    prof = DatasetProfile()
    prof.update({"prediction": scores}, len(scores))
    return prof


def test_estimated_accuracy_rule_fires_a_performance_alert_before_any_label() -> None:
    """CBPE alone raises ``m/-/estimated_accuracy``: no label has come (realized performance
    has no verdict), but the window's scores moved towards 0.5, where the reference's
    calibrator (P(y=1 | s) = s) expects ~0.6 accuracy, below ``min = 0.7``. Scores like
    the reference's (expected accuracy ~0.82) do not breach it."""
    rng = np.random.default_rng(13)
    ref_s = rng.beta(0.5, 0.5, 20_000)
    reference = Reference(scores_profile(ref_s), model="m", version="1",
                          created="2026-01-01T00:00:00Z")
    reference.performance = build_reference_performance(
        ref_s, (rng.random(ref_s.size) < ref_s).astype(np.int64))
    cfg = PerformanceConfig(min_labels=100, detector="none",
                            rules=PerformanceRules.parse({"estimated_accuracy": {"min": 0.7}}))
    shifted = estimated(cfg, reference, scores_profile(rng.beta(5, 5, 5000)))
    steady = estimated(cfg, reference, scores_profile(rng.beta(0.5, 0.5, 5000)))
    assert shifted is not None and steady is not None

    def checks(est):  # type: ignore[no-untyped-def]
        return evaluate(cfg, "m", Source(), end_ms=10 * WINDOW, measure_ms=5 * WINDOW,
                        reference=reference, estimate=est, detector=None, key=KEY, now=100.0)

    out = checks(shifted)
    [check] = out.checks
    assert (check.metric, check.kind, check.column, check.rule, check.breached) == (
        "estimated_accuracy", "performance", None, "min", True)
    assert check.value is not None and 0.55 < check.value.value < 0.65, check.value
    assert check.threshold == 0.7 and check.count == 5000
    assert out.result.state == "insufficient_labels" and out.result.labels == 0
    assert out.result.estimated["estimated_accuracy"].value == check.value.value

    new, emit = machine_step(Track(), check.breached, 100.0, Policy())
    assert emit is Emit.FIRING
    alert = build_alert(ModelRules("m"), "1", Window(), check, new, Track(), emit, "critical",
                        100.0, 5000)
    assert (alert.id, alert.kind, alert.state, alert.column, alert.metric) == (
        "m/-/estimated_accuracy", "performance", "firing", None, "estimated_accuracy")
    assert alert.value is not None and alert.value < alert.threshold == 0.7
    assert "below the minimum" in alert.summary, alert.summary

    [calm] = checks(steady).checks
    assert calm.breached is False and calm.value is not None and calm.value.value > 0.78
    assert checks(None).checks[0].breached is None  # no estimate: no verdict, not "fine"
