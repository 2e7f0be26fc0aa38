"""The ``mtpkit`` command line.

Each subcommand lives in its own module under :mod:`mtpkit.commands` and
exposes ``register(subparsers)``, which adds its parser and sets
``func=callable(args) -> int`` as the parser default.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

import mtpkit.commands


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand found in :mod:`mtpkit.commands`."""
    parser = argparse.ArgumentParser(
        prog="mtpkit",
        description="Moment Tensor Potentials: training, active learning, MD and transport analysis.",
    )
    parser.add_argument("--version", action="version", version=f"mtpkit {mtpkit.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(mtpkit.commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"mtpkit.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    # OpenMP threads that finish early sleep instead of spinning: on a machine
    # shared with other processes (2 cores, several jobs) spinning waiters starve
    # the working threads (measured 10x slow-downs). libgomp reads this when it
    # loads (first use of the compiled core), so it is set before any command
    # runs; an explicit user setting wins. Only the CLI does this: it owns the
    # process, whereas a library import must not change other OpenMP users.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except mtpkit.commands.UserError as exc:  # bad input: one clear line, no traceback
        print(f"mtpkit {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
