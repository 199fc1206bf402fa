"""Subcommands of the ``driftline`` CLI; each module exposes ``register(subparsers)``."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

COMMANDS: list[Register] = []


def _simulate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from driftline.commands import simulate

    simulate.register(sub)


COMMANDS.append(_simulate)
