"""The alert message (DESIGN.md §1 contract) and its JSON encoding.

``id`` is ``model/column/metric`` and is also the Kafka message key, so a compacted
``alerts`` topic keeps the latest state of every alert.
"""

from __future__ import annotations

import datetime as dt

import msgspec


def rfc3339(epoch_s: float) -> str:
    """``2026-11-23T08:00:00.125Z`` (UTC, milliseconds)."""
    t = dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


class Window(msgspec.Struct, frozen=True):
    start: str
    end: str


class Alert(msgspec.Struct, frozen=True):
    id: str
    state: str  # "firing" | "resolved"
    severity: str  # "warning" | "critical"
    kind: str  # "drift" | "data_quality" | "performance" | "operational"
    model: str
    version: str
    column: str | None  # None: a model-level alert (performance), id model/-/metric
    metric: str
    value: float | None
    threshold: float | None
    window: Window
    since: str | None
    ts: str
    summary: str
    repeat: bool = False
    compare_to: str | None = None
    """Canary alerts: the baseline version the alert's ``version`` was compared with."""
    segment: dict[str, str] | None = None
    """Segment alerts: ``{"column": "country", "value": "DE"}`` (id suffix ``@country=DE``)."""


def alert_id(model: str, column: str, metric: str) -> str:
    return f"{model}/{column}/{metric}"


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Alert)


def encode(alert: Alert) -> bytes:
    return _encoder.encode(alert)


def decode(data: bytes) -> Alert:
    return _decoder.decode(data)
