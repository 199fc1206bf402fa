"""Flags with environment twins: ``--redis-url`` reads ``DRIFTLINE_REDIS_URL``."""

from __future__ import annotations

import argparse
import os
from typing import Any


def env_name(flag: str) -> str:
    return "DRIFTLINE_" + flag.lstrip("-").replace("-", "_").upper()


def add_option(
    parser: argparse.ArgumentParser,
    flag: str,
    *,
    help: str,
    default: Any = None,
    type: Any = str,
    env: str | None = None,
    choices: Any = None,
    required: bool = False,
    fallback_env: str | None = None,
) -> None:
    """Add ``flag`` whose default comes from its environment twin, shown in ``--help``.

    ``fallback_env`` is a second, unprefixed variable read when the twin is unset
    (``KAFKA_BOOTSTRAP`` / ``REDIS_URL``, the names the test stack exports).
    """
    name = env or env_name(flag)
    raw = os.environ.get(name)
    if raw is None and fallback_env:
        raw = os.environ.get(fallback_env)
    value = type(raw) if raw is not None else default
    env_help = f"env {name}" + (f" or {fallback_env}" if fallback_env else "")
    shown = f"; default {default}" if default is not None else ""
    if type is bool:
        parser.add_argument(
            flag,
            action=argparse.BooleanOptionalAction,
            default=(raw.lower() in ("1", "true", "yes", "on")) if raw is not None else default,
            help=f"{help} [{env_help}{shown}]",
        )
        return
    parser.add_argument(
        flag,
        default=value,
        type=type,
        choices=choices,
        required=required and value is None,
        help=f"{help} [{env_help}{shown}]",
    )
