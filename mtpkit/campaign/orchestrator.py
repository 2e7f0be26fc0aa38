"""The campaign: seven resumable stages run in order in one campaign folder.

======================  ======================  ==========================================
stage                   folder                  what
======================  ======================  ==========================================
``structures``          ``01_structures``       enumerate orderings, write the structures
``relax``               ``01_relax``            relax them with the labeller (cell + positions)
``starting_set``        ``02_starting_set``     label strained/rattled copies of the relaxed
                                                structures, plus labeller-MD snapshots and
                                                relaxation-path frames (into the label store)
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

Every label (starting set and active learning) lives in one label store,
``labels.db`` in the campaign folder or the shared ``labeller.store``
(:mod:`mtpkit.active_learning.store`); a label of the same configuration under the
same labeller settings is never computed twice, also across campaigns sharing a store.

``state.json`` marks finished stages, which are never run again; a stage that was
interrupted resumes from the files it already finished. ``campaign.json`` keeps the
resolved configuration; resuming with a different one is refused (naming the keys
that differ) where a stage already started has read them, so a campaign folder always
holds one consistent run; keys only later stages read may change (the production
table after ``mtpkit learn``, say).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from mtpkit.campaign.state import CampaignState, forward_logging, make_logger
from mtpkit.config import PipelineConfig
from mtpkit.errors import UserError
from mtpkit.io_utils import atomic_write_json

STAGES = ("structures", "relax", "starting_set", "active_learning", "production", "analysis", "fidelity",
          "report")
FOLDERS = {"structures": "01_structures", "relax": "01_relax", "starting_set": "02_starting_set",
           "active_learning": "03_active_learning", "production": "04_production",
           "analysis": "05_analysis", "fidelity": "06_fidelity"}


def _check_folder(cfg: PipelineConfig, out: Path, resume: bool) -> None:
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
    started = {s for s, entry in CampaignState(out).data["stages"].items() if entry.get("status")}
    diff = sorted(key for key in _differing_keys(old, new) if started & _readers(key))
    if diff:
        raise UserError(f"{out}: the campaign there was started with a different configuration "
                        f"({', '.join(diff)} differ, read by stages already run); resume it with the same "
                        "file and --scale")


#: which stages read a table (or one key of it, ``table.key``); a difference in a key that no started
#: stage has read yet is accepted on resume: e.g. the production table after ``mtpkit learn``. The
#: report reads every table. ``campaign.workers``/``scheduler`` only say where work runs.
_READ_BY: dict[str, tuple[str, ...]] = {
    "campaign": STAGES, "structures": STAGES, "campaign.workers": (), "campaign.scheduler": (),
    "labeller": ("relax", "starting_set", "active_learning", "fidelity", "report"),
    "relax": ("relax", "report"), "starting_set": ("starting_set", "report"),
    "potential": ("active_learning", "report"), "active_learning": ("active_learning", "report"),
    "production": ("production", "analysis", "fidelity", "report"),
    "production.temperatures": ("active_learning", "production", "analysis", "fidelity", "report"),
    "analysis": ("analysis", "report"), "fidelity": ("fidelity", "report"), "report": ("report",),
    "scale": STAGES,
}


def _readers(key: str) -> set[str]:
    """Stages that read configuration key ``table.key`` (or a whole table); unknown tables: all."""
    table = key.split(".")[0]
    return set(_READ_BY.get(key, _READ_BY.get(table, STAGES)))


def _differing_keys(old: dict, new: dict) -> list[str]:
    """``table.key`` (or ``table`` for a non-table value) of every difference between two saved
    configurations, ignoring ``source`` and keys the old one lacks that hold their default now."""
    out = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if name == "source" or _same_table(name, a, b):
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{name}.{k}" for k in sorted(set(a) | set(b))
                    if not _same_table(name, {k: a[k]} if k in a else {}, {k: b[k]} if k in b else {})]
        else:
            out.append(name)
    return out


def _same_table(name: str, old: object, new: object) -> bool:
    """Whether a table of a saved configuration means what the new one does: equal, or differing
    only in keys the saved one lacks (added to the schema since the campaign started) that hold
    their default now."""
    if old == new:
        return True
    field = PipelineConfig.model_fields.get(name)
    model = getattr(field, "annotation", None)
    if not (isinstance(old, dict) and isinstance(new, dict) and isinstance(model, type)
            and hasattr(model, "model_fields")):
        return False
    for key in set(old) | set(new):
        if key in old:
            if key not in new or old[key] != new[key]:
                return False
            continue
        spec = model.model_fields.get(key)
        if spec is None:
            return False
        default = json.loads(json.dumps(spec.get_default(call_default_factory=True), default=str))
        if new[key] != default:
            return False
    return True


def run_campaign(cfg: PipelineConfig, output: str | os.PathLike, *, resume: bool = False,
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
    say(f"campaign {cfg.campaign.name} (scale {cfg.scale}) in {out}")
    unreferenced = [Path(f).stem for f in cfg.structures.files if Path(f).stem not in cfg.structures.reference]
    if unreferenced and (stop_after is None or STAGES.index(stop_after) > STAGES.index("active_learning")):
        raise UserError(f"structures.files: production and analysis need each file's study structure "
                        f"(structures.reference, missing for {', '.join(unreferenced)}); `mtpkit learn` runs the "
                        "stages up to active learning for any files")
    with forward_logging(say):
        for stage in STAGES:
            if state.is_done(stage):
                say(f"stage {stage}: already finished, skipped")
            else:
                say(f"stage {stage}: starting")
                state.mark(stage, "running")
                t0 = time.perf_counter()
                info = _RUNNERS[stage](cfg, out, say) or {}
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


def _structures(cfg, out, say) -> dict:
    from mtpkit.campaign.structures_stage import run_structures

    folder = out / FOLDERS["structures"]
    folder.mkdir(parents=True, exist_ok=True)
    res = run_structures(cfg, folder, say)
    return {"n_structures": len(res["structures"])}


def _relax(cfg, out, say) -> dict:
    from mtpkit.campaign.relax_stage import run_relax

    res = run_relax(cfg, out / FOLDERS["relax"], out / FOLDERS["structures"], _names(out), say)
    return {"n_relaxed": len(res["structures"])}


def _md_dir(out: Path) -> Path:
    """Folder of the structures MD starts from: the relaxed ones (stage ``relax``)."""
    return out / FOLDERS["relax"]


def label_store(cfg: PipelineConfig, out: Path):
    """The campaign's label store: ``labeller.store`` when given (shared, reused), else ``labels.db``."""
    from mtpkit.active_learning.store import LabelStore

    return LabelStore(cfg.labeller.store or out / "labels.db")


