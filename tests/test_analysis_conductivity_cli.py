"""`mtpkit conductivity` end to end on synthetic hopping trajectories (explicit files and a sweep)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from analysis_synthetic import lattice_walk

from mtpkit.analysis.arrhenius import K_B_EV
from mtpkit.analysis.trajectory import write_lammps_dump
from mtpkit.cli import main

EA = 0.25  # eV
TEMPS = [400.0, 500.0, 600.0, 700.0]


def _rate(T):  # hops per fs, 1/ps at 700 K
    return 1e-3 * np.exp(-EA / K_B_EV * (1 / T - 1 / 700.0))


def _walk_file(path, T, seed, n_frames=1201, dt=20.0):
    sym, cell, pos = lattice_walk(64, 32, n_frames, dt, _rate(T), 3.0, seed=seed)
    write_lammps_dump(path, sym, cell, pos, type_map=["Na", "Cl"])
    return path


def test_cli_explicit_trajectories_results_json(tmp_path):
    argv = ["conductivity"]
    for T in TEMPS:
        for r in range(2):
            argv += ["--trajectory", str(_walk_file(tmp_path / f"t{T:g}_{r}.dump", T, int(T) + r)),
                     "--temperature", str(T)]
    out = tmp_path / "out"
    argv += ["--frame-interval-fs", "20", "--species", "Na", "--type-map", "Na", "Cl", "--output", str(out),
             "--fit-window", "1", "8", "--workers", "2"]
    assert main(argv) == 0
    doc = json.loads((out / "results.json").read_text())
    assert [t["temperature_K"] for t in doc["temperatures"]] == TEMPS
    for t in doc["temperatures"]:
        expected = 9.0 * _rate(t["temperature_K"]) / 6 * 0.1
        assert abs(t["D"] - expected) < 4 * t["D_err"] + 0.15 * expected
        assert t["sigma"] > 0 and t["sigma_err"] > 0 and len(t["replicas"]) == 2
        assert t["fit_window_ps"][0] >= 1.0 and t["fit_window_ps"][1] <= 8.0
        assert t["D_err"] == max(t["D_ion_sem"], t["D_replica_sem"]) and t["D_err_source"] in ("ions", "replicas")
    reg = doc["arrhenius"]["one_regime"]["regimes"][0]
    assert abs(reg["Ea_eV"] - EA) < 3 * reg["Ea_err_eV"] + 0.02
    assert doc["sigma_293K"]["value"] > 0 and doc["sigma_293K"]["err"] > 0
    for name in ("transport.csv", "msd.csv", "results.md", "msd.png", "msd.svg", "arrhenius.png",
                 "arrhenius.svg"):
        assert (out / name).stat().st_size > 0, name
    assert "Ea (eV)" in (out / "results.md").read_text()
    # the vibrating Cl host of the walk is a crystal at every temperature, and the CLI says so
    assert all(h["state"] == "crystal" for t in doc["temperatures"] for h in t["host"])
    assert "crystal 2" in (out / "results.md").read_text()
    # a limit below the Cl vibration turns every replica into "not solid"; --no-host-check skips it
    strict, off = tmp_path / "strict", tmp_path / "off"
    assert main([a if a != str(out) else str(strict) for a in argv] + ["--host-msd-max", "1e-6", "--no-plots"]) == 0
    assert all(h["state"] == "not solid"
               for t in json.loads((strict / "results.json").read_text())["temperatures"] for h in t["host"])
    assert main([a if a != str(out) else str(off) for a in argv] + ["--no-host-check", "--no-plots"]) == 0
    assert "host" not in json.loads((off / "results.json").read_text())["temperatures"][0]
    # two regimes split at a given breakpoint: both Ea's near the single one, σ(293 K) from the low-T one
    out2 = tmp_path / "out_bp"
    argv2 = [a if a != str(out) else str(out2) for a in argv] + ["--breakpoint", "550", "--no-plots"]
    assert main(argv2) == 0
    doc2 = json.loads((out2 / "results.json").read_text())
    arr = doc2["arrhenius"]
    assert arr["selected"] == "two_regimes" and arr["two_regimes"]["breakpoint_K"] == 550
    assert arr["selection"]["criterion"] == "F-test" and arr["selection"]["splits_tested"] == 1
    lo, hi = arr["two_regimes"]["regimes"]
    assert (lo["T_max_K"], hi["T_min_K"]) == (500.0, 600.0)
    assert doc2["extrapolated"]["regime"] == 0 and doc2["sigma_293K"]["value"] > 0


def _run_folder(folder: Path, T: float, seed: int, status: str, thermo_T: float | None = None):
    folder.mkdir(parents=True)
    _walk_file(folder / "traj.dump", T, seed, n_frames=301)
    (folder / "state.json").write_text(json.dumps({
        "step": 1000, "steps": 1000, "done": status == "done", "status": status,
        "settings": {"temperature": T, "timestep": 2.0, "dump_every": 10}}))
    (folder / "structure.data").write_text("x\n\n2 atom types\n\nMasses\n\n1 22.98976928\n2 35.453\n\n"
                                           "Atoms # atomic\n\n")
    tt = T if thermo_T is None else thermo_T
    (folder / "thermo.dat").write_text("# step time_ps T(K) PE(eV)\n" + "".join(
        f"{k} {k / 1000} {tt + (k % 3 - 1)} 0\n" for k in range(10)))


def test_cli_sweep_partial_and_inconsistent_temperature(tmp_path, capsys):
    # the layout of mtpkit.md.sweep: <output>/<structure>/T<T>K/r<k>/ plus manifest.json
    sweep = tmp_path / "sweep"
    for T in (500.0, 600.0):
        for r in range(2):
            _run_folder(sweep / "nyzc" / f"T{T:g}K" / f"r{r}", T, int(T) + r, "done")
    _run_folder(sweep / "nyzc" / "T700K" / "r0", 700.0, 7, "running")
    (sweep / "manifest.json").write_text(json.dumps({"sweep": "x.toml", "runs": {
        "nyzc/T500K/r0": {"status": "done", "folder": str(sweep / "nyzc" / "T500K" / "r0")},
        "nyzc/T700K/r1": {"status": "failed", "folder": str(sweep / "nyzc" / "T700K" / "r1"),
                          "message": "blow-up at step 40", "temperature": 700.0, "replica": 1}}}))
    assert main(["conductivity", str(sweep), "--species", "Na", "--no-plots", "--workers", "1"]) == 0
    doc = json.loads((sweep / "conductivity" / "results.json").read_text())
    assert doc["partial"] is True and len(doc["skipped"]) == 2
    reasons = " | ".join(s["reason"] for s in doc["skipped"])
    assert "not finished" in reasons and "blow-up at step 40" in reasons
    assert doc["systems"][0]["label"] == "nyzc"
    assert [t["temperature_K"] for t in doc["temperatures"]] == [500.0, 600.0]
    assert "partial sweep" in (sweep / "conductivity" / "results.md").read_text().lower()
    # a replica whose thermostat held 560 K instead of 500 K
    bad = tmp_path / "bad"
    _run_folder(bad / "s" / "T500K" / "r0", 500.0, 1, "done")
    _run_folder(bad / "s" / "T500K" / "r1", 500.0, 2, "done", thermo_T=560.0)
    assert main(["conductivity", str(bad), "--no-plots", "--workers", "1"]) == 2
    assert "inconsistent temperatures" in capsys.readouterr().err


def test_cli_bad_input(tmp_path, capsys):
    path = _walk_file(tmp_path / "a.dump", 600.0, 1, n_frames=30)
    assert main(["conductivity", "--trajectory", str(path), "--temperature", "600", "--frame-interval-fs",
                 "20", "--type-map", "Na", "Cl", "--species", "Li", "-o", str(tmp_path / "o")]) == 2
    assert "no Li atoms" in capsys.readouterr().err
    assert main(["conductivity", "--trajectory", str(path), "--frame-interval-fs", "20"]) == 2
    assert "--temperature" in capsys.readouterr().err
    assert main(["conductivity", "--trajectory", str(path), "--temperature", "600", "--frame-interval-fs",
                 "20", "--type-map", "Na", "Cl", "-o", str(tmp_path / "o")]) == 2
    assert "too few" in capsys.readouterr().err


def test_cli_descriptors_on_vibrating_nyzc75(tmp_path, nyzc75_atoms):
    atoms = nyzc75_atoms * (2, 1, 1)
    rng = np.random.default_rng(0)
    pos = atoms.positions[None] + rng.normal(0, 0.08, (300, len(atoms), 3))
    cell = np.array(atoms.cell[:])
    from mtpkit.md.structure import to_lammps_cell  # LAMMPS frame: lower-triangular
    rot, _ = to_lammps_cell(cell)
    frac = pos @ np.linalg.inv(cell)
    path = tmp_path / "nyzc.dump"
    write_lammps_dump(path, atoms.get_chemical_symbols(), rot, frac @ rot, type_map=["Na", "Y", "Zr", "Cl"])
    out = tmp_path / "out"
    assert main(["conductivity", "--trajectory", str(path), "--temperature", "300", "--frame-interval-fs", "10",
                 "--type-map", "Na", "Y", "Zr", "Cl", "--descriptors", "-o", str(out), "--workers", "1"]) == 0
    doc = json.loads((out / "results.json").read_text())
    t = doc["temperatures"][0]
    assert t["D"] < 1e-8 and t["sigma"] < 1e-4
    d = t["descriptors"]
    assert d["o_oct"]["mean"] == pytest.approx(8 / 18, abs=0.06)  # 4 of 9 Na octahedral in the CIF
    assert 0 < d["cl_angle_deg"]["mean"] < 5.0
    assert set(d["sro_mean"]) == {"Y-Y", "Y-Zr", "Zr-Y", "Zr-Zr"}
    assert (out / "descriptors.png").stat().st_size > 0
    # by nearest reference site: the CIF (repeated to the trajectory's 2x1x1 cell) labels the sites
    cif = Path(__file__).parent / "data" / "NYZC75_P21n_37atoms_CHGNet-relaxed.cif"
    assert main(["conductivity", "--trajectory", str(path), "--temperature", "300", "--frame-interval-fs", "10",
                 "--type-map", "Na", "Y", "Zr", "Cl", "--reference-structure", str(cif), "--no-plots",
                 "-o", str(tmp_path / "out2"), "--workers", "1"]) == 0
    d2 = json.loads((tmp_path / "out2" / "results.json").read_text())["temperatures"][0]["descriptors"]
    assert d2["o_oct"]["mean"] == pytest.approx(8 / 18, abs=1e-9)


def test_cli_sweep_toml_reports_unstarted_runs(tmp_path, data_dir):
    import shutil

    (tmp_path / "pot.mtp").write_text("MTP\nversion = 1.1.0\n")
    shutil.copy(data_dir / "NYZC75_P21n_37atoms_CHGNet-relaxed.cif", tmp_path / "nyzc.cif")
    (tmp_path / "sweep.toml").write_text(
        '[potential]\nfile = "pot.mtp"\nspecies = ["Na", "Cl"]\n\n'
        '[md]\ntimestep = 2.0\ndump_every = 10\nsteps = 1000\n\n'
        '[sweep]\nstructures = ["nyzc.cif"]\ntemperatures = [500, 600]\nreplicas = 2\noutput = "runs"\n')
    runs = tmp_path / "runs" / "nyzc"
    _run_folder(runs / "T500K" / "r0", 500.0, 1, "done")
    _run_folder(runs / "T500K" / "r1", 500.0, 2, "done")
    _run_folder(runs / "T600K" / "r0", 600.0, 3, "done")
    assert main(["conductivity", str(tmp_path / "sweep.toml"), "--no-plots", "--workers", "1"]) == 0
    doc = json.loads((tmp_path / "conductivity" / "results.json").read_text())
    assert [len(t["replicas"]) for t in doc["temperatures"]] == [2, 1]
    assert doc["partial"] and "not started" in doc["skipped"][0]["reason"]
    assert doc["systems"][0]["label"] == "nyzc"


def test_transport_analysis_object_is_what_analyze_runs_writes(tmp_path):
    """The analyzer API (pymatgen-analysis-diffusion style) gives the numbers of results.json."""
    from mtpkit.analysis.analyze import AnalysisOptions, ReplicaSpec, TransportAnalysis, analyze_runs, load_replicas

    specs = [ReplicaSpec(path=str(_walk_file(tmp_path / f"{T:g}.dump", T, int(T), n_frames=301)), temperature_K=T,
                         frame_interval_fs=20.0, type_map=["Na", "Cl"]) for T in (500.0, 600.0, 700.0)]
    options = AnalysisOptions(plots=False, host_check=False)
    doc = analyze_runs(specs, "Na", tmp_path / "out", options)
    loaded = load_replicas(specs, "Na", options)
    analysis = TransportAnalysis({s.temperature_K: [r.data] for s, r in zip(specs, loaded)}, options=options)
    assert [r.temperature_K for r in analysis.temperatures()] == [500.0, 600.0, 700.0]
    assert [r.D for r in analysis.temperatures()] == [t["D"] for t in doc["temperatures"]]
    assert analysis.arrhenius()[0] == doc["arrhenius"] and analysis.host_checks() is None
    assert analysis.extrapolate() == doc["extrapolated"]
    warm = analysis.extrapolate(400.0)
    assert warm["T_K"] == 400.0 and warm["sigma"] > doc["extrapolated"]["sigma"] > 0
    assert analysis.to_dict() == doc["systems"][0]
    assert (tmp_path / "out" / "transport.csv").read_text().count("\n") == 4
