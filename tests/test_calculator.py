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
