"""Small periodic cells cut out of a production-size box around its most extrapolating atom.

DFT cannot label the production boxes (296 atoms of NYZC75), but the box is a supercell
of a small cell (the *tile*, 37 atoms) that DFT can label. When exploration in the box
extrapolates, the atom with the highest neighbourhood grade marks where the potential
is blind. :func:`cut_tile` takes the tile-shaped window of the box centred on that atom
(the window deforms with the box), keeps the atoms inside it and makes them a periodic
cell of the tile's shape. The window is shifted (up to a quarter of a tile along each
tile axis) until it holds exactly the tile's composition and no two atoms come closer
than a given distance across its faces, so the cell is stoichiometric and physical.

The centre atom keeps the box's neighbours up to the distance from it to the window's
faces; beyond that its neighbours are periodic images of the window's own atoms. In
the NYZC75 tiles (6.9 × 7.1 × 22.5 Å) the nearest faces are about 3.5 Å away, so the
first shell (Cl around the metals, 2.5–2.9 Å) is the box's and the outer part of the
5 Å cutoff sphere is not. Measured with CHGNet (benchmarks/tile_cut, RESULTS.md session 7):
most windows fail the distance check across their faces, and in those that pass, the
labeller's forces on the centre atom's first shell differ from the box's by about 0.65 eV/Å
RMS, so such cells do not carry the box's environment; the PBE campaign does not use them.

Positions in Å; the supercell matrix ``M`` is integer with ``box.cell = M @ tile_cell``.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator, Mapping

import numpy as np
import numpy.typing as npt
from ase import Atoms
from ase.geometry import get_distances

#: window shifts tried, as fractions of a tile along each tile axis (the centre atom stays inside
#: the middle half of the window)
SHIFTS = np.linspace(-0.25, 0.25, 9)


def supercell_matrix(box_cell: npt.ArrayLike, tile_cell: npt.ArrayLike, tol: float = 0.15) -> np.ndarray:
    """The integer matrix ``M`` with ``box_cell ≈ M @ tile_cell`` (rows are cell vectors, Å).

    ``tol`` bounds how far from integers the entries may be (the box has deformed in NPT
    since it was built). Raises ValueError when the box is not a supercell of the tile."""
    m = np.asarray(box_cell, float) @ np.linalg.inv(np.asarray(tile_cell, float))
    r = np.rint(m)
    if np.abs(m - r).max() > tol or abs(np.linalg.det(r)) < 0.5:
        raise ValueError(f"the box is not a supercell of the tile: box cell = M @ tile cell with M =\n{m.round(3)}")
    return r.astype(int)


def windows(box: Atoms, centre: int, matrix: npt.ArrayLike,
            composition: Mapping[int, int]) -> Iterator[tuple[tuple[float, float, float], Atoms, np.ndarray]]:
    """Every tile-shaped window of ``box`` around atom ``centre`` that holds exactly
    ``composition`` (atomic number → count), smallest shift first: (shift in tile fractions,
    the window as a periodic cell of the tile's shape, index in ``box`` of each of its atoms).

    ``matrix``: the integer supercell matrix of the box (:func:`supercell_matrix`). The cell is
    the box's cell divided by it (it follows the box's deformation). Nothing is checked across
    the window's faces: that is :func:`cut_tile`'s job."""
    m = np.asarray(matrix, dtype=float)
    tile_cell = np.linalg.solve(m, box.cell.array)
    s = box.get_scaled_positions(wrap=True)
    # each atom's 27 nearest box images in tile fractional coordinates: t = (s + n) @ M
    images = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=float)
    t = (s[:, None, :] + images[None, :, :]) @ m            # (N, 27, 3)
    home = images.tolist().index([0.0, 0.0, 0.0])
    want = Counter({int(z): int(c) for z, c in composition.items() if c})
    n_tile = sum(want.values())
    for shift in sorted(itertools.product(SHIFTS, repeat=3), key=lambda d: (np.abs(d).sum(), d)):
        rel = t - (t[centre, home] - 0.5 + np.asarray(shift))  # window: 0 <= rel < 1 on every axis
        inside = np.all((rel >= 0.0) & (rel < 1.0), axis=2)  # (N, 27): at most one image per atom
        atom, image = np.nonzero(inside)
        if len(atom) != n_tile or Counter(box.numbers[atom].tolist()) != want:
            continue
        cell = Atoms(numbers=box.numbers[atom], scaled_positions=rel[atom, image], cell=tile_cell, pbc=True)
        yield tuple(float(x) for x in shift), cell, atom


def cut_tile(box: Atoms, centre: int, matrix: npt.ArrayLike, composition: Mapping[int, int],
             min_distance: float) -> Atoms | None:
    """A periodic cell of the tile's shape holding the atoms of ``box`` in a tile-shaped
    window around atom ``centre``; ``None`` when no window shift gives ``composition``
    (atomic number → count) with all distances ≥ ``min_distance`` (Å).

    ``matrix``: the integer supercell matrix of the box (:func:`supercell_matrix`). The
    returned atoms carry ``info["cut_centre"]`` (index of the centre atom among them),
    ``info["cut_shift"]`` (the window shift in tile fractions) and, per atom,
    ``arrays["box_index"]`` (index in ``box``)."""
    for shift, cell, atom in windows(box, centre, matrix, composition):
        if closest_pair(cell) < min_distance:
            continue
        cell.info.update(cut_centre=int(np.nonzero(atom == centre)[0][0]), cut_shift=np.array(shift, float))
        cell.arrays["box_index"] = atom.astype(int)
        return cell
    return None


def closest_pair(atoms: Atoms) -> float:
    """The shortest distance between two atoms, periodic images included (Å; ``inf`` for one atom)."""
    if len(atoms) < 2:
        return float("inf")
    _, d = get_distances(atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    d[np.diag_indices_from(d)] = np.inf
    return float(d.min())


def composition_of(atoms: Atoms) -> dict[int, int]:
    """Atomic number → count."""
    return {int(z): int(c) for z, c in Counter(atoms.numbers.tolist()).items()}
