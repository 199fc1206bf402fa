"""Realized performance from the stored join aggregates (issue #13), checked against exact
metrics recomputed with numpy / scipy from the raw (prediction, label, score, delay) data.

The aggregates are built by ``aggregate`` below, a pure-Python twin of the join's Lua
(streams/join_lua.py): same field names, same bucket functions, bytes in and out as Redis
returns them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

import msgspec
import numpy as np
import pytest
from scipy import stats

from sketches import _codec
from sketches.errors import ConfigError, StateFormatError
from sketches.performance import (
    BINS,
    GAMMA,
    ZERO_DELAY,
    ZERO_ERROR,
    FieldValue,
    PerformanceWindow,
    bucket_value,
    class_key,
    delay_quantile,
    error_quantile,
    log_bucket,
    realized,
    score_bin,
)  # fmt: skip
from sketches.performance_rules import PerformanceRules, performance_checks
from sketches.profile import DatasetProfile
from sketches.reference import Reference
from sketches.reference_performance import (
    ReferenceMetric,
    ReferencePerformance,
    build_reference_performance,
    infer_task,
)  # fmt: skip

QS = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0)


def aggregate(
    pred: Sequence[str] | None = None,
    label: Sequence[object] | None = None,
    scores: Sequence[float] | None = None,
    errors: Sequence[float] | None = None,
    delays: Sequence[float] | None = None,
    predictions: int | None = None,
    expired: int = 0,
) -> dict[bytes, bytes]:
    """The window hash the join writes for these outcomes (Redis-style bytes)."""
    counts: Counter[str] = Counter()
    sums = {"sae": 0.0, "sse": 0.0, "se": 0.0}
    n = len(label) if label is not None else len(errors or ())
    if label is not None:
        for i, lab in enumerate(label):
            lc = class_key(lab)
            if pred is not None:
                counts[f"c:{pred[i]}|{lc}"] += 1
            if scores is not None:
                counts[f"s:{lc}:{score_bin(scores[i])}"] += 1
    for e in errors or ():
        sums["sae"] += abs(e)
        sums["sse"] += e * e
        sums["se"] += e
        if abs(e) <= ZERO_ERROR:
            counts["e0"] += 1
        else:
            counts[f"e{'+' if e > 0 else '-'}:{log_bucket(abs(e))}"] += 1
    for d in delays or ():
        counts["d0" if d <= ZERO_DELAY else f"d:{log_bucket(d)}"] += 1
    counts["n"] = n
    counts["p"] = predictions if predictions is not None else n
    counts["x"] = expired
    out = {k.encode(): str(v).encode() for k, v in counts.items()}
    if errors is not None:
        out.update({k.encode(): f"{v:.17g}".encode() for k, v in sums.items()})
    return out


def binary_data(seed: int, n: int, decimals: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    q = rng.beta(2, 3, n)
    scores = np.sqrt(q) if decimals is None else np.round(np.sqrt(q), decimals)
    return scores, rng.random(n) < q


def exact_auc(scores: np.ndarray, pos: np.ndarray) -> float:
    u = stats.mannwhitneyu(scores[pos], scores[~pos]).statistic
    return float(u) / float(pos.sum() * (~pos).sum())


# ------------------------------------------------------------------ bucket functions
def test_score_bin_edges() -> None:
    cases = {0.0: 0, 0.0005: 0, 0.001: 1, 0.5: 500, 0.4999: 499, 0.9999: 999, 1.0: 999,
             -0.2: 0, 1.7: 999}  # fmt: skip
    assert {s: score_bin(s) for s in cases} == cases
    assert BINS == 1000


def test_log_bucket_contains_its_values_and_the_reported_value_is_within_1_percent() -> None:
    rng = np.random.default_rng(1)
    for x in np.exp(rng.uniform(-20, 20, 20_000)):
        i = log_bucket(float(x))
        assert GAMMA ** (i - 1) < x * (1 + 1e-12) and x <= GAMMA**i * (1 + 1e-12)
        assert abs(bucket_value(i) - x) <= 0.01 * x * (1 + 1e-9)
    assert abs(GAMMA - 1.01 / 0.99) < 1e-15
    assert log_bucket(1.0) == 0


def test_class_key_follows_the_contract() -> None:
    assert [class_key(v) for v in (1, 1.0, True, False, "a", 2.5, np.int64(3))] == [
        "1", "1", "true", "false", "a", "2.5", "3"]  # fmt: skip


# ------------------------------------------------------------------ classification
@pytest.mark.parametrize(("seed", "n", "decimals"), [(0, 5_000, None), (1, 20_011, 2), (2, 300, 3),
                                                     (3, 2, None), (4, 50_000, None)])  # fmt: skip
def test_binary_metrics_match_exact(seed: int, n: int, decimals: int | None) -> None:
    scores, y = binary_data(seed, n, decimals)
    if n == 2:
        y = np.array([True, False])
    pred = np.where(scores >= 0.5, "1", "0")
    fields = aggregate(pred.tolist(), y.astype(int).tolist(), scores.tolist())
    r = realized(PerformanceWindow.from_fields(fields), "binary", min_labels=1)
    assert r.state == "ok" and r.labels == n
    m = {k: v.value.value for k, v in r.metrics.items() if v.value is not None}
    yp = pred == "1"
    tp = np.sum(yp & y)
    assert m["accuracy"] == pytest.approx(np.mean(yp == y), abs=1e-12)
    assert r.metrics["accuracy"].count == n
    if yp.any():
        assert m["precision"] == pytest.approx(tp / yp.sum(), abs=1e-12)
    assert m["recall"] == pytest.approx(tp / y.sum(), abs=1e-12)
    assert m["f1"] == pytest.approx(2 * tp / (yp.sum() + y.sum()), abs=1e-12)
    auc = r.metrics["auc"].value
    assert auc is not None
    exact = exact_auc(scores, y)
    assert abs(auc.value - exact) <= auc.error_bound + 1e-12
    if decimals is not None and decimals <= 3:
        # every bin holds one distinct score: same-bin pairs are true ties, AUC is exact
        assert auc.value == pytest.approx(exact, abs=1e-12)
    if decimals is None and n >= 5_000:
        assert 0 < auc.error_bound < 0.002  # continuous scores: the bound is tight


def test_auc_bound_is_honest_when_bins_hold_many_distinct_scores() -> None:
    # all scores in a handful of bins, positives above negatives inside each bin: the
    # exact AUC is far from the binned one, and the bound must still cover it
    rng = np.random.default_rng(5)
    base = rng.integers(0, 5, 4000) / 1000
    y = rng.random(4000) < 0.5
    scores = base + np.where(y, 0.0009, 0.0001)
    fields = aggregate(["1"] * 4000, y.astype(int).tolist(), scores.tolist())
    auc = realized(PerformanceWindow.from_fields(fields), "binary").metrics["auc"].value
    assert auc is not None
    exact = exact_auc(scores, y)
    assert abs(auc.value - exact) > 0.05
    assert abs(auc.value - exact) <= auc.error_bound + 1e-12


def test_windows_sum_to_the_whole() -> None:
    scores, y = binary_data(7, 9_000)
    pred = np.where(scores >= 0.5, "1", "0").tolist()
    labels = y.astype(int).tolist()
    parts = [aggregate(pred[a:a + 1300], labels[a:a + 1300], scores[a:a + 1300].tolist(),
                       delays=[1.0] * len(labels[a:a + 1300])) for a in range(0, 9000, 1300)]  # fmt: skip
    whole = PerformanceWindow.from_fields(aggregate(pred, labels, scores.tolist(), delays=[1.0] * 9000))
    assert PerformanceWindow.total(parts) == whole


def test_one_class_only_and_no_predicted_positives_are_undefined_not_values() -> None:
    fields = aggregate(["0"] * 50, [0] * 50, [0.1] * 50)
    r = realized(PerformanceWindow.from_fields(fields), "binary")
    assert r.metrics["auc"].value is None  # not 0.5
    assert r.metrics["precision"].value is None and r.metrics["recall"].value is None
    assert r.metrics["f1"].value is None
    assert r.metrics["accuracy"].value is not None and r.metrics["accuracy"].value.value == 1.0


def test_insufficient_labels_is_a_state_without_values() -> None:
    fields = aggregate(["1", "0"], [1, 1], [0.9, 0.2], delays=[5.0, 0.0], predictions=10)
    w = PerformanceWindow.from_fields(fields)
    r = realized(w, "binary", min_labels=200)
    assert r.state == "insufficient_labels" and r.metrics == {} and r.labels == 2
    assert r.label_ratio == pytest.approx(0.2)
    assert r.delay_quantiles[0.5].value == 0.0  # label arrival is still reported
    assert realized(w, "binary", min_labels=2).state == "ok"
    empty = realized(PerformanceWindow(), "binary")
    assert empty.state == "insufficient_labels" and empty.label_ratio is None


def test_multiclass_per_class_and_macro_match_numpy() -> None:
    rng = np.random.default_rng(11)
    classes = np.array(["cat", "dog", "eel", "fox"])
    y = rng.choice(classes, 6000, p=[0.4, 0.3, 0.2, 0.1])
    pred = np.where(rng.random(6000) < 0.7, y, rng.choice(classes, 6000))
    pred[pred == "fox"] = "dog"  # fox is never predicted: precision 0 in the macro
    r = realized(PerformanceWindow.from_fields(aggregate(pred.tolist(), y.tolist())), "multiclass")
    assert r.metrics["accuracy"].value is not None
    assert r.metrics["accuracy"].value.value == pytest.approx(np.mean(pred == y))
    precisions, recalls, f1s = [], [], []
    for c in classes:
        tp = np.sum((pred == c) & (y == c))
        p = tp / np.sum(pred == c) if np.any(pred == c) else None
        rc = tp / np.sum(y == c)
        f1 = 2 * tp / (np.sum(pred == c) + np.sum(y == c))
        s = r.per_class[str(c)]
        assert s.precision == pytest.approx(p) and s.recall == pytest.approx(rc)
        assert s.f1 == pytest.approx(f1)
        assert s.support == np.sum(y == c)
        precisions.append(p or 0.0)
        recalls.append(rc)
        f1s.append(f1)
    for name, xs in (("precision", precisions), ("recall", recalls), ("f1", f1s)):
        mv = r.metrics[name].value
        assert mv is not None and mv.value == pytest.approx(np.mean(xs))


# ------------------------------------------------------------------ regression and delay
@pytest.mark.parametrize("seed", range(4))
def test_regression_metrics_and_error_quantiles(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 10_007
    e = rng.standard_t(3, n) * 10 ** rng.uniform(-3, 3)
    e[rng.random(n) < 0.05] = 0.0  # exact hits land in e0
    r = realized(PerformanceWindow.from_fields(aggregate(errors=e.tolist())), "regression",
                 quantiles=QS)  # fmt: skip
    m = {k: v.value.value for k, v in r.metrics.items() if v.value is not None}
    assert m["mae"] == pytest.approx(np.mean(np.abs(e)), rel=1e-12)
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean(e**2)), rel=1e-12)
    assert m["mean_error"] == pytest.approx(np.mean(e), rel=1e-9, abs=1e-12)
    for q in QS:
        for est, data in ((r.error_quantiles[q], e), (r.abs_error_quantiles[q], np.abs(e))):
            exact = float(np.quantile(data, q, method="inverted_cdf"))
            if exact == 0.0:
                assert est.value == 0.0
            else:
                assert abs(est.value - exact) <= 0.01 * abs(exact) * (1 + 1e-9), (q, est, exact)
                assert abs(est.value - exact) <= est.error_bound * (1 + 1e-9)


def test_delay_quantiles_within_one_percent() -> None:
    rng = np.random.default_rng(3)
    d = np.concatenate([rng.exponential(3600, 5000), np.zeros(300), [1e-4] * 50])
    w = PerformanceWindow.from_fields(aggregate(label=[1] * d.size, pred=["1"] * d.size,
                                                delays=d.tolist()))  # fmt: skip
    for q in QS:
        est = delay_quantile(w, q)
        exact = float(np.quantile(d, q, method="inverted_cdf"))
        assert est is not None
        if exact <= ZERO_DELAY:
            assert est.value == 0.0 and est.error_bound == ZERO_DELAY
        else:
            assert abs(est.value - exact) <= 0.01 * exact * (1 + 1e-9)
    assert delay_quantile(PerformanceWindow(), 0.5) is None
    assert error_quantile(PerformanceWindow(), 0.5) is None


def test_tiny_regression_window() -> None:
    w = PerformanceWindow.from_fields(aggregate(errors=[-2.5]))
    r = realized(w, "regression")
    assert r.metrics["mae"].value is not None and r.metrics["mae"].value.value == 2.5
    assert r.error_quantiles[0.5].value == pytest.approx(-2.5, rel=0.01)


def test_fields_parsing() -> None:
    fields: dict[str, FieldValue] = {"n": 3, "p": b"4", "sae": "1.5", "future:thing": "7",
                                       "c:a|b": 2.0, "s:1:17": "1"}  # fmt: skip
    w = PerformanceWindow.from_fields(fields)
    assert PerformanceWindow.from_fields({b"n": b"3", b"p": b"4", b"sae": b"1.5", b"c:a|b": b"2",
                                          b"s:1:17": b"1", b"future:thing": b"7"}) == w  # fmt: skip
    assert (w.labels, w.predictions, w.sae, w.confusion, w.scores) == (3, 4, 1.5, {("a", "b"): 2},
                                                                       {"1": {17: 1}})  # fmt: skip
    bad: Mapping[str, FieldValue]
    for bad in ({"n": "x"}, {"n": "-1"}, {"c:ab": "1"}, {"n": "1.5"}, {"s:1:x": "1"}):
        with pytest.raises(StateFormatError):
            PerformanceWindow.from_fields(bad)


# ------------------------------------------------------------------ rules and checks
def _ref(value: float, chunks: tuple[float, ...] = ()) -> ReferencePerformance:
    metrics = {"accuracy": ReferenceMetric(value, 1000, chunks), "auc": ReferenceMetric(0.9, 1000, chunks),
               "mae": ReferenceMetric(2.0, 1000, chunks)}  # fmt: skip
    return ReferencePerformance("binary", "1", 0.5, 1000, ("0", "1"), metrics)


def test_rules_parse_and_reject() -> None:
    rules = PerformanceRules.parse({"accuracy": {"min": 0.8}, "f1": {"max_drop": 0.05},
                                    "auc": {"band": 3}, "mae": {"max": 10}})  # fmt: skip
    assert rules.rules["auc"]["band"] == 3.0
    for bad in ({"acc": {"min": 1}}, {"accuracy": {"least": 1}}, {"accuracy": {"min": "x"}},
                {"accuracy": {"band": -1}}, {"accuracy": 0.8}, {"accuracy": {"min": True}}):  # fmt: skip
        with pytest.raises(ConfigError):
            PerformanceRules.parse(bad)


def test_checks_fire_only_beyond_the_error_bound() -> None:
    # 100 positives at bin 500 + 100 negatives in the same bin: AUC 0.5 +- 0.5
    fields = aggregate(["1"] * 200, [1] * 100 + [0] * 100, [0.5] * 200)
    w = PerformanceWindow.from_fields(fields)
    rules = PerformanceRules.parse({"accuracy": {"min": 0.8, "max_drop": 0.05}, "auc": {"min": 0.9}})
    checks = {(c.metric, c.kind): c for c in performance_checks(w, None, _ref(0.95), rules, 100)}
    acc = checks[("accuracy", "min")]
    assert (acc.value, acc.breached, acc.threshold, acc.count) == (0.5, True, 0.8, 200)
    drop = checks[("accuracy", "max_drop")]
    assert drop.breached is True and drop.threshold == pytest.approx(0.9)
    auc = checks[("auc", "min")]
    assert auc.value == 0.5 and auc.error_bound == 0.5 and auc.breached is False


def test_checks_are_none_without_labels_reference_or_estimate() -> None:
    w = PerformanceWindow.from_fields(aggregate(["1"] * 10, [0] * 10))
    rules = PerformanceRules.parse({"accuracy": {"min": 0.8, "max_drop": 0.1, "band": 3},
                                    "estimated_accuracy": {"min": 0.8}})  # fmt: skip
    few = performance_checks(w, None, _ref(0.9, (0.9, 0.91)), rules, min_labels=200)
    assert [c.breached for c in few] == [None, None, None, None]
    noref = performance_checks(w, None, None, rules, min_labels=5, task="binary")
    assert [c.breached for c in noref] == [True, None, None, None]
    one_chunk = performance_checks(w, None, _ref(0.9, (0.9,)), rules, min_labels=5)
    assert [(c.kind, c.breached) for c in one_chunk][2] == ("band", None)
    with pytest.raises(ConfigError):
        performance_checks(w, None, None, rules, 5)


def test_band_and_error_metric_rules() -> None:
    w = PerformanceWindow.from_fields(aggregate(errors=[3.0] * 300))
    rules = PerformanceRules.parse({"mae": {"max": 2.5, "max_drop": 0.5, "band": 2}})
    ref = _ref(0.9, (1.9, 2.0, 2.1))  # mae chunk mean 2.0, sd 0.1 -> band [1.8, 2.2]
    checks = performance_checks(w, None, ref, rules, 100, task="regression")
    assert [(c.kind, c.breached) for c in checks] == [("max", True), ("max_drop", True),
                                                      ("band", True)]  # fmt: skip
    assert checks[2].threshold == pytest.approx(2.2)
    w_ok = PerformanceWindow.from_fields(aggregate(errors=[2.05] * 300))
    assert [c.breached for c in performance_checks(w_ok, None, ref, rules, 100,
                                                   task="regression")] == [False, False, False]  # fmt: skip


# ------------------------------------------------------------------ reference performance
def test_reference_performance_matches_exact_and_round_trips() -> None:
    scores, y = binary_data(21, 20_000)
    perf = build_reference_performance(scores, y.astype(np.int64), chunks=10)
    assert (perf.task, perf.classes, perf.rows) == ("binary", ("0", "1"), 20_000)
    assert perf.metrics["auc"].value == pytest.approx(exact_auc(scores, y), abs=1e-12)
    assert perf.metrics["accuracy"].value == pytest.approx(np.mean((scores >= 0.5) == y))
    chunk_acc = [np.mean((scores[a:a + 2000] >= 0.5) == y[a:a + 2000]) for a in range(0, 20_000, 2000)]
    acc = perf.metrics["accuracy"]
    assert acc.chunks == pytest.approx(chunk_acc)
    assert acc.chunk_mean == pytest.approx(np.mean(chunk_acc))
    assert acc.chunk_sd == pytest.approx(np.std(chunk_acc, ddof=1))
    assert perf.calibrator is not None
    back = ReferencePerformance.from_bytes(perf.to_bytes())
    assert back.metrics == perf.metrics and back.task == "binary" and back.calibrator is not None
    assert np.array_equal(back.calibrator.predict(scores[:100]), perf.calibrator.predict(scores[:100]))


def test_reference_performance_regression_multiclass_and_missing_rows() -> None:
    rng = np.random.default_rng(2)
    label = rng.normal(size=1000)
    pred = label + rng.normal(size=1000)
    pred[::10] = np.nan  # dropped rows
    perf = build_reference_performance(pred, label, chunks=4)
    keep = ~np.isnan(pred)
    assert perf.task == "regression" and perf.rows == 900 and perf.calibrator is None
    assert perf.metrics["mae"].value == pytest.approx(np.mean(np.abs(pred - label)[keep]))
    assert len(perf.metrics["rmse"].chunks) == 4
    labels = np.array(["a", "b", "c", None] * 50, dtype=object)
    preds = np.array(["a", "b", "b", "a"] * 50, dtype=object)
    multi = build_reference_performance(preds, labels, chunks=0)
    assert multi.task == "multiclass" and multi.rows == 150 and "auc" not in multi.metrics
    assert multi.metrics["accuracy"].value == pytest.approx(2 / 3) and multi.metrics["accuracy"].chunks == ()


def test_infer_task() -> None:
    f = np.array
    assert infer_task(f([0.2, 0.9]), f([0, 1])) == "binary"
    assert infer_task(f([0.2, 1.9]), f([0, 1])) == "regression"
    assert infer_task(f([3.5, 2.0]), f([1.5, 2.0])) == "regression"
    assert infer_task(f(["x", "y"], dtype=object), f(["x", "y"], dtype=object)) == "binary"
    assert infer_task(f(["x", "y", "z"], dtype=object), f(["x", "y", "z"], dtype=object)) == "multiclass"
    assert infer_task(f([True, False], dtype=object), f([True, True], dtype=object)) == "binary"
    assert infer_task(f(["a", "b", "c"], dtype=object), f([0, 1, 2])) == "multiclass"


def test_reference_with_and_without_performance_and_old_bytes_load() -> None:
    prof = DatasetProfile()
    prof.update({"x": np.arange(100.0)}, 100)
    plain = Reference(prof, model="m", version="1", created="2026-01-01T00:00:00Z")
    assert Reference.from_bytes(plain.to_bytes()).performance is None
    scores, y = binary_data(4, 500)
    plain.performance = build_reference_performance(scores, y.astype(int))
    back = Reference.from_bytes(plain.to_bytes())
    assert back.performance is not None and back.performance.metrics == plain.performance.metrics
    # bytes written before issue #13: the state had five fields
    old = _codec.pack(Reference.MAGIC, Reference.VERSION,
                      ["m", "1", "2026-01-01T00:00:00Z", prof.to_bytes(), []])  # fmt: skip
    loaded = Reference.from_bytes(old)
    assert loaded.performance is None and loaded.rows == 100
    with pytest.raises(StateFormatError):
        ReferencePerformance.from_bytes(plain.to_bytes())
    bad = msgspec.msgpack.encode(["nope", "1", 0.5, 1, [], {}, None])
    with pytest.raises(StateFormatError):
        ReferencePerformance.from_bytes(_codec.pack(b"DLRP", 1, msgspec.msgpack.decode(bad)))


def test_positive_class_must_exist() -> None:
    with pytest.raises(Exception, match="positive class"):
        build_reference_performance(np.array([0.1, 0.9]), np.array(["no", "yes"], dtype=object),
                                    task="binary")  # fmt: skip
    assert math.isfinite(build_reference_performance(
        np.array([0.1, 0.9]), np.array(["no", "yes"], dtype=object), positive="yes"
    ).metrics["accuracy"].value or math.nan)  # fmt: skip
