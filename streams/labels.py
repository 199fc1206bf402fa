"""Label events in: the ``labels`` topic → decode and validate → the label join.

A label event is ``{"model": "credit-risk", "id": "req-81f3", "label": 1, "ts": ...}``
(DESIGN.md §1). :func:`decode_label` turns a message value into a :class:`JoinItem` or
raises :class:`~streams.events.InvalidEvent` with a reason from the input itself (as
prediction events do): ``empty``, ``oversized``, ``not_utf8``, ``invalid_json``,
``missing_field`` (model, id or label), ``wrong_type``, ``invalid_value`` (model name,
empty id), ``bad_ts``, ``unknown_model`` (not in the models file, or no
``[models.M.performance]``) and ``wrong_label`` (a label of the wrong type for the
model's task). Rejected records go to ``labels.dlq`` unchanged, with the reason in headers.

:class:`LabelRunner` is the loop: consume a batch → rejected to the DLQ (flushed) →
:meth:`streams.join.JoinStore.put` per partition (skips records it already applied) →
commit offsets. A kill -9 at any point replays at most the last batch, which the join
recognises, so no labeled outcome is lost or counted twice.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import msgspec
from confluent_kafka import KafkaException, TopicPartition

from sketches.retry import RetryAborted, RetryPolicy
from streams.core import Record, Rejected
from streams.dlq import DlqSender
from streams.events import DEFAULT_MAX_BYTES, MODEL_PATTERN, InvalidEvent, timestamp_ms
from streams.join_items import JoinItem, label_fits
from streams.windows import LabelSpec

log = logging.getLogger(__name__)

MAX_ID = 256
_MODEL = re.compile(MODEL_PATTERN)
_SCALAR = (str, int, float, bool)
_MAX_INT = 2**1023  # JSON integers decode exactly; larger ones have no float


def decode_label(value: bytes | None, offset: int, timestamp_ms_: int,
                 specs: Mapping[str, LabelSpec], max_bytes: int = DEFAULT_MAX_BYTES
                 ) -> JoinItem:
    """One label message → its join item; :class:`InvalidEvent` with a reason otherwise."""
    if not value:
        raise InvalidEvent("empty", "message value is empty")
    if len(value) > max_bytes:
        raise InvalidEvent("oversized", f"{len(value)} bytes > limit {max_bytes}")
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent("not_utf8", f"invalid UTF-8 at byte {exc.start}") from None
    try:
        doc = msgspec.json.decode(value)
    except Exception:  # whatever msgspec raises: the bytes are valid UTF-8 but not JSON
        raise InvalidEvent("invalid_json", "not a JSON document") from None
    if not isinstance(doc, dict):
        raise InvalidEvent("wrong_type", "a label event is a JSON object")
    for name in ("model", "id", "label"):
        if name not in doc or doc[name] is None:
            raise InvalidEvent("missing_field", f"{name!r} is required")
    model, ident, label, ts = doc["model"], doc["id"], doc["label"], doc.get("ts")
    if not isinstance(model, str):
        raise InvalidEvent("wrong_type", "'model' must be a string")
    if not _MODEL.match(model):
        raise InvalidEvent("invalid_value", "'model' must be 1-128 of [A-Za-z0-9._-]")
    if not isinstance(ident, str | int) or isinstance(ident, bool):
        raise InvalidEvent("wrong_type", "'id' must be a string")
    ident = str(ident)
    if not ident or len(ident) > MAX_ID:
        raise InvalidEvent("invalid_value", f"'id' must be 1-{MAX_ID} characters")
    if not isinstance(label, _SCALAR):
        raise InvalidEvent("wrong_type", "'label' must be a number, a string or a bool")
    for name, x in (("label", label), ("ts", ts)):
        if isinstance(x, int) and not isinstance(x, bool) and abs(x) > _MAX_INT:
            raise InvalidEvent("non_finite", f"{name!r} is beyond float range")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, str | int | float)):
        raise InvalidEvent("bad_ts", "'ts' must be an RFC 3339 string or epoch seconds")
    spec = specs.get(model)
    if spec is None:
        raise InvalidEvent("unknown_model", f"model {model!r} takes no labels (no "
                           "[models.M.performance] in the models file)")
    text = label_fits(spec, label)
    if text is None:
        raise InvalidEvent("wrong_label", f"label {str(label)[:32]!r} does not fit the "
                           f"{spec.task} model {model!r}")
    ms = timestamp_ms(float(ts) if isinstance(ts, int) else ts, timestamp_ms_)
    return JoinItem(offset, model, ident, ms, label=text)


class LabelRunner:
    """Consumes the labels topic into the join (see the module doc); all clients injected."""

    def __init__(self, *, consumer: Any, dlq: DlqSender, put: Callable[..., int],
                 specs: Mapping[str, LabelSpec], topic: str = "labels",
                 batch_size: int = 5000, poll_timeout_s: float = 0.5,
                 retry: RetryPolicy | None = None) -> None:
        """``put(kind, partition, items)``: :meth:`streams.join.JoinStore.put`."""
        self.consumer = consumer
        self.dlq = dlq
        self.put = put
        self.specs = dict(specs)
        self.topic = topic
        self.batch_size = batch_size
        self.poll_timeout_s = poll_timeout_s
        self.retry = retry
        self._stop = threading.Event()
        self.records = 0
        self.rejected: dict[str, int] = {}

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        self.consumer.subscribe([self.topic])
        try:
            while not self._stop.is_set():
                self.poll_once()
        except RetryAborted as exc:
            log.warning("label runner stopping without its last batch: %s", exc)
        finally:
            try:
                self.consumer.close()
            except (KafkaException, RuntimeError) as exc:
                log.warning("label consumer close: %s", exc)

    def poll_once(self) -> int:
        msgs = self.consumer.consume(self.batch_size, self.poll_timeout_s)
        by_partition: dict[int, list[JoinItem]] = {}
        commits: dict[int, int] = {}
        for m in msgs:
            if m.error() is not None:
                log.warning("label consumer error topic=%s partition=%s: %s", m.topic(),
                            m.partition(), m.error())
                continue
            p, off = m.partition(), m.offset()
            commits[p] = off + 1
            try:
                item = decode_label(m.value(), off, m.timestamp()[1], self.specs)
            except InvalidEvent as exc:
                self.rejected[exc.reason] = self.rejected.get(exc.reason, 0) + 1
                rec = Record(p, off, m.timestamp()[1], m.value(), m.key())
                self.dlq.send(Rejected(rec, exc.reason, exc.message))
                continue
            by_partition.setdefault(p, []).append(item)
        if not commits:
            return 0
        self._call(self.dlq.flush, "labels dlq flush")
        for p, items in by_partition.items():
            self._call(partial(self.put, "l", p, items), f"label join partition={p}")
        self.records += sum(len(v) for v in by_partition.values())
        try:
            self.consumer.commit(offsets=[TopicPartition(self.topic, p, o)
                                          for p, o in commits.items()], asynchronous=True)
        except KafkaException as exc:  # the join skips the replay
            log.warning("labels commit failed (the join recognises the replay): %s", exc)
        return len(msgs)

    def _call(self, fn: Callable[[], object], what: str) -> None:
        if self.retry is None:
            fn()
        else:
            self.retry.call(fn, what=what, should_stop=self._stop.is_set)
