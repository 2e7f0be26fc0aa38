"""``mtpkit conductivity``: Na-ion D, σ, Arrhenius Ea and σ(293 K) from MD trajectories.

Two ways in::

    mtpkit conductivity SWEEP_FOLDER --species Na [--output DIR]
    mtpkit conductivity --trajectory A.dump --temperature 600 --trajectory B.dump --temperature 600 \\
        --trajectory C.dump --temperature 700 --frame-interval-fs 10 --species Na --output DIR

Trajectories given with the same temperature are replicas and are averaged.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mtpkit.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "conductivity", help="diffusivity, conductivity and Arrhenius fits from MD trajectories",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", nargs="?", help="an MD sweep: its TOML, its output folder (run folders with "
                   "state.json, manifest.json) or a list-style manifest JSON")
    p.add_argument("--trajectory", action="append", default=[], metavar="FILE",
                   help="a trajectory (LAMMPS dump with xu yu zu, or extxyz); repeat, each with --temperature")
    p.add_argument("--temperature", action="append", type=float, default=[], metavar="K",
                   help="temperature of the preceding --trajectory (K)")
    p.add_argument("--frame-interval-fs", type=float, metavar="DT",
                   help="time between saved frames in fs (explicit trajectories)")
    p.add_argument("--type-map", nargs="+", metavar="EL",
                   help="element of each LAMMPS atom type, type 1 first (dumps without 'element')")
    p.add_argument("--species", default="Na", help="mobile species (default Na)")
    p.add_argument("--charge", type=float, help="charge of the mobile ion in e (default: valence, 1 for Na)")
    p.add_argument("--output", "-o", help="output folder (default: SWEEP/conductivity or ./conductivity)")
    p.add_argument("--max-frames", type=int, default=None,
                   help="frames kept per trajectory (memory bound; evenly strided), default 10000")
    p.add_argument("--fit-window", nargs=2, type=float, metavar=("START_PS", "END_PS"),
                   help="MSD lag window for the fit in ps (default: 1 ps to the run length)")
    p.add_argument("--regimes", type=int, choices=(1, 2), default=1,
                   help="Arrhenius regimes: 1, or 2 = two lines when an F-test says the data need the second "
                        "(searched breakpoint, >= 3 temperatures per regime), else one with a note")
    p.add_argument("--breakpoint", type=float, metavar="K", help="two regimes split at this temperature")
    p.add_argument("--arrhenius", choices=("D", "sigmaT"), default="D",
                   help="fit ln D or ln(σT) vs 1/T (default D)")
    p.add_argument("--extrapolate-T", type=float, default=293.0, metavar="K",
                   help="temperature for the extrapolated σ (default 293 K)")
    p.add_argument("--include-unfinished", action="store_true",
                   help="also analyse runs of a sweep that have not finished (their frames so far)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="processes reading trajectories in parallel")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG/SVG plots")
    p.add_argument("--host-msd-max", type=float, default=None, metavar="A2",
                   help="host-framework check: MSD (A^2) above which a host species is not on its sites "
                        "(default: mtpkit.analysis.framework.FRAMEWORK_MSD_THRESHOLD_A2, 2); every replica "
                        "gets a state: crystal, rotating octahedra or not solid")
    p.add_argument("--no-host-check", action="store_true",
                   help="skip the host-framework check (e.g. for a liquid electrolyte)")
    p.add_argument("--descriptors", action="store_true",
                   help="also compute O_oct(t) (Na in octahedra), Cl angular displacement of the "
                        "Y/Zr octahedra and the Y/Zr Warren-Cowley SRO per trajectory")
    p.add_argument("--reference-structure", metavar="FILE",
                   help="with --descriptors: classify Na by the nearest Na site of this structure "
                        "(sites labelled by their polyhedra) instead of by their own polyhedra")
    p.set_defaults(func=run)


def _explicit_specs(args):
    from mtpkit.analysis.analyze import ReplicaSpec

    if len(args.trajectory) != len(args.temperature):
        raise UserError(f"{len(args.trajectory)} --trajectory but {len(args.temperature)} --temperature: "
                        "give one --temperature after each --trajectory")
    if args.frame_interval_fs is None:
        raise UserError("--frame-interval-fs is required with --trajectory (time between saved frames, fs)")
    specs = []
    for k, (path, T) in enumerate(zip(args.trajectory, args.temperature)):
        specs.append(ReplicaSpec(path=path, temperature_K=T, frame_interval_fs=args.frame_interval_fs,
                                 label=f"{Path(path).name}#{k}", type_map=args.type_map))
    return specs, [], []


def _sweep_specs(args):
    from mtpkit.analysis.analyze import ReplicaSpec
    from mtpkit.analysis.runs import discover_runs

    runs = discover_runs(args.sweep)
    specs, skipped, notes = [], [], []
    for r in runs:
        name = str(r.folder or r.trajectory)
        why = f": {r.notes[0]}" if r.notes else ""
        if not r.trajectory.is_file():
            skipped.append({"run": name, "reason": f"no trajectory ({r.trajectory.name}); status "
                                                   f"'{r.status}'{why}"})
            continue
        if not r.finished and (not args.include_unfinished or r.status in ("failed", "extrapolation_break")):
            skipped.append({"run": name, "reason": f"status '{r.status}'{why} (not finished; "
                                                   "--include-unfinished analyses running runs' frames so far)"})
            continue
        if not r.finished:
            notes.append(f"{name}: unfinished run ({r.status}) analysed over its frames so far")
        specs.append(ReplicaSpec(path=str(r.trajectory), temperature_K=r.temperature_K,
                                 frame_interval_fs=r.frame_interval_fs, system=r.structure,
                                 label=f"{r.structure + '/' if r.structure else ''}{r.temperature_K:g}K/{r.replica}",
                                 type_map=r.type_map or args.type_map,
                                 measured_temperature_K=r.measured_temperature_K))
    if skipped:
        notes.insert(0, f"partial sweep: {len(specs)} of {len(runs)} runs analysed, {len(skipped)} skipped")
    return specs, skipped, notes


def _reference(path):
    if not path:
        return None
    from ase.io import read

    from mtpkit.errors import InputFileError

    try:
        return read(path)
    except Exception as exc:  # noqa: BLE001  # ASE raises many types for unreadable files; re-raised
        raise InputFileError(path, f"cannot read the reference structure ({type(exc).__name__}: {exc})") from None


def _options(args):
    from mtpkit.analysis.analyze import AnalysisOptions
    from mtpkit.analysis.transport import DEFAULT_MAX_FRAMES

    options = AnalysisOptions(
        max_frames=args.max_frames or DEFAULT_MAX_FRAMES,
        fit_window_ps=tuple(args.fit_window) if args.fit_window else None,
        regimes=args.regimes, breakpoint_K=args.breakpoint,
        quantity=args.arrhenius, extrapolate_T_K=args.extrapolate_T, charge=args.charge, workers=args.workers,
        plots=not args.no_plots, descriptors=args.descriptors or bool(args.reference_structure),
        reference=_reference(args.reference_structure), host_check=not args.no_host_check)
    if args.host_msd_max is not None:
        options.host_msd_max_A2 = args.host_msd_max
    return options


def run(args) -> int:
    from mtpkit.analysis.analyze import analyze_runs

    if args.sweep and args.trajectory:
        raise UserError("give either a sweep folder or --trajectory files, not both")
    if not args.sweep and not args.trajectory:
        raise UserError("nothing to analyse: give a sweep folder or --trajectory FILE --temperature K")
    specs, skipped, notes = _sweep_specs(args) if args.sweep else _explicit_specs(args)
    if args.output:
        output = Path(args.output)
    elif args.sweep:
        sweep = Path(args.sweep)
        output = (sweep if sweep.is_dir() else sweep.parent) / "conductivity"
    else:
        output = Path("conductivity")
    doc = analyze_runs(specs, args.species, output, _options(args), skipped=skipped, notes=notes)
    _print_summary(doc)
    print(f"results: {output / 'results.json'}")
    return 0


def _print_summary(doc: dict) -> None:
    """Notes on stderr; per system D and σ per temperature, Ea per regime and the extrapolated σ."""
    for note in doc["notes"]:
        print(f"note: {note}", file=sys.stderr)
    for s in doc["systems"]:
        head = f"[{s['label']}] " if s["label"] else ""
        for r in s["temperatures"]:
            states = ", ".join(h["state"] or "unchecked" for h in r.get("host") or [])
            print(f"{head}{r['temperature_K']:g} K: D = {r['D']:.3e} ± {r['D_err']:.1e} cm^2/s, "
                  f"sigma = {r['sigma']:.3e} ± {r['sigma_err']:.1e} S/cm ({len(r['replicas'])} replicas"
                  + (f"; host: {states}" if states else "") + ")")
        arr = s["arrhenius"]
        if arr and arr["selected"]:
            for reg in arr[arr["selected"]]["regimes"]:
                print(f"{head}Ea({reg['T_min_K']:g}-{reg['T_max_K']:g} K) = {reg['Ea_eV']:.3f} ± "
                      f"{reg['Ea_err_eV']:.3f} eV")
        if s["extrapolated"]:
            e = s["extrapolated"]
            print(f"{head}sigma({e['T_K']:g} K) = {e['sigma']:.3e} ± {e['sigma_err']:.1e} S/cm")
