"""Symmetry-distinct Y/Zr and Na/vacancy orderings of NYZC75 (Na9YZr3Cl24, 37 atoms).

The 37-atom cell is an index-2 superlattice of Na3YCl6 P2_1/n
(:data:`~mtpkit.structures.builders.NYZC75_CELLS`): 4 metal sites (1 Y, 3 Zr) and
12 Na sites (4 octahedral, 8 prismatic) of which 3 are vacant, so
C(4,1)·C(12,3) = 880 raw orderings per cell.

Deduplication.  Two orderings in the same cell are the same structure exactly when a
symmetry operation of the undecorated frame (P2_1/n with the doubled cell: 4 point
operations × 2 cell translations = 8 operations, found with spglib) maps one onto
the other: the Cl/Na/M framework is exactly P2_1/n, so any isometry between two
decorations must be one of its operations, and because the 2/m point group acts as
the identity modulo 2 on the lattice, every index-2 superlattice is invariant —
orderings in *different* cells are never equivalent (their Y sublattices are
different lattices).  Each ordering is reduced to a canonical occupation vector
(minimum over the 8 site permutations); :func:`verify_with_structure_matcher`
checks the result with pymatgen's ``StructureMatcher``.

Counts: 115 distinct of 880 in the cell doubled along a (also b, c and a+b+c),
120 in the (a±b) cell, 110 in the (a±c) and (b±c) cells; 800 in all seven.  The
tests derive them independently of the orbit code here: Burnside counting over
spglib's operations of each frame (also per octahedral occupancy), and (slow)
``StructureMatcher`` grouping all 880 raw orderings of each cell.  Sebti et al.
report 229; mtpkit does not reproduce that number: it is neither the per-cell
count (110–120), nor the seven-cell total, nor the count under any order-4
subgroup of the 8 operations (220, 230 or 240); it is close to two cells' worth
(2 × 115 = 230, 120 + 110 = 230), e.g. two Y/Zr arrangements, but the study's
exact cell and sublattice definition were not available to check.  Runs in about
a second for all seven cells; nothing is cached.

Tags of each ordering:

* ``ewald``: Ewald energy of the unrelaxed cell with Na+ Y3+ Zr4+ Cl− (eV per
  37-atom cell; pymatgen ``EwaldSummation``, evaluated as q·Φ·q with the
  unit-charge pair matrix Φ of the 40-site frame — exact for charge-neutral cells);
* ``sro``: Warren–Cowley SRO over Y and Zr within 8.5 Å
  (:func:`mtpkit.structures.sro.warren_cowley`); it depends only on which cell is used
  because a 37-atom cell holds a single Y: the Y sublattice *is* the cell lattice;
* ``y_network``: dimension (0–3) of the Y–Y neighbour network within the SRO
  cutoff (0 isolated Y, 1 chains, 2 sheets);
* ``tm_label``: ``"layered-TM"`` or ``"mixed-TM"`` (:func:`tm_label`);
* ``oct_occupancy``: percentage of the 4 octahedral Na sites occupied (25/50/75/100).

TM classes.  The metal sites form a pseudo-fcc lattice (12 neighbours at
6.9–7.3 Å, next shell ≈ 10.1 Å, so the 8.5 Å cutoff counts exactly the first
shell).  With one Y per 37-atom cell the Y sublattice can only be one of the seven
index-2 superlattices, and the number of Y among a Y's 12 metal neighbours is
4 (cell ``c``: Y fills every fourth pseudo-cubic (001) metal plane, i.e. Y sheets
separated by three Zr planes; SRO_YY = +1/9), 2 (cells ``a``, ``b``, ``ac``,
``bc``: Y chains; SRO_YY = −1/9) or 0 (cells ``ab``, ``abc``: isolated Y, the
L1_2-like arrangement of fcc; SRO_YY = −1/3).  A random solid solution has 3
(SRO = 0).  Sebti et al. (J. Mater. Chem. A 10, 21565 (2022)) contrast Y/Zr
segregated into layers with Y/Zr mixed on the metal sublattice; mtpkit therefore
calls an ordering **layered-TM** when Y–Y SRO > 0 *and* the Y network is 2-D (Y
sheets), and **mixed-TM** when Y–Y SRO < 0 (Y surrounded by more Zr than at
random; chains or isolated Y).  The 2×2×2 MD box of the study (here 4a × 2b × 2c
of the parent, 296 atoms) is a superlattice of all seven cells, so both classes
live in the same box and keep their 37-atom-cell SRO exactly.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mtpkit.structures.builders import NYZC75_CELLS, bare, nyzc75_cell, nyzc75_frame, to_atoms
from mtpkit.structures.sro import warren_cowley

__all__ = [
    "Ordering",
    "enumerate_orderings",
    "frame_permutations",
    "tm_label",
    "verify_with_structure_matcher",
    "y_network_dimension",
]

OXIDATION_STATES = {"Na": 1, "Y": 3, "Zr": 4, "Cl": -1}
SRO_CUTOFF = 8.5  # Å
N_VACANCIES = 3


@dataclass(frozen=True)
class Ordering:
    """One symmetry-distinct NYZC75 ordering (unrelaxed 37-atom cell).

    ``y_site`` indexes the frame's 4 metal sites, ``vacancies`` its 12 Na sites
    (0–3 octahedral, 4–11 prismatic).  ``multiplicity``: how many of the cell's 880
    raw orderings are equivalent to it.  ``ewald`` in eV per 37-atom cell.
    """

    cell: str
    y_site: int
    vacancies: tuple[int, int, int]
    multiplicity: int
    ewald: float
    sro: dict[tuple[str, str], float] = field(compare=False)
    y_network: int
    tm_label: str
    n_oct: int
    n_prism: int

    @property
    def oct_occupancy(self) -> int:
        """Occupied octahedral Na sites in percent of the 4 (25, 50, 75 or 100)."""
        return 25 * self.n_oct

    @property
    def name(self) -> str:
        """Stable identifier, e.g. ``a-y0-v4.5.6``."""
        return f"{self.cell}-y{self.y_site}-v{'.'.join(map(str, self.vacancies))}"

    def structure(self, frame: Any | None = None) -> Any:
        """The 37-atom pymatgen ``Structure`` (Na9YZr3Cl24)."""
        return nyzc75_cell(self.y_site, self.vacancies, self.cell, frame=frame)


def frame_permutations(frame: Any, symprec: float = 1e-3) -> np.ndarray:
    """Site permutations (n_ops × n_sites) of the frame's space-group operations.

    ``perm[k, i]`` is the site that operation k maps site i onto (spglib via
    pymatgen ``SpacegroupAnalyzer``, translations of the supercell included).
    """
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    ops = SpacegroupAnalyzer(frame, symprec=symprec).get_symmetry_operations(cartesian=False)
    frac = frame.frac_coords
    perms = []
    for op in ops:
        moved = op.operate_multi(frac)
        diff = moved[:, None, :] - frac[None, :, :]
        diff -= np.round(diff)
        dist = np.linalg.norm(diff @ frame.lattice.matrix, axis=2)
        perm = dist.argmin(axis=1)
        if dist[np.arange(len(frac)), perm].max() > 1e-2 or len(set(perm.tolist())) != len(frac):
            raise RuntimeError("symmetry operation does not map the frame onto itself")
        perms.append(perm)
    return np.array(perms, int)


def _unit_charge_matrix(frame: Any) -> np.ndarray:
    """Ewald pair matrix Φ (eV per e²) of the frame's sites: E = Σ_ij q_i q_j Φ_ij for neutral q."""
    import warnings

    from pymatgen.analysis.ewald import EwaldSummation

    st = bare(frame)
    st.add_oxidation_state_by_element({el.symbol: 1 for el in st.composition.elements})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the unit-charge frame is not neutral; only Φ is used
        return np.asarray(EwaldSummation(st).total_energy_matrix, float)


