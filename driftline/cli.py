"""The one entry point, ``driftline``, with subcommands.

Each subcommand lives in ``driftline/commands/<name>.py`` and exposes
``register(subparsers) -> None``; the parser it adds sets ``func`` to a callable taking
the parsed ``argparse.Namespace`` and returning an exit code. Every flag is added
with :func:`driftline.options.add_option`, which gives it an environment twin shown
in ``--help``; a twin holding a value its flag refuses stops every command with one line
naming the variable (exit 2).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from driftline import __version__
from driftline.commands import COMMANDS
from sketches.errors import DriftlineError

log = logging.getLogger("driftline")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftline",
        description="Streaming drift, data-quality and performance monitoring for ML models.",
    )
    parser.add_argument("--version", action="version", version=f"driftline {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()  # reads the environment twins of every flag
    except DriftlineError as exc:  # e.g. DRIFTLINE_BATCH_SIZE=abc: one line, whatever the command
        print(f"driftline: error: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(int(args.verbose), 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.func(args)
    except DriftlineError as exc:
        print(f"driftline {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
