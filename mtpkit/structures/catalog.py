"""Named Na–Y–Zr–Cl structures: :func:`build` one by name, :func:`available_structures`.

The registry sits above both :mod:`mtpkit.structures.builders` (published-data builders,
a leaf module) and :mod:`mtpkit.structures.enumerate` (the NYZC75 orderings, which use the
builders), so that neither of those imports the other in a cycle.

Buildable: ``"Na3YCl6-P2_1/n"`` and ``"NYZC75-P2_1/n"``.  Known but not available (no
trustworthy published coordinates could be sourced for this project): ``"Na3YCl6-R-3"``,
``"Na2ZrCl6-P-3m1"`` and ``"Na2ZrCl6-P2_1/n"``; requesting them raises
:class:`MissingStructureDataError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mtpkit.errors import UserError
from mtpkit.structures.builders import na3ycl6_p21n
from mtpkit.structures.enumerate import enumerate_orderings

__all__ = ["MissingStructureDataError", "available_structures", "build"]


class MissingStructureDataError(NotImplementedError):
    """A structure whose published coordinates are not available to mtpkit."""


def _lowest_ewald_cell_a() -> Any:
    """The lowest-Ewald NYZC75 ordering of the a-doubled cell (the shared 37-atom CIF's)."""
    return enumerate_orderings(["a"])[0].structure()


_BUILDERS: dict[str, Callable[[], Any]] = {
    "Na3YCl6-P2_1/n": na3ycl6_p21n,
    "NYZC75-P2_1/n": _lowest_ewald_cell_a,
}

_MISSING: dict[str, str] = {
    "Na3YCl6-R-3": (
        "Na3YCl6 in R-3 needs published lattice parameters and atomic positions "
        "(Y/Na site occupancies of the Li3YCl6/Na3ScCl6-like R-3 polymorph); none "
        "trustworthy were available (the shared reference README lists them as not "
        "available). Supply them from a refined structure (e.g. the study's ICSD/CIF) "
        "before use."
    ),
    "Na2ZrCl6-P-3m1": (
        "Na2ZrCl6 in P-3m1 needs published lattice parameters and atomic positions; "
        "none were available. A 9-atom sqrt3 x sqrt3 hcp-Cl model comes out P-31m by "
        "symmetry, so the published cell/Cl arrangement is required, not a guess."
    ),
    "Na2ZrCl6-P2_1/n": (
        "Na2ZrCl6 in P2_1/n (ball-milled polymorph) needs its published lattice "
        "parameters and atomic positions; none were available. (Substituting Zr into "
        "Na3YCl6 with one Na-site vacancy per formula would be a model, not that "
        "published structure.)"
    ),
}


def available_structures() -> dict[str, bool]:
    """Every structure name mtpkit knows, mapped to whether it can be built."""
    return {**{k: True for k in _BUILDERS}, **{k: False for k in _MISSING}}


def build(name: str) -> Any:
    """Build a named structure (pymatgen ``Structure``).

    Buildable: ``"Na3YCl6-P2_1/n"`` (:func:`~mtpkit.structures.builders.na3ycl6_p21n`) and
    ``"NYZC75-P2_1/n"`` (the lowest-Ewald ordering of the a-doubled 37-atom cell, all
    octahedral Na sites full — the ordering of the shared ``NYZC75_P21n_37atoms.cif``; use
    :mod:`mtpkit.structures.enumerate` for all of them).
    ``"Na3YCl6-R-3"``, ``"Na2ZrCl6-P-3m1"`` and ``"Na2ZrCl6-P2_1/n"`` raise
    :class:`MissingStructureDataError` naming the missing published data.
    """
    if name in _BUILDERS:
        return _BUILDERS[name]()
    if name in _MISSING:
        raise MissingStructureDataError(f"{name}: {_MISSING[name]}")
    raise UserError(f"unknown structure {name!r}; known: {sorted(available_structures())}")
