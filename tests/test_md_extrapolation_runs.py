"""MD runs with extrapolation control: a break is final, what MDResult reports, resumes.

The potential is MLIP's level-16 Cu MTP with a small active set (``write_cu_almtp``):
at 300 K its grades pass 2 within tens of steps, so low thresholds force selections and
breaks in a 32-atom cell in well under a second of MD.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from _md_support import write_cu_almtp
from ase.build import bulk

from mtpkit.md.engines import Extrapolation, PluginEngine
from mtpkit.md.run import MDSettings, read_result, read_saved, run_md


@pytest.fixture(scope="module")
def almtp(tmp_path_factory, motep_data) -> Path:
    return write_cu_almtp(tmp_path_factory.mktemp("almtp") / "cu.almtp")


def cu_cell():
    return bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))


def settings(**kw) -> MDSettings:
    base = dict(ensemble="nvt", temperature=300.0, steps=300, timestep=1.0, thermo_every=5,
                dump_every=5, restart_every=8, seed=1)
    return MDSettings(**(base | kw))


def engine(almtp, select=1.5, brk=3.0, every=5) -> PluginEngine:
    return PluginEngine(almtp, extrapolation=Extrapolation(every=every, select_threshold=select,
                                                           break_threshold=brk))


def outputs(folder: Path) -> dict[str, bytes]:
    names = ("traj.dump", "thermo.dat", "extrapolative.extxyz", "run.restart", "state.json",
             "log.lammps")
    return {n: (folder / n).read_bytes() for n in names if (folder / n).is_file()}


def dump_steps(path: Path) -> list[int]:
    lines = path.read_text().splitlines()
    return [int(lines[i + 1]) for i, line in enumerate(lines) if line.startswith("ITEM: TIMESTEP")]


def test_break_is_final_and_a_resume_returns_the_recorded_result(almtp, tmp_path):
    res = run_md(cu_cell(), engine(almtp), ["Cu"], settings(), tmp_path)
    assert res.status == "extrapolation_break", res.message
    assert res.finished
    step = res.steps_done
    assert 0 < step < 300
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["done"] is True and state["status"] == "extrapolation_break"
    assert state["step"] == step
    # what the active-learning loop needs, without reading any file itself
    saved = res.saved_configurations
    steps = [a.info["step"] for a in saved]
    assert steps and steps == sorted(set(steps)) and steps[-1] == step
    assert all(a.info["max_gamma"] > 1.5 for a in saved)
    assert all(a.info["time_fs"] == a.info["step"] * 1.0 for a in saved)
    assert saved[-1].info["max_gamma"] > 3.0
    assert res.max_gamma == pytest.approx(saved[-1].info["max_gamma"], rel=1e-12)
    assert res.max_gamma >= max(a.info["max_gamma"] for a in saved)
    assert saved[-1].arrays["gamma"].max() == pytest.approx(res.max_gamma, rel=1e-12)
    assert res.last_good is None
    assert res.timestep == 1.0
    assert dump_steps(tmp_path / "traj.dump")[-1] == step
    before = outputs(tmp_path)

    # resumed: nothing runs, no file changes, the same result comes back
    again = run_md(cu_cell(), engine(almtp), ["Cu"], settings(), tmp_path)
    assert outputs(tmp_path) == before
    assert again.status == "extrapolation_break" and again.steps_done == step
    assert again.message.startswith("already finished")
    assert again.max_gamma == res.max_gamma
    assert [a.info["step"] for a in again.saved_configurations] == steps
    for a, b in zip(again.saved_configurations, saved, strict=True):
        np.testing.assert_array_equal(a.positions, b.positions)
    # more steps asked for do not reopen a break
    longer = run_md(cu_cell(), engine(almtp), ["Cu"], settings(steps=600), tmp_path)
    assert longer.status == "extrapolation_break" and outputs(tmp_path) == before
    assert read_result(tmp_path).to_dict() == {**res.to_dict(), "wall_time": state["wall_time"],
                                               "last_good_file": None}


def test_break_on_the_last_step_is_seen(almtp, tmp_path):
    """The pair style's halted flag, not ``reached < target``, tells a break: one on the
    last step of a chunk (here of the run) is a break too, not a finished run."""
    first = run_md(cu_cell(), engine(almtp), ["Cu"], settings(restart_every=1000),
                   tmp_path / "a")
    assert first.status == "extrapolation_break"
    for sub, s in (("b", settings(steps=first.steps_done, restart_every=1000)),
                   ("c", settings(restart_every=first.steps_done))):
        res = run_md(cu_cell(), engine(almtp), ["Cu"], s, tmp_path / sub)
        assert res.status == "extrapolation_break", (sub, res.message)
        assert res.steps_done == first.steps_done
        assert res.max_gamma == pytest.approx(first.max_gamma, rel=1e-9)


@dataclass
class HaltingEngine(PluginEngine):
    """The plugin plus a ``fix halt ... error soft``: LAMMPS stops early, with no break."""

    halt_at: int = 0
    how: str = "soft"

    def setup(self, lmp, species, folder, min_dist=0.0):
        super().setup(lmp, species, folder, min_dist)
        lmp.command("variable test_step equal step")
        lmp.command(f"fix test_halt all halt 1 v_test_step >= {self.halt_at} error {self.how}")


def test_early_stop_that_is_not_a_break_is_resumable(almtp, tmp_path):
    s = settings(steps=60, restart_every=20, thermo_every=1, dump_every=1)
    ex = Extrapolation(every=5, select_threshold=1e8, break_threshold=1e9)
    res = run_md(cu_cell(), HaltingEngine(almtp, extrapolation=ex, halt_at=27), ["Cu"], s,
                 tmp_path)
    assert res.status == "interrupted", res.message
    assert res.steps_done == 27 and not res.finished
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["done"] is False and state["step"] == 27
    done = run_md(cu_cell(), PluginEngine(almtp, extrapolation=ex), ["Cu"], s, tmp_path)
    assert done.status == "done" and done.steps_done == 60
    assert dump_steps(tmp_path / "traj.dump") == list(range(61))
    assert list(np.loadtxt(tmp_path / "thermo.dat")[:, 0]) == list(range(61))


def test_failed_run_is_recorded_and_resumes_from_its_checkpoint(almtp, tmp_path):
    """A LAMMPS error after a checkpoint: state.json says failed at the checkpoint step;
    the resume drops the failed chunk's saves and grades and matches an unbroken run."""
    ex = Extrapolation(every=2, select_threshold=1.0, break_threshold=1e9)
    s = settings(steps=60, restart_every=20)
    ref = run_md(cu_cell(), PluginEngine(almtp, extrapolation=ex), ["Cu"], s, tmp_path / "ref")
    bad = run_md(cu_cell(), HaltingEngine(almtp, extrapolation=ex, halt_at=31, how="hard"),
                 ["Cu"], s, tmp_path / "cut")
    assert bad.status == "failed", bad.message
    assert bad.last_good is not None and max(a.info["step"] for a in bad.saved_configurations) > 20
    assert bad.max_gamma == max(a.info["max_gamma"] for a in bad.saved_configurations)
    back = read_result(tmp_path / "cut")
    assert back.status == "failed" and back.steps_done == 20 and back.last_good is not None
    assert not back.finished
    res = run_md(cu_cell(), PluginEngine(almtp, extrapolation=ex), ["Cu"], s, tmp_path / "cut")
    assert res.status == "done" and res.last_good is None
    assert not (tmp_path / "cut" / "last_good.extxyz").exists()
    assert ([a.info["step"] for a in res.saved_configurations]
            == [a.info["step"] for a in ref.saved_configurations])
    assert res.max_gamma == pytest.approx(ref.max_gamma, rel=1e-6)
    assert dump_steps(tmp_path / "cut" / "traj.dump") == list(range(0, 61, 5))