def y_network_dimension(structure_or_atoms: Any, cutoff: float = SRO_CUTOFF) -> int:
    """Dimension (0–3) spanned by all Y→Y neighbour vectors within ``cutoff`` Å.

    0: no Y has a Y neighbour (isolated Y); 1: Y chains; 2: Y sheets; 3: 3-D network.
    """
    from ase.neighborlist import neighbor_list

    atoms = structure_or_atoms
    if not hasattr(atoms, "get_chemical_symbols"):
        atoms = to_atoms(structure_or_atoms)
    keep = np.array([s == "Y" for s in atoms.get_chemical_symbols()])
    sub = atoms[keep]
    if len(sub) == 0:
        return 0
    vec = neighbor_list("D", sub, float(cutoff), self_interaction=False)
    if len(vec) == 0:
        return 0
    return int(np.linalg.matrix_rank(np.asarray(vec), tol=1e-3))


def tm_label(sro: dict[tuple[str, str], float], y_network: int) -> str:
    """``"layered-TM"``, ``"mixed-TM"`` or ``"unclassified"`` from the Y–Y SRO and Y network.

    layered-TM: SRO_YY > 0 and Y forms 2-D sheets (``y_network == 2``);
    mixed-TM: SRO_YY < 0.  Anything else (e.g. SRO ≈ 0) is ``"unclassified"``.
    """
    s = float(sro[("Y", "Y")])
    if s > 1e-6 and y_network == 2:
        return "layered-TM"
    if s < -1e-6:
        return "mixed-TM"
    return "unclassified"


