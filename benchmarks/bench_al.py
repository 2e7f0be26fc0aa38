"""Active learning on NYZC75 with the CHGNet labeller: MaxVol vs random selection, and loop overhead.

Part 1 (selection). A pool of unlabelled NYZC75 configurations and a held-out set of
CHGNet MD snapshots at 600 K (37-atom P2_1/n cell). Default pool: the frames of a
600 K CHGNet Langevin run 2 steps (4 fs) apart, i.e. what an exploration run at the
target temperature hands the selector (correlated, redundant frames; their labels
come with them); ``--pool-kind md --pool-temperatures 300 600 900`` gives an
exploration over a temperature ladder, ``thermal``/``wide`` rattled and strained
copies of the cell. Each of ``--trials`` independent trials starts both strategies
from the same small labelled set and fit; each round adds ``--per-round`` labels
chosen either by D-optimal MaxVol selection (neighbourhood mode, all parameters,
against the active set of the current fit) or uniformly at random, refits with a warm
start and measures the force RMSE (eV/Å) on the held-out snapshots. Prints both
curves (mean ± s.e. over trials) and the paired ratio random/MaxVol.

Part 2 (bookkeeping). Runs ``mtpkit learn`` on NYZC75 with CHGNet for a few
iterations and prints the share of wall time spent outside MD, labelling and
training (target < 5 %).

Usage: python benchmarks/bench_al.py [--cache DIR] [--skip-loop] [--trials 5 --rounds 8 --level 8 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CIF = ROOT / "tests" / "data" / "NYZC75_P21n_37atoms_CHGNet-relaxed.cif"
SPECIES = ["Na", "Y", "Zr", "Cl"]


def chgnet_calc():
    from mtpkit.active_learning.labellers import LabellerSpec, make_calculator

    return make_calculator(LabellerSpec("chgnet"))


def label(calc, atoms):
    from mtpkit.active_learning.labellers import labelled_copy

    a = atoms.copy()
    a.calc = calc
    out = labelled_copy(atoms, a.get_potential_energy(), a.get_forces(), a.get_stress())
    return out


def heldout_md(calc, base, n, every, equil, seed, temperature=600.0):
    """CHGNet Langevin MD at ``temperature`` K (2 fs): ``n`` snapshots ``every`` steps apart after
    ``equil`` steps."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    a = base.copy()
    a.calc = calc
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(a, temperature_K=temperature, rng=rng)
    dyn = Langevin(a, 2 * units.fs, temperature_K=temperature, friction=0.02 / units.fs, fixcm=False,
                   rng=rng)
    dyn.run(equil)
    snaps = []
    for _ in range(n):
        dyn.run(every)
        snaps.append(label(calc, a))
    return snaps


def make_pool(base, n, seed, kind="wide"):
    """Unlabelled candidates. ``wide``: rattles of 0.03-0.25 Å, every other one strained by up to
    ±3 %; ``thermal``: rattles of 0.04-0.14 Å (about the 300-900 K amplitudes), strain ±1 %."""
    rng = np.random.default_rng(seed)
    lo, hi, eps = (0.03, 0.25, 0.03) if kind == "wide" else (0.04, 0.14, 0.01)
    pool = []
    for i in range(n):
        a = base.copy()
        sigma = rng.uniform(lo, hi)
        strain = np.eye(3) + rng.uniform(-eps, eps, size=(3, 3)) * (i % 2)
        a.set_cell(a.cell.array @ strain, scale_atoms=True)
        a.positions += rng.normal(scale=sigma, size=a.positions.shape)
        pool.append(a)
    return pool


