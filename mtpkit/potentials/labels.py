"""Reference labels and model predictions of a set of configurations.

:class:`Labels` holds the energies, forces and virials of labelled configurations
(:func:`extract_labels` checks them and names the configuration of a bad one);
:class:`Predictions` holds an MTP's (:func:`predict`). Error metrics between the two
are in :mod:`mtpkit.potentials.metrics`.

Units: energies in eV, forces in eV/Å, virials in eV; Voigt order
(xx, yy, zz, yz, xz, xy).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from ase import Atoms
from ase.units import GPa

from mtpkit.errors import UserError

#: One eV/Å^3 in GPa.
EV_PER_A3_IN_GPA = 1.0 / GPa

_VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def voigt_to_full(s: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """ASE Voigt order (xx, yy, zz, yz, xz, xy) to a symmetric 3x3 matrix."""
    s = np.asarray(s, dtype=np.float64).reshape(-1)
    if s.size == 9:
        return s.reshape(3, 3).copy()
    out = np.empty((3, 3))
    for k, (i, j) in enumerate(_VOIGT):
        out[i, j] = out[j, i] = s[k]
    return out


def full_to_voigt(m: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """A 3x3 matrix to ASE Voigt order (xx, yy, zz, yz, xz, xy), symmetrising."""
    m = np.asarray(m, dtype=np.float64)
    m = 0.5 * (m + m.T)
    return np.array([m[i, j] for i, j in _VOIGT])


@dataclass
class Labels:
    """Reference energies, forces and virials of a list of configurations.

    Attributes
    ----------
    energy:
        Total energies in eV, shape ``(n_configs,)``.
    forces:
        One ``(n_atoms, 3)`` array per configuration, eV/Å (all NaN when the
        configuration has no force labels, see ``has_forces``).
    virial:
        One 3x3 virial per configuration in eV (``-volume * stress``); zeros
        where ``has_stress`` is false.
    has_stress:
        Whether the configuration carries a stress label (and a 3D cell).
    natoms:
        Atoms per configuration.
    volume:
        Cell volume in Å^3 (``nan`` for cells that are not 3D).
    names:
        ``"<source>, configuration <k>"`` (1-based) for messages.
    """

    energy: npt.NDArray[np.float64]
    forces: list[npt.NDArray[np.float64]]
    virial: list[npt.NDArray[np.float64]]
    has_stress: npt.NDArray[np.bool_]
    natoms: npt.NDArray[np.int64]
    volume: npt.NDArray[np.float64]
    names: list[str]

    def __len__(self) -> int:
        return int(self.energy.size)

    @property
    def has_forces(self) -> npt.NDArray[np.bool_]:
        """Whether the configuration carries force labels (absent ones are NaN)."""
        return np.array([bool(np.all(np.isfinite(f))) for f in self.forces], dtype=bool)

    def subset(self, idx: Sequence[int]) -> Labels:
        """The labels of configurations ``idx`` (in that order)."""
        idx = list(idx)
        return Labels(
            energy=self.energy[idx],
            forces=[self.forces[i] for i in idx],
            virial=[self.virial[i] for i in idx],
            has_stress=self.has_stress[idx],
            natoms=self.natoms[idx],
            volume=self.volume[idx],
            names=[self.names[i] for i in idx],
        )


def config_name(source: str | os.PathLike | None, index: int) -> str:
    """How messages name configuration ``index`` (0-based) of ``source``."""
    where = os.fspath(source) if source is not None else "<images>"
    return f"{where}, configuration {index + 1} (index {index})"


def _result(atoms: Atoms, key: str):
    calc = atoms.calc
    if calc is None:
        return None
    results = getattr(calc, "results", {})
    return results.get(key)


def extract_labels(images: Sequence[Atoms], source: str | os.PathLike | None = None,
                   require_forces: bool = True) -> Labels:
    """Read energy, force and stress labels from ``atoms.calc.results``.

    Raises :class:`~mtpkit.errors.UserError` naming the configuration (source
    and 1-based number) for a missing energy, missing forces (when
    ``require_forces``) or any NaN/inf label. A missing stress, or a cell that
    is not 3D, only marks ``has_stress`` false.
    """
    n = len(images)
    energy = np.empty(n)
    forces: list[np.ndarray] = []
    virial: list[np.ndarray] = []
    has_stress = np.zeros(n, dtype=bool)
    natoms = np.empty(n, dtype=np.int64)
    volume = np.full(n, np.nan)
    names = []
    for k, atoms in enumerate(images):
        name = config_name(source, k)
        names.append(name)
        natoms[k] = len(atoms)
        if len(atoms) == 0:
            raise UserError(f"{name}: configuration has no atoms")
        e = _result(atoms, "energy")
        if e is None:
            raise UserError(f"{name}: no energy label")
        e = float(np.asarray(e).reshape(()))
        if not math.isfinite(e):
            raise UserError(f"{name}: energy label is {e}")
        energy[k] = e
        f = _result(atoms, "forces")
        if f is None:
            if require_forces:
                raise UserError(f"{name}: no force labels")
            f = np.full((len(atoms), 3), np.nan)
        else:
            f = np.array(f, dtype=np.float64).reshape(len(atoms), 3)
            bad = ~np.isfinite(f)
            if bad.any():
                atom = int(np.argwhere(bad)[0][0])
                raise UserError(f"{name}: force label of atom {atom + 1} is not finite ({f[atom]})")
        forces.append(f)
        s = _result(atoms, "stress")
        periodic3d = atoms.cell.rank == 3
        if periodic3d:
            volume[k] = atoms.get_volume()
        if s is not None and periodic3d:
            s = np.asarray(s, dtype=np.float64)
            if not np.all(np.isfinite(s)):
                raise UserError(f"{name}: stress label is not finite ({s.ravel()})")
            virial.append(-volume[k] * voigt_to_full(s))
            has_stress[k] = True
        else:
            virial.append(np.zeros((3, 3)))
    return Labels(energy, forces, virial, has_stress, natoms, volume, names)


@dataclass
class Predictions:
    """Model energies (eV), forces (eV/Å) and virials (eV) per configuration."""

    energy: npt.NDArray[np.float64]
    forces: list[npt.NDArray[np.float64]]
    virial: list[npt.NDArray[np.float64]]


def predict(mtp, images: Sequence[Atoms], types_list: Sequence[npt.ArrayLike],
            evaluate: Callable | None = None) -> Predictions:
    """Evaluate ``mtp`` on every configuration with the compiled core."""
    if evaluate is None:
        from mtpkit.potentials.core import evaluate
    energy = np.empty(len(images))
    forces, virial = [], []
    for k, (atoms, types) in enumerate(zip(images, types_list, strict=True)):
        efs = evaluate(mtp, atoms, np.asarray(types))
        energy[k] = efs.energy
        forces.append(np.asarray(efs.forces, dtype=np.float64))
        virial.append(np.asarray(efs.virial, dtype=np.float64).reshape(3, 3))
    return Predictions(energy, forces, virial)
