"""CBPE (sketches/cbpe.py): estimated vs realized performance on synthetic streams with a
known calibration, on NannyML's car-loan data, and through the score sketch; plus
``driftline profile --label-column``.

The NannyML data comes from ``make testdata`` (driftline/stack/testdata.sh), cached in
~/.cache/driftline/nannyml-0.13.1, or from the directory in ``DRIFTLINE_NANNYML_DATA``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from scipy.optimize import isotonic_regression

from driftline.cli import main
from sketches import _codec
from sketches.cbpe import Calibrator, estimate, estimate_from_profile
from sketches.errors import StateFormatError
from sketches.numeric import NumericProfile
from sketches.reference import Reference
from sketches.reference_performance import exact_auc

NANNYML = "nannyml-0.13.1"
CAR_LOAN = ("synthetic_car_loan_reference.csv", "synthetic_car_loan_analysis.csv",
            "synthetic_car_loan_analysis_target.csv")  # fmt: skip
CHUNK = 5_000
CAR_LOAN_THRESHOLD = 0.65
"""The data set's ``y_pred`` is exactly ``y_pred_proba >= 0.65`` (checked below)."""
TRACK_ACCURACY = 0.015
TRACK_AUC = 0.015


def stream(seed: int, n: int, a: float = 2.0, b: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Scores sqrt(q) of a model whose true P(y=1 | score) is q ~ Beta(a, b): monotone in
    the score but not calibrated (the calibrator has to learn q = score^2)."""
    rng = np.random.default_rng(seed)
    q = rng.beta(a, b, n)
    return np.sqrt(q), rng.random(n) < q


def realized_accuracy(scores: np.ndarray, y: np.ndarray, threshold: float = 0.5) -> float:
    return float(np.mean((scores >= threshold) == y))


# ------------------------------------------------------------------ synthetic
def test_estimated_accuracy_tracks_realized_on_a_stationary_stream() -> None:
    seeds = range(100)
    diffs, auc_diffs = [], []
    for seed in seeds:
        ref_s, ref_y = stream(seed, 20_000)
        cal = Calibrator.fit(ref_s, ref_y)
        s, y = stream(10_000 + seed, 10_000)
        est = estimate(cal, s)
        assert est.accuracy is not None and est.auc is not None
        diffs.append(abs(est.accuracy.value - realized_accuracy(s, y)))
        auc_diffs.append(abs(est.auc.value - exact_auc(s, y)))  # type: ignore[operator]
    passed = sum(d <= 0.02 for d in diffs)
    assert passed == len(seeds), f"{passed} of {len(seeds)} within 0.02; max {max(diffs):.4f}"
    assert max(auc_diffs) <= 0.02
    assert np.mean(diffs) < 0.006  # sampling sd of realized accuracy here is ~0.0045


@pytest.mark.parametrize(("a", "b"), [(5.0, 5.0), (1.0, 8.0), (3.0, 1.0)])
def test_estimate_follows_covariate_shift(a: float, b: float) -> None:
    """Accuracy falls (5, 5: scores crowd the threshold) or rises (1, 8 and 3, 1); the
    estimate moves the same way. Measured |estimated - realized change| <= 0.022, largest
    when scores move to the top end, where the reference has few rows and isotonic
    regression pools them (mean bias +0.006 there)."""
    errors = []
    for seed in range(10):
        ref_s, ref_y = stream(seed, 20_000)
        cal = Calibrator.fit(ref_s, ref_y)
        s0, y0 = stream(100 + seed, 10_000)
        s1, y1 = stream(200 + seed, 10_000, a, b)  # P(y | score) unchanged: covariate shift
        est0, est1 = estimate(cal, s0).accuracy, estimate(cal, s1).accuracy
        assert est0 is not None and est1 is not None
        real_change = realized_accuracy(s1, y1) - realized_accuracy(s0, y0)
        est_change = est1.value - est0.value
        assert abs(real_change) > 0.03
        assert np.sign(est_change) == np.sign(real_change)
        assert abs(est_change - real_change) <= 0.03
        errors.append(est_change - real_change)
    assert abs(np.mean(errors)) <= 0.01


def test_calibrator_is_scipys_isotonic_fit_and_round_trips() -> None:
    s, y = stream(3, 5_000)
    s = np.round(s, 3)  # ties: one fitted value per distinct score
    cal = Calibrator.fit(s, y)
    ux, inv = np.unique(s, return_inverse=True)
    w = np.bincount(inv)
    fitted = isotonic_regression(np.bincount(inv, weights=y) / w, weights=w).x
    assert np.allclose(cal.predict(ux), fitted, atol=1e-12)
    assert cal.x.size < ux.size  # constant blocks kept by their ends only
    assert cal.predict([-1.0])[0] == fitted[0] and cal.predict([2.0])[0] == fitted[-1]
    back = Calibrator.from_bytes(cal.to_bytes())
    grid = np.linspace(0, 1, 1001)
    assert np.array_equal(back.predict(grid), cal.predict(grid))
    assert (back.n, back.positives) == (5_000, float(y.sum()))
    blob = cal.to_bytes()
    for bad in (blob[:-3], b"XXXX" + blob[4:], blob[:-1] + bytes([blob[-1] ^ 1])):
        with pytest.raises(StateFormatError):
            Calibrator.from_bytes(bad)
    falling = _codec.pack(Calibrator.MAGIC, Calibrator.VERSION, [[0.1, 0.2], [0.9, 0.1], 2, 1.0])
    with pytest.raises(StateFormatError, match="monotone"):
        Calibrator.from_bytes(falling)


def test_weights_equal_repeated_scores_and_undefined_cases() -> None:
    s, y = stream(5, 4_000)
    cal = Calibrator.fit(s, y)
    pts = np.array([0.2, 0.45, 0.5, 0.7, 0.9])
    counts = np.array([3, 1, 4, 1, 5])
    a, b = estimate(cal, pts, counts), estimate(cal, np.repeat(pts, counts))
    assert a.n == b.n == 14
    for name in ("accuracy", "precision", "recall", "f1", "auc"):
        x, z = a.metric(name), b.metric(name)
        assert x is not None and z is not None and x.value == pytest.approx(z.value, abs=1e-12)
    low = estimate(cal, [0.1, 0.2])  # nothing predicted positive
    assert low.precision is None and low.accuracy is not None and low.recall is not None
    assert estimate(cal, []).accuracy is None
    assert set(a.metrics()) == {"estimated_accuracy", "estimated_precision", "estimated_recall",
                                "estimated_f1", "estimated_auc"}  # fmt: skip


def test_estimate_from_the_score_sketch() -> None:
    s, y = stream(8, 20_000)
    cal = Calibrator.fit(s, y)
    small = NumericProfile()
    small.update(s[:500].tolist())
    exact = estimate(cal, s[:500])
    via = estimate_from_profile(cal, small)
    assert via.accuracy is not None and exact.accuracy is not None
    assert via.accuracy.value == pytest.approx(exact.accuracy.value, abs=1e-12)
    assert via.accuracy.error_bound == 0.0
    big_s, _ = stream(9, 300_000)
    big = NumericProfile()
    big.update(big_s)
    raw, sk = estimate(cal, big_s), estimate_from_profile(cal, big)
    for name in ("accuracy", "precision", "recall", "f1", "auc"):
        r, v = raw.metric(name), sk.metric(name)
        assert r is not None and v is not None
        assert 0 < v.error_bound < 0.1
        assert abs(v.value - r.value) <= v.error_bound
        assert abs(v.value - r.value) < 0.003  # measured ~1e-3 or less; the bound is worst-case


# ------------------------------------------------------------------ NannyML car loan
@dataclass(frozen=True)
class CarLoan:
    ref_scores: np.ndarray
    ref_labels: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    y_pred: np.ndarray


def car_loan_dir() -> Path:
    env = os.environ.get("DRIFTLINE_NANNYML_DATA")
    if env:
        return Path(env)
    cache = os.environ.get("DRIFTLINE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "driftline")
    return Path(cache) / NANNYML


def load_car_loan() -> CarLoan:
    """NannyML's synthetic car-loan data; fails (never skips) when it was not fetched."""
    base = car_loan_dir()
    missing = [f for f in CAR_LOAN if not (base / f).is_file()]
    if missing:
        pytest.fail(f"NannyML car-loan data missing in {base} ({', '.join(missing)}): run "
                    "`make testdata` (driftline/stack/testdata.sh) or set DRIFTLINE_NANNYML_DATA")
    ref, ana, tgt = (pacsv.read_csv(base / f).to_pydict() for f in CAR_LOAN)
    by_id = dict(zip(tgt["id"], tgt["repaid"], strict=True))
    return CarLoan(
        np.asarray(ref["y_pred_proba"], dtype=float), np.asarray(ref["repaid"]) == 1,
        np.asarray(ana["y_pred_proba"], dtype=float),
        np.asarray([by_id[i] for i in ana["id"]]) == 1, np.asarray(ana["y_pred"]),
    )  # fmt: skip


def car_loan_table(data: CarLoan) -> list[dict[str, float]]:
    """Per analysis chunk of 5,000 rows: estimated (from the scores and from their KLL
    sketch) and realized accuracy and ROC AUC."""
    cal = Calibrator.fit(data.ref_scores, data.ref_labels)
    rows = []
    for start in range(0, data.scores.size, CHUNK):
        s, y = data.scores[start:start + CHUNK], data.labels[start:start + CHUNK]
        est = estimate(cal, s, threshold=CAR_LOAN_THRESHOLD)
        prof = NumericProfile()
        prof.update(s)
        sk = estimate_from_profile(cal, prof, CAR_LOAN_THRESHOLD)
        assert est.accuracy and est.auc and sk.accuracy and sk.auc
        rows.append({
            "start": start, "est_accuracy": est.accuracy.value,
            "sketch_accuracy": sk.accuracy.value, "sketch_bound": sk.accuracy.error_bound,
            "accuracy": realized_accuracy(s, y, CAR_LOAN_THRESHOLD),
            "est_auc": est.auc.value, "auc": exact_auc(s, y) or float("nan"),
        })  # fmt: skip
    return rows


def test_cbpe_tracks_realized_performance_on_nannyml_car_loan() -> None:
    data = load_car_loan()
    assert np.array_equal(data.scores >= CAR_LOAN_THRESHOLD, data.y_pred == 1)
    rows = car_loan_table(data)
    assert len(rows) == 10
    for r in rows:
        assert abs(r["est_accuracy"] - r["accuracy"]) <= TRACK_ACCURACY, r
        assert abs(r["est_auc"] - r["auc"]) <= TRACK_AUC, r
        assert abs(r["sketch_accuracy"] - r["est_accuracy"]) <= r["sketch_bound"], r
    first, second = rows[:5], rows[5:]
    for key in ("accuracy", "est_accuracy", "auc", "est_auc"):
        drop = np.mean([r[key] for r in first]) - np.mean([r[key] for r in second])
        assert drop > 0.005, (key, drop)  # the drop of the second half, estimated and realized
    assert min(r["est_accuracy"] for r in first) > max(r["est_accuracy"] for r in second) + 0.02


# ------------------------------------------------------------------ CLI
def test_profile_with_labels_stores_performance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    s, y = stream(1, 10_000)
    rng = np.random.default_rng(1)
    data, out = tmp_path / "train.parquet", tmp_path / "ref.dlr"
    pq.write_table(pa.table({"age": rng.integers(18, 90, s.size), "score": s,
                             "outcome": y.astype(np.int64)}), data, row_group_size=3000)  # fmt: skip
    monkeypatch.setenv("DRIFTLINE_LABEL_COLUMN", "outcome")
    code = main(["profile", str(data), "--out", str(out), "--prediction-column", "score",
                 "--created", "2026-01-01T00:00:00Z"])  # fmt: skip
    assert code == 0
    assert "performance (binary, 10,000 labelled rows)" in capsys.readouterr().err
    ref = Reference.from_bytes(out.read_bytes())
    assert set(ref.types) == {"age", "score"}  # the label is not a feature
    perf = ref.performance
    assert perf is not None and perf.task == "binary" and perf.calibrator is not None
    assert perf.metrics["accuracy"].value == pytest.approx(realized_accuracy(s, y))
    assert len(perf.metrics["accuracy"].chunks) == 10
    monkeypatch.delenv("DRIFTLINE_LABEL_COLUMN")
    assert main(["profile", str(data), "--out", str(out), "--label-column", "outcome",
                 "--prediction-column", "score", "--task", "regression"]) == 0  # fmt: skip
    perf = Reference.from_bytes(out.read_bytes()).performance
    assert perf is not None and set(perf.metrics) == {"mae", "rmse", "mean_error"}
    capsys.readouterr()
    assert main(["profile", str(data), "--out", str(out), "--label-column", "nope",
                 "--prediction-column", "score"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "no column 'nope'" in err and len(err.strip().splitlines()) == 1
