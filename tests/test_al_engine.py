"""The one active-learning engine through ``mtpkit learn`` (a tiny EMT Cu campaign from files):
stop rules, quarantine and retries, bad input, kill -9 + resume, both exploration engines."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from mtpkit.active_learning.engine import learning_history
from mtpkit.active_learning.store import LabelStore
from mtpkit.cli import main
from mtpkit.config import load_config
from mtpkit.errors import UserError

HERE = Path(__file__).parent

CAMPAIGN = """
[campaign]
name = "cu"
species = ["Cu"]
seed = 3
[structures]
files = ["cu.cif"]
supercell = [2, 1, 1]
[labeller]
kind = "ase"
calculator = "al_helpers:SlowEMT"
parameters = {{ delay = {delay}, nan_every = {nan_every} }}
retries = {retries}
[relax]
steps = 0
[starting_set]
per_structure = 5
rattle = 0.1
strain = 0.02
relax_path = false
md_temperatures = []
[potential]
level = 4
min_dist = 1.8
max_dist = 4.5
training = {{ max_iter = 60 }}
[active_learning]
temperatures = [300.0, 1200.0]
schedule = "{schedule}"
ensemble = "nvt"
engine = "{engine}"
steps = {steps}
timestep = 1.0
grade_every = 10
runs_per_structure = 1
labels_per_iteration = 4
candidates_per_run = 50
candidate_policy = "top"
gamma_select = {gamma_select}
gamma_stop = {gamma_stop}
max_iterations = {max_iterations}
max_labels = {max_labels}
heldout = "heldout.extxyz"
"""


def make_campaign(folder: Path, *, max_iterations=2, delay=0.0, nan_every=0, steps=200, gamma_stop=5.0,
                  gamma_select=2.0, engine="ase", retries=0, max_labels=0, schedule="all") -> Path:
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
    path.write_text(CAMPAIGN.format(max_iterations=max_iterations, delay=delay, nan_every=nan_every, steps=steps,
                                    gamma_stop=gamma_stop, gamma_select=gamma_select, engine=engine,
                                    retries=retries, max_labels=max_labels, schedule=schedule))
    return path


@pytest.fixture
def helpers_on_path(monkeypatch):
    from mtpkit.active_learning import labellers

    monkeypatch.syspath_prepend(str(HERE))
    labellers._CALC_CACHE.clear()  # every test starts with fresh calculators (the helpers count calls)
    yield
    labellers._CALC_CACHE.clear()


def learn(path: Path, out: Path, *extra: str) -> int:
    return main(["learn", str(path), "--scale", "tiny", "--output", str(out), *extra])


def test_learn_runs_reports_and_stops_by_a_rule(tmp_path, helpers_on_path):
    path = make_campaign(tmp_path, max_iterations=3)
    out = tmp_path / "run"
    assert learn(path, out) == 0
    hist = learning_history(out / "03_active_learning")
    assert hist["finished"] and hist["stop_reason"]
    it0 = hist["iterations"][0]
    assert it0["n_train"] == 5 and it0["errors"]["heldout"]["force_rmse"] > 0
    for it in hist["iterations"][1:]:
        assert it["max_gamma"] > 0 and it["runs"]
        # every iteration either was reliable, or labelled something, or stopped the loop
        assert it["converged"] or it["n_labelled"] > 0 or it is hist["iterations"][-1]
    store = LabelStore(out / "labels.db")
    assert store.counts()["ok"] == 5 + sum(it["n_labelled"] for it in hist["iterations"])
    assert (out / "03_active_learning" / hist["final_potential"] / "pot.almtp").is_file()
    with pytest.raises(SystemExit):  # a second start without --resume is refused
        raise SystemExit(learn(path, out))


def test_nothing_new_to_learn_stops_instead_of_refitting(tmp_path, helpers_on_path):
    """Runs that are not reliable but whose candidates are all known (here: a deduplication radius
    larger than any displacement) stop the loop at once; the old `learn` loop refitted on
    unchanged data until max_iterations."""
    path = make_campaign(tmp_path, max_iterations=30, gamma_select=1.0, gamma_stop=1.0, steps=200)
    path.write_text(path.read_text().replace("[active_learning]", "[active_learning]\ndedup_distance = 100.0"))
    out = tmp_path / "run"
    assert learn(path, out) == 0
    hist = learning_history(out / "03_active_learning")
    assert len(hist["iterations"]) == 2, hist["stop_reason"]
    last = hist["iterations"][-1]
    assert "not reliable" in hist["stop_reason"] and "no new configuration" in hist["stop_reason"]
    assert last["n_candidates"] > 0 and last["n_unique"] == 0 and last["n_selected"] == 0
    assert not (out / "03_active_learning" / "iter_001" / "fit.json").exists()  # no refit


def _labelled_as_on_disk(out: Path) -> None:
    """What was labelled is what the iterations' candidates files hold, so a resumed iteration (which
    reads the file) requests the same rows instead of twins that differ by the file's precision."""
    from ase.io import read

    def key(a) -> bytes:
        return a.positions.tobytes() + a.cell.array.tobytes()

    stored = {key(r.atoms) for r in LabelStore(out / "labels.db").rows(subset="al")}
    selected = set()
    for it_dir in sorted((out / "03_active_learning").glob("iter_*")):
        sel = it_dir / "selection.json"
        if sel.is_file() and json.loads(sel.read_text())["selected"]:
            cands = read(it_dir / "candidates.extxyz", ":")
            selected |= {key(cands[i]) for i in json.loads(sel.read_text())["selected"]}
    assert selected and selected == stored  # to the bit


