"""Batched MD on the torch-sim model (mtpkit.md.batched, engine "torch-sim" of mtpkit sweep).

A 2 structures × 2 temperatures × 2 replicas sweep of 37-atom NYZC75 cells through the CLI,
read back by ``mtpkit conductivity`` (level-8 MTP of the ionic test model,
tests/data/nyzc75_ionic_l08.mtp, made by tests/make_ionic_mtp.py); with small Cu systems and
MLIP's Cu MTPs (motep's test data): kill + exact resume, per-replica extrapolation breaks,
NVE energy conservation, batch independence of a replica's trajectory and the
restricted-triclinic cell of the ``tri`` barostat.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

torch = pytest.importorskip("torch")
pytest.importorskip("torch_sim")

from _md_support import write_cu_almtp  # noqa: E402

import mtpkit  # noqa: E402
from mtpkit.cli import main  # noqa: E402
from mtpkit.errors import InputFileError  # noqa: E402
from mtpkit.md.batched import BatchIntegrator, ReplicaRandom, initial_velocities, run_batched  # noqa: E402
from mtpkit.md.run import MDSettings, read_result  # noqa: E402
from mtpkit.md.structure import lammps_atoms  # noqa: E402
from mtpkit.md.sweep import load_sweep  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread(torch_one_thread):
    """Every test here on one torch thread (see conftest)."""


@pytest.fixture(scope="module")
def cu08(motep_data) -> Path:
    return motep_data / "fitting" / "crystals" / "cubic" / "08" / "pot.mtp"


def read_dump(path: Path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """timestep -> (box bounds (3, 3), (N, 3) positions by id); fails on a duplicate step."""
    frames: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        assert lines[i] == "ITEM: TIMESTEP"
        step, n = int(lines[i + 1]), int(lines[i + 3])
        assert lines[i + 4] == "ITEM: BOX BOUNDS xy xz yz pp pp pp"
        assert lines[i + 8] == "ITEM: ATOMS id type xu yu zu"
        box = np.array([[float(v) for v in lines[i + 5 + k].split()] for k in range(3)])
        rows = np.array([[float(v) for v in line.split()] for line in lines[i + 9:i + 9 + n]])
        assert step not in frames, f"duplicate frame at step {step}"
        frames[step] = box, rows[np.argsort(rows[:, 0])][:, 2:5]
        i += 9 + n
    return frames


IONIC_MTP = Path(__file__).parent / "data" / "nyzc75_ionic_l08.mtp"

SWEEP = """
[potential]
file = "{pot}"
species = {species}
engine = "torch-sim"
{extra}

[md]
ensemble = "{ensemble}"
barostat = "{barostat}"
timestep = {timestep}
steps = {steps}
thermo_every = {thermo}
dump_every = {dump}
restart_every = {restart}

