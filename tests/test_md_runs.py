"""LAMMPS MD runs: NVE drift, NPT averages, fix external vs plugin, kill + resume, bad input.

The physical potential is MLIP's level-16 MTP fitted to fcc Cu (motep's test data).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from mtpkit.errors import InputFileError, UserError
from mtpkit.md.engines import ExternalEngine, PluginEngine
from mtpkit.md.run import MDSettings, run_md


@pytest.fixture(scope="module")
def cu_pot(motep_data) -> Path:
    return motep_data / "fitting" / "crystals" / "cubic" / "16" / "pot.mtp"


def cu_cell(repeat=2, a=3.61):
    return bulk("Cu", "fcc", a=a, cubic=True).repeat((repeat,) * 3)


def read_dump(path: Path) -> dict[int, np.ndarray]:
    """timestep -> (N, 3) unwrapped positions, sorted by id; fails on duplicate steps."""
    frames: dict[int, np.ndarray] = {}
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        assert lines[i].startswith("ITEM: TIMESTEP")
        step = int(lines[i + 1])
        n = int(lines[i + 3])
        rows = np.array([[float(v) for v in line.split()] for line in lines[i + 9:i + 9 + n]])
        assert step not in frames, f"duplicate frame at step {step}"
        frames[step] = rows[np.argsort(rows[:, 0])][:, 2:5]
        i += 9 + n
    return frames


def test_nve_energy_drift_2000_steps_600K(cu_pot, tmp_path):
    settings = MDSettings(ensemble="nve", temperature=1200.0, steps=2000, timestep=1.0,
                          thermo_every=20, dump_every=500, restart_every=1000, seed=7)
    res = run_md(cu_cell(), PluginEngine(cu_pot), ["Cu"], settings, tmp_path)
    assert res.status == "done", res.message
    d = np.loadtxt(tmp_path / "thermo.dat")
    assert list(d[:, 0]) == list(range(0, 2001, 20))
    n = 32
    temp = d[len(d) // 2:, 2].mean()
    assert 450 < temp < 750  # equipartition from 1200 K initial velocities -> ~600 K
    etot = d[:, 5] / n
    slope = np.polyfit(d[:, 1], etot, 1)[0]  # eV/atom/ps
    assert abs(slope * 2.0) < 2e-5, slope  # drift over the 2 ps run
    assert np.ptp(etot) < 1e-4  # fluctuation bound (eV/atom)


@pytest.mark.slow
def test_npt_mean_temperature_and_pressure(cu_pot, tmp_path):
    settings = MDSettings(ensemble="npt", temperature=600.0, pressure=1.0, barostat="tri",
                          steps=12000, timestep=2.0, thermo_every=10, dump_every=4000,
                          restart_every=4000, seed=11)
    res = run_md(cu_cell(3), PluginEngine(cu_pot), ["Cu"], settings, tmp_path)
    assert res.status == "done", res.message
    d = np.loadtxt(tmp_path / "thermo.dat")
    d = d[d[:, 0] >= 2000]  # equilibration
    for col, target in ((2, 600.0), (6, 1.0e4)):  # K, bar (1 GPa)
        x = d[:, col]
        blocks = np.array([b.mean() for b in np.array_split(x, 10)])
        err = blocks.std(ddof=1) / np.sqrt(len(blocks))
        assert abs(x.mean() - target) < 3 * err + (0.01 * target if col == 2 else 300.0), (
            col, x.mean(), err)


def test_fix_external_same_trajectory_as_plugin_npt(cu_pot, tmp_path):
    atoms = cu_cell()
    atoms.rattle(0.02, seed=3)
    atoms.set_cell(atoms.cell.array @ np.array([[1, 0.03, 0], [0, 1, 0.02], [0.01, 0, 1]]),
                   scale_atoms=True)  # triclinic
    settings = MDSettings(ensemble="npt", temperature=600.0, barostat="tri", steps=100,
                          timestep=1.0, thermo_every=10, dump_every=10, restart_every=100,
                          seed=5)
    plugin = run_md(atoms, PluginEngine(cu_pot), ["Cu"], settings, tmp_path / "plugin")
    external = run_md(atoms, ExternalEngine.from_potential(cu_pot, ["Cu"]), ["Cu"], settings,
                      tmp_path / "external")
    assert plugin.status == external.status == "done", (plugin.message, external.message)
    for res in (plugin, external):  # no extrapolation control: nothing graded or saved
        assert math.isnan(res.max_gamma) and res.saved_configurations == []
        assert res.last_good is None and res.timestep == 1.0
    fp, fe = read_dump(tmp_path / "plugin" / "traj.dump"), read_dump(tmp_path / "external" / "traj.dump")
    assert sorted(fp) == sorted(fe) == list(range(0, 101, 10))
    for step in fp:
        np.testing.assert_allclose(fe[step], fp[step], rtol=0, atol=1e-7)
    tp, te = np.loadtxt(tmp_path / "plugin" / "thermo.dat"), np.loadtxt(tmp_path / "external" / "thermo.dat")
    np.testing.assert_allclose(te[:, 3], tp[:, 3], rtol=0, atol=1e-8)  # pe
    np.testing.assert_allclose(te[:, 6], tp[:, 6], rtol=1e-6, atol=1e-3)  # pressure
    np.testing.assert_allclose(te[:, 8:], tp[:, 8:], rtol=0, atol=1e-8)  # box
    assert np.ptp(tp[:, 7]) > 0  # the barostat moved the box


def test_plugin_threads_same_npt_trajectory(cu_pot, tmp_path):
    """MDSettings(threads=2) (package omp 2): the same trajectory and thermo as 1 thread."""
    atoms = cu_cell()
    atoms.rattle(0.02, seed=4)
    out = {}
    for threads in (1, 2):
        settings = MDSettings(ensemble="npt", temperature=600.0, barostat="tri", steps=60,
                              timestep=1.0, thermo_every=10, dump_every=10, restart_every=60,
                              seed=7, threads=threads)
        res = run_md(atoms, PluginEngine(cu_pot), ["Cu"], settings, tmp_path / f"t{threads}")
        assert res.status == "done", res.message
        out[threads] = (read_dump(tmp_path / f"t{threads}" / "traj.dump"),
                        np.loadtxt(tmp_path / f"t{threads}" / "thermo.dat"))
    (d1, t1), (d2, t2) = out[1], out[2]
    assert sorted(d1) == sorted(d2) == list(range(0, 61, 10))
    for step in d1:
        assert np.array_equal(d1[step], d2[step])
    assert np.array_equal(t1, t2)
    assert "2 OpenMP thread(s)" in (tmp_path / "t2" / "log.lammps").read_text()


RESUME_SCRIPT = textwrap.dedent("""
    import sys
    from ase.build import bulk
    from mtpkit.md.engines import PluginEngine
    from mtpkit.md.run import MDSettings, run_md
    pot, folder = sys.argv[1:3]
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    s = MDSettings(ensemble="nvt", temperature=600.0, steps=300, timestep=1.0, thermo_every=10,
                   dump_every=10, restart_every=50, seed=3)
    run_md(atoms, PluginEngine(pot), ["Cu"], s, folder)
