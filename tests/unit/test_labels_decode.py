"""Label events → join items (:func:`streams.labels.decode_label`), and what the join keeps
of a prediction (:func:`streams.join_items.prediction_item`) or a label
(:func:`streams.join_items.label_fits`) for each task."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from streams.events import InvalidEvent
from streams.join_items import JoinItem, label_fits, label_text, prediction_item
from streams.labels import MAX_ID, decode_label
from streams.windows import LabelSpec

BINARY = LabelSpec()
BOOLS = LabelSpec(positive="true", negative="false")
WORDS = LabelSpec(positive="fraud", negative="ok", threshold=0.7)
MULTI = LabelSpec(task="multiclass")
REG = LabelSpec(task="regression")
SPECS: Mapping[str, LabelSpec] = {"b": BINARY, "bb": BOOLS, "bw": WORDS, "m": MULTI, "r": REG}
KAFKA_TS = 1_795_420_800_000  # 2026-11-23T08:00Z


def decode(doc: object) -> JoinItem:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return decode_label(raw, 42, KAFKA_TS, SPECS)


def reason(doc: object, **kwargs: int) -> str:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    with pytest.raises(InvalidEvent) as err:
        decode_label(raw, 42, KAFKA_TS, SPECS, **kwargs)
    return err.value.reason


# ------------------------------------------------------------------ DLQ reasons
@pytest.mark.parametrize(("raw", "why"), [
    (b"", "empty"),
    (b"\xff\xfe{}", "not_utf8"),
    (b"{not json", "invalid_json"),
    (b'{"model": "b", "id": "a", "label": 1', "invalid_json"),
    (b"[1, 2]", "wrong_type"),
    (b'"label"', "wrong_type"),
])
def test_undecodable_values(raw: bytes, why: str) -> None:
    assert reason(raw) == why


def test_none_value_is_empty() -> None:
    with pytest.raises(InvalidEvent) as err:
        decode_label(None, 0, KAFKA_TS, SPECS)
    assert err.value.reason == "empty"


def test_oversized() -> None:
    assert reason({"model": "b", "id": "a", "label": 1, "pad": "x" * 200},
                  max_bytes=100) == "oversized"


@pytest.mark.parametrize("missing", ["model", "id", "label"])
def test_missing_fields(missing: str) -> None:
    doc: dict[str, object] = {"model": "b", "id": "a", "label": 1}
    del doc[missing]
    assert reason(doc) == "missing_field"
    doc[missing] = None  # null counts as missing
    assert reason(doc) == "missing_field"


@pytest.mark.parametrize(("doc", "why"), [
    ({"model": 7, "id": "a", "label": 1}, "wrong_type"),
    ({"model": "bad name!", "id": "a", "label": 1}, "invalid_value"),
    ({"model": "x" * 129, "id": "a", "label": 1}, "invalid_value"),
    ({"model": "b", "id": True, "label": 1}, "wrong_type"),
    ({"model": "b", "id": 1.5, "label": 1}, "wrong_type"),
    ({"model": "b", "id": ["a"], "label": 1}, "wrong_type"),
    ({"model": "b", "id": "", "label": 1}, "invalid_value"),
    ({"model": "b", "id": "i" * (MAX_ID + 1), "label": 1}, "invalid_value"),
    ({"model": "b", "id": "a", "label": [1]}, "wrong_type"),
    ({"model": "b", "id": "a", "label": {"c": 1}}, "wrong_type"),
    ({"model": "b", "id": "a", "label": 1, "ts": True}, "bad_ts"),
    ({"model": "b", "id": "a", "label": 1, "ts": [1]}, "bad_ts"),
    ({"model": "b", "id": "a", "label": 1, "ts": "yesterday"}, "bad_ts"),
    ({"model": "b", "id": "a", "label": 1, "ts": "2026-11-23T08:00:00"}, "bad_ts"),  # no offset
    ({"model": "b", "id": "a", "label": 1, "ts": -5}, "bad_ts"),
    ({"model": "b", "id": "a", "label": 1, "ts": 1e308}, "bad_ts"),  # once an OverflowError
    ({"model": "b", "id": "a", "label": 1, "ts": 1e15}, "bad_ts"),  # after year 9999
    ({"model": "nope", "id": "a", "label": 1}, "unknown_model"),
])
def test_invalid_fields(doc: object, why: str) -> None:
    assert reason(doc) == why


def test_unknown_model_wins_over_label_type() -> None:
    # the model is checked before its task can judge the label
    assert reason({"model": "nope", "id": "a", "label": "anything"}) == "unknown_model"


@pytest.mark.parametrize(("model", "label"), [
    ("b", 2), ("b", "yes"), ("b", 0.5), ("b", True), ("b", "1.0"),  # not in {"1", "0"}
    ("bb", 1), ("bb", "True"),  # bools are "true" / "false", nothing else
    ("bw", "FRAUD"), ("bw", 1),
    ("r", "3.5"), ("r", True), ("r", "high"),  # regression takes numbers only
])
def test_label_of_the_wrong_type_for_the_model(model: str, label: object) -> None:
    assert reason({"model": model, "id": "a", "label": label}) == "wrong_label"


@pytest.mark.parametrize(("model", "field"), [("r", "label"), ("b", "label"), ("m", "label"),
                                              ("b", "ts")])
def test_integer_beyond_float_range_is_a_dlq_reason(model: str, field: str) -> None:
    doc = {"model": model, "id": "a", "label": 1}
    raw = json.dumps(doc).encode()[:-1] + f', "{field}": 1{"0" * 400}}}'.encode()
    assert reason(raw) in ("non_finite", "bad_ts", "wrong_label")


def test_regression_label_beyond_1e100_is_wrong_label() -> None:
    # its squared error would overflow the window's sums: never reaches the join
    assert reason(b'{"model": "r", "id": "a", "label": 1e300}') == "wrong_label"


def test_nan_label_is_rejected() -> None:
    assert reason(b'{"model": "m", "id": "a", "label": NaN}') in ("invalid_json", "non_finite")


# ------------------------------------------------------------------ accepted labels
@pytest.mark.parametrize(("model", "label", "text"), [
    ("b", 1, "1"), ("b", 0, "0"), ("b", 1.0, "1"), ("b", "1", "1"), ("b", "0", "0"),
    ("bb", True, "true"), ("bb", False, "false"), ("bb", "true", "true"),
    ("bw", "fraud", "fraud"), ("bw", "ok", "ok"),
    ("m", "cat", "cat"), ("m", 3, "3"), ("m", 2.5, "2.5"), ("m", False, "false"),
    ("m", "", ""),
    ("r", 3, "3.0"), ("r", -0.25, "-0.25"), ("r", 1e100, "1e+100"),
])
def test_label_values(model: str, label: object, text: str) -> None:
    item = decode({"model": model, "id": "req-1", "label": label})
    assert item == JoinItem(42, model, "req-1", KAFKA_TS, label=text)


def test_long_class_is_cut() -> None:
    assert decode({"model": "m", "id": "a", "label": "c" * 100}).label == "c" * 64


def test_integer_id_becomes_a_string() -> None:
    assert decode({"model": "b", "id": 81, "label": 1}).id == "81"


def test_extra_fields_are_ignored() -> None:
    assert decode({"model": "b", "id": "a", "label": 1, "note": {"x": [1]}}).label == "1"


@pytest.mark.parametrize(("ts", "ms"), [
    (None, KAFKA_TS),  # absent: the Kafka timestamp
    ("2026-11-23T08:00:00.125Z", KAFKA_TS + 125),
    ("2026-11-23T09:00:00+01:00", KAFKA_TS),
    ("2026-11-23T08:00:01.5+00:00", KAFKA_TS + 1500),
    (1_795_420_800, KAFKA_TS),  # epoch seconds, int
    (1_795_420_800.25, KAFKA_TS + 250),  # epoch seconds, float
    (0, 0),
])
def test_ts_formats(ts: object, ms: int) -> None:
    doc: dict[str, object] = {"model": "b", "id": "a", "label": 1}
    if ts is not None:
        doc["ts"] = ts
    assert decode(doc).ts_ms == ms


def test_explicit_null_ts_is_the_kafka_timestamp() -> None:
    assert decode({"model": "b", "id": "a", "label": 1, "ts": None}).ts_ms == KAFKA_TS


# ------------------------------------------------------------------ label_fits / label_text
def test_label_text() -> None:
    assert [label_text(v) for v in (True, False, 1, 1.0, -2.0, 0.5, "x")] == \
        ["true", "false", "1", "1", "-2", "0.5", "x"]
    assert label_text(2.0**60) == repr(2.0**60)  # beyond exact integers: not an int string


@pytest.mark.parametrize(("spec", "label", "fits"), [
    (BINARY, 1, "1"), (BINARY, 0.0, "0"), (BINARY, "0", "0"), (BINARY, 2, None),
    (BINARY, True, None), (BOOLS, True, "true"), (BOOLS, "false", "false"), (BOOLS, 1, None),
    (WORDS, "ok", "ok"), (WORDS, "no", None),
    (MULTI, "a", "a"), (MULTI, 7, "7"), (MULTI, True, "true"),
    (REG, 2, "2.0"), (REG, 2.5, "2.5"), (REG, True, None), (REG, "2", None),
])
def test_label_fits(spec: LabelSpec, label: float | str | bool, fits: str | None) -> None:
    assert label_fits(spec, label) == fits


# ------------------------------------------------------------------ prediction_item
def item(spec: LabelSpec, prediction: float | str | Mapping[str, float],
         label: float | str | bool | None = None) -> JoinItem | None:
    return prediction_item(spec, 9, "mod", "id-1", KAFKA_TS, "7", prediction, label)


@pytest.mark.parametrize(("spec", "prediction", "pclass", "number"), [
    # binary: scores in [0, 1] are kept as numbers (the Lua applies the threshold)
    (BINARY, 0.83, "", "0.83"), (BINARY, 0, "", "0.0"), (BINARY, 1, "", "1.0"),
    (BINARY, 3, "3", ""),  # outside [0, 1]: a class
    (BINARY, "1", "1", ""), (BINARY, True, "true", ""),
    (BINARY, {"1": 0.3, "0": 0.7}, "", "0.3"),  # positive-class probability
    (BINARY, {"1": 1.2, "0": 0.1}, "", "1.0"),  # clamped to [0, 1]
    (BINARY, {"yes": 0.3, "no": 0.7}, "no", ""),  # no positive class: argmax
    (WORDS, {"fraud": 0.9, "ok": 0.1}, "", "0.9"),
    # multiclass: a class, or the argmax of an object
    (MULTI, "cat", "cat", ""), (MULTI, {"a": 0.2, "b": 0.5, "c": 0.3}, "b", ""),
    (MULTI, 2.0, "2", ""), (MULTI, 0.5, "0.5", ""), (MULTI, "x" * 80, "x" * 64, ""),
    # regression: the number
    (REG, 12.5, "", "12.5"), (REG, 3, "", "3.0"), (REG, -1e-12, "", "-1e-12"),
])
def test_prediction_fields_per_task(spec: LabelSpec, prediction: float | str | Mapping[str, float],
                                    pclass: str, number: str) -> None:
    assert item(spec, prediction) == JoinItem(9, "mod", "id-1", KAFKA_TS, "7", pclass, number, "")


@pytest.mark.parametrize(("spec", "prediction"), [
    (REG, "high"), (REG, {"a": 1.0}), (REG, True), (BINARY, {}), (MULTI, {}),
])
def test_unscorable_predictions(spec: LabelSpec, prediction: float | str | Mapping[str, float]
                                ) -> None:
    assert item(spec, prediction) is None


@pytest.mark.parametrize(("spec", "label", "inline"), [
    (BINARY, 1, "1"), (BINARY, 0.0, "0"), (BINARY, 5, ""),  # wrong type: no inline label
    (BOOLS, True, "true"), (MULTI, "dog", "dog"), (REG, 4, "4.0"), (REG, "x", ""),
    (BINARY, None, ""),
])
def test_inline_label(spec: LabelSpec, label: float | str | bool | None, inline: str) -> None:
    got = item(spec, 0.4 if spec.task != "multiclass" else "cat", label)
    assert got is not None and got.label == inline