def learning_plan(cfg: PipelineConfig, out: Path):
    """What the active-learning engine needs from the configuration and the relaxed structures."""
    from mtpkit.active_learning.engine import LearningPlan
    from mtpkit.campaign.structures_stage import md_file_name

    names = _names(out)
    md_dir = _md_dir(out)
    return LearningPlan(
        species=cfg.species, seed=cfg.campaign.seed, al=cfg.active_learning, potential=cfg.potential,
        labeller=cfg.labeller, structures={n: md_dir / f"{n}.extxyz" for n in names},
        md_structures={n: md_dir / md_file_name(n) for n in names if (md_dir / md_file_name(n)).is_file()},
        production_top_K=max(cfg.production.temperatures), workers=cfg.campaign.workers,
        scheduler=cfg.campaign.scheduler)


def _starting_set(cfg, out, say) -> dict:
    from mtpkit.active_learning.engine import label_configurations
    from mtpkit.active_learning.labellers import LabellerSpec, code_version, make_calculator
    from mtpkit.campaign.labeller_md import md_snapshots
    from mtpkit.campaign.relax_stage import read_path_frames
    from mtpkit.campaign.structures_stage import perturbed_copies, read_structure
    from mtpkit.seeds import STARTING_COPIES, STARTING_MD, seed_for

    folder = out / FOLDERS["starting_set"]
    folder.mkdir(parents=True, exist_ok=True)
    ss = cfg.starting_set
    spec = LabellerSpec.from_table(cfg.labeller)
    store = label_store(cfg, out)
    code = code_version(spec.kind)
    images, sources = [], []
    calcs: list = []

    def calculator():
        if not calcs:
            calcs.append(make_calculator(spec))
        return calcs[0]

    n_path = n_md = n_initial = 0
    for i, name in enumerate(_names(out)):
        atoms = read_structure(_md_dir(out), name)
        if ss.relax_path:
            for f in read_path_frames(_md_dir(out), name):
                store.add(f, spec, source=f"relax-path:{name}:step{f.info.get('relax_step', 0)}", subset="start",
                          code=code)
                n_path += 1
        if ss.md_temperatures and ss.md_steps > 0:
            md = md_snapshots(calculator, atoms, name, folder, list(ss.md_temperatures), ss.md_steps, ss.md_every,
                              ss.md_timestep, seed_for(cfg.campaign.seed, STARTING_MD, i), say)
            for f in md:
                store.add(f, spec, source=f"labeller-md:{name}:{f.info.get('md_temperature_K', 0):g}K:"
                                          f"step{f.info.get('md_step', 0)}", subset="start", code=code)
            n_md += len(md)
        for j, a in enumerate(perturbed_copies(atoms, ss.per_structure, ss.rattle, ss.strain,
                                               seed_for(cfg.campaign.seed, STARTING_COPIES, i))):
            images.append(a)
            sources.append(f"start:{name}:copy{j}")
    given_by: Counter[str] = Counter()
    if ss.initial_training:
        from mtpkit.potentials.convert import read_images

        for j, a in enumerate(read_images(str(ss.initial_training), cfg.species)):
            store.add(a, spec, source=f"initial-training:{Path(ss.initial_training).name}:{j}", subset="start",
                      code="given")
            n_initial += 1
            given_by[_made_by(a.info)] += 1
    say(f"starting set: {len(images)} configurations to label with {spec.kind} (store {store.path})")
    ok, bad = label_configurations(store, learning_plan(cfg, out), images, sources, "start", folder / "jobs")
    total = len(ok) + n_path + n_md + n_initial
    if total < 2:
        raise UserError(f"starting set: only {total} configuration(s) labelled ({len(bad)} quarantined: "
                        f"`mtpkit label {store.path} --status` lists them); check the [labeller] table")
    say(f"starting set: {total} labelled configurations ({len(ok)} strained/rattled, {n_path} from the "
        f"relaxation path, {n_md} labeller-MD snapshots, {n_initial} given); {len(bad)} quarantined")
    return {"n_labelled": total, "n_quarantined": len(bad), "n_copies": len(ok), "n_relax_path": n_path,
            "n_md": n_md, "n_initial": n_initial, "store": str(store.path),
            "given": {"file": str(ss.initial_training), "labelled_by": dict(given_by)} if ss.initial_training else None}


