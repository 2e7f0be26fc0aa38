"""MD speed for the 296-atom NYZC75-like cell (2x2x2 of the 37-atom P2_1/n model), level-16 MTP.

Measures, in one run, seconds per MD step of:
  * raw kernel      - mtpkit.potentials.core.evaluate (energy, forces, virial), 1 thread
  * plugin          - LAMMPS `pair_style mtp`, NPT (tri), serial (and with --threads N OpenMP
                      threads via `package omp N`, next to the kernel and ASE on N threads)
  * fix external    - LAMMPS `fix external` + mtpkit's Python calculator, NPT (tri)
  * ASE NPT         - ase.md.npt.NPT with mtpkit's calculator
and prints the ratios. The potential has the level-16 basis of MLIP's template with
seeded random coefficients (cost does not depend on coefficient values).

    python benchmarks/bench_md.py [--steps 200] [--threads 2] [--template path/to/16.mtp]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from _md_support import NYZC_SPECIES, nyzc_cell, synthetic_mtp  # noqa: E402


def lammps_npt(engine, atoms, species, steps: int, workdir: Path, threads: int = 1) -> float:
    """Seconds per step of `run steps` (set-up excluded) for an engine on `threads` threads."""
    from mtpkit.md import lammps_env
    from mtpkit.md.structure import lammps_atoms, write_data

    lmp = lammps_env.new_lammps()
    write_data(workdir / "in.data", lammps_atoms(atoms), species)
    if threads > 1:
        lmp.command(f"package omp {threads}")
    for c in ["units metal", "atom_style atomic", "atom_modify map array",
              f"read_data {workdir / 'in.data'}", "timestep 0.001", "neighbor 1.0 bin"]:
        lmp.command(c)
    engine.setup(lmp, species, workdir)
    for c in ["velocity all create 600 1 mom yes rot no dist gaussian",
              "fix npt all npt temp 600 600 0.1 tri 0 0 1.0", "thermo 1000", "run 0"]:
        lmp.command(c)
    t0 = time.perf_counter()
    lmp.command(f"run {steps}")
    dt = (time.perf_counter() - t0) / steps
    lmp.close()
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1,
                    help="also time plugin, kernel and ASE NPT on this many OpenMP threads")
    ap.add_argument("--template", default=str(ROOT / "tests/.cache/motep-0.2.0/tests/data_path/"
                                              "fitting/crystals/cubic/16/initial.mtp"))
    args = ap.parse_args()

    from ase import units
    from ase.md.npt import NPT
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from mtpkit.md.engines import ExternalEngine, PluginEngine
    from mtpkit.md.structure import lammps_atoms
    from mtpkit.potentials import core
    from mtpkit.potentials.calculator import MTPCalculator
    from mtpkit.potentials.mtp_io import write_mtp

    core.set_num_threads(1)
    mtp = synthetic_mtp(Path(args.template), moment_scale=0.002)
    atoms = lammps_atoms(nyzc_cell(ROOT / "tests" / "data", repeat=(2, 2, 2), rattle=0.02))
    assert len(atoms) == 296
    work = Path(tempfile.mkdtemp(prefix="bench_md_"))
    pot = work / "syn16.mtp"
    write_mtp(pot, mtp)
    types = np.array([NYZC_SPECIES.index(s) for s in atoms.get_chemical_symbols()], np.int32)

    core.evaluate(mtp, atoms, types)  # warm-up
    n_kernel = max(20, args.steps // 4)
    t0 = time.perf_counter()
    for _ in range(n_kernel):
        core.evaluate(mtp, atoms, types, on_short_distance="ignore")
    t_kernel = (time.perf_counter() - t0) / n_kernel

    t_plugin = lammps_npt(PluginEngine(pot), atoms, NYZC_SPECIES, args.steps, work)
    calc = MTPCalculator(mtp, species=NYZC_SPECIES, on_short_distance="ignore")
    n_slow = max(10, args.steps // 10)
    t_external = lammps_npt(ExternalEngine(calc), atoms, NYZC_SPECIES, n_slow, work)

    def ase_npt() -> float:
        a = atoms.copy()
        a.calc = MTPCalculator(mtp, species=NYZC_SPECIES, on_short_distance="ignore")
        MaxwellBoltzmannDistribution(a, temperature_K=600, rng=np.random.default_rng(1))
        dyn = NPT(a, timestep=1.0 * units.fs, temperature_K=600, externalstress=0.0,
                  ttime=100 * units.fs, pfactor=(1000 * units.fs) ** 2 * 100 * units.GPa)
        dyn.run(1)
        t0 = time.perf_counter()
        dyn.run(n_slow)
        return (time.perf_counter() - t0) / n_slow

    def kernel() -> float:
        t0 = time.perf_counter()
        for _ in range(n_kernel):
            core.evaluate(mtp, atoms, types, on_short_distance="ignore")
        return (time.perf_counter() - t0) / n_kernel

    t_ase = ase_npt()
    threaded = None
    if args.threads > 1:
        core.set_num_threads(args.threads)
        threaded = (kernel(), lammps_npt(PluginEngine(pot), atoms, NYZC_SPECIES, args.steps, work,
                                         threads=args.threads), ase_npt())
        core.set_num_threads(1)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=False,
                            capture_output=True, text=True).stdout.strip()
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; commit {commit}; 296 atoms, level 16, 1 thread / 1 rank")
    print(f"{'engine':<16}{'ms/step':>10}{'steps/s':>10}{'vs kernel':>11}")
    for name, t in [("raw kernel", t_kernel), ("plugin NPT", t_plugin),
                    ("fix external", t_external), ("ASE NPT", t_ase)]:
        print(f"{name:<16}{1e3 * t:>10.2f}{1.0 / t:>10.1f}{t / t_kernel:>11.2f}")
    print(f"plugin / kernel cost per step: {t_plugin / t_kernel:.3f} (target <= 1.10)")
    print(f"ASE NPT / plugin: {t_ase / t_plugin:.1f}x (target >= 20x)")
    print(f"fix external / plugin: {t_external / t_plugin:.2f}x")
    print(f"ASE NPT cost beyond the kernel: {1e3 * (t_ase - t_kernel):.2f} ms/step")
    if threaded is not None:
        tk, tp, ta = threaded
        n = args.threads
        print(f"--- {n} OpenMP threads (kernel via core.set_num_threads, plugin via `package omp {n}`)")
        for name, t in [("raw kernel", tk), ("plugin NPT", tp), ("ASE NPT", ta)]:
            print(f"{name:<16}{1e3 * t:>10.2f}{1.0 / t:>10.1f}{t / tk:>11.2f}")
        print(f"plugin speed-up {n} threads vs 1: {t_plugin / tp:.2f}x; "
              f"ASE NPT ({n} threads) / plugin ({n} threads): {ta / tp:.1f}x; "
              f"ASE NPT (1 thread) / plugin ({n} threads): {t_ase / tp:.1f}x")


if __name__ == "__main__":
    main()
