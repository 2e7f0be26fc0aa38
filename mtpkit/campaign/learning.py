"""Stages 2–3: fit the first MTP on the starting set, then active learning over an
exploration temperature ladder.

Iteration 0 fits a fresh template (``[potential]``) to the labelled starting set.
Each later iteration, at the current ladder temperature ``T``:

1. **explore** — ``runs_per_structure`` NPT MD runs per structure (different seeds) with the ``pair_style mtp`` plugin
   and extrapolation control (grades every ``grade_every`` steps; configurations
   with max γ > ``gamma_select`` are saved, the run stops at γ > ``gamma_break``),
   through :func:`mtpkit.md.sweep.run_sweep`;
2. **converged?** — every run finished its ``steps`` with max γ < ``gamma_stop``:
   move up the ladder (done after the last temperature);
3. otherwise **select** a D-optimal subset (at most ``labels_per_iteration``) of the
   saved configurations against the current active set
   (:func:`mtpkit.active_learning.selection.select_add`), **label** it, add it to the
   training set and **refit** from the previous potential (warm start); the active
   set is rebuilt over the whole training set (neighbourhood mode, MLIP-3 basis)
   and stored with the potential in ``pot.almtp``.

With ``md_size_rung`` (and production MD in larger structures than the learning ones,
``structures.learn_size``) the ladder ends with one more rung at the highest production
temperature in the production-MD structures: a 296-atom box samples rarer local
environments per ps than its 37-atom cell, so the potential is made reliable there too.

Everything lives in ``<stage>/``: ``training.extxyz`` (all labels), ``iter_NNN/``
(``pot.almtp``, ``train.json/.md/.png`` with the errors and parity plot,
``explore/`` runs, ``candidates.extxyz``, ``selection.json``, ``labels.extxyz``,
``record.json``) and ``history.json``. Each phase's output is checked before it is
redone, so an interrupted campaign resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mtpkit.campaign.config import CampaignConfig
from mtpkit.campaign.labelling import label_configurations, read_store, spec_from_config, write_store
from mtpkit.campaign.structures_stage import md_file_name, md_structure_file
from mtpkit.io_utils import atomic_write_json

Log = Callable[[str], None]
POTENTIAL = "pot.almtp"


def _train_config(cfg: CampaignConfig):
    from mtpkit.potentials.train_config import TrainConfig

    settings = {"seed": cfg["campaign"]["seed"], "print_every": 0, **cfg["potential"]["training"]}
    return TrainConfig(**settings)


def fit_potential(images: list, init, cfg: CampaignConfig, folder: Path, say: Log) -> dict:
    """Fit, attach an active set, write ``folder/pot.almtp`` and the training report.

    ``init``: an MTP (warm start) or ``None`` (fresh template from ``[potential]``).
    Returns the error metrics ``{"train": {...}, "validation": {...} | None}``.
    """
    from mtpkit.active_learning.active_set import to_mlip
    from mtpkit.active_learning.selection import active_set_for
    from mtpkit.potentials.mtp_io import write_mtp
    from mtpkit.potentials.templates import make_template
    from mtpkit.potentials.training import train

    species = cfg.species
    pot = cfg["potential"]
    if init is None:
        init = make_template(pot["level"], len(species), radial_basis_size=pot["radial_basis_size"],
                             min_dist=pot["min_dist"], max_dist=pot["max_dist"])
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "train.log"
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        result = train(images, init, species=species, config=_train_config(cfg),
                       log=lambda m: print(m, file=log, flush=True))
    result.write_report(folder / "train")
    mtp = result.mtp
    mtp.active_set = None
    aset = active_set_for(mtp, species, train_images=images, mode="neighborhood")
    mtp.active_set = to_mlip(aset, species)
    write_mtp(folder / POTENTIAL, mtp)
    m = result.train_metrics
    say(f"fit: {len(images)} configurations, level {pot['level']}, {mtp.n_params} parameters, "
        f"{result.iterations} L-BFGS iterations ({result.stop_reason}) in {time.perf_counter() - t0:.1f} s; "
        f"train RMSE E {m['energy_rmse_mev_per_atom']:.2f} meV/atom, F {m['force_rmse']:.3f} eV/Å")
    return {"train": result.train_metrics, "validation": result.valid_metrics,
            "iterations": result.iterations, "stop_reason": result.stop_reason,
            "n_params": mtp.n_params, "fit_wall_s": time.perf_counter() - t0}


def _load_potential(path: Path, species: list[str]):
    """(MTP, our ActiveSet) from an ``.almtp`` written by :func:`fit_potential`."""
    from mtpkit.active_learning.selection import active_set_for
    from mtpkit.potentials.mtp_io import read_mtp

    mtp = read_mtp(path)
    return mtp, active_set_for(mtp, species, source=str(path))


def _max_gamma(folder: Path) -> float:
    """Largest grade seen in a run: thermo ``max_gamma`` column and saved configurations."""
    best = 0.0
    thermo = folder / "thermo.dat"
    if thermo.is_file():
        header = thermo.open().readline().lstrip("#").split()
        if header and header[-1] == "max_gamma":
            try:
                data = np.loadtxt(thermo, comments="#", ndmin=2)
                if data.size:
                    best = max(best, float(np.nanmax(data[:, -1])))
            except ValueError:
                pass
    for atoms in _saved(folder):
        best = max(best, float(atoms.info.get("max_gamma", 0.0)))
    return best


def _saved(folder: Path) -> list:
    from ase.io import read

    path = folder / "extrapolative.extxyz"
    if not path.is_file() or path.stat().st_size == 0:
        return []
    try:
        return list(read(path, index=":", format="extxyz"))
    except Exception:  # noqa: BLE001  # a frame cut short by a kill: keep what parses (ASE raises many types)
        out = []
        try:
            from ase.io import iread

            for a in iread(path, format="extxyz"):
                out.append(a)
        except Exception:  # noqa: BLE001  # stop at the first unparsable frame
            pass
        return out


def _explore(cfg: CampaignConfig, it_dir: Path, pot_path: Path, structures_dir: Path,
             names: list[str], T: float, iteration: int, say: Log, md_size: bool = False) -> list[dict]:
    from mtpkit.md.sweep import RunSpec, SweepSpec, run_sweep

    al = cfg["active_learning"]
    out_dir = it_dir / "explore"
    md = {"ensemble": "npt", "timestep": float(al["timestep"]), "steps": int(al["steps"]),
          "pressure": float(al["pressure"]), "barostat": cfg["production"]["barostat"],
          "thermo_every": max(1, int(al["grade_every"])), "dump_every": max(1, al["steps"] // 20),
          "restart_every": int(al["steps"])}
    extra = {"every": int(al["grade_every"]), "select_threshold": float(al["gamma_select"]),
             "break_threshold": float(al["gamma_break"]), "save": "extrapolative.extxyz"}
    runs = []
    for i, name in enumerate(names):
        for r in range(int(al["runs_per_structure"])):
            run_id = f"{name}/T{T:g}K{'-md' if md_size else ''}/r{r}"
            structure = md_structure_file(structures_dir, name) if md_size else structures_dir / f"{name}.extxyz"
            runs.append(RunSpec(run_id=run_id, structure=str(structure),
                                temperature=float(T), replica=r,
                                seed=int(cfg["campaign"]["seed"]) + 7919 * iteration + 31 * i + 1 + 7 * r,
                                folder=str(out_dir / run_id), potential=str(pot_path),
                                species=cfg.species, engine="plugin", md=md, extrapolation=extra))
    spec = SweepSpec(source=it_dir / "explore.toml", output=out_dir, runs=runs,
                     workers=int(cfg["campaign"]["workers"]),
                     scheduler=cfg["campaign"]["scheduler"] or None)
    manifest = run_sweep(spec, progress=lambda m: say(f"AL iteration {iteration} explore: {m}"))
    records = []
    for run in runs:
        entry = manifest["runs"].get(run.run_id, {})
        folder = Path(run.folder)
        records.append({"structure": run.run_id.split("/")[0], "run": run.run_id, "temperature_K": T,
                        "md_size": md_size,
                        "status": entry.get("status", "missing"),
                        "steps_done": entry.get("steps_done", 0), "steps": run.md["steps"],
                        "time_ps": entry.get("steps_done", 0) * run.md["timestep"] / 1000.0,
                        "max_gamma": _max_gamma(folder), "n_saved": len(_saved(folder)),
                        "message": entry.get("message", ""), "folder": str(folder)})
    return records


def _candidates(records: list[dict], per_run: int, iteration: int) -> list:
    from ase.io import read

    cands = []
    for rec in records:
        folder = Path(rec["folder"])
        frames = _saved(folder)
        if not frames and rec["status"] == "failed" and (folder / "last_good.extxyz").is_file():
            frames = [read(folder / "last_good.extxyz")]
        if len(frames) > per_run:
            keep = np.unique(np.linspace(0, len(frames) - 1, per_run).round().astype(int))
            frames = [frames[k] for k in keep]
        for j, a in enumerate(frames):
            b = a.copy()
            b.calc = None
            for key in list(b.arrays):
                if key not in ("numbers", "positions"):
                    del b.arrays[key]
            b.info = {"label_id": f"it{iteration:03d}-{rec['run'].replace('/', '-')}-{j}",
                      "source": f"AL iteration {iteration}, {rec['structure']} at {rec['temperature_K']:g} K",
                      "grade_at_save": float(a.info.get("max_gamma", float("nan")))}
            cands.append(b)
    return cands


def run_learning(cfg: CampaignConfig, folder: Path, starting: list, structures_dir: Path,
                 names: list[str], say: Log) -> dict:
    """Iteration 0 fit and the active-learning loop; returns the history dict (also on disk)."""
    from ase.io import write

    from mtpkit.active_learning.grades import rows_for
    from mtpkit.active_learning.selection import select_add
    from mtpkit.io_utils import atomic_open

    folder.mkdir(parents=True, exist_ok=True)
    al = cfg["active_learning"]
    species = cfg.species
    spec = spec_from_config(cfg["labeller"])
    hist_path = folder / "history.json"
    history = json.loads(hist_path.read_text()) if hist_path.is_file() else {
        "iterations": [], "t_index": 0, "finished": False, "stop_reason": ""}
    train_path = folder / "training.extxyz"
    training = read_store(train_path) if train_path.is_file() else list(starting)
    if not train_path.is_file():
        write_store(train_path, training)

    def save() -> None:
        atomic_write_json(hist_path, history)

    # iteration 0: the first fit
    it0 = folder / "iter_000"
    if not history["iterations"]:
        t0 = time.perf_counter()
        metrics = fit_potential(training, None, cfg, it0, say)
        history["iterations"].append({
            "iteration": 0, "temperature_K": None, "runs": [], "n_candidates": 0, "n_selected": 0,
            "n_labelled": 0, "n_quarantined": 0, "n_train": len(training), "errors": metrics,
            "max_gamma": None, "converged": None, "parity_plot": str((it0 / "train.png").relative_to(folder)),
            "wall_s": {"fit": time.perf_counter() - t0}})
        save()
    # the ladder in the learning structures, then (md_size_rung) one rung at the highest
    # production temperature in the production-MD structures when those are larger
    rungs = [(float(t), False) for t in al["temperatures"]]
    if al["md_size_rung"] and any((structures_dir / md_file_name(n)).is_file() for n in names):
        rungs.append((float(max(cfg["production"]["temperatures"])), True))

    def rung_name(i: int) -> str:
        T, md = rungs[i]
        return f"{T:g} K" + (" (production MD structures)" if md else "")
    while not history["finished"]:
        k = len(history["iterations"])
        if k > al["max_iterations"]:
            history["finished"] = True
            history["stop_reason"] = (f"max_iterations ({al['max_iterations']}) reached before every "
                                      f"exploration temperature was reliable")
            save()
            break
        T, md_size = rungs[history["t_index"]]
        prev = folder / f"iter_{k - 1:03d}" / POTENTIAL
        it_dir = folder / f"iter_{k:03d}"
        it_dir.mkdir(parents=True, exist_ok=True)
        wall: dict[str, float] = {}
        t0 = time.perf_counter()
        rec_path = it_dir / "explore.json"
        if rec_path.is_file():
            records = json.loads(rec_path.read_text())
        else:
            say(f"AL iteration {k}: exploring at {rung_name(history['t_index'])} ({al['steps']} steps of "
                f"{al['timestep']:g} fs, {len(names)} structure(s))")
            records = _explore(cfg, it_dir, prev, structures_dir, names, T, k, say, md_size=md_size)
            atomic_write_json(rec_path, records)
        wall["explore"] = time.perf_counter() - t0
        max_g = max(r["max_gamma"] for r in records)
        converged = all(r["status"] == "done" and r["max_gamma"] < al["gamma_stop"] for r in records)
        entry = {"iteration": k, "temperature_K": T, "md_size": md_size, "runs": records, "max_gamma": max_g,
                 "converged": converged, "n_candidates": 0, "n_selected": 0, "n_labelled": 0,
                 "n_quarantined": 0, "n_train": len(training), "errors": None, "parity_plot": None,
                 "wall_s": wall}
        say(f"AL iteration {k}: max γ {max_g:.3g}; " + ", ".join(
            f"{r['run']}: {r['status']} after {r['time_ps']:.2f} ps" for r in records))
        if converged:
            history["t_index"] += 1
            if history["t_index"] >= len(rungs):
                history["finished"] = True
                history["stop_reason"] = (f"every exploration run reached {al['steps'] * al['timestep'] / 1000:g} "
                                          f"ps with max γ < {al['gamma_stop']:g} at every temperature")
            # the potential does not change: carry it to the next iteration
            (it_dir / POTENTIAL).write_bytes(prev.read_bytes())
            history["iterations"].append(entry)
            save()
            say(f"AL iteration {k}: reliable at {rung_name(history['t_index'] - 1)}"
                + ("; done" if history["finished"] else f"; next {rung_name(history['t_index'])}"))
            continue
        # select
        t1 = time.perf_counter()
        sel_path = it_dir / "selection.json"
        cand_path = it_dir / "candidates.extxyz"
        if sel_path.is_file() and cand_path.is_file():
            cands = read_store(cand_path)
            sel = json.loads(sel_path.read_text())
        else:
            cands = _candidates(records, al["candidates_per_run"], k)
            with atomic_open(cand_path, "w") as fh:
                if cands:
                    write(fh, cands, format="extxyz")
            sel = {"selected": [], "grades": []}
            if cands:
                mtp, aset = _load_potential(prev, species)
                blocks = rows_for(mtp, aset, cands, species)
                res = select_add(aset, blocks, cands, limit=al["labels_per_iteration"])
                sel = {"selected": [int(i) for i in res.selected],
                       "grades": [float(g) for g in res.grades], "log_det_gain": res.log_det_gain}
            atomic_write_json(sel_path, sel)
        wall["select"] = time.perf_counter() - t1
        entry["n_candidates"] = len(cands)
        entry["n_selected"] = len(sel["selected"])
        if not sel["selected"]:
            history["finished"] = True
            history["stop_reason"] = (f"iteration {k}: exploration at {T:g} K was not reliable but "
                                      "gave no configuration to learn from")
            history["iterations"].append(entry)
            save()
            say(f"AL: stopping, {history['stop_reason']}")
            break
        # label
        t2 = time.perf_counter()
        chosen = [cands[i] for i in sel["selected"]]
        labelled, quarantined = label_configurations(
            spec, chosen, it_dir / "labels.extxyz", it_dir / "quarantine.json",
            workers=int(cfg["campaign"]["workers"]), scheduler=cfg["campaign"]["scheduler"],
            say=say, what=f"AL iteration {k} labels")
        wall["label"] = time.perf_counter() - t2
        have = {str(a.info.get("label_id")) for a in training}
        new = [a for a in labelled if str(a.info["label_id"]) not in have]
        training = training + new
        write_store(train_path, training)
        # refit (warm start)
        t3 = time.perf_counter()
        if (it_dir / POTENTIAL).is_file() and (it_dir / "fit.json").is_file():
            metrics = json.loads((it_dir / "fit.json").read_text())
        else:
            from mtpkit.potentials.mtp_io import read_mtp

            init = read_mtp(prev)
            init.active_set = None
            metrics = fit_potential(training, init, cfg, it_dir, say)
            atomic_write_json(it_dir / "fit.json", metrics)
        wall["fit"] = time.perf_counter() - t3
        entry.update(n_labelled=len(labelled), n_quarantined=len(quarantined), n_train=len(training),
                     errors=metrics, parity_plot=str((it_dir / "train.png").relative_to(folder)))
        history["iterations"].append(entry)
        save()
        say(f"AL iteration {k}: {len(cands)} candidates, {len(sel['selected'])} selected, "
            f"{len(labelled)} labelled ({len(quarantined)} quarantined), training set {len(training)}")
    last = max(it["iteration"] for it in history["iterations"]
               if (folder / f"iter_{it['iteration']:03d}" / POTENTIAL).is_file())
    history["final_potential"] = str((folder / f"iter_{last:03d}" / POTENTIAL).relative_to(folder))
    save()
    return history


def final_potential(folder: Path) -> Path:
    """Path of the potential the active learning ended with."""
    history = json.loads((folder / "history.json").read_text())
    return folder / history["final_potential"]