def md_pool(calc, base, n, temperatures, every, equil, seed, cache_dir=""):
    """An exploration-like pool: ``n`` CHGNet Langevin MD snapshots (2 fs), ``n/len(T)`` per
    temperature, ``every`` steps apart after ``equil`` steps. Consecutive snapshots are
    correlated, as the frames of an exploration run are; each carries its CHGNet label."""
    from ase.io import read, write

    f = Path(cache_dir) / f"mdpool_{n}_{'-'.join(f'{t:g}' for t in temperatures)}_{every}_{equil}_{seed}.extxyz" \
        if cache_dir else None
    if f is not None and f.exists():
        return list(read(f, index=":"))
    per = [n // len(temperatures) + (k < n % len(temperatures)) for k in range(len(temperatures))]
    pool = []
    for k, (T, m) in enumerate(zip(temperatures, per)):
        pool += heldout_md(calc, base, m, every, equil, seed + 17 * k, temperature=T)
    if f is not None:
        write(f, pool)
    return pool


class LabelCache:
    """CHGNet labels on disk (extxyz per configuration id), so reruns do not relabel."""

    def __init__(self, folder, calc):
        self.folder = Path(folder) if folder else None
        self.calc = calc
        self.computed = 0
        if self.folder:
            self.folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, atoms):
        from ase.io import read, write

        from mtpkit.active_learning.store import config_id

        f = self.folder / f"{config_id(atoms)}.extxyz" if self.folder else None
        if f is not None and f.exists():
            return read(f)
        out = label(self.calc, atoms)
        self.computed += 1
        if f is not None:
            write(f, out)
        return out


def fit(images, init, max_iter, seed):
    from mtpkit.potentials.training import train

    return train(images, init, species=SPECIES, log=None, max_iter=max_iter, seed=seed, valid_fraction=0.0).mtp


def force_rmse(mtp, images):
    from mtpkit.potentials.labels import extract_labels, predict
    from mtpkit.potentials.metrics import error_metrics
    from mtpkit.potentials.species import atom_types

    types = [atom_types(a, SPECIES, mtp.species_count) for a in images]
    m = error_metrics(predict(mtp, images, types), extract_labels(images))
    return {"n": len(images), "energy_rmse": m["energy_rmse_mev_per_atom"] / 1000.0, "force_rmse": m["force_rmse"]}


def maxvol_pick(mtp, train, pool, remaining, k, basis="all"):
    from mtpkit.active_learning.grades import row_blocks
    from mtpkit.active_learning.selection import build_active_set, select_add

    aset = build_active_set(row_blocks(mtp, train, "neighborhood", basis, SPECIES), train, mode="neighborhood",
                            basis=basis)
    cand = [pool[i] for i in remaining]
    sel = select_add(aset, row_blocks(mtp, cand, "neighborhood", basis, SPECIES), limit=k)
    chosen = [remaining[int(i)] for i in sel.selected]
    if len(chosen) < k:  # everything interpolates: top up with the highest grades
        order = np.argsort(-sel.grades)
        for i in order:
            if remaining[int(i)] not in chosen:
                chosen.append(remaining[int(i)])
            if len(chosen) == k:
                break
    return chosen, float(sel.grades.max())


