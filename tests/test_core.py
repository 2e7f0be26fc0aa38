"""Compiled MTP core: derivatives by finite differences, cross-checks against
motep and the NumPy reference, periodic-image handling, invariances, loss
gradients and linear design rows."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read

from mtpkit.potentials import core
from mtpkit.potentials.model import MTP
from mtpkit.potentials.mtp_io import read_mtp

DATA = Path(__file__).parent / "data"
SPECIES = ["Na", "Y", "Zr", "Cl"]


def template(level: int, motep_data: Path) -> MTP:
    """Untrained MLIP template at ``level`` (own generator when available)."""
    try:
        from mtpkit.potentials.templates import make_template
    except ImportError:
        return read_mtp(motep_data / "fitting" / "crystals" / "cubic" / f"{level:02d}" / "initial.mtp")
    return make_template(level, 4)


def random_mtp(level: int, motep_data: Path, seed: int = 0, species_count: int = 4) -> MTP:
    """A 4-species MTP with random, moderately sized coefficients."""
    t = template(level, motep_data)
    rng = np.random.default_rng(seed)
    s, r, b = species_count, t.radial_funcs_count, t.radial_basis_size
    return replace(
        t,
        species_count=s,
        min_dist=2.0,
        max_dist=5.0,
        radial_coeffs=rng.uniform(-0.1, 0.1, (s, s, r, b)),
        species_coeffs=rng.normal(size=s),
        moment_coeffs=rng.normal(size=t.alpha_scalar_moments) * 0.05,
        trained=True,
    )


def nyzc_cell(seed: int = 0, rattle: float = 0.05, shear: float = 0.04) -> tuple[Atoms, np.ndarray]:
    """The 37-atom NYZC75 cell, rattled and sheared into a random triclinic cell."""
    atoms = read(DATA / "NYZC75_P21n_37atoms_CHGNet-relaxed.cif")
    rng = np.random.default_rng(seed)
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + shear * rng.normal(size=(3, 3))).T, scale_atoms=True)
    atoms.rattle(rattle, seed=seed + 1)
    types = np.array([SPECIES.index(s) for s in atoms.get_chemical_symbols()])
    return atoms, types


def energy(mtp, atoms, types) -> float:
    return core.evaluate(mtp, atoms, types, on_short_distance="ignore").energy


def fd5(f, h: float) -> float:
    """Five-point central difference of f(step) at 0."""
    return (-f(2 * h) + 8 * f(h) - 8 * f(-h) + f(-2 * h)) / (12 * h)


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(b).max())


# --------------------------------------------------------------------------- derivatives


@pytest.mark.parametrize("level", [8, 16, 20])
def test_forces_are_negative_energy_gradient(level, motep_data):
    mtp = core.compile_mtp(random_mtp(level, motep_data, seed=level))
    atoms, types = nyzc_cell(seed=level)
    efs = core.evaluate(mtp, atoms, types)
    rng = np.random.default_rng(level)
    picks = rng.choice(len(atoms), 5, replace=False)
    fd = np.zeros((5, 3))
    for k, i in enumerate(picks):
        for a in range(3):
            def e_of(step, i=i, a=a):
                p = atoms.copy()
                p.positions[i, a] += step
                return energy(mtp, p, types)
            fd[k, a] = -fd5(e_of, 1e-4)
    assert rel_err(efs.forces[picks], fd) < 1e-6
    assert abs(efs.forces.sum(axis=0)).max() < 1e-9 * abs(efs.forces).max() * len(atoms)


@pytest.mark.parametrize("level", [8, 16, 20])
def test_virial_and_stress_are_strain_derivatives(level, motep_data):
    mtp = core.compile_mtp(random_mtp(level, motep_data, seed=level + 1))
    atoms, types = nyzc_cell(seed=level + 7)
    efs = core.evaluate(mtp, atoms, types)
    fd = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            def e_of(step, a=a, b=b):
                eps = np.eye(3)
                eps[a, b] += step
                p = atoms.copy()
                p.set_cell(atoms.cell.array @ eps.T, scale_atoms=True)
                return energy(mtp, p, types)
            fd[a, b] = -fd5(e_of, 2e-5)
    assert rel_err(efs.virial, fd) < 1e-6
    # ASE stress = (1/V) dE/d(strain), Voigt xx yy zz yz xz xy
    s = -fd / atoms.get_volume()
    voigt = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
    assert rel_err(efs.stress, voigt) < 1e-6


# --------------------------------------------------------------------------- cross-checks


@pytest.mark.parametrize("sub", ["cubic/08", "cubic/20", "cubic/26", "multi/10", "noncubic/10"])
def test_agrees_with_motep_on_mlip_potentials(sub, motep_data):
    from motep.calculator import make_calculator
    from motep.io.mlip.mtp import read_mtp as motep_read_mtp

    from mtpkit.potentials.cfg import read_cfg

    folder = motep_data / "fitting" / "crystals" / sub
    mtp = read_mtp(folder / "pot.mtp")
    cm = core.compile_mtp(mtp)
    calc = make_calculator(motep_read_mtp(folder / "pot.mtp"), engine="cext")
    mlip_out = (folder / "out.cfg").exists()  # level 26 ships pot.mtp only: use level 20's cells
    images = read_cfg((folder if mlip_out else folder.parent / "20") / "out.cfg")[:: 100]
    for atoms in images:
        ref = atoms.copy()
        ref.calc = calc
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            e_ref, f_ref, s_ref = ref.get_potential_energy(), ref.get_forces(), ref.get_stress()
        efs = core.evaluate(cm, atoms, atoms.arrays["mtp_type"], on_short_distance="ignore")
        assert abs(efs.energy - e_ref) < 1e-10 * max(1.0, len(atoms))
        assert abs(efs.forces - f_ref).max() < 1e-10
        assert abs(efs.stress - s_ref).max() < 1e-10
        if not mlip_out:
            continue
        # MLIP's own numbers (out.cfg prints 6 decimals: agreement to the last digit)
        assert abs(efs.energy - atoms.get_potential_energy()) / len(atoms) < 1e-6
        assert abs(efs.forces - atoms.get_forces()).max() <= 5.1e-7


def test_agrees_with_numpy_reference(motep_data):
    from mtpkit.potentials import reference

    mtp = random_mtp(16, motep_data, seed=3)
    atoms, types = nyzc_cell(seed=3)
    ref = reference.calculate(mtp, atoms, types)
    efs = core.evaluate(mtp, atoms, types)
    assert abs(efs.energy - ref["energy"]) < 1e-10 * len(atoms)
    assert abs(efs.forces - ref["forces"]).max() < 1e-10
    if "virial" in ref:
        assert abs(efs.virial - np.asarray(ref["virial"]).reshape(3, 3)).max() < 1e-9


# --------------------------------------------------------------------------- periodic images


def test_neighbor_list_matches_ase_in_tiny_triclinic_cell():
    from ase.neighborlist import neighbor_list

    rng = np.random.default_rng(0)
    cell = np.array([[2.1, 0.0, 0.0], [0.9, 2.3, 0.0], [-0.7, 0.5, 1.9]])
    atoms = Atoms("NaCl2", scaled_positions=rng.uniform(size=(3, 3)), cell=cell, pbc=True)
    nl = core.neighbor_list(atoms, 5.0)
    i_ase, d_ase = neighbor_list("id", atoms, 5.0)
    assert nl.n_pairs == len(i_ase) > 100  # many images of every atom
    ours = np.sort(np.linalg.norm(nl.rij, axis=1))
    assert np.allclose(ours, np.sort(d_ase), atol=1e-12)
    for i in range(len(atoms)):
        assert nl.offsets[i + 1] - nl.offsets[i] == np.count_nonzero(i_ase == i)


@pytest.mark.parametrize("case", ["bulk", "sheared", "slab", "wire", "cluster", "coinciding"])
def test_neighbor_list_same_pairs_as_ase_in_large_systems(case):
    """Every pair of ASE's list, with its vector, in large cells where the bin search prunes."""
    from ase.build import bulk
    from ase.neighborlist import neighbor_list

    rng = np.random.default_rng(7)
    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True) * (4, 4, 4)
    if case == "sheared":
        atoms.set_cell(atoms.cell.array @ [[1.0, 0.0, 0.0], [0.35, 1.0, 0.0], [-0.2, 0.3, 1.0]], scale_atoms=True)
    atoms.positions += rng.normal(scale=0.2, size=atoms.positions.shape)
    if case == "slab":
        atoms.pbc = [True, False, True]
    elif case == "wire":
        atoms.pbc = [False, False, True]
    elif case == "cluster":
        atoms.pbc = False
        atoms.positions[::7] += 40.0  # sparse far part: coarse bins
    cutoff = 5.0
    if case == "coinciding":
        atoms.positions[100] = atoms.positions[37]
        atoms.positions[200] = atoms.positions[5] + atoms.cell.array[1]
    nl = core.neighbor_list(atoms, cutoff)
    i_ase, j_ase, d_ase = neighbor_list("ijD", atoms, cutoff)
    keep = np.linalg.norm(d_ase, axis=1) > 0
    i_ase, j_ase, d_ase = i_ase[keep], j_ase[keep], d_ase[keep]
    i_ours = np.repeat(np.arange(len(atoms)), np.diff(nl.offsets))
    assert nl.n_pairs == len(i_ase)
    ours = np.lexsort((*np.round(np.asarray(nl.rij), 9).T[::-1], nl.j, i_ours))
    ref = np.lexsort((*np.round(d_ase, 9).T[::-1], j_ase, i_ase))
    assert np.array_equal(np.asarray(nl.j)[ours], j_ase[ref])
    assert np.allclose(np.asarray(nl.rij)[ours], d_ase[ref], rtol=0, atol=1e-9)
    dist = np.linalg.norm(d_ase, axis=1)
    if case == "coinciding":
        assert (nl.min_r, nl.min_i, nl.min_j) == (0.0, 5, 200)
    else:
        k = int(np.argmin(dist))
        assert nl.min_r == pytest.approx(dist[k], abs=1e-12)
        assert (nl.min_i, nl.min_j) == (i_ase[k], j_ase[k]) or (nl.min_i, nl.min_j) == (j_ase[k], i_ase[k])


