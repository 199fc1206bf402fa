"""The one error hierarchy of driftline.

It lives in ``sketches`` because every other package may import ``sketches`` but not
the reverse (DESIGN.md §2); ``streams``, ``alerts`` and ``driftline`` subclass these.
"""

from __future__ import annotations


class DriftlineError(Exception):
    """Root of every error driftline raises on purpose."""


class StateFormatError(DriftlineError):
    """Stored bytes cannot be read: wrong magic, unknown format version, truncated."""


class InputDataError(DriftlineError):
    """A data file or column cannot be profiled (empty, unreadable, unsupported type)."""


class ConfigError(DriftlineError):
    """Settings or model configuration are invalid."""