[sweep]
structures = ["structures/*.cif"]
temperatures = {temperatures}
replicas = 2
seed = 7
output = "runs"
workers = 1
"""


def write_sweep(folder: Path, pot: Path, steps: int = 100, restart: int = 50, barostat: str = "tri",
                temperatures=(500, 900), extra: str = "", thermo: int = 10, ensemble: str = "npt",
                nyzc: bool = False, dump: int = 10, timestep: float = 2.0) -> Path:
    """A sweep TOML over two Cu cells (32-atom cubic, 27-atom primitive) or, with ``nyzc``,
    two 37-atom NYZC75 cells (CHGNet-relaxed and as built)."""
    (folder / "structures").mkdir(parents=True, exist_ok=True)
    if nyzc:
        import shutil

        data = Path(__file__).parent / "data"
        shutil.copy(data / "NYZC75_P21n_37atoms_CHGNet-relaxed.cif", folder / "structures" / "relaxed.cif")
        shutil.copy(data / "NYZC75_P21n_37atoms.cif", folder / "structures" / "built.cif")
    else:
        bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2)).write(folder / "structures" / "cubic.cif")
        bulk("Cu", "fcc", a=3.63).repeat((3, 3, 3)).write(folder / "structures" / "primitive.cif")
    toml = folder / "sweep.toml"
    species = '["Na", "Y", "Zr", "Cl"]' if nyzc else '["Cu"]'
    toml.write_text(SWEEP.format(pot=pot, steps=steps, restart=restart, barostat=barostat,
                                 temperatures=list(temperatures), extra=extra, thermo=thermo,
                                 ensemble=ensemble, species=species, dump=dump, timestep=timestep))
    return toml


def test_cli_sweep_torch_sim_then_conductivity(tmp_path, capsys):
    # 4 ps in 4 fs steps, float32: the conductivity's MSD fit needs lags from 1 ps with 30
    # observations of the 9 Na each (pymatgen's min_obs). Thermo only at step 0 (exactly the
    # target temperature): 4 ps of 37 atoms are too short for its check of the mean temperature (3 %)
    toml = write_sweep(tmp_path, IONIC_MTP, steps=1000, restart=500, thermo=10000, nyzc=True, dump=5,
                       timestep=4.0, extra='dtype = "float32"')
    assert main(["sweep", str(toml)]) == 0
    out = capsys.readouterr().out
    assert "torch-sim batch 1/1: 8 replicas" in out and "atom-steps/s" in out
    assert "sweep: 8/8 runs done, 0 failed" in out
    manifest = json.loads((tmp_path / "runs" / "manifest.json").read_text())
    assert len(manifest["runs"]) == 8
    seeds = set()
    for run_id, entry in manifest["runs"].items():
        assert entry["status"] == "done" and entry["steps_done"] == 1000, run_id
        assert entry["engine"] == "torch-sim" and entry["device"] == "cpu"
        seeds.add(entry["seed"])
        folder = Path(entry["folder"])
        result = read_result(folder)  # the LAMMPS engine's reader understands the folder
        assert result.status == "done" and result.steps_done == 1000 and result.finished
        assert set(result.files) >= {"thermo", "trajectory", "state", "data"}
        frames = read_dump(folder / "traj.dump")
        assert sorted(frames) == list(range(0, 1001, 5))
        thermo = np.loadtxt(folder / "thermo.dat", ndmin=2)
        assert thermo.shape == (1, 14) and thermo[0, 0] == 0
        assert thermo[0, 2] == pytest.approx(entry["temperature"], rel=1e-9)  # exact initial T
        # the box of the dump is the thermo's cell (lx, ly, lz, xy, xz, yz)
        box, _ = frames[0]
        lx, ly, lz, xy, xz, yz = thermo[0, 8:14]
        np.testing.assert_allclose(box[:, 2], [xy, xz, yz], rtol=1e-9, atol=1e-12)  # %.10g in thermo.dat
        lo, hi = min(0.0, xy, xz, xy + xz), max(0.0, xy, xz, xy + xz)  # LAMMPS' bounding box
        np.testing.assert_allclose(box[:, :2], [[lo, lx + hi], [min(0.0, yz), ly + max(0.0, yz)], [0.0, lz]],
                                   rtol=1e-9, atol=1e-12)
    assert len(seeds) == 8
    # a second sweep run does nothing
    assert main(["sweep", str(toml)]) == 0
    assert "8 already finished, 0 to run" in capsys.readouterr().out
    # mtpkit conductivity reads the sweep folder unchanged
    assert main(["conductivity", str(tmp_path / "runs"), "--species", "Na", "--no-plots", "--workers", "1",
                 "--no-host-check"]) == 0
    doc = json.loads((tmp_path / "runs" / "conductivity" / "results.json").read_text())
    assert doc["partial"] is False and doc["skipped"] == []
    assert {s["label"] for s in doc["systems"]} == {"relaxed", "built"}
    for system in doc["systems"]:
        assert [t["temperature_K"] for t in system["temperatures"]] == [500.0, 900.0]
        for t in system["temperatures"]:
            assert len(t["replicas"]) == 2 and t["D"] > 0 and t["frame_interval_fs"] == 20.0
            assert t["mean_volume_A3"] > 0


def test_sweep_options_are_checked(cu08, tmp_path):
    for extra, field in (('device = "tpu"', "potential.device"), ('dtype = "float16"', "potential.dtype"),
                         ("batch_size = 0", "potential.batch_size")):
        with pytest.raises(InputFileError, match=field.replace(".", r"\.")):
            load_sweep(write_sweep(tmp_path, cu08, extra=extra))
    plugin = write_sweep(tmp_path, cu08, extra='device = "cuda"')
    plugin.write_text(plugin.read_text().replace('engine = "torch-sim"', 'engine = "plugin"'))
    with pytest.raises(InputFileError, match="only for engine = 'torch-sim'"):
        load_sweep(plugin)
    spec = load_sweep(write_sweep(tmp_path, cu08, extra='dtype = "float32"\nbatch_size = 3'))
    assert {(r.engine, r.device, r.dtype, r.batch_size) for r in spec.runs} == {("torch-sim", "cpu", "float32", 3)}


RESUME_SCRIPT = textwrap.dedent("""
    import sys
    import torch
    torch.set_num_threads(1)
    from mtpkit.md.sweep import load_sweep, run_sweep
    run_sweep(load_sweep(sys.argv[1]), progress=None)
