"""Operational alerts from the stream side's incident notes (state lost, topic recreated,
records deleted before they were processed).

Workers note incidents per partition in Redis (``streams.state.RedisStateStore
.note_incident``); the evaluator leader turns them into alerts through the same state
machine as drift. Alert ids are ``_driftline/-/<metric>@partition=<p>`` (model
``_driftline``, no column, a ``partition`` segment, kind ``operational``):

- ``state_reset`` — fires on every new incident (the partition's incident ``count`` moved
  past the one the alert's track last saw: state found lost or foreign, topic recreated),
  however short the rebuild was — a rebuild that ends between two evaluations, or none at
  all (``--on-state-loss resume``), still pages. It stays firing while the partition
  rebuilds and for ``RESET_HOLD_S`` after the last incident it paged, then resolves; an
  incident while it fires is sent again as a ``repeat`` with the new count;
- ``offset_gap`` — breached for ``GAP_HOLD_S`` after records of the partition were found
  to be in no window (deleted by retention before they were processed, aged out before a
  rebuild, lost with the state under ``--on-state-loss resume``); then resolves.

The hold runs on the evaluator's clock (from the message it sent), so it does not depend
on the workers' clocks; the incident's own stamp (``at``, the worker's clock) only keeps an
incident older than ``NEWS_S`` that no track has seen (alert state lost, or written before
tracks kept counts) from paging.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from alerts.machine import Emit, Policy, State, Track, step
from alerts.message import Alert, Window, rfc3339

MODEL = "_driftline"
"""The ``model`` of operational alerts that concern the pipeline, not a model."""
GAP_HOLD_S = 600.0
RESET_HOLD_S = 600.0
NEWS_S = 86_400.0


class IncidentSource(Protocol):
    def incidents(self) -> Mapping[int, Mapping[str, Any]]:
        """partition -> {cause, count, at, rebuilding, records}."""
        ...


@dataclass(frozen=True)
class OpsCheck:
    partition: int
    metric: str
    breached: bool
    value: float
    summary: str
    count: int | None = None
    """``state_reset``: the partition's incident count (kept in the alert's track)."""
    new: bool = False
    """``state_reset``: an incident the alert has not sent yet."""


def checks(incidents: Mapping[int, Mapping[str, Any]], now: float, topic: str,
           tracks: Mapping[str, Track] | None = None) -> list[OpsCheck]:
    """One ``state_reset`` and, once a gap was seen, one ``offset_gap`` check per partition;
    ``tracks``: the alerts' tracks (the incident counts already sent)."""
    out = []
    for p, note in sorted(incidents.items()):
        cause = str(note.get("cause", "unknown")).replace("_", " ")
        rebuilding = bool(note.get("rebuilding"))
        count = int(note.get("count", 0))
        track = (tracks or {}).get(ops_id("state_reset", p), Track())
        new = count != track.count and (
            track.count > 0 or now - float(note.get("at", 0.0)) < NEWS_S)
        held = (track.state is State.FIRING and track.last_sent is not None
                and now - track.last_sent < RESET_HOLD_S)
        out.append(OpsCheck(
            p, "state_reset", rebuilding or new or held, float(count),
            f"{topic} partition {p}: {cause}; rebuilding from Kafka" if rebuilding
            else f"{topic} partition {p}: state reset ({cause}), rebuilt from Kafka",
            count=count, new=new))
        records = float(note.get("records", 0))
        if records:
            recent = now - float(note.get("gap_at", 0.0)) < GAP_HOLD_S
            out.append(OpsCheck(
                p, "offset_gap", recent, records,
                f"{topic} partition {p}: {records:.0f} records are in no window (deleted by "
                "retention before they were processed, or lost with the state)"))
    return out


def ops_id(metric: str, partition: int) -> str:
    return f"{MODEL}/-/{metric}@partition={partition}"


def step_all(
    found: list[OpsCheck], tracks: dict[str, Track], now: float, policy: Policy,
    severity: str = "critical",
) -> list[Alert]:
    """Advance each check's track (in place); the alerts to publish."""
    alerts = []
    for c in found:
        aid = ops_id(c.metric, c.partition)
        old = tracks.get(aid, Track())
        new, emit = step(old, c.breached, now, policy)
        if c.new and emit is None and new.state is State.FIRING:  # another incident: send it
            new, emit = msgspec.structs.replace(new, last_sent=now), Emit.REPEAT
        if c.count is not None:
            new = msgspec.structs.replace(new, count=c.count)
        if new != Track():
            tracks[aid] = new
        else:
            tracks.pop(aid, None)
        if emit is None:
            continue
        firing = emit is not Emit.RESOLVED
        since = new.since if firing else old.since
        alerts.append(Alert(
            id=aid, state="firing" if firing else "resolved", severity=severity,
            kind="operational", model=MODEL, version="-", column="-",
            metric=c.metric, value=c.value, threshold=None,
            window=Window(rfc3339(now), rfc3339(now)),
            since=rfc3339(since) if since is not None else None, ts=rfc3339(now),
            summary=c.summary, repeat=emit is Emit.REPEAT))
    return alerts
