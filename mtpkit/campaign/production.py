"""Stage 4: the production NPT sweep (structures × temperatures × replicas) with the final MTP.

Runs through :func:`mtpkit.md.sweep.run_sweep` (local processes or Dask), one folder
per run ``<stage>/<structure>/T<T>K/r<replica>/`` with the unwrapped-coordinate dump
``traj.dump``; ``manifest.json`` lists every run. Finished runs are never redone and
unfinished ones resume from their last checkpoint.

The runs are watched, never stopped, by the extrapolation grade: ``pair_style mtp``
grades every ``thermo_every`` steps (cheap at that interval), ``thermo.dat`` gets the
``max_gamma`` column, configurations above ``active_learning.gamma_break`` are saved to
``extrapolative.extxyz``, and ``gamma.json`` lists each run's largest grade, so the
report says whether production stayed where the potential was trained.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mtpkit.config import PipelineConfig
from mtpkit.errors import UserError
from mtpkit.seeds import PRODUCTION, seed_for

Log = Callable[[str], None]


def production_runs(cfg: PipelineConfig, folder: Path, potential: Path, structures_dir: Path,
                    names: list[str]) -> list:
    """The :class:`mtpkit.md.sweep.RunSpec` list of the production sweep."""
    from mtpkit.campaign.structures_stage import md_structure_file
    from mtpkit.md.sweep import RunSpec

    pr = cfg.production
    md = {"ensemble": "npt", "timestep": float(pr.timestep), "steps": int(pr.steps),
          "pressure": float(pr.pressure), "barostat": pr.barostat,
          "dump_every": int(pr.dump_every), "thermo_every": int(pr.thermo_every),
          "restart_every": int(pr.restart_every)}
    seed = int(cfg.campaign.seed)
    batched = ({"device": pr.device, "dtype": pr.dtype, "batch_size": pr.batch_size}
               if pr.engine == "torch-sim" else {})
    watch = None
    if _has_active_set(potential):
        watch = {"every": int(pr.thermo_every),
                 "select_threshold": float(cfg.active_learning.gamma_break),
                 "break_threshold": NO_BREAK, "save": "extrapolative.extxyz"}
    chosen = set(pr.structures) or set(names)
    if missing := sorted(chosen - set(names)):
        raise UserError(f"production.structures: {', '.join(missing)} not among the campaign's structures "
                        f"({', '.join(names)})")
    runs = []
    for i_s, name in enumerate(names):  # i_s over every structure: seeds do not depend on the choice
        if name not in chosen:
            continue
        for i_t, T in enumerate(pr.temperatures):
            for r in range(int(pr.replicas)):
                run_id = f"{name}/T{float(T):g}K/r{r}"
                runs.append(RunSpec(run_id=run_id, structure=str(md_structure_file(structures_dir, name)),
                                    temperature=float(T), replica=r,
                                    seed=seed_for(seed, PRODUCTION, i_s, i_t, r),
                                    folder=str(folder / run_id), potential=str(potential),
                                    species=cfg.species, engine=pr.engine, md=md,
                                    extrapolation=watch, **batched))
    return runs


#: break threshold of the production watch: never reached, the runs are only watched
NO_BREAK = 1.0e12


def _has_active_set(potential: Path) -> bool:
    from mtpkit.potentials.mtp_io import read_mtp

    return getattr(read_mtp(potential), "active_set", None) is not None


def run_production(cfg: PipelineConfig, folder: Path, potential: Path, structures_dir: Path,
                   names: list[str], say: Log) -> dict:
    """Run (or resume) the production sweep; returns the sweep manifest."""
    from mtpkit.md.sweep import SweepSpec, run_sweep

    runs = production_runs(cfg, folder, potential, structures_dir, names)
    pr = cfg.production
    produced = sorted({r.run_id.split("/")[0] for r in runs})
    say(f"production: {len(produced)} structure(s) ({', '.join(produced)}) × {len(pr.temperatures)} temperatures × "
        f"{pr.replicas} replica(s), {pr.steps} steps of {pr.timestep:g} fs "
        f"({pr.steps * pr.timestep / 1000:g} ps) each")
    spec = SweepSpec(source=folder / "sweep", output=folder, runs=runs,
                     workers=int(cfg.campaign.workers),
                     scheduler=cfg.campaign.scheduler or None)
    manifest = run_sweep(spec, progress=lambda m: say(f"production: {m}"))
    failed = [k for k, v in manifest["runs"].items() if v.get("status") != "done"]
    if failed:
        say(f"production: {len(failed)} run(s) did not finish: {', '.join(failed)}")
    from mtpkit.io_utils import atomic_write_json
    from mtpkit.md.run import read_result

    grades = {}
    for run in runs:
        if run.extrapolation is None:
            continue
        res = read_result(Path(run.folder))
        if res is None:
            continue
        grades[run.run_id] = {"max_gamma": res.max_gamma, "n_above_break": len(res.saved_configurations),
                              "every": run.extrapolation["every"],
                              "gamma_break": run.extrapolation["select_threshold"]}
    atomic_write_json(folder / "gamma.json", grades)
    if grades:
        say("production: max γ " + ", ".join(f"{k}: {v['max_gamma']:.3g}" for k, v in grades.items()))
    return manifest