def test_cell_far_smaller_than_the_cutoff_is_refused_not_allocated():
    """A Supercell in the wrong unit (nm, Bohr ... or 1e-5) would need ~1e12 periodic images."""
    atoms = Atoms("NaCl", positions=[[0, 0, 0], [0, 0, 1e-6]], cell=np.diag([1e-5, 2e-5, 1.5e16]), pbc=True)
    with pytest.raises(ValueError, match=r"too small for the cutoff \(1\.5e\+12 periodic images of 2 atoms"):
        core.neighbor_list(atoms, 5.0)
    fine = Atoms("Na", cell=np.eye(3) * 0.5, pbc=True)  # 0.5 Å cell: 21^3 images, still allowed
    assert core.neighbor_list(fine, 5.0).n_pairs > 4000


def test_tiny_cell_equals_supercell(motep_data):
    mtp = core.compile_mtp(random_mtp(16, motep_data, seed=5))
    rng = np.random.default_rng(1)
    cell = np.array([[2.6, 0.0, 0.0], [0.8, 2.5, 0.0], [-0.6, 0.4, 2.7]])  # cutoff 5 Å >> cell
    atoms = Atoms("NaCl", scaled_positions=rng.uniform(size=(2, 3)), cell=cell, pbc=True)
    types = np.array([0, 3])
    small = core.evaluate(mtp, atoms, types, on_short_distance="ignore")
    big_atoms = atoms * (3, 2, 2)
    big = core.evaluate(mtp, big_atoms, np.tile(types, 12), on_short_distance="ignore")
    assert abs(big.energy - 12 * small.energy) < 1e-10 * abs(big.energy)
    assert abs(big.forces - np.tile(small.forces, (12, 1))).max() < 1e-9 * abs(small.forces).max()
    assert abs(big.virial - 12 * small.virial).max() < 1e-9 * abs(big.virial).max()


