"""Why a fit's energy RMSE need not fall monotonically while its loss does.

A level-16 MTP is fitted (``mtpkit.potentials.training.train``, L-BFGS, no
early stopping) to labelled configurations with a separate validation set:
``--data emt`` (default), motep's EMT Cu/Ag/Au molecular-dynamics set (27-atom
cells, a many-body reference; from ``tests/.cache``, ``make test-data``), or
``--data nacl``, rock-salt NaCl cells labelled by a species-pair Morse
potential (``tests/labelled_data.PairMorse``), which any level fits almost
exactly. Every ``--every`` iterations the parameters are recorded; afterwards the
script prints, per recorded iteration, the three terms of the training loss
(energy, forces, virial: ``sum_c a_c dE^2``, ``b_c |dF|^2``, ``d_c |dW|^2``)
and the validation errors: energy RMSE, its mean (a common offset) and its
spread, force RMSE, stress RMSE, and the validation loss that early stopping
watches. Variants of the loss weights and of the optimiser run side by side.

    python benchmarks/bench_fit_convergence.py [--data emt|nacl] [--level 16] [--max-iter 300]
        [--every 20] [--variants default,ew10,ew100,structures,joint]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPECIES = {"nacl": ["Na", "Cl"], "emt": ["Cu", "Ag", "Au"]}

VARIANTS = {
    "default": {},
    "ew10": {"energy_weight": 10.0},
    "ew100": {"energy_weight": 100.0},
    "structures": {"weighting": "structures"},
    "joint": {"method": "joint"},
}


def nacl_set(count: int, seed: int, reps: int = 2):
    """Rock-salt NaCl cells (8 reps^3 atoms), strained (±3 %) and rattled (0.1 Å), PairMorse labels."""
    sys.path.insert(0, str(ROOT / "tests"))
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator
    from labelled_data import PairMorse

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        a = bulk("NaCl", "rocksalt", a=5.64, cubic=True) * (reps, reps, reps)
        eps = rng.uniform(-0.03, 0.03, (3, 3))
        a.set_cell(a.cell.array @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
        a.positions += rng.normal(scale=0.1, size=a.positions.shape)
        a.calc = PairMorse()
        labels = {"energy": a.get_potential_energy(), "forces": a.get_forces(), "stress": a.get_stress()}
        a.calc = SinglePointCalculator(a, **labels)
        out.append(a)
    return out


def emt_set(n_train: int, n_valid: int):
    """motep's EMT Cu/Ag/Au MD set: every other configuration for training, the others for validation."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fetch_test_data import motep_sdist_dir

    from mtpkit.potentials.cfg import read_cfg

    root = motep_sdist_dir()
    if root is None:
        sys.exit("motep's sdist is missing (make test-data)")
    images = read_cfg(root / "tests" / "data_path" / "original" / "crystals" / "multi" / "training.cfg",
                      SPECIES["emt"])
    return images[0 : 2 * n_train : 2], images[1 : 2 * n_valid : 2]


