"""Alertmanager webhook delivery, off the evaluation path.

The evaluator hands each batch of alerts to :meth:`WebhookNotifier.notify`, which only
queues it and returns. One background thread posts the batches in order, retrying a failed
post with exponential backoff (a :class:`sketches.retry.RetryPolicy`). So a slow or failing
webhook never delays the alerts topic nor makes it repeat a message; it shows in the
metrics instead (:class:`WebhookStats`, served as ``driftline_webhook_*``).

The queue is bounded (``max_batches``): when the webhook has been down long enough to fill
it, new batches are dropped and counted (reason ``queue_full``), never held in memory
without limit. A batch that still fails after the policy's last attempt is dropped and
counted (``retries_exhausted``). The alerts topic remains the complete record.

Time is injected: ``sleep`` waits between attempts (by default on the stop event, so
:meth:`WebhookNotifier.close` cuts a backoff short), and tests pass their own.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from alerts.message import Alert
from alerts.publish import PublishError
from sketches.retry import RetryAborted, RetryPolicy

log = logging.getLogger(__name__)

DEFAULT_RETRY = RetryPolicy((PublishError,), initial_s=0.5, max_s=30.0, max_attempts=8)
"""Up to 8 attempts over about a minute (0.5 s, 1 s, 2 s, … capped at 30 s between them)."""

DROP_REASONS = ("queue_full", "retries_exhausted")


@dataclass(frozen=True, slots=True)
class WebhookStats:
    """What the webhook did since start: the figures behind ``driftline_webhook_*``."""

    delivered: int = 0
    """Alerts posted and acknowledged (2xx)."""
    failures: int = 0
    """Failed posts; every attempt counts, retries included."""
    dropped: Mapping[str, int] = field(default_factory=dict)
    """Alerts given up on, by reason (:data:`DROP_REASONS`)."""
    queued: int = 0
    """Alerts waiting for delivery now."""


class WebhookNotifier:
    """Queues alert batches and posts them on a background thread, with retries.

    ``post`` sends one batch synchronously and raises :class:`PublishError` when it was not
    accepted (:meth:`alerts.publish.WebhookPublisher.publish`). Call :meth:`start` to run
    the thread and :meth:`close` to stop it; :meth:`run_pending` delivers in the caller's
    thread instead (tests).
    """

    def __init__(
        self,
        post: Callable[[Sequence[Alert]], None],
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        max_batches: int = 1000,
        sleep: Callable[[float], None] | None = None,
        what: str = "webhook",
    ) -> None:
        if max_batches < 1:
            raise ValueError("max_batches must be >= 1")
        self._post = post
        self._retry = retry
        self._max_batches = max_batches
        self._stop = threading.Event()
        self._sleep = sleep or self._wait
        self._what = what
        self._queue: queue.Queue[tuple[Alert, ...] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._delivered = 0
        self._failures = 0
        self._dropped = dict.fromkeys(DROP_REASONS, 0)
        self._queued = 0
        self._thread: threading.Thread | None = None

    # -- the evaluator's side ----------------------------------------------------------------
    def notify(self, alerts: Sequence[Alert]) -> None:
        """Queue ``alerts`` for delivery; never blocks, never raises (full: dropped)."""
        batch = tuple(alerts)
        if not batch:
            return
        with self._lock:
            if self._queue.qsize() >= self._max_batches:
                self._dropped["queue_full"] += len(batch)
                log.warning("%s: queue full (%d batches), dropping %d alert(s)",
                            self._what, self._max_batches, len(batch))
                return
            self._queued += len(batch)
            self._queue.put(batch)

    def stats(self) -> WebhookStats:
        with self._lock:
            return WebhookStats(self._delivered, self._failures, dict(self._dropped),
                                self._queued)

    # -- delivery ------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="driftline-webhook", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop retrying, give each batch still queued one last attempt, and stop the thread
        (waiting at most ``timeout_s``)."""
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout_s)

    def run_pending(self) -> int:
        """Deliver every queued batch in the calling thread; the number of batches taken."""
        taken = 0
        while True:
            try:
                batch = self._queue.get_nowait()
            except queue.Empty:
                return taken
            if batch is not None:
                self._deliver(batch)
                taken += 1

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            self._deliver(batch)

    def _deliver(self, batch: tuple[Alert, ...]) -> None:
        def attempt() -> None:
            try:
                self._post(batch)
            except PublishError:
                with self._lock:
                    self._failures += 1
                raise

        outcome = "retries_exhausted"
        try:
            self._retry.call(attempt, what=f"{self._what} post of {len(batch)} alert(s)",
                             sleep=self._sleep, should_stop=self._stop.is_set)
            outcome = "delivered"
        except RetryAborted as exc:
            log.error("%s: dropping %d alert(s): %s", self._what, len(batch), exc)
        except Exception:  # a bug in the sink must not end the delivery thread
            with self._lock:
                self._failures += 1
            log.exception("%s: dropping %d alert(s)", self._what, len(batch))
        with self._lock:
            self._queued -= len(batch)
            if outcome == "delivered":
                self._delivered += len(batch)
            else:
                self._dropped[outcome] += len(batch)

    def _wait(self, seconds: float) -> None:
        self._stop.wait(seconds)
