"""``PredictionProducer``: the small client Python model servers use to emit prediction events.

It wraps a confluent-kafka ``Producer`` configured for the event contract of DESIGN.md §1:

- **idempotent** (``enable.idempotence``: no duplicates or reordering from retries),
- **batched** through ``linger.ms`` and lz4 compression,
- **non-blocking**: :meth:`PredictionProducer.send` serialises with msgspec, enqueues and
  serves delivery callbacks with ``poll(0)``; it only waits when librdkafka's local queue
  is full (``BufferError``), polling until there is room or ``max_block_s`` elapses
  (then :class:`BackpressureError`),
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
from typing import Any, Protocol

import msgspec

from sketches.errors import DriftlineError

log = logging.getLogger(__name__)

DEFAULT_TOPIC = "predictions"
MAX_KEPT_ERRORS = 100
_REQUIRED = ("model", "features", "prediction")


class ProducerError(DriftlineError):
    """Base of the producer client's errors."""


class EventEncodeError(ProducerError):
    """The event does not satisfy the prediction-event contract and was not sent."""


class BackpressureError(ProducerError):
    """The local queue stayed full for longer than ``max_block_s``."""


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


class KafkaProducerLike(Protocol):
    """The part of ``confluent_kafka.Producer`` this client uses."""

    def produce(self, topic: str, *, value: bytes | None = ..., key: bytes | None = ...,
                on_delivery: Callable[[Any, Any], None] | None = ...) -> None: ...

    def poll(self, timeout: float = ...) -> int: ...

    def flush(self, timeout: float = ...) -> int: ...

    def __len__(self) -> int: ...


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


def producer_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """The confluent-kafka settings ``PredictionProducer`` uses unless given a client."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,  # implies acks=all, bounded in-flight, safe retries
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 500_000,
        "message.timeout.ms": 120_000,
    }
    config.update(overrides)
    return config


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
    def connect(cls, bootstrap: str, *, topic: str = DEFAULT_TOPIC, max_block_s: float = 30.0,
                **config: Any) -> PredictionProducer:
        """A producer on a new confluent-kafka client (``config`` overrides librdkafka keys,
        with ``_`` for ``.``: ``linger_ms=5``)."""
        from confluent_kafka import Producer

        overrides = {key.replace("_", "."): value for key, value in config.items()}
        return cls(Producer(producer_config(bootstrap, **overrides)), topic=topic,
                   max_block_s=max_block_s)

    # -- sending ---------------------------------------------------------------------
    def send(self, event: Mapping[str, Any]) -> None:
        """Serialise ``event`` and enqueue it; returns at once unless the queue is full."""
        self.send_bytes(encode_event(event), event_key(event))

    def send_bytes(self, value: bytes, key: bytes | None = None) -> None:
        """Enqueue an already serialised message (the fast path; no validation)."""
        if self._closed:
            raise ProducerError("producer is closed")
        deadline: float | None = None
        while True:
            try:
                self._client.produce(self.topic, value=value, key=key,
                                     on_delivery=self._on_delivery)
                break
            except BufferError:
                now = self._clock()
                if deadline is None:
                    deadline = now + self._max_block_s
                elif now >= deadline:
                    raise BackpressureError(
                        f"local queue full for {self._max_block_s:.1f}s "
                        f"({len(self._client)} messages waiting)"
                    ) from None
                self._client.poll(0.05)  # serve delivery reports, which frees room
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
