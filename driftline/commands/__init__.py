"""Subcommands of the ``driftline`` CLI, listed explicitly (no discovery).

Each module ``driftline/commands/<name>.py`` exposes ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from driftline.commands import (
    compare,
    demo,
    evaluator,
    forget,
    profile,
    reference,
    simulate,
    status,
    worker,
)

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

COMMANDS: list[Register] = [
    m.register for m in (demo, worker, evaluator, simulate, profile, compare, reference, status,
                        forget)
]
