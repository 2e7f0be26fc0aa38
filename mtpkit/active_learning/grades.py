"""Rows of the MaxVol matrix for configurations, and their extrapolation grades.

Configuration mode: one row per configuration,

    row = energy_weight / N^(weight_scaling/2) * dE/dθ          (N atoms)

Neighbourhood mode: one row per atom, ``dE_i/dθ`` (site energy ``E_i``).
``θ`` is all MTP parameters (``basis="all"``, MLIP-3) or the linear
coefficients (``basis="linear"``: one-hot species | ``B_k(i)``). Gradients
come from the compiled core (:mod:`mtpkit.potentials.core`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from ase import Atoms

from mtpkit.active_learning.active_set import ActiveSet, Basis, Mode
from mtpkit.errors import UserError
from mtpkit.potentials.model import MTP
from mtpkit.potentials.species import atom_types

if TYPE_CHECKING:
    from mtpkit.potentials import core


def basis_size(mtp: MTP, basis: Basis) -> int:
    """Number of columns of a row: ``mtp.n_params`` or ``species_count + alpha_scalar_moments``."""
    return mtp.n_params if basis == "all" else mtp.species_count + mtp.alpha_scalar_moments


def site_rows(mtp: MTP | core.CompiledMTP, atoms: Atoms, types: npt.ArrayLike,
              basis: Basis = "all") -> npt.NDArray[np.float64]:
    """``(N, n)`` per-atom rows ``dE_i/dθ``."""
    from mtpkit.potentials import core

    t = np.ascontiguousarray(types, dtype=np.int32)
    if basis == "all":
        return np.asarray(core.energy_param_grads(mtp, atoms, t, per_atom=True), dtype=np.float64)
    return np.asarray(core.site_basis(mtp, atoms, t), dtype=np.float64)


def config_row(mtp: MTP | core.CompiledMTP, atoms: Atoms, types: npt.ArrayLike, basis: Basis = "all",
               energy_weight: float = 1.0, weight_scaling: int = 2) -> npt.NDArray[np.float64]:
    """``(n,)`` configuration row ``energy_weight / N^(weight_scaling/2) * dE/dθ``."""
    from mtpkit.potentials import core

    n_atoms = max(len(atoms), 1)
    t = np.ascontiguousarray(types, dtype=np.int32)
    if basis == "all":
        g = np.asarray(core.energy_param_grads(mtp, atoms, t, per_atom=False), dtype=np.float64)
    else:
        g = np.asarray(core.site_basis(mtp, atoms, t), dtype=np.float64).sum(axis=0)
    return g * (energy_weight / n_atoms ** (weight_scaling / 2.0))


def row_blocks(mtp: MTP, images: Sequence[Atoms], mode: Mode, basis: Basis = "all",
               species: Sequence[str] | None = None, energy_weight: float = 1.0,
               weight_scaling: int = 2) -> list[npt.NDArray[np.float64]]:
    """One ``(k, n)`` block per configuration (``k = 1`` or the number of atoms)."""
    from mtpkit.potentials import core

    compiled = core.compile_mtp(mtp)  # once, not per configuration
    blocks = []
    for idx, atoms in enumerate(images):
        t = atom_types(atoms, species, mtp.species_count, label=f"configuration {idx}")
        if mode == "configuration":
            blocks.append(config_row(compiled, atoms, t, basis, energy_weight, weight_scaling)[None, :])
        else:
            blocks.append(site_rows(compiled, atoms, t, basis))
    return blocks


def rows_for(mtp: MTP, active_set: ActiveSet, images: Sequence[Atoms],
             species: Sequence[str] | None = None) -> list[npt.NDArray[np.float64]]:
    """Row blocks of ``images`` in the mode/basis/weights of ``active_set``."""
    n = basis_size(mtp, active_set.basis)
    if n != active_set.size:
        raise UserError(f"the active set has {active_set.size} rows but the potential's "
                        f"{active_set.basis!r} basis has {n}: it belongs to another potential")
    return row_blocks(mtp, images, active_set.mode, active_set.basis, species,
                      energy_weight=active_set.energy_weight or 1.0,
                      weight_scaling=active_set.weight_scaling)


@dataclass
class Grades:
    """Grades of a list of configurations.

    Attributes
    ----------
    config:
        ``(n_configs,)`` grade of each configuration (max over its atoms in
        neighbourhood mode); MLIP's ``MV_grade``.
    per_atom:
        In neighbourhood mode, one ``(N,)`` array per configuration (MLIP's
        ``nbh_grades``); ``None`` in configuration mode.
    """

    config: npt.NDArray[np.float64]
    per_atom: list[npt.NDArray[np.float64]] | None


def grade_images(mtp: MTP, active_set: ActiveSet, images: Sequence[Atoms],
                 species: Sequence[str] | None = None) -> Grades:
    """Extrapolation grades of ``images`` against ``active_set``."""
    blocks = rows_for(mtp, active_set, images, species)
    per_atom = [active_set.grades(b) if b.shape[0] else np.zeros(0) for b in blocks]
    config = np.array([g.max() if g.size else 0.0 for g in per_atom])
    return Grades(config, per_atom if active_set.mode == "neighborhood" else None)


def annotate(images: Sequence[Atoms], grades: Grades) -> None:
    """Store grades in place: ``info["MV_grade"]`` and, per atom, ``arrays["nbh_grades"]``."""
    for k, atoms in enumerate(images):
        atoms.info["MV_grade"] = float(grades.config[k])
        if grades.per_atom is not None:
            atoms.arrays["nbh_grades"] = np.asarray(grades.per_atom[k], dtype=float)
