"""Whole-process ``mtpkit evaluate`` against the same evaluations in-process, side by side.

Writes a level-08 NaCl potential (2 species, seeded random coefficients,
cutoff 5 Å) and a ``.cfg`` of 6 rattled, strained rock-salt cells of 4096
atoms (8x8x8 conventional cells, with energy/force/stress labels), then
measures in one run, in CPU seconds (user + system, all threads):

* in-process: energy, forces and stress of the 6 configurations through
  :class:`~mtpkit.potentials.calculator.MTPCalculator` (configurations
  already in memory; ``time.process_time``);
* whole process: the installed ``mtpkit evaluate POT CFG --output OUT`` (the
  compiled program of src/cli_main.cpp: start-up, reading the potential and
  the .cfg, evaluating, writing the output .cfg, error metrics;
  ``resource.getrusage(RUSAGE_CHILDREN)``), and the same command through the
  Python command line (``python -m mtpkit.cli evaluate ...``: interpreter
  start-up and imports on top, the evaluation in the same compiled core);
* start-up alone: ``python -c pass``, ``python -m mtpkit.cli --help``, the
  interpreter with the imports of the compiled evaluate path (the CLI, the
  evaluate command, the compiled core: the floor of a whole-process run), and
  with those of the Python path (NumPy, ASE's calculator module, the core).

Child processes keep their bytecode cache (in a temporary
``PYTHONPYCACHEPREFIX``), as an installed package does. Each is repeated and
the minimum kept. Prints the CPU ratio whole-process /
in-process (target <= 1.5) and, with ``--profile``, where the whole process
spends its time (cProfile, cumulative, top entries).

Usage: ``python benchmarks/bench_cli.py [--threads 1] [--repeats 5] [--profile]``
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPECIES = ["Na", "Cl"]


def make_potential(level: int, path: Path, species_count: int = 2, seed: int | None = None):
    """A level-``level`` MTP with seeded random coefficients (min_dist 2 Å, cutoff 5 Å), written to ``path``."""
    from mtpkit.potentials.mtp_io import read_mtp, write_mtp
    from mtpkit.potentials.templates import make_template

    t = make_template(level, species_count)
    rng = np.random.default_rng(level if seed is None else seed)
    s, r, b = species_count, t.radial_funcs_count, t.radial_basis_size
    mtp = replace(t, min_dist=2.0, max_dist=5.0, radial_coeffs=rng.uniform(-0.02, 0.02, (s, s, r, b)),
                  species_coeffs=rng.normal(size=s), moment_coeffs=rng.normal(size=t.alpha_scalar_moments) * 0.05,
                  trained=True)
    write_mtp(path, mtp)
    return read_mtp(path)


def nacl_cells(count: int, reps: int, seed: int = 0):
    """``count`` rattled (0.05 Å) and strained (±1 %) rock-salt NaCl cells of ``8 reps^3`` atoms."""
    from ase.build import bulk

    rng = np.random.default_rng(seed)
    base = bulk("NaCl", "rocksalt", a=5.64, cubic=True) * (reps, reps, reps)
    out = []
    for _ in range(count):
        a = base.copy()
        a.set_cell(a.cell.array @ (np.eye(3) + rng.uniform(-0.01, 0.01, (3, 3))), scale_atoms=True)
        a.positions += rng.normal(scale=0.05, size=a.positions.shape)
        out.append(a)
    return out


def labelled(mtp, images, seed: int = 1):
    """Copies of ``images`` labelled with the potential's own energy, forces and stress plus noise."""
    from ase.calculators.singlepoint import SinglePointCalculator

    from mtpkit.potentials import core

    rng = np.random.default_rng(seed)
    out = []
    for a in images:
        types = np.array([SPECIES.index(s) for s in a.get_chemical_symbols()])
        efs = core.evaluate(mtp, a, types)
        b = a.copy()
        b.calc = SinglePointCalculator(b, energy=efs.energy + rng.normal(),
                                       stress=efs.stress + 1e-4 * rng.normal(size=6),
                                       forces=efs.forces + 0.01 * rng.normal(size=efs.forces.shape))
        out.append(b)
    return out


def child_cpu(cmd: list[str], env: dict[str, str], repeats: int) -> float:
    """Smallest CPU time (user + system) of ``cmd`` run as a child process."""
    best = np.inf
    for _ in range(repeats):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        best = min(best, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
    return best


def installed_command() -> str:
    """Path of the installed ``mtpkit`` program (in this interpreter's scripts folder, else on PATH),
    not a shell shim in front of it (pyenv's cost ~0.05 s of bash per call)."""
    import shutil
    import sysconfig

    path = Path(sysconfig.get_path("scripts")) / "mtpkit"
    found = str(path) if path.is_file() else shutil.which("mtpkit")
    if not found:
        raise SystemExit("bench_cli: no installed `mtpkit` program (pip install -e .)")
    return found


def machine() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "?")
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    return f"{model}, {os.cpu_count()} cores; python {platform.python_version()}; commit {commit}"



