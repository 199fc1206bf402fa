"""Prediction events: decoding and validation of the DESIGN.md §1 contract.

:func:`decode_event` turns one Kafka message value into an :class:`Event` or raises
:class:`InvalidEvent` carrying a short machine ``reason`` (one of :data:`REASONS`) and a
human message. It never raises anything else for any input bytes, so a payload can
never crash a worker.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Final

import msgspec

from sketches.errors import DriftlineError
from streams.badinput import explain

MODEL_PATTERN: Final = r"^[A-Za-z0-9._-]{1,128}$"
DEFAULT_MAX_BYTES: Final = 1 << 20
"""Largest accepted message value (1 MiB)."""

REASONS: Final = (
    "oversized",  # value longer than the configured limit
    "empty",  # tombstone / empty value
    "not_utf8",  # bytes are not valid UTF-8
    "too_deep",  # nesting deeper than the decoder allows
    "non_finite",  # NaN / Infinity literals or numbers out of float range
    "invalid_json",  # anything else that is not JSON
    "missing_field",  # a required field is absent
    "wrong_type",  # a field has the wrong JSON type
    "invalid_value",  # right type, value outside the contract (e.g. model name pattern)
    "bad_ts",  # ts not RFC 3339 / epoch seconds, or out of range
    "unknown_model",  # decoded fine, but the model is not configured
    "limit",  # a model, column or version beyond the worker's limits (--max-models, ...)
)

ModelName = Annotated[str, msgspec.Meta(pattern=MODEL_PATTERN)]
FeatureValue = float | str | bool | None
"""Ints decode as floats (what the sketches take); one beyond float range is non_finite."""
Prediction = float | str | dict[str, float]

_MIN_TS_MS: Final = 0
_MAX_TS_MS: Final = 253_402_300_799_000  # 9999-12-31T23:59:59Z


class InvalidEvent(DriftlineError):
    """A message value that does not decode or validate; ``reason`` is in :data:`REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class Event(msgspec.Struct, frozen=True):
    """One decoded prediction event (wire names as in DESIGN.md §1)."""

    model: ModelName
    features: dict[str, FeatureValue]
    prediction: Prediction
    version: ModelName = "default"
    id: str | None = None
    ts: str | float | None = None
    label: bool | float | str | None = None
    latency_ms: float | None = None


_DECODER: Final = msgspec.json.Decoder(Event)


def decode_event(value: bytes | None, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Event:
    """Decode and validate one message value; raise :class:`InvalidEvent` on any failure.

    The reason comes from the input itself (:func:`streams.badinput.explain`), never from
    the decoder's exception type or wording."""
    if not value:
        raise InvalidEvent("empty", "message value is empty")
    if len(value) > max_bytes:
        raise InvalidEvent("oversized", f"{len(value)} bytes > limit {max_bytes}")
    try:
        event = _DECODER.decode(value)
    except Exception:  # whatever msgspec raises, and however it words it
        reason, message = explain(value)
        raise InvalidEvent(reason, message) from None
    _check_finite(event)
    return event


def _check_finite(event: Event) -> None:
    # msgspec's JSON decoder already rejects NaN/Infinity literals and numbers out of
    # float range (tested in tests/unit/test_events.py), so only the object case is left.
    pred = event.prediction
    if isinstance(pred, dict) and not pred:
        raise InvalidEvent("invalid_value", "prediction object is empty")


def event_time_ms(event: Event, kafka_timestamp_ms: int) -> int:
    """Event time in epoch ms: ``ts`` (RFC 3339 or epoch seconds) else the Kafka timestamp.

    Raises :class:`InvalidEvent` with reason ``bad_ts`` when ``ts`` cannot be read, has
    no UTC offset (RFC 3339 requires one) or is outside year 1970..9999.
    """
    return timestamp_ms(event.ts, kafka_timestamp_ms)


def timestamp_ms(ts: str | float | None, kafka_timestamp_ms: int) -> int:
    """:func:`event_time_ms` of a bare ``ts`` value (label events use it too)."""
    if ts is None:
        ms = kafka_timestamp_ms
    elif isinstance(ts, str):
        try:
            parsed = datetime.fromisoformat(ts)
        except ValueError:
            raise InvalidEvent("bad_ts", f"ts {ts[:64]!r} is not RFC 3339") from None
        if parsed.tzinfo is None:
            raise InvalidEvent("bad_ts", f"ts {ts[:64]!r} has no UTC offset")
        ms = round(parsed.timestamp() * 1000)
    else:
        if not math.isfinite(ts):
            raise InvalidEvent("bad_ts", "ts is not finite")
        if not _MIN_TS_MS <= ts * 1000 <= _MAX_TS_MS:  # (before round(): 1e308 * 1000 is inf)
            raise InvalidEvent("bad_ts", f"ts {ts:.6g} s is outside 1970..9999")
        ms = round(ts * 1000)
    if not _MIN_TS_MS <= ms <= _MAX_TS_MS:
        raise InvalidEvent("bad_ts", f"ts {ms} ms is outside 1970..9999")
    return ms
