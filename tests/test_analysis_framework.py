"""Host-framework check: a vibrating host is solid, a diffusing one is not; volume change."""

from __future__ import annotations

import numpy as np
import pytest

from mtpkit.analysis.framework import framework_check, framework_check_positions
from mtpkit.analysis.trajectory import write_lammps_dump
from mtpkit.errors import UserError
from tests.analysis_synthetic import lattice_walk


def _host_walk(positions, symbols, step_A, seed):
    """Add a random walk of ``step_A`` rms per frame and axis to every Cl."""
    rng = np.random.default_rng(seed)
    cl = np.array(symbols) == "Cl"
    walk = np.cumsum(rng.normal(0, step_A, (positions.shape[0], int(cl.sum()), 3)), axis=0)
    out = positions.copy()
    out[:, cl] += walk
    return out


def test_vibrating_host_is_solid_and_hopping_na_is_not_counted():
    sym, cell, pos = lattice_walk(8, 24, 200, 10.0, 0.01, 3.0, seed=1, vib_A=0.2)
    c = framework_check_positions(pos, cell, sym, 0.01)
    assert c.solid and c.host_species == ["Cl"] and c.volume_change == pytest.approx(0.0)
    # vibration only: 2 * 3 * 0.2² = 0.24 Å², far below the limit; Na hops are large
    assert c.msd_A2["Cl"] == pytest.approx(0.24, rel=0.15)
    assert c.msd_A2["Na"] > 10 * c.msd_A2["Cl"]
    assert c.lag_ps == pytest.approx(1.0) and c.summary().startswith("crystal") and c.state == "crystal"


def test_diffusing_host_is_not_solid_and_names_the_species():
    sym, cell, pos = lattice_walk(8, 24, 200, 10.0, 0.01, 3.0, seed=2, vib_A=0.1)
    pos = _host_walk(pos, sym, 0.15, seed=3)  # MSD at lag 100 ≈ 3 · 0.15² · 100 = 6.75 Å²
    c = framework_check_positions(pos, cell, sym, 0.01)
    assert not c.solid and c.worst_host == "Cl"
    assert 4.0 < c.msd_A2["Cl"] < 10.0 and c.volume_change == pytest.approx(0.0)
    assert "NOT solid" in c.summary() and "Cl" in c.summary()
    # a common drift of everything (barostat / thermostat) is not host motion
    drifted = pos + np.linspace(0, 50, len(pos))[:, None, None]
    assert framework_check_positions(drifted, cell, sym, 0.01).msd_A2["Cl"] == pytest.approx(c.msd_A2["Cl"])


