"""The 8 representative NYZC75 structures for MD: 2 TM orderings × 4 octahedral occupancies.

Following Sebti et al. (J. Mater. Chem. A 10, 21565 (2022)), who ran MD on a
layered-TM and a mixed-TM ordering, each with 25/50/75/100 % of the octahedral Na
sites occupied.  mtpkit's choice (from :func:`~mtpkit.structures.enumerate.enumerate_orderings`):

1. **TM ordering per class** — one Y/Zr arrangement (one 37-atom cell of
   :data:`~mtpkit.structures.builders.NYZC75_CELLS`) per class, so that the four
   structures of a class differ only in their Na/vacancy arrangement:
   layered-TM takes the cell with the largest Y–Y SRO among layered cells (cell
   ``c``: Y sheets, SRO_YY = +1/9), mixed-TM the cell with the most negative Y–Y SRO
   (isolated Y, SRO_YY = −1/3; cells ``ab`` and ``abc`` tie and the one whose best
   ordering has the lower Ewald energy wins).
2. **Na/vacancy ordering** — within that cell and octahedral occupancy, the lowest
   Ewald energy (Na+ Y3+ Zr4+ Cl−, unrelaxed) ordering.
3. **MD box** — every representative is tiled into the same 296-atom box,
   4a × 2b × 2c of Na3YCl6 P2_1/n (27.71 × 14.58 × 20.23 Å, β = 90.82°), i.e. the
   2×2×2 supercell of the shared a-doubled 37-atom cell; it is a superlattice of
   every NYZC75 cell, so all 8 boxes share one set of site positions
   (:func:`md_box_frame`) and keep the SRO of their 37-atom cell.

Names: ``layered-TM_oct25`` … ``mixed-TM_oct100``.  Geometry is unrelaxed (the
parent's); relax or equilibrate before production MD.  Building all 8 takes about
a second, so nothing is cached; :func:`save_representatives` writes them to an
explicit folder (atomic writes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mtpkit.structures.builders import NYZC75_CELLS, bare, na3ycl6_p21n, nyzc75_frame
from mtpkit.structures.enumerate import Ordering, enumerate_orderings

__all__ = [
    "MD_BOX",
    "OCT_OCCUPANCIES",
    "TM_CLASSES",
    "Representative",
    "md_box_frame",
    "representative_orderings",
    "representative_structures",
    "save_representatives",
    "to_md_box",
]

#: MD box in units of the Na3YCl6 P2_1/n lattice vectors (rows): 4a × 2b × 2c.
MD_BOX: tuple[tuple[int, int, int], ...] = ((4, 0, 0), (0, 2, 0), (0, 0, 2))
TM_CLASSES = ("layered-TM", "mixed-TM")
OCT_OCCUPANCIES = (25, 50, 75, 100)


@dataclass(frozen=True)
class Representative:
    """One representative: its ``name``, the 37-atom ``ordering`` and the 296-atom ``structure``."""

    name: str
    ordering: Ordering
    structure: Any

    @property
    def tm_label(self) -> str:
        return self.ordering.tm_label

    @property
    def oct_occupancy(self) -> int:
        return self.ordering.oct_occupancy


def box_matrix(cell: str) -> np.ndarray:
    """Integer matrix S with S · (cell lattice) = MD box lattice."""
    s = np.array(MD_BOX, float) @ np.linalg.inv(np.array(NYZC75_CELLS[cell], float))
    si = np.round(s).astype(int)
    if np.abs(s - si).max() > 1e-9:
        raise AssertionError(f"MD box is not a superlattice of cell {cell!r}")
    return si


def to_md_box(cell_structure: Any, cell: str) -> Any:
    """Tile a 37-atom NYZC75 cell (of index-2 cell ``cell``) into the 4a × 2b × 2c MD box."""
    st = cell_structure.copy()
    st.make_supercell(box_matrix(cell))
    return st


def md_box_frame() -> Any:
    """The undecorated 320-site MD box (Na96 Y32 Cl192 sites, ``sublattice`` property).

    All 8 representatives occupy subsets of these sites (metal sites as Y or Zr, 72
    of the 96 Na sites); its ``Na_oct`` sites are the octahedral reference sites for
    O_oct(t).
    """
    st = na3ycl6_p21n()
    st.make_supercell(np.array(MD_BOX, int))
    return st


def representative_orderings(orderings: Sequence[Ordering] | None = None) -> dict[str, Ordering]:
    """The 8 chosen 37-atom orderings, keyed ``"<tm>_oct<occ>"`` (rules in the module docstring).

    ``orderings``: output of :func:`enumerate_orderings` over cells that include at
    least one layered-TM and one mixed-TM cell (default: all seven, computed here).
    """
    from mtpkit.errors import UserError

    ords = list(enumerate_orderings() if orderings is None else orderings)
    chosen: dict[str, Ordering] = {}
    for tm in TM_CLASSES:
        members = [o for o in ords if o.tm_label == tm]
        if not members:
            raise UserError(f"no {tm} ordering among the given orderings; enumerate more cells")
        sign = -1.0 if tm == "layered-TM" else 1.0
        best_cell = min(
            {o.cell for o in members},
            key=lambda c: (round(sign * next(o.sro[("Y", "Y")] for o in members if o.cell == c), 9),
                           min(o.ewald for o in members if o.cell == c), c),
        )
        for occ in OCT_OCCUPANCIES:
            pool = [o for o in members if o.cell == best_cell and o.oct_occupancy == occ]
            if not pool:
                raise UserError(f"{tm} cell {best_cell!r} has no ordering with {occ}% octahedral Na")
            chosen[f"{tm}_oct{occ}"] = min(pool, key=lambda o: (o.ewald, o.name))
    return chosen


def representative_structures(orderings: Sequence[Ordering] | None = None
                              ) -> dict[str, Representative]:
    """The 8 representatives as 296-atom MD boxes (pymatgen ``Structure``), keyed by name.

    Order: layered-TM then mixed-TM, occupancies 25 → 100 %.
    """
    out: dict[str, Representative] = {}
    frames: dict[str, Any] = {}
    for name, o in representative_orderings(orderings).items():
        frames.setdefault(o.cell, nyzc75_frame(o.cell))
        out[name] = Representative(name, o, to_md_box(o.structure(frames[o.cell]), o.cell))
    return out


def save_representatives(directory: str | os.PathLike, fmt: str = "cif",
                         representatives: dict[str, Representative] | None = None) -> Path:
    """Write each representative to ``<directory>/<name>.<fmt>`` and a ``representatives.json``
    summary (cell, ordering, Ewald eV/37-atom cell, SRO, octahedral occupancy); atomic writes.

    ``fmt``: ``"cif"`` or ``"poscar"``.  Returns the summary path.
    """
    from mtpkit.errors import UserError
    from mtpkit.io_utils import atomic_write_json, atomic_write_text

    if fmt not in ("cif", "poscar"):
        raise UserError(f"representatives format must be 'cif' or 'poscar', got {fmt!r}")
    reps = representatives if representatives is not None else representative_structures()
    folder = Path(directory)
    summary = {}
    for name, rep in reps.items():
        st = bare(rep.structure)
        text = st.to(fmt=fmt)
        atomic_write_text(folder / f"{name}.{'cif' if fmt == 'cif' else 'vasp'}", text)
        o = rep.ordering
        summary[name] = {
            "cell": o.cell, "cell_matrix": [list(r) for r in NYZC75_CELLS[o.cell]],
            "ordering": o.name, "y_site": o.y_site, "vacancies": list(o.vacancies),
            "ewald_eV_per_37_atoms": o.ewald, "tm_label": o.tm_label,
            "sro_YY": o.sro[("Y", "Y")], "sro_YZr": o.sro[("Y", "Zr")], "y_network": o.y_network,
            "oct_occupancy_percent": o.oct_occupancy, "n_oct": o.n_oct, "n_prism": o.n_prism,
            "n_atoms": len(st), "formula": st.composition.formula,
        }
    path = folder / "representatives.json"
    atomic_write_json(path, summary)
    return path
