"""A cheap, stable ionic model of Na–Y–Zr–Cl for campaign tests (not a model of the real material).

Born–Mayer repulsion between cations and Cl and between Cl ions, plus Coulomb between formal
charges scaled by ``charge_scale``, damped and shifted so energy and force go smoothly to zero
at ``cutoff`` (Fennell & Gezelter, J. Chem. Phys. 124, 234104 (2006), "DSF"). Cations repel
each other, so MD with it (and with an MTP trained on it) keeps a solid host instead of
collapsing as a one-pair Morse model does. Energy eV, forces eV/Å, stress eV/Å^3 (ASE sign).
"""

from __future__ import annotations

import math

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.neighborlist import neighbor_list
from scipy.special import erfc

CHARGES = {"Na": 1.0, "Y": 3.0, "Zr": 4.0, "Cl": -1.0}
#: Born–Mayer A (eV) for each cation with Cl and for Cl–Cl; ρ (Å) is shared
BORN_MAYER = {("Na", "Cl"): 1300.0, ("Y", "Cl"): 2200.0, ("Zr", "Cl"): 2400.0, ("Cl", "Cl"): 3000.0}
KE = 14.399645  # e^2 / (4 pi eps0) in eV·Å


class IonicNYZC(Calculator):
    implemented_properties = ("energy", "free_energy", "forces", "stress")

    def __init__(self, charge_scale: float = 1.0, rho: float = 0.32, cutoff: float = 7.0,
                 alpha: float = 0.25, **kwargs) -> None:
        super().__init__(**kwargs)
        self.charge_scale, self.rho, self.cutoff, self.alpha = charge_scale, rho, cutoff, alpha

    def _pair(self, r: np.ndarray, qq: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pair energy and dE/dr (eV, eV/Å) at distances ``r``."""
        al, rc = self.alpha, self.cutoff
        ec = erfc(al * rc) / rc
        fc = ec / rc + 2 * al / math.sqrt(math.pi) * math.exp(-(al * rc) ** 2) / rc
        coul = KE * qq * (erfc(al * r) / r - ec + fc * (r - rc))
        dcoul = KE * qq * (-erfc(al * r) / r ** 2 - 2 * al / math.sqrt(math.pi) * np.exp(-(al * r) ** 2) / r + fc)
        rep = a * np.exp(-r / self.rho)
        return coul + rep, dcoul - rep / self.rho

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        at = self.atoms
        sym = np.array(at.get_chemical_symbols())
        q = np.array([CHARGES[s] for s in sym]) * self.charge_scale
        i, j, d, dv = neighbor_list("ijdD", at, self.cutoff)
        a = np.zeros(len(i))
        for (s1, s2), val in BORN_MAYER.items():
            a[((sym[i] == s1) & (sym[j] == s2)) | ((sym[i] == s2) & (sym[j] == s1))] = val
        e, de = self._pair(d, q[i] * q[j], a)
        # every pair appears twice (i→j and j→i)
        energy = 0.5 * e.sum()
        fij = (de / d)[:, None] * dv  # dE/d(r_j) for the pair, half counted per direction
        forces = np.zeros((len(at), 3))
        np.add.at(forces, i, 0.5 * fij)
        np.add.at(forces, j, -0.5 * fij)
        virial = 0.5 * (dv[:, :, None] * fij[:, None, :]).sum(axis=0)
        stress = virial / at.get_volume()
        self.results = {"energy": energy, "free_energy": energy, "forces": forces,
                        "stress": stress.flat[[0, 4, 8, 5, 2, 1]]}