def test_supercell_consistency_nyzc(motep_data):
    mtp = core.compile_mtp(random_mtp(10, motep_data, seed=6))
    atoms, types = nyzc_cell(seed=6)
    one = core.evaluate(mtp, atoms, types)
    two = core.evaluate(mtp, atoms * (2, 1, 2), np.tile(types, 4))
    assert abs(two.energy - 4 * one.energy) < 1e-10 * abs(two.energy)
    assert abs(two.site_energies - np.tile(one.site_energies, 4)).max() < 1e-10
    assert abs(two.stress - one.stress).max() < 1e-9 * abs(one.stress).max()


def test_mixed_pbc_and_cluster_match_vacuum_padded_cells(motep_data):
    mtp = core.compile_mtp(random_mtp(10, motep_data, seed=7))
    atoms, types = nyzc_cell(seed=7)
    # slab: periodic in a, b; open along c -> same as a cell with 20 Å of vacuum
    slab = atoms.copy()
    slab.pbc = [True, True, False]
    padded = atoms.copy()
    c = padded.cell.array.copy()
    normal = np.cross(c[0], c[1])
    c[2] += 20.0 * normal / np.linalg.norm(normal)
    padded.set_cell(c, scale_atoms=False)
    a = core.evaluate(mtp, slab, types)
    b = core.evaluate(mtp, padded, types)
    assert abs(a.energy - b.energy) < 1e-9 and abs(a.forces - b.forces).max() < 1e-10
    # cluster without any cell
    cluster = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions)
    box = cluster.copy()
    box.set_cell(np.diag([60.0, 60.0, 60.0]))
    box.pbc = True
    box.positions += 20.0
    a = core.evaluate(mtp, cluster, types)
    b = core.evaluate(mtp, box, types)
    assert abs(a.energy - b.energy) < 1e-9 and abs(a.forces - b.forces).max() < 1e-10
    assert a.volume is None
    with pytest.raises(ValueError, match="periodic cell"):
        _ = a.stress


