"""The active-learning loop: campaign validation, a tiny EMT campaign, kill -9 at each phase + resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from mtpkit.active_learning.campaign import load_campaign
from mtpkit.active_learning.loop import Loop
from mtpkit.errors import UserError

HERE = Path(__file__).parent

CAMPAIGN = """
[campaign]
folder = "run"
max_iterations = {max_iterations}
seed = 3
[potential]
species = ["Cu"]
level = 4
min_dist = 1.8
max_dist = 4.5
[structures]
files = ["cu.cif"]
supercell = [2, 1, 1]
rattled_per_structure = 4
rattle = 0.05
[labeller]
kind = "ase"
calculator = "al_helpers:SlowEMT"
parameters = {{ delay = {delay}, nan_every = {nan_every} }}
retries = 0
[exploration]
temperatures = [300.0, 1200.0]
steps = {steps}
grade_every = 10
[selection]
max_labels_per_iteration = 4
[training]
max_iter = 60
[stopping]
gamma_max = {gamma_max}
[validation]
heldout = "heldout.extxyz"
"""


def make_campaign(folder: Path, max_iterations=2, delay=0.0, nan_every=0, steps=200, gamma_max=5.0) -> Path:
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    folder.mkdir(parents=True, exist_ok=True)
    write(folder / "cu.cif", bulk("Cu", "fcc", a=3.6, cubic=True))
    held = []
    for s in range(4):
        a = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
        a.rattle(0.08, seed=100 + s)
        a.calc = EMT()
        e, f = a.get_potential_energy(), a.get_forces()
        a.calc = SinglePointCalculator(a, energy=e, forces=f)
        held.append(a)
    write(folder / "heldout.extxyz", held)
    path = folder / "c.toml"
    path.write_text(CAMPAIGN.format(max_iterations=max_iterations, delay=delay, nan_every=nan_every,
                                    steps=steps, gamma_max=gamma_max))
    return path


@pytest.fixture
def helpers_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


def test_tiny_campaign_runs_and_reports(tmp_path, helpers_on_path):
    path = make_campaign(tmp_path, max_iterations=3)
    state = Loop(load_campaign(path), log=None).start()
    assert state.done
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["labels"] >= 5  # the starting set at least
    r0 = json.loads((run / "iter_000" / "report.json").read_text())
    assert r0["labels_added"] == 5 and r0["heldout_errors"]["force_rmse"] is not None
    assert set(r0["phase_times_s"]) == {"explore", "select", "label", "train", "report"}
    # every later iteration either added labels or was the final, clean one
    for k in range(1, state.iteration + 1):
        rep = json.loads((run / f"iter_{k:03d}" / "report.json").read_text())
        assert rep["final"] or rep["labels_added"] > 0 or rep["unique_candidates"] == 0
        assert rep["max_grade"]["max"] is not None
    assert (run / "iter_000" / "pot.almtp").exists()
    with pytest.raises(UserError, match="--resume"):
        Loop(load_campaign(path), log=None).start()


def test_failed_labels_are_quarantined_with_reason(tmp_path, helpers_on_path):
    path = make_campaign(tmp_path, max_iterations=0, nan_every=2)
    Loop(load_campaign(path), log=None).start()
    q = list((tmp_path / "run" / "quarantine").glob("*.json"))
    labels = list((tmp_path / "run" / "labels").glob("*.extxyz"))
    assert len(q) == 2 and len(labels) == 3
    assert "energy is not finite" in json.loads(q[0].read_text())["reason"]
    # quarantined configurations are not in the training set
    loop = Loop(load_campaign(path), log=None)
    assert len(loop.training_images(0)) == 3
    # retry: with a working labeller and one more iteration they are labelled and trained on
    path.write_text(path.read_text().replace("nan_every = 2", "nan_every = 0")
                    .replace("max_iterations = 0", "max_iterations = 1"))
    loop = Loop(load_campaign(path), log=None)
    assert loop.retry_quarantined() == 2
    loop.start(resume=True)
    assert not list((tmp_path / "run" / "quarantine").glob("*.json"))
    assert len(list((tmp_path / "run" / "labels").glob("*.extxyz"))) >= 5
    assert len(loop.training_images(1)) >= 5


@pytest.mark.parametrize("edit, key", [
    (("[selection]", "[selection]\nbogus_key = 1"), "selection.bogus_key"),
    (("temperatures = [300.0, 1200.0]", "temperatures = []"), "exploration.temperatures"),
    (('species = ["Cu"]', 'species = ["Ag"]'), "structures.files"),
    (('calculator = "al_helpers:SlowEMT"', 'calculator = "no_such_module:Calc"'), "labeller.calculator"),
    (('kind = "ase"', 'kind = "vasp-magic"'), "labeller.kind"),
    (("[stopping]", "[stoping]"), "stoping"),
    (("max_iter = 60", "max_iterz = 60"), "training.max_iterz"),
    (("steps = 200", 'steps = "many"'), "exploration.steps"),
])
def test_bad_input_names_the_key_before_any_work(tmp_path, helpers_on_path, edit, key):
    path = make_campaign(tmp_path)
    path.write_text(path.read_text().replace(*edit))
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        load_campaign(path)
    assert not (tmp_path / "run").exists()


def test_initial_potential_species_count_is_checked(tmp_path, helpers_on_path):
    from mtpkit.potentials.mtp_io import write_mtp
    from mtpkit.potentials.templates import make_template

    path = make_campaign(tmp_path)
    write_mtp(tmp_path / "two.mtp", make_template(4, 2))
    path.write_text(path.read_text().replace("level = 4", 'initial = "two.mtp"'))
    with pytest.raises(UserError, match=r"potential\.species.*species_count = 2"):
        load_campaign(path)


def test_cli_reports_bad_key(tmp_path, helpers_on_path, capsys):
    from mtpkit.cli import main

    path = make_campaign(tmp_path)
    path.write_text(path.read_text().replace("[selection]", "[selection]\ngama_select = 3"))
    assert main(["learn", str(path)]) == 2
    err = capsys.readouterr().err
    assert "selection.gama_select" in err and "Traceback" not in err


def _launch(path: Path, resume: bool, log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), env_path()]), MTPKIT_TEST_LABEL_LOG=str(log))
    cmd = [sys.executable, "-m", "mtpkit.cli", "learn", str(path), "--quiet"] + (["--resume"] if resume else [])
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def env_path() -> str:
    return os.environ.get("PYTHONPATH", "")


def _state(run: Path) -> tuple[int, str] | None:
    try:
        d = json.loads((run / "state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return d["iteration"], d["phase"]


def test_kill_9_at_each_phase_then_resume(tmp_path):
    """SIGKILL the campaign in every phase of iteration 1, resuming in between;
    afterwards no finished label is lost and none was computed twice."""
    path = make_campaign(tmp_path, max_iterations=3, delay=0.4, steps=300, gamma_max=1.0 + 1e-9)
    run = tmp_path / "run"
    log = tmp_path / "labels.log"
    killed_in = []
    resume = False
    phases_order = ("explore", "select", "label", "train", "report")
    finished_early = False
    for target in phases_order:
        # Kill as soon as the campaign is in `target` (iteration >= 1). A phase that went by
        # between two polls gets another chance in the next iteration, so the test does not
        # depend on how fast the machine is.
        for _attempt in range(3):
            proc = _launch(path, resume, log)
            resume = True
            deadline = time.time() + 120
            while time.time() < deadline and proc.poll() is None:
                st = _state(run)
                if st is not None and st[0] >= 1 and st[1] == target:
                    if target == "label":
                        time.sleep(0.1)  # be inside a labelling call, not before it
                    break
                time.sleep(0.005)
            if proc.poll() is not None:  # the campaign finished before reaching the target again
                assert proc.returncode == 0, proc.communicate()
                finished_early = True
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed_in.append(_state(run))
            if killed_in[-1][1] == target:
                break
        if finished_early:
            break
    proc = _launch(path, True, log)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    final = json.loads((run / "state.json").read_text())
    assert final["done"]
    # killed at least once in explore, label and train (the slow phases)
    phases = {p for (it, p) in killed_in if it >= 1}
    assert {"explore", "label", "train"} <= phases, killed_in
    print("killed in", killed_in)
    # every selected configuration ended labelled (nothing lost), none labelled twice
    ids = []
    for k in range(final["iteration"] + 1):
        f = run / f"iter_{k:03d}" / "selected.json"
        if f.exists():
            ids += json.loads(f.read_text())["ids"]
    labelled = {p.stem for p in (run / "labels").glob("*.extxyz")}
    assert set(ids) == labelled
    counts = Counter(log.read_text().split())
    twice = {c: n for c, n in counts.items() if c in labelled and n > 1}
    assert not twice, twice


def test_ase_and_lammps_exploration_engines(tmp_path, helpers_on_path):
    """Both exploration engines run an iteration: ASE MD with grade checks, and LAMMPS
    pair_style mtp with extrapolation control (skipped when the plugin is not built)."""
    from mtpkit.active_learning.loop import exploration_engine

    for engine in ("ase", "lammps"):
        folder = tmp_path / engine
        path = make_campaign(folder, max_iterations=1, gamma_max=1.0 + 1e-9)
        path.write_text(path.read_text().replace("[exploration]", f'[exploration]\nengine = "{engine}"'))
        camp = load_campaign(path)
        if engine == "lammps":
            try:
                exploration_engine("lammps", __import__("mtpkit.active_learning.active_set",
                                                        fromlist=["ActiveSet"]).ActiveSet.empty(3))
            except UserError:
                pytest.skip("LAMMPS plugin not built")
        Loop(camp, log=None).start()
        ex = json.loads((folder / "run" / "iter_001" / "explore.json").read_text())
        assert len(ex["runs"]) == 2 and all(r["engine"] == engine for r in ex["runs"])
        assert all(r["max_grade"] > 0 and r["steps_done"] > 0 for r in ex["runs"])
