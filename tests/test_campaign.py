"""End-to-end campaign: a tiny run with a cheap labeller, interruption and resume, the report.

The labeller is a small ionic model (tests/ionic_calc.py: Born–Mayer repulsion and damped
Coulomb between formal charges): cheap, deterministic and not a model of NYZC75, but it keeps
a solid host, so the MTP learned from it runs its production MD to the end on any machine and
load, and the transport, Arrhenius, O_oct and SRO results are asserted unconditionally. The
CHGNet tiny-scale and default-scale campaigns are marked slow.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mtpkit.active_learning.engine import learning_history
from mtpkit.active_learning.store import LabelStore
from mtpkit.campaign.orchestrator import STAGES, run_campaign
from mtpkit.config import build_config, load_config
from mtpkit.errors import UserError

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the labeller is imported by name, also in worker processes
    sys.path.insert(0, str(HERE))

TINY = {
    "campaign": {"name": "t", "workers": 1, "seed": 7},
    "labeller": {"kind": "ase", "calculator": "ionic_calc:IonicNYZC"},
    "relax": {"steps": 100},
    "starting_set": {"per_structure": 30, "rattle": 0.25, "md_temperatures": [700.0], "md_steps": 40,
                     "md_every": 8},
    "potential": {"training": {"max_iter": 60}},
    "active_learning": {"temperatures": [700.0], "steps": 400, "max_iterations": 2,
                        "runs_per_structure": 2, "labels_per_iteration": 4, "barostat": "iso"},
    "production": {"temperatures": [500.0, 700.0], "replicas": 1, "steps": 2500, "barostat": "iso",
                   "restart_every": 1250},
    "fidelity": {"steps": 120},
    "analysis": {"o_oct_frames": 40},
}

SECTIONS = ["1. Structures", "2. Starting set", "3. Active learning", "4. Production MD", "5. Na transport",
            "6. Activation energies and σ(293 K)", "7. Short-range order", "8. Octahedral Na occupancy",
            "9. Fidelity"]


@pytest.fixture(scope="module")
def tiny_campaign(tmp_path_factory):
    """Run the tiny campaign in two goes: stop after active learning, then resume."""
    out = tmp_path_factory.mktemp("campaign") / "run"
    cfg = build_config(TINY, "tiny")
    first = run_campaign(cfg, out, stop_after="active_learning", echo=False)
    snapshot = {p: p.stat().st_mtime_ns for p in (out / "02_starting_set").iterdir()}
    snapshot.update({p: p.stat().st_mtime_ns for p in (out / "01_relax").iterdir()})
    snapshot.update({p: p.stat().st_mtime_ns for p in (out / "03_active_learning").rglob("*.almtp")})
    final = run_campaign(cfg, out, resume=True, echo=False)
    return out, cfg, first, final, snapshot


def test_stop_and_resume_skips_finished_stages(tiny_campaign):
    out, cfg, first, final, snapshot = tiny_campaign
    done_first = [s for s in STAGES if first["stages"].get(s, {}).get("status") == "done"]
    assert done_first == ["structures", "relax", "starting_set", "active_learning"]
    assert all(final["stages"][s]["status"] == "done" for s in STAGES)
    log = (out / "progress.log").read_text()
    for stage in done_first:
        assert f"stage {stage}: already finished, skipped" in log
        assert log.count(f"stage {stage}: starting") == 1
    # nothing finished was rewritten (labels, potentials)
    assert all(p.stat().st_mtime_ns == t for p, t in snapshot.items())
    # resuming with another configuration is refused, naming what differs
    other = build_config({**TINY, "production": {**TINY["production"], "replicas": 2}}, "tiny")
    with pytest.raises(UserError, match="production"):
        run_campaign(other, out, resume=True, echo=False)
    with pytest.raises(UserError, match="--resume"):
        run_campaign(cfg, out, echo=False)


def test_report_has_every_section_from_run_numbers(tiny_campaign):
    out, _cfg, *_ = tiny_campaign
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    for title in SECTIONS:
        assert title in md and title in html
    assert "not from the PBE DFT" in md and "not converged" in md
    # every linked figure exists
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert any("train.png" in p for p in images) and any("msd_fidelity" in p for p in images)
    for rel in images:
        assert (out / rel).is_file(), rel
    # the numbers in the report are the run's
    summary = json.loads((out / "05_analysis" / "summary.json").read_text())
    entry = summary["structures"]["mixed-TM_oct50"]
    manifest = json.loads((out / "04_production" / "manifest.json").read_text())
    finished = [k for k, v in manifest["runs"].items() if v["status"] == "done"]
    assert f"| mixed-TM_oct50 | {len(finished)}/2 |" in md
    assert len(finished) == 2, manifest  # the ionic labeller keeps the host solid: production finishes
    assert any("arrhenius" in p for p in images) and any("o_oct" in p for p in images)
    temps = entry["transport"]["temperatures"]
    assert [t["temperature_K"] for t in temps] == [500.0, 700.0]
    for t in temps:  # real numbers, and the report shows them
        assert math.isfinite(t["D"]) and t["D"] > 0 and math.isfinite(t["sigma"]) and t["sigma"] > 0
        assert f"{t['D']:.3g} ± {t['D_err']:.3g}" in md
        assert f"{t['sigma']:.3g}" in md
    assert f"{entry['transport']['extrapolated']['sigma']:.3g}" in md
    assert 0.0 <= entry["o_oct"]["T500K/r0"]["mean"] <= 1.0
    assert "| T500K/r0 |" in md and entry["sro_md"]["n_frames"] > 0
    assert f"{entry['sro_md']['mean']['Y-Y']:.3f}" in md
    # every finished run has a host-framework verdict from its trajectory, shown in the table
    fw = entry["framework"]
    assert set(fw) == {"T500K/r0", "T700K/r0"}
    for c in fw.values():
        assert set(c["msd_A2"]) == {"Na", "Y", "Zr", "Cl"} and c["host_species"] == ["Y", "Zr", "Cl"]
        assert (c["state"] == "crystal") == all(c["msd_A2"][s] < c["threshold_A2"] for s in ("Y", "Zr", "Cl"))
        assert c["solid"] == (c["state"] != "not solid") and 0.0 <= c["same_centre"] <= 1.0
    fig8 = md.split("cf. Fig. 8b")[1].split("\n## ")[0]
    row = next(line for line in fig8.splitlines() if line.startswith("| mixed-TM_oct50 |"))
    assert row.split("|")[6].strip() == f"{sum(c['solid'] for c in fw.values())}/2"
    assert ("host NOT solid" in md) == (not all(c["solid"] for c in fw.values()))
    assert ("Warning: in" in md) == (not all(c["solid"] for c in fw.values()))
    history = learning_history(out / "03_active_learning")
    assert len(history["iterations"]) >= 2 and history["iterations"][1]["runs"]
    fid = json.loads((out / "06_fidelity" / "fidelity.json").read_text())
    assert fid["runs"]["MTP"]["status"] == "done" and fid["runs"]["labeller"]["status"] == "done"
    assert f"{fid['D_ratio_short']:.3g}" in md
    assert f"{fid['speedup_per_step_same_length']:.0f}" in md
    assert {"Y-Y", "Y-Zr", "Zr-Zr"} <= set(entry["sro_initial"])
    # results.json: the same numbers, one record per structure
    res = json.loads((out / "results.json").read_text())
    rec = next(r for r in res["structures"] if r["name"] == "mixed-TM_oct50")
    assert res["labeller"] == "ase" and rec["tm_class"] == "mixed" and rec["octahedral_occupancy"] == 0.5
    assert rec["runs"] == len(finished) and rec["runs_host_solid"] == sum(c["solid"] for c in fw.values())
    assert rec["sigma_293K_S_cm"] == entry["transport"]["extrapolated"]["sigma"]
    assert rec["sigma_293K_err_S_cm"] == entry["transport"]["extrapolated"]["sigma_err"]
    arr = entry["transport"]["arrhenius"]
    used = (arr["two_regimes"] if arr["selected"] == "two_regimes" else arr["one_regime"])["regimes"][0]
    assert rec["Ea_eV"] == used["Ea_eV"] and rec["Ea_err_eV"] == used["Ea_err_eV"]
    assert set(rec["D_by_T"]) == {"500", "700"}


def test_relaxed_structure_seeds_starting_set_and_md(tiny_campaign):
    out, cfg, *_ = tiny_campaign
    from ase.io import read

    rx = json.loads((out / "01_relax" / "relax.json").read_text())["structures"]["mixed-TM_oct50"]
    p = rx["pressure_GPa"] / 160.21766208  # eV/Å^3; FIRE on the cell filter lowers the enthalpy
    h = {k: rx[k]["energy_eV"] + p * rx[k]["volume_A3"] for k in ("before", "after")}
    assert rx["steps"] >= 1 and h["after"] < h["before"]
    relaxed = read(out / "01_relax" / "mixed-TM_oct50.extxyz")
    assert abs(relaxed.get_volume() - rx["after"]["volume_A3"]) < 1e-6
    assert "FIRE" in (out / "01_relax" / "mixed-TM_oct50.log").read_text()
    # starting set: rattled copies + relaxation path + labeller-MD snapshots, all labelled in the store
    start = LabelStore(out / "labels.db").labelled(subset="start")
    ids = [a.info["source"] for a in start]
    assert len(set(ids)) == len(ids)
    n_md = sum(i.startswith("labeller-md:") for i in ids)
    assert n_md == cfg.starting_set.md_steps // cfg.starting_set.md_every
    assert any(i.startswith("relax-path:") for i in ids) and any(i.startswith("start:") for i in ids)
    assert all(np.isfinite(a.get_forces()).all() for a in start)
    # the first copy is the relaxed cell itself (stored once: the relaxation path's last frame
    # may be the same configuration); production MD starts from it too
    from mtpkit.active_learning.store import config_id

    first = next(a for a in start if a.info["config_id"] == config_id(relaxed))
    assert abs(first.get_volume() - relaxed.get_volume()) < 1e-6
    data = (out / "04_production" / "mixed-TM_oct50" / "T500K" / "r0" / "structure.data").read_text()
    bounds = {m[2]: float(m[1]) - float(m[0]) for m in
              re.findall(r"^\s*(\S+)\s+(\S+)\s+([xyz])lo [xyz]hi", data, re.MULTILINE)}
    assert abs(bounds["x"] * bounds["y"] * bounds["z"] - relaxed.get_volume()) < 1e-3
    report = (out / "report.md").read_text()
    assert "relaxed with the labeller" in report and "labeller Langevin MD" in report


def test_learning_cell_tiled_into_production_box(tmp_path):
    """learn_size = "cell", size = "box": relax/learn in the 37-atom cell, production MD in the
    296-atom box tiled from the relaxed cell (same strain, Na on the box's reference sites)."""
    from ase.io import read

    from mtpkit.campaign.production import production_runs
    from mtpkit.campaign.transport_stage import _o_oct_start

    over = {**TINY, "structures": {"names": ["layered-TM_oct50"], "size": "box", "learn_size": "cell"},
            "relax": {"steps": 5}}
    cfg = build_config(over, "tiny")
    out = tmp_path / "run"
    run_campaign(cfg, out, stop_after="relax", echo=False)
    info = json.loads((out / "01_structures" / "structures.json").read_text())["structures"]["layered-TM_oct50"]
    assert info["n_atoms"] == 296 and info["learn_n_atoms"] == 37 and info["md_file"]
    S = np.array(info["md_supercell"])
    assert round(abs(np.linalg.det(S))) == 8
    cell = read(out / "01_relax" / "layered-TM_oct50.extxyz")
    box = read(out / "01_relax" / "layered-TM_oct50_md.extxyz")
    assert len(cell) == 37 and len(box) == 296
    assert cell.get_chemical_formula() != box.get_chemical_formula()
    np.testing.assert_allclose(box.cell[:], S @ cell.cell[:], atol=1e-9)
    unrelaxed = read(out / "01_structures" / "layered-TM_oct50.extxyz")
    assert abs(cell.get_volume() - unrelaxed.get_volume()) > 1e-3  # the cell was relaxed
    # every Na of the tiled box sits on a box reference site: O_oct = the ordering's occupancy
    assert _o_oct_start(out / "01_relax" / "layered-TM_oct50_md.extxyz", info) == pytest.approx(
        info["oct_occupancy_percent"] / 100.0)
    from mtpkit.potentials.mtp_io import write_mtp
    from mtpkit.potentials.templates import make_template

    write_mtp(tmp_path / "t.mtp", make_template(2, 4, 4, 1.5, 5.0))
    runs = production_runs(cfg, out / "04_production", tmp_path / "t.mtp", out / "01_relax",
                           ["layered-TM_oct50"])
    assert runs and all(r.structure.endswith("layered-TM_oct50_md.extxyz") for r in runs)


def test_md_size_rung_explores_the_production_box(tmp_path):
    """md_size_rung: after the ladder in the 37-atom cells, one rung at the highest production
    temperature explores the 296-atom production boxes."""
    over = {**TINY, "structures": {"names": ["layered-TM_oct50"], "size": "box", "learn_size": "cell"},
            "relax": {"steps": 3},
            "active_learning": {**TINY["active_learning"], "steps": 40, "grade_every": 10,
                                "gamma_stop": 1e30, "gamma_break": 1e30, "gamma_select": 1e29,
                                "max_iterations": 4, "md_size_rung": True}}
    cfg = build_config(over, "tiny")
    out = tmp_path / "run"
    run_campaign(cfg, out, stop_after="active_learning", echo=False)
    hist = learning_history(out / "03_active_learning")
    its = hist["iterations"][1:]
    assert [(it["temperature_K"], it["md_size"]) for it in its] == [(700.0, False), (700.0, True)]
    assert hist["finished"] and "at every rung" in hist["stop_reason"]
    box_runs = its[1]["runs"]
    assert box_runs and all("T700K-md" in r["run"] and r["status"] == "done" for r in box_runs)
    explore = out / "03_active_learning" / "iter_002" / "explore"
    data = (explore / box_runs[0]["run"] / "structure.data").read_text()
    assert re.search(r"^\s*296 atoms", data, re.MULTILINE)
    cell_data = (out / "03_active_learning" / "iter_001" / "explore" / its[0]["runs"][0]["run"]
                 / "structure.data").read_text()
    assert re.search(r"^\s*37 atoms", cell_data, re.MULTILINE)


def test_learn_size_is_checked():
    with pytest.raises(UserError, match="learn_size"):
        build_config({"structures": {"learn_size": "huge"}}, "tiny")
    with pytest.raises(UserError, match="learn_size"):
        build_config({"structures": {"size": "cell", "learn_size": "box"}}, "tiny")


def test_cli_run_resume_is_a_no_op(tiny_campaign, tmp_path):
    out, *_ = tiny_campaign
    toml = tmp_path / "c.toml"
    toml.write_text("\n".join([
        "[campaign]", 'name = "t"', "workers = 1", "seed = 7",
        "[labeller]", 'kind = "ase"', 'calculator = "ionic_calc:IonicNYZC"',
        "[relax]", "steps = 100",
        "[starting_set]", "per_structure = 30", "rattle = 0.25", "md_temperatures = [700.0]",
        "md_steps = 40", "md_every = 8",
        "[potential]", "training = {max_iter = 60}",
        "[active_learning]", "temperatures = [700.0]", "steps = 400", "max_iterations = 2",
        "runs_per_structure = 2", "labels_per_iteration = 4", 'barostat = "iso"',
        "[production]", "temperatures = [500.0, 700.0]", "replicas = 1", "steps = 2500",
        'barostat = "iso"', "restart_every = 1250",
        "[fidelity]", "steps = 120", "[analysis]", "o_oct_frames = 40", ""]))
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    (copy / "campaign.json").write_text(json.dumps({**json.loads((copy / "campaign.json").read_text()),
                                                    "source": str(toml)}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, "-m", "mtpkit.cli", "run", str(toml), "--scale", "tiny",
                          "--output", str(copy), "--resume"], capture_output=True, text=True, timeout=120,
                         check=False, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("already finished, skipped") == len(STAGES)
    assert "report.md" in res.stdout


@pytest.mark.slow
def test_example_tiny_scale_campaign(tmp_path):
    """The README's tiny job with CHGNet (minutes on 2 cores): AL ends reliable and every
    production run finishes, so the report has real D and σ at every production temperature,
    SRO from MD and O_oct(t)."""
    pytest.importorskip("chgnet")
    cfg = load_config("examples/nyzc75-chgnet.toml", "tiny")
    out = tmp_path / "tiny"
    state = run_campaign(cfg, out, echo=False)
    assert all(state["stages"][s]["status"] == "done" for s in STAGES)
    history = learning_history(out / "03_active_learning")
    assert history["stop_reason"].startswith("reliable: every exploration run reached")
    summary = json.loads((out / "05_analysis" / "summary.json").read_text())
    entry = summary["structures"]["mixed-TM_oct50"]
    assert entry["runs_done"] == entry["runs_total"] == len(cfg.production.temperatures)
    temps = entry["transport"]["temperatures"]
    assert len(temps) >= 2
    md = (out / "report.md").read_text()
    for t in temps:
        assert math.isfinite(t["D"]) and t["D"] > 0 and math.isfinite(t["sigma"]) and t["sigma"] > 0
        assert f"{t['D']:.3g} ± {t['D_err']:.3g}" in md
    assert entry["sro_md"]["n_frames"] > 0 and len(entry["o_oct"]) == len(temps)


@pytest.mark.slow
def test_main_job_tiny_scale_from_the_shipped_pbe_potential(tmp_path):
    """README's main job (about 10 minutes on 2 cores): learning starts from the shipped PBE potential
    as it is, GPAW labels at most the tiny label cap, production finishes, and the report says
    which labeller made the labels the potential was trained on."""
    pytest.importorskip("gpaw")
    cfg = load_config("examples/nyzc75.toml", "tiny")
    out = tmp_path / "tiny"
    state = run_campaign(cfg, out, echo=False)
    assert all(state["stages"][s]["status"] == "done" for s in STAGES if s != "fidelity")
    learn = out / "03_active_learning"
    assert (learn / "iter_000" / "pot.almtp").read_bytes() == cfg.potential.initial.read_bytes()
    store = LabelStore(out / "labels.db")
    made = [r for r in store.rows(status="ok") if r.keys.get("code") != "given"]
    assert 0 < len(made) <= cfg.active_learning.max_labels + cfg.active_learning.probes_per_iteration
    assert all(r.keys["code"].startswith("gpaw") for r in made)
    md = (out / "report.md").read_text()
    assert "Labels come from PBE DFT (GPAW" in md
    assert re.search(r"given in `training\.extxyz`, labelled by gpaw [0-9.]+, PBE \(\d+\)", md)
    # the shipped potential is learned at 500 K only and meets rare collapses in the box (RESULTS.md,
    # session 11): every run either finishes or stops with its reason in the report
    summary = json.loads((out / "05_analysis" / "summary.json").read_text())
    entry = summary["structures"]["layered-TM_oct25_annealed"]
    assert entry["runs_total"] == len(cfg.production.temperatures) and entry["runs_done"] >= 1
    assert f"| layered-TM_oct25_annealed | {entry['runs_done']}/{entry['runs_total']} |" in md


@pytest.mark.slow
def test_example_default_scale_campaign(tmp_path):
    """The README's main job at the default scale (CHGNet labeller; tens of minutes)."""
    pytest.importorskip("chgnet")
    cfg = load_config("examples/nyzc75-chgnet.toml", "default")
    state = run_campaign(cfg, tmp_path / "default", echo=False)
    assert all(state["stages"][s]["status"] == "done" for s in STAGES)
    summary = json.loads((tmp_path / "default" / "05_analysis" / "summary.json").read_text())
    assert all(e["transport"] for e in summary["structures"].values())


def test_files_with_a_study_reference_carry_its_sites_and_class(tmp_path):
    """structures.files + structures.reference: a file that is a state of a study structure gets the
    study structure's TM class, occupancy and Na reference sites in its MD box (the same as the
    study structure itself gets), its own SRO, and may go on to production; a box that is not the
    study's MD box, or a file without a reference, is refused with the key named."""
    from ase.io import write

    from mtpkit.errors import InputFileError, UserError
    from mtpkit.structures.builders import to_atoms
    from mtpkit.structures.representatives import box_matrix, representative_orderings

    name = "layered-TM_oct50"
    o = representative_orderings()[name]
    cell = to_atoms(o.structure())
    cell.rattle(0.05, seed=3)
    write(tmp_path / "mine.extxyz", cell)
    S = box_matrix(o.cell).tolist()
    files = {"files": [str(tmp_path / "mine.extxyz")], "names": [], "md_supercell": S,
             "reference": {"mine": name}}
    cfg = build_config({**TINY, "structures": files}, "tiny")
    run_campaign(cfg, tmp_path / "f", stop_after="structures", echo=False)
    mine = json.loads((tmp_path / "f" / "01_structures" / "structures.json").read_text())["structures"]["mine"]
    study_cfg = build_config({**TINY, "structures": {"names": [name], "size": "box", "learn_size": "cell"}}, "tiny")
    run_campaign(study_cfg, tmp_path / "s", stop_after="structures", echo=False)
    study = json.loads((tmp_path / "s" / "01_structures" / "structures.json").read_text())["structures"][name]
    for key in ("tm_label", "oct_occupancy_percent", "cell", "ordering", "na_sites_oct"):
        assert mine[key] == study[key], key
    np.testing.assert_allclose(mine["na_sites_frac"], study["na_sites_frac"])
    assert mine["sro"] == pytest.approx(study["sro"], abs=1e-9)
    assert mine["o_oct_of_file"] == pytest.approx(0.5) and mine["na_site_max_distance_A"] < 0.2
    assert mine["n_atoms"] == 37 and mine["md_supercell"] == S

    # the MD box must be the study's box of that cell
    bad = build_config({**TINY, "structures": {**files, "md_supercell": [2, 2, 2]}}, "tiny")
    with pytest.raises(InputFileError, match=r"structures\.reference"):
        run_campaign(bad, tmp_path / "b", stop_after="structures", echo=False)
    # without a reference the campaign stops after learning
    plain = build_config({**TINY, "structures": {**files, "reference": {}}}, "tiny")
    with pytest.raises(UserError, match=r"structures\.reference, missing for mine"):
        run_campaign(plain, tmp_path / "p", echo=False)


def test_report_names_pbe_labels_as_such():
    """The report's labeller note: PBE DFT for a GPAW PBE labeller, a caveat for any other."""
    from mtpkit.campaign.report import _header

    def note(labeller):
        data = {"config": {"report": {"title": "t"}, "scale": "paper", "labeller": labeller, "source": "c.toml"},
                "commit": "abc", "machine": "m", "written": "now", "stages": {}}
        return next(b[1] for b in _header(data) if b[0] == "note")

    pbe = note({"kind": "gpaw", "parameters": {"mode": "pw", "mode_ecut": 400, "kpts": {"density": 2.0}}})
    assert pbe.startswith("Labels come from PBE DFT (GPAW, mode pw, mode_ecut 400") and "not from" not in pbe
    assert "not from the PBE DFT" in note({"kind": "chgnet", "parameters": {}})
    assert "not from the PBE DFT" in note({"kind": "gpaw", "parameters": {"xc": "LDA"}})


def test_resume_accepts_changes_only_later_stages_read(tmp_path):
    """After `mtpkit learn` (stages up to active learning done) the production table may change;
    what a finished stage read may not, and production.temperatures feeds active learning."""
    from mtpkit.campaign.orchestrator import _check_folder
    from mtpkit.campaign.state import CampaignState

    base = build_config(TINY, "tiny")
    (tmp_path / "campaign.json").write_text(json.dumps(base.to_dict(), default=str))
    state = CampaignState(tmp_path)
    for stage in ("structures", "relax", "starting_set", "active_learning"):
        state.mark(stage, "done")

    def changed(table: str, **values):
        return build_config({**TINY, table: {**TINY.get(table, {}), **values}}, "tiny")

    _check_folder(changed("production", replicas=3, steps=5000), tmp_path, resume=True)
    _check_folder(changed("analysis", o_oct_frames=10), tmp_path, resume=True)
    _check_folder(changed("campaign", workers=2), tmp_path, resume=True)
    for table, values, key in (("production", {"temperatures": [500.0, 800.0]}, "production.temperatures"),
                               ("potential", {"max_dist": 5.5}, "potential.max_dist"),
                               ("campaign", {"seed": 8}, "campaign.seed")):
        with pytest.raises(UserError, match=key.replace(".", r"\.")):
            _check_folder(changed(table, **values), tmp_path, resume=True)
    state.mark("production", "running")  # an interrupted production has read its table
    with pytest.raises(UserError, match=r"production\.replicas"):
        _check_folder(changed("production", replicas=3), tmp_path, resume=True)


def test_resume_accepts_a_saved_configuration_that_predates_a_new_key():
    """A campaign saved before a key was added to the schema resumes when the new key holds its
    default (it means the same run); any other difference is still one."""
    from mtpkit.campaign.orchestrator import _same_table

    new = json.loads(json.dumps(build_config(TINY, "tiny").to_dict()))
    old = json.loads(json.dumps(new))
    del old["structures"]["reference"], old["active_learning"]["md_size_steps"]
    assert all(_same_table(k, old[k], new[k]) for k in new)
    changed = json.loads(json.dumps(new))
    changed["active_learning"]["md_size_steps"] = 100
    assert not _same_table("active_learning", old["active_learning"], changed["active_learning"])
    old["active_learning"]["retired_key"] = 1
    assert not _same_table("active_learning", old["active_learning"], new["active_learning"])
    assert not _same_table("production", {**new["production"], "replicas": 9}, new["production"])


def test_energy_ranking_names_the_lowest_occupancy_of_each_class(tiny_campaign):
    """Section 1 ranks structures of one composition by the labeller's energy per TM class; the
    campaign's own energies come from its relaxation (or, for structures used as given, the stored
    label of that configuration)."""
    from ase.io import read

    from mtpkit.campaign.orchestrator import gather_report_data
    from mtpkit.campaign.report import _energy_ranking

    out, cfg, *_ = tiny_campaign
    energies = gather_report_data(cfg, out)["energies"]
    assert energies
    relax = json.loads((out / "01_relax" / "relax.json").read_text())["structures"]
    for name, e in energies.items():
        n = len(read(out / "01_relax" / f"{name}.extxyz", format="extxyz"))
        assert e["source"] == "relaxation"
        assert e["energy_per_atom_eV"] == pytest.approx(relax[name]["after"]["energy_eV"] / n)
    assert _energy_ranking({"structures": {}}, energies) == []  # one structure: nothing to rank

    st = {"structures": {f"{tm}_oct{o}": {"tm_label": tm, "oct_occupancy_percent": o}
                         for tm in ("layered-TM", "mixed-TM") for o in (25, 50)}}
    e = {"layered-TM_oct25": -4.0970, "layered-TM_oct50": -4.0832, "mixed-TM_oct25": -4.0810,
         "mixed-TM_oct50": -4.0895}
    blocks = _energy_ranking(st, {n: {"energy_per_atom_eV": v, "formula": "Cl24Na9YZr3", "source": "x"}
                                  for n, v in e.items()})
    assert "layered-TM: 25 % (layered-TM_oct25); mixed-TM: 50 % (mixed-TM_oct50)" in blocks[0][1]
    rows = {r[0]: r for r in blocks[1][2]}
    assert rows["mixed-TM_oct25"][3] == "8.50" and rows["mixed-TM_oct25"][4] == "16.00"
    assert rows["layered-TM_oct50"][3] == "13.80"


def test_report_shows_the_probes_and_their_bounds():
    """The active-learning table gives the exploring potential's errors on each iteration's probes, and
    the stop paragraph states the bounds that made a rung reliable."""
    from mtpkit.campaign.report import _active_learning

    it = {"iteration": 3, "temperature_K": 500.0, "runs": [{"status": "done", "time_ps": 20.0}], "max_gamma": 4.2,
          "converged": False, "n_candidates": 5, "n_selected": 4, "n_labelled": 6, "n_train": 140,
          "errors": {"train": {"energy_rmse_mev_per_atom": 2.31, "force_rmse": 0.076}},
          "probes": {"n": 2, "n_labelled": 2, "potential": "iter_002",
                     "errors": {"energy_rmse_mev_per_atom": 7.25, "force_rmse": 0.121}}}
    cfg = {"gamma_select": 2.0, "gamma_break": 10.0, "gamma_stop": 5.0, "steps": 10000, "timestep": 2.0,
           "probes_per_iteration": 2, "probe_energy_rmse": 3.0, "probe_force_rmse": 0.1}
    blocks = _active_learning({"learning": {"iterations": [it], "stop_reason": ""}, "al_cfg": cfg})
    para = next(b[1] for b in blocks if b[0] == "p")
    assert "energy RMSE ≤ 3 meV/atom and force RMSE ≤ 0.1 eV/Å on 2 probe(s)" in para
    header, rows = next((b[1], b[2]) for b in blocks if b[0] == "table")
    assert header[-2:] == ["E RMSE probes (meV/atom)", "F RMSE probes (eV/Å)"]
    assert rows[0][-2:] == ["7.25", "0.121"]
    no_probes = _active_learning({"learning": {"iterations": [{**it, "probes": None}], "stop_reason": ""},
                                  "al_cfg": {**cfg, "probes_per_iteration": 0, "probe_energy_rmse": 0,
                                             "probe_force_rmse": 0}})
    assert "probe" not in next(b[1] for b in no_probes if b[0] == "p")
    assert next(b[2] for b in no_probes if b[0] == "table")[0][-2:] == ["—", "—"]


def test_report_says_who_labelled_a_given_training_set_and_where_the_potential_came_from(tmp_path):
    """A campaign that starts from a given potential and training set (the main job): the starting-set
    paragraph counts the given frames by the labeller their provenance names, and the active-learning
    paragraph names the first potential and whether it was refitted."""
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import read, write

    from mtpkit.campaign.orchestrator import _made_by
    from mtpkit.campaign.report import _active_learning, _starting_set

    frames = []
    for k, info in enumerate([{"code": "gpaw 26.7.0", "labeller": json.dumps({"xc": "PBE", "mode": "pw"})},
                              {"code": "gpaw 26.7.0", "labeller": json.dumps({"xc": "PBE"})}, {}]):
        a = bulk("Cu", cubic=True)
        a.calc = SinglePointCalculator(a, energy=-1.0 * k, forces=np.zeros((len(a), 3)))
        a.info.update(info)
        frames.append(a)
    write(tmp_path / "t.extxyz", frames)
    assert [_made_by(a.info) for a in read(tmp_path / "t.extxyz", ":")] == ["gpaw 26.7.0, PBE"] * 2 + ["not stated"]
    ss = {"n_labelled": 3, "n_quarantined": 0, "per_structure": 0, "n_initial": 3,
          "initial_training": str(tmp_path / "t.extxyz"),  # the configuration's key, as the report data has it
          "given": {"file": str(tmp_path / "t.extxyz"), "labelled_by": {"gpaw 26.7.0, PBE": 2, "not stated": 1}}}
    para = _starting_set({"starting_set": ss})[1][1]
    assert para == ("3 labelled configurations (0 quarantined): 3 given in `t.extxyz`, labelled by "
                    "gpaw 26.7.0, PBE (2), not stated (1).")
    cfg = {"gamma_select": 2.0, "gamma_break": 10.0, "gamma_stop": 5.0, "steps": 10000, "timestep": 2.0}
    data = {"learning": {"iterations": [], "stop_reason": ""}, "al_cfg": cfg,
            "config": {"potential": {"initial": "/x/nyzc75-pbe/pot.almtp", "refit_initial": False}}}
    para = next(b[1] for b in _active_learning(data) if b[0] == "p")
    assert "The first potential is the given `pot.almtp` (/x/nyzc75-pbe/pot.almtp), taken as it is" in para
    data["config"]["potential"] = {"initial": None}
    assert "first potential" not in next(b[1] for b in _active_learning(data) if b[0] == "p")