# --------------------------------------------------------------------------- invariances


def test_rotation_translation_permutation_and_cell_choice(motep_data):
    mtp = core.compile_mtp(random_mtp(16, motep_data, seed=8))
    atoms, types = nyzc_cell(seed=8)
    ref = core.evaluate(mtp, atoms, types)
    rng = np.random.default_rng(8)
    # rotation (proper, random)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    rot = atoms.copy()
    rot.set_cell(atoms.cell.array @ q.T, scale_atoms=False)
    rot.positions = atoms.positions @ q.T
    r = core.evaluate(mtp, rot, types)
    assert abs(r.energy - ref.energy) < 1e-10 * abs(ref.energy)
    assert abs(r.forces - ref.forces @ q.T).max() < 1e-9 * abs(ref.forces).max()
    assert abs(r.virial - q @ ref.virial @ q.T).max() < 1e-9 * abs(ref.virial).max()
    # translation (atoms leave the cell: wrapping must not matter)
    tr = atoms.copy()
    tr.positions += np.array([13.3, -7.1, 4.2])
    t = core.evaluate(mtp, tr, types)
    assert abs(t.energy - ref.energy) < 1e-10 * abs(ref.energy)
    assert abs(t.forces - ref.forces).max() < 1e-9 * abs(ref.forces).max()
    # permutation
    perm = rng.permutation(len(atoms))
    p = core.evaluate(mtp, atoms[perm], types[perm])
    assert abs(p.energy - ref.energy) < 1e-10 * abs(ref.energy)
    assert abs(p.forces - ref.forces[perm]).max() < 1e-9 * abs(ref.forces).max()
    # another choice of periodic cell (unimodular integer transform)
    m = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 1]])
    alt = atoms.copy()
    alt.set_cell(m @ atoms.cell.array, scale_atoms=False)
    alt.wrap()
    c = core.evaluate(mtp, alt, types)
    assert abs(c.energy - ref.energy) < 1e-10 * abs(ref.energy)
    assert abs(c.forces - ref.forces).max() < 1e-9 * abs(ref.forces).max()
    assert abs(c.virial - ref.virial).max() < 1e-9 * abs(ref.virial).max()


