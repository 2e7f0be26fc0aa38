"""``mtpkit config FILE --scale S``: print the fully resolved configuration (presets merged)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser("config", help="print a campaign file fully resolved at a scale (what will run)",
                              description=__doc__)
    p.add_argument("config", help="campaign TOML file")
    p.add_argument("--scale", choices=("tiny", "default", "paper"), default="default", help="size preset")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mtpkit.config import dump_toml, load_config

    print(dump_toml(load_config(args.config, args.scale)), end="")
    return 0
