"""PSI / JS with their bounds for many columns at once (sketches.binned): the same values
as one column at a time and as sketches.stats' definitions."""

from __future__ import annotations

import numpy as np

from sketches import stats
from sketches.binned import binned_metrics


def _shares(rng: np.random.Generator, rows: int, bins: int) -> np.ndarray:
    x = rng.dirichlet(np.ones(bins), rows)
    x[0, 2] = 0.0  # an empty bin: PSI's floor, JS's 0 log 0
    return np.asarray(x / x.sum(axis=1, keepdims=True))


def test_rows_at_once_equal_one_column_at_a_time_and_the_definitions() -> None:
    rng = np.random.default_rng(1)
    p, q = _shares(rng, 20, 10), _shares(rng, 20, 10)
    er = np.full((20, 10), 0.0045)
    ec = np.full((20, 10), 0.0035)
    er[:, [0, -1]] = 0.0035
    ec[3] = 0.0  # one exact current side
    psi, psi_err, js, js_err = binned_metrics(p, q, er, ec)
    for i in range(20):
        one = binned_metrics(p[i], q[i], er[i], ec[i])
        assert [float(v) for v in one] == [psi[i], psi_err[i], js[i], js_err[i]]
        assert psi[i] == stats.psi(p[i], q[i])
        assert abs(js[i] - stats.js_distance(p[i], q[i])) < 1e-12
        assert psi_err[i] > 0 and js_err[i] > 0
    exact = binned_metrics(p, q, np.zeros_like(p), np.zeros_like(q))
    assert not exact[1].any() and not exact[3].any()  # both sides exact: no error
