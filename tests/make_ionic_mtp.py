"""Make ``tests/data/nyzc75_ionic_l08.mtp``: a level-8 MTP of the ionic test model of NYZC75.

Not a test module: the script that made the shipped potential, kept so it can be remade
(a rerun gives an equivalent potential, not a bitwise identical one). The potential is for
engine comparisons (tests/test_md_batched*.py), not for the physics of the real material.
Its host expands by about 40 % in volume on heating to 600-800 K (as the ionic model
itself does: 0 GPa near V/V0 = 1.3 at 700 K) and then stays solid with diffusing Na.

Training set (816 configurations of the 37-atom NYZC75 P2_1/n cell, labelled with
:class:`ionic_calc.IonicNYZC`, 2 fs steps, a configuration every 25 steps):

1. Langevin NVT from the CHGNet-relaxed cell at 500, 900, 1300, 1700 K and volume
   scales 0.97, 1.00, 1.04, 1.08, 1.12, each frame with a random ±1 % strain (320);
2. the cell relaxed with the ionic model (FIRE, cell and positions, fmax 0.01 eV/Å),
   Berendsen NPT at 0 GPa at 300, 500, 700, 900, 1100 K, two seeds; each frame plus a
   strained (±1.5 %) and rattled (0.03 Å) copy (400);
3. Langevin NVT of the relaxed cell expanded to V/V0 = 1.15, 1.25, 1.4 at 700 and 1100 K,
   and at 0.95 and 1.05 at 1500 K (96).

Then a level-8 MTP (MLIP template basis, mtpkit's varpro fit, 400 iterations, seed 3).

    python tests/make_ionic_mtp.py [out.mtp]      # about 30 minutes on one core
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SPECIES = ["Na", "Y", "Zr", "Cl"]


def _label(atoms):
    from ase.calculators.singlepoint import SinglePointCalculator
    from ionic_calc import IonicNYZC

    a = atoms.copy()
    a.calc = IonicNYZC()
    e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress()
    a.calc = SinglePointCalculator(a, energy=e, forces=f, stress=s)
    return a


def _langevin(atoms, T, rng):
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ionic_calc import IonicNYZC

    atoms.calc = IonicNYZC()
    MaxwellBoltzmannDistribution(atoms, temperature_K=T, rng=rng)
    return Langevin(atoms, 2 * units.fs, temperature_K=T, friction=0.02 / units.fs, fixcm=False)


def cif_cell():
    from ase.io import read

    return read(HERE / "data" / "NYZC75_P21n_37atoms_CHGNet-relaxed.cif")


def relaxed_cell():
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE
    from ionic_calc import IonicNYZC

    atoms = cif_cell()
    atoms.calc = IonicNYZC()
    FIRE(FrechetCellFilter(atoms), logfile=None).run(fmax=0.01, steps=1500)
    atoms.calc = None
    return atoms


def part1(base) -> list:
    rng = np.random.default_rng(0)
    out = []
    for T in (500, 900, 1300, 1700):
        for vs in (0.97, 1.0, 1.04, 1.08, 1.12):
            atoms = base.copy()
            atoms.set_cell(atoms.cell * vs ** (1 / 3), scale_atoms=True)
            dyn = _langevin(atoms, T, rng)
            for _ in range(16):
                dyn.run(25)
                a = atoms.copy()
                eps = rng.normal(0, 0.01, (3, 3))
                a.set_cell(a.cell @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
                out.append(_label(a))
    return out


def part2(relaxed) -> list:
    from ase import units
    from ase.md.nptberendsen import NPTBerendsen
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ionic_calc import IonicNYZC

    rng = np.random.default_rng(1)
    out = []
    for T in (300, 500, 700, 900, 1100):
        for _seed in range(2):
            atoms = relaxed.copy()
            atoms.calc = IonicNYZC()
            MaxwellBoltzmannDistribution(atoms, temperature_K=T, rng=rng)
            dyn = NPTBerendsen(atoms, 2 * units.fs, temperature_K=T, pressure_au=0.0, taut=100 * units.fs,
                               taup=500 * units.fs, compressibility_au=1 / (20 * units.GPa))
            for k in range(24):
                dyn.run(25)
                if k < 4:
                    continue
                out.append(_label(atoms))
                b = atoms.copy()
                eps = rng.normal(0, 0.015, (3, 3))
                b.set_cell(b.cell @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
                b.rattle(0.03, seed=int(rng.integers(1 << 30)))
                out.append(_label(b))
    return out


def part3(relaxed) -> list:
    rng = np.random.default_rng(2)
    out = []
    for T, vs in ((700, 1.15), (700, 1.25), (700, 1.4), (1100, 1.15), (1100, 1.25), (1100, 1.4),
                  (1500, 1.05), (1500, 0.95)):
        atoms = relaxed.copy()
        atoms.set_cell(atoms.cell * vs ** (1 / 3), scale_atoms=True)
        dyn = _langevin(atoms, T, rng)
        for k in range(14):
            dyn.run(25)
            if k >= 2:
                out.append(_label(atoms))
    return out


def main() -> None:
    from mtpkit.potentials.mtp_io import write_mtp
    from mtpkit.potentials.training import train

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "data" / "nyzc75_ionic_l08.mtp"
    t0 = time.time()
    relaxed = relaxed_cell()
    images = part1(cif_cell()) + part2(relaxed) + part3(relaxed)
    result = train(images, 8, species=SPECIES, max_iter=400, seed=3, print_every=50)
    write_mtp(out, result.mtp)
    print(f"{out}: {len(images)} configurations, {result.train_metrics} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
