"""Operational alerts from the workers' incident notes: one firing and one resolved
message per episode, through the same state machine as drift."""

from __future__ import annotations

from alerts.machine import Policy, Track
from alerts.operational import GAP_HOLD_S, checks, ops_id, step_all


def test_state_reset_fires_while_rebuilding_and_resolves_after() -> None:
    tracks: dict[str, Track] = {}
    lost = {3: {"cause": "state_lost_missing", "count": 1, "rebuilding": True, "records": 0}}
    fired = step_all(checks(lost, 100.0, "predictions"), tracks, 100.0, Policy())
    assert [(a.id, a.state, a.kind) for a in fired] == [
        (ops_id("state_reset", 3), "firing", "operational")]
    assert "rebuilding" in fired[0].summary and "partition 3" in fired[0].summary
    assert step_all(checks(lost, 105.0, "predictions"), tracks, 105.0, Policy()) == []
    done = {3: {**lost[3], "rebuilding": False}}
    resolved = step_all(checks(done, 110.0, "predictions"), tracks, 110.0, Policy())
    assert [(a.id, a.state) for a in resolved] == [(ops_id("state_reset", 3), "resolved")]
    assert tracks == {} or all(t.state.value != "firing" for t in tracks.values())


def test_offset_gap_fires_once_then_resolves_after_the_hold() -> None:
    tracks: dict[str, Track] = {}
    gap = {0: {"cause": "offset_gap", "count": 1, "rebuilding": False, "records": 40,
               "gap_at": 1000.0}}
    first = step_all(checks(gap, 1001.0, "t"), tracks, 1001.0, Policy())
    assert [(a.metric, a.state, a.value) for a in first] == [("offset_gap", "firing", 40.0)]
    assert step_all(checks(gap, 1200.0, "t"), tracks, 1200.0, Policy()) == []
    later = 1000.0 + GAP_HOLD_S + 1
    assert [(a.metric, a.state) for a in step_all(checks(gap, later, "t"), tracks, later,
                                                  Policy())] == [("offset_gap", "resolved")]
