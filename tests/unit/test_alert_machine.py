"""The alert state machine: for, cooldown, repeat, insufficient data, stored bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.machine import (
    Emit,
    Policy,
    State,
    Track,
    step,
    track_from_bytes,
    track_to_bytes,
)
from sketches.errors import StateFormatError


def run(
    verdicts: list[bool | None], policy: Policy, dt: float = 10.0
) -> list[tuple[State, Emit | None]]:
    track, out = Track(), []
    for i, v in enumerate(verdicts):
        track, emit = step(track, v, now=i * dt, policy=policy)
        out.append((track.state, emit))
    return out


def test_fires_at_once_and_resolves_once() -> None:
    out = run([False, True, True, True, False, False], Policy())
    assert [e for _, e in out] == [None, Emit.FIRING, None, None, Emit.RESOLVED, None]
    assert out[-1][0] is State.RESOLVED


def test_for_needs_consecutive_breaches() -> None:
    out = run([True, True, False, True, True, True], Policy(for_evaluations=3))
    assert [s for s, _ in out] == [State.PENDING, State.PENDING, State.INACTIVE,
                                   State.PENDING, State.PENDING, State.FIRING]
    assert [e for _, e in out].count(Emit.FIRING) == 1


def test_insufficient_data_holds_state() -> None:
    out = run([True, None, None, False, None], Policy())
    assert [s for s, _ in out] == [State.FIRING, State.FIRING, State.FIRING,
                                   State.RESOLVED, State.RESOLVED]


def test_cooldown_suppresses_refire() -> None:
    # resolved at t=10; breaches at t=20, 30 are within the 25 s cooldown, t=40 is not
    out = run([True, False, True, True, True], Policy(cooldown_s=25.0))
    assert [e for _, e in out] == [Emit.FIRING, Emit.RESOLVED, None, None, Emit.FIRING]


def test_repeat_interval() -> None:
    out = run([True] * 7, Policy(repeat_s=30.0))
    assert [e for _, e in out] == [Emit.FIRING, None, None, Emit.REPEAT, None, None, Emit.REPEAT]


def test_since_is_the_start_of_the_episode() -> None:
    track = Track()
    for t in (100.0, 110.0, 120.0):
        track, _ = step(track, True, now=t, policy=Policy(for_evaluations=3))
    assert track.state is State.FIRING and track.since == 100.0


@given(st.lists(st.sampled_from([True, False, None]), max_size=60),
       st.integers(1, 4), st.floats(0, 50), st.one_of(st.none(), st.floats(1, 50)))
def test_messages_alternate_firing_and_resolved(
    verdicts: list[bool | None], for_n: int, cooldown: float, repeat: float | None
) -> None:
    out = run(verdicts, Policy(for_evaluations=for_n, cooldown_s=cooldown, repeat_s=repeat))
    changes = [e for _, e in out if e in (Emit.FIRING, Emit.RESOLVED)]
    assert changes == [Emit.FIRING, Emit.RESOLVED] * (len(changes) // 2) + (
        [Emit.FIRING] if len(changes) % 2 else []
    )
    for (state, emit) in out:
        if emit is Emit.REPEAT:
            assert state is State.FIRING


def test_track_bytes_round_trip_and_corruption() -> None:
    track = Track(state=State.FIRING, breaches=2, since=1.5, last_sent=2.5)
    assert track_from_bytes(track_to_bytes(track)) == track
    with pytest.raises(StateFormatError):
        track_from_bytes(b"garbage")
    with pytest.raises(StateFormatError):
        track_from_bytes(track_to_bytes(track)[:-3])


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        Policy(for_evaluations=0)
    with pytest.raises(ValueError):
        Policy(repeat_s=0)
