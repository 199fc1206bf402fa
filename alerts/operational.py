"""Operational alerts from the stream side's incident notes (state lost, topic recreated,
records deleted before they were processed).

Workers note incidents per partition in Redis (``streams.state.RedisStateStore
.note_incident``); the evaluator leader turns them into alerts through the same state
machine as drift. Alert ids are ``_driftline/-/<metric>@partition=<p>`` (model
``_driftline``, no column, a ``partition`` segment, kind ``operational``):

- ``state_reset`` — breached while the partition is being rebuilt from Kafka after its
  state was found lost or foreign; resolves when the rebuild has caught up;
- ``offset_gap`` — breached for ``GAP_HOLD_S`` after records of the partition were found
  deleted by retention before they were processed; then resolves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from alerts.machine import Emit, Policy, Track, step
from alerts.message import Alert, Window, rfc3339

MODEL = "_driftline"
"""The ``model`` of operational alerts that concern the pipeline, not a model."""
GAP_HOLD_S = 600.0


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


def checks(incidents: Mapping[int, Mapping[str, Any]], now: float, topic: str
           ) -> list[OpsCheck]:
    """One ``state_reset`` and, once a gap was seen, one ``offset_gap`` check per partition."""
    out = []
    for p, note in sorted(incidents.items()):
        cause = str(note.get("cause", "unknown")).replace("_", " ")
        rebuilding = bool(note.get("rebuilding"))
        out.append(OpsCheck(
            p, "state_reset", rebuilding, float(note.get("count", 0)),
            f"{topic} partition {p}: {cause}; rebuilding from Kafka" if rebuilding
            else f"{topic} partition {p}: state rebuilt from Kafka after: {cause}"))
        records = float(note.get("records", 0))
        if records:
            recent = now - float(note.get("gap_at", 0.0)) < GAP_HOLD_S
            out.append(OpsCheck(
                p, "offset_gap", recent, records,
                f"{topic} partition {p}: {records:.0f} records deleted by retention before "
                "they were processed"))
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