def test_results_do_not_depend_on_thread_count(motep_data):
    mtp = core.compile_mtp(random_mtp(10, motep_data, seed=9))
    atoms, types = nyzc_cell(seed=9)
    atoms = atoms * (2, 1, 1)
    types = np.tile(types, 2)
    tset = _labelled_set(mtp, seed=9)
    before = core.max_threads()
    try:
        out = []
        for n in (1, 2):
            core.set_num_threads(n)
            efs = core.evaluate(mtp, atoms, types)
            loss, grad = core.loss_and_grad(mtp, tset, 1.0, 0.1, 0.01)
            out.append((efs.energy, efs.forces, efs.virial, loss, grad))
    finally:
        core.set_num_threads(before)
    for x, y in zip(out[0], out[1]):
        assert np.array_equal(x, y)


# --------------------------------------------------------------------------- training API


def _labelled_set(mtp, seed: int, n: int = 3) -> core.TrainingSet:
    rng = np.random.default_rng(seed)
    images, types = [], []
    for k in range(n):
        atoms, t = nyzc_cell(seed=seed + k)
        if k == 1:
            atoms = atoms[: 20]
            t = t[: 20]
        efs = core.evaluate(mtp, atoms, t)
        atoms.calc = SinglePointCalculator(
            atoms,
            energy=efs.energy + rng.normal(),
            forces=efs.forces + 0.3 * rng.normal(size=efs.forces.shape),
            stress=efs.stress + 0.002 * rng.normal(size=6),
        )
        images.append(atoms)
        types.append(t)
    return core.TrainingSet(images, types, mtp.cutoff)


@pytest.mark.parametrize("level", [8, 16, 20])
def test_loss_gradient_matches_finite_differences(level, motep_data):
    mtp = random_mtp(level, motep_data, seed=11)
    tset = _labelled_set(mtp, seed=11)
    a, b, d = np.array([1.0, 0.5, 0.0]), np.array([0.2, 0.0, 0.1]), np.array([0.01, 0.02, 0.0])
    _, grad = core.loss_and_grad(mtp, tset, a, b, d)
    x = mtp.get_params()
    rng = np.random.default_rng(level)
    nr, ns = mtp.radial_coeffs.size, mtp.species_count
    picks = np.concatenate([rng.choice(nr, 12, replace=False), [nr, nr + 3], nr + ns + rng.choice(x.size - nr - ns, 6)])
    for q in picks:
        def l_of(step, q=q):
            y = x.copy()
            y[q] += step
            return core.loss_and_grad(mtp.with_params(y), tset, a, b, d)[0]
        fd = fd5(l_of, 1e-4 * max(1.0, abs(x[q])))
        assert abs(fd - grad[q]) <= 1e-6 * np.abs(grad).max(), (q, fd, grad[q])


def test_loss_value_and_switched_off_terms(motep_data):
    mtp = random_mtp(10, motep_data, seed=12)
    tset = _labelled_set(mtp, seed=12)
    a, b, d = np.array([1.0, 2.0, 0.5]), np.array([0.1, 0.2, 0.3]), np.array([0.01, 0.0, 0.03])
    loss, grad, pred = core.loss_and_grad(mtp, tset, a, b, d, return_predictions=True)
    f_ref = tset.split_forces(tset.forces)
    f_pred = tset.split_forces(pred.forces)
    expect = sum(
        a[c] * (pred.energies[c] - tset.energies[c]) ** 2
        + b[c] * ((f_pred[c] - f_ref[c]) ** 2).sum()
        + d[c] * ((pred.virials[c] - tset.virials[c]) ** 2).sum()
        for c in range(3)
    )
    assert loss == pytest.approx(expect, rel=1e-12)
    # NaN targets are never read where the coefficient is zero ...
    v = tset.virials.copy()
    v[1] = np.nan
    loss2, grad2 = core.loss_and_grad(mtp, tset, a, b, d, virials=v)
    assert loss2 == loss and np.array_equal(grad2, grad)
    # ... and rejected where it is not
    with pytest.raises(ValueError, match="configuration 1"):
        core.loss_and_grad(mtp, tset, a, b, np.array([0.01, 0.1, 0.03]), virials=v)
    # all coefficients zero: zero loss and gradient
    zero = np.zeros(3)
    l0, g0 = core.loss_and_grad(mtp, tset, zero, zero, zero)
    assert l0 == 0.0 and not g0.any()


