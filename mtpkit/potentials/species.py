"""MLIP type indices of atoms: the one place that maps chemical symbols to type 0, 1, ..."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from ase import Atoms

from mtpkit.errors import UserError


def atom_types(atoms: Atoms, species: Sequence[str] | None, species_count: int,
               label: str = "configuration") -> npt.NDArray[np.int64]:
    """MLIP type index (0-based) of each atom.

    With ``species`` (chemical symbol of type 0, 1, ...), symbols are mapped; without,
    ``atoms.arrays["mtp_type"]`` (set by :func:`mtpkit.read_cfg` when no species are
    given) is used. Raises :class:`UserError` starting with ``label`` for an unknown
    symbol, missing types, or a type outside ``0..species_count-1``.
    """
    if species is not None:
        index = {s: k for k, s in enumerate(species)}
        try:
            t = np.array([index[s] for s in atoms.get_chemical_symbols()], dtype=np.int64)
        except KeyError as exc:
            raise UserError(f"{label}: species {exc.args[0]!r} is not in the species list "
                            f"{','.join(species)}") from None
    elif "mtp_type" in atoms.arrays:
        t = np.asarray(atoms.arrays["mtp_type"], dtype=np.int64)
    else:
        raise UserError(f"{label}: atoms carry no MLIP types; give the species "
                        "(chemical symbol of each type index)")
    if t.size and (t.min() < 0 or t.max() >= species_count):
        bad = int(t[(t < 0) | (t >= species_count)][0])
        raise UserError(f"{label}: type {bad} is outside 0..{species_count - 1} "
                        f"(the potential has species_count = {species_count})")
    return t
