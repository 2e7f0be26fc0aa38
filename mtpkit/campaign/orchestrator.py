"""The campaign: seven resumable stages run in order in one campaign folder.

======================  ======================  ==========================================
stage                   folder                  what
======================  ======================  ==========================================
``structures``          ``01_structures``       enumerate orderings, write the structures
``relax``               ``01_relax``            relax them with the labeller (cell + positions)
``starting_set``        ``02_starting_set``     label strained/rattled copies of the relaxed
                                                structures, plus labeller-MD snapshots and
                                                relaxation-path frames (``starting.extxyz``)
``active_learning``     ``03_active_learning``  first fit + active learning over T
``production``          ``04_production``       NPT sweep with the final MTP
``analysis``            ``05_analysis``         D, σ, Arrhenius, σ(293 K), SRO, O_oct(t)
``fidelity``            ``06_fidelity``         MTP-MD vs labeller-MD, speed-up per step
``report``              (campaign folder)       ``report.md`` + ``report.html``
======================  ======================  ==========================================

With ``structures.learn_size = "cell"`` and ``size = "box"`` (the default and paper
presets) relaxation, starting set and active learning work on the 37-atom ordering
cells; production and fidelity MD start from ``01_relax/<name>_md.extxyz``, the
relaxed cell tiled into the 296-atom box.

``state.json`` marks finished stages, which are never run again; a stage that was
interrupted resumes from the files it already finished. ``campaign.json`` keeps the
resolved configuration; resuming with a different one is refused (naming the tables
that differ), so a campaign folder always holds one consistent run.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from mtpkit.campaign.config import CampaignConfig
from mtpkit.campaign.state import CampaignState, make_logger
from mtpkit.errors import UserError
from mtpkit.io_utils import atomic_write_json

STAGES = ("structures", "relax", "starting_set", "active_learning", "production", "analysis", "fidelity",
          "report")
FOLDERS = {"structures": "01_structures", "relax": "01_relax", "starting_set": "02_starting_set",
           "active_learning": "03_active_learning", "production": "04_production",
           "analysis": "05_analysis", "fidelity": "06_fidelity"}


def _check_folder(cfg: CampaignConfig, out: Path, resume: bool) -> None:
    saved = out / "campaign.json"
    if not saved.is_file():
        if (out / "state.json").is_file():
            raise UserError(f"{out}: has a state.json but no campaign.json; not a campaign folder")
        return
    if not resume:
        raise UserError(f"{out} already holds a campaign; add --resume to continue it or choose "
                        "another --output")
    old = json.loads(saved.read_text())
    new = json.loads(json.dumps(cfg.to_dict()))
    diff = sorted(k for k in set(old) | set(new) if k != "source" and old.get(k) != new.get(k))
    if diff:
        raise UserError(f"{out}: the campaign there was started with a different configuration "
                        f"({', '.join(diff)} differ); resume it with the same file and --scale")


def run_campaign(cfg: CampaignConfig, output: str | os.PathLike, *, resume: bool = False,
                 stop_after: str | None = None, echo: bool = True) -> dict:
    """Run (or resume) the campaign in ``output``; returns the final state dict.

    ``stop_after``: a stage name; the campaign stops once that stage is finished
    (the rest runs on the next ``resume``).
    """
    if stop_after is not None and stop_after not in STAGES:
        raise UserError(f"stop_after must be one of {', '.join(STAGES)}, got {stop_after!r}")
    out = Path(output).resolve()
    _check_folder(cfg, out, resume)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "campaign.json", cfg.to_dict())
    state = CampaignState(out)
    state.set("scale", cfg.scale)
    say = make_logger(out, echo=echo)
    say(f"campaign {cfg['campaign']['name']} (scale {cfg.scale}) in {out}")
    ctx: dict = {}
    for stage in STAGES:
        if state.is_done(stage):
            say(f"stage {stage}: already finished, skipped")
        else:
            say(f"stage {stage}: starting")
            state.mark(stage, "running")
            t0 = time.perf_counter()
            info = _RUNNERS[stage](cfg, out, ctx, say) or {}
            wall = time.perf_counter() - t0
            state.mark(stage, "done", wall_s=wall, **info)
            say(f"stage {stage}: done in {wall:.1f} s")
        if stage == stop_after:
            say(f"stopping after stage {stage} as asked")
            break
    return state.data


# --------------------------------------------------------------------------- stage runners


def _names(out: Path) -> list[str]:
    from mtpkit.campaign.structures_stage import load_structures

    return list(load_structures(out / FOLDERS["structures"])["structures"])


def _structures(cfg, out, ctx, say) -> dict:
    from mtpkit.campaign.structures_stage import run_structures

    folder = out / FOLDERS["structures"]
    folder.mkdir(parents=True, exist_ok=True)
    res = run_structures(cfg, folder, say)
    return {"n_structures": len(res["structures"])}


def _relax(cfg, out, ctx, say) -> dict:
    from mtpkit.campaign.relax_stage import run_relax

    res = run_relax(cfg, out / FOLDERS["relax"], out / FOLDERS["structures"], _names(out), say)
    return {"n_relaxed": len(res["structures"])}


def _md_dir(out: Path) -> Path:
    """Folder of the structures MD starts from: the relaxed ones (stage ``relax``)."""
    return out / FOLDERS["relax"]


def _starting_set(cfg, out, ctx, say) -> dict:
    from mtpkit.active_learning.labellers import make_calculator
    from mtpkit.campaign.labeller_md import md_snapshots
    from mtpkit.campaign.labelling import (
        label_configurations,
        spec_from_config,
        write_store,
    )
    from mtpkit.campaign.relax_stage import read_path_frames
    from mtpkit.campaign.structures_stage import perturbed_copies, read_structure

    folder = out / FOLDERS["starting_set"]
    folder.mkdir(parents=True, exist_ok=True)
    ss = cfg["starting_set"]
    images = []
    extra = []
    calcs: list = []

    def calculator():
        if not calcs:
            calcs.append(make_calculator(spec_from_config(cfg["labeller"])))
        return calcs[0]

    n_path = n_md = 0
    for i, name in enumerate(_names(out)):
        atoms = read_structure(_md_dir(out), name)
        if ss["relax_path"]:
            path = read_path_frames(_md_dir(out), name)
            for f in path:
                f.info = {"label_id": f"relax-{name}-{f.info.get('relax_step', 0)}",
                          "source": f"relaxation path, {name}"}
            extra.extend(path)
            n_path += len(path)
        if ss["md_temperatures"] and ss["md_steps"] > 0:
            md = md_snapshots(calculator, atoms, name, folder, [float(t) for t in ss["md_temperatures"]],
                              int(ss["md_steps"]), int(ss["md_every"]), float(ss["md_timestep"]),
                              int(cfg["campaign"]["seed"]) + 211 * i, say)
            extra.extend(md)
            n_md += len(md)
        for j, a in enumerate(perturbed_copies(atoms, ss["per_structure"], ss["rattle"], ss["strain"],
                                               int(cfg["campaign"]["seed"]) + 101 * i)):
            a.info = {"label_id": f"start-{name}-{j}", "source": f"starting set, {name}"}
            images.append(a)
    spec = spec_from_config(cfg["labeller"])
    say(f"starting set: {len(images)} configurations to label with {spec.kind}")
    labelled, quarantined = label_configurations(
        spec, images, folder / "labelled.extxyz", folder / "quarantine.json",
        workers=int(cfg["campaign"]["workers"]), scheduler=cfg["campaign"]["scheduler"], say=say,
        what="starting set")
    if len(labelled) + len(extra) < 2:
        raise UserError(f"starting set: only {len(labelled) + len(extra)} configuration(s) labelled "
                        f"({len(quarantined)} quarantined: see {folder / 'quarantine.json'}); "
                        "check the [labeller] table")
    everything = list(labelled) + extra
    write_store(folder / "starting.extxyz", everything)
    say(f"starting set: {len(everything)} labelled configurations ({len(labelled)} strained/rattled, "
        f"{n_path} from the relaxation path, {n_md} labeller-MD snapshots)")
    return {"n_labelled": len(everything), "n_quarantined": len(quarantined), "n_copies": len(labelled),
            "n_relax_path": n_path, "n_md": n_md}


def _learning(cfg, out, ctx, say) -> dict:
    from mtpkit.campaign.labelling import read_store
    from mtpkit.campaign.learning import run_learning

    folder = out / FOLDERS["starting_set"]
    store = folder / "starting.extxyz"
    starting = read_store(store if store.is_file() else folder / "labelled.extxyz")
    hist = run_learning(cfg, out / FOLDERS["active_learning"], starting, _md_dir(out), _names(out), say)
    return {"iterations": len(hist["iterations"]) - 1, "stop_reason": hist["stop_reason"],
            "final_potential": hist["final_potential"]}


def _production(cfg, out, ctx, say) -> dict:
    from mtpkit.campaign.learning import final_potential
    from mtpkit.campaign.production import run_production

    folder = out / FOLDERS["production"]
    folder.mkdir(parents=True, exist_ok=True)
    manifest = run_production(cfg, folder, final_potential(out / FOLDERS["active_learning"]),
                              _md_dir(out), _names(out), say)
    runs = manifest["runs"].values()
    return {"runs_done": sum(r.get("status") == "done" for r in runs), "runs": len(runs)}


def _manifest(out: Path) -> dict:
    from mtpkit.md.sweep import read_manifest

    return read_manifest(out / FOLDERS["production"])


def _analysis(cfg, out, ctx, say) -> dict:
    from mtpkit.campaign.structures_stage import load_structures
    from mtpkit.campaign.transport_stage import run_transport

    folder = out / FOLDERS["analysis"]
    folder.mkdir(parents=True, exist_ok=True)
    run_transport(cfg, folder, _manifest(out), load_structures(out / FOLDERS["structures"]),
                  out / FOLDERS["structures"], say)
    return {}


def _fidelity(cfg, out, ctx, say) -> dict:
    from mtpkit.campaign.fidelity import run_fidelity
    from mtpkit.campaign.learning import final_potential

    if not cfg["fidelity"]["enabled"]:
        say("fidelity: disabled in the configuration")
        return {"enabled": False}
    folder = out / FOLDERS["fidelity"]
    folder.mkdir(parents=True, exist_ok=True)
    res = run_fidelity(cfg, folder, final_potential(out / FOLDERS["active_learning"]),
                       _md_dir(out), _names(out), _manifest(out), say)
    return {"D_ratio_short": res.get("D_ratio_short")}


def _report(cfg, out, ctx, say) -> dict:
    from mtpkit.campaign.report import write_report

    data = gather_report_data(cfg, out)
    paths = write_report(out, data)
    say(f"report: {paths['markdown']} and {paths['html']}")
    return {"markdown": str(paths["markdown"]), "html": str(paths["html"])}


def gather_report_data(cfg: CampaignConfig, out: Path) -> dict:
    """Everything the report shows, read from the stage folders."""
    def load(*parts):
        path = out.joinpath(*parts)
        return json.loads(path.read_text()) if path.is_file() else None

    state = load("state.json") or {"stages": {}}
    start = state["stages"].get("starting_set", {})
    fid = load(FOLDERS["fidelity"], "fidelity.json") if cfg["fidelity"]["enabled"] else None
    return {
        "config": cfg.to_dict(), "stages": state["stages"],
        "structures": load(FOLDERS["structures"], "structures.json"),
        "relax": load(FOLDERS["relax"], "relax.json"),
        "starting_set": {"n_labelled": start.get("n_labelled"), "n_quarantined": start.get("n_quarantined"),
                         "n_copies": start.get("n_copies"), "n_relax_path": start.get("n_relax_path"),
                         "n_md": start.get("n_md"), **cfg["starting_set"]},
        "learning": load(FOLDERS["active_learning"], "history.json"),
        "al_cfg": cfg["active_learning"], "production_cfg": cfg["production"],
        "transport": load(FOLDERS["analysis"], "summary.json"), "fidelity": fid,
        "production_gamma": load(FOLDERS["production"], "gamma.json"),
    }


_RUNNERS: dict[str, Callable] = {
    "structures": _structures, "relax": _relax, "starting_set": _starting_set, "active_learning": _learning,
    "production": _production, "analysis": _analysis, "fidelity": _fidelity, "report": _report,
}
