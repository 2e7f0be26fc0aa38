"""Crystal structures of the Na–Y–Zr–Cl system built from crystallographic data.

Units: lengths in Å, angles in degrees, fractional coordinates.

Sources (one per data set; nothing here is invented):

* **Na3YCl6, P2_1/n (cryolite type, Z = 2)** — lattice a = 6.927, b = 7.289,
  c = 10.117 Å, β = 90.82° from Stenzel & Meyer, Z. Anorg. Allg. Chem. 619, 652
  (1993), as quoted (±0.3 %) in the project's shared reference
  ``reference/structures/README.md``.  Wyckoff sites Y 2a (0, 0, 0), octahedral Na
  2b (0, 0, ½), prismatic Na 4e, three Cl 4e (cryolite type; Na3AlF6 prototype of
  Hawthorne & Ferguson, Can. Mineral. 13, 377 (1975)).  The internal 4e
  coordinates are **not** refined experimental ones: they are the prototype
  coordinates relaxed with CHGNet 0.3.0 at the fixed experimental cell keeping the
  P2_1/n symmetry, as tabulated in the same shared README and its
  ``Na3YCl6_P21n.cif`` (full precision taken from that CIF; the README rounds them
  to three decimals).  GPAW-PBE at this geometry: max force 0.11 eV/Å, 0.09 GPa.
* **NYZC75 = Na2.25Y0.25Zr0.75Cl6 = Na9YZr3Cl24 (37 atoms)** — derived, not
  measured: a Na3YCl6 P2_1/n cell doubled into one of its seven index-2
  superlattices (``NYZC75_CELLS``; the default ``"a"`` doubles a, as in the shared
  ``NYZC75_P21n_37atoms.cif``), one metal site Y and three Zr, three of the twelve
  Na sites (4 octahedral 2b-derived, 8 prismatic 4e-derived) vacant.  The Zr
  sites keep the Y–Cl geometry of the parent (unrelaxed): Zr–Cl ≈ 2.6–2.7 Å here,
  ≈ 2.45–2.55 Å only after relaxation.

Not available (no trustworthy published coordinates could be sourced for this
project): Na3YCl6 R-3, Na2ZrCl6 P-3m1 and Na2ZrCl6 P2_1/n.  The registry of named
structures (``build``, ``available_structures``, the missing ones raising
``MissingStructureDataError``) is :mod:`mtpkit.structures.catalog`; this module
imports no other mtpkit module except :mod:`mtpkit.errors`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "NA3YCL6_P21N_LATTICE",
    "NA3YCL6_P21N_SITES",
    "NYZC75_CELLS",
    "bare",
    "na3ycl6_p21n",
    "nyzc75_cell",
    "nyzc75_frame",
    "to_atoms",
]

#: Hermann–Mauguin symbol of P2_1/n (No. 14, cell choice 2, unique axis b) as
#: pymatgen spells it (``"P2_1/n"`` alone is not accepted by pymatgen's SpaceGroup).
P21N_SYMBOL = "P12_1/n1"

#: (a, b, c in Å, β in degrees): Stenzel & Meyer 1993 via the shared reference README.
NA3YCL6_P21N_LATTICE: tuple[float, float, float, float] = (6.927, 7.289, 10.117, 90.82)

#: Asymmetric unit of Na3YCl6 P2_1/n: (label, element, Wyckoff, fractional coords).
#: Y and Na1 are on special positions (exact); the 4e coordinates are the
#: prototype + CHGNet ones of the shared reference (see the module docstring).
NA3YCL6_P21N_SITES: tuple[tuple[str, str, str, tuple[float, float, float]], ...] = (
    ("Y", "Y", "2a", (0.0, 0.0, 0.0)),
    ("Na_oct", "Na", "2b", (0.0, 0.0, 0.5)),
    ("Na_prism", "Na", "4e", (0.52864387, 0.91677934, 0.23402809)),
    ("Cl1", "Cl", "4e", (0.14561229, 0.06984379, 0.23926237)),
    ("Cl2", "Cl", "4e", (0.68195119, 0.17686846, 0.06215479)),
    ("Cl3", "Cl", "4e", (0.16945147, 0.30314629, 0.91454824)),
)

#: The seven index-2 superlattices of the Na3YCl6 P2_1/n lattice, as integer
#: supercell matrices (rows = new vectors in units of the parent a, b, c; all with
#: determinant +2).  Each holds 4 metal, 12 Na and 24 Cl sites, i.e. one NYZC75
#: 37-atom cell.  The metal sites (Y 2a) form a pseudo-fcc lattice whose 12 nearest
#: neighbours (6.9–7.3 Å) are ±a, ±b and the four (±½, ±½, ±½) vectors; the cell
#: choice fixes which of them join Y to Y (see mtpkit.structures.enumerate).
NYZC75_CELLS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "a": ((2, 0, 0), (0, 1, 0), (0, 0, 1)),      # 2a x b x c (the shared 37-atom CIF)
    "b": ((1, 0, 0), (0, 2, 0), (0, 0, 1)),      # a x 2b x c
    "c": ((1, 0, 0), (0, 1, 0), (0, 0, 2)),      # a x b x 2c
    "ab": ((1, 1, 0), (1, -1, 0), (0, 0, -1)),   # n1 + n2 even
    "ac": ((1, 0, 1), (1, 0, -1), (0, 1, 0)),    # n1 + n3 even
    "bc": ((1, 0, 0), (0, 1, 1), (0, -1, 1)),    # n2 + n3 even
    "abc": ((1, 1, 0), (1, 0, 1), (1, -1, 0)),   # n1 + n2 + n3 even
}

#: Sublattice labels stored in ``site_properties["sublattice"]``.
SUBLATTICES = ("M", "Na_oct", "Na_prism", "Cl")


def _structure_cls():
    from pymatgen.core import Structure

    return Structure


def na3ycl6_p21n(lattice: Sequence[float] | None = None) -> Any:
    """Na3YCl6, P2_1/n (cryolite type, Z = 2, 20 atoms) as a pymatgen ``Structure``.

    Built with ``Structure.from_spacegroup("P12_1/n1", ...)`` from the Wyckoff sites
    in :data:`NA3YCL6_P21N_SITES`.  ``lattice``: optional (a, b, c in Å, β in °),
    default :data:`NA3YCL6_P21N_LATTICE` (Stenzel & Meyer 1993).

    Sites are ordered by sublattice (Y, Na_oct, Na_prism, Cl) and carry
    ``site_properties``: ``"sublattice"`` (one of ``M``, ``Na_oct``, ``Na_prism``,
    ``Cl``), ``"wyckoff"`` and ``"label"``.
    """
    from pymatgen.core import Lattice

    a, b, c, beta = NA3YCL6_P21N_LATTICE if lattice is None else tuple(float(x) for x in lattice)
    lat = Lattice.monoclinic(a, b, c, beta)
    labels = [s[0] for s in NA3YCL6_P21N_SITES]
    sublattice = {"Y": "M", "Na_oct": "Na_oct", "Na_prism": "Na_prism"}
    with warnings.catch_warnings():
        # pymatgen warns that it falls back from the full to the short H-M symbol
        warnings.filterwarnings("ignore", message="Full symbol not available")
        st = _structure_cls().from_spacegroup(
            P21N_SYMBOL, lat,
            [s[1] for s in NA3YCL6_P21N_SITES],
            [s[3] for s in NA3YCL6_P21N_SITES],
            site_properties={
                "label": labels,
                "wyckoff": [s[2] for s in NA3YCL6_P21N_SITES],
                "sublattice": [sublattice.get(lbl, "Cl") for lbl in labels],
            },
        )
    return _sorted_by_sublattice(st)


def _sorted_by_sublattice(st: Any) -> Any:
    """Deterministic site order: sublattice (M, Na_oct, Na_prism, Cl), then x, y, z."""
    rank = {name: k for k, name in enumerate(SUBLATTICES)}
    frac = np.mod(np.round(st.frac_coords, 8), 1.0)
    keys = [(rank[p], *np.round(f, 6)) for p, f in zip(st.site_properties["sublattice"], frac)]
    order = sorted(range(len(st)), key=lambda i: keys[i])
    new = _structure_cls().from_sites([st[i] for i in order])
    return new


def nyzc75_frame(cell: str = "a", parent: Any | None = None) -> Any:
    """The undecorated 40-site NYZC75 frame: an index-2 supercell of Na3YCl6 P2_1/n.

    ``cell``: a key of :data:`NYZC75_CELLS` (default ``"a"``: the parent doubled along
    a, 13.854 × 7.289 × 10.117 Å).  All four metal sites hold Y and all twelve Na
    sites hold Na (Na12Y4Cl24); ``site_properties["sublattice"]`` tells M / Na_oct /
    Na_prism / Cl apart.  Sites are ordered M, Na_oct, Na_prism, Cl.
    """
    if cell not in NYZC75_CELLS:
        from mtpkit.errors import UserError

        raise UserError(f"unknown NYZC75 cell {cell!r}; choose one of {sorted(NYZC75_CELLS)}")
    st = (parent if parent is not None else na3ycl6_p21n()).copy()
    matrix = np.array(NYZC75_CELLS[cell], int)
    if round(np.linalg.det(matrix)) != 2:
        raise AssertionError(f"cell {cell!r} matrix must have determinant +2")
    st.make_supercell(matrix)
    return _sorted_by_sublattice(st)


def nyzc75_cell(y_site: int, vacancies: Sequence[int], cell: str = "a",
                frame: Any | None = None) -> Any:
    """One NYZC75 ordering (Na9YZr3Cl24, 37 atoms) as a pymatgen ``Structure``.

    ``y_site``: index (0–3, into the frame's metal sites) of the metal site kept as Y;
    the other three become Zr.  ``vacancies``: three indices into the frame's twelve
    Na sites (0–3 octahedral, 4–11 prismatic, frame order) left empty.
    ``cell``: which index-2 superlattice (:data:`NYZC75_CELLS`); ``frame``: a
    precomputed :func:`nyzc75_frame` of that cell (for speed).  Geometry is the
    unrelaxed parent one.
    """
    from mtpkit.errors import UserError

    fr = frame if frame is not None else nyzc75_frame(cell)
    sub = fr.site_properties["sublattice"]
    metals = [i for i, s in enumerate(sub) if s == "M"]
    nas = [i for i, s in enumerate(sub) if s in ("Na_oct", "Na_prism")]
    vac = sorted({int(v) for v in vacancies})
    if not 0 <= int(y_site) < len(metals):
        raise UserError(f"y_site must be in 0..{len(metals) - 1}, got {y_site}")
    if len(vac) != 3 or any(not 0 <= v < len(nas) for v in vac):
        raise UserError(f"need three distinct Na-site indices in 0..{len(nas) - 1}, got {vacancies}")
    st = fr.copy()
    for k, i in enumerate(metals):
        if k != int(y_site):
            st.replace(i, "Zr", properties=dict(st[i].properties))
    st.remove_sites([nas[v] for v in vac])
    return st


def bare(structure: Any) -> Any:
    """A copy of ``structure`` without site properties (what StructureMatcher and writers want)."""
    return _structure_cls()(structure.lattice, structure.species, structure.frac_coords)


def to_atoms(structure: Any) -> Any:
    """ASE ``Atoms`` of a pymatgen ``Structure`` (site properties dropped except ``sublattice``,
    kept as ``atoms.arrays["sublattice"]``)."""
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = AseAtomsAdaptor.get_atoms(bare(structure))
    sub = structure.site_properties.get("sublattice")
    if sub is not None:
        atoms.arrays["sublattice"] = np.array(sub, dtype="U8")
    return atoms