def test_linear_rows_site_basis_and_energy_gradients(motep_data):
    mtp = random_mtp(16, motep_data, seed=13)
    tset = _labelled_set(mtp, seed=13)
    rows = core.linear_rows(mtp, tset)
    pred = core.predict(mtp, tset)
    x = np.concatenate([mtp.species_coeffs, mtp.moment_coeffs])
    assert abs(rows.energy @ x - pred.energies).max() < 1e-9 * abs(pred.energies).max()
    assert abs(rows.forces @ x - pred.forces).max() < 1e-9 * abs(pred.forces).max()
    assert abs(rows.virial @ x - pred.virials).max() < 1e-9 * abs(pred.virials).max()
    assert rows.forces.shape == (tset.offsets[-1], 3, x.size)

    atoms, types = nyzc_cell(seed=13)
    efs = core.evaluate(mtp, atoms, types)
    basis = core.site_basis(mtp, atoms, types)
    assert basis.shape == (len(atoms), x.size)
    assert abs(basis @ x - efs.site_energies).max() < 1e-10 * abs(efs.site_energies).max()

    per_atom = core.energy_param_grads(mtp, atoms, types, per_atom=True)
    total = core.energy_param_grads(mtp, atoms, types)
    assert per_atom.shape == (len(atoms), mtp.n_params)
    assert abs(per_atom.sum(axis=0) - total).max() < 1e-10 * abs(total).max()
    nr = mtp.radial_coeffs.size
    assert np.allclose(total[nr:], basis.sum(axis=0), rtol=1e-12, atol=1e-12)
    p = mtp.get_params()
    for q in (0, 7, nr - 1):
        def e_of(step, q=q):
            y = p.copy()
            y[q] += step
            return energy(mtp.with_params(y), atoms, types)
        assert fd5(e_of, 1e-4) == pytest.approx(total[q], rel=1e-6, abs=1e-8 * abs(total).max())


def test_site_kernel_matches_system_evaluation(motep_data):
    """The per-site C++ API (used by the LAMMPS plugin) against full-cell results."""
    cm = core.compile_mtp(random_mtp(10, motep_data, seed=14))
    atoms, types = nyzc_cell(seed=14)
    efs = core.evaluate(cm, atoms, types)
    nl = core.neighbor_list(atoms, cm.cutoff + 0.5)  # with skin: beyond-cutoff pairs ignored
    i = 5
    sl = slice(nl.offsets[i], nl.offsets[i + 1])
    rij = np.ascontiguousarray(nl.rij[sl])
    jt = np.ascontiguousarray(types[nl.j[sl]], dtype=np.int32)
    e, grad, row = cm.model.site_energy(int(types[i]), rij, jt)
    assert e == pytest.approx(efs.site_energies[i], rel=1e-13)
    # same neighbour order as evaluate's own list: batched (full cell) and single-site kernels agree bitwise
    nl0 = core.neighbor_list(atoms, cm.cutoff)
    s0 = slice(nl0.offsets[i], nl0.offsets[i + 1])
    jt0 = np.ascontiguousarray(types[nl0.j[s0]], dtype=np.int32)
    assert cm.model.site_energy(int(types[i]), np.ascontiguousarray(nl0.rij[s0]), jt0)[0] == efs.site_energies[i]
    assert (grad[np.linalg.norm(rij, axis=1) >= cm.cutoff] == 0).all()
    assert row @ np.concatenate([cm.mtp.species_coeffs, cm.mtp.moment_coeffs]) == pytest.approx(e, rel=1e-12)
    # forward-over-reverse kernel: d/dθ of alpha E_i + beta * (dE_i/dr . drij)
    rng = np.random.default_rng(0)
    dr = rng.normal(size=rij.shape)
    _, g = cm.model.site_mixed_param_grad(int(types[i]), rij, jt, dr, 0.7, -1.3)
    p = cm.get_params()
    for q in (3, 40, p.size - 1):
        def j_of(step, q=q):
            y = p.copy()
            y[q] += step
            m = core.CompiledMTP(cm.mtp.with_params(y))
            e2, g2, _ = m.model.site_energy(int(types[i]), rij, jt)
            return 0.7 * e2 - 1.3 * float((g2 * dr).sum())
        assert fd5(j_of, 1e-4) == pytest.approx(g[q], rel=1e-6, abs=1e-9 * abs(g).max())


