"""A small labelled NYZC75 data set for training tests.

Configurations are the 37-atom NYZC75 cell (CHGNet-relaxed CIF), randomly
strained (up to 2 %) and rattled (0.08 Å), labelled by :class:`PairMorse`, a
species-pair Morse potential smoothly cut off at 5 Å (analytic energy,
forces and stress). It is cheap and deterministic, and lies close to the
span of an MTP's two-body part, so a fit can reach small errors quickly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.singlepoint import SinglePointCalculator
from ase.neighborlist import neighbor_list

SPECIES = ["Na", "Y", "Zr", "Cl"]
CIF = Path(__file__).parent / "data" / "NYZC75_P21n_37atoms_CHGNet-relaxed.cif"

#: (D in eV, alpha in 1/Å, r0 in Å) per unordered species pair.
MORSE = {
    ("Na", "Cl"): (0.60, 1.3, 2.80),
    ("Y", "Cl"): (1.20, 1.5, 2.65),
    ("Zr", "Cl"): (1.40, 1.6, 2.50),
    ("Cl", "Cl"): (0.05, 1.2, 3.80),
    ("Na", "Na"): (0.05, 1.0, 3.70),
    ("Na", "Y"): (0.05, 1.0, 3.80),
    ("Na", "Zr"): (0.05, 1.0, 3.80),
    ("Y", "Y"): (0.05, 1.0, 4.00),
    ("Y", "Zr"): (0.05, 1.0, 4.00),
    ("Zr", "Zr"): (0.05, 1.0, 4.00),
}


class PairMorse(Calculator):
    """``E = 1/2 sum_{i != j} phi_{s_i s_j}(r_ij)`` with
    ``phi(r) = D [(1 - exp(-alpha (r - r0)))^2 - 1] ((rc - r) / rc)^2`` for ``r < rc``."""

    implemented_properties = ("energy", "free_energy", "forces", "stress")

    def __init__(self, cutoff: float = 5.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.cutoff = cutoff

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        rc = self.cutoff
        i, j, r, vec = neighbor_list("ijdD", atoms, rc)
        sym = np.array(atoms.get_chemical_symbols())
        D = np.empty(r.size)
        al = np.empty(r.size)
        r0 = np.empty(r.size)
        for (s1, s2), (d_, a_, r_) in MORSE.items():
            m = ((sym[i] == s1) & (sym[j] == s2)) | ((sym[i] == s2) & (sym[j] == s1))
            D[m], al[m], r0[m] = d_, a_, r_
        ex = np.exp(-al * (r - r0))
        morse = D * ((1 - ex) ** 2 - 1)
        dmorse = D * 2 * (1 - ex) * al * ex
        cut = ((rc - r) / rc) ** 2
        dcut = -2 * (rc - r) / rc**2
        phi = morse * cut
        dphi = dmorse * cut + morse * dcut
        energy = 0.5 * phi.sum()
        g = (dphi / r)[:, None] * vec  # dphi/dr * D/r
        forces = np.zeros((len(atoms), 3))
        np.add.at(forces, i, g)
        virial_like = 0.5 * np.einsum("pa,pb->ab", g, vec)  # dE/d(strain)
        stress = virial_like / atoms.get_volume()
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": forces,
            "stress": stress.flat[[0, 4, 8, 5, 2, 1]],
        }


def make_configurations(n: int, seed: int, rattle: float = 0.08, strain: float = 0.02) -> list[Atoms]:
    """``n`` strained and rattled NYZC75 cells with PairMorse labels."""
    from ase.io import read

    base = read(CIF)
    rng = np.random.default_rng(seed)
    calc = PairMorse()
    out = []
    for _ in range(n):
        atoms = base.copy()
        eps = rng.uniform(-strain, strain, (3, 3))
        eps = 0.5 * (eps + eps.T)
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
        atoms.positions += rng.normal(0.0, rattle, atoms.positions.shape)
        atoms.calc = calc
        results = {
            "energy": atoms.get_potential_energy(),
            "forces": atoms.get_forces(),
            "stress": atoms.get_stress(),
        }
        atoms.calc = SinglePointCalculator(atoms, **results)
        out.append(atoms)
    return out
