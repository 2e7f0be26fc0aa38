"""Tile-cut against box labels for the production-size rung, side by side (read tile.toml's header).

For each campaign folder (``tile``, ``box``) under the given root this reads what its active learning
did (iterations and labels in the 37-atom cell phase and in the 296-atom box rung, labelled atoms,
whether the box rung became reliable), then runs production-like NPT MD in the 296-atom box with
three potentials: the cell phase's last one (shared by both campaigns, the same seed) and each
campaign's final one. Every potential gets the same replicas (seeds) at the same temperature, with
the extrapolation grade watched but never stopping a run; the script prints each run's largest grade
and the time each run spends above γ = 5. Frames from all of these runs, labelled by the campaigns'
labeller (CHGNet here), are the common held-out set on which each potential's energy and force
errors are printed.

Usage: ``python benchmarks/tile_cut/compare.py runs/tile_cut [--replicas 3] [--steps 25000]
[--temperature 500] [--heldout-per-run 2]``. Units: K, fs, ps, meV/atom, eV/Å.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

CAMPAIGNS = ("tile", "box")


def machine() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            check=False, cwd=Path(__file__).parent).stdout.strip()
    return f"{cpu}; python {platform.python_version()}; commit {commit}"


def learning_summary(folder: Path) -> dict:
    """Iterations, labels and reliability of the cell phase and the box rung of one campaign."""
    from mtpkit.active_learning.store import LabelStore

    al = folder / "03_active_learning"
    state = json.loads((al / "state.json").read_text())
    reports = [json.loads(p.read_text()) for p in sorted(al.glob("iter_*/report.json"))]
    box = [r for r in reports if r["md_size"]]
    first_box = box[0]["iteration"] if box else None
    rows = list(LabelStore(folder / "labels.db").rows(status="ok"))
    n_box = [r for r in rows if "-md/" in str(r.keys.get("source", ""))]
    return {
        "iterations": len(reports) - 1, "box_iterations": len(box), "first_box_iteration": first_box,
        "box_reliable": bool(box and box[-1]["converged"]), "last_box_max_gamma": box[-1]["max_gamma"] if box else None,
        "labels": len(rows), "box_rung_labels": len(n_box),
        "box_rung_atoms": int(sum(len(r.atoms) for r in n_box)), "stop_reason": state["stop_reason"],
        "final": al / state["final_potential"],
        "cell_final": _last_fit_before(al, first_box) if first_box is not None else al / state["final_potential"],
    }


def _last_fit_before(al: Path, k: int) -> Path:
    for j in range(k - 1, -1, -1):
        if (al / f"iter_{j:03d}" / "fit.json").is_file():
            return al / f"iter_{j:03d}"
    raise SystemExit(f"{al}: no fit before iteration {k}")


def production_check(potential: Path, box: Path, species: list[str], out: Path, replicas: int, steps: int,
                     temperature: float) -> list[dict]:
    """NPT (tri) MD of ``replicas`` seeds in ``box``; grades every 5 steps, no run stopped."""
    from mtpkit.active_learning.explore import ExploreSettings, explore_lammps

    s = ExploreSettings(steps, 2.0, "npt", 0.0, "tri", 0.02, 5, 5.0, 1e12)
    jobs = [(f"r{r}", "box", box, temperature, 1000 + r, True) for r in range(replicas)]
    records, frames = explore_lammps(jobs, potential / "pot.almtp", species, s, out, workers=1, scheduler=None,
                                     log=lambda m: None)
    return [{"run": rec.run, "status": rec.status, "time_ps": rec.time_ps, "max_gamma": rec.max_gamma,
             "ps_above_5": len(f) * s.grade_every * s.timestep / 1000.0, "folder": str(out / rec.run),
             "message": rec.message}
            for rec, f in zip(records, frames, strict=True)]


def failure(run: dict) -> str:
    """Where a failed run stopped: the MD step of a blow-up, or LAMMPS's own words (a failed run's
    thermo and time stop at its last checkpoint, step 0 here, so the step comes from the message)."""
    msg = run.get("message") or json.loads((Path(run["folder"]) / "state.json").read_text()).get("message", "")
    step = re.search(r"at step (\d+)", msg)
    if step:
        return f"blow-up at {int(step.group(1)) * 2e-3:g} ps"
    return msg.split("ERROR:")[-1].split("\n")[0].strip() or "failed"


def heldout_frames(folders: list[str], species: list[str], per_run: int) -> list:
    """``per_run`` frames from the second half of each run's trajectory (no calculator); give only
    runs that finished, so that no frame comes from a trajectory on its way to a blow-up."""
    from ase.io import read

    frames = []
    for f in folders:
        traj = read(Path(f) / "traj.dump", index=":", format="lammps-dump-text", specorder=species)
        half = traj[len(traj) // 2:]
        for a in [half[int(i)] for i in np.linspace(0, len(half) - 1, per_run).round()]:
            a.calc = None
            a.wrap()
            frames.append(a)
    return frames


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--steps", type=int, default=25000, help="MD steps of 2 fs per run (25000: 50 ps)")
    ap.add_argument("--temperature", type=float, default=500.0)
    ap.add_argument("--heldout-per-run", type=int, default=2)
    args = ap.parse_args()

    from ase.io import read

    from mtpkit.active_learning.labellers import LabellerSpec, make_calculator
    from mtpkit.config import load_config
    from mtpkit.potentials.labels import extract_labels, predict
    from mtpkit.potentials.metrics import error_metrics
    from mtpkit.potentials.mtp_io import read_mtp
    from mtpkit.potentials.species import atom_types

    print(f"machine: {machine()}")
    here = Path(__file__).parent
    cfg = load_config(here / "tile.toml", scale="tiny")
    species = list(cfg.species)
    summaries = {c: learning_summary(args.root / c) for c in CAMPAIGNS}
    for c, s in summaries.items():
        print(f"{c}: {s['iterations']} iterations ({s['box_iterations']} in the box rung from iteration "
              f"{s['first_box_iteration']}), box rung reliable: {s['box_reliable']} (last max γ "
              f"{s['last_box_max_gamma']}); labels {s['labels']}, of them {s['box_rung_labels']} from the box rung "
              f"({s['box_rung_atoms']} atoms); {s['stop_reason']}")
    a, b = (read_mtp(summaries[c]["cell_final"] / "pot.almtp") for c in CAMPAIGNS)
    same_cell_phase = np.array_equal(a.moment_coeffs, b.moment_coeffs)
    print(f"cell phases identical (same potential before the box rung): {same_cell_phase}")
    potentials = {"cells only": summaries["tile"]["cell_final"], "tile rung": summaries["tile"]["final"],
                  "box rung": summaries["box"]["final"]}
    box = next((args.root / "tile" / "01_relax").glob("*_md.extxyz"))
    print(f"\nproduction check: {args.replicas} x {args.steps * 2e-3:g} ps NPT at {args.temperature:g} K in "
          f"{box.name} ({len(read(box))} atoms); max γ per run; ps with γ > 5 per run")
    result_path = args.root / "compare.json"
    # a finished check is kept (its MD is deterministic and costs minutes per run): delete compare.json to redo it
    checks = json.loads(result_path.read_text()).get("production_check", {}) if result_path.is_file() else {}
    for name, pot in potentials.items():
        out = args.root / "compare" / name.replace(" ", "_")
        if len(checks.get(name, [])) != args.replicas:
            checks[name] = production_check(pot, box, species, out, args.replicas, args.steps, args.temperature)
        runs = checks[name]
        print(f"  {name:<11} max γ " + ", ".join(f"{r['max_gamma']:.3g}" for r in runs)
              + "; ps above 5: " + ", ".join(f"{r['ps_above_5']:.2f}" for r in runs)
              + f"; runs with max γ > 5: {sum(r['max_gamma'] > 5 for r in runs)} of {len(runs)}; "
              + "; ".join(f"{r['run']} {failure(r)}" for r in runs if r["status"] == "failed"))

    finished = [r["folder"] for runs in checks.values() for r in runs if r["status"] == "done"]
    frames = heldout_frames(finished, species, args.heldout_per_run)
    calc = make_calculator(LabellerSpec.from_table(cfg.labeller))
    from ase.calculators.singlepoint import SinglePointCalculator

    for fr in frames:
        fr.calc = calc
        e, f = fr.get_potential_energy(), fr.get_forces()
        fr.calc = SinglePointCalculator(fr, energy=e, forces=f)
    labels = extract_labels(frames)
    print(f"\nheld-out: {len(frames)} box frames from the {len(finished)} runs above that finished, labelled by "
          f"{cfg.labeller.kind}")
    result = {"machine": machine(), "learning": {c: {k: str(v) if isinstance(v, Path) else v for k, v in s.items()}
                                                 for c, s in summaries.items()},
              "production_check": checks, "heldout": {}}
    for name, pot in potentials.items():
        mtp = read_mtp(pot / "pot.almtp")
        types = [atom_types(fr, species, mtp.species_count, "held-out frame") for fr in frames]
        pred = predict(mtp, frames, types)
        m = error_metrics(pred, labels)
        n = np.array([len(fr) for fr in frames], float)
        de = (np.asarray(pred.energy) - np.asarray(labels.energy)) / n
        m["energy_rmse_mev_per_atom_offset_removed"] = float(1000 * np.sqrt(np.mean((de - de.mean()) ** 2)))
        result["heldout"][name] = m
        print(f"  {name:<11} E RMSE {m['energy_rmse_mev_per_atom']:.2f} meV/atom "
              f"({m['energy_rmse_mev_per_atom_offset_removed']:.2f} after removing the mean offset), "
              f"F RMSE {m['force_rmse']:.3f} eV/Å, F max {m['force_max']:.2f} eV/Å")
    result_path.write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {result_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
