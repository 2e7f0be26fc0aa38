"""ASE calculator on top of the compiled core."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError
from ase.optimize import BFGS
from test_core import SPECIES, nyzc_cell, random_mtp

from mtpkit.errors import UserError
from mtpkit.potentials import core
from mtpkit.potentials.calculator import MTPCalculator


@pytest.fixture
def mtp(motep_data):
    return random_mtp(10, motep_data, seed=21)


def test_properties_match_core(mtp):
    atoms, types = nyzc_cell(seed=21)
    atoms.calc = MTPCalculator(mtp, species=SPECIES)
    efs = core.evaluate(mtp, atoms, types)
    assert atoms.get_potential_energy() == pytest.approx(efs.energy, rel=1e-14)
    assert atoms.get_potential_energy(force_consistent=True) == pytest.approx(efs.energy, rel=1e-14)
    assert np.allclose(atoms.get_forces(), efs.forces, rtol=0, atol=1e-12)
    assert np.allclose(atoms.get_potential_energies(), efs.site_energies, rtol=0, atol=1e-12)
    assert np.allclose(atoms.get_stress(), efs.stress, rtol=0, atol=1e-14)
    # species order matters: a permuted species list gives a different energy
    other = atoms.copy()
    other.calc = MTPCalculator(mtp, species=["Y", "Na", "Zr", "Cl"])
    assert abs(other.get_potential_energy() - efs.energy) > 1e-6


def test_stress_is_strain_derivative_through_ase(mtp):
    atoms, _ = nyzc_cell(seed=22)
    atoms.calc = MTPCalculator(mtp, species=SPECIES)
    stress = atoms.get_stress(voigt=False)
    h = 1e-5
    for a, b in [(0, 0), (1, 2), (0, 1)]:
        e = []
        for s in (h, -h):
            eps = np.eye(3)
            eps[a, b] += s / 2
            eps[b, a] += s / 2
            p = atoms.copy()
            p.set_cell(atoms.cell.array @ eps.T, scale_atoms=True)
            p.calc = atoms.calc
            e.append(p.get_potential_energy())
        assert (e[0] - e[1]) / (2 * h) / atoms.get_volume() == pytest.approx(stress[a, b], rel=1e-6, abs=1e-9)


def test_potential_object_species_and_cluster(mtp):
    class Pot:  # anything with .mtp and .species (like mtpkit.load_potential's result)
        def __init__(self, mtp, species):
            self.mtp, self.species = mtp, species

    atoms, _ = nyzc_cell(seed=23)
    ref = MTPCalculator(mtp, species=SPECIES).get_potential_energy(atoms)
    assert MTPCalculator(Pot(mtp, SPECIES)).get_potential_energy(atoms) == pytest.approx(ref, rel=1e-14)
    cluster = Atoms(atoms.get_chemical_symbols()[:10], positions=atoms.positions[:10])
    cluster.calc = MTPCalculator(mtp, species=SPECIES)
    assert np.isfinite(cluster.get_potential_energy())
    with pytest.raises(PropertyNotImplementedError):
        cluster.get_stress()


def test_unknown_element_and_bad_species(mtp):
    atoms, _ = nyzc_cell(seed=24)
    atoms[3].symbol = "K"
    atoms.calc = MTPCalculator(mtp, species=SPECIES)
    with pytest.raises(UserError, match=r"element K \(atom 3\) is not in the potential's species"):
        atoms.get_potential_energy()
    with pytest.raises(UserError, match="species_count"):
        MTPCalculator(mtp, species=[*SPECIES, "K"])
    with pytest.raises(UserError, match="not a chemical symbol"):
        MTPCalculator(mtp, species=["Na", "Xx"])
    with pytest.raises(UserError, match="species"):
        MTPCalculator(mtp).get_potential_energy(nyzc_cell(seed=24)[0])


def test_short_distance_policy(mtp):
    atoms, _ = nyzc_cell(seed=25)
    atoms.positions[9] = atoms.positions[2] + [0.0, 1.2, 0.0]
    atoms.calc = MTPCalculator(mtp, species=SPECIES)
    with pytest.warns(core.ShortDistanceWarning, match="atoms 2 and 9"):
        assert np.isfinite(atoms.get_potential_energy())
    atoms.calc = MTPCalculator(mtp, species=SPECIES, on_short_distance="raise")
    with pytest.raises(core.ShortDistanceError, match=r"atoms 2 and 9 are 1.2000 Å apart"):
        atoms.get_potential_energy()
    with pytest.raises(ValueError, match="on_short_distance"):
        MTPCalculator(mtp, species=SPECIES, on_short_distance="maybe")


def test_works_with_ase_optimizer(mtp):
    # a few BFGS steps on the periodic cell lower the energy (forces consistent with energy)
    atoms, _ = nyzc_cell(seed=26)
    atoms.calc = MTPCalculator(mtp, species=SPECIES, on_short_distance="ignore")
    e0 = atoms.get_potential_energy()
    BFGS(atoms, logfile=None, maxstep=0.02).run(fmax=1e-3, steps=5)
    assert atoms.get_potential_energy() < e0


def test_results_follow_every_change(mtp):
    # cached results are reused only for the same atoms: a changed position, cell, pbc,
    # atomic number (also in place, also tiny) must give the fresh results of a new calculator
    atoms, _ = nyzc_cell(seed=27)
    calc = MTPCalculator(mtp, species=SPECIES)
    atoms.calc = calc

    def check():
        e, f = atoms.get_potential_energy(), atoms.get_forces()
        fresh = atoms.copy()
        fresh.calc = MTPCalculator(mtp, species=SPECIES)
        assert e == fresh.get_potential_energy()
        assert np.array_equal(f, fresh.get_forces())
        return e

    e = [check()]
    atoms.positions[5, 1] += 1e-9  # in place, tiny
    e.append(check())
    pos = atoms.get_positions()
    pos[7] += [0.1, -0.05, 0.02]
    atoms.set_positions(pos)
    e.append(check())
    atoms.set_cell(atoms.cell.array * 1.01, scale_atoms=False)
    e.append(check())
    atoms.cell.array[2, 0] += 0.05  # in place
    e.append(check())
    atoms.pbc = [True, True, False]
    e.append(check())
    z = atoms.numbers
    i, j = int(np.flatnonzero(z == z[0])[0]), int(np.flatnonzero(z != z[0])[0])
    atoms.numbers[[i, j]] = atoms.numbers[[j, i]]  # in place swap of two species
    e.append(check())
    assert len(set(e)) == len(e), "every change must change the energy"
    # nothing changed: the cached results are reused (no new calculation)
    calc.calculate = None
    assert atoms.get_potential_energy() == e[-1]


def test_check_state_matches_ase_compare_atoms(mtp):
    from ase.calculators.calculator import compare_atoms

    atoms, _ = nyzc_cell(seed=28)
    calc = MTPCalculator(mtp, species=SPECIES)
    assert sorted(calc.check_state(atoms)) == sorted(compare_atoms(None, atoms))
    calc.get_potential_energy(atoms)
    rng = np.random.default_rng(28)
    edits = [
        ("positions", lambda a: a.positions.__setitem__((3, 0), a.positions[3, 0] + 1e-7)),
        ("positions", lambda a: a.positions.__setitem__((3, 0), a.positions[3, 0] + 1e-17)),  # below tol
        ("positions", lambda a: a.positions.__setitem__((3, 0), np.nan)),
        ("cell", lambda a: a.cell.array.__setitem__((0, 1), 0.3)),
        ("pbc", lambda a: a.pbc.__setitem__(1, False)),
        ("numbers", lambda a: a.numbers.__setitem__(0, 11 if a.numbers[0] != 11 else 17)),
        ("initial_charges", lambda a: a.set_initial_charges(rng.normal(size=len(a)))),
        ("initial_magmoms", lambda a: a.set_initial_magnetic_moments(np.zeros(len(a)))),
        ("momenta", lambda a: a.set_momenta(rng.normal(size=(len(a), 3)))),  # not a system change
        ("positions", lambda a: a.__delitem__(len(a) - 1)),  # fewer atoms
    ]
    for k in range(1, len(edits) + 1):
        for sub in (edits[:k], edits[k - 1 : k]):
            changed = atoms.copy()
            for _, edit in sub:
                edit(changed)
            for tol in (1e-15, 1e-6):
                assert sorted(calc.check_state(changed, tol)) == sorted(compare_atoms(calc.atoms, changed, tol))
    calc.ignored_changes = {"initial_charges", "cell"}
    changed = atoms.copy()
    changed.set_initial_charges(np.ones(len(changed)))
    changed.cell.array[0, 0] += 1.0
    assert calc.check_state(changed) == []
    changed.positions[0, 0] += 1.0
    assert calc.check_state(changed) == ["positions"]
