"""The engine drives the batch labeller (job folders for VASP / QE): prepare → submit → poll →
ingest, resumable after a kill while jobs are queued, no job submitted twice. The fake job copies
a real pw.x output (tests/data/qe_nacl) after a delay, as a queued job would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.io import read

from mtpkit.active_learning.engine import LearningPlan, label_configurations
from mtpkit.active_learning.store import LabelStore
from mtpkit.config.schema import ActiveLearningCfg, BatchCfg, LabellerCfg, PotentialCfg

QE_DATA = Path(__file__).parent / "data" / "qe_nacl"
QE_PARAMETERS = {
    "input_data": {"control": {"calculation": "scf", "pseudo_dir": "../pseudo", "outdir": "./scratch",
                               "prefix": "nacl"},
                   "system": {"ecutwfc": 45.0}, "electrons": {"conv_thr": 1e-9}},
    "pseudopotentials": {"Na": "Na.pbe-tm.UPF", "Cl": "Cl.pbe-tm.UPF"}, "kpts": [2, 2, 2]}


def nacl_displaced():
    atoms = bulk("NaCl", "rocksalt", a=5.6)
    atoms.positions[0] += (0.05, 0.02, -0.03)
    return atoms


class Interrupted(Exception):
    pass


def plan_for(tmp_path: Path, delay: float) -> LearningPlan:
    # the job: wait, then "finish" with the committed pw.x output; submitting counts itself
    job = f"#!/bin/sh\ncd {{folder}} && sleep {delay} && cp {QE_DATA / 'pw.out'} pw.out.part && mv pw.out.part pw.out\n"
    submit = f"sh -c 'echo {{folder}} >> {tmp_path / 'submitted.log'}; nohup sh job.sh > /dev/null 2>&1 &'"
    lab = LabellerCfg(kind="qe", retries=0, batch=BatchCfg(job_template=job, submit_command=submit,
                                                           input_parameters=QE_PARAMETERS, poll_seconds=0.2))
    return LearningPlan(species=["Na", "Cl"], seed=1, al=ActiveLearningCfg(), potential=PotentialCfg(),
                        labeller=lab, structures={})


def test_batch_labels_through_the_engine_survive_a_kill_with_jobs_queued(tmp_path, monkeypatch):
    plan = plan_for(tmp_path, delay=1.5)
    store = LabelStore(tmp_path / "labels.db")
    atoms = nacl_displaced()
    # first call: submit, then "killed" at the first poll while the job is still queued
    import mtpkit.active_learning.label_queue as lq

    def killed(_s):
        raise Interrupted

    monkeypatch.setattr(lq.time, "sleep", killed)
    with pytest.raises(Interrupted):
        label_configurations(store, plan, [atoms], ["nacl"], "start", tmp_path / "jobs")
    assert store.counts()["pending"] == 1
    monkeypatch.undo()
    # resumed: the queued job is polled, not submitted again, and its output ingested
    ok, bad = label_configurations(store, plan, [atoms], ["nacl"], "start", tmp_path / "jobs")
    assert len(ok) == 1 and not bad
    assert len((tmp_path / "submitted.log").read_text().split()) == 1
    label = store.labelled()[0]
    ref = read(QE_DATA / "pw.out", format="espresso-out", index=-1)
    assert label.get_potential_energy() == ref.get_potential_energy(force_consistent=True)
    np.testing.assert_array_equal(label.get_forces(), ref.get_forces())
    assert label.info["code"].startswith("qe (job folder")


def test_a_job_between_submitting_and_recorded_is_not_submitted_again(tmp_path):
    """A kill right after the submit command ran but before it was recorded: the folder's
    ``.submitting`` marker keeps the job from being submitted twice."""
    plan = plan_for(tmp_path, delay=0.0)
    store = LabelStore(tmp_path / "labels.db")
    atoms = nacl_displaced()
    rid = store.request(atoms, LabellerSpec_of(plan), source="nacl", subset="start")
    row = next(store.rows())
    d = tmp_path / "jobs" / f"{row.keys['config_id']}-{row.keys['settings_id']}-a0"
    d.mkdir(parents=True)
    (d / ".submitting").write_text("0\n")
    (d / "pw.out").write_text((QE_DATA / "pw.out").read_text())  # the job ran meanwhile
    ok, _ = label_configurations(store, plan, [atoms], ["nacl"], "start", tmp_path / "jobs")
    assert ok == [rid] and not (tmp_path / "submitted.log").exists()


def test_a_job_that_never_writes_is_quarantined_after_the_timeout(tmp_path):
    plan = plan_for(tmp_path, delay=0.0)
    plan.labeller.batch.job_template = "#!/bin/sh\ntrue\n"  # ends without output
    plan.labeller.batch.timeout_hours = 0.5 / 3600
    store = LabelStore(tmp_path / "labels.db")
    ok, bad = label_configurations(store, plan, [nacl_displaced()], ["nacl"], "start", tmp_path / "jobs")
    assert not ok and len(bad) == 1
    assert "no pw.out" in next(store.rows(status="quarantined")).data["reason"]


def LabellerSpec_of(plan):  # reads like the class it returns
    return plan.spec()
