"""``mtpkit convert IN OUT``: labelled configurations between .cfg, extxyz, VASP and other ASE formats."""

from __future__ import annotations

import argparse

from mtpkit.commands import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "convert", help="convert configurations between .cfg, extxyz, vasprun.xml, OUTCAR, ...",
        description="Convert labelled configurations (energies, forces, stresses) between MLIP .cfg "
                    "and any format ASE reads or writes. The format follows the file name unless given.")
    p.add_argument("input", help="input file (.cfg, .xyz/.extxyz, vasprun.xml, OUTCAR, .traj, ...)")
    p.add_argument("output", help="output file")
    p.add_argument("--species", help="comma-separated chemical symbols of MLIP types 0,1,... "
                                     "(e.g. Na,Y,Zr,Cl); required to convert a .cfg to another format "
                                     "(a .cfg stores type indices, not elements)")
    p.add_argument("--format", dest="out_format", help="output format (ASE name, or 'cfg')")
    p.add_argument("--input-format", dest="in_format", help="input format (ASE name, or 'cfg')")
    p.add_argument("--index", default=":", help="which configurations to take (ASE slice, default ':')")
    p.set_defaults(func=run)


def parse_species(text: str | None) -> list[str] | None:
    """``"Na,Y,Zr,Cl"`` -> ``["Na", "Y", "Zr", "Cl"]``."""
    if text is None:
        return None
    species = [s.strip() for s in text.split(",") if s.strip()]
    if not species:
        raise UserError("--species is empty")
    return species


def run(args: argparse.Namespace) -> int:
    from mtpkit.potentials.convert import convert

    species = parse_species(args.species)
    count, used = convert(args.input, args.output, species, args.in_format, args.out_format, args.index)
    note = f" (MLIP types: {','.join(used)})" if used and species is None else ""
    print(f"wrote {count} configuration{'s' if count != 1 else ''} to {args.output}{note}")
    return 0
