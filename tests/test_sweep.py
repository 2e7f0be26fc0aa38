"""MD sweeps from a TOML file: folders, manifest, skipping finished runs, isolated failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ase.build import bulk

from mtpkit.errors import InputFileError
from mtpkit.md.sweep import load_sweep, run_seed, run_sweep

TOML = """
[potential]
file = "{pot}"
species = ["Cu"]
engine = "plugin"

[md]
ensemble = "nvt"
timestep = 1.0
steps = 40
thermo_every = 10
dump_every = 20
restart_every = 20

[sweep]
structures = ["structures/*"]
temperatures = [600]
replicas = 2
seed = 100
output = "runs"
workers = 2
"""


@pytest.fixture
def sweep_dir(tmp_path, motep_data) -> Path:
    pot = motep_data / "fitting" / "crystals" / "cubic" / "16" / "pot.mtp"
    (tmp_path / "structures").mkdir()
    bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2)).write(tmp_path / "structures" / "cu.cif")
    (tmp_path / "structures" / "broken.cif").write_text("data_broken\nnot a cif at all\n")
    (tmp_path / "sweep.toml").write_text(TOML.format(pot=pot))
    return tmp_path


def test_sweep_runs_skips_and_reports(sweep_dir):
    spec = load_sweep(sweep_dir / "sweep.toml")
    assert len(spec.runs) == 2 * 1 * 2
    seeds = {r.seed for r in spec.runs}
    assert len(seeds) == 4  # every replica has its own velocity seed
    assert all(1 <= r.seed < 2**31 for r in spec.runs)
    messages: list[str] = []
    manifest = run_sweep(spec, progress=messages.append)
    runs = manifest["runs"]
    assert len(runs) == 4
    good = {k: v for k, v in runs.items() if k.startswith("cu/")}
    bad = {k: v for k, v in runs.items() if k.startswith("broken/")}
    assert all(v["status"] == "done" and v["steps_done"] == 40 for v in good.values())
    assert all(v["status"] == "failed" and "broken.cif" in v["message"] for v in bad.values())
    assert all(v["log_tail"] for v in bad.values())
    for key, entry in good.items():
        folder = sweep_dir / "runs" / key
        assert (folder / "traj.dump").is_file() and entry["files"]["trajectory"]
        assert entry["wall_time"] > 0
    on_disk = json.loads((sweep_dir / "runs" / "manifest.json").read_text())
    assert on_disk["runs"].keys() == runs.keys()
    assert any("[4/4]" in m for m in messages)

    # a second pass redoes nothing that finished (only the failed runs are retried)
    mtimes = {k: (sweep_dir / "runs" / k / "traj.dump").stat().st_mtime_ns for k in good}
    messages.clear()
    manifest2 = run_sweep(load_sweep(sweep_dir / "sweep.toml"), progress=messages.append)
    assert "2 already finished, 2 to run" in messages[0]
    assert {k: (sweep_dir / "runs" / k / "traj.dump").stat().st_mtime_ns for k in good} == mtimes
    assert all(manifest2["runs"][k]["status"] == "done" for k in good)


def test_sweep_cli(sweep_dir, capsys):
    from mtpkit.cli import main

    (sweep_dir / "structures" / "broken.cif").unlink()
    text = (sweep_dir / "sweep.toml").read_text().replace("replicas = 2", "replicas = 1")
    (sweep_dir / "sweep.toml").write_text(text)
    assert main(["sweep", str(sweep_dir / "sweep.toml"), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "1/1 runs done, 0 failed" in out


@pytest.mark.parametrize("edit, field", [
    (("steps = 40", "steps = 40\nfoo = 1"), "md.foo"),
    (("timestep = 1.0", "timestep = 0.0"), "md"),
    (('structures = ["structures/*"]', 'structures = ["nothing/*.cif"]'), "sweep.structures"),
    (("temperatures = [600]", "temperatures = []"), "sweep.temperatures"),
    (('engine = "plugin"', 'engine = "gpu"'), "potential.engine"),
])
def test_sweep_toml_errors_name_the_field(sweep_dir, edit, field):
    path = sweep_dir / "sweep.toml"
    path.write_text(path.read_text().replace(*edit))
    with pytest.raises(InputFileError, match=field.replace(".", r"\.")):
        load_sweep(path)


@pytest.mark.slow
def test_sweep_on_dask_local_cluster(sweep_dir):
    distributed = pytest.importorskip("distributed")
    from mtpkit.executor import Executor

    (sweep_dir / "structures" / "broken.cif").unlink()
    spec = load_sweep(sweep_dir / "sweep.toml")
    spec.runs = spec.runs[:2]
    with (distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                   dashboard_address=None) as cluster,
          Executor(scheduler=cluster.scheduler_address) as ex):
        manifest = run_sweep(spec, executor=ex, progress=None)
    assert [manifest["runs"][r.run_id]["status"] for r in spec.runs] == ["done", "done"]


def test_run_seeds_are_seed_sequence_children(sweep_dir):
    """The documented mapping: SeedSequence(seed, spawn_key=(iS, iT, r)), LAMMPS range."""
    import numpy as np

    path = sweep_dir / "sweep.toml"
    path.write_text(path.read_text().replace("temperatures = [600]", "temperatures = [600, 700]"))
    spec = load_sweep(path)
    structures = sorted({r.structure for r in spec.runs})
    for run in spec.runs:
        key = (structures.index(run.structure), [600, 700].index(run.temperature), run.replica)
        expected = int(np.random.SeedSequence(100, spawn_key=key).generate_state(1)[0])
        assert run.seed == run_seed(100, *key) == expected % (2**31 - 1) + 1
    assert len({r.seed for r in spec.runs}) == len(spec.runs) == 8
    assert [r.seed for r in load_sweep(path).runs] == [r.seed for r in spec.runs]  # deterministic
    path.write_text(path.read_text().replace("seed = 100", "seed = -1"))
    with pytest.raises(InputFileError, match=r"sweep\.seed"):
        load_sweep(path)


class SerialExecutor:
    """Runs the sweep's jobs in this process, one after another; remembers their keys."""

    def __init__(self):
        self.keys: list[str] = []

    def run(self, jobs, progress=None):
        from mtpkit.executor import _call

        outcomes = []
        for k, job in enumerate(jobs):
            self.keys.append(job.key)
            outcomes.append(_call(job))
            if progress:
                progress(k + 1, len(jobs), outcomes[-1])
        return outcomes


