"""Operational alerts from the workers' incident notes: one firing and one resolved
message per episode, through the same state machine as drift; a state reset pages on
every new incident, however short its rebuild."""

from __future__ import annotations

from typing import Any

from alerts.machine import Policy, Track
from alerts.message import Alert
from alerts.operational import GAP_HOLD_S, NEWS_S, RESET_HOLD_S, checks, ops_id, step_all


def _step(notes: dict[int, dict[str, Any]], tracks: dict[str, Track], now: float
          ) -> list[Alert]:
    return step_all(checks(notes, now, "predictions", tracks), tracks, now, Policy())


def test_state_reset_fires_while_rebuilding_and_resolves_after_the_hold() -> None:
    tracks: dict[str, Track] = {}
    lost = {3: {"cause": "state_lost_missing", "count": 1, "at": 99.0, "rebuilding": True,
                "records": 0}}
    fired = _step(lost, tracks, 100.0)
    assert [(a.id, a.state, a.kind, a.value) for a in fired] == [
        (ops_id("state_reset", 3), "firing", "operational", 1.0)]
    assert "rebuilding" in fired[0].summary and "partition 3" in fired[0].summary
    assert _step(lost, tracks, 105.0) == []
    done = {3: {**lost[3], "rebuilding": False}}
    assert _step(done, tracks, 110.0) == []  # rebuilt, but held: it was paged at 100
    later = 100.0 + RESET_HOLD_S
    resolved = _step(done, tracks, later)
    assert [(a.id, a.state) for a in resolved] == [(ops_id("state_reset", 3), "resolved")]
    assert "rebuilt" in resolved[0].summary
    assert _step(done, tracks, later + 5) == []  # the same incident never fires again


def test_a_rebuild_over_before_the_evaluation_still_fires_once() -> None:
    """``resume`` mode, or a rebuild shorter than the evaluation interval: the note says
    ``rebuilding: False`` by the time the evaluator looks; the count moved."""
    tracks: dict[str, Track] = {}
    note = {0: {"cause": "state_lost_missing", "count": 1, "at": 1000.0, "rebuilding": False}}
    fired = _step(note, tracks, 1003.0)
    assert [(a.metric, a.state, a.repeat) for a in fired] == [("state_reset", "firing", False)]
    assert _step(note, tracks, 1008.0) == []


def test_another_incident_while_firing_is_sent_again_and_extends_the_hold() -> None:
    tracks: dict[str, Track] = {}
    note = {0: {"cause": "state_lost_missing", "count": 1, "at": 10.0, "rebuilding": False}}
    _step(note, tracks, 10.0)
    again = {0: {**note[0], "cause": "topic_recreated", "count": 2, "at": 300.0}}
    sent = _step(again, tracks, 300.0)
    assert [(a.state, a.repeat, a.value) for a in sent] == [("firing", True, 2.0)]
    assert "topic recreated" in sent[0].summary
    assert _step(again, tracks, 10.0 + RESET_HOLD_S + 1) == []  # held from 300 now
    assert [a.state for a in _step(again, tracks, 300.0 + RESET_HOLD_S)] == ["resolved"]
    third = {0: {**again[0], "count": 3, "at": 2000.0}}
    assert [(a.state, a.repeat) for a in _step(third, tracks, 2000.0)] == [("firing", False)]


def test_an_old_incident_no_track_has_seen_does_not_page() -> None:
    """Alert state written before tracks kept counts (or lost): history is not news."""
    tracks: dict[str, Track] = {}
    old = {0: {"cause": "state_lost_older", "count": 4, "at": 0.0, "rebuilding": False}}
    assert _step(old, tracks, NEWS_S + 1) == []
    assert tracks[ops_id("state_reset", 0)].count == 4
    new = {0: {**old[0], "count": 5, "at": NEWS_S + 10}}
    assert [a.state for a in _step(new, tracks, NEWS_S + 11)] == ["firing"]


def test_offset_gap_fires_once_then_resolves_after_the_hold() -> None:
    tracks: dict[str, Track] = {}
    gap = {0: {"count": 0, "rebuilding": False, "records": 40, "gap_at": 1000.0}}
    first = step_all(checks(gap, 1001.0, "t", tracks), tracks, 1001.0, Policy())
    assert [(a.metric, a.state, a.value) for a in first] == [("offset_gap", "firing", 40.0)]
    assert step_all(checks(gap, 1200.0, "t", tracks), tracks, 1200.0, Policy()) == []
    later = 1000.0 + GAP_HOLD_S + 1
    assert [(a.metric, a.state) for a in step_all(checks(gap, later, "t", tracks), tracks,
                                                  later, Policy())] == [("offset_gap", "resolved")]