def _made_by(info: dict) -> str:
    """What labelled a given training frame, from its provenance (``code`` and the ``labeller``
    parameters that ``pbe_labels.py export`` writes), e.g. ``gpaw 26.7.0, PBE``; "not stated" without."""
    code = str(info.get("code") or "").strip()
    try:
        params = json.loads(info["labeller"]) if isinstance(info.get("labeller"), str) else {}
    except ValueError:
        params = {}
    xc = params.get("xc") if isinstance(params, dict) else None
    return ", ".join(x for x in (code, xc) if x) or "not stated"


def _learning(cfg, out, say) -> dict:
    from mtpkit.active_learning.engine import ActiveLearner

    state = ActiveLearner(learning_plan(cfg, out), out / FOLDERS["active_learning"], label_store(cfg, out)).run()
    return {"iterations": state["iteration"], "stop_reason": state["stop_reason"],
            "final_potential": state["final_potential"]}


def _production(cfg, out, say) -> dict:
    from mtpkit.active_learning.engine import final_potential
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


def _analysis(cfg, out, say) -> dict:
    from mtpkit.campaign.structures_stage import load_structures
    from mtpkit.campaign.transport_stage import run_transport

    folder = out / FOLDERS["analysis"]
    folder.mkdir(parents=True, exist_ok=True)
    run_transport(cfg, folder, _manifest(out), load_structures(out / FOLDERS["structures"]),
                  out / FOLDERS["structures"], say)
    return {}


def _fidelity(cfg, out, say) -> dict:
    from mtpkit.active_learning.engine import final_potential
    from mtpkit.campaign.fidelity import run_fidelity

    if not cfg.fidelity.enabled:
        say("fidelity: disabled in the configuration")
        return {"enabled": False}
    folder = out / FOLDERS["fidelity"]
    folder.mkdir(parents=True, exist_ok=True)
    res = run_fidelity(cfg, folder, final_potential(out / FOLDERS["active_learning"]),
                       _md_dir(out), _names(out), _manifest(out), say)
    return {"D_ratio_short": res.get("D_ratio_short")}


