"""Event decoding: every malformed case has its reason; fuzzing never escapes InvalidEvent."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.badinput import MAX_DEPTH, contract_violation, explain, nesting_depth
from streams.events import REASONS, Event, InvalidEvent, decode_event, event_time_ms

GOOD = {"model": "credit-risk", "features": {"age": 42, "country": "DE", "t": None},
        "prediction": 0.83}


def enc(obj: object) -> bytes:
    return json.dumps(obj).encode()


def reason(value: bytes, **kw: int) -> str:
    with pytest.raises(InvalidEvent) as info:
        decode_event(value, **kw)
    assert info.value.reason in REASONS
    return info.value.reason


def test_good_event_decodes_with_defaults() -> None:
    ev = decode_event(enc(GOOD))
    assert ev.model == "credit-risk" and ev.version == "default" and ev.ts is None
    assert ev.features["t"] is None
    proba = decode_event(enc({**GOOD, "prediction": {"a": 0.2, "b": 0.8}}))
    assert proba.prediction == {"a": 0.2, "b": 0.8}
    assert decode_event(enc({**GOOD, "prediction": "yes"})).prediction == "yes"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"", "empty"),
        (b"{" + b" " * (1 << 20), "oversized"),
        (b'{"model": "m", "features": {"a": "\xff"}, "prediction": 1}', "not_utf8"),
        (b'{"model":"m","features":{},"prediction":1,"x":' + b"[" * 5000 + b"]" * 5000 + b"}",
         "too_deep"),
        (b'{"model": "m", "features": {"a": NaN}, "prediction": 1}', "non_finite"),
        (b'{"model": "m", "features": {"a": 1}, "prediction": Infinity}', "non_finite"),
        (b'{"model": "m", "features": {"a": 1e999}, "prediction": 1}', "non_finite"),
        (b'{"model": "m", "features": ', "invalid_json"),
        (b"[1, 2]", "wrong_type"),
        (enc({"features": {}, "prediction": 1}), "missing_field"),
        (enc({"model": "m", "prediction": 1}), "missing_field"),
        (enc({"model": "m", "features": {}}), "missing_field"),
        (enc({"model": 7, "features": {}, "prediction": 1}), "wrong_type"),
        (enc({"model": "m", "features": [1], "prediction": 1}), "wrong_type"),
        (enc({"model": "m", "features": {"a": [1]}, "prediction": 1}), "wrong_type"),
        (enc({"model": "m", "features": {}, "prediction": True}), "wrong_type"),
        (enc({"model": "m", "features": {}, "prediction": {"a": "x"}}), "wrong_type"),
        (enc({"model": "bad model!", "features": {}, "prediction": 1}), "invalid_value"),
        (enc({"model": "m" * 129, "features": {}, "prediction": 1}), "invalid_value"),
        (enc({"model": "", "features": {}, "prediction": 1}), "invalid_value"),
        (enc({"model": "m", "features": {}, "prediction": {}}), "invalid_value"),
        (enc({"model": "m", "version": "v|2", "features": {}, "prediction": 1}), "invalid_value"),
        (enc({"model": "m", "version": 7, "features": {}, "prediction": 1}), "wrong_type"),
        (b'{"model":"m","features":{"a":1' + b"0" * 400 + b'},"prediction":1}', "non_finite"),
        (b'{"model":"m","features":{"a":1' + b"0" * 5000 + b'},"prediction":1}', "non_finite"),
        (b'{"model":"m","features":{"\xc3":1},"prediction":1}', "not_utf8"),
        (b'{"model":"m","features":{"a":"x\\ud800"},"prediction":1}', "invalid_value"),
        (b'\xef\xbb\xbf{"model":"m","features":{},"prediction":1}', "invalid_json"),
        (b'{"model":"m","features":{"a":"' + b"[" * 5000 + b'"},"prediction":[]}', "wrong_type"),
    ],
)
def test_malformed_reasons(value: bytes, expected: str) -> None:
    assert reason(value) == expected


@pytest.mark.parametrize(
    ("ts", "ms"),
    [
        ("2026-11-23T08:00:00.125Z", 1795420800125),
        ("2026-11-23T09:00:00.125+01:00", 1795420800125),
        (1795420800.125, 1795420800125),
        (None, 42),
    ],
)
def test_event_time(ts: object, ms: int) -> None:
    ev = decode_event(enc({**GOOD, "ts": ts}))
    assert event_time_ms(ev, 42) == ms


@pytest.mark.parametrize("ts", ["yesterday", "2026-11-23T08:00:00", -5.0, 1e15, "99999-01-01",
                                1e308, -1e308, 1.7e305])
def test_bad_ts(ts: object) -> None:
    ev = decode_event(enc({**GOOD, "ts": ts}))
    with pytest.raises(InvalidEvent) as info:
        event_time_ms(ev, 0)
    assert info.value.reason == "bad_ts"


def test_missing_kafka_timestamp_is_bad_ts() -> None:
    with pytest.raises(InvalidEvent, match="bad_ts"):
        event_time_ms(decode_event(enc(GOOD)), -1)


def _check(value: bytes) -> None:
    try:
        ev = decode_event(value, max_bytes=4096)
    except InvalidEvent as exc:
        assert exc.reason in REASONS
        return
    assert isinstance(ev, Event)
    try:
        event_time_ms(ev, 0)
    except InvalidEvent as exc:
        assert exc.reason == "bad_ts"


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_random_bytes(value: bytes) -> None:
    _check(value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "model": st.one_of(st.text(max_size=10), json_values),
            "features": st.one_of(st.dictionaries(st.text(max_size=5), json_values), json_values),
            "prediction": json_values,
            "ts": st.one_of(st.floats(), st.text(max_size=30), json_values),
            "version": json_values,
            "latency_ms": json_values,
        },
    )
)
def test_fuzz_random_json_events(obj: dict[str, object]) -> None:
    _check(json.dumps(obj).encode())  # json.dumps writes NaN / Infinity for non-finite floats


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_fuzz_any_json(obj: object) -> None:
    _check(json.dumps(obj).encode())


def test_nesting_depth_ignores_brackets_in_strings() -> None:
    assert nesting_depth(b'{"a": "[[[{{{", "b": [[1]], "c": "\\"]]]"}') == 3
    assert nesting_depth(b"[" * (MAX_DEPTH + 1)) == MAX_DEPTH + 1
    assert nesting_depth(b"1") == 0


def _all_finite(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(map(_all_finite, value.values()))
    if isinstance(value, list):
        return all(map(_all_finite, value))
    return True


@settings(max_examples=600, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "model": st.sampled_from(["m", "credit-risk", "", "a b", "x" * 129, 3, None]),
            "version": st.sampled_from(["7", "v|2", "", 7, None, "canary.1"]),
            "features": st.one_of(st.dictionaries(st.text(max_size=5), json_values, max_size=4),
                                  json_values),
            "prediction": st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                                    st.integers(), st.text(max_size=3), st.booleans(),
                                    st.dictionaries(st.text(max_size=3), json_values, max_size=3),
                                    json_values),
            "id": json_values,
            "label": json_values,
            "ts": st.one_of(st.floats(allow_nan=False), st.text(max_size=5), json_values),
            "latency_ms": json_values,
        },
    )
)
def test_fast_decoder_agrees_with_the_contract(obj: dict[str, object]) -> None:
    """msgspec (the fast path) accepts exactly what driftline's own contract check accepts,
    so a new msgspec release that decodes differently fails here, not in production."""
    value = json.dumps(obj).encode()
    try:
        decode_event(value)
        accepted, why = True, None
    except InvalidEvent as exc:
        accepted, why = False, exc.reason
        assert why == explain(value)[0]
    parsed = json.loads(value)
    contract_ok = _all_finite(parsed) and contract_violation(parsed) is None
    assert accepted == contract_ok, (obj, why)
