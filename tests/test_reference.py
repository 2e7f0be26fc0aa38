"""The NumPy reference of the MTP equations against MLIP, motep and calculus."""

from __future__ import annotations

from dataclasses import replace
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from mtpkit.potentials.cfg import iter_cfg
from mtpkit.potentials.model import MTP
from mtpkit.potentials.mtp_io import read_mtp
from mtpkit.potentials.reference import (
    basis_values,
    calculate,
    param_gradient,
    site_moments,
)

VOIGT = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]


def _mlip_pairs(root: Path) -> list[Path]:
    dirs = sorted(p.parent for p in root.glob("fitting/crystals/*/*/out.cfg"))
    return [d for d in dirs if (d / "pot.mtp").exists()]


def test_agrees_with_mlip_calc_efs(motep_data):
    """Every pot.mtp/out.cfg pair that MLIP produced (energies to 12 decimals, forces 6, virial 5)."""
    pairs = _mlip_pairs(motep_data)
    assert len(pairs) >= 20
    worst = {"energy/atom": 0.0, "force": 0.0, "virial": 0.0}
    for d in pairs:
        mtp = read_mtp(d / "pot.mtp")
        # MD snapshots 200 fs apart (5 fs steps); fewer at levels 16..20 where NumPy is slow
        step = 80 if mtp.alpha_moments_count > 300 else 40
        for atoms in islice(iter_cfg(d / "out.cfg"), 0, 161, step):
            r = calculate(mtp, atoms)
            worst["energy/atom"] = max(worst["energy/atom"],
                                       abs(r["energy"] - atoms.get_potential_energy()) / len(atoms))
            worst["force"] = max(worst["force"], np.abs(r["forces"] - atoms.get_forces()).max())
            virial = np.array([r["virial"][a, b] for a, b in VOIGT])
            worst["virial"] = max(worst["virial"], np.abs(virial - atoms.calc.results["virial"]).max())
    # limits = MLIP's printing precision (out.cfg rounds forces to 1e-6 and the virial to 1e-5)
    assert worst["energy/atom"] <= 1e-8, worst
    assert worst["force"] <= 5e-7 * (1 + 1e-6), worst
    assert worst["virial"] <= 5e-6 * (1 + 1e-6), worst


def _random_mtp(template: Path, species_count: int, seed: int) -> MTP:
    base = read_mtp(template)
    rng = np.random.default_rng(seed)
    s, r, b = species_count, base.radial_funcs_count, base.radial_basis_size
    return replace(
        base,
        species_count=s,
        radial_coeffs=rng.normal(scale=0.1, size=(s, s, r, b)),
        species_coeffs=rng.normal(size=s),
        moment_coeffs=rng.normal(scale=0.1, size=base.alpha_scalar_moments),
        scaling=0.7,
        trained=True,
    )


def _triclinic(rng, n=7, species=4, scale=3.3, min_dist=1.7) -> tuple[Atoms, np.ndarray]:
    """A random triclinic cell with ``n`` atoms no closer than ``min_dist`` Å (images included)."""
    while True:
        cell = scale * (np.eye(3) + rng.uniform(-0.25, 0.25, (3, 3)))
        atoms = Atoms(numbers=np.zeros(n, int), scaled_positions=rng.random((n, 3)), cell=cell, pbc=True)
        from ase.neighborlist import neighbor_list

        if len(neighbor_list("i", atoms, min_dist)) == 0:
            break
    types = rng.integers(0, species, n)
    types[:species] = np.arange(species)
    atoms.numbers = types  # placeholder numbers = MLIP types (what motep expects without species)
    return atoms, types


@pytest.fixture(scope="module")
def mtp10(motep_data) -> MTP:
    return _random_mtp(motep_data / "fitting/crystals/multi/10/initial.mtp", 4, seed=11)


