"""The label store (ase.db) and the resumable labelling queue that fills it."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from ase.build import bulk
from ase.units import GPa

from mtpkit.active_learning.dft_gpaw import pulay_stress
from mtpkit.active_learning.label_queue import label_pending
from mtpkit.active_learning.labellers import LabellerSpec
from mtpkit.active_learning.store import LabelStore, config_id, settings_id
from mtpkit.executor import Executor, Job


def cu(i: int):
    a = bulk("Cu", "fcc", a=3.6, cubic=True)
    a.rattle(0.05, seed=i)
    return a


def test_request_is_idempotent_per_configuration_and_settings(tmp_path):
    store = LabelStore(tmp_path / "l.db")
    emt, lj = LabellerSpec("emt"), LabellerSpec("lj")
    a = cu(0)
    i1 = store.request(a, emt, source="x")
    assert store.request(a.copy(), emt, source="again") == i1  # same configuration, same settings
    i2 = store.request(a, lj, source="x")  # same configuration, other settings: a new row
    assert i2 != i1 and len(store) == 2
    assert settings_id(emt) != settings_id(lj)
    assert settings_id({"kind": "gpaw", "parameters": {"a": 1, "b": 2}}) == \
        settings_id({"parameters": {"b": 2, "a": 1}, "kind": "gpaw"})
    b = cu(0)
    b.positions[0, 0] += 1e-4
    assert config_id(b) != config_id(a)
    with pytest.raises(ValueError, match="source"):
        store.request(b, emt, source="1e3")


def test_a_frame_requested_again_from_the_same_source_is_the_stored_one(tmp_path):
    """An extxyz round trip moves coordinates by up to 5e-9 Å; where one sits on a 1e-6 rounding
    boundary the config_id changes. The same source then still finds its row; another source
    (a different request that happens to be this close) gets its own only when it differs more."""
    store = LabelStore(tmp_path / "l.db")
    emt = LabellerSpec("emt")
    a = cu(0)
    a.positions[0, 0] = 1.2345665  # on a rounding boundary of config_id (rint(1234566.5) = 1234566)
    row = store.request(a, emt, source="al:it001:run0:step5")
    twin = a.copy()
    twin.positions[0, 0] += 4e-9
    assert config_id(twin) != config_id(a)
    assert store.request(twin, emt, source="al:it001:run0:step5") == row
    assert store.request(twin, emt, source="al:it001:run1:step5") != row
    moved = a.copy()
    moved.positions[3, 1] += 1e-4
    assert store.request(moved, emt, source="al:it001:run0:step5") not in (row, None)
    assert len(store) == 3


def test_keys_never_read_as_numbers():
    """ase.db refuses text that reads as a number; such digests get an 'x' prefix."""
    from mtpkit.active_learning.store import _key

    assert _key("945226e843098631abcdef", 16) == "x945226e84309863"
    assert _key("1234567890123456ff", 16) == "x123456789012345"
    assert _key("9d2a36bcdf81a2b0ff", 16) == "9d2a36bcdf81a2b0"


def test_queue_labels_commits_and_quarantines(tmp_path):
    store = LabelStore(tmp_path / "l.db")
    emt = LabellerSpec("emt")
    for i in range(3):
        store.request(cu(i), emt, source=f"cu{i}", priority=10 - i)
    bad = cu(9)
    bad.positions[1] = bad.positions[0] + 1e-9  # EMT gives NaN/inf or raises for overlapping atoms
    store.request(bad, LabellerSpec("ase", calculator="ase.calculators.lj:LennardJones",
                                    parameters={"sigma": float("nan")}), source="nan-sigma", priority=0)
    counts = label_pending(store, workers=2)
    assert counts == {"pending": 0, "ok": 3, "quarantined": 1}
    q = next(store.rows(status="quarantined"))
    assert q.keys["source"] == "nan-sigma" and q.data["reason"].startswith("ValueError")
    done = store.labelled(subset="train")
    assert len(done) == 3
    for atoms in done:
        ref = atoms.copy()
        from ase.calculators.emt import EMT

        ref.calc = EMT()
        assert atoms.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(atoms.get_forces(), ref.get_forces(), atol=1e-10)
        assert atoms.info["code"].startswith("ase") and atoms.info["wall_s"] >= 0
    # nothing left: a second call does nothing and keeps every label
    assert label_pending(store, workers=1) == counts


def test_snapshot_is_a_readable_copy(tmp_path):
    store = LabelStore(tmp_path / "l.db")
    store.request(cu(0), LabellerSpec("emt"), source="a")
    label_pending(store)
    copy = LabelStore(store.snapshot(tmp_path / "copy" / "s.db"))
    assert copy.counts() == store.counts()
    assert copy.labelled()[0].get_potential_energy() == store.labelled()[0].get_potential_energy()


def test_stream_keeps_workers_busy_and_sees_new_work():
    queue = [Job(str(i), pow, (i, 2)) for i in range(5)]
    seen = []

    def next_job():
        return queue.pop(0) if queue else None

    def finished(out):
        seen.append(out)
        if out.key == "0":  # work added while the stream runs is picked up
            queue.append(Job("late", pow, (10, 2)))

    with Executor(workers=2) as ex:
        n = ex.stream(next_job, finished)
    assert n == 6 and sorted(o.result for o in seen) == sorted([0, 1, 4, 9, 16, 100])


def test_pulay_correction_formula():
    atoms = bulk("NaCl", "rocksalt", a=5.64)
    # a measured dE/d ecut per atom: Δσ = (2/3) ecut (dE/d ecut) / V on the diagonal
    corr, info = pulay_stress(atoms, {"mode_ecut": 400, "pulay": -1e-3})
    expect = 2 / 3 * 400 * (-1e-3 * len(atoms)) / atoms.get_volume()
    np.testing.assert_allclose(corr, [expect] * 3 + [0] * 3)
    assert info["pulay_GPa"] == pytest.approx(expect / GPa)
    assert pulay_stress(atoms, {"mode": "lcao"})[1] == {"pulay_GPa": 0.0}
    assert pulay_stress(atoms, {"pulay": None})[1] == {"pulay_GPa": 0.0}
    with pytest.raises(ValueError, match="pulay"):
        pulay_stress(atoms, {"pulay": "guess"})


@pytest.mark.skipif(importlib.util.find_spec("gpaw") is None, reason="gpaw not installed")
def test_pulay_estimate_is_gpaws_own():
    """'estimate' sums GPAW's per-setup dE/d ecut (what GPAW's legacy code path did); it
    shrinks with the cutoff and is negative (the energy falls as the basis grows)."""
    atoms = bulk("NaCl", "rocksalt", a=5.64)
    s400 = pulay_stress(atoms, {"mode_ecut": 400})[1]
    s800 = pulay_stress(atoms, {"mode_ecut": 800})[1]
    assert s400["dedecut"] < 0 and s800["dedecut"] < 0
    assert abs(s800["pulay_GPa"]) < abs(s400["pulay_GPa"])


def test_label_cli_resumes_after_kill(tmp_path):
    """``mtpkit label`` killed mid-way keeps what it finished; a second call labels the rest."""
    db = tmp_path / "l.db"
    store = LabelStore(db)
    slow = LabellerSpec("ase", calculator="tests.slow_calc:SlowEMT", parameters={"delay": 0.4})
    for i in range(8):
        store.request(cu(i), slow, source=f"cu{i}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "mtpkit.cli", "label", str(db), "--workers", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline and LabelStore(db).counts()["ok"] < 2:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    mid = LabelStore(db).counts()
    assert 2 <= mid["ok"] < 8 and mid["ok"] + mid["pending"] == 8
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    assert "ok 8" in out.stdout
    assert LabelStore(db).counts() == {"pending": 0, "ok": 8, "quarantined": 0}


def test_reprioritize_changes_the_order_of_pending_rows_only(tmp_path):
    store = LabelStore(tmp_path / "l.db")
    emt = LabellerSpec("emt")
    first, second = (store.request(cu(i), emt, source=f"c{i}", priority=10 * (i + 1)) for i in range(2))
    assert [r.id for r in store.pending_by_priority()] == [first, second]
    assert store.reprioritize(first, 99)
    assert [r.id for r in store.pending_by_priority()] == [second, first]
    label_pending(store, rows={second}, in_process=True)
    assert not store.reprioritize(second, 1)  # finished: nothing to reorder
    assert [r.id for r in store.pending_by_priority()] == [first]


def test_claims_keep_two_labelling_processes_apart(tmp_path):
    """A row another live process claimed is left to it; once that process is gone it is labelled here."""
    from mtpkit.active_learning.store import process_owner

    store = LabelStore(tmp_path / "l.db")
    emt = LabellerSpec("emt")
    ids = [store.request(cu(i), emt, source=f"c{i}") for i in range(3)]
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = process_owner(other.pid)
        assert store.claim(ids[0], owner=owner)
        assert not store.claim(ids[0])  # held by a live process
        assert store.claimed_elsewhere(store.pending_by_priority()[0])
        label_pending(store, in_process=True)
        assert [r.id for r in store.rows(status="pending")] == [ids[0]]
    finally:
        other.kill()
        other.wait()
    assert store.claim(ids[0]) and store.claim(ids[0])  # the dead claim is void; claiming twice is fine
    # a claim recorded with this pid but another start time (pid reuse) or boot is void too
    me = process_owner().split(":")
    for stale in (":".join([*me[:3], "1"]), ":".join([me[0], "00000000", *me[2:]])):
        store.unclaim(ids[0])
        assert store.claim(ids[0], owner=stale) and store.claim(ids[0])
    store.unclaim(ids[0])
    label_pending(store, in_process=True)
    assert store.counts()["ok"] == 3
    assert not store.claim(ids[0])  # finished rows cannot be claimed
    assert all("claimed_by" not in r.keys for r in store.rows())  # completion ends the claim


def test_claim_is_exclusive_between_processes(tmp_path):
    """Two processes racing for the same pending rows: every row is claimed exactly once."""
    db = tmp_path / "l.db"
    store = LabelStore(db)
    for i in range(20):
        store.request(cu(i), LabellerSpec("emt"), source=f"c{i}")
    script = ("import sys; from mtpkit.active_learning.store import LabelStore; s = LabelStore(sys.argv[1]); "
              "print(' '.join(str(r) for r in range(1, 21) if s.claim(r)), flush=True); "
              "import time; time.sleep(3)")  # alive (claims valid) while the other one claims
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(db)], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    won = [set(map(int, p.communicate()[0].split())) for p in procs]
    # each row went to exactly one of them
    assert won[0].isdisjoint(won[1]) and won[0] | won[1] == set(range(1, 21))


def test_campaign_waits_for_a_row_another_process_is_labelling(tmp_path):
    """The engine's labelling leaves a row claimed by a live ``mtpkit label`` to it and uses its label."""
    from types import SimpleNamespace

    from mtpkit.active_learning.engine import _label_local

    db = tmp_path / "l.db"
    store = LabelStore(db)
    ids = [store.request(cu(i), LabellerSpec("emt"), source=f"c{i}") for i in range(2)]
    script = ("import sys, time; from mtpkit.active_learning.store import LabelStore; "
              "from mtpkit.active_learning.labellers import LabellerSpec, label_one; s = LabelStore(sys.argv[1]); "
              f"assert s.claim({ids[0]}); print('claimed', flush=True); time.sleep(1.5); "
              f"row = [r for r in s.rows() if r.id == {ids[0]}][0]; "
              "out, _ = label_one(LabellerSpec('emt'), row.atoms); "
              f"s.complete({ids[0]}, out, wall_s=1.5, code='other process')")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    other = subprocess.Popen([sys.executable, "-c", script, str(db)], stdout=subprocess.PIPE, text=True, env=env)
    assert other.stdout.readline().strip() == "claimed"
    _label_local(store, SimpleNamespace(workers=1, scheduler=""), set(ids), poll_s=0.2)
    rows = {r.id: r for r in store.rows()}  # read before the other process is waited for: it waited itself
    assert other.wait() == 0
    assert all(r.status == "ok" for r in rows.values())
    assert rows[ids[0]].keys["code"] == "other process"  # not labelled twice