""")


def test_kill_and_resume_no_gap_no_duplicate(cu_pot, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RESUME_SCRIPT)
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    subprocess.run([sys.executable, str(script), str(cu_pot), str(ref)], check=True, timeout=300)
    proc = subprocess.Popen([sys.executable, str(script), str(cu_pot), str(cut)])
    t0 = time.time()
    while time.time() - t0 < 120:
        state = cut / "state.json"
        if state.is_file() and json.loads(state.read_text())["step"] >= 100:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = json.loads((cut / "state.json").read_text())["step"]
    assert 100 <= killed_at < 300
    # the dump may hold frames written after the checkpoint: the resume must drop them
    subprocess.run([sys.executable, str(script), str(cu_pot), str(cut)], check=True, timeout=300)
    fr, fc = read_dump(ref / "traj.dump"), read_dump(cut / "traj.dump")
    assert sorted(fc) == sorted(fr) == list(range(0, 301, 10))
    for step in fr:
        np.testing.assert_allclose(fc[step], fr[step], rtol=0, atol=1e-6)
    tr, tc = np.loadtxt(ref / "thermo.dat"), np.loadtxt(cut / "thermo.dat")
    assert list(tc[:, 0]) == list(tr[:, 0]) == list(range(0, 301, 10))
    np.testing.assert_allclose(tc[:, 2], tr[:, 2], rtol=1e-6)
    # a finished run is not redone
    again = run_md(cu_cell(), PluginEngine(cu_pot), ["Cu"],
                   MDSettings(ensemble="nvt", temperature=600.0, steps=300, timestep=1.0,
                              thermo_every=10, dump_every=10, restart_every=50, seed=3), cut)
    assert again.status == "done" and again.message == "already finished"


def test_blow_up_stops_with_last_good_frame(cu_pot, tmp_path):
    settings = MDSettings(ensemble="nvt", temperature=300.0, steps=200, timestep=1.0,
                          thermo_every=10, dump_every=10, restart_every=20, min_dist=2.3)
    res = run_md(cu_cell(a=3.2), PluginEngine(cu_pot), ["Cu"], settings, tmp_path)
    assert res.status == "failed"
    assert "closer than min_dist" in res.message
    from ase.io import read

    last = read(tmp_path / "last_good.extxyz")
    assert len(last) == 32
    assert res.last_good is not None and len(res.last_good) == 32
    np.testing.assert_allclose(res.last_good.positions, last.positions, rtol=0, atol=1e-12)
    assert res.to_dict()["last_good_file"] == str(tmp_path / "last_good.extxyz")
    from mtpkit.md.run import read_result

    back = read_result(tmp_path)  # the failure is recorded; a resume restarts the run
    assert back.status == "failed" and "closer than min_dist" in back.message
    assert back.steps_done == json.loads((tmp_path / "state.json").read_text())["step"]
    np.testing.assert_allclose(back.last_good.positions, last.positions, rtol=0, atol=1e-12)


def test_default_blow_up_distance_is_a_collapse_not_a_contact():
    """Without an explicit min_dist a run stops on a pair closer than COLLAPSE_FRACTION of the
    potential's min_dist (the same bound in exploration and production), not on any pair inside it."""
    from mtpkit.md.run import COLLAPSE_FRACTION, collapse_distance

    assert 0.3 < COLLAPSE_FRACTION < 1.0
    assert collapse_distance(None, 2.0555) == pytest.approx(COLLAPSE_FRACTION * 2.0555)
    assert collapse_distance(None, 2.0555) < 2.045 < 2.0555  # session 11's 450 K contact goes on
    assert collapse_distance(2.3, 2.0555) == 2.3 and collapse_distance(None, None) == 0.5


