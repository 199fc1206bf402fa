"""Retry policy objects: exponential backoff with a cap, an optional attempt limit and an
injected sleep and stop check (so tests move time instead of sleeping).

The one retry implementation of driftline. It lives in ``sketches`` for the same reason as
:mod:`sketches.errors`: ``streams`` (Redis, DLQ) and ``alerts`` (the webhook) both retry and
may import ``sketches`` but not each other (DESIGN.md §2). It is plain logic — it reads no
clock and only waits through the ``sleep`` it is given (``time.sleep`` unless injected).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sketches.errors import DriftlineError

log = logging.getLogger(__name__)
T = TypeVar("T")


class RetryAborted(DriftlineError):
    """Retrying stopped: attempts exhausted or the caller asked to stop."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Call ``fn`` until it succeeds, sleeping ``initial_s * multiplier**n`` (≤ ``max_s``)
    between attempts; only exceptions in ``retry_on`` are retried. ``max_attempts=None``
    retries forever (until ``should_stop`` returns true)."""

    retry_on: tuple[type[BaseException], ...]
    initial_s: float = 0.1
    max_s: float = 5.0
    multiplier: float = 2.0
    max_attempts: int | None = None

    def delay(self, attempt: int) -> float:
        return float(min(self.max_s, self.initial_s * self.multiplier**attempt))

    def call(
        self,
        fn: Callable[[], T],
        *,
        what: str,
        sleep: Callable[[float], None] = time.sleep,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> T:
        attempt = 0
        while True:
            try:
                return fn()
            except self.retry_on as exc:
                if self.max_attempts is not None and attempt + 1 >= self.max_attempts:
                    msg = f"{what}: gave up after {attempt + 1} attempts: {exc}"
                    raise RetryAborted(msg) from exc
                if should_stop():
                    raise RetryAborted(f"{what}: stopping while failing: {exc}") from exc
                wait = self.delay(attempt)
                log.warning(
                    "%s failed (attempt %d), retrying in %.2fs: %s", what, attempt + 1, wait, exc
                )
                sleep(wait)
                attempt += 1
