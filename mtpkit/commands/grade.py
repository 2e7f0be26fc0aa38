"""``mtpkit grade POT CFG --output OUT.cfg``: MaxVol extrapolation grades, as ``mlp calculate_grade``."""

from __future__ import annotations

import argparse

from mtpkit.commands import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "grade", help="extrapolation grades (MV_grade, nbh_grades) of configurations",
        description="Write each configuration with its MaxVol extrapolation grade (Feature MV_grade) "
                    "and, in neighbourhood mode, per-atom grades (nbh_grades), as `mlp calculate_grade`.")
    p.add_argument("potential", help=".almtp carrying an active set, or .mtp together with --train")
    p.add_argument("configurations", help=".cfg file to grade")
    p.add_argument("--output", "-o", required=True, help="output .cfg")
    p.add_argument("--train", help="training .cfg to build the active set from (when the potential has none)")
    p.add_argument("--mode", choices=["configuration", "neighborhood"],
                   help="active-set mode when built from --train (default neighborhood)")
    p.add_argument("--basis", choices=["all", "linear"], default="all",
                   help="rows over all parameters (MLIP-3) or linear coefficients only (with --train)")
    p.add_argument("--species", help="comma-separated chemical symbols of MLIP types 0,1,...")
    p.set_defaults(func=run)


def _species(text: str | None) -> list[str] | None:
    if not text:
        return None
    out = [s.strip() for s in text.split(",") if s.strip()]
    if not out:
        raise UserError("--species: give comma-separated chemical symbols")
    return out


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from mtpkit.active_learning.grades import annotate, grade_images
    from mtpkit.active_learning.selection import active_set_for
    from mtpkit.potentials.cfg import read_cfg, write_cfg
    from mtpkit.potentials.mtp_io import read_mtp

    species = _species(args.species)
    mtp = read_mtp(args.potential)
    train = read_cfg(args.train, species) if args.train else None
    if args.basis == "linear" and train is None:
        raise UserError("--basis linear needs --train (a stored MLIP-3 active set is over all parameters)")
    aset = active_set_for(mtp, species, train, args.mode, args.basis, source=args.potential)
    images = read_cfg(args.configurations, species)
    grades = grade_images(mtp, aset, images, species)
    annotate(images, grades)
    write_cfg(args.output, images, species)
    g = grades.config
    if g.size:
        print(f"{len(images)} configurations graded ({aset.mode} mode): "
              f"max {g.max():.4g}, median {np.median(g):.4g}, above 1: {int(np.sum(g > 1.0))}, "
              f"above 2: {int(np.sum(g > 2.0))}, above 10: {int(np.sum(g > 10.0))} -> {args.output}")
    else:
        print(f"no configurations in {args.configurations}")
    return 0
