"""``mtpkit md``: one LAMMPS MD run (NVE/NVT/NPT) of a structure with an MTP."""

from __future__ import annotations

import argparse
import sys
import time


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "md", help="run one MD simulation in LAMMPS (resumes an interrupted run)",
        description="Run NVE/NVT/NPT molecular dynamics of a structure with a Moment Tensor "
                    "Potential in LAMMPS. Rerunning with the same output folder resumes from "
                    "the last checkpoint; a finished run is not redone.")
    p.add_argument("structure", help="structure file (CIF, POSCAR, extxyz, ... read by ASE)")
    p.add_argument("--potential", "-p", required=True, help=".mtp or .almtp file")
    p.add_argument("--species", "-s", nargs="+", required=True,
                   help="chemical symbols of MTP types 0, 1, ... (e.g. Na Y Zr Cl)")
    p.add_argument("--out", "-o", default="md_run", help="run folder (default: md_run)")
    p.add_argument("--engine", choices=["plugin", "external"], default="plugin",
                   help="pair_style mtp plugin (default) or fix external + Python calculator")
    p.add_argument("--ensemble", choices=["nve", "nvt", "npt"], default="npt")
    p.add_argument("--temperature", "-T", type=float, default=300.0, help="K")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--timestep", type=float, default=1.0, help="fs")
    p.add_argument("--pressure", type=float, default=0.0, help="GPa")
    p.add_argument("--barostat", choices=["iso", "aniso", "tri"], default="tri")
    p.add_argument("--tdamp", type=float, default=None, help="fs (default 100 timesteps)")
    p.add_argument("--pdamp", type=float, default=None, help="fs (default 1000 timesteps)")
    p.add_argument("--seed", type=int, default=12345, help="velocity seed")
    p.add_argument("--threads", type=int, default=1,
                   help="OpenMP threads for LAMMPS and pair_style mtp (default 1)")
    p.add_argument("--supercell", type=int, nargs=3, default=None, metavar=("NA", "NB", "NC"))
    p.add_argument("--thermo-every", type=int, default=100)
    p.add_argument("--dump-every", type=int, default=100)
    p.add_argument("--restart-every", type=int, default=1000)
    p.add_argument("--min-dist", type=float, default=None,
                   help="Å; closer pairs stop the run as a blow-up (default: potential's min_dist)")
    p.add_argument("--extrapolation-every", type=int, default=None,
                   help="enable extrapolation control (needs .almtp): grade every N steps")
    p.add_argument("--select-threshold", type=float, default=2.1)
    p.add_argument("--break-threshold", type=float, default=10.0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mtpkit.md.engines import ExternalEngine, Extrapolation, PluginEngine
    from mtpkit.md.run import MDSettings, run_md
    from mtpkit.md.structure import as_atoms

    settings = MDSettings(
        ensemble=args.ensemble, temperature=args.temperature, steps=args.steps,
        timestep=args.timestep, pressure=args.pressure, barostat=args.barostat,
        tdamp=args.tdamp, pdamp=args.pdamp, seed=args.seed, thermo_every=args.thermo_every,
        dump_every=args.dump_every, restart_every=args.restart_every, min_dist=args.min_dist,
        threads=args.threads)
    atoms = as_atoms(args.structure, "structure")
    if args.supercell:
        atoms = atoms.repeat(args.supercell)
    if args.engine == "plugin":
        extra = None
        if args.extrapolation_every is not None:
            extra = Extrapolation(every=args.extrapolation_every,
                                  select_threshold=args.select_threshold,
                                  break_threshold=args.break_threshold)
        engine = PluginEngine(args.potential, extrapolation=extra)
    else:
        engine = ExternalEngine.from_potential(args.potential, args.species)
    t0 = time.perf_counter()
    first: list[int] = []

    def progress(done: int, total: int) -> None:
        if not first:
            first.append(done)
        rate = (done - first[0]) / max(time.perf_counter() - t0, 1e-9)
        print(f"\rmd: step {done}/{total} ({100.0 * done / total:5.1f} %) "
              f"{rate:8.1f} steps/s", end="", file=sys.stderr, flush=True)

    result = run_md(atoms, engine, args.species, settings, args.out, progress=progress)
    print(file=sys.stderr)
    print(f"md: {result.status}: {result.steps_done}/{result.steps} steps in "
          f"{result.wall_time:.1f} s, folder {result.folder}"
          + (f" - {result.message}" if result.message else ""))
    return {"done": 0, "extrapolation_break": 3}.get(result.status, 1)