# --------------------------------------------------------------------------- bad input


def test_bad_types_and_short_distances(motep_data):
    mtp = random_mtp(8, motep_data, seed=15)
    atoms, types = nyzc_cell(seed=15)
    bad = types.copy()
    bad[4] = 4
    with pytest.raises(ValueError, match="atom 4 has type 4"):
        core.evaluate(mtp, atoms, bad)
    close = atoms.copy()
    close.positions[7] = close.positions[3] + [1.0, 0.5, 0.0]
    with pytest.warns(core.ShortDistanceWarning, match="atoms 3 and 7"):
        efs = core.evaluate(mtp, close, types)
    assert np.isfinite(efs.energy)
    with pytest.raises(core.ShortDistanceError, match="atoms 3 and 7"):
        core.evaluate(mtp, close, types, on_short_distance="raise")
    close.positions[7] = close.positions[3]
    with pytest.raises(core.ShortDistanceError, match="coincide"):
        core.evaluate(mtp, close, types, on_short_distance="ignore")
    with pytest.raises(ValueError, match="cutoff"):
        core.loss_and_grad(mtp, core.TrainingSet([atoms], [types], 4.0), 1.0, 0.0, 0.0)


def test_a_pair_at_exactly_min_dist_is_inside(motep_data):
    """min_dist = "data" makes the training set's shortest pair the bound; evaluating that frame again
    must not warn, even where the distance comes out an ulp shorter; a pair 1e-6 Å shorter does."""
    import dataclasses
    import warnings

    from mtpkit.potentials.training import smallest_distance

    mtp = random_mtp(8, motep_data, seed=15)
    atoms, types = nyzc_cell(seed=15)
    dmin, _ = smallest_distance(core.TrainingSet([atoms], [types], mtp.max_dist))
    for bound in (dmin, np.nextafter(dmin, 0.0), np.nextafter(dmin, 10.0)):
        with warnings.catch_warnings():
            warnings.simplefilter("error", core.ShortDistanceWarning)
            core.evaluate(dataclasses.replace(mtp, min_dist=float(bound)), atoms, types)
    with pytest.warns(core.ShortDistanceWarning):
        core.evaluate(dataclasses.replace(mtp, min_dist=dmin + 1e-6), atoms, types)


def test_wire_and_slab_with_zero_cell_vectors_in_open_directions(motep_data):
    mtp = core.compile_mtp(random_mtp(10, motep_data, seed=16))
    atoms, types = nyzc_cell(seed=16, shear=0.0)
    c = atoms.cell.array
    for pbc in ([False, False, True], [True, False, True]):
        open_cell = c.copy()
        padded_cell = c.copy()
        for d in range(3):
            if not pbc[d]:
                open_cell[d] = 0.0
                padded_cell[d] *= 10.0  # far beyond the cutoff
        a = atoms.copy()
        a.set_cell(open_cell, scale_atoms=False)
        a.pbc = pbc
        b = atoms.copy()
        b.set_cell(padded_cell, scale_atoms=False)
        b.pbc = True
        ea = core.evaluate(mtp, a, types)
        eb = core.evaluate(mtp, b, types)
        assert abs(ea.energy - eb.energy) < 1e-9, pbc
        assert abs(ea.forces - eb.forces).max() < 1e-10, pbc
    with pytest.raises(ValueError, match=r"singular|zero"):
        bad = atoms.copy()
        bad.set_cell(np.zeros((3, 3)), scale_atoms=False)
        bad.pbc = [True, False, False]
        core.evaluate(mtp, bad, types)