def test_label_budget_stops(tmp_path, helpers_on_path):
    path = make_campaign(tmp_path, max_iterations=30, gamma_select=1.0, gamma_stop=1.0, max_labels=6)
    out = tmp_path / "run"
    assert learn(path, out) == 0
    hist = learning_history(out / "03_active_learning")
    assert hist["stop_reason"].startswith("label budget spent")
    assert sum(it["n_labelled"] for it in hist["iterations"]) == 6
    _labelled_as_on_disk(out)


def test_failed_labels_are_quarantined_then_retried(tmp_path, helpers_on_path):
    path = make_campaign(tmp_path, max_iterations=1, nan_every=2, retries=0)
    out = tmp_path / "run"
    assert learn(path, out) == 0
    store = LabelStore(out / "labels.db")
    q = list(store.rows(status="quarantined", subset="start"))
    assert len(q) == 2 and store.counts(subset="start")["ok"] == 3
    assert "energy is not finite" in q[0].data["reason"]
    assert learning_history(out / "03_active_learning")["iterations"][0]["n_train"] == 3
    # --retry-quarantined relabels them with the same settings (a new process: the helper's
    # failure counter restarts, so every second retry fails again); nothing finished is redone
    before = store.counts()
    log = tmp_path / "labels.log"
    os.environ["MTPKIT_TEST_LABEL_LOG"] = str(log)
    try:
        assert learn(path, out, "--resume", "--retry-quarantined") == 0
    finally:
        del os.environ["MTPKIT_TEST_LABEL_LOG"]
    after = store.counts()
    assert after["quarantined"] < before["quarantined"] and after["pending"] == 0
    assert after["ok"] + after["quarantined"] == before["ok"] + before["quarantined"]
    redone = {r.keys["config_id"] for r in store.rows(status="ok")} & set(log.read_text().split())
    assert len(redone) == after["ok"] - before["ok"]


@pytest.mark.parametrize("retries", [0, 1, 2])
def test_retries_relabel_before_quarantine(tmp_path, helpers_on_path, retries):
    """Configurations that fail twice, then work: quarantined with 0 or 1 retries, labelled with 2."""
    path = make_campaign(tmp_path, max_iterations=1)
    path.write_text(path.read_text().replace('calculator = "al_helpers:SlowEMT"', 'calculator = "al_helpers:FlakyEMT"')
                    .replace("parameters = { delay = 0.0, nan_every = 0 }", "parameters = { fail_times = 2 }")
                    .replace("retries = 0", f"retries = {retries}"))
    out = tmp_path / "run"
    assert learn(path, out) == 0
    counts = LabelStore(out / "labels.db").counts(subset="start")
    assert counts["pending"] == 0 and counts["ok"] + counts["quarantined"] == 5
    if retries < 2:
        assert counts["quarantined"] > 0
    else:
        assert counts["quarantined"] == 0


