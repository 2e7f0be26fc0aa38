"""MD sweeps from a TOML file: folders, manifest, skipping finished runs, isolated failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ase.build import bulk

from mtpkit.errors import InputFileError
from mtpkit.md.sweep import load_sweep, run_sweep

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