def run_variant(name, settings, train_images, valid_images, level, max_iter, every, species):
    from mtpkit.potentials import core, training
    from mtpkit.potentials.labels import extract_labels
    from mtpkit.potentials.metrics import error_metrics
    from mtpkit.potentials.templates import make_template

    recorded = {}
    original = training._write_checkpoint
    count = {"n": 0}

    def record(path, mtp):  # called every checkpoint_every iterations, then once at the end
        count["n"] += 1
        recorded[count["n"] * every] = mtp.copy()

    training._write_checkpoint = record
    try:
        t0 = time.process_time()
        result = training.train(train_images, make_template(level, len(species)), species=species,
                                valid=valid_images,
                                patience=0, max_iter=max_iter, checkpoint="unused", checkpoint_every=every,
                                print_every=0, valid_every=every, seed=1, log=None, **settings)
        cpu = time.process_time() - t0
    finally:
        training._write_checkpoint = original
    recorded.pop(max(recorded))  # the final write repeats the last parameters (or the best-validation ones)
    cfg = result.config
    t_labels, v_labels = extract_labels(train_images), extract_labels(valid_images)
    types_t = [np.array([species.index(s) for s in a.get_chemical_symbols()]) for a in train_images]
    types_v = [np.array([species.index(s) for s in a.get_chemical_symbols()]) for a in valid_images]
    a, b, d = training.loss_coefficients(t_labels, np.ones(len(train_images)), cfg)
    va, vb, vd = training.loss_coefficients(v_labels, np.ones(len(valid_images)), cfg)
    rows = []
    for it, mtp in sorted(recorded.items()):
        tset = core.TrainingSet(train_images, types_t, mtp.cutoff)
        vset = core.TrainingSet(valid_images, types_v, mtp.cutoff)
        tp, vp = training.predict_set(mtp, tset), training.predict_set(mtp, vset)
        terms = [
            float(np.sum(a * (tp.energy - t_labels.energy) ** 2)),
            float(sum(bc * np.sum((f - g) ** 2) for bc, f, g in zip(b, tp.forces, t_labels.forces))),
            float(sum(dc * np.sum((w - x) ** 2) for dc, w, x in zip(d, tp.virial, t_labels.virial))),
        ]
        m = error_metrics(vp, v_labels)
        de = (vp.energy - v_labels.energy) / v_labels.natoms * 1000.0
        rows.append((it, *terms, m["energy_rmse_mev_per_atom"], float(de.mean()), float(de.std()),
                     m["force_rmse"], m["stress_rmse_gpa"],
                     training.loss_from_predictions(vp, v_labels, va, vb, vd)))
    print(f"\n== {name} {settings or ''}: {result.iterations} iterations, {cpu:.0f} s CPU; "
          f"final train E {result.train_metrics['energy_rmse_mev_per_atom']:.4f} meV/atom, "
          f"F {result.train_metrics['force_rmse']:.5f} eV/A")
    print(f"{'iter':>5} | {'train loss terms: energy':>24} {'forces':>10} {'virial':>10} | "
          f"{'valid E rmse':>12} {'E mean':>8} {'E std':>8} {'F rmse':>8} {'S rmse':>8} {'valid loss':>10}")
    print(f"{'':>5} | {'':>24} {'':>10} {'':>10} | {'meV/atom':>12} {'meV/at':>8} {'meV/at':>8} "
          f"{'eV/A':>8} {'GPa':>8} {'':>10}")
    for it, te, tf, ts, erm, emean, estd, frm, srm, vl in rows:
        print(f"{it:5d} | {te:24.3e} {tf:10.3e} {ts:10.3e} | {erm:12.4f} {emean:8.4f} {estd:8.4f} "
              f"{frm:8.5f} {srm:8.5f} {vl:10.3e}")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--level", type=int, default=16)
    ap.add_argument("--max-iter", type=int, default=300)
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--data", choices=("emt", "nacl"), default="emt")
    ap.add_argument("--train", type=int, default=200, help="training configurations")
    ap.add_argument("--valid", type=int, default=200, help="validation configurations")
    ap.add_argument("--variants", default="default,ew10,ew100,structures")
    args = ap.parse_args()
    if args.data == "emt":
        train_images, valid_images = emt_set(args.train, args.valid)
    else:
        train_images, valid_images = nacl_set(args.train, seed=0), nacl_set(args.valid, seed=1)
    print(f"level {args.level}, {args.data}: {len(train_images)} training and {len(valid_images)} validation "
          f"configurations of {len(train_images[0])} atoms; loss terms are sums over the training set (eV^2)")
    for name in args.variants.split(","):
        run_variant(name, VARIANTS[name], train_images, valid_images, args.level, args.max_iter, args.every,
                    SPECIES[args.data])
    return 0


if __name__ == "__main__":
    sys.exit(main())
