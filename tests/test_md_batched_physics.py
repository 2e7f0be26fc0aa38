"""Physics check of the batched torch-sim engine against the LAMMPS plugin (issue 14 item 4; slow).

Same potential (tests/data/nyzc75_ionic_l08.mtp: level-8 MTP of the ionic test model,
tests/make_ionic_mtp.py), same box (the 37-atom NYZC75 P2_1/n cell repeated 1×2×2, 148
atoms, monoclinic), same NPT settings (``tri`` cell, 0 GPa, ``tdamp`` 100 fs, ``pdamp``
1000 fs, 2 fs steps) and several replicas per engine, one temperature; the LAMMPS runs use
``fix npt`` (Nosé–Hoover chains, MTK barostat), the torch-sim runs CSVR + stochastic cell
rescaling (mtpkit.md.batched). Compared: the mean volume (after the first 20 % of each
run; agree within 0.5 %) and the Na diffusivity from ``mtpkit conductivity`` (agree within
twice their combined standard error).

    python tests/test_md_batched_physics.py [work_dir]   # prints the comparison (RESULTS.md)
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
POTENTIAL = HERE / "data" / "nyzc75_ionic_l08.mtp"
SPECIES = ["Na", "Y", "Zr", "Cl"]

TEMPERATURE = 800.0
REPLICAS = 4
STEPS = 15000          # 30 ps at 2 fs
EQUILIBRATION = 10000  # 20 ps of LAMMPS NPT before both
REPEAT = (1, 2, 2)     # 148 atoms

TOML = """
[potential]
file = "{pot}"
species = ["Na", "Y", "Zr", "Cl"]
engine = "{engine}"

[md]
ensemble = "npt"
barostat = "tri"
pressure = 0.0
timestep = 2.0
tdamp = 100.0
pdamp = 1000.0
steps = {steps}
thermo_every = 50
dump_every = 50
restart_every = {restart}
min_dist = 1.5

