"""Alert state in Redis uses the one framing of stored state (sketches/_codec); the JSON
format 1 an existing deployment stored stays readable."""

from __future__ import annotations

import msgspec
import pytest

from alerts.machine import State, Track, track_from_bytes, track_to_bytes
from alerts.results import (
    ColumnResult,
    MetricResult,
    ModelResult,
    result_from_bytes,
    result_to_bytes,
)
from sketches._codec import HEADER_SIZE, peek_magic
from sketches.errors import StateFormatError

TRACK = Track(state=State.FIRING, breaches=2, since=1.5, last_sent=2.5)
RESULT = ModelResult(
    model="m", version="7", status="drift", window_start=0.0, window_end=60.0, rows=10,
    evaluated_at=61.0,
    columns={"x": ColumnResult("x", "numeric", 10, 0.0, "drift",
                               {"psi": MetricResult(0.31, 0.01, 0.2, True)}, ["psi"])},
    firing=["m/x/psi"], severities={"m/x/psi": "critical"}, latency_ms={"0.5": 1.25},
)


def test_round_trips_in_the_shared_framing() -> None:
    data = track_to_bytes(TRACK)
    assert peek_magic(data) == b"DLAT" and data[4:6] == b"\x00\x02" and len(data) > HEADER_SIZE
    assert track_from_bytes(data) == TRACK
    blob = result_to_bytes(RESULT)
    assert peek_magic(blob) == b"DLMR"
    assert result_from_bytes(blob) == RESULT


def test_format_1_json_is_still_read() -> None:
    """Bytes exactly as driftline wrote them before: magic, version byte 1, JSON."""
    old_track = b"DLAT\x01" + msgspec.json.encode(TRACK)
    assert old_track.startswith(b'DLAT\x01{"state":"firing"')
    assert track_from_bytes(old_track) == TRACK
    assert result_from_bytes(b"DLMR\x01" + msgspec.json.encode(RESULT)) == RESULT


@pytest.mark.parametrize("mangle", [
    lambda b: b[:-1],                          # truncated
    lambda b: b[:-1] + bytes([b[-1] ^ 0xFF]),  # corrupt: checksum
    lambda b: b"DLMR" + b[4:],                 # another state's magic
    lambda b: b[:4] + b"\x00\x09" + b[6:],     # a newer format
    lambda b: b"DLAT\x01{not json",            # corrupt format 1
    lambda b: b"",
])
def test_unreadable_bytes_raise_the_typed_error(mangle) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StateFormatError, match="alert state"):
        track_from_bytes(mangle(track_to_bytes(TRACK)))