def test_label_follow_labels_rows_requested_while_it_waits(tmp_path):
    """``mtpkit label --follow``: with nothing pending it waits, labels what a campaign requests
    later, and keeps waiting until stopped; ``--max-priority`` leaves lower-priority rows alone;
    --follow with --limit is refused."""
    store = LabelStore(tmp_path / "l.db")
    emt = LabellerSpec("emt")
    store.request(cu(0), emt, source="first", subset="al")
    cmd = [sys.executable, "-m", "mtpkit.cli", "label", str(tmp_path / "l.db"), "--subset", "al", "--follow", "0.2",
           "--max-priority", "100"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while not list(store.rows(status="ok")) and time.time() < deadline:
            time.sleep(0.2)
        store.request(cu(1), emt, source="later", subset="al")
        store.request(cu(2), emt, source="other subset", subset="heldout")
        store.request(cu(3), emt, source="older run", subset="al", priority=150)
        while len(list(store.rows(status="ok"))) < 2 and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # several polls: the priority-150 row is not taken
        assert proc.poll() is None  # still waiting for more
        assert {r.keys["source"] for r in store.rows(status="ok")} == {"first", "later"}
        assert [r.keys["source"] for r in store.rows(status="pending")] == ["other subset", "older run"]
        # a row another live process labels (here: this one) is waited for, not spun on
        from mtpkit.active_learning.store import process_owner

        busy = store.request(cu(4), emt, source="the campaign's own", subset="al")
        assert store.claim(busy, owner=process_owner())
        time.sleep(2.0)
        assert proc.poll() is None
        store.unclaim(busy)
        while [r.keys["source"] for r in store.rows(status="ok")][-1:] != ["the campaign's own"] \
                and time.time() < deadline:
            time.sleep(0.2)
        assert "the campaign's own" in {r.keys["source"] for r in store.rows(status="ok")}
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert out.count("label store") < 20, out[-2000:]  # one line per pass, not a spin over the busy row
    res = subprocess.run([*cmd, "--limit", "1"], capture_output=True, text=True, check=False)
    assert res.returncode == 2 and "--follow" in res.stderr and "--limit" in res.stderr