def _report(cfg, out, say) -> dict:
    from mtpkit.campaign.report import write_report
    from mtpkit.campaign.results import structure_results

    data = gather_report_data(cfg, out)
    paths = write_report(out, data)
    if data["transport"] and data["structures"]:
        atomic_write_json(out / "results.json", {
            "campaign": cfg.campaign.name, "labeller": data["config"]["labeller"]["kind"],
            "structures": structure_results(data["transport"], data["structures"])})
    say(f"report: {paths['markdown']} and {paths['html']}; numbers per structure in {out / 'results.json'}")
    return {"markdown": str(paths["markdown"]), "html": str(paths["html"])}


def gather_report_data(cfg: PipelineConfig, out: Path) -> dict:
    """Everything the report shows, read from the stage folders."""
    def load(*parts):
        path = out.joinpath(*parts)
        return json.loads(path.read_text()) if path.is_file() else None

    state = load("state.json") or {"stages": {}}
    start = state["stages"].get("starting_set", {})
    from mtpkit.active_learning.engine import learning_history

    fid = load(FOLDERS["fidelity"], "fidelity.json") if cfg.fidelity.enabled else None
    plain = cfg.to_dict()
    return {
        "config": plain, "stages": state["stages"],
        "structures": load(FOLDERS["structures"], "structures.json"),
        "relax": load(FOLDERS["relax"], "relax.json"),
        "starting_set": {"n_labelled": start.get("n_labelled"), "n_quarantined": start.get("n_quarantined"),
                         "n_copies": start.get("n_copies"), "n_relax_path": start.get("n_relax_path"),
                         "n_md": start.get("n_md"), "n_initial": start.get("n_initial"), "given": start.get("given"),
                         **plain["starting_set"]},
        "learning": learning_history(out / FOLDERS["active_learning"]),
        "al_cfg": plain["active_learning"], "production_cfg": plain["production"],
        "transport": load(FOLDERS["analysis"], "summary.json"), "fidelity": fid,
        "production_gamma": load(FOLDERS["production"], "gamma.json"),
        "energies": structure_energies(cfg, out, load(FOLDERS["relax"], "relax.json")),
    }


def structure_energies(cfg: PipelineConfig, out: Path, relax: dict | None) -> dict[str, dict]:
    """Labeller energy (eV/atom) of each structure as learning starts from it: the relax stage's
    final energy, or, for a structure used as given, the stored label of that very configuration
    under the campaign's labeller (e.g. the PBE single points of annealed minima); structures with
    neither are left out. Keys: ``energy_per_atom_eV``, ``formula``, ``source``."""
    from ase.io import read

    from mtpkit.active_learning.labellers import LabellerSpec
    from mtpkit.active_learning.store import config_id, settings_id

    folder = out / FOLDERS["relax"]
    if not (out / FOLDERS["structures"] / "structures.json").is_file():
        return {}
    store, sid, energies = None, settings_id(LabellerSpec.from_table(cfg.labeller)), {}
    for name in _names(out):
        path = folder / f"{name}.extxyz"
        if not path.is_file():
            continue
        atoms = read(path, format="extxyz")
        after = ((relax or {}).get("structures", {}).get(name) or {}).get("after") or {}
        if after.get("energy_eV") is not None:
            energy, source = float(after["energy_eV"]), "relaxation"
        else:
            store = store or label_store(cfg, out)
            rid = store.find(config_id(atoms), sid)
            row = store.row(rid) if rid is not None else None
            if row is None or row.status != "ok":
                continue
            energy, source = float(row.atoms.get_potential_energy()), f"label row {rid} ({row.keys['source']})"
        energies[name] = {"energy_per_atom_eV": energy / len(atoms), "formula": atoms.get_chemical_formula(),
                          "source": source}
    return energies


_RUNNERS: dict[str, Callable] = {
    "structures": _structures, "relax": _relax, "starting_set": _starting_set, "active_learning": _learning,
    "production": _production, "analysis": _analysis, "fidelity": _fidelity, "report": _report,
}
