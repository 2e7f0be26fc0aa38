"""Compiled MTP core vs motep's C engine, side by side in one run.

Same cells, same ``.mtp`` files (written once, read by both): a 296-atom
NYZC75-like cell (2x2x2 of the 37-atom P2_1/n cell, rattled), cutoff 5 Å,
4 species (Na, Y, Zr, Cl), MLIP basis levels 10, 16 and 20 with random
coefficients.

* evaluation: energy + forces + stress per call (ASE calculators, positions
  nudged every call so both recompute), best of several blocks;
* loss + gradient: one evaluation of the weighted energy/force/stress loss
  and its gradient over all parameters on the same labelled configurations
  (motep: ``motep.loss.LossFunction`` + ``.jac`` with the cext engine;
  mtpkit: ``core.loss_and_grad``).

Prints µs per atom and the ratios mtpkit/motep (evaluation; target ≤ 0.5) and
motep/mtpkit (loss + gradient speed-up; target ≥ 5).

Usage: ``python benchmarks/bench_core.py [--levels 10 16 20] [--threads 2]``
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read

ROOT = Path(__file__).resolve().parents[1]
SPECIES = ["Na", "Y", "Zr", "Cl"]


def template(level: int, motep_data: Path):
    try:
        from mtpkit.potentials.templates import make_template
    except ImportError:
        from mtpkit.potentials.mtp_io import read_mtp

        return read_mtp(motep_data / "fitting" / "crystals" / "cubic" / f"{level:02d}" / "initial.mtp")
    return make_template(level, 4)


def make_potential(level: int, motep_data: Path, path: Path):
    from mtpkit.potentials.mtp_io import read_mtp, write_mtp

    t = template(level, motep_data)
    rng = np.random.default_rng(level)
    s, r, b = 4, t.radial_funcs_count, t.radial_basis_size
    mtp = replace(
        t, species_count=s, min_dist=2.0, max_dist=5.0,
        radial_coeffs=rng.uniform(-0.02, 0.02, (s, s, r, b)),
        species_coeffs=rng.normal(size=s),
        moment_coeffs=rng.normal(size=t.alpha_scalar_moments) * 0.05, trained=True,
    )
    write_mtp(path, mtp)
    return read_mtp(path)


def cell_296(seed: int):
    atoms = read(ROOT / "tests" / "data" / "NYZC75_P21n_37atoms_CHGNet-relaxed.cif") * (2, 2, 2)
    atoms.rattle(0.03, seed=seed)
    return atoms


def best_time(fn, repeats: int, blocks: int = 5) -> float:
    fn()
    best = np.inf
    for _ in range(blocks):
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - t0) / repeats)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", type=int, nargs="+", default=[10, 16, 20])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="OpenMP threads for mtpkit")
    ap.add_argument("--configs", type=int, default=2, help="labelled 296-atom configurations in the loss")
    ap.add_argument("--motep-data", type=Path,
                    default=ROOT / "tests" / ".cache" / "motep-0.2.0" / "tests" / "data_path")
    args = ap.parse_args()

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    from motep.calculator import make_calculator
    from motep.io.mlip.mtp import read_mtp as motep_read_mtp
    from motep.loss import LossFunction, LossSetting

    from mtpkit.potentials import core
    from mtpkit.potentials.calculator import MTPCalculator

    core.set_num_threads(args.threads)
    model = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next((ln.split(":", 1)[1].strip() for ln in model.splitlines() if ln.startswith("Model name")), "?")
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            check=False).stdout.strip()
    print(f"machine: {model}, {os.cpu_count()} cores; python {platform.python_version()}; commit {commit}")
    print(f"mtpkit threads: {core.max_threads()}; motep cext engine (single process)")

    atoms = cell_296(seed=1)
    n = len(atoms)
    types = np.array([SPECIES.index(s) for s in atoms.get_chemical_symbols()])
    print(f"cell: {n} atoms, lengths {np.round(atoms.cell.lengths(), 2).tolist()} Å, cutoff 5 Å")
    print()
    header = (f"{'level':>5} {'params':>6} | {'eval µs/atom':>25} {'ratio':>6} | "
              f"{'loss+grad µs/atom':>27} {'speed-up':>8} | {'|dE|/|E|':>8}")
    print(header)
    print(f"{'':>5} {'':>6} | {'mtpkit':>12} {'motep':>12} {'':>6} | {'mtpkit':>12} {'motep':>14} {'':>8} |")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for level in args.levels:
            path = Path(tmp) / f"level{level}.mtp"
            mtp = make_potential(level, args.motep_data, path)
            md = motep_read_mtp(path)
            md.species = [11, 39, 40, 17]

            ours = atoms.copy()
            ours.calc = MTPCalculator(mtp, species=SPECIES)
            theirs = atoms.copy()
            theirs.calc = make_calculator(md, engine="cext")
            step = [0.0]

            def run(a, step=step):
                step[0] = -step[0] if step[0] else 1e-7
                a.positions[0, 0] += step[0]
                return a.get_potential_energy(), a.get_forces(), a.get_stress()

            e1, e2 = ours.get_potential_energy(), theirs.get_potential_energy()  # same positions
            t_ours = best_time(lambda a=ours: run(a), repeats=5)
            t_motep = best_time(lambda a=theirs: run(a), repeats=2 if level >= 20 else 5, blocks=3)

            # labelled configurations (labels: the potential's own EFS plus noise)
            rng = np.random.default_rng(level)
            images = []
            for k in range(args.configs):
                p = cell_296(seed=10 + k)
                efs = core.evaluate(mtp, p, types)
                p.calc = SinglePointCalculator(
                    p, energy=efs.energy + rng.normal(), forces=efs.forces + 0.1 * rng.normal(size=(n, 3)),
                    stress=efs.stress + 1e-3 * rng.normal(size=6),
                )
                images.append(p)
            nat = n * len(images)
            tset = core.TrainingSet(images, [types] * len(images), mtp.cutoff)
            nc = len(images)
            a = np.full(nc, 1.0 / n**2)
            b = np.full(nc, 0.01 / n)
            d = np.full(nc, 0.001)
            cm = core.compile_mtp(mtp)
            t_lg = best_time(lambda cm=cm, ts=tset, a=a, b=b, d=d: core.loss_and_grad(cm, ts, a, b, d),
                             repeats=2, blocks=3)
            loss = LossFunction(images, md, LossSetting(), engine="cext")
            x = md.parameters
            loss(x)
            loss.jac(x)  # warm-up (neighbour lists)
            t0 = time.perf_counter()
            loss(x)
            loss.jac(x)
            t_lg_motep = time.perf_counter() - t0

            r_eval = t_ours / t_motep
            r_lg = t_lg_motep / t_lg
            rows.append((level, r_eval, r_lg))
            print(
                f"{level:>5} {mtp.n_params:>6} | {t_ours / n * 1e6:>12.2f} {t_motep / n * 1e6:>12.2f} {r_eval:>6.3f} | "
                f"{t_lg / nat * 1e6:>12.2f} {t_lg_motep / nat * 1e6:>14.2f} {r_lg:>8.1f} | "
                f"{abs(e1 - e2) / abs(e2):>8.1e}",
                flush=True,
            )
    print()
    ok_eval = all(r <= 0.5 for _, r, _ in rows)
    ok_lg = all(r >= 5 for _, _, r in rows)
    print(f"evaluation ratio mtpkit/motep <= 0.5 at every level: {'yes' if ok_eval else 'NO'}")
    print(f"loss+gradient speed-up >= 5 at every level: {'yes' if ok_lg else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
