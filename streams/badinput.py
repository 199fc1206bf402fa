"""Why a message value is not a valid prediction event, decided from the bytes and values.

msgspec decodes the good events fast; when it refuses one, :func:`explain` re-reads the
value with Python's own UTF-8 and JSON decoders and checks the decoded value against the
DESIGN.md §1 contract here. The dead-letter reason therefore depends only on the input:
neither the wording nor the exception types of msgspec (which changed in 0.23: invalid
UTF-8 became a ``DecodeError``) can move an event from one reason to another.
"""

from __future__ import annotations

import json
import math
import re
from typing import Final

import numpy as np

MODEL_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,128}")
MAX_DEPTH: Final = 512
"""Deepest nesting of arrays / objects a rejected event is parsed at (``too_deep`` above)."""

_STRING: Final = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPEN: Final = np.frombuffer(b"[{", dtype=np.uint8)
_CLOSE: Final = np.frombuffer(b"]}", dtype=np.uint8)


class _NonFinite(Exception):
    """Raised from the JSON parser hooks on NaN / Infinity literals."""


def _reject_constant(name: str) -> float:
    raise _NonFinite(name)


def _parse_int(text: str) -> int | float:
    # Beyond float range an integer is a number the sketches cannot take; float() makes it
    # inf (caught as non_finite) and sidesteps Python's int-string length limit.
    return int(text) if len(text) <= 300 else float(text)


def nesting_depth(value: bytes) -> int:
    """Deepest array / object nesting of a JSON text (brackets inside strings ignored)."""
    stripped = _STRING.sub(b'""', value)
    arr = np.frombuffer(stripped, dtype=np.uint8)
    steps = np.isin(arr, _OPEN).astype(np.int32) - np.isin(arr, _CLOSE).astype(np.int32)
    return int(np.cumsum(steps).max(initial=0))


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _non_finite(value: object) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_non_finite(v) for v in value)
    return False


def _lone_surrogate(value: object) -> bool:
    """True when a string (or key) holds a \\ud800-style escape that is no character."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_lone_surrogate(v) for v in value)
    return False


# Optional fields: name -> (accepted kinds, described). Required ones are checked by hand.
_OPTIONAL: Final = {
    "version": ({"string"}, "a string"),
    "id": ({"string", "null"}, "a string or null"),
    "ts": ({"string", "number", "null"}, "an RFC 3339 string, epoch seconds or null"),
    "label": ({"string", "number", "boolean", "null"}, "a number, a string, a bool or null"),
    "latency_ms": ({"number", "null"}, "a number or null"),
}
_FEATURE_KINDS: Final = {"null", "bool", "number", "string"}


def contract_violation(obj: object) -> tuple[str, str] | None:
    """The first way a decoded JSON value breaks the event contract, as (reason, message)."""
    if not isinstance(obj, dict):
        return "wrong_type", f"an event is a JSON object, got a {_kind(obj)}"
    for name in ("model", "features", "prediction"):
        if name not in obj:
            return "missing_field", f"required field {name!r} is missing"
    model = obj["model"]
    if not isinstance(model, str):
        return "wrong_type", f"model must be a string, got a {_kind(model)}"
    if not MODEL_RE.fullmatch(model):
        return "invalid_value", "model must be 1-128 characters of [A-Za-z0-9._-]"
    found = _features_violation(obj["features"]) or _prediction_violation(obj["prediction"])
    if found:
        return found
    for name, (kinds, described) in _OPTIONAL.items():
        if name in obj and _kind(obj[name]) not in kinds:
            return "wrong_type", f"{name} must be {described}, got a {_kind(obj[name])}"
    version = obj.get("version")
    if isinstance(version, str) and not MODEL_RE.fullmatch(version):
        return "invalid_value", "version must be 1-128 characters of [A-Za-z0-9._-]"
    return None


def _features_violation(features: object) -> tuple[str, str] | None:
    if not isinstance(features, dict):
        return "wrong_type", f"features must be an object, got a {_kind(features)}"
    for name, value in features.items():
        if _kind(value) not in _FEATURE_KINDS:
            return "wrong_type", (f"feature {name[:64]!r} must be a number, string, bool or "
                                  f"null, got a {_kind(value)}")
    return None


def _prediction_violation(pred: object) -> tuple[str, str] | None:
    if _number(pred) or isinstance(pred, str):
        return None
    if isinstance(pred, dict):
        if not pred:
            return "invalid_value", "prediction object is empty"
        if all(_number(v) for v in pred.values()):
            return None
        return "wrong_type", "prediction object must map class -> probability (numbers)"
    return "wrong_type", f"prediction must be a number, string or object, got a {_kind(pred)}"


def explain(value: bytes) -> tuple[str, str]:
    """(reason, message) for a value the fast decoder refused; see ``events.REASONS``.

    Never raises. A value that passes every check here is reported as ``invalid_value``
    (the fast decoder and this contract disagree; the message says so).
    """
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return "not_utf8", f"byte {exc.start} is not valid UTF-8"
    depth = nesting_depth(value)
    if depth > MAX_DEPTH:
        return "too_deep", f"nesting depth {depth} > {MAX_DEPTH}"
    try:
        obj = json.loads(text, parse_constant=_reject_constant, parse_int=_parse_int)
    except _NonFinite as exc:
        return "non_finite", f"{exc} is not a JSON number"
    except RecursionError:
        return "too_deep", "nesting too deep"
    except ValueError as exc:
        return "invalid_json", f"not JSON: {str(exc)[:200]}"
    if _non_finite(obj):
        return "non_finite", "a number is out of float range"
    found = contract_violation(obj)
    if found:
        return found
    if _lone_surrogate(obj):
        return "invalid_value", "a string escapes a lone UTF-16 surrogate (not a character)"
    return "invalid_value", "the event breaks the contract in a way not classified"