""")


def test_kill_and_resume_continues_exactly(cu08, tmp_path):
    from mtpkit.md.sweep import run_sweep

    ref, cut = tmp_path / "ref", tmp_path / "cut"
    script = tmp_path / "run.py"
    script.write_text(RESUME_SCRIPT)
    for folder in (ref, cut):
        write_sweep(folder, cu08, steps=100, restart=20, temperatures=(700,))
    run_sweep(load_sweep(ref / "sweep.toml"), progress=None)  # uninterrupted, in this process
    proc = subprocess.Popen([sys.executable, str(script), str(cut / "sweep.toml")])
    state = cut / "runs" / "primitive" / "T700K" / "r1" / "state.json"
    t0 = time.time()
    while time.time() - t0 < 300:
        if state.is_file() and json.loads(state.read_text())["step"] >= 40:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(state.read_text())["step"]
    assert 40 <= killed_at < 100
    run_sweep(load_sweep(cut / "sweep.toml"), progress=None)  # resumes from the checkpoints
    for run in ("cubic/T700K/r0", "cubic/T700K/r1", "primitive/T700K/r0", "primitive/T700K/r1"):
        fr, fc = read_dump(ref / "runs" / run / "traj.dump"), read_dump(cut / "runs" / run / "traj.dump")
        assert sorted(fc) == sorted(fr) == list(range(0, 101, 10))
        for step in fr:  # the same trajectory: positions, cell and thermostat/barostat noise
            np.testing.assert_allclose(fc[step][1], fr[step][1], rtol=0, atol=1e-9)
            np.testing.assert_allclose(fc[step][0], fr[step][0], rtol=0, atol=1e-9)
        tr, tc = np.loadtxt(ref / "runs" / run / "thermo.dat"), np.loadtxt(cut / "runs" / run / "thermo.dat")
        assert list(tc[:, 0]) == list(tr[:, 0]) == list(range(0, 101, 10))
        np.testing.assert_allclose(tc, tr, rtol=1e-9, atol=1e-9)
        assert read_result(cut / "runs" / run).status == "done"


def test_extrapolation_break_stops_only_that_replica(tmp_path):
    """Cu MTP with a small active set: the 1500 K replicas break, the 20 K ones finish."""
    pot = write_cu_almtp(tmp_path / "cu.almtp")
    toml = write_sweep(tmp_path, pot, steps=60, restart=30, temperatures=(20, 1500), ensemble="nvt",
                       extra="[potential.extrapolation]\nevery = 2\nselect_threshold = 1.5\n"
                             "break_threshold = 4.0")
    spec = load_sweep(toml)
    runs = [r for r in spec.runs if r.structure.endswith("cubic.cif")]
    ended = {}
    out = run_batched(runs, progress=None, on_done=lambda run, entry: ended.setdefault(run.run_id, entry))
    assert set(out) == set(ended) == {r.run_id for r in runs}
    cold = [out[r.run_id] for r in runs if r.temperature == 20]
    hot = [out[r.run_id] for r in runs if r.temperature == 1500]
    assert all(e["status"] == "done" and e["steps_done"] == 60 for e in cold), cold
    assert all(e["max_gamma"] is not None and e["max_gamma"] < 4.0 for e in cold)
    for entry in hot:
        assert entry["status"] == "extrapolation_break", entry
        assert 0 < entry["steps_done"] < 60 and entry["steps_done"] % 2 == 0
        assert entry["max_gamma"] > 4.0 and entry["n_saved"] >= 1
        result = read_result(entry["folder"])
        assert result.status == "extrapolation_break" and result.steps_done == entry["steps_done"]
        last = result.saved_configurations[-1]
        assert last.info["step"] == entry["steps_done"] and last.info["max_gamma"] == pytest.approx(entry["max_gamma"])
        assert last.arrays["gamma"].max() == pytest.approx(entry["max_gamma"])
        thermo = np.loadtxt(Path(entry["folder"]) / "thermo.dat", ndmin=2)
        assert thermo.shape[1] == 15 and thermo[-1, 0] <= entry["steps_done"]
    # finished runs (done or broken) are not run again
    again = run_batched(runs, progress=None)
    assert {k: v["status"] for k, v in again.items()} == {k: v["status"] for k, v in out.items()}


def _integrator(pot, atoms, temps, settings, seeds):
    model = mtpkit.load_potential(pot).torch_model(species=["Cu"], device="cpu")
    randoms = [ReplicaRandom(s) for s in seeds]
    vel = [initial_velocities(a, t, r.velocity) for a, t, r in zip(atoms, temps, randoms)]
    integ = BatchIntegrator(model, atoms, temps, settings, vel)
    integ.evaluate()
    integ.update_pressure()
    return integ, randoms


def test_nve_conserves_energy(cu08):
    atoms = [lammps_atoms(bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))),
             lammps_atoms(bulk("Cu", "fcc", a=3.63).repeat((3, 3, 3)))]
    integ, randoms = _integrator(cu08, atoms, [600.0, 900.0], MDSettings(ensemble="nve", timestep=1.0), [1, 2])
    assert integ.temperature().tolist() == pytest.approx([600.0, 900.0], rel=1e-12)
    e0 = (integ.energy + integ.kinetic_energy()).numpy().copy()
    noise = integ.draw_noise(randoms, 200)
    worst = 0.0
    for k in range(200):
        integ.step(noise, k)
        worst = max(worst, float(np.abs((integ.energy + integ.kinetic_energy()).numpy() - e0).max()))
    assert worst < 2e-3  # eV for 32 and 27 atoms at 1 fs (kinetic energy ~2.5 eV)
    p = (integ.masses[:, None] * integ.velocities)
    for k in range(2):  # no drift of the centre of mass
        assert float(p[integ.system_idx == k].sum(0).abs().max()) < 1e-10


def test_replica_trajectory_does_not_depend_on_its_batch(cu08):
    """Per-replica noise streams: a replica run alone or beside others follows one trajectory."""
    cubic = lammps_atoms(bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2)))
    prim = lammps_atoms(bulk("Cu", "fcc", a=3.63).repeat((3, 3, 3)))
    settings = MDSettings(ensemble="npt", barostat="tri", timestep=2.0, pdamp=200.0, tdamp=50.0)
    alone, r_alone = _integrator(cu08, [prim], [800.0], settings, [11])
    both, r_both = _integrator(cu08, [cubic, prim], [300.0, 800.0], settings, [5, 11])
    n1 = alone.draw_noise(r_alone, 60)
    n2 = both.draw_noise(r_both, 60)
    for k in range(60):
        alone.step(n1, k)
        both.step(n2, k)
    sel = both.system_idx == 1
    np.testing.assert_allclose(both.positions[sel].numpy(), alone.positions.numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(both.cell[1].numpy(), alone.cell[0].numpy(), rtol=0, atol=1e-9)
    # tri: the cell fluctuates in shape but stays restricted triclinic (a along x, b in xy)
    cell = both.cell.numpy()
    assert np.all(cell[:, 0, 1:] == 0) and np.all(cell[:, 1, 2] == 0)
    assert abs(cell[0, 1, 0]) > 1e-6 and abs(cell[0, 2, 1]) > 1e-6  # sheared away from cubic
    # iso keeps the shape: the cell is a multiple of the initial one
    iso, r_iso = _integrator(cu08, [prim], [800.0], MDSettings(ensemble="npt", barostat="iso", timestep=2.0,
                                                                pdamp=200.0), [3])
    n3 = iso.draw_noise(r_iso, 30)
    for k in range(30):
        iso.step(n3, k)
    ratio = iso.cell[0].numpy()[np.abs(prim.cell.array) > 1e-9] / prim.cell.array[np.abs(prim.cell.array) > 1e-9]
    assert np.ptp(ratio) < 1e-12 and abs(ratio[0] - 1) > 1e-5


def test_unreadable_structure_fails_only_its_runs(cu08, tmp_path):
    toml = write_sweep(tmp_path, cu08, steps=10, restart=10, temperatures=(300,))
    (tmp_path / "structures" / "broken.cif").write_text("data_broken\nnot a cif at all\n")
    from mtpkit.md.sweep import run_sweep

    manifest = run_sweep(load_sweep(toml), progress=None)
    status = {k: v["status"] for k, v in manifest["runs"].items()}
    assert status == {f"{s}/T300K/r{r}": "failed" if s == "broken" else "done"
                      for s in ("broken", "cubic", "primitive") for r in (0, 1)}
    assert "broken.cif" in manifest["runs"]["broken/T300K/r0"]["message"]


def test_cli_engine_and_device_overrides(cu08, tmp_path, capsys):
    toml = write_sweep(tmp_path, cu08, steps=10, restart=10, temperatures=(300,))
    toml.write_text(toml.read_text().replace('engine = "torch-sim"', 'engine = "plugin"'))
    assert main(["sweep", str(toml), "--device", "cpu"]) == 2  # a torch-sim option on a LAMMPS sweep
    assert "add --engine torch-sim" in capsys.readouterr().err
    assert main(["sweep", str(toml), "--engine", "torch-sim", "--dtype", "float32", "--batch-size", "3"]) == 0
    out = capsys.readouterr().out
    assert "torch-sim batch 1/2: 3 replicas" in out and "torch-sim batch 2/2: 1 replicas" in out
    manifest = json.loads((tmp_path / "runs" / "manifest.json").read_text())
    assert {e["engine"] for e in manifest["runs"].values()} == {"torch-sim"}