def selection_benchmark(args):
    from ase.io import read

    from mtpkit.potentials.templates import make_template

    t0 = time.perf_counter()
    base = read(CIF)
    calc = chgnet_calc()
    print(f"# NYZC75 {base.get_chemical_formula()} ({len(base)} atoms), CHGNet 0.3.0 labeller", flush=True)
    if args.cache:
        Path(args.cache).mkdir(parents=True, exist_ok=True)
    held_file = Path(args.cache) / f"heldout_{args.heldout}_{args.every}_{args.equil}_{args.seed}.extxyz" \
        if args.cache else None
    if held_file is not None and held_file.exists():
        held = list(read(held_file, index=":"))
    else:
        held = heldout_md(calc, base, args.heldout, args.every, args.equil, args.seed)
        if held_file is not None:
            from ase.io import write

            write(held_file, held)
    print(f"# held-out: {len(held)} CHGNet MD snapshots at 600 K ({time.perf_counter() - t0:.0f} s)", flush=True)
    if args.pool_kind == "md":
        pool = md_pool(calc, base, args.pool, args.pool_temperatures, args.pool_every, args.equil,
                       args.seed + 1, args.cache)
        print(f"# pool: {len(pool)} CHGNet MD snapshots at {args.pool_temperatures} K, every "
              f"{args.pool_every} steps (labels come with them); MaxVol basis: {args.basis}", flush=True)
    else:
        pool = make_pool(base, args.pool, args.seed + 1, args.pool_kind)
        print(f"# pool: {len(pool)} {args.pool_kind} configurations; MaxVol basis: {args.basis}", flush=True)
    labeller = LabelCache(Path(args.cache) / "labels" if args.cache else None, calc)
    cache: dict[int, object] = {}

    def lab(i):
        if i not in cache:
            cache[i] = pool[i] if pool[i].calc is not None else labeller(pool[i])
        return cache[i]

    template = make_template(args.level, len(SPECIES), 8, 1.8, 5.0)
    base_label = labeller(base)
    trials = []
    for t in range(args.trials):
        # trial t: its own random starting labels (trial 0 keeps the first `initial` pool
        # entries, as the earlier single-trial runs); both strategies start from them
        if t == 0:
            init_idx = list(range(args.initial))
        else:
            init_idx = [int(i) for i in np.random.default_rng(args.seed * 100 + t).choice(
                len(pool), args.initial, replace=False)]
        start = [base_label] + [lab(i) for i in init_idx]
        mtp0 = fit(start, template, args.max_iter, args.seed)
        e0 = force_rmse(mtp0, held)
        print(f"# trial {t}: start {len(start)} labels (pool {init_idx}), held-out force RMSE "
              f"{e0['force_rmse']:.4f} eV/Å (level {args.level}, {mtp0.n_params} parameters)", flush=True)
        curves = {}
        strategies = ["maxvol"] + [f"random{s}" for s in range(args.random_seeds)]
        for strat in strategies:
            rng = np.random.default_rng(1000 + 97 * t + len(curves))
            mtp, train_set = mtp0, list(start)
            remaining = [i for i in range(len(pool)) if i not in init_idx]
            curve = [(len(train_set), e0["force_rmse"], e0["energy_rmse"])]
            for r in range(args.rounds):
                if strat == "maxvol":
                    chosen, gmax = maxvol_pick(mtp, train_set, pool, remaining, args.per_round, args.basis)
                else:
                    chosen = [int(i) for i in rng.choice(remaining, args.per_round, replace=False)]
                    gmax = float("nan")
                remaining = [i for i in remaining if i not in chosen]
                train_set += [lab(i) for i in chosen]
                mtp = fit(train_set, mtp, args.max_iter, args.seed)
                e = force_rmse(mtp, held)
                curve.append((len(train_set), e["force_rmse"], e["energy_rmse"]))
                print(f"  trial {t} {strat:8s} round {r + 1}: {len(train_set)} labels, pool max grade "
                      f"{gmax:.3g}, held-out force RMSE {e['force_rmse']:.4f} eV/Å", flush=True)
            curves[strat] = curve
        trials.append(curves)

    # per label count: MaxVol and random (mean over random seeds) per trial, then over trials
    n_labels = [n for n, _, _ in trials[0]["maxvol"]]
    mv = np.array([[c["maxvol"][j][1] for j in range(len(n_labels))] for c in trials])
    rnd = np.array([[np.mean([c[k][j][1] for k in c if k != "maxvol"]) for j in range(len(n_labels))]
                    for c in trials])
    ratio = rnd / mv
    nt = len(trials)

    def sem(x):
        return x.std(axis=0, ddof=1) / np.sqrt(nt) if nt > 1 else np.zeros(x.shape[1])

    print()
    print(f"labels | MaxVol F-RMSE (mean ± s.e., {nt} trials) | random F-RMSE "
          f"({args.random_seeds} seed(s)/trial) | random/MaxVol (paired mean ± s.e.) | MaxVol lower in")
    rows = []
    for j, n in enumerate(n_labels):
        r_mean, r_sem = ratio[:, j].mean(), sem(ratio)[j]
        wins = int((mv[:, j] < rnd[:, j]).sum())
        rows.append({"labels": int(n), "maxvol": float(mv[:, j].mean()), "maxvol_sem": float(sem(mv)[j]),
                     "random": float(rnd[:, j].mean()), "random_sem": float(sem(rnd)[j]),
                     "ratio": float(r_mean), "ratio_sem": float(r_sem), "maxvol_wins": wins})
        print(f"{n:6d} | {mv[:, j].mean():.4f} ± {sem(mv)[j]:.4f} | {rnd[:, j].mean():.4f} ± "
              f"{sem(rnd)[j]:.4f} | {r_mean:.3f} ± {r_sem:.3f} | {wins}/{nt}")
    later = ratio[:, 1:]
    print(f"# over all trials and label counts after the start: random/MaxVol mean {later.mean():.3f}, "
          f"MaxVol lower in {int((later > 1).sum())}/{later.size} (trial, label count) pairs")
    print(f"# part 1 wall time {time.perf_counter() - t0:.0f} s, {len(cache) + 1} pool labels "
          f"({labeller.computed} computed now), {len(held)} held-out snapshots")
    return {"trials": trials, "table": rows}