def evaluate_all(images, calc) -> None:
    """Energy, forces and stress of every configuration with ``calc`` (what `mtpkit evaluate` computes)."""
    for a in images:
        a.calc = calc
        calc.reset()
        a.get_potential_energy()
        a.get_forces()
        a.get_stress()

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--level", type=int, default=8)
    ap.add_argument("--configs", type=int, default=6)
    ap.add_argument("--reps", type=int, default=8, help="conventional cells per direction (8: 4096 atoms)")
    ap.add_argument("--threads", type=int, default=1, help="OpenMP threads (both sides)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="also print a cProfile of one whole-process run")
    args = ap.parse_args()

    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    from mtpkit.potentials import core
    from mtpkit.potentials.calculator import MTPCalculator
    from mtpkit.potentials.cfg import read_cfg, write_cfg

    core.set_num_threads(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    # child processes compile each module once and then load it from the bytecode cache, as from an
    # installed package (this environment may set PYTHONDONTWRITEBYTECODE, which recompiles every run)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        pot, cfg, out = tmp / f"nacl{args.level:02d}.mtp", tmp / "cells.cfg", tmp / "out.cfg"
        mtp = make_potential(args.level, pot)
        write_cfg(cfg, labelled(mtp, nacl_cells(args.configs, args.reps)), SPECIES)
        images = read_cfg(cfg, SPECIES)
        n_atoms = sum(len(a) for a in images)
        print(f"{args.configs} configurations x {n_atoms // args.configs} atoms, level {args.level:02d} "
              f"({mtp.n_params} parameters), {args.threads} OpenMP thread(s), "
              f".cfg {cfg.stat().st_size / 1e6:.1f} MB; CPU s, best of {args.repeats}")

        calc = MTPCalculator(mtp, species=SPECIES)

        def in_process() -> None:
            evaluate_all(images, calc)

        py = [sys.executable]
        floor = "import mtpkit.cli, mtpkit.commands.evaluate, mtpkit._core"
        python_floor = ("import numpy; from ase.calculators.singlepoint import SinglePointCalculator; "
                        "import mtpkit._core")
        evaluate = [*py, "-m", "mtpkit.cli", "evaluate", str(pot), str(cfg), "--output", str(out),
                    "--species", ",".join(SPECIES)]
        command = [installed_command(), *evaluate[3:]]
        children = {"pass": [*py, "-c", "pass"], "help": [*py, "-m", "mtpkit.cli", "--help"],
                    "floor": [*py, "-c", floor], "python_floor": [*py, "-c", python_floor], "eval": evaluate,
                    "command": command}
        # every measurement once per repeat, in turn, so that a slow spell of a shared machine hits
        # all of them rather than one whole series; best of the repeats each
        in_process()
        t_in = np.inf
        best = dict.fromkeys(children, np.inf)
        for _ in range(args.repeats):
            t0 = time.process_time()
            in_process()
            t_in = min(t_in, time.process_time() - t0)
            for name, cmd in children.items():
                best[name] = min(best[name], child_cpu(cmd, env, 1))
        t_pass, t_help, t_floor, t_python_floor, t_eval, t_command = (best[k] for k in children)
        back = read_cfg(out, SPECIES)
        ref = [a.get_potential_energy() for a in images]
        assert np.allclose([b.get_potential_energy() for b in back], ref, rtol=0, atol=1e-9), "outputs differ"

        print(f"{'python -c pass':<44} {t_pass:8.3f}")
        print(f"{'mtpkit --help (whole process)':<44} {t_help:8.3f}")
        print(f"{'python + CLI, evaluate, _core imports':<44} {t_floor:8.3f}")
        print(f"{'python + NumPy, ASE calculator, _core imports':<44} {t_python_floor:8.3f}")
        print(f"{'in-process calculator (E, F, stress)':<44} {t_in:8.3f}   {t_in / n_atoms * 1e6:6.2f} µs/atom")
        print(f"{'python -m mtpkit.cli evaluate (whole process)':<44} {t_eval:8.3f}   "
              f"{t_eval / n_atoms * 1e6:6.2f} µs/atom")
        print(f"{'mtpkit evaluate (whole process)':<44} {t_command:8.3f}   {t_command / n_atoms * 1e6:6.2f} µs/atom"
              f"   ({command[0]})")
        ratio = t_command / t_in
        print(f"CPU ratio whole process / in-process: {ratio:.2f} (target <= 1.5: {'yes' if ratio <= 1.5 else 'NO'})")
        print(f"through the Python command line: {t_eval / t_in:.2f}; its overhead beyond the in-process "
              f"evaluation {t_eval - t_in:.3f} s, of which {t_floor:.3f} s interpreter and the imports of the "
              f"compiled evaluate")

        if args.profile:
            prof = tmp / "evaluate.prof"
            subprocess.run([*py, "-m", "cProfile", "-o", str(prof), "-m", "mtpkit.cli", *evaluate[3:]], env=env,
                           check=True, stdout=subprocess.DEVNULL)
            import pstats

            pstats.Stats(str(prof)).sort_stats("cumulative").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