@pytest.mark.parametrize("edit, key", [
    (("[active_learning]", "[active_learning]\nbogus_key = 1"), "active_learning.bogus_key"),
    (("temperatures = [300.0, 1200.0]", "temperatures = []"), "active_learning.temperatures"),
    (('kind = "ase"', 'kind = "vasp-magic"'), "labeller.kind"),
    (("[relax]", "[relaks]"), "relaks"),
    (("gamma_stop = 5.0", "gamma_stop = 1.5"), "active_learning.gamma_stop"),
    (("gamma_select = 2.0", "gamma_select = 20.0"), "active_learning.gamma_select"),
    (("steps = 200", 'steps = "many"'), "active_learning.steps"),
    (("[active_learning]", "[active_learning]\nprobe_force_rmse = 0.1"), "probe_force_rmse"),
    (('calculator = "al_helpers:SlowEMT"', 'calculator = "no_such_module:Calc"'), "labeller.calculator"),
])
def test_bad_input_names_the_key_before_any_work(tmp_path, helpers_on_path, capsys, edit, key):
    path = make_campaign(tmp_path)
    path.write_text(path.read_text().replace(*edit))
    assert learn(path, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert key in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_initial_potential_species_count_is_checked(tmp_path, helpers_on_path):
    from mtpkit.potentials.mtp_io import write_mtp
    from mtpkit.potentials.templates import make_template

    path = make_campaign(tmp_path)
    write_mtp(tmp_path / "two.mtp", make_template(4, 2))
    path.write_text(path.read_text().replace("level = 4", 'initial = "two.mtp"'))
    with pytest.raises(UserError, match=r"potential\.initial.*species_count = 2"):
        main_raise(["learn", str(path), "--output", str(tmp_path / "run")])


def test_initial_potential_taken_as_it_is(tmp_path, helpers_on_path):
    """potential.refit_initial = false: iteration 0 is the given trained potential, unchanged (its
    errors on the training set reported, a parity plot written); labels added later refit it."""
    import numpy as np

    from mtpkit.potentials.mtp_io import read_mtp

    first = make_campaign(tmp_path / "a", max_iterations=2, gamma_select=1.0, gamma_stop=1.0)
    assert learn(first, tmp_path / "a" / "run") == 0
    given = tmp_path / "a" / "run" / "03_active_learning" / learning_history(
        tmp_path / "a" / "run" / "03_active_learning")["final_potential"] / "pot.almtp"
    path = make_campaign(tmp_path / "b", max_iterations=1, gamma_select=1.0, gamma_stop=1.0)
    path.write_text(path.read_text().replace("level = 4", f'initial = "{given}"\nrefit_initial = false'))
    out = tmp_path / "b" / "run"
    assert learn(path, out) == 0
    it0 = out / "03_active_learning" / "iter_000"
    fit = json.loads((it0 / "fit.json").read_text())
    assert fit["iterations"] == 0 and "refit_initial = false" in fit["stop_reason"]
    assert fit["train"]["n_configs"] == 5 and fit["heldout"]["force_rmse"] > 0
    assert (it0 / "train.png").is_file()
    ours, theirs = read_mtp(it0 / "pot.mtp"), read_mtp(given)
    assert np.array_equal(ours.species_coeffs, theirs.species_coeffs)
    assert np.array_equal(ours.moment_coeffs, theirs.moment_coeffs)
    hist = learning_history(out / "03_active_learning")
    if hist["iterations"][-1]["n_labelled"]:  # labels added: the next potential is a fit
        assert json.loads((out / "03_active_learning" / "iter_001" / "fit.json").read_text())["iterations"] > 0
    path.write_text(path.read_text().replace(f'initial = "{given}"\n', ""))
    with pytest.raises(UserError, match=r"field 'potential\.refit_initial': false takes potential\.initial"):
        load_config(path, "tiny")


def main_raise(argv):
    from mtpkit.cli import build_parser

    args = build_parser().parse_args(argv)
    return args.func(args)


def test_same_file_for_learn_and_run(tmp_path):
    """``mtpkit learn`` reads the file ``mtpkit run`` reads; ``mtpkit config`` prints it resolved and
    what it prints reads back to the same configuration."""
    from mtpkit.config import build_config, dump_toml

    example = HERE.parent / "examples" / "nyzc75.toml"
    for scale in ("tiny", "default", "paper"):
        cfg = load_config(example, scale)
        import tomllib

        doc = tomllib.loads(dump_toml(cfg))
        again = build_config(doc, scale, example)
        assert again.to_dict() == cfg.to_dict()
    assert main(["learn", str(example), "--scale", "tiny", "--check"]) == 0


def _launch(path: Path, out: Path, resume: bool, log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
               MTPKIT_TEST_LABEL_LOG=str(log))
    cmd = [sys.executable, "-m", "mtpkit.cli", "learn", str(path), "--scale", "tiny", "--output", str(out)]
    return subprocess.Popen(cmd + (["--resume"] if resume else []), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _phase(out: Path) -> str | None:
    """What the engine is doing now, from its files: explore, label (selection written, no fit)
    or fit (labels done, fit running)."""
    al = out / "03_active_learning"
    try:
        k = json.loads((al / "state.json").read_text())["iteration"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None
    if k < 1:
        return None
    d = al / f"iter_{k:03d}"
    if not (d / "explore.json").is_file():
        return "explore"
    if not (d / "selection.json").is_file():
        return "select"
    if not (d / "train.log").is_file():
        return "label"
    return "fit" if not (d / "fit.json").is_file() else None


def test_kill_9_in_each_phase_then_resume(tmp_path):
    """SIGKILL ``mtpkit learn`` while it explores, labels and fits, resuming in between; afterwards
    no finished label is lost and none was computed twice."""
    path = make_campaign(tmp_path, max_iterations=4, delay=0.4, steps=300, gamma_select=1.0, gamma_stop=1.0,
                         schedule="ladder")
    out = tmp_path / "run"
    log = tmp_path / "labels.log"
    killed_in = []
    checkpoints = []  # after each kill: (labels committed, calculations logged so far)
    resume = False
    for target in ("explore", "label", "fit"):
        for _attempt in range(3):  # a phase that went by between two polls gets another chance
            proc = _launch(path, out, resume, log)
            resume = True
            deadline = time.time() + 180
            hit = False
            while time.time() < deadline and proc.poll() is None:
                if _phase(out) == target:
                    if target == "label":
                        time.sleep(0.2)  # be inside a labelling call
                    hit = True
                    break
                time.sleep(0.005)
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            done = {r.keys["config_id"] for r in LabelStore(out / "labels.db").rows(status="ok")}
            checkpoints.append((done, len(log.read_text().split()) if log.is_file() else 0))
            if hit:
                killed_in.append(target)
                break
    proc = _launch(path, out, True, log)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    hist = learning_history(out / "03_active_learning")
    assert hist["finished"]
    assert {"explore", "label", "fit"} <= set(killed_in), killed_in
    store = LabelStore(out / "labels.db")
    assert store.counts()["pending"] == 0
    # a label committed before a kill is never computed again (a calculation cut short by the
    # kill, or finished but not yet committed, may be)
    calcs = log.read_text().split()
    for done, n in checkpoints:
        again = Counter(c for c in calcs[n:] if c in done)
        assert not again, again
    assert Counter(calcs).most_common(1)[0][1] <= 1 + len(checkpoints)


def test_ase_and_lammps_exploration_engines(tmp_path, helpers_on_path):
    """Both engines run an iteration and give the same kind of record (MD-layer statuses)."""
    from mtpkit.active_learning.explore import choose_engine

    for engine in ("ase", "lammps"):
        if engine == "lammps":
            try:
                choose_engine("lammps", "all")
            except UserError:
                pytest.skip("LAMMPS plugin not built")
        folder = tmp_path / engine
        path = make_campaign(folder, max_iterations=1, gamma_select=1.0, gamma_stop=1.0, engine=engine)
        assert learn(path, folder / "run") == 0
        it1 = learning_history(folder / "run" / "03_active_learning")["iterations"][1]
        assert len(it1["runs"]) == 2
        for r in it1["runs"]:
            assert r["status"] in ("done", "extrapolation_break", "failed")
            assert r["max_gamma"] > 0 and r["steps_done"] > 0


def learned_with_md_size_rung(tmp_path, settings: str):
    """A one-iteration campaign of 8-atom cells with 64-atom production boxes and a production-size
    rung configured by ``settings`` (TOML lines of [active_learning]), learned; (folder, plan, engine)."""
    from mtpkit.active_learning.engine import ActiveLearner
    from mtpkit.campaign.orchestrator import learning_plan

    path = make_campaign(tmp_path, max_iterations=1)
    text = path.read_text().replace("supercell = [2, 1, 1]\n", "supercell = [2, 1, 1]\nmd_supercell = [2, 2, 2]\n")
    path.write_text(text.replace("[active_learning]\n", f"[active_learning]\nmd_size_rung = true\n{settings}\n"))
    out = tmp_path / "run"
    assert learn(path, out) == 0
    plan = learning_plan(load_config(path, scale="tiny"), out.resolve())
    return out, plan, ActiveLearner(plan, out / "03_active_learning", LabelStore(out / "labels.db"))


def test_production_size_frames_are_cut_to_learning_cells(tmp_path, helpers_on_path):
    """``md_size_labels = "tile"``: frames of the production-size rung become cells of the learning
    structure's shape around their most extrapolating atom before selection and labelling."""
    from ase.io import read


    out, plan, engine = learned_with_md_size_rung(tmp_path, 'md_size_labels = "tile"')
    rung = engine.rungs[-1]
    assert rung.md_size and set(plan.md_structures) == {"cu"}
    tile, box = read(plan.structures["cu"]), read(plan.md_structures["cu"])
    assert len(tile) == 8 and len(box) == 64
    frames = []
    for s in range(3):
        f = box.copy()
        f.rattle(0.15, seed=s)
        f.info.update(run="cu/T1200K-md/r0", md_step=10 * s, MV_grade=3.0)
        frames.append(f)
    chosen, info = engine._select(2, engine.last_fit(2), [frames], {"labels_added": 0}, rung,
                                  [{"run": "cu/T1200K-md/r0", "structure": "cu"}])
    assert info["cut_from_frames"] == 3 and info["cut_tiles"] == 3 and info["candidates"] == 3
    cands = read(out / "03_active_learning" / "iter_002" / "candidates.extxyz", index=":")
    assert len(cands) == info["unique"] and chosen
    for c in cands:
        assert len(c) == 8 and abs(c.get_volume() - box.get_volume() / 8) < 0.05 * c.get_volume()
        assert c.info["structure"] == "cu" and c.info["md_step"] in (0, 10, 20)
        centre = c.info["cut_atom"]
        assert c.arrays["box_index"][c.info["cut_centre"]] == centre


def test_production_size_rung_that_only_checks_labels_nothing(tmp_path, helpers_on_path):
    """``md_size_labels = "none"``: extrapolating box frames are not labelled; the selection is empty
    and says why, so an unreliable box rung stops the learning with that reason. The box rung's runs
    have their own length, ``md_size_steps``."""
    from ase.io import read


    out, plan, engine = learned_with_md_size_rung(tmp_path, 'md_size_labels = "none"\nmd_size_steps = 30')
    rung = engine.rungs[-1]
    assert rung.md_size and not engine.rungs[0].md_size
    assert engine.steps_of(rung) == 30 and engine.steps_of(engine.rungs[0]) == plan.al.steps == 200
    d = out / "03_active_learning" / "iter_009"
    d.mkdir()
    records, _ = engine._explore(9, rung, engine.last_fit(2), d)
    assert records and {r["steps"] for r in records} == {30} and all(r["run"].split("/")[1].endswith("-md")
                                                                    for r in records)
    box = read(plan.md_structures["cu"])
    box.info.update(run="cu/T1200K-md/r0", md_step=10, MV_grade=30.0)
    n_rows = len(list(LabelStore(out / "labels.db").rows()))
    chosen, info = engine._select(2, engine.last_fit(2), [[box]], {"labels_added": 0}, rung,
                                  [{"run": "cu/T1200K-md/r0", "structure": "cu"}])
    assert chosen == [] and info["selected"] == [] and "md_size_labels = 'none'" in info["why_empty"]
    assert len(list(LabelStore(out / "labels.db").rows())) == n_rows


@pytest.mark.parametrize("bound, reliable", [(1e6, True), (1e-9, False)])
def test_probes_are_labelled_reported_and_can_withhold_reliability(tmp_path, helpers_on_path, bound, reliable):
    """Every iteration labels frames drawn from its runs' trajectories (subset "probe", never a run's
    first frame), reports the exploring potential's errors on them and trains on them. Grades that say
    reliable (gamma_stop = gamma_break = 1000) finish the ladder in two iterations when the probes are
    within the bound; an energy bound no potential meets withholds reliability to max_iterations."""
    from mtpkit.active_learning.explore import choose_engine

    try:
        choose_engine("lammps", "all")
    except UserError:
        pytest.skip("LAMMPS plugin not built")
    path = make_campaign(tmp_path, max_iterations=3, engine="lammps", gamma_stop=1000.0, schedule="ladder")
    path.write_text(path.read_text().replace(
        "[active_learning]", f"[active_learning]\ngamma_break = 1000.0\nprobes_per_iteration = 2\n"
                             f"probe_energy_rmse = {bound}"))
    out = tmp_path / "run"
    assert learn(path, out) == 0
    hist = learning_history(out / "03_active_learning")
    its = hist["iterations"][1:]
    assert len(its) == (2 if reliable else 3), hist["stop_reason"]
    assert hist["stop_reason"].startswith("reliable" if reliable else "max_iterations")
    store = LabelStore(out / "labels.db")
    probes = list(store.rows(subset="probe", status="ok"))
    assert len(probes) == 2 * len(its)
    for it in its:
        assert it["converged"] is reliable
        p = it["probes"]
        # the exploring potential: a reliable rung refits nothing, so iteration 0's throughout
        assert p["n"] == p["n_labelled"] == 2
        assert p["potential"] == ("iter_000" if reliable else f"iter_{it['iteration'] - 1:03d}")
        assert p["errors"]["energy_rmse_mev_per_atom"] > 0 and p["errors"]["force_rmse"] > 0
        mine = [r.keys["source"] for r in probes if r.keys["source"].startswith(f"probe:it{it['iteration']:03d}:")]
        assert len(mine) == 2 and all(int(s.rsplit(":step", 1)[1]) > 0 for s in mine)
    assert hist["labels_added"] == sum(it["n_labelled"] for it in its) >= 2 * len(its)
    if not reliable:  # not reliable: the probes are trained on, with nothing selected beside them
        for a, b in itertools.pairwise(hist["iterations"]):
            assert b["n_train"] == a["n_train"] + b["n_labelled"]
        assert all(it["n_labelled"] >= 2 for it in its)


def test_probes_count_against_the_label_budget(tmp_path, helpers_on_path):
    """Probes that withhold reliability are labels: with max_labels = probes_per_iteration they spend
    the whole budget, so nothing is selected beside them, they are trained on and learning stops on the
    budget after one iteration (the main job's tiny label cap holds whatever the probes say)."""
    from mtpkit.active_learning.explore import choose_engine

    try:
        choose_engine("lammps", "all")
    except UserError:
        pytest.skip("LAMMPS plugin not built")
    path = make_campaign(tmp_path, max_iterations=3, engine="lammps", gamma_stop=1000.0, schedule="ladder",
                         max_labels=2)
    path.write_text(path.read_text().replace(
        "[active_learning]", "[active_learning]\ngamma_break = 1000.0\nprobes_per_iteration = 2\n"
                             "probe_energy_rmse = 1e-9"))
    out = tmp_path / "run"
    assert learn(path, out) == 0
    hist = learning_history(out / "03_active_learning")
    assert hist["stop_reason"].startswith("label budget spent (2 of max_labels = 2)"), hist["stop_reason"]
    (it,) = hist["iterations"][1:]
    assert it["converged"] is False and it["n_selected"] == 0 and it["n_labelled"] == 2
    assert it["n_train"] == hist["iterations"][0]["n_train"] + 2
    assert [r.keys["subset"] for r in LabelStore(out / "labels.db").rows(subset="probe", status="ok")] == ["probe"] * 2
    assert not list(LabelStore(out / "labels.db").rows(subset="al"))
    # the selection itself: rattled frames the potential has not seen, room 2 of the budget, 2 probes spent
    from ase.io import read

    from mtpkit.active_learning.engine import ActiveLearner
    from mtpkit.campaign.orchestrator import learning_plan

    plan = learning_plan(load_config(path, scale="tiny"), out.resolve())
    engine = ActiveLearner(plan, out / "03_active_learning", LabelStore(out / "labels.db"))
    frames = []
    for s in range(4):
        f = read(next(iter(plan.structures.values())))
        f.rattle(0.2, seed=s)
        f.info.update(run="cu/T300K/r0", md_step=10 * (s + 1), MV_grade=3.0)
        frames.append(f)
    for spent, k in ((0, 7), (2, 8)):
        (out / "03_active_learning" / f"iter_{k:03d}").mkdir()
        chosen, info = engine._select(k, engine.last_fit(k), [frames], {"labels_added": 0}, engine.rungs[0],
                                      [{"run": "cu/T300K/r0", "structure": "cu"}], spent)
        assert (len(chosen) > 0) is (spent == 0), info
        assert spent == 0 or info["why_empty"] == "the label budget is spent"