def test_bad_inputs_name_the_field(cu_pot, tmp_path):
    with pytest.raises(UserError, match="timestep"):
        MDSettings(timestep=0.0)
    with pytest.raises(UserError, match="timestep"):
        MDSettings(timestep=-1.0)
    bad = tmp_path / "bad.mtp"
    bad.write_text("not a potential\n")
    with pytest.raises(InputFileError, match="not an MTP potential"):
        PluginEngine(bad)
    garbage = tmp_path / "garbage.cif"
    garbage.write_text("this is not a structure\n")
    with pytest.raises(InputFileError, match=r"garbage.cif.*structure"):
        run_md(garbage, PluginEngine(cu_pot), ["Cu"], MDSettings(steps=10), tmp_path / "r")
    with pytest.raises(UserError, match="species"):
        run_md(cu_cell(), PluginEngine(cu_pot), ["Ag"], MDSettings(steps=10), tmp_path / "r2")


def test_missing_lammps_is_a_clear_error(monkeypatch):
    from mtpkit.md import lammps_env

    monkeypatch.setitem(sys.modules, "lammps", None)  # makes `import lammps` fail
    with pytest.raises(UserError, match="LAMMPS is not available"):
        lammps_env.import_lammps()
    with pytest.raises(UserError, match="LAMMPS is not available"):
        lammps_env.new_lammps()


def test_cli_md_and_plugin_path(cu_pot, tmp_path, capsys):
    from mtpkit.cli import main

    assert main(["plugin-path"]) == 0
    path = capsys.readouterr().out.strip()
    assert os.path.isabs(path) and Path(path).is_file()
    cif = tmp_path / "cu.cif"
    cu_cell().write(cif)
    rc = main(["md", str(cif), "-p", str(cu_pot), "-s", "Cu", "--ensemble", "nvt", "-T", "500",
               "--steps", "40", "--restart-every", "20", "--dump-every", "20", "--out",
               str(tmp_path / "run")])
    assert rc == 0
    assert "done: 40/40 steps" in capsys.readouterr().out
    assert main(["md", str(cif), "-p", str(cu_pot), "-s", "Cu", "--timestep", "-1", "--out",
                 str(tmp_path / "r2")]) == 2
    assert "timestep" in capsys.readouterr().err
