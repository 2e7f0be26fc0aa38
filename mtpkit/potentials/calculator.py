"""ASE calculator backed by the compiled MTP core.

``MTPCalculator(potential_or_mtp, species=["Na", "Y", "Zr", "Cl"])`` works with
any ASE optimiser or MD driver. ``species[i]`` is the chemical symbol of MLIP
type ``i``; atoms of an element not in ``species`` raise :class:`UserError`
naming the element.

Short distances: atoms closer than the potential's ``min_dist`` lie outside
the range the radial basis was fitted on. By default the calculator warns
(:class:`~mtpkit.potentials.core.ShortDistanceWarning`, naming both atom
indices and the distance) and still returns finite results;
``on_short_distance="raise"`` turns this into
:class:`~mtpkit.potentials.core.ShortDistanceError`, ``"ignore"`` silences it.
Coinciding atoms and non-finite results always raise.

Properties: ``energy`` and ``free_energy`` (eV, identical), ``forces``
(eV/Å), ``energies`` (per-atom site energies, eV) and, for 3D-periodic cells,
``stress`` (ASE Voigt order, eV/Å^3).

Caching follows ASE's: results are recomputed whenever ``positions``,
``numbers``, ``cell``, ``pbc``, ``initial_charges`` or ``initial_magmoms``
differ from the last calculation by more than ``tol`` (``check_state`` gives
the same change names as ASE's ``compare_atoms``; it only compares exactly
first, so that unchanged arrays skip NumPy's ``allclose``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes, equal
from ase.data import atomic_numbers, chemical_symbols

from mtpkit.errors import UserError
from mtpkit.potentials.core import CompiledMTP, compile_mtp, evaluate
from mtpkit.potentials.model import MTP

__all__ = ["MTPCalculator"]


class MTPCalculator(Calculator):
    """ASE calculator for a Moment Tensor Potential.

    Parameters
    ----------
    potential_or_mtp:
        A loaded potential (anything with ``.mtp`` and optionally ``.species``),
        an :class:`MTP`, or a :class:`CompiledMTP`.
    species:
        Chemical symbol (or atomic number) of each MLIP type ``0, 1, ...``.
        Defaults to the potential's own species list; without either, atoms
        must carry ``atoms.arrays["mtp_type"]``.
    on_short_distance:
        ``"warn"`` (default), ``"raise"`` or ``"ignore"`` for atoms closer than
        ``min_dist``.
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "stress", "energies"]
    nolabel = True

    def __init__(
        self,
        potential_or_mtp: object,
        species: Sequence[str | int] | None = None,
        *,
        on_short_distance: str = "warn",
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(potential_or_mtp, (MTP, CompiledMTP)):
            mtp = potential_or_mtp
            pot_species = None
        elif hasattr(potential_or_mtp, "mtp"):
            mtp = potential_or_mtp.mtp
            pot_species = getattr(potential_or_mtp, "species", None)
        else:
            raise TypeError(
                f"MTPCalculator needs a potential, MTP or CompiledMTP, not {type(potential_or_mtp).__name__}"
            )
        if on_short_distance not in ("warn", "raise", "ignore"):
            raise ValueError(f"on_short_distance must be 'warn', 'raise' or 'ignore', not {on_short_distance!r}")
        self.compiled = compile_mtp(mtp)
        self.on_short_distance = on_short_distance
        species = species if species is not None else pot_species
        self.species = None if species is None else [self._symbol(s) for s in species]
        n_species = self.compiled.mtp.species_count
        if self.species is not None:
            if len(self.species) > n_species:
                raise UserError(
                    f"{len(self.species)} species given ({','.join(self.species)}) but the potential has "
                    f"species_count = {n_species}"
                )
            if len(set(self.species)) != len(self.species):
                raise UserError(f"species list {','.join(self.species)} repeats an element")
            self._type_of = {atomic_numbers[s]: t for t, s in enumerate(self.species)}
            # MLIP type by atomic number (-1: not a species of the potential)
            self._type_lut = np.full(len(chemical_symbols), -1, dtype=np.int32)
            for z, t in self._type_of.items():
                self._type_lut[z] = t

    @staticmethod
    def _symbol(s: str | int) -> str:
        if isinstance(s, (int, np.integer)):
            if not 0 < int(s) < len(chemical_symbols):
                raise UserError(f"species entry {s} is not an atomic number")
            return chemical_symbols[int(s)]
        if s not in atomic_numbers:
            raise UserError(f"species entry {s!r} is not a chemical symbol")
        return str(s)

    def types_of(self, atoms: Atoms) -> np.ndarray:
        """MLIP type index of every atom."""
        if self.species is None:
            if "mtp_type" not in atoms.arrays:
                raise UserError(
                    "no species list: pass species=[...] (chemical symbol of each MLIP type) "
                    "or give the atoms an 'mtp_type' array"
                )
            return np.asarray(atoms.arrays["mtp_type"], dtype=np.int32)
        numbers = atoms.numbers
        if numbers.size and 0 <= numbers.min() and numbers.max() < len(self._type_lut):
            out = self._type_lut[numbers]
            if out.min() >= 0:
                return out
        out = np.empty(len(atoms), dtype=np.int32)
        for z in np.unique(numbers):
            if int(z) not in self._type_of:
                idx = int(np.flatnonzero(numbers == z)[0])
                raise UserError(
                    f"element {chemical_symbols[int(z)]} (atom {idx}) is not in the potential's species "
                    f"{self.species}"
                )
            out[numbers == z] = self._type_of[int(z)]
        return out

    def check_state(self, atoms: Atoms, tol: float = 1e-15) -> list[str]:
        """What changed since the last calculation: ASE's ``compare_atoms`` (same names,
        same ``tol``, ``ignored_changes`` honoured), with an exact comparison first so
        that unchanged arrays cost no ``allclose``."""
        old = self.atoms
        if old is None:
            return all_changes[:]
        ignored = self.ignored_changes
        changes = []
        if "cell" not in ignored and not _same(old.cell.array, atoms.cell.array, tol):
            changes.append("cell")
        if "pbc" not in ignored and not _same(old.pbc, atoms.pbc, tol):
            changes.append("pbc")
        a1, a2 = old.arrays, atoms.arrays
        for name in all_changes:
            if name in ("cell", "pbc") or name in ignored:
                continue
            in1, in2 = name in a1, name in a2
            if in1 != in2 or (in1 and not _same(a1[name], a2[name], tol)):
                changes.append(name)
        return changes

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        efs = evaluate(self.compiled, atoms, self.types_of(atoms), on_short_distance=self.on_short_distance)
        self.results = {
            "energy": efs.energy,
            "free_energy": efs.energy,
            "forces": efs.forces,
            "energies": efs.site_energies,
        }
        if efs.volume:
            self.results["stress"] = efs.stress


def _same(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    """ASE's ``equal(a, b, atol=tol)`` (``compare_atoms``' test), exact comparison first."""
    if a.shape != b.shape:
        return False
    if (a == b).all():  # NaN compares unequal here and in allclose; exact equality implies allclose
        return True
    return bool(equal(a, b, atol=tol))
