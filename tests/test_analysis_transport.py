"""Transport: synthetic random walks with known D, vibrating solid, DiffusionAnalyzer agreement, bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from analysis_synthetic import lattice_walk

from mtpkit.analysis.trajectory import iter_unwrapped, open_trajectory, write_lammps_dump
from mtpkit.analysis.transport import analyze_temperature, load_replica
from mtpkit.errors import UserError

TYPES = ["Na", "Cl"]


def _write_walk(tmp_path, seed, rate=1e-3, hop=3.0, n_frames=3001, dt=10.0, name=None):
    sym, cell, pos = lattice_walk(64, 32, n_frames, dt, rate, hop, seed=seed)
    path = tmp_path / (name or f"walk{seed}.dump")
    write_lammps_dump(path, sym, cell, pos, type_map=TYPES)
    return path, sym, cell, pos


def test_random_walk_gives_a2_gamma_over_6(tmp_path):
    rate, hop = 1e-3, 3.0  # hops per fs, Å
    reps = [load_replica(_write_walk(tmp_path, s, rate, hop)[0], "Na", 600.0, 10.0, type_map=TYPES)
            for s in range(4)]
    res = analyze_temperature(reps, fit_window_ps=(1.0, 10.0))
    expected = hop**2 * rate / 6 * 0.1  # Å²/fs -> cm²/s
    assert res.D_err > 0
    assert abs(res.D - expected) < 3 * res.D_err, (res.D, res.D_err, expected)
    assert abs(res.D - expected) / expected < 0.1
    # independent hops: collective (charge) D equals the tracer D within its (larger) error
    assert abs(res.D_charge - expected) < 3 * res.D_charge_err + 0.2 * expected
    assert res.fit_window_ps[0] >= 1.0 and res.fit_window_ps[1] <= 10.0
    assert len(res.D_replicas) == 4 and res.D_replica_sem > 0
    # Nernst–Einstein with the mean volume: σ = N e² D / (V k T)
    e, kB = 1.602176634e-19, 1.380649e-23
    n_per_cm3 = 64 / (20.0**3 * 1e-24)
    assert res.sigma == pytest.approx(n_per_cm3 * e**2 * res.D / (kB * 600.0), rel=1e-6)


def test_vibrating_solid_has_no_diffusion(tmp_path):
    path, *_ = _write_walk(tmp_path, 7, rate=0.0)
    res = analyze_temperature([load_replica(path, "Na", 400.0, 10.0, type_map=TYPES)])
    assert res.D < 1e-9  # cm²/s; hopping at 1/ps would give 1.5e-4
    assert res.sigma < 1e-5  # S/cm floor
    assert any("one replica" in n for n in res.notes)


def test_agrees_with_diffusionanalyzer_directly(tmp_path):
    from pymatgen.analysis.diffusion.analyzer import DiffusionAnalyzer
    from pymatgen.core import Lattice, Structure

    path, sym, cell, _pos = _write_walk(tmp_path, 3, n_frames=1501)
    ours = analyze_temperature([load_replica(path, "Na", 700.0, 10.0, type_map=TYPES)])
    # the naive way: every atom's displacement from the file, the initial structure's volume
    traj = open_trajectory(path, type_map=TYPES)
    frames = [f.positions for f in iter_unwrapped(traj)]
    disp = np.stack(frames, axis=1) - frames[0][:, None, :]
    structure = Structure(Lattice(cell), sym, frames[0], coords_are_cartesian=True)
    da = DiffusionAnalyzer(structure, disp, "Na", 700.0, time_step=10.0, step_skip=1, smoothed="max")
    assert ours.D == pytest.approx(da.diffusivity, rel=1e-9)
    assert ours.D_charge == pytest.approx(da.chg_diffusivity, rel=1e-9)
    assert ours.sigma == pytest.approx(da.conductivity / 1000.0, rel=1e-9)  # mS/cm -> S/cm
    assert ours.haven_ratio == pytest.approx(da.haven_ratio, rel=1e-9)
    assert ours.D_fit_err_pymatgen == pytest.approx(da.diffusivity_std_dev, rel=1e-9)
    assert ours.D_fit_err > 10 * da.diffusivity_std_dev  # pymatgen's understates it (see _fit)


def test_max_frames_bounds_memory_and_keeps_D(tmp_path):
    path, *_ = _write_walk(tmp_path, 4, n_frames=3001)
    full = load_replica(path, "Na", 600.0, 10.0, type_map=TYPES)
    small = load_replica(path, "Na", 600.0, 10.0, type_map=TYPES, max_frames=700)
    assert small.stride == 5 and small.n_frames == 601 and small.frame_interval_fs == 50.0
    assert small.disp.nbytes < full.disp.nbytes / 4
    d_full = analyze_temperature([full], fit_window_ps=(1, 10)).D
    d_small = analyze_temperature([small], fit_window_ps=(1, 10))
    assert abs(d_small.D - d_full) / d_full < 0.05
    assert any("1 in 5 of 3001 frames" in n for n in d_small.notes)


def test_npt_mean_volume_and_triclinic(tmp_path):
    sym, _cell, pos = lattice_walk(16, 16, 400, 10.0, 1e-3, 3.0, seed=5)
    tri = np.array([[20.0, 0, 0], [3.0, 19.0, 0], [-2.0, 1.5, 21.0]])
    scale = 1 + 0.01 * np.sin(np.arange(400) / 20.0)
    cells = tri[None] * scale[:, None, None]
    path = tmp_path / "npt.dump"
    write_lammps_dump(path, sym, cells, pos, type_map=TYPES)
    traj = open_trajectory(path, type_map=TYPES)
    f = next(traj.frames(start=10))
    assert np.allclose(f.cell, cells[10], atol=1e-8)
    rep = load_replica(path, "Na", 500.0, 10.0, type_map=TYPES)
    vols = np.abs(np.linalg.det(cells))
    assert rep.mean_volume_A3 == pytest.approx(vols.mean(), rel=1e-9)


def _write_wrapped(path, sym, pos, box=10.0):
    wrapped = pos % box
    lines = []
    for k in range(len(pos)):
        lines += ["ITEM: TIMESTEP", str(k), "ITEM: NUMBER OF ATOMS", str(len(sym)),
                  "ITEM: BOX BOUNDS pp pp pp", f"0 {box}", f"0 {box}", f"0 {box}",
                  "ITEM: ATOMS id element x y z"]
        lines += [f"{i + 1} {s} {x:.6f} {y:.6f} {z:.6f}" for i, (s, (x, y, z)) in enumerate(zip(sym, wrapped[k]))]
    path.write_text("\n".join(lines) + "\n")


def test_wrapped_coordinates_are_unwrapped_and_long_jumps_rejected(tmp_path):
    sym, cell, pos = lattice_walk(8, 8, 200, 10.0, 2e-3, 2.0, seed=6, cell_A=10.0)
    path = tmp_path / "wrapped.dump"
    _write_wrapped(path, sym, pos)
    traj = open_trajectory(path)
    assert not traj.unwrapped and traj.symbols == sym
    got = np.stack([f.positions for f in iter_unwrapped(traj)])
    assert np.allclose(got - got[0], pos - pos[0], atol=1e-5)
    # one Na moving 4.5 Å (0.45 of the cell) between two saved frames: ambiguous when wrapped
    jumpy = pos[:3].copy()
    jumpy[2:, 0, 0] += 4.5
    _write_wrapped(tmp_path / "jump.dump", sym, jumpy)
    with pytest.raises(UserError, match="dump interval is too long"):
        list(iter_unwrapped(open_trajectory(tmp_path / "jump.dump")))
    # unwrapped coordinates: a jump over half the cell between saved frames is rejected too
    jumpy[2:, 0, 0] += 2.0
    write_lammps_dump(tmp_path / "jump_u.dump", sym, cell, jumpy, type_map=TYPES)
    with pytest.raises(UserError, match="more than half a cell"):
        list(iter_unwrapped(open_trajectory(tmp_path / "jump_u.dump", type_map=TYPES)))


def test_bad_input_messages(tmp_path):
    path, *_ = _write_walk(tmp_path, 8, n_frames=60)
    with pytest.raises(UserError, match="no K atoms"):
        load_replica(path, "K", 600.0, 10.0, type_map=TYPES)
    with pytest.raises(UserError, match="--type-map"):
        load_replica(path, "Na", 600.0, 10.0)
    with pytest.raises(UserError, match="fewer than"):
        load_replica(path, "Na", 600.0, 10.0, type_map=TYPES, min_frames=100)
    short = load_replica(path, "Na", 600.0, 10.0, type_map=TYPES)
    with pytest.raises(UserError, match="too few"):
        analyze_temperature([short])  # 0.59 ps < the 1 ps minimum lag
    edge = load_replica(_write_walk(tmp_path, 11, n_frames=102)[0], "Na", 600.0, 10.0, type_map=TYPES)
    with pytest.raises(UserError, match="too few"):
        analyze_temperature([edge])  # 1.01 ps: pymatgen's fit would see one lag and crash (IndexError)
    a = load_replica(_write_walk(tmp_path, 9, n_frames=400)[0], "Na", 600.0, 10.0, type_map=TYPES)
    b = load_replica(_write_walk(tmp_path, 10, n_frames=400)[0], "Na", 650.0, 10.0, type_map=TYPES)
    with pytest.raises(UserError, match="different temperatures"):
        analyze_temperature([a, b])
    # a truncated last frame (run still going) is dropped and reported
    text = (tmp_path / "walk9.dump").read_text()
    cut = tmp_path / "cut.dump"
    cut.write_text(text[: len(text) - 500])
    rep = load_replica(cut, "Na", 600.0, 10.0, type_map=TYPES)
    assert rep.truncated and rep.n_frames == 399


def test_extxyz_wrapped_trajectory_matches_lammps_dump(tmp_path):
    from ase import Atoms
    from ase.io import write

    sym, cell, pos = lattice_walk(16, 16, 300, 10.0, 1e-3, 2.0, seed=11, cell_A=12.0)
    frames = [Atoms(sym, positions=p % 12.0, cell=cell, pbc=True) for p in pos]
    write(tmp_path / "t.extxyz", frames, format="extxyz")
    write_lammps_dump(tmp_path / "t.dump", sym, cell, pos, type_map=TYPES)
    a = load_replica(tmp_path / "t.extxyz", "Na", 600.0, 10.0)
    b = load_replica(tmp_path / "t.dump", "Na", 600.0, 10.0, type_map=TYPES)
    assert a.n_frames == b.n_frames == 300
    assert np.allclose(a.disp, b.disp, atol=2e-4)


def test_sparse_index_matches_full_scan(tmp_path, monkeypatch):
    from mtpkit.analysis import trajectory as T

    path, *_ = _write_walk(tmp_path, 12, n_frames=500)
    full = T._scan_offsets(path)
    monkeypatch.setattr(T, "SPARSE_MIN_BYTES", 0)
    traj = T.open_trajectory(path, type_map=TYPES)
    assert isinstance(traj._offsets, T._SparseIndex) and traj.n_frames == 500
    a = [f.positions for f in traj.frames(stride=7)]
    monkeypatch.setattr(T, "SPARSE_MIN_BYTES", 1 << 40)
    b = [f.positions for f in T.open_trajectory(path, type_map=TYPES).frames(stride=7)]
    assert len(a) == len(b) == 72 and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(traj._offsets.known[k] == full[k] for k in traj._offsets.known if k <= 500)
    # truncated last frame and uneven timesteps (fall back to the full scan)
    monkeypatch.setattr(T, "SPARSE_MIN_BYTES", 0)
    text = path.read_text()
    (tmp_path / "cut.dump").write_text(text[:-300])
    cut = T.open_trajectory(tmp_path / "cut.dump", type_map=TYPES)
    assert cut.truncated and cut.n_frames == 499 and len(list(cut.frames(start=490))) == 9
    uneven = text.replace("ITEM: TIMESTEP\n250\n", "ITEM: TIMESTEP\n251\n")
    (tmp_path / "uneven.dump").write_text(uneven)
    u = T.open_trajectory(tmp_path / "uneven.dump", type_map=TYPES)
    got = [f.timestep for f in u.frames(stride=50)]
    assert got == [0, 50, 100, 150, 200, 251, 300, 350, 400, 450]


# --- error bars of D from the displacement statistics ----------------------------------------------

def _replica(seed, n_frames=401, dt=10.0, rate=1e-3, hop=3.0, n_mobile=32, label=None):
    """A lattice walk as in-memory ReplicaData (no dump file): displacements from frame 0."""
    from mtpkit.analysis.transport import ReplicaData

    sym, _cell, pos = lattice_walk(n_mobile, 8, n_frames, dt, rate, hop, seed=seed)
    d = pos - pos[0]
    mob = np.array(sym) == "Na"
    return ReplicaData(path=f"walk{seed}", label=label or f"walk{seed}", species="Na", temperature_K=600.0,
                       frame_interval_fs=dt, stride=1, n_frames_file=n_frames,
                       disp=np.ascontiguousarray(d[:, mob].transpose(1, 0, 2)), framework_disp=d[:, ~mob].mean(axis=1),
                       mean_volume_A3=8000.0, volume_std_A3=0.0, framework_symbol="Cl")


def test_D_is_the_mean_of_the_per_ion_Ds_and_its_error_their_standard_error():
    from mtpkit.analysis.transport import _ion_D, analyze_replica

    rep = _replica(1)
    res = analyze_temperature([rep])
    curve = analyze_replica(rep)
    d_i = _ion_D(curve.msd_ions, curve.dt_fs)
    assert curve.msd_ions.shape == (32, len(curve.dt_fs))
    assert np.allclose(curve.msd_ions.mean(axis=0), curve.msd, rtol=1e-12)
    assert d_i.mean() == pytest.approx(res.D, rel=1e-10)  # the 1/t-weighted fit is linear in the MSD
    assert res.D_ion_sem == pytest.approx(np.std(d_i, ddof=1) / np.sqrt(32), rel=1e-10)
    assert res.D_err == res.D_ion_sem and res.D_err_source == "ions"
    assert res.D_err > 10 * res.D_fit_err  # the slope-fit error ignores that MSD points share displacements
    assert 0.4 < res.D_charge_walk_rel_err < 1.5 and res.D_charge_err == pytest.approx(
        res.D_charge_walk_rel_err * res.D_charge)


def _coverage(n_seeds, R=1, **kw):
    rate, hop = kw.get("rate", 1e-3), kw.get("hop", 3.0)
    true = hop**2 * rate / 6 * 0.1  # cm²/s
    rows = []
    for s in range(n_seeds):
        res = analyze_temperature([_replica(100 * s + r, **kw) for r in range(R)])
        rows.append((res.D, res.D_err, res.D_fit_err, res.D_charge, res.D_charge_err))
    d, err, fit_err, dc, dc_err = np.array(rows).T
    return true, d, err, fit_err, dc, dc_err


def test_D_error_matches_the_scatter_over_seeds():
    true, d, err, fit_err, dc, dc_err = _coverage(30)
    z = np.abs(d - true) / err
    # the stated error is the scatter of D over independent runs (sd of an sd from 30 seeds: ~13 %)
    assert 0.65 < np.std(d - true) / np.sqrt(np.mean(err**2)) < 1.5
    assert 0.45 <= np.mean(z < 1) <= 0.9 and np.mean(z < 2) >= 0.85
    assert np.mean(np.abs(d - true) < fit_err) < 0.2  # the old single-replica error covered almost never
    assert 0.5 < np.std(dc - true) / np.sqrt(np.mean(dc_err**2)) < 2.0


@pytest.mark.slow
def test_D_error_covers_the_true_D_at_the_nominal_rate_over_200_seeds():
    true, d, err, _, dc, dc_err = _coverage(200, n_frames=1001, n_mobile=64)
    z = np.abs(d - true) / err
    assert 0.58 <= np.mean(z < 1) <= 0.78  # nominal 68 % (binomial sd 3.3 %)
    assert np.mean(z < 2) >= 0.90  # nominal 95 %
    zc = np.abs(dc - true) / dc_err
    assert 0.5 <= np.mean(zc < 1) <= 0.8  # charge D: skewed (one collective walk), 1σ still about nominal


def test_replicas_that_disagree_set_the_error():
    agree = analyze_temperature([_replica(s) for s in (1, 2, 3)])
    assert agree.D_err == max(agree.D_ion_sem, agree.D_replica_sem)
    # one replica hops twice as fast (e.g. not equilibrated): their scatter exceeds the per-ion statistics
    odd = analyze_temperature([_replica(1), _replica(2), _replica(3, rate=3e-3)])
    assert odd.D_err_source == "replicas" and odd.D_err == odd.D_replica_sem > odd.D_ion_sem
    assert odd.D_err > 2 * agree.D_err


def test_nernst_einstein_with_scipy_constants_matches_pymatgen():
    from pymatgen.analysis.diffusion.analyzer import get_conversion_factor
    from pymatgen.core import Lattice, Structure

    from mtpkit.analysis.transport import conversion_factor_S_cm, ion_charge

    s = Structure(Lattice.cubic(12.0), ["Na"] * 5, np.random.default_rng(0).uniform(0, 1, (5, 3)))
    ours = conversion_factor_S_cm(5, 12.0**3, "Na", 600.0)
    assert ours == pytest.approx(get_conversion_factor(s, "Na", 600.0) / 1000.0, rel=1e-12)  # mS/cm -> S/cm
    assert conversion_factor_S_cm(5, 12.0**3, "Na", 600.0, charge=2) == pytest.approx(4 * ours, rel=1e-14)
    assert ion_charge("Na") == 1 and ion_charge("Li") == 1 and ion_charge("Mg") == 2
    with pytest.raises(UserError, match="--charge"):
        ion_charge("Fe")
