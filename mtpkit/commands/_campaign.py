"""What ``mtpkit run`` and ``mtpkit learn`` share: their arguments, and loading plus checking the
campaign file before any work starts."""

from __future__ import annotations

import argparse


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="campaign TOML file (e.g. examples/nyzc75.toml)")
    p.add_argument("--scale", choices=("tiny", "default", "paper"), default="default",
                   help="size preset: tiny (minutes, 2 cores), default (laptop, < 1 h), paper "
                        "(the reference study's sizes)")
    p.add_argument("--output", "-o", help="campaign folder (default ./<name>-<scale>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the campaign in the output folder; finished stages are skipped")


def load_checked(args: argparse.Namespace):
    """The resolved configuration; its labeller must be usable here (package importable)."""
    from mtpkit.active_learning.labellers import KINDS, LabellerSpec
    from mtpkit.config import load_config
    from mtpkit.errors import InputFileError

    cfg = load_config(args.config, args.scale)
    if cfg.labeller.kind in KINDS:
        LabellerSpec.from_table(cfg.labeller).check()
    if cfg.potential.initial:
        from mtpkit.potentials.mtp_io import read_mtp

        if not cfg.potential.initial.is_file():
            raise InputFileError(cfg.source, f"{cfg.potential.initial}: no such file", field="potential.initial")
        n = read_mtp(cfg.potential.initial).species_count
        if n != len(cfg.species):
            raise InputFileError(cfg.source, f"{cfg.potential.initial} has species_count = {n}, but "
                                 f"campaign.species names {len(cfg.species)}", field="potential.initial")
    return cfg
