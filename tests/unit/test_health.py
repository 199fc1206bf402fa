"""Operational health: the pure checks (alerts.health), their models-file keys and the
simulator's incident timeline (streams.simulate_ops)."""

from __future__ import annotations

import numpy as np
import pytest

from alerts.health import HealthFigures, HealthRules, Ratio, WindowFigures, checks
from driftline.health_config import health_rules
from sketches.errors import ConfigError
from streams.simulate import generate_events, generate_records
from streams.simulate_ops import Timeline, parse_ops
from streams.simulate_spec import build_spec

W = 2000
NOW = 1_000.0
LAT = {0.5: 0.010, 0.95: 0.020, 0.99: 0.030}


def windows(*rows: int, latency: dict[float, float] | None = None,
            last_latency: dict[float, float] | None = None) -> list[WindowFigures]:
    out = [WindowFigures(i * W, n, latency or LAT) for i, n in enumerate(rows)]
    if last_latency is not None:
        out[-1] = WindowFigures(out[-1].start_ms, out[-1].rows, last_latency)
    return out


def verdicts(rules: HealthRules, fig: HealthFigures) -> dict[str, bool | None]:
    return {c.metric: c.breached for c in checks(rules, fig, model="m", window_ms=W, now=NOW)}


def test_defaults_are_volume_drop_and_staleness() -> None:
    got = verdicts(HealthRules(), HealthFigures(windows(400, 410, 390, 400), last_seen=NOW - 1))
    assert got == {"volume_drop": False, "stale": False}
    assert HealthRules().stale_limit(W) == 300.0  # 3 windows, at least 5 min
    assert HealthRules().stale_limit(600_000) == 1800.0


def test_volume_drop_and_spike_against_the_trailing_median() -> None:
    rules = HealthRules(volume_spike=3.0, stale_default=False)
    assert verdicts(rules, HealthFigures(windows(400, 400, 400, 190))) == {
        "volume_drop": True, "volume_spike": False}
    assert verdicts(rules, HealthFigures(windows(400, 400, 400, 1300))) == {
        "volume_drop": False, "volume_spike": True}
    # the median: one odd window in the trailing ones changes nothing
    assert verdicts(rules, HealthFigures(windows(400, 20, 400, 400, 380)))["volume_drop"] is False
    c = checks(rules, HealthFigures(windows(400, 400, 400, 100)), model="m", window_ms=W,
               now=NOW)[0]
    assert c.kind == "operational" and c.column is None and c.count == 100
    assert c.value is not None and c.value.value == pytest.approx(0.25)
    assert "25.0% of the 400 expected" in c.note


def test_volume_needs_history_and_never_judges_a_stall() -> None:
    rules = HealthRules(stale_default=False)
    assert verdicts(rules, HealthFigures(windows(400, 400, 100)))["volume_drop"] is None
    assert verdicts(rules, HealthFigures(windows(400, 400, 400, 0)))["volume_drop"] is None
    # the first window after a gap (the stall's end cuts it) is not judged either
    assert verdicts(rules, HealthFigures(windows(400, 400, 400, 0, 0, 30)))["volume_drop"] is None
    # ... the next one is, against the windows that had events
    assert verdicts(rules, HealthFigures(windows(400, 400, 400, 0, 30, 400)))[
        "volume_drop"] is False
    assert verdicts(rules, HealthFigures(windows(10, 10, 10, 2)))["volume_drop"] is None  # few


def test_latency_absolute_and_rise() -> None:
    rules = HealthRules(volume_drop=None, stale_default=False, latency_s={"latency_p99": 0.025},
                        latency_rise=2.0)
    calm = verdicts(rules, HealthFigures(windows(400, 400, 400, 400,
                                                 last_latency={0.5: .01, 0.95: .02, 0.99: .024})))
    assert calm == {"latency_p99": False, "latency_rise": False}
    slow = {0.5: 0.03, 0.95: 0.06, 0.99: 0.09}
    assert verdicts(rules, HealthFigures(windows(400, 400, 400, 400, last_latency=slow))) == {
        "latency_p99": True, "latency_rise": True}
    assert verdicts(rules, HealthFigures(windows(400, 400, 400, 10, last_latency=slow))) == {
        "latency_p99": None, "latency_rise": None}  # too few events to say


def test_staleness_on_the_wall_clock() -> None:
    rules = HealthRules(volume_drop=None, stale_after_s=30.0)
    got = checks(rules, HealthFigures(last_seen=NOW - 45), model="m", window_ms=W, now=NOW)
    assert [(c.metric, c.breached) for c in got] == [("stale", True)]
    assert got[0].value is not None and got[0].value.value == 45
    assert "no event for 45.0s" in got[0].note
    assert verdicts(rules, HealthFigures(last_seen=NOW - 5)) == {"stale": False}
    assert verdicts(rules, HealthFigures()) == {"stale": None}  # never seen: no verdict


def test_ratios_and_lag() -> None:
    rules = HealthRules(volume_drop=None, stale_default=False, max_invalid_ratio=0.1,
                        max_late_ratio=0.01, max_lag=1000)
    fig = HealthFigures(invalid=Ratio(30, 100), late=Ratio(0, 500), lag=5000, topic="t")
    got = {c.metric: c for c in checks(rules, fig, model="m", window_ms=W, now=NOW)}
    assert {k: c.breached for k, c in got.items()} == {
        "invalid_ratio": True, "late_ratio": False, "consumer_lag": True}
    assert "all models of topic t" in got["invalid_ratio"].note
    assert verdicts(rules, HealthFigures()) == {
        "invalid_ratio": None, "late_ratio": None, "consumer_lag": None}
    assert Ratio(0, 0).value is None


