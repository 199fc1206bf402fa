"""``PredictionProducer``: the small client Python model servers use to emit prediction events.

It wraps a confluent-kafka ``Producer`` configured for the event contract of DESIGN.md §1:

- **idempotent** (``enable.idempotence``: no duplicates or reordering from retries),
- **batched** through ``linger.ms`` and lz4 compression (both from
  :func:`streams.produce.producer_config`, purpose ``"events"``),
- **non-blocking**: :meth:`PredictionProducer.send` serialises with msgspec, enqueues and
  serves delivery callbacks with ``poll(0)``; it only waits when librdkafka's local queue
  is full (``BufferError``), polling until there is room or ``max_block_s`` elapses
  (then :class:`BackpressureError`; :func:`streams.produce.produce`),
- **keyed by the event's ``id``** when present (even spread; never relied on),
- **delivery failures surfaced**: counted (``failed``), the most recent kept in
  :attr:`PredictionProducer.errors`, and raised as :class:`DeliveryError` by
  :meth:`flush` / :meth:`close` so a caller cannot miss them.

The Kafka client is injectable (anything with ``produce`` / ``poll`` / ``flush`` /
``__len__``), so tests and other transports need no broker.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import msgspec

from streams.kafka_config import KafkaConnection
from streams.produce import (
    BackpressureError,
    KafkaProducerLike,
    ProducerError,
    produce,
    producer_config,
)

log = logging.getLogger(__name__)

__all__ = [
    "BackpressureError", "DeliveryError", "DeliveryFailure", "EventEncodeError",
    "KafkaConnection", "KafkaProducerLike", "PredictionProducer", "ProducerError",
    "encode_event", "event_key", "producer_config",
]

DEFAULT_TOPIC = "predictions"
MAX_KEPT_ERRORS = 100
_REQUIRED = ("model", "features", "prediction")


class EventEncodeError(ProducerError):
    """The event does not satisfy the prediction-event contract and was not sent."""


class DeliveryError(ProducerError):
    """Some events were not delivered (or not confirmed before a flush timeout)."""

    def __init__(self, message: str, failures: tuple[DeliveryFailure, ...], pending: int) -> None:
        super().__init__(message)
        self.failures = failures
        self.pending = pending


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    """One event Kafka refused or timed out on."""

    topic: str
    key: bytes | None
    reason: str


def _enc_hook(obj: Any) -> Any:
    try:  # numpy scalars and other number-likes
        return obj.item()
    except AttributeError:
        raise EventEncodeError(f"cannot serialise {type(obj).__name__} in an event") from None


_ENCODER = msgspec.json.Encoder(enc_hook=_enc_hook)


def encode_event(event: Mapping[str, Any]) -> bytes:
    """Serialise one prediction event (DESIGN.md §1) to JSON bytes.

    Checks only what a producer can get wrong cheaply: the required fields are present
    and ``features`` is a mapping. NaN / ±Infinity become ``null`` (JSON has no NaN, and
    the contract counts NaN as missing). The processor validates everything else.
    """
    missing = [name for name in _REQUIRED if name not in event]
    if missing:
        raise EventEncodeError(f"event lacks required field(s): {', '.join(missing)}")
    if not isinstance(event["features"], Mapping):
        raise EventEncodeError("event 'features' must be a mapping of name -> value")
    ts = event.get("ts")
    if isinstance(ts, dt.datetime) and ts.tzinfo is None:
        raise EventEncodeError("ts must be timezone-aware (RFC 3339 needs an offset)")
    try:
        return _ENCODER.encode(event)
    except (TypeError, ValueError, OverflowError) as exc:
        raise EventEncodeError(f"event cannot be serialised: {exc}") from exc


def event_key(event: Mapping[str, Any]) -> bytes | None:
    """The message key: the event's ``id`` (str or int) as UTF-8, else ``None``."""
    ident = event.get("id")
    if ident is None or isinstance(ident, bool):
        return None
    if isinstance(ident, str | int):
        return str(ident).encode()
    return None


