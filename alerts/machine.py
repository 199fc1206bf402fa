"""The alert state machine: inactive → pending → firing → resolved.

The semantics Prometheus / Alertmanager users know:

- a rule *breaches* or not at each evaluation; ``None`` means "not enough data", which
  holds the current state (lack of data neither fires nor resolves an alert);
- ``for_evaluations`` consecutive breaches move pending → firing (1 = fire at once);
- a firing alert resolves at the first evaluation without a breach;
- ``cooldown_s`` after a resolution, new breaches are ignored (no flapping pages);
- ``repeat_s`` re-sends a firing alert at most that often (``None``: never repeat).

:func:`step` is pure: it takes the current :class:`Track`, the verdict and ``now`` and
returns the next track plus the message to publish, if any. One message per state
change (plus optional repeats), never one per evaluation.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import msgspec

from alerts.stored import StoredFormat


class State(enum.StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class Emit(enum.StrEnum):
    FIRING = "firing"
    REPEAT = "repeat"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Policy:
    for_evaluations: int = 1
    cooldown_s: float = 0.0
    repeat_s: float | None = None

    def __post_init__(self) -> None:
        if self.for_evaluations < 1:
            raise ValueError("for_evaluations must be >= 1")
        if self.cooldown_s < 0 or (self.repeat_s is not None and self.repeat_s <= 0):
            raise ValueError("cooldown_s must be >= 0 and repeat_s > 0")


class Track(msgspec.Struct, frozen=True):
    """Where one alert stands; stored in Redis between evaluations."""

    state: State = State.INACTIVE
    breaches: int = 0
    since: float | None = None  # when the current pending/firing episode began
    last_sent: float | None = None
    resolved_at: float | None = None
    count: int = 0
    """For alerts that page on every new incident (operational ``state_reset``): how many
    incidents the source had counted when this alert last looked (kept across episodes)."""


def step(
    track: Track, breached: bool | None, now: float, policy: Policy
) -> tuple[Track, Emit | None]:
    if breached is None:
        return track, None
    state = track.state
    if state is State.FIRING:
        if not breached:
            return Track(state=State.RESOLVED, resolved_at=now, last_sent=now), Emit.RESOLVED
        if policy.repeat_s is not None and track.last_sent is not None and (
            now - track.last_sent >= policy.repeat_s
        ):
            return msgspec.structs.replace(track, last_sent=now), Emit.REPEAT
        return track, None
    if not breached:
        if state is State.PENDING:
            return Track(resolved_at=track.resolved_at), None
        return track, None
    # breached, not firing
    if state is State.RESOLVED and track.resolved_at is not None and (
        now - track.resolved_at < policy.cooldown_s
    ):
        return track, None
    breaches = track.breaches + 1 if state is State.PENDING else 1
    since = track.since if state is State.PENDING and track.since is not None else now
    if breaches >= policy.for_evaluations:
        return Track(state=State.FIRING, breaches=breaches, since=since, last_sent=now), Emit.FIRING
    return Track(state=State.PENDING, breaches=breaches, since=since,
                 resolved_at=track.resolved_at), None


_FORMAT = StoredFormat(b"DLAT", 2, Track, "alert state")  # format 1 (JSON) still read


def track_to_bytes(track: Track) -> bytes:
    return _FORMAT.to_bytes(track)


def track_from_bytes(data: bytes) -> Track:
    return _FORMAT.from_bytes(data)


__all__ = ["Emit", "Policy", "State", "Track", "step", "track_from_bytes", "track_to_bytes"]
