"""Na site classification (octahedral vs trigonal prismatic) and the octahedral occupancy O_oct(t).

Two classifications:

* **by coordination polyhedron** — the ``n_ligands`` (6) nearest ligands (Cl) of each
  Na, minimum image (:func:`min_image`, exact in any triclinic cell); an octahedron has
  three trans pairs (L–Na–L ≈ 180°), a trigonal prism none (its widest angles, across
  the rectangular faces, are ≈ 120–140°).  The score is the mean of the three widest
  L–Na–L angles (deg); ``score >= threshold_deg`` (default 157.5°, midway) is octahedral.
* **by nearest reference site** — each Na takes the label of the nearest site of a
  reference list (fractional coordinates of the reference cell, mapped into the
  current cell), e.g. the Na sites of the ideal structure labelled by the
  polyhedron method (:func:`reference_sites`).

O_oct(t) is the fraction of Na in octahedral sites per frame; its equilibrated
mean drops the first ``equilibration_fraction`` of the frames and its error is the
standard error over ``n_blocks`` consecutive blocks.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mtpkit.errors import UserError

__all__ = [
    "OctahedralOccupancy",
    "classify_by_polyhedron",
    "classify_by_reference",
    "min_image",
    "octahedral_occupancy",
    "polyhedron_scores",
    "reference_sites",
]

OCT_THRESHOLD_DEG = 157.5


@lru_cache(maxsize=64)
def _reduced_cell(cell_bytes: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Of a cell given as 9 float64 bytes: its Minkowski-reduced cell R, R⁻¹, the 26 nonzero
    lattice vectors s = h·R with h ∈ {−1, 0, 1}³, their squared lengths, the indices of
    those that can shorten some vector with fractional coordinates in [−½, ½]³ (|s|² <
    Σᵢ |rᵢ·s|: none for an orthogonal cell), and (half the shortest lattice vector)²."""
    from ase.geometry import minkowski_reduce

    cell = np.frombuffer(cell_bytes, float).reshape(3, 3)
    rcell, _ = minkowski_reduce(cell)
    h = np.array([h for h in itertools.product((-1, 0, 1), repeat=3) if any(h)], float)
    shifts = h @ rcell
    sq = np.einsum("ij,ij->i", shifts, shifts)
    useful = np.flatnonzero(sq < np.abs(shifts @ rcell.T).sum(axis=1) - 1e-12 * sq.max())
    return rcell, np.linalg.inv(rcell), shifts, sq, useful, float(sq.min()) / 4.0