[sweep]
structures = ["structures/nyzc.extxyz"]
temperatures = [{temperature}]
replicas = {replicas}
seed = {seed}
output = "runs"
workers = 2
"""


def mean_volume(runs: Path, skip: float = 0.2) -> tuple[float, float, list[float]]:
    """Mean volume over the replicas (each after its first ``skip``), its standard error and
    the per-replica means."""
    per = []
    for thermo in sorted(runs.rglob("thermo.dat")):
        data = np.loadtxt(thermo, ndmin=2)
        per.append(float(data[int(len(data) * skip):, 7].mean()))
    return float(np.mean(per)), float(np.std(per, ddof=1) / math.sqrt(len(per))), per


def equilibrated(work: Path, temperature: float, steps: int = EQUILIBRATION, repeat=REPEAT) -> Path:
    """The box after ``steps`` of LAMMPS NPT at ``temperature`` from the CHGNet-relaxed cell
    (the ionic model's host expands by ~40 % on heating; both engines start after that)."""
    from ase.io import read, write

    from mtpkit.analysis.trajectory import open_trajectory
    from mtpkit.md.engines import PluginEngine
    from mtpkit.md.run import MDSettings, run_md

    out = work / "equilibrated.extxyz"
    if out.is_file():
        return out
    atoms = read(HERE / "data" / "NYZC75_P21n_37atoms_CHGNet-relaxed.cif").repeat(repeat)
    folder = work / "equilibration"
    res = run_md(atoms, PluginEngine(POTENTIAL), SPECIES,
                 MDSettings(ensemble="npt", barostat="tri", temperature=temperature, steps=steps, timestep=2.0,
                            tdamp=100.0, pdamp=1000.0, thermo_every=100, dump_every=steps,
                            restart_every=steps, seed=3, min_dist=1.5), folder)
    assert res.status == "done", res.message
    traj = open_trajectory(folder / "traj.dump", type_map=SPECIES)
    last = next(iter(traj.frames(traj.n_frames - 1)))
    atoms = atoms.copy()
    atoms.set_cell(last.cell, scale_atoms=False)
    atoms.positions = last.positions
    atoms.wrap()
    write(out, atoms)
    return out


def run_engine(work: Path, engine: str, temperature: float, replicas: int, steps: int, seed: int) -> dict:
    from mtpkit.cli import main
    from mtpkit.md.sweep import load_sweep, run_sweep

    folder = work / engine
    (folder / "structures").mkdir(parents=True, exist_ok=True)
    shutil.copy(equilibrated(work, temperature), folder / "structures" / "nyzc.extxyz")
    (folder / "sweep.toml").write_text(TOML.format(pot=POTENTIAL, engine=engine, steps=steps,
                                                   restart=min(steps, 2500), temperature=temperature,
                                                   replicas=replicas, seed=seed))
    t0 = time.perf_counter()
    manifest = run_sweep(load_sweep(folder / "sweep.toml"), progress=lambda m: print(f"{engine}: {m}", flush=True))
    wall = time.perf_counter() - t0
    status = {k: v["status"] for k, v in manifest["runs"].items()}
    assert all(s == "done" for s in status.values()), status
    assert main(["conductivity", str(folder / "runs"), "--species", "Na", "--no-plots", "--workers", "1"]) == 0
    doc = json.loads((folder / "runs" / "conductivity" / "results.json").read_text())
    t = doc["temperatures"][0]
    vol, vol_err, per = mean_volume(folder / "runs")
    temps = [float(np.loadtxt(p, ndmin=2)[:, 2].mean()) for p in sorted((folder / "runs").rglob("thermo.dat"))]
    return {"engine": engine, "D": t["D"], "D_err": t["D_err"], "D_err_source": t.get("D_err_source"),
            "replica_D": [r.get("D") for r in t["replicas"]], "fit_window_ps": t.get("fit_window_ps"),
            "host": sorted({h.get("state", "") for h in t.get("host", [])}),
            "measured_T": float(np.mean(temps)), "volume": vol, "volume_err": vol_err,
            "replica_volume": per, "wall_s": wall, "steps": steps, "replicas": replicas}


def compare(work: Path, temperature: float = TEMPERATURE, replicas: int = REPLICAS,
            steps: int = STEPS, engines=("plugin", "torch-sim")) -> dict:
    runs = {e: run_engine(work, e, temperature, replicas, steps, seed=11 + k) for k, e in enumerate(engines)}
    if len(runs) == 1:
        return runs
    lammps, batched = runs["plugin"], runs["torch-sim"]
    dv = (batched["volume"] - lammps["volume"]) / lammps["volume"]
    dd = batched["D"] - lammps["D"]
    sigma = math.hypot(batched["D_err"], lammps["D_err"])
    return {"lammps": lammps, "torch-sim": batched, "volume_rel_diff": dv, "D_diff": dd,
            "D_diff_sigma": dd / sigma if sigma > 0 else math.inf, "temperature": temperature,
            "replicas": replicas, "steps": steps}


@pytest.mark.slow
def test_batched_engine_matches_lammps_volume_and_na_diffusivity(tmp_path):
    r = compare(tmp_path)
    assert abs(r["volume_rel_diff"]) < 0.005, r
    assert abs(r["D_diff_sigma"]) < 2.0, r


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="engine comparison (see the module docstring)")
    ap.add_argument("work", nargs="?", default="physics_check")
    ap.add_argument("--temperature", type=float, default=TEMPERATURE)
    ap.add_argument("--replicas", type=int, default=REPLICAS)
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--engines", nargs="+", default=["plugin", "torch-sim"])
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    r = compare(work, args.temperature, args.replicas, args.steps, tuple(args.engines))
    if len(args.engines) == 1:
        print(json.dumps(r, indent=1))
        return
    (work / "comparison.json").write_text(json.dumps(r, indent=1))
    print(json.dumps(r, indent=1))
    for name in ("lammps", "torch-sim"):
        e = r[name]
        print(f"| {name} | {e['volume']:.1f} ± {e['volume_err']:.1f} | {e['D']:.4g} ± {e['D_err']:.2g} | "
              f"{e['wall_s']:.0f} |")
    print(f"volume difference {100 * r['volume_rel_diff']:+.3f} %, D difference {r['D_diff_sigma']:+.2f} σ")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