def test_agrees_with_motep_on_small_triclinic_cells(motep_data, mtp10, tmp_path):
    from motep.calculator import make_calculator
    from motep.io.mlip.mtp import read_mtp as motep_read

    from mtpkit.potentials.mtp_io import write_mtp

    write_mtp(tmp_path / "p.mtp", mtp10)
    ours = read_mtp(tmp_path / "p.mtp")  # the same numbers motep reads (%.15e)
    calc = make_calculator(motep_read(tmp_path / "p.mtp"), engine="numpy")
    rng = np.random.default_rng(5)
    for _ in range(3):
        atoms, types = _triclinic(rng, n=4)  # ~3.3 Å cell, 5 Å cutoff: several images each way
        ref = calculate(ours, atoms, types)
        other = atoms.copy()
        other.calc = calc
        assert abs(other.get_potential_energy() - ref["energy"]) <= 1e-10
        np.testing.assert_allclose(other.get_forces(), ref["forces"], atol=1e-10)
        np.testing.assert_allclose(other.get_stress(), ref["stress"], atol=1e-12)
        np.testing.assert_allclose(other.calc.results["energies"], ref["site_energies"], atol=1e-10)


def test_below_min_dist_is_extrapolated_like_motep(mtp10, tmp_path):
    from motep.calculator import make_calculator
    from motep.io.mlip.mtp import read_mtp as motep_read

    from mtpkit.potentials.mtp_io import write_mtp

    write_mtp(tmp_path / "p.mtp", mtp10)
    ours = read_mtp(tmp_path / "p.mtp")
    atoms = Atoms(numbers=[0, 1, 2], positions=[[0, 0, 0], [0.3, 0.1, 0], [1.5, 1.0, 0.4]])  # 0.32 Å < min_dist
    ref = calculate(ours, atoms, [0, 1, 2])
    atoms.calc = make_calculator(motep_read(tmp_path / "p.mtp"), engine="numpy")
    assert np.isfinite(ref["energy"])
    assert abs(atoms.get_potential_energy() - ref["energy"]) <= 1e-10 * max(1, abs(ref["energy"]))


@pytest.mark.parametrize("template", ["multi/10", "cubic/16"])
def test_forces_and_stress_are_derivatives(motep_data, template):
    mtp = _random_mtp(motep_data / f"fitting/crystals/{template}/initial.mtp", 4, seed=2)
    rng = np.random.default_rng(9)
    atoms, types = _triclinic(rng, n=5)
    ref = calculate(mtp, atoms, types)
    h = 1e-5
    for i in range(len(atoms)):
        for c in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, c] += h
            minus.positions[i, c] -= h
            fd = -(calculate(mtp, plus, types)["energy"] - calculate(mtp, minus, types)["energy"]) / (2 * h)
            assert fd == pytest.approx(ref["forces"][i, c], rel=1e-6, abs=1e-6 * np.abs(ref["forces"]).max())
    volume = atoms.get_volume()
    for k, (a, b) in enumerate(VOIGT):
        eps = np.zeros((3, 3))
        eps[a, b] = eps[b, a] = h / 2 if a != b else h
        energies = []
        for sign in (1, -1):
            strained = atoms.copy()
            strained.set_cell(atoms.cell @ (np.eye(3) + sign * eps), scale_atoms=True)
            energies.append(calculate(mtp, strained, types)["energy"])
        # d E / d eps_ab (engineering shear for a != b) = V * stress_k
        fd = (energies[0] - energies[1]) / (2 * h) / volume
        assert fd == pytest.approx(ref["stress"][k], rel=1e-6, abs=1e-6 * np.abs(ref["stress"]).max())


