"""``mtpkit select POT POOL --output SELECTED.cfg``: D-optimal choice of configurations to label."""

from __future__ import annotations

import argparse

from mtpkit.commands import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "select", help="D-optimal (MaxVol) selection of configurations from a pool",
        description="Pick the pool configurations that enlarge the MaxVol active set most "
                    "(MLIP's select-add), at most --limit of them.")
    p.add_argument("potential", help=".almtp carrying an active set, or .mtp together with --train")
    p.add_argument("pool", help=".cfg file of candidate configurations")
    p.add_argument("--output", "-o", required=True, help="where to write the selected configurations (.cfg)")
    p.add_argument("--train", help="training .cfg to build the active set from (when the potential has none)")
    p.add_argument("--mode", choices=["configuration", "neighborhood"],
                   help="active-set mode when built from --train (default neighborhood)")
    p.add_argument("--limit", type=int, help="select at most this many configurations")
    p.add_argument("--threshold", type=float, default=1.001,
                   help="MaxVol swap threshold (>1; default 1.001 as MLIP)")
    p.add_argument("--save-to", help="write the potential with the updated active set (.almtp)")
    p.add_argument("--species", help="comma-separated chemical symbols of MLIP types 0,1,...")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mtpkit.active_learning.active_set import to_mlip
    from mtpkit.active_learning.grades import rows_for
    from mtpkit.active_learning.selection import active_set_for, select_add
    from mtpkit.commands.grade import _species
    from mtpkit.potentials.cfg import read_cfg, write_cfg
    from mtpkit.potentials.mtp_io import write_mtp

    if args.limit is not None and args.limit < 0:
        raise UserError("--limit must be >= 0")
    if args.threshold <= 1.0:
        raise UserError("--threshold must be > 1")
    if args.save_to and not str(args.save_to).endswith(".almtp"):
        raise UserError("--save-to: the active set is stored in an .almtp file")
    species = _species(args.species)
    from mtpkit.potentials.mtp_io import read_mtp

    mtp = read_mtp(args.potential)
    train = read_cfg(args.train, species) if args.train else None
    aset = active_set_for(mtp, species, train, args.mode, "all", source=args.potential)
    pool = read_cfg(args.pool, species)
    sel = select_add(aset, rows_for(mtp, aset, pool, species), pool, limit=args.limit, threshold=args.threshold)
    chosen = [pool[int(k)] for k in sel.selected]
    for k, atoms in zip(sel.selected, chosen):
        atoms.info["MV_grade"] = float(sel.grades[int(k)])
    write_cfg(args.output, chosen, species)
    print(f"selected {len(chosen)} of {len(pool)} configurations "
          f"(max pool grade {sel.grades.max() if len(pool) else 0:.4g}, "
          f"log|det| gain {sel.log_det_gain:.4g}) -> {args.output}")
    if args.save_to:
        out = mtp.copy()
        out.active_set = to_mlip(sel.active_set, species)
        write_mtp(args.save_to, out)
        print(f"potential with updated active set -> {args.save_to}")
    return 0
