"""PredictionProducer without a broker: serialisation, keys, backpressure, failures."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np
import pytest

from streams.producer import (
    BackpressureError,
    DeliveryError,
    EventEncodeError,
    PredictionProducer,
    encode_event,
    event_key,
)

EVENT = {
    "model": "credit-risk", "version": "7", "id": "req-81f3",
    "ts": "2026-11-23T08:00:00.125Z",
    "features": {"age": 42, "income": 52000.5, "country": "DE", "tenure": None},
    "prediction": 0.83, "latency_ms": 12.4,
}


class FakeMsg:
    def __init__(self, key: bytes | None) -> None:
        self._key = key

    def key(self) -> bytes | None:
        return self._key


class FakeClient:
    """Records produced messages; delivers them on poll/flush with a scripted error."""

    def __init__(self, capacity: int = 1_000_000,
                 fail: Callable[[bytes], str | None] = lambda v: None) -> None:
        self.capacity = capacity
        self.fail = fail
        self.queue: list[tuple[bytes, bytes | None, Callable[[Any, Any], None]]] = []
        self.produced: list[tuple[str, bytes, bytes | None]] = []
        self.polls = 0
        self.stuck = False

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                on_delivery: Callable[[Any, Any], None] | None = None) -> None:
        if len(self.queue) >= self.capacity:
            raise BufferError("Local: Queue full")
        assert value is not None and on_delivery is not None
        self.produced.append((topic, value, key))
        self.queue.append((value, key, on_delivery))

    def poll(self, timeout: float = 0.0) -> int:
        self.polls += 1
        if self.stuck:
            return 0
        served = len(self.queue)
        for value, key, cb in self.queue:
            cb(self.fail(value), FakeMsg(key))
        self.queue.clear()
        return served

    def flush(self, timeout: float = 0.0) -> int:
        self.poll()
        return len(self.queue)

    def __len__(self) -> int:
        return len(self.queue)


def test_encode_round_trips_the_contract_example() -> None:
    assert msgspec.json.decode(encode_event(EVENT)) == EVENT


def test_encode_nan_and_numpy_and_datetime() -> None:
    event = dict(EVENT, prediction=np.float64(0.5), features={"x": math.nan, "n": np.int64(3)},
                 ts=dt.datetime(2026, 11, 23, 8, tzinfo=dt.UTC))
    decoded = msgspec.json.decode(encode_event(event))
    assert decoded["features"] == {"x": None, "n": 3}
    assert decoded["prediction"] == 0.5
    assert decoded["ts"] == "2026-11-23T08:00:00Z"


@pytest.mark.parametrize("field", ["model", "features", "prediction"])
def test_encode_rejects_missing_required(field: str) -> None:
    event = {k: v for k, v in EVENT.items() if k != field}
    with pytest.raises(EventEncodeError, match=field):
        encode_event(event)


def test_encode_rejects_bad_shapes() -> None:
    with pytest.raises(EventEncodeError):
        encode_event(dict(EVENT, features=[1, 2]))
    with pytest.raises(EventEncodeError):
        encode_event(dict(EVENT, ts=dt.datetime(2026, 1, 1)))  # naive
    with pytest.raises(EventEncodeError):
        encode_event(dict(EVENT, prediction=object()))


def test_key_is_id() -> None:
    assert event_key(EVENT) == b"req-81f3"
    assert event_key(dict(EVENT, id=17)) == b"17"
    assert event_key({k: v for k, v in EVENT.items() if k != "id"}) is None
    assert event_key(dict(EVENT, id=True)) is None


def test_send_serialises_keys_and_flushes() -> None:
    client = FakeClient()
    with PredictionProducer(client, topic="p") as producer:
        producer.send(EVENT)
        producer.send_bytes(b"raw", None)
    assert client.produced[0] == ("p", encode_event(EVENT), b"req-81f3")
    assert client.produced[1] == ("p", b"raw", None)
    assert producer.sent == 2 and producer.delivered == 2 and producer.failed == 0


def test_buffer_full_is_served_by_polling() -> None:
    client = FakeClient(capacity=1)
    producer = PredictionProducer(client)
    client.stuck = True
    producer.send(EVENT)  # fills the queue; its poll(0) serves nothing
    client.stuck = False
    producer.send(EVENT)  # BufferError -> poll -> room -> produced
    assert producer.sent == 2
    producer.close()


def test_buffer_full_too_long_raises_backpressure() -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    client = FakeClient(capacity=0)
    client.stuck = True
    producer = PredictionProducer(client, max_block_s=3.0, clock=clock)
    with pytest.raises(BackpressureError):
        producer.send(EVENT)
    assert producer.sent == 0


def test_delivery_failures_are_counted_kept_and_raised_once() -> None:
    client = FakeClient(fail=lambda v: "Broker: boom" if b"bad" in v else None)
    producer = PredictionProducer(client, topic="p")
    producer.send(EVENT)
    producer.send_bytes(b"bad-1", b"k1")
    producer.send_bytes(b"bad-2", b"k2")
    assert producer.failed == 2 and producer.delivered == 1
    assert [f.key for f in producer.errors] == [b"k1", b"k2"]
    assert producer.errors[0].reason == "Broker: boom"
    with pytest.raises(DeliveryError) as info:
        producer.flush()
    assert len(info.value.failures) == 2 and info.value.pending == 0
    producer.flush()  # already reported: does not raise again
    producer.close()
    with pytest.raises(Exception, match="closed"):
        producer.send(EVENT)


def test_flush_timeout_with_pending_raises() -> None:
    client = FakeClient()
    producer = PredictionProducer(client)
    client.stuck = True
    producer.send(EVENT)
    with pytest.raises(DeliveryError) as info:
        producer.flush(0.01)
    assert info.value.pending == 1


def test_context_manager_does_not_mask_the_body_error() -> None:
    client = FakeClient(fail=lambda v: "boom")
    with pytest.raises(KeyError), PredictionProducer(client) as producer:
        producer.send(EVENT)
        raise KeyError("body")
    with pytest.raises(DeliveryError), PredictionProducer(client) as producer:
        producer.send(EVENT)
