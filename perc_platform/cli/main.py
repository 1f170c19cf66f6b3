"""The ``perc`` command: one module per subcommand, each with ``register(subparsers)``; no logic here.

Errors from perc-platform print as one line (``perc: error: ...``) with exit code 2; ``--debug`` shows
the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from perc_platform._version import __version__
from perc_platform.errors import PercError

__all__ = ["COMMANDS", "build_parser", "main"]

#: Subcommand modules under perc_platform.cli, in the order ``perc --help`` lists them.
COMMANDS = ["demo", "catalog", "cluster", "fetch", "simulate", "preprocess", "empiar", "classify2d", "loader",
            "neural", "tomo", "movies"]


class _Parser(argparse.ArgumentParser):
    """Bad arguments give one line (``perc demo: error: ...``) and exit code 2, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="perc", description="perc-platform: cryo-EM and structure data "
                     "as lazy catalogs, on a Dask cluster, into PyTorch.")
    parser.add_argument("--version", action="version", version=f"perc-platform {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"perc_platform.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except (PercError, OSError, ValueError) as exc:
        if args.debug:
            raise
        print(f"perc: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("perc: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
