"""CLI subcommands: one module per command, each with ``register(subparsers)``."""

from mtpkit.errors import UserError

__all__ = ["UserError"]