def test_param_gradient_and_basis_rows(mtp10):
    rng = np.random.default_rng(4)
    atoms, types = _triclinic(rng, n=6, scale=4.0)
    grad = param_gradient(mtp10, atoms, types)
    p0 = mtp10.get_params()
    h = 1e-6
    idx = np.concatenate([rng.choice(mtp10.radial_coeffs.size, 25, replace=False),
                          mtp10.radial_coeffs.size + np.arange(mtp10.species_count + mtp10.alpha_scalar_moments)])
    for k in idx:
        dp = np.zeros_like(p0)
        dp[k] = h
        fd = (calculate(mtp10.with_params(p0 + dp), atoms, types)["energy"]
              - calculate(mtp10.with_params(p0 - dp), atoms, types)["energy"]) / (2 * h)
        assert fd == pytest.approx(grad[k], rel=1e-6, abs=1e-7 * np.abs(grad).max())
    rows = basis_values(mtp10, atoms, types)
    energy = calculate(mtp10, atoms, types)["energy"]
    assert rows.sum(0) @ np.concatenate([mtp10.species_coeffs, mtp10.moment_coeffs]) == pytest.approx(energy, rel=1e-12)
    np.testing.assert_allclose(rows.sum(0), grad[mtp10.radial_coeffs.size:], rtol=1e-12)


def test_invariances(mtp10):
    rng = np.random.default_rng(8)
    atoms, types = _triclinic(rng, n=6, scale=4.2)
    ref = calculate(mtp10, atoms, types)
    # rotation of positions and cell
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rotated = atoms.copy()
    rotated.set_cell(atoms.cell @ q.T, scale_atoms=True)
    rot = calculate(mtp10, rotated, types)
    assert rot["energy"] == pytest.approx(ref["energy"], abs=1e-10)
    np.testing.assert_allclose(rot["forces"], ref["forces"] @ q.T, atol=1e-10)
    np.testing.assert_allclose(rot["virial"], q @ ref["virial"] @ q.T, atol=1e-10)
    # translation (and wrapping back into the cell)
    moved = atoms.copy()
    moved.positions += [0.37, -1.2, 2.9]
    moved.wrap()
    tr = calculate(mtp10, moved, types)
    assert tr["energy"] == pytest.approx(ref["energy"], abs=1e-10)
    np.testing.assert_allclose(tr["forces"], ref["forces"], atol=1e-10)
    # permutation
    perm = rng.permutation(len(atoms))
    pe = calculate(mtp10, atoms[perm], types[perm])
    assert pe["energy"] == pytest.approx(ref["energy"], abs=1e-10)
    np.testing.assert_allclose(pe["forces"], ref["forces"][perm], atol=1e-10)
    # choice of periodic cell: a 2x1x2 supercell and a sheared equivalent cell
    big = atoms.repeat((2, 1, 2))
    sup = calculate(mtp10, big, np.tile(types, 4))
    assert sup["energy"] == pytest.approx(4 * ref["energy"], abs=1e-9)
    np.testing.assert_allclose(sup["stress"], ref["stress"], atol=1e-12)
    sheared = atoms.copy()
    sheared.set_cell(np.array([atoms.cell[0], atoms.cell[1] + atoms.cell[0], atoms.cell[2] - atoms.cell[1]]),
                     scale_atoms=False)
    sh = calculate(mtp10, sheared, types)
    assert sh["energy"] == pytest.approx(ref["energy"], abs=1e-10)
    np.testing.assert_allclose(sh["forces"], ref["forces"], atol=1e-10)


def test_site_moments_single_neighbour(mtp10):
    # one neighbour: M_a = f_mu(r) u^p; the level-0 basic moment is just f_0(r)
    r = np.array([[1.0, 2.0, 2.0]])  # |r| = 3
    moments = site_moments(mtp10, 1, [2], r)
    from mtpkit.potentials.reference import radial_basis

    Q, _ = radial_basis(mtp10, [3.0])
    f = mtp10.scaling * mtp10.radial_coeffs[1, 2] @ Q[0]
    for a, (mu, px, py, pz) in enumerate(mtp10.alpha_index_basic):
        u = r[0] / 3.0
        assert moments[a] == pytest.approx(f[mu] * u[0] ** px * u[1] ** py * u[2] ** pz, rel=1e-12)