def test_resumed_run_saves_each_step_once(almtp, tmp_path):
    """Extending a finished run re-grades its last step: MDResult and the save file keep
    one copy, and agree with an uninterrupted run."""
    eng = engine(almtp, select=1.0, brk=1e9, every=5)
    ref = run_md(cu_cell(), eng, ["Cu"], settings(steps=100, restart_every=50), tmp_path / "ref")
    assert ref.status == "done"
    run_md(cu_cell(), eng, ["Cu"], settings(steps=50, restart_every=50), tmp_path / "cut")
    res = run_md(cu_cell(), eng, ["Cu"], settings(steps=100, restart_every=50), tmp_path / "cut")
    assert res.status == "done" and res.steps_done == 100
    ref_steps = [a.info["step"] for a in ref.saved_configurations]
    assert len(ref_steps) > 10
    assert [a.info["step"] for a in res.saved_configurations] == ref_steps
    on_disk = read_saved(tmp_path / "cut" / "extrapolative.extxyz")
    assert [a.info["step"] for a in on_disk] == ref_steps  # the file itself has no duplicate
    for a, b in zip(res.saved_configurations, ref.saved_configurations, strict=True):
        d = a.cell.scaled_positions(a.positions - b.positions)  # LAMMPS wraps atoms into the box
        np.testing.assert_allclose((d - d.round()) @ a.cell.array, 0.0, rtol=0, atol=1e-6)
    assert res.max_gamma == pytest.approx(ref.max_gamma, rel=1e-6)
    back = read_result(tmp_path / "cut")
    assert back.status == "done" and back.max_gamma == res.max_gamma
    assert [a.info["step"] for a in back.saved_configurations] == ref_steps