def test_cell_strain_is_not_host_motion_but_volume_change_is_reported():
    sym, cell, pos = lattice_walk(8, 24, 200, 10.0, 0.01, 3.0, seed=7, vib_A=0.15)
    base = framework_check_positions(pos, cell, sym, 0.01)
    # the barostat grows the volume by 20 % and shears the cell; atoms follow affinely
    n = len(pos)
    strain = np.array([np.eye(3) * f ** (1 / 3) + np.array([[0, 0, 0], [0.2 * k / n, 0, 0], [0, 0, 0]])
                       for k, f in enumerate(np.linspace(1.0, 1.2, n))])
    cells = cell @ strain
    moved = np.einsum("fni,fij->fnj", pos, strain)
    c = framework_check_positions(moved, cells, sym, 0.01)
    # the same host motion through the mean cell (a few % larger than the original cell)
    assert c.msd_A2["Cl"] == pytest.approx(base.msd_A2["Cl"], rel=0.15) and c.solid
    # without removing the strain the host would look mobile
    assert framework_check_positions(moved, cell, sym, 0.01).msd_A2["Cl"] > 3 * base.msd_A2["Cl"]
    vols = np.abs(np.linalg.det(cells))
    assert c.volume_change == pytest.approx(vols[n // 2:].mean() / vols[0] - 1.0)
    assert 0.14 < c.volume_change < 0.16


def test_framework_check_reads_a_lammps_dump(tmp_path):
    sym, cell, pos = lattice_walk(6, 18, 120, 20.0, 0.005, 3.0, seed=4, vib_A=0.1)
    solid = tmp_path / "solid.dump"
    write_lammps_dump(solid, sym, cell, pos, type_map=["Na", "Cl"])
    c = framework_check(solid, 20.0, type_map=["Na", "Cl"], n_max=60)
    assert c.solid and c.n_frames == 60 and c.lag_ps == pytest.approx(30 * 2 * 0.02)
    melt = tmp_path / "melt.dump"
    write_lammps_dump(melt, sym, cell, _host_walk(pos, sym, 0.3, seed=5), type_map=["Na", "Cl"])
    assert not framework_check(melt, 20.0, type_map=["Na", "Cl"]).solid


def test_bad_input_is_a_clear_error():
    sym, _cell, pos = lattice_walk(2, 2, 3, 10.0, 0.0, 3.0, seed=6)
    with pytest.raises(UserError, match="at least 4 frames"):
        framework_check_positions(pos, np.eye(3), sym, 0.01)
    sym, _cell, pos = lattice_walk(2, 2, 10, 10.0, 0.0, 3.0, seed=6)
    with pytest.raises(UserError, match="mobile"):
        framework_check_positions(pos, np.eye(3), sym, 0.01, mobile=("Na", "Cl"))


def _octahedra(n_frames, seed, angle_rad, metal_walk_A=0.0):
    """4 metals ("Zr") on a 10 Å cubic lattice, 6 Cl at 2.5 Å around each, 4 Na: per frame the
    octahedra turn by a random rotation of up to ``angle_rad`` and the metals random-walk by
    ``metal_walk_A`` rms per axis; Na stands still."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    cell = np.eye(3) * 20.0
    metals0 = np.array([[0, 0, 0], [10, 10, 0], [10, 0, 10], [0, 10, 10]], float) + 1.0
    arms = 2.5 * np.vstack([np.eye(3), -np.eye(3)])
    na = np.array([[5, 5, 5], [15, 15, 5], [15, 5, 15], [5, 15, 15]], float)
    rots = [Rotation.identity()] * 4
    metals = metals0.copy()
    frames = []
    for _ in range(n_frames):
        rots = [Rotation.from_rotvec(rng.normal(0, angle_rad, 3)) * r for r in rots]
        metals = metals + rng.normal(0, metal_walk_A, metals.shape)
        cl = np.vstack([m + r.apply(arms) for m, r in zip(metals, rots, strict=True)])
        frames.append(np.vstack([metals, cl, na]) + rng.normal(0, 0.05, (4 + 24 + 4, 3)))
    return ["Zr"] * 4 + ["Cl"] * 24 + ["Na"] * 4, cell, np.array(frames)


def test_rotating_octahedra_are_a_solid_state_and_diffusing_metals_are_not():
    sym, cell, pos = _octahedra(60, seed=8, angle_rad=0.3)
    c = framework_check_positions(pos, cell, sym, 0.1)
    assert c.msd_A2["Cl"] > 2.0 and c.msd_A2["Zr"] < 0.1 and c.same_centre == pytest.approx(1.0)
    assert c.state == "rotating octahedra" and c.solid and c.ligand_species == ["Cl"]
    still = framework_check_positions(_octahedra(60, seed=8, angle_rad=0.0)[2], cell, sym, 0.1)
    assert still.state == "crystal" and still.same_centre == 1.0
    melt = framework_check_positions(_octahedra(60, seed=9, angle_rad=0.3, metal_walk_A=0.4)[2], cell, sym, 0.1)
    assert melt.msd_A2["Zr"] > 2.0 and melt.state == "not solid" and not melt.solid
    assert "NOT solid" in melt.summary() and "keep their metal" in melt.summary()
    assert melt.reason.startswith("Zr MSD") and "sites diffuse" in melt.reason


def test_conductivity_analysis_reports_each_replicas_host_state(tmp_path):
    from mtpkit.analysis.analyze import AnalysisOptions, ReplicaSpec, analyze_runs

    specs = []
    for T, walk in ((500.0, 0.0), (700.0, 0.3)):
        sym, cell, pos = lattice_walk(6, 18, 600, 20.0, 0.005, 3.0, seed=int(T), vib_A=0.1)
        f = tmp_path / f"T{T:g}.dump"
        write_lammps_dump(f, sym, cell, _host_walk(pos, sym, walk, seed=1) if walk else pos, type_map=["Na", "Cl"])
        specs.append(ReplicaSpec(path=str(f), temperature_K=T, frame_interval_fs=20.0, label=f.stem,
                                 type_map=["Na", "Cl"]))
    doc = analyze_runs(specs, "Na", tmp_path / "out", AnalysisOptions(plots=False))
    hosts = {t["temperature_K"]: t["host"] for t in doc["temperatures"]}
    assert [h["state"] for h in hosts[500.0]] == ["crystal"] and [h["state"] for h in hosts[700.0]] == ["not solid"]
    assert any("700 K: host NOT solid in 1 of 1 replicas (T700: Cl MSD" in n for n in doc["notes"])
    assert not any("500 K" in n and "host" in n for n in doc["notes"])
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| crystal 1 |" in md and "| not solid 1 |" in md
    off = analyze_runs(specs, "Na", tmp_path / "off", AnalysisOptions(plots=False, host_check=False))
    assert "host" not in off["temperatures"][0] and not any("host" in n for n in off["notes"])