def min_image(vectors: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Minimum-image version of displacement vectors (…, 3) Å in a cell (rows = vectors, Å).

    Exact for any cell, however sheared (as :func:`ase.geometry.find_mic`): the vectors
    are wrapped by rounding their fractional coordinates in the Minkowski-reduced cell,
    then moved by the lattice vector among the 26 {−1, 0, 1} combinations of the reduced
    cell vectors that shortens them most, until none does.  Those combinations include
    all Voronoi-relevant vectors of a reduced 3-D cell, so the result lies in the
    Wigner–Seitz cell.  Only vectors longer than half the shortest lattice vector, and
    in the first pass only the combinations that can shorten a wrapped vector at all, are
    tried: nothing for an orthogonal cell.  Rounding in the original cell alone is exact
    only for near-orthogonal cells and picks a longer image for about a quarter of all
    vectors at LAMMPS's largest tilt (half the box length).  The reduction is cached per
    cell.
    """
    v = np.asarray(vectors, float)
    shape = v.shape
    v = v.reshape(-1, 3)
    rcell, rinv, shifts, sq, useful, safe2 = _reduced_cell(np.ascontiguousarray(cell, float).tobytes())
    f = v @ rinv
    v = (f - np.round(f)) @ rcell
    if useful.size == 0:
        return v.reshape(shape)
    tol = 1e-12 * float(sq.max())
    todo = np.flatnonzero(np.einsum("ij,ij->i", v, v) > safe2)
    cols = useful
    for _ in range(10):
        if todo.size == 0:
            break
        gain = sq[cols] + 2.0 * (v[todo] @ shifts[cols].T)  # |v + s|² − |v|² for each shift s
        best = np.argmin(gain, axis=1)
        move = gain[np.arange(todo.size), best] < -tol
        todo = todo[move]
        v[todo] += shifts[cols[best[move]]]
        cols = np.arange(len(shifts))  # a moved vector may have left the wrapping box
    return v.reshape(shape)


def _indices(symbols: Sequence[str], species: str) -> np.ndarray:
    idx = np.flatnonzero(np.asarray(symbols) == species)
    if idx.size == 0:
        raise UserError(f"no {species} atoms (the structure has {sorted(set(symbols))})")
    return idx


def polyhedron_scores(positions: np.ndarray, cell: np.ndarray, symbols: Sequence[str],
                      center: str = "Na", ligand: str = "Cl", n_ligands: int = 6) -> np.ndarray:
    """Mean of the three widest ligand–centre–ligand angles (deg) for each ``center`` atom."""
    ci, li = _indices(symbols, center), _indices(symbols, ligand)
    if li.size < n_ligands:
        raise UserError(f"{li.size} {ligand} atoms, fewer than the {n_ligands} ligands of a polyhedron")
    vec = min_image(positions[li][None, :, :] - positions[ci][:, None, :], cell)  # (nc, nl, 3)
    dist = np.linalg.norm(vec, axis=-1)
    near = np.argpartition(dist, n_ligands - 1, axis=1)[:, :n_ligands]
    v = np.take_along_axis(vec, near[..., None], axis=1)
    u = v / np.linalg.norm(v, axis=-1, keepdims=True)
    cos = np.einsum("cid,cjd->cij", u, u)
    iu = np.triu_indices(n_ligands, 1)
    angles = np.degrees(np.arccos(np.clip(cos[:, iu[0], iu[1]], -1, 1)))
    return np.sort(angles, axis=1)[:, -3:].mean(axis=1)


def classify_by_polyhedron(positions: np.ndarray, cell: np.ndarray, symbols: Sequence[str],
                           center: str = "Na", ligand: str = "Cl",
                           threshold_deg: float = OCT_THRESHOLD_DEG) -> np.ndarray:
    """Boolean array: True where a ``center`` atom sits in an octahedron, False for a prism."""
    return polyhedron_scores(positions, cell, symbols, center, ligand) >= threshold_deg


def reference_sites(atoms, center: str = "Na", ligand: str = "Cl",
                    threshold_deg: float = OCT_THRESHOLD_DEG) -> tuple[np.ndarray, np.ndarray]:
    """(fractional coordinates (n, 3), octahedral flags (n,)) of the ``center`` sites of a
    reference structure (ASE Atoms), labelled by their coordination polyhedron."""
    symbols = atoms.get_chemical_symbols()
    idx = _indices(symbols, center)
    oct_ = classify_by_polyhedron(atoms.positions, atoms.cell[:], symbols, center, ligand, threshold_deg)
    return atoms.get_scaled_positions()[idx], oct_


def classify_by_reference(positions: np.ndarray, cell: np.ndarray, symbols: Sequence[str],
                          site_frac: np.ndarray, site_is_oct: np.ndarray,
                          center: str = "Na") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each ``center`` atom: (octahedral flag, index of the nearest site, distance Å)."""
    ci = _indices(symbols, center)
    sites = np.asarray(site_frac, float) @ cell
    vec = min_image(sites[None, :, :] - positions[ci][:, None, :], cell)
    dist = np.linalg.norm(vec, axis=-1)
    nearest = np.argmin(dist, axis=1)
    return np.asarray(site_is_oct, bool)[nearest], nearest, dist[np.arange(len(ci)), nearest]


def octahedral_site_occupancy(nearest_site: np.ndarray, site_is_oct: np.ndarray) -> float:
    """Fraction of octahedral reference sites that hold at least one Na.

    ``nearest_site``: index of each Na's nearest reference site (from
    :func:`classify_by_reference`); ``site_is_oct``: flags of the reference sites.
    """
    is_oct = np.asarray(site_is_oct, bool)
    n_oct = int(is_oct.sum())
    if n_oct == 0:
        raise UserError("the reference sites contain no octahedral site")
    nearest_site = np.asarray(nearest_site, int)
    occupied = np.unique(nearest_site[is_oct[nearest_site]])
    return occupied.size / n_oct


@dataclass
class OctahedralOccupancy:
    """O_oct(t) (fraction of Na in octahedral sites) and its equilibrated mean ± block SEM."""

    frame_index: np.ndarray
    o_oct: np.ndarray
    mean: float
    sem: float
    equilibrated_from: int

    def to_dict(self) -> dict:
        return {"frame_index": self.frame_index.tolist(), "o_oct": self.o_oct.tolist(), "mean": self.mean,
                "sem": self.sem, "equilibrated_from_frame": self.equilibrated_from}


def equilibrated_mean(series: np.ndarray, equilibration_fraction: float = 0.2,
                      n_blocks: int = 5) -> tuple[float, float, int]:
    """(mean, standard error from block averages, first index used) of a time series."""
    series = np.asarray(series, float)
    start = int(len(series) * equilibration_fraction)
    tail = series[start:]
    if tail.size == 0:
        raise UserError("no frames left after the equilibration cut")
    nb = min(n_blocks, tail.size)
    blocks = np.array([b.mean() for b in np.array_split(tail, nb)])
    sem = float(blocks.std(ddof=1) / np.sqrt(nb)) if nb > 1 else 0.0
    return float(tail.mean()), sem, start


def octahedral_occupancy(frames: Iterable, symbols: Sequence[str], center: str = "Na", ligand: str = "Cl",
                         method: str = "polyhedron", site_frac: np.ndarray | None = None,
                         site_is_oct: np.ndarray | None = None, equilibration_fraction: float = 0.2,
                         threshold_deg: float = OCT_THRESHOLD_DEG, per: str = "na") -> OctahedralOccupancy:
    """O_oct(t) over frames (objects with ``positions``, ``cell``, ``index``; streamed).

    ``method``: ``"polyhedron"`` or ``"reference"`` (then ``site_frac``/``site_is_oct``
    from :func:`reference_sites`).
    ``per``: ``"na"`` gives the fraction of Na on octahedral sites; ``"site"`` (reference
    method only) the fraction of octahedral reference sites holding a Na — the octahedral
    occupancy of the reference study (25/50/75/100 % for its NYZC75 models).
    """
    if per not in ("na", "site"):
        raise UserError(f"per must be 'na' or 'site', got {per!r}")
    if per == "site" and method != "reference":
        raise UserError("O_oct per octahedral site needs method='reference' (the sites must be known)")
    if method == "reference" and (site_frac is None or site_is_oct is None):
        raise UserError("site classification by reference needs the reference sites (site_frac, site_is_oct)")
    if method not in ("polyhedron", "reference"):
        raise UserError(f"method must be 'polyhedron' or 'reference', got {method!r}")
    idx, values = [], []
    for frame in frames:
        if method == "polyhedron":
            flags = classify_by_polyhedron(frame.positions, frame.cell, symbols, center, ligand, threshold_deg)
            values.append(float(flags.mean()))
        else:
            flags, nearest, _ = classify_by_reference(frame.positions, frame.cell, symbols, site_frac,
                                                      site_is_oct, center)
            if per == "site":
                values.append(octahedral_site_occupancy(nearest, site_is_oct))
            else:
                values.append(float(flags.mean()))
        idx.append(frame.index)
    if not values:
        raise UserError("O_oct: the trajectory has no frames")
    series = np.array(values)
    mean, sem, start = equilibrated_mean(series, equilibration_fraction)
    return OctahedralOccupancy(np.array(idx), series, mean, sem, int(idx[start]))