def _canonical_orbits(perms: np.ndarray, metals: Sequence[int], nas: Sequence[int],
                      n_sites: int) -> dict[tuple[int, ...], list[tuple[int, tuple[int, ...]]]]:
    """Group all (Y site, 3 vacancies) choices by canonical occupation key."""
    inverse = np.argsort(perms, axis=1)  # occ after op k = occ[inverse[k]]
    orbits: dict[tuple[int, ...], list[tuple[int, tuple[int, ...]]]] = {}
    occ = np.zeros(n_sites, np.int8)
    for y in range(len(metals)):
        for vac in itertools.combinations(range(len(nas)), N_VACANCIES):
            occ[:] = 0
            occ[metals[y]] = 1
            occ[[nas[v] for v in vac]] = 2
            images = occ[inverse]
            key = min(map(tuple, images.tolist()))
            orbits.setdefault(key, []).append((y, vac))
    return orbits


def enumerate_orderings(cells: Iterable[str] | None = None, *, sro_cutoff: float = SRO_CUTOFF
                        ) -> list[Ordering]:
    """All symmetry-distinct NYZC75 orderings in the given index-2 cells.

    ``cells``: keys of :data:`~mtpkit.structures.builders.NYZC75_CELLS`; default all
    seven (``None``).  ``["a"]`` restricts to the shared 37-atom cell (doubled along
    a; 115 orderings, all mixed-TM with Y chains).  Each orbit is represented by its
    first member in (Y site, vacancies) lexicographic order.  Returned sorted by
    cell (in the given order) then Ewald energy.  Under a second for all seven cells.
    """
    names = list(NYZC75_CELLS) if cells is None else list(cells)
    out: list[Ordering] = []
    for cell in names:
        frame = nyzc75_frame(cell)
        sub = frame.site_properties["sublattice"]
        metals = [i for i, s in enumerate(sub) if s == "M"]
        nas = [i for i, s in enumerate(sub) if s in ("Na_oct", "Na_prism")]
        n_oct = sum(1 for s in sub if s == "Na_oct")
        perms = frame_permutations(frame)
        phi = _unit_charge_matrix(frame)
        base_q = np.array([OXIDATION_STATES[s.specie.symbol] for s in frame], float)
        base_q[metals] = OXIDATION_STATES["Zr"]
        orbits = _canonical_orbits(perms, metals, nas, len(frame))
        # SRO and Y network depend only on the cell (one Y per cell): compute once, on a
        # real ordering.
        probe = nyzc75_cell(0, (0, 1, 2), cell, frame=frame)
        sro = warren_cowley(probe, species=("Y", "Zr"), cutoff=sro_cutoff)
        ynet = y_network_dimension(probe, cutoff=sro_cutoff)
        label = tm_label(sro, ynet)
        cell_orderings = []
        for members in orbits.values():
            y, vac = min(members)
            q = base_q.copy()
            q[metals[y]] = OXIDATION_STATES["Y"]
            q[[nas[v] for v in vac]] = 0.0
            cell_orderings.append(Ordering(
                cell=cell, y_site=y, vacancies=tuple(vac), multiplicity=len(members),
                ewald=float(q @ phi @ q), sro=dict(sro), y_network=ynet, tm_label=label,
                n_oct=n_oct - sum(1 for v in vac if v < n_oct),
                n_prism=len(nas) - n_oct - sum(1 for v in vac if v >= n_oct),
            ))
        total = sum(o.multiplicity for o in cell_orderings)
        expected = len(metals) * math.comb(len(nas), N_VACANCIES)
        if total != expected:
            raise RuntimeError(f"cell {cell}: orbits cover {total} of {expected} raw orderings")
        out.extend(sorted(cell_orderings, key=lambda o: (o.ewald, o.name)))
    return out


def verify_with_structure_matcher(orderings: Sequence[Ordering], matcher: Any | None = None,
                                  energy_tol: float = 1e-6) -> list[tuple[str, str]]:
    """Pairs of orderings that pymatgen's ``StructureMatcher`` says are the same structure.

    An empty list confirms the symmetry-based deduplication.  Only pairs with equal
    Ewald energy (within ``energy_tol`` eV, an invariant of equivalent structures)
    are compared, which keeps it to seconds.  ``matcher``: default
    ``StructureMatcher()`` (pymatgen defaults: ltol 0.2, stol 0.3, angle_tol 5°).
    """
    from pymatgen.analysis.structure_matcher import StructureMatcher

    sm = matcher or StructureMatcher()
    frames: dict[str, Any] = {}
    structs = []
    for o in orderings:
        frames.setdefault(o.cell, nyzc75_frame(o.cell))
        structs.append(bare(o.structure(frames[o.cell])))
    order = sorted(range(len(orderings)), key=lambda i: orderings[i].ewald)
    clashes = []
    for pos, i in enumerate(order):
        for j in order[pos + 1:]:
            if orderings[j].ewald - orderings[i].ewald > energy_tol:
                break
            if sm.fit(structs[i], structs[j]):
                clashes.append((orderings[i].name, orderings[j].name))
    return clashes
