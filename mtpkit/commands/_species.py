"""The ``--species`` argument of the commands: chemical symbols checked without importing ASE
(``mtpkit evaluate`` runs without NumPy or ASE)."""

from __future__ import annotations

from typing import Any

from mtpkit.commands import UserError

# ase.data.chemical_symbols (placeholder X for 0), here so that --species is checked without ASE
CHEMICAL_SYMBOLS = (
    "X", "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar",
    "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se", "Br", "Kr",
    "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te", "I", "Xe",
    "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf",
    "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th",
    "Pa", "U", "Np", "Pu", "Am", "Cm", "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db", "Sg", "Bh", "Hs",
    "Mt", "Ds", "Rg", "Cn", "Nh", "Fl", "Mc", "Lv", "Ts", "Og",
)



def parse_species(text: Any, where: str = "--species") -> list[str] | None:
    """A species list from ``"Na,Y,Zr,Cl"`` or a list; ``None`` for ``None``. Raises
    :class:`UserError` naming ``where`` for an empty list or an unknown symbol."""
    if text is None:
        return None
    items = text if isinstance(text, list) else str(text).split(",")
    out = [str(s).strip() for s in items if str(s).strip()]
    if not out:
        raise UserError(f"{where}: give comma-separated chemical symbols")
    for s in out:
        if s not in CHEMICAL_SYMBOLS:
            raise UserError(f"{where}: unknown chemical symbol {s!r}")
    return out
