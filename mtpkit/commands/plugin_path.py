"""``mtpkit plugin-path``: print the absolute path of the ``pair_style mtp`` LAMMPS plugin."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "plugin-path", help="print the path of the LAMMPS plugin (for `plugin load`)",
        description="Print the absolute path of mtpkit's LAMMPS plugin so that any LAMMPS "
                    "script can `plugin load` it and use `pair_style mtp`.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mtpkit.md.lammps_env import plugin_path

    print(plugin_path())
    return 0
