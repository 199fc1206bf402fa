"""Webhook delivery off the evaluation path: queued, retried with backoff, failures counted.

Time is injected: the policy's sleeps are recorded, never slept.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from alerts.message import Alert, Window
from alerts.publish import PublishError
from alerts.webhook import WebhookNotifier, WebhookStats
from sketches.retry import RetryAborted, RetryPolicy

ALERT = Alert(id="m/income/psi", state="firing", severity="critical", kind="drift", model="m",
              version="7", column="income", metric="psi", value=0.31, threshold=0.2,
              window=Window("2026-11-23T08:00:00.000Z", "2026-11-23T09:00:00.000Z"),
              since="2026-11-23T09:00:00.000Z", ts="2026-11-23T09:00:01.000Z",
              summary="income drifted")
POLICY = RetryPolicy((PublishError,), initial_s=0.5, max_s=3.0, multiplier=2.0, max_attempts=6)


class FlakyWebhook:
    """Fails the first ``failures`` posts, then accepts."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.posts: list[tuple[Alert, ...]] = []

    def post(self, alerts: Sequence[Alert]) -> None:
        self.posts.append(tuple(alerts))
        if len(self.posts) <= self.failures:
            raise PublishError("webhook answered 500")


def test_policy_backoff_is_exponential_and_capped() -> None:
    assert [POLICY.delay(n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    slept: list[float] = []
    calls = []

    def always_fails() -> None:
        calls.append(1)
        raise PublishError("down")

    with pytest.raises(RetryAborted, match="gave up after 6 attempts"):
        POLICY.call(always_fails, what="post", sleep=slept.append)
    assert len(calls) == 6 and slept == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_failed_posts_are_retried_with_backoff_then_delivered() -> None:
    hook, slept = FlakyWebhook(failures=3), []
    notifier = WebhookNotifier(hook.post, retry=POLICY, sleep=slept.append)
    notifier.notify([ALERT])
    assert notifier.stats() == WebhookStats(queued=1, dropped={"queue_full": 0,
                                                               "retries_exhausted": 0})
    assert notifier.run_pending() == 1
    assert hook.posts == [(ALERT,)] * 4
    assert slept == [0.5, 1.0, 2.0]
    stats = notifier.stats()
    assert (stats.delivered, stats.failures, stats.queued) == (1, 3, 0)
    assert sum(stats.dropped.values()) == 0


def test_a_batch_that_keeps_failing_is_dropped_and_counted_and_the_next_one_goes() -> None:
    hook, slept = FlakyWebhook(failures=6), []
    notifier = WebhookNotifier(hook.post, retry=POLICY, sleep=slept.append)
    notifier.notify([ALERT, ALERT])
    notifier.notify([ALERT])
    assert notifier.run_pending() == 2
    stats = notifier.stats()
    assert stats.failures == 6 and stats.delivered == 1
    assert stats.dropped == {"queue_full": 0, "retries_exhausted": 2}
    assert len(hook.posts) == 7 and slept == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_notify_never_blocks_and_drops_beyond_the_bound() -> None:
    hook = FlakyWebhook(failures=0)
    notifier = WebhookNotifier(hook.post, retry=POLICY, max_batches=2, sleep=lambda s: None)
    for _ in range(5):
        notifier.notify([ALERT])  # nobody delivers: the queue fills
    notifier.notify([])  # nothing to send: not queued
    stats = notifier.stats()
    assert stats.queued == 2 and stats.dropped["queue_full"] == 3
    assert notifier.run_pending() == 2 and notifier.stats().delivered == 2


def test_a_sink_bug_does_not_end_delivery() -> None:
    def broken(alerts: Sequence[Alert]) -> None:
        raise RuntimeError("bug")

    notifier = WebhookNotifier(broken, retry=POLICY, sleep=lambda s: None)
    notifier.notify([ALERT])
    notifier.run_pending()
    stats = notifier.stats()
    assert stats.failures == 1 and stats.dropped["retries_exhausted"] == 1 and stats.queued == 0


def test_background_thread_delivers_and_close_stops_retrying() -> None:
    hook = FlakyWebhook(failures=1_000_000)
    notifier = WebhookNotifier(hook.post, retry=RetryPolicy((PublishError,), initial_s=0.01,
                                                            max_s=0.01))
    notifier.start()
    notifier.notify([ALERT])
    notifier.close(timeout_s=30)  # retries forever until closed; close cuts it short
    stats = notifier.stats()
    assert stats.queued == 0 and stats.dropped["retries_exhausted"] == 1
    assert stats.failures == len(hook.posts) >= 1