def test_max_gamma_covers_graded_steps_between_thermo_lines(almtp, tmp_path):
    eng = engine(almtp, select=1e9, brk=1e9, every=1)
    dense = run_md(cu_cell(), eng, ["Cu"], settings(steps=60, thermo_every=1), tmp_path / "d")
    sparse = run_md(cu_cell(), eng, ["Cu"], settings(steps=60, thermo_every=30), tmp_path / "s")
    column = np.loadtxt(tmp_path / "d" / "thermo.dat")[:, -1]
    assert dense.saved_configurations == [] and sparse.saved_configurations == []
    assert dense.max_gamma == pytest.approx(column.max(), rel=1e-9)
    assert sparse.max_gamma == pytest.approx(dense.max_gamma, rel=1e-9)
    assert sparse.max_gamma > np.loadtxt(tmp_path / "s" / "thermo.dat")[:, -1].max()


def test_ungraded_run_reports_no_grade(almtp, tmp_path):
    res = run_md(cu_cell(), PluginEngine(almtp), ["Cu"], settings(steps=20), tmp_path)
    assert res.status == "done"
    assert math.isnan(res.max_gamma) and res.saved_configurations == []
    assert res.to_dict()["max_gamma"] is None and res.to_dict()["saved_steps"] == []
    assert math.isnan(read_result(tmp_path).max_gamma)


FRAME = ('2\nLattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3:gamma:R:1 '
         'step={step} max_gamma={g} pbc="T T T"\nCu 0 0 {z} {g}\nCu 2 2 2 1.0\n')


def test_read_saved_keeps_one_copy_per_step_and_skips_a_cut_frame(tmp_path):
    path = tmp_path / "save.extxyz"
    text = (FRAME.format(step=10, g=2.5, z=0) + FRAME.format(step=20, g=3.5, z=0)
            + FRAME.format(step=20, g=3.5, z=0.5) + FRAME.format(step=30, g=4.5, z=0))
    path.write_text(text + FRAME.format(step=40, g=9.0, z=0)[:-9])  # killed mid-write
    got = read_saved(path, timestep=2.0)
    assert [a.info["step"] for a in got] == [10, 20, 30]
    assert got[1].positions[0, 2] == 0.5  # the last copy of a step
    assert [a.info["time_fs"] for a in got] == [20.0, 40.0, 60.0]
    assert [a.info["max_gamma"] for a in got] == [2.5, 3.5, 4.5]
    assert [a.info["step"] for a in read_saved(path, up_to=20)] == [10, 20]
    assert read_saved(tmp_path / "missing.extxyz") == []
