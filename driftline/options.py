"""Flags with environment twins: ``--redis-url`` reads ``DRIFTLINE_REDIS_URL``.

An environment value is checked like the flag's own value when the parser is built: a
value the flag's type or choices refuse raises :class:`EnvValueError` naming the variable,
which the CLI prints as one line (exit 2) — whatever the command, since every command's
parser is built.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Collection
from typing import Any

from sketches.errors import ConfigError
from streams.durations import parse_duration_ms

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class EnvValueError(ConfigError):
    """An environment twin holds a value its flag does not accept."""


def env_name(flag: str) -> str:
    return "DRIFTLINE_" + flag.lstrip("-").replace("-", "_").upper()


def duration(text: str) -> str:
    """The argparse ``type`` of duration flags: checks the grammar of
    :mod:`streams.durations` (``500ms``, ``30s``, ``5m``, ``1h``, ``7d``) and keeps the text."""
    try:
        parse_duration_ms(text)
    except ConfigError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration like 500ms, 30s, 5m, 1h, 7d") from None
    return text


def add_option(
    parser: argparse._ActionsContainer,
    flag: str,
    *,
    help: str,
    default: Any = None,
    type: Callable[[str], Any] = str,
    env: str | None = None,
    choices: Collection[Any] | None = None,
    required: bool = False,
    fallback_env: str | None = None,
) -> None:
    """Add ``flag`` whose default comes from its environment twin, shown in ``--help``.

    ``fallback_env`` is a second, unprefixed variable read when the twin is unset
    (``KAFKA_BOOTSTRAP`` / ``REDIS_URL``, the names the test stack exports).
    """
    name = env or env_name(flag)
    source = name
    raw = os.environ.get(name)
    if raw is None and fallback_env:
        source, raw = fallback_env, os.environ.get(fallback_env)
    env_help = f"env {name}" + (f" or {fallback_env}" if fallback_env else "")
    shown = f"; default {default}" if default is not None else ""
    if type is bool:
        parser.add_argument(
            flag,
            action=argparse.BooleanOptionalAction,
            default=default if raw is None else _env_bool(source, raw, flag),
            help=f"{help} [{env_help}{shown}]",
        )
        return
    value = default if raw is None else _env_value(source, raw, flag, type, choices)
    parser.add_argument(
        flag,
        default=value,
        type=type,
        choices=choices,
        required=required and value is None,
        help=f"{help} [{env_help}{shown}]",
    )


def _env_value(name: str, raw: str, flag: str, type: Callable[[str], Any],
               choices: Collection[Any] | None) -> Any:
    try:
        value = type(raw)
    except argparse.ArgumentTypeError as exc:
        raise EnvValueError(f"{name}={raw!r} (for {flag}): {exc}") from None
    except (TypeError, ValueError):
        what = getattr(type, "__name__", "value")
        what = {"int": "an integer", "float": "a number"}.get(what, f"a valid {what}")
        raise EnvValueError(f"{name}={raw!r} (for {flag}) is not {what}") from None
    if choices is not None and value not in choices:
        raise EnvValueError(f"{name}={raw!r} (for {flag}) is not one of: "
                            + ", ".join(str(c) for c in choices))
    return value


def _env_bool(name: str, raw: str, flag: str) -> bool:
    word = raw.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise EnvValueError(f"{name}={raw!r} (for {flag}) is not a boolean "
                        f"({'/'.join(_TRUE)} or {'/'.join(_FALSE)})")
