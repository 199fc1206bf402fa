"""The simulator's seasonal drift (``FEATURE:cycle=AMPLITUDE[sd]/PERIOD@START[..END]``)
and drawing events from any index (``generate_events(..., first=k)``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from scipy import stats

from sketches.errors import ConfigError
from streams.simulate import CHUNK, generate_events
from streams.simulate_spec import SimSpec, build_spec, parse_drift

T0 = 1_800_000_000.0
RATE = 1000.0  # events per second of event time (the default)
WINDOW_S = 2.0  # 2000 events a window


@pytest.mark.parametrize("text,expected", [
    ("income:cycle=1sd/24h@0s", ("income", "cycle", 1.0, 0.0, float("inf"), True, None, 86400.0)),
    ("m1/balance:cycle=-300/90@1m..2h",
     ("balance", "cycle", -300.0, 60.0, 7200.0, False, "m1", 90.0)),
    ("age:cycle=2.5/500ms@0", ("age", "cycle", 2.5, 0.0, float("inf"), False, None, 0.5)),
    ("income:shift=0.5sd@60s", ("income", "shift", 0.5, 60.0, float("inf"), True, None, 0.0)),
])
def test_parse_cycle(text: str, expected: tuple[object, ...]) -> None:
    d = parse_drift(text)
    assert (d.feature, d.kind, d.amount, d.start_s, d.end_s, d.in_sd, d.model,
            d.period_s) == expected


@pytest.mark.parametrize("text,match", [
    ("income:cycle=1sd@0s", "cycle needs a period"),
    ("income:cycle=1sd/0h@0s", "period must be > 0"),
    ("income:cycle=1sd/-1h@0s", "not a duration"),
    ("income:cycle=1sd/1day@0s", "not a duration"),
    ("income:cycle=1sd/@0s", "not a duration"),
    ("income:shift=1sd/24h@0s", "only cycle takes a /PERIOD"),
    ("tenure:nulls=0.1/1h@0s", "only cycle takes a /PERIOD"),
    ("income:cycle=1sd/1h@2h..1h", "ends before it starts"),
    ("income:cycle=1.2.3/1h@0s", "bad amount"),
    ("income:cycles=1/1h@0s", "KIND shift|scale|cycle|nulls|unseen"),
])
def test_parse_cycle_rejects_in_one_line(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        parse_drift(text)
    assert "\n" not in str(err.value)


def test_spec_rejects_a_drift_on_a_feature_of_the_wrong_type() -> None:
    with pytest.raises(ConfigError, match="cycle applies to numeric features; 'country'"):
        build_spec(["m"], 2, 1, drifts=["country:cycle=1/1h@0s"])
    with pytest.raises(ConfigError, match="shift applies to numeric features"):
        build_spec(["m"], 2, 1, drifts=["country:shift=1@0s"])
    with pytest.raises(ConfigError, match="unseen applies to categorical features"):
        build_spec(["m"], 2, 1, drifts=["age:unseen=0.1@0s"])
    build_spec(["m"], 2, 1, drifts=["age:nulls=0.1@0s", "country:nulls=0.1@0s"])


def cycle_spec(**kw: Any) -> SimSpec:
    """One model (income's sd known exactly), no nulls; income cycles by 1 sd every 60 s
    from 10 s to 130 s, balance by -1000 (absolute) every 40 s from 0 s on."""
    return build_spec(["m"], 4, 1, drifts=["income:cycle=1sd/60s@10s..130s",
                                           "balance:cycle=-1000/40s@0s"],
                      null_ratio=0.0, **kw)


def window_means(events: list[dict[str, Any]], feature: str, start_ts: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per WINDOW_S window of event time: the feature's mean, the events' offsets
    (seconds from ``start_ts``) and how many there are."""
    t = np.array([e["ts"] for e in events]) - start_ts
    x = np.array([e["features"][feature] for e in events], dtype=float)
    k = np.floor(t / WINDOW_S).astype(int)
    k -= k.min()
    n = np.bincount(k)
    return np.bincount(k, weights=x) / np.maximum(n, 1), t, n


def assert_follows_cycle(events: list[dict[str, Any]], spec: SimSpec, feature: str,
                         start_ts: float) -> None:
    """Every window's mean is the feature's mean plus the window's average of the drift's
    ``amplitude * sin(2 pi (t - start) / period)`` (0 outside [start, end)), within 5
    standard errors of a mean of the window's sample."""
    [drift] = [d for d in spec.drifts if d.feature == feature]
    [f] = [f for f in spec.models[0].numeric if f.name == feature]
    means, t, n = window_means(events, feature, start_ts)
    amplitude = drift.amount * f.sd if drift.in_sd else drift.amount
    on = (t >= drift.start_s) & (t < drift.end_s)
    wave = np.where(on, amplitude * np.sin(2 * np.pi * (t - drift.start_s) / drift.period_s), 0)
    k = np.floor(t / WINDOW_S).astype(int)
    expected = f.mean + np.bincount(k - k.min(), weights=wave) / np.maximum(n, 1)
    some = n > 0  # (no window is empty but during a stall)
    error = np.abs(means - expected)[some] / (5 * f.sd / np.sqrt(n[some]))
    assert np.all(error < 1), error.max()
    # the cycle moves the means by far more than the tolerance of a full window
    assert np.ptp(expected[some]) > 8 * (5 * f.sd / np.sqrt(WINDOW_S * RATE))


def test_events_follow_the_cycle() -> None:
    spec = replace(cycle_spec(), ts_format="epoch")
    events = list(generate_events(spec, int(150 * RATE), T0, seed=3))  # 0 .. 150 s
    assert_follows_cycle(events, spec, "income", T0)  # in sd, from 10 s to 130 s
    assert_follows_cycle(events, spec, "balance", T0)  # absolute, from 0 s
    # the features without a cycle are untouched: the same values as without drift
    plain = list(generate_events(replace(spec, drifts=()), int(20 * RATE), T0, seed=3))
    assert [e["features"]["age"] for e in events[:len(plain)]] == [
        e["features"]["age"] for e in plain]
    assert [e["features"]["income"] for e in events[:int(10 * RATE)]] == [
        e["features"]["income"] for e in plain[:int(10 * RATE)]]  # before the cycle starts


@pytest.mark.parametrize("ops", [(), ("volume=0.5@60s..70s", "stall@80s..85s")])
def test_drawing_from_first_matches_the_stream(ops: tuple[str, ...]) -> None:
    spec = replace(cycle_spec(ops=ops), ts_format="epoch")
    first, n = 17 * CHUNK + 123, 5 * CHUNK  # ~70 s in, across chunk boundaries
    full = list(generate_events(spec, first + n, T0, seed=4))
    stream = full[first:]
    drawn = list(generate_events(spec, n, T0, seed=4, first=first))
    assert len(drawn) == n
    # the same ids and event times as the stream's events there ...
    assert [e["id"] for e in drawn] == [e["id"] for e in stream]
    assert [e["ts"] for e in drawn] == [e["ts"] for e in stream]
    # ... reproducibly, and from 0 it is the stream itself
    assert drawn == list(generate_events(spec, n, T0, seed=4, first=first))
    assert list(generate_events(spec, 1000, T0, seed=4, first=0)) == full[:1000]
    # ... with the same distributions: the cycles at their phase there, the rest alike
    assert_follows_cycle(drawn, spec, "income", T0)
    assert_follows_cycle(drawn, spec, "balance", T0)
    for name in ("age", "tenure", "country"):
        a = [e["features"][name] for e in drawn]
        b = [e["features"][name] for e in stream]
        if name == "country":
            cats = sorted(set(a) | set(b))
            table = [[a.count(c) for c in cats], [b.count(c) for c in cats]]
            assert stats.chi2_contingency(table).pvalue > 1e-3, name
        else:
            assert stats.ks_2samp(a, b).pvalue > 1e-3, name
    models = [e["model"] for e in drawn + stream]
    assert set(models) == {"m"}


def test_first_must_not_be_negative() -> None:
    with pytest.raises(ConfigError, match="first must be >= 0"):
        next(generate_events(cycle_spec(), 10, T0, first=-1))
