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


def _profile(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from driftline.commands import profile

    profile.register(sub)


def _compare(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from driftline.commands import compare

    compare.register(sub)


COMMANDS.append(_profile)
COMMANDS.append(_compare)


def _worker(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from driftline.commands import worker

    worker.register(sub)


COMMANDS.append(_worker)


def _reference(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from driftline.commands import reference

    reference.register(sub)


def _status(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from driftline.commands import status

    status.register(sub)


COMMANDS.append(_reference)
COMMANDS.append(_status)


def _demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from driftline.commands import demo

    demo.register(sub)


COMMANDS.append(_demo)