def test_models_file_keys() -> None:
    rules = health_rules({"stale_after": "10m", "max_lag": 100},
                         {"volume_spike": 3, "latency_p99": "250ms", "stale_after": "5m",
                          "volume_drop": False, "trailing_windows": 2}, "m")
    assert rules.volume_drop is None and rules.volume_spike == 3.0
    assert rules.latency_s == {"latency_p99": 0.25} and rules.stale_after_s == 300.0
    assert rules.max_lag == 100 and rules.trailing_windows == 2 and rules.min_trailing == 2
    off = health_rules(None, {"stale_after": False}, "m")
    assert off.stale_limit(W) is None and off.volume_drop == 0.5
    for bad in ({"volume_drop": 2}, {"nope": 1}, {"latency_p99": "fast"},
                {"trailing_windows": 0}, {"max_invalid_ratio": True}):
        with pytest.raises(ConfigError):
            health_rules(None, bad, "m")


def test_models_file_health_table_is_accepted(tmp_path: object) -> None:
    from driftline.alerting import model_rules
    from driftline.models import parse_catalog

    parse_catalog({"models": {"m": {"health": {"stale_after": "1m"}}}})
    assert model_rules("m", {"health": {"stale_after": "1m"}}, {}, "m").health.stale_after_s == 60


def test_ops_grammar() -> None:
    assert parse_ops("volume=0.2@30s..60s").amount == 0.2
    stall = parse_ops("stall@30s..50s")
    assert (stall.kind, stall.start_s, stall.end_s) == ("stall", 30.0, 50.0)
    assert parse_ops("latency=x3@1m..2m").amount == 3.0
    assert parse_ops("invalid=0.3@10s..20s").kind == "invalid"
    for bad in ("volume=0@1s..2s", "stall@5s", "invalid=2@1s..2s", "latency=3@1s..2s",
                "stall@5s..2s"):
        with pytest.raises(ConfigError):
            parse_ops(bad)


def test_timeline_volume_and_stall() -> None:
    plain = Timeline(100.0)
    idx = np.arange(10_000)
    assert np.array_equal(plain.offsets(idx), idx / 100.0)
    t = Timeline(100.0, [parse_ops("volume=0.5@10s..20s"), parse_ops("stall@30s..40s")])
    assert t.offset(999) == pytest.approx(9.99)
    assert t.offset(1000) == pytest.approx(10.0) and t.offset(1001) == pytest.approx(10.02)
    assert t.offset(1500) == pytest.approx(20.0)
    assert t.offset(2499) == pytest.approx(29.99)
    assert t.offset(2500) == pytest.approx(40.0)  # nothing in the stall
    assert t.count_before(60.0) == 4500
    offsets = t.offsets(idx)
    assert np.all(np.diff(offsets) > 0)


def test_simulated_incidents() -> None:
    spec = build_spec(["m"], 2, 1, events_per_s=100.0,
                      ops=["latency=x3@10s..20s", "invalid=0.5@30s..40s"])
    base = build_spec(["m"], 2, 1, events_per_s=100.0)
    events = list(generate_events(spec, 4000, 0.0))
    plain = list(generate_events(base, 4000, 0.0))
    lat = np.array([e["latency_ms"] for e in events])
    ref = np.array([e["latency_ms"] for e in plain])
    assert np.allclose(lat[1000:2000], ref[1000:2000] * 3, atol=0.011)
    assert np.array_equal(lat[:1000], ref[:1000])
    bad = np.array([r.bad is not None for r in generate_records(spec, 4000, 0.0)])
    assert bad[:3000].sum() == 0 and 0.4 < bad[3000:4000].mean() < 0.6
    same = build_spec(["m"], 2, 1, events_per_s=100.0, ops=[])
    assert list(generate_events(same, 500, 0.0)) == plain[:500]


def test_pace_pauses_through_a_stall() -> None:
    from streams.simulate_run import pace

    t = Timeline(10.0, [parse_ops("stall@1s..3s")])
    clock = [0.0]
    sent_at: list[float] = []
    stats = pace(((b"k", b"v") for _ in range(20)), lambda v, k: sent_at.append(clock[0]),
                 rate=10.0, clock=lambda: clock[0],
                 sleep=lambda s: clock.__setitem__(0, clock[0] + s), schedule=t.offset)
    assert stats.sent == 20
    assert sent_at[9] == pytest.approx(0.9) and sent_at[10] == pytest.approx(3.0)


def test_latency_is_checked_per_version_when_several_share_the_window() -> None:
    """A slow canary hides in the model's quantiles (90 % of the events are fast): its
    own latency check fires, the stable version's does not; volume stays per model."""
    fast, slow = {0.5: 0.01, 0.95: 0.02, 0.99: 0.03}, {0.5: 0.2, 0.95: 0.4, 0.99: 0.5}
    wins = [WindowFigures(i * W, 1000, fast, {"7": (900, fast), "8": (100, slow)})
            for i in range(6)]
    rules = HealthRules(latency_s={"latency_p99": 0.25}, stale_default=False)
    got = {c.alert_id("m"): c for c in checks(rules, HealthFigures(wins), model="m",
                                               window_ms=W, now=NOW)}
    assert got["m/-/latency_p99"].breached is False  # the whole looks fine
    assert got["m/-/latency_p99@version=8"].breached is True
    assert got["m/-/latency_p99@version=7"].breached is False
    assert got["m/-/latency_p99@version=8"].version == "8"
    assert not [k for k in got if k.startswith("m/-/volume") and "@" in k]
    single = [WindowFigures(i * W, 1000, fast) for i in range(6)]
    assert not [c for c in checks(rules, HealthFigures(single), model="m", window_ms=W,
                                  now=NOW) if c.scope]
