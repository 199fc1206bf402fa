"""What one evaluation found, per model: the data behind metrics, the API and `status`.

Plain, serialisable structs (msgspec) so the leader can store the latest result in
Redis and every worker's HTTP API, and ``driftline status``, can read it.
"""

from __future__ import annotations

import msgspec

from alerts.stored import StoredFormat


class MetricResult(msgspec.Struct, frozen=True):
    value: float | None
    error_bound: float = 0.0
    threshold: float | None = None
    breached: bool | None = None  # None: not enough data to say


class ColumnResult(msgspec.Struct, frozen=True):
    column: str
    type: str
    count: int
    null_ratio: float | None
    verdict: str  # "drift" | "no_drift" | "insufficient_data"
    metrics: dict[str, MetricResult] = {}
    reasons: list[str] = []


class PerformanceResult(msgspec.Struct, frozen=True):
    """Ground truth of the measurement window (alerts.performance)."""

    state: str  # "ok" | "insufficient_labels"
    labels: int
    predictions: int
    label_ratio: float | None
    metrics: dict[str, MetricResult] = {}  # realized
    estimated: dict[str, MetricResult] = {}  # CBPE
    reference: dict[str, float] = {}
    counters: dict[str, int] = {}  # the join's: expired, orphan, duplicate, late, ...
    delay_s: dict[str, float] = {}  # label delay quantiles
    detections: int = 0
    segments: dict[str, dict[str, MetricResult]] = {}  # segment id suffix -> realized rules


class ModelResult(msgspec.Struct, frozen=True):
    model: str
    version: str
    status: str  # "ok" | "drift" | "insufficient_data" | "no_reference" | "incomplete"
    window_start: float  # epoch seconds
    window_end: float
    rows: int
    evaluated_at: float
    columns: dict[str, ColumnResult] = {}
    firing: list[str] = []  # ids of alerts firing now
    severities: dict[str, str] = {}  # firing alert id -> severity
    latency_ms: dict[str, float] = {}  # quantile ("0.5", "0.9", "0.95", "0.99") -> ms
    performance: PerformanceResult | None = None
    traffic: dict[str, int] = {}  # rows per version in the measurement window
    scopes: dict[str, ModelResult] = {}
    """Further scopes (id suffix -> their result): each version when several have
    traffic, the canary comparison (alerts.scopes)."""


_FORMAT = StoredFormat(b"DLMR", 2, ModelResult, "model result")  # format 1 (JSON) still read


def result_to_bytes(result: ModelResult) -> bytes:
    return _FORMAT.to_bytes(result)


def result_from_bytes(data: bytes) -> ModelResult:
    return _FORMAT.from_bytes(data)


def to_json_dict(result: ModelResult) -> dict[str, object]:
    out: dict[str, object] = msgspec.to_builtins(result)
    return out
