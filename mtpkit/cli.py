"""The ``mtpkit`` command line.

Each subcommand lives in its own module under :mod:`mtpkit.commands` and
exposes ``register(subparsers)``, which adds its parser and sets
``func=callable(args) -> int`` as the parser default. ``register`` must stay
import-light (argparse only; NumPy, ASE and the rest are imported inside the
command's ``run``): ``mtpkit --help`` imports every command module.
``mtpkit COMMAND ...`` imports only that command's module.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

import mtpkit.commands


def command_names() -> list[str]:
    """Names of the subcommands: the modules of :mod:`mtpkit.commands` not starting with ``_``."""
    names = set()
    for folder in mtpkit.commands.__path__:
        for entry in os.listdir(folder):
            stem, ext = os.path.splitext(entry)
            if ext == ".py" and not stem.startswith("_") and stem.isidentifier():
                names.add(stem)
    return sorted(names)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser with every subcommand found in :mod:`mtpkit.commands`
    (with ``only``: just that one, which is all a run of it needs)."""
    parser = argparse.ArgumentParser(
        prog="mtpkit",
        description="Moment Tensor Potentials: training, active learning, MD and transport analysis.",
    )
    parser.add_argument("--version", action="version", version=f"mtpkit {mtpkit.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in command_names():
        if only is not None and name != only:
            continue
        module = importlib.import_module(f"mtpkit.commands.{name}")
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
    argv = sys.argv[1:] if argv is None else list(argv)
    # a command named like its module (plugin-path: plugin_path) needs only that module;
    # anything else (--help, a typo, a module registering other names) gets the full parser
    chosen = argv[0].replace("-", "_") if argv else None
    chosen = chosen if chosen in command_names() else None
    parser = build_parser(only=chosen)
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
    except OSError as exc:  # a file that cannot be read or written (a folder in the way, no permission, disk full)
        if exc.filename is None:
            raise
        print(f"mtpkit {args.command}: error: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
