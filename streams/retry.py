"""Kept import path: the retry policy lives in :mod:`sketches.retry` (shared with ``alerts``)."""

from __future__ import annotations

from sketches.retry import RetryAborted, RetryPolicy

__all__ = ["RetryAborted", "RetryPolicy"]