def loop_benchmark(args):
    """Run `mtpkit learn` on NYZC75 with CHGNet; report the bookkeeping share of wall time."""
    with tempfile.TemporaryDirectory() as tmp:
        if args.loop_dir:
            tmp = args.loop_dir
            Path(tmp).mkdir(parents=True, exist_ok=True)
        toml = Path(tmp) / "c.toml"
        toml.write_text(f"""
[campaign]
folder = "run"
max_iterations = {args.loop_iterations}
[potential]
species = {json.dumps(SPECIES)}
level = {args.level}
min_dist = 1.8
max_dist = 5.0
[structures]
files = ["{CIF}"]
supercell = {json.dumps(args.loop_supercell)}
rattled_per_structure = {args.loop_start}
rattle = 0.08
[labeller]
kind = "chgnet"
[exploration]
temperatures = [300.0, 600.0]
steps = {args.loop_steps}
grade_every = 10
[selection]
max_labels_per_iteration = {args.loop_cap}
[training]
max_iter = {args.max_iter}
""")
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "mtpkit.cli", "learn", str(toml)], capture_output=True, text=True,
                              check=False)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-3000:])
            raise SystemExit("mtpkit learn failed")
        s = json.loads((Path(tmp) / "run" / "summary.json").read_text())
        state = json.loads((Path(tmp) / "run" / "state.json").read_text())
    print()
    print("iteration/phase   | seconds")
    for key, sec in state["phase_times"].items():
        print(f"{key:17s} | {sec:8.2f}")
    print()
    print("loop phase        | seconds")
    for key in ("md_time_s", "label_time_s", "train_time_s"):
        print(f"{key:17s} | {s[key]:8.1f}")
    other = s["wall_time_s"] - s["md_time_s"] - s["label_time_s"] - s["train_time_s"]
    print(f"{'bookkeeping':17s} | {other:8.1f}")
    print(f"{'loop wall (phases)':17s} | {s['wall_time_s']:8.1f}   (process wall incl. imports {wall:.1f} s)")
    print(f"bookkeeping share {100 * s['bookkeeping_share']:.2f} % (target < 5 %), "
          f"{s['labels']} labels, stop: {s['stop_reason']}")
    return s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--level", type=int, default=8)
    p.add_argument("--pool", type=int, default=150)
    p.add_argument("--heldout", type=int, default=20)
    p.add_argument("--every", type=int, default=10, help="MD steps between held-out snapshots")
    p.add_argument("--equil", type=int, default=50)
    p.add_argument("--initial", type=int, default=3)
    p.add_argument("--per-round", type=int, default=4)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--random-seeds", type=int, default=2, help="random-selection runs per trial")
    p.add_argument("--trials", type=int, default=5,
                   help="independent trials, each from its own random starting labels")
    p.add_argument("--max-iter", type=int, default=200)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--loop-iterations", type=int, default=3)
    p.add_argument("--loop-steps", type=int, default=1000)
    p.add_argument("--loop-start", type=int, default=8, help="rattled starting configurations")
    p.add_argument("--loop-supercell", type=int, nargs=3, default=[1, 1, 1])
    p.add_argument("--loop-cap", type=int, default=8, help="labels per iteration")
    p.add_argument("--basis", choices=["all", "linear"], default="all",
                   help="MaxVol rows: all parameters (MLIP-3) or linear coefficients")
    p.add_argument("--pool-kind", choices=["wide", "thermal", "md"], default="md",
                   help="rattled copies (wide/thermal) or CHGNet MD snapshots (md)")
    p.add_argument("--pool-temperatures", type=float, nargs="+", default=[600.0],
                   help="K, for --pool-kind md")
    p.add_argument("--pool-every", type=int, default=2, help="MD steps between pool snapshots (md)")
    p.add_argument("--cache", default="", help="folder for CHGNet labels and held-out snapshots (reused by reruns)")
    p.add_argument("--loop-dir", default="", help="keep the loop benchmark's campaign folder here")
    p.add_argument("--skip-selection", action="store_true")
    p.add_argument("--skip-loop", action="store_true")
    p.add_argument("--json", help="write the numbers here")
    args = p.parse_args()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    print(f"# machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"commit {commit}")
    out = {}
    if not args.skip_selection:
        out["selection"] = selection_benchmark(args)
    if not args.skip_loop:
        out["loop"] = loop_benchmark(args)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
