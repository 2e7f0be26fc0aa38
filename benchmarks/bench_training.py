"""Training quality and cost: mtpkit's fit against MLIP-2's on the same data.

motep's sdist ships MLIP-2 potentials trained (``mlp train``) on an EMT
Cu/Ag/Au molecular-dynamics set of 1001 configurations (27 atoms each,
levels 02..10). This script fits the same MLIP template with mtpkit on every
``--step``-th configuration, then evaluates both potentials on all 1001
configurations and prints their errors side by side (ratio = mtpkit / MLIP),
for the variable-projection and the joint L-BFGS schemes.

    python benchmarks/bench_training.py [--level 06] [--step 5] [--max-iter 500]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _motep_data() -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from fetch_test_data import motep_sdist_dir

    root = motep_sdist_dir()
    if root is None:
        sys.exit("could not fetch motep's sdist with pip")
    return root / "tests" / "data_path"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--level", default="06", help="MLIP template level folder (02..10)")
    ap.add_argument("--step", type=int, default=5, help="train on every STEP-th configuration")
    ap.add_argument("--max-iter", type=int, default=500)
    ap.add_argument("--methods", default="varpro,joint")
    args = ap.parse_args()

    from mtpkit.potentials import core
    from mtpkit.potentials.cfg import read_cfg
    from mtpkit.potentials.labels import extract_labels, predict
    from mtpkit.potentials.metrics import error_metrics
    from mtpkit.potentials.mtp_io import read_mtp
    from mtpkit.potentials.training import train

    data = _motep_data()
    base = data / "fitting" / "crystals" / "multi" / args.level
    images = read_cfg(data / "original" / "crystals" / "multi" / "training.cfg")
    train_images = images[:: args.step]
    types = [a.arrays["mtp_type"] for a in images]
    labels = extract_labels(images)
    mlip = error_metrics(predict(read_mtp(base / "pot.mtp"), images, types), labels)

    print(f"level {args.level}: mtpkit trained on {len(train_images)} configurations "
          f"(every {args.step}th), {args.max_iter} L-BFGS iterations; MLIP-2 trained on all "
          f"{len(images)}; errors on all {len(images)} configurations; "
          f"{core.max_threads()} OpenMP threads")
    keys = [("energy_rmse_mev_per_atom", "E RMSE meV/atom"), ("force_rmse", "F RMSE eV/A"),
            ("force_mae", "F MAE eV/A"), ("stress_rmse_gpa", "S RMSE GPa")]
    for method in args.methods.split(","):
        t0 = time.perf_counter()
        r = train(train_images, read_mtp(base / "initial.mtp"), method=method,
                  max_iter=args.max_iter, print_every=0, log=None)
        dt = time.perf_counter() - t0
        ours = error_metrics(predict(r.mtp, images, types), labels)
        print(f"\n[{method}] {r.iterations} iterations, {r.n_evaluations} loss evaluations, "
              f"{dt:.1f} s ({1e3 * dt / max(r.n_evaluations, 1):.1f} ms per evaluation, "
              f"{int(r.train_labels.natoms.sum())} atoms); stop: {r.stop_reason}")
        print(f"  {'quantity':<18}{'mtpkit':>12}{'MLIP-2':>12}{'ratio':>9}")
        for key, name in keys:
            print(f"  {name:<18}{ours[key]:>12.5g}{mlip[key]:>12.5g}{ours[key] / mlip[key]:>9.3f}")


if __name__ == "__main__":
    main()