BREAK_TOML = """
[potential]
file = "cu.almtp"
species = ["Cu"]
[potential.extrapolation]
every = 5
select_threshold = 1.5
break_threshold = {brk}

[md]
ensemble = "nvt"
timestep = 1.0
steps = 60
thermo_every = 5
dump_every = 5
restart_every = 8

[sweep]
structures = ["structures/*.cif"]
temperatures = [300]
replicas = 1
seed = 1
output = "runs"
"""


def test_sweep_extrapolation_break_is_final_and_reported(tmp_path, motep_data):
    """A run stopped by an extrapolation break is not run again by a resumed sweep (also
    when the manifest is lost); its manifest entry carries max_gamma and the saved steps."""
    from _md_support import write_cu_almtp

    from mtpkit.md.run import read_result

    write_cu_almtp(tmp_path / "cu.almtp")
    (tmp_path / "structures").mkdir()
    cells = {"a": (2, 2, 2), "b": (1, 1, 2)}
    for name, rep in cells.items():
        bulk("Cu", "fcc", a=3.61, cubic=True).repeat(rep).write(tmp_path / "structures" / f"{name}.cif")
    (tmp_path / "sweep.toml").write_text(BREAK_TOML.format(brk=3.0))
    ex = SerialExecutor()
    manifest = run_sweep(load_sweep(tmp_path / "sweep.toml"), executor=ex, progress=None)
    entry = manifest["runs"]["a/T300K/r0"]
    assert entry["status"] == "extrapolation_break", entry["message"]
    assert 0 < entry["steps_done"] < 60 and entry["timestep"] == 1.0
    assert entry["max_gamma"] > 3.0
    assert entry["saved_steps"] and entry["saved_steps"][-1] == entry["steps_done"]
    assert entry["n_saved"] == len(entry["saved_steps"]) and entry["last_good_file"] is None
    assert entry["seed"] == run_seed(1, 0, 0, 0) and entry["temperature"] == 300.0
    on_disk = json.loads((tmp_path / "runs" / "manifest.json").read_text())["runs"]
    assert on_disk["a/T300K/r0"] == entry
    back = read_result(entry["folder"])
    assert [a.info["step"] for a in back.saved_configurations] == entry["saved_steps"]
    assert back.max_gamma == entry["max_gamma"]

    run_dir = tmp_path / "runs" / "a" / "T300K" / "r0"
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    messages: list[str] = []
    ex2 = SerialExecutor()
    run_sweep(load_sweep(tmp_path / "sweep.toml"), executor=ex2, progress=messages.append)
    assert "a/T300K/r0" not in ex2.keys
    assert "2 already finished, 0 to run" in messages[0]
    # the manifest is gone: the folders still say which runs finished, and how
    (tmp_path / "runs" / "manifest.json").unlink()
    ex3 = SerialExecutor()
    rebuilt = run_sweep(load_sweep(tmp_path / "sweep.toml"), executor=ex3, progress=None)
    assert ex3.keys == []
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before
    again = rebuilt["runs"]["a/T300K/r0"]
    for key in ("status", "steps_done", "max_gamma", "saved_steps", "n_saved", "seed", "message"):
        assert again[key] == entry[key], key
