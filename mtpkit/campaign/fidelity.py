"""Stage 6: fidelity of the MTP against its own labeller, and the speed-up per MD step.

On one structure at one temperature (default: the first structure, the highest
production temperature) two NPT runs with the same settings and velocity seed:

* ``<stage>/mtp/`` — the final MTP through the ``pair_style mtp`` plugin;
* ``<stage>/labeller/`` — the labeller itself (e.g. CHGNet) as an ASE calculator
  through ``fix external`` (:class:`mtpkit.md.engines.ExternalEngine`).

Na diffusivity of each run: (1) a short-run estimate, the slope of the Na MSD
(framework drift removed, averaged over time origins) over lags from 20 % to 60 %
of the run, D = slope / 6; (2) the analysis module's D
(:func:`mtpkit.analysis.transport.analyze_temperature`) when the run is long enough
for it (it fits lags from 1 ps on). Speed: wall time per MD step of each run
(LAMMPS set-up included) and of the longest production run of the same structure.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mtpkit.config import PipelineConfig
from mtpkit.io_utils import atomic_write_json
from mtpkit.seeds import FIDELITY, seed_for

Log = Callable[[str], None]
A2_PER_FS_TO_CM2_PER_S = 0.1  # 1 Å²/fs = 1e-16 cm² / 1e-15 s


def short_run_diffusivity(path: str, species: list[str], temperature: float, frame_fs: float,
                          window: tuple[float, float] = (0.2, 0.6)) -> dict:
    """Na D (cm²/s) from the MSD slope over a lag window given as fractions of the run."""
    from mtpkit.analysis.transport import load_replica

    rep = load_replica(path, "Na", temperature, frame_fs, type_map=species, min_frames=10)
    d = rep.disp - rep.framework_disp[None, :, :]
    n = d.shape[1]
    lags = np.arange(1, n)
    msd = np.array([np.mean(np.sum((d[:, k:] - d[:, :-k]) ** 2, axis=-1)) for k in lags])
    t = lags * rep.frame_interval_fs
    lo, hi = window[0] * t[-1], window[1] * t[-1]
    m = (t >= lo) & (t <= hi)
    if m.sum() < 3:
        raise ValueError(f"{path}: too few frames ({n}) for the MSD fit window")
    A = np.vstack([t[m], np.ones(m.sum())]).T
    coef, _res, *_ = np.linalg.lstsq(A, msd[m], rcond=None)
    slope = float(coef[0])
    resid = msd[m] - A @ coef
    dof = max(1, int(m.sum()) - 2)
    cov = np.linalg.inv(A.T @ A) * float(resid @ resid) / dof
    return {"D": slope / 6.0 * A2_PER_FS_TO_CM2_PER_S,
            "D_fit_err": float(np.sqrt(cov[0, 0])) / 6.0 * A2_PER_FS_TO_CM2_PER_S,
            "fit_window_ps": [lo / 1000.0, hi / 1000.0], "duration_ps": float(t[-1] / 1000.0),
            "n_frames": int(n), "msd_final_A2": float(msd[-1]),
            "t_ps": (t / 1000.0).tolist(), "msd_A2": msd.tolist()}


def _module_diffusivity(path: str, species: list[str], temperature: float, frame_fs: float) -> dict:
    from mtpkit.analysis.transport import analyze_temperature, load_replica
    from mtpkit.errors import UserError

    try:
        rep = load_replica(path, "Na", temperature, frame_fs, type_map=species, min_frames=10)
        res = analyze_temperature([rep])
        return {"D": res.D, "D_err": res.D_err, "fit_window_ps": list(res.fit_window_ps)}
    except (UserError, ValueError) as exc:
        return {"D": None, "reason": str(exc)}


def _plot(runs: dict, stem: Path, T: float, name: str) -> str:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from mtpkit.analysis.plots import save_figure

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, r in runs.items():
        ax.plot(r["short"]["t_ps"], r["short"]["msd_A2"], label=label)
    w = next(iter(runs.values()))["short"]["fit_window_ps"]
    ax.axvspan(w[0], w[1], color="0.9", label="fit window")
    ax.set_xlabel("lag (ps)")
    ax.set_ylabel("Na MSD (Å²)")
    ax.set_title(f"{name}, {T:g} K: MTP vs labeller")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = save_figure(fig, stem, formats=("png",), dpi=130)[0]
    plt.close(fig)
    return path


def run_fidelity(cfg: PipelineConfig, folder: Path, potential: Path, structures_dir: Path,
                 names: list[str], manifest: dict, say: Log) -> dict:
    """Run (or resume) both fidelity runs and compare them; writes ``fidelity.json``."""
    from mtpkit.active_learning.labellers import LabellerSpec, make_calculator
    from mtpkit.campaign.structures_stage import md_structure_file
    from mtpkit.md.engines import ExternalEngine, PluginEngine
    from mtpkit.md.run import MDSettings, run_md

    fc, pr = cfg.fidelity, cfg.production
    name = fc.structure or names[0]
    T = float(fc.temperature or max(pr.temperatures))
    steps = int(fc.steps)
    frame_fs = float(pr.timestep) * int(fc.dump_every)
    settings = dict(ensemble="npt", temperature=T, steps=steps, timestep=float(pr.timestep),
                    pressure=float(pr.pressure), barostat=pr.barostat,
                    seed=seed_for(cfg.campaign.seed, FIDELITY), dump_every=int(fc.dump_every),
                    thermo_every=int(fc.dump_every), restart_every=max(1, steps // 4))
    structure = md_structure_file(structures_dir, name)  # the production MD structure
    species = cfg.species
    out: dict = {"structure": name, "temperature_K": T, "steps": steps, "timestep_fs": pr.timestep,
                 "labeller": cfg.labeller.kind, "runs": {}}
    engines = {
        "MTP": lambda: PluginEngine(potential),
        "labeller": lambda: ExternalEngine(make_calculator(LabellerSpec.from_table(cfg.labeller))),
    }
    for label, make in engines.items():
        sub = folder / ("mtp" if label == "MTP" else "labeller")
        say(f"fidelity: {label} MD of {name} at {T:g} K, {steps} steps")
        res = run_md(structure, make(), species, MDSettings(**settings), sub,
                     progress=lambda d, n, lab=label: say(f"fidelity: {lab} {d}/{n} steps"))
        entry = {"status": res.status, "steps_done": res.steps_done, "wall_s": res.wall_time,
                 "s_per_step": res.wall_time / max(1, res.steps_done), "message": res.message}
        if res.status == "done":
            traj = str(sub / "traj.dump")
            entry["short"] = short_run_diffusivity(traj, species, T, frame_fs)
            entry["analysis_module"] = _module_diffusivity(traj, species, T, frame_fs)
        out["runs"][label] = entry
    prod = [(rid, e) for rid, e in manifest["runs"].items()
            if rid.split("/")[0] == name and e.get("status") == "done" and e.get("steps_done")]
    if prod:
        rid, e = max(prod, key=lambda x: x[1]["steps_done"])
        out["production_s_per_step"] = {"run": rid, "s_per_step": e["wall_time"] / e["steps_done"],
                                        "steps": e["steps_done"]}
    mtp, lab = out["runs"].get("MTP", {}), out["runs"].get("labeller", {})
    if "short" in mtp and "short" in lab:
        dm, dl = mtp["short"]["D"], lab["short"]["D"]
        out["D_ratio_short"] = dm / dl if dl > 0 else None
        am, al_ = mtp["analysis_module"].get("D"), lab["analysis_module"].get("D")
        out["D_ratio_analysis_module"] = am / al_ if am and al_ and al_ > 0 else None
        out["speedup_per_step_same_length"] = lab["s_per_step"] / mtp["s_per_step"]
        if "production_s_per_step" in out:
            out["speedup_per_step_production"] = lab["s_per_step"] / out["production_s_per_step"]["s_per_step"]
        out["plot"] = str(Path(_plot({k: v for k, v in out["runs"].items()}, folder / "msd_fidelity", T, name)
                               ).relative_to(folder))
        say(f"fidelity: D(MTP)/D(labeller) = {out['D_ratio_short']:.3g} (short-run MSD slope); "
            f"labeller {lab['s_per_step']:.3g} s/step vs MTP {mtp['s_per_step']:.3g} s/step")
    atomic_write_json(folder / "fidelity.json", out)
    return out


def load_fidelity(folder: Path) -> dict:
    return json.loads((folder / "fidelity.json").read_text())