class PredictionProducer:
    """Non-blocking, batched, idempotent producer of prediction events.

    Use as a context manager (``with PredictionProducer.connect(bootstrap) as p:``) or call
    :meth:`close` in ``finally``; both flush and surface delivery failures.
    """

    def __init__(
        self,
        client: KafkaProducerLike,
        *,
        topic: str = DEFAULT_TOPIC,
        max_block_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.topic = topic
        self._max_block_s = max_block_s
        self._clock = clock
        self.sent = 0
        self.delivered = 0
        self.failed = 0
        self._errors: deque[DeliveryFailure] = deque(maxlen=MAX_KEPT_ERRORS)
        self._unraised = 0  # failures not yet reported by flush()/close()
        self._closed = False

    @classmethod
    def connect(cls, bootstrap: str | KafkaConnection, *, topic: str = DEFAULT_TOPIC,
                max_block_s: float = 30.0, **config: Any) -> PredictionProducer:
        """A producer on a new confluent-kafka client (``config`` overrides librdkafka keys,
        with ``_`` for ``.``: ``linger_ms=5``). ``bootstrap`` may be a
        :class:`~streams.kafka_config.KafkaConnection` carrying security settings."""
        from confluent_kafka import Producer

        overrides = {key.replace("_", "."): value for key, value in config.items()}
        return cls(Producer(producer_config(bootstrap, "events", **overrides)), topic=topic,
                   max_block_s=max_block_s)

    # -- sending ---------------------------------------------------------------------
    def send(self, event: Mapping[str, Any]) -> None:
        """Serialise ``event`` and enqueue it; returns at once unless the queue is full."""
        self.send_bytes(encode_event(event), event_key(event))

    def send_bytes(self, value: bytes, key: bytes | None = None) -> None:
        """Enqueue an already serialised message (the fast path; no validation)."""
        if self._closed:
            raise ProducerError("producer is closed")
        produce(self._client, self.topic, value=value, key=key, on_delivery=self._on_delivery,
                max_block_s=self._max_block_s, clock=self._clock)
        self.sent += 1
        self._client.poll(0)

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            self.delivered += 1
            return
        self.failed += 1
        self._unraised += 1
        key = msg.key() if msg is not None else None
        failure = DeliveryFailure(self.topic, key, str(err))
        self._errors.append(failure)
        if self.failed <= 10 or self.failed % 1000 == 0:
            log.warning("delivery to %s failed (%d so far): %s", self.topic, self.failed, err)

    # -- inspection ------------------------------------------------------------------
    @property
    def errors(self) -> tuple[DeliveryFailure, ...]:
        """The most recent delivery failures (at most ``MAX_KEPT_ERRORS``)."""
        return tuple(self._errors)

    @property
    def pending(self) -> int:
        """Messages enqueued but not yet acknowledged or failed."""
        return len(self._client)

    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery callbacks; returns how many were served."""
        return self._client.poll(timeout)

    # -- draining --------------------------------------------------------------------
    def flush(self, timeout: float = 30.0) -> None:
        """Wait for every enqueued event to be acknowledged.

        Raises :class:`DeliveryError` if messages are still pending after ``timeout``
        or if any delivery failed since the last ``flush`` that raised.
        """
        pending = self._client.flush(timeout)
        if pending or self._unraised:
            failures, self._unraised = self._unraised, 0
            raise DeliveryError(
                f"{failures} event(s) failed delivery to {self.topic}, "
                f"{pending} still pending after {timeout:.1f}s"
                + (f"; last: {self._errors[-1].reason}" if self._errors else ""),
                self.errors,
                pending,
            )

    def close(self, timeout: float = 30.0) -> None:
        """Flush (raising on failures) and refuse further sends; idempotent."""
        if self._closed:
            return
        try:
            self.flush(timeout)
        finally:
            self._closed = True

    def __enter__(self) -> PredictionProducer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.close()
            return
        try:  # do not mask the exception already propagating
            self.close()
        except ProducerError as close_exc:
            log.error("while closing after %r: %s", exc, close_exc)
