"""Warren–Cowley short-range order (SRO) over a chosen subset of species.

A descriptor of one static structure (ASE ``Atoms`` or pymatgen ``Structure``), so it lives
with the structures: :mod:`mtpkit.structures.enumerate` tags each ordering with it, and the
trajectory analysis (:mod:`mtpkit.analysis.descriptors`, the campaign) applies it frame by
frame.  Needs only numpy, ASE and :mod:`mtpkit.errors`.

Definition used (as in Sebti et al., J. Mater. Chem. A 10, 21565 (2022))::

    SRO_ij = (p_ij - c_j) / (delta_ij - c_i)

* only atoms of the chosen ``species`` exist for this analysis: they are the
  centres, the neighbours and the basis of the concentrations (the study uses
  Y and Zr and ignores Na and Cl);
* ``p_ij`` is the fraction of the neighbours (within ``cutoff`` Å, periodic
  images included, the centre itself excluded but its own periodic images
  counted) of all ``i`` atoms that are ``j`` atoms, pooled over the ``i`` atoms;
* ``c_i`` is the number fraction of species ``i`` among the chosen atoms.

For a random solution every SRO_ij is ≈ 0.  A like-pair value (i == j) above 0
means clustering/segregation (e.g. Y and Zr in separate layers), below 0 means
mixing (alternation).  A pair that cannot be normalised (``c_i`` == 1 for a
like pair, or an ``i`` atom without any neighbour) is reported as ``nan``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from mtpkit.errors import UserError

__all__ = ["warren_cowley", "warren_cowley_trajectory"]


def _as_arrays(structure_or_atoms: Any) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """(cell 3x3 Å, cartesian positions Å, symbols, pbc) from ASE Atoms or a pymatgen Structure."""
    if hasattr(structure_or_atoms, "get_chemical_symbols"):  # ASE Atoms
        atoms = structure_or_atoms
        return (np.asarray(atoms.cell[:], float), np.asarray(atoms.positions, float),
                list(atoms.get_chemical_symbols()), np.asarray(atoms.pbc, bool))
    if hasattr(structure_or_atoms, "lattice") and hasattr(structure_or_atoms, "cart_coords"):
        st = structure_or_atoms
        symbols = [site.specie.symbol if hasattr(site.specie, "symbol") else str(site.specie)
                   for site in st]
        return (np.asarray(st.lattice.matrix, float), np.asarray(st.cart_coords, float), symbols,
                np.array(getattr(st.lattice, "pbc", (True, True, True)), bool))
    raise TypeError(f"expected ase.Atoms or pymatgen Structure, got {type(structure_or_atoms).__name__}")


def _pair_counts(structure_or_atoms: Any, species: Sequence[str], cutoff: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """counts[a, b]: number of (centre of species a, neighbour of species b) pairs within cutoff."""
    from ase import Atoms
    from ase.neighborlist import neighbor_list

    cell, pos, symbols, pbc = _as_arrays(structure_or_atoms)
    index = {s: k for k, s in enumerate(species)}
    keep = np.array([s in index for s in symbols], bool)
    present = {s for s in symbols if s in index}
    missing = [s for s in species if s not in present]
    if missing:
        raise UserError(f"SRO: species {missing} not present in the structure "
                        f"(it has {sorted(set(symbols))}); choose species that are present")
    types = np.array([index[s] for s, k in zip(symbols, keep) if k], int)
    sub = Atoms(numbers=np.ones(int(keep.sum()), int), positions=pos[keep], cell=cell, pbc=pbc)
    i, j = neighbor_list("ij", sub, float(cutoff), self_interaction=False)
    n = len(species)
    counts = np.zeros((n, n), float)
    np.add.at(counts, (types[i], types[j]), 1.0)
    return counts, np.bincount(types, minlength=n).astype(float)


def _sro_from_counts(counts: np.ndarray, natoms: np.ndarray, species: Sequence[str]
                     ) -> dict[tuple[str, str], float]:
    c = natoms / natoms.sum()
    totals = counts.sum(axis=1)
    out: dict[tuple[str, str], float] = {}
    for a, si in enumerate(species):
        for b, sj in enumerate(species):
            denom = (1.0 if a == b else 0.0) - c[a]
            if totals[a] <= 0 or abs(denom) < 1e-12:
                out[(si, sj)] = float("nan")
                continue
            p = counts[a, b] / totals[a]
            out[(si, sj)] = float((p - c[b]) / denom)
    return out


def warren_cowley(structure_or_atoms: Any, species: Sequence[str] = ("Y", "Zr"),
                  cutoff: float = 8.5) -> dict[tuple[str, str], float]:
    """Warren–Cowley SRO_ij for every ordered pair of ``species`` (dimensionless).

    ``structure_or_atoms``: ASE ``Atoms`` or pymatgen ``Structure``; ``cutoff`` in Å.
    Returns ``{("Y","Y"): .., ("Y","Zr"): .., ("Zr","Y"): .., ("Zr","Zr"): ..}``.
    Raises :class:`~mtpkit.errors.UserError` when a requested species is absent.
    """
    species = tuple(species)
    if len(species) < 2 or len(set(species)) != len(species):
        raise UserError(f"SRO needs at least two distinct species, got {species}")
    if cutoff <= 0:
        raise UserError(f"SRO cutoff must be positive, got {cutoff} Å")
    counts, natoms = _pair_counts(structure_or_atoms, species, cutoff)
    return _sro_from_counts(counts, natoms, species)


def warren_cowley_trajectory(frames: Iterable[Any], species: Sequence[str] = ("Y", "Zr"),
                             cutoff: float = 8.5) -> dict[str, Any]:
    """SRO averaged over the frames of a trajectory (streamed; one frame in memory at a time).

    Returns ``{"mean": {pair: value}, "std": {pair: value}, "n_frames": int}`` where
    ``mean``/``std`` are the frame average and the frame-to-frame standard deviation.
    """
    species = tuple(species)
    values: dict[tuple[str, str], list[float]] = {}
    n = 0
    for frame in frames:
        for pair, v in warren_cowley(frame, species, cutoff).items():
            values.setdefault(pair, []).append(v)
        n += 1
    if n == 0:
        raise UserError("SRO trajectory average: the trajectory has no frames")
    mean = {p: float(np.mean(v)) for p, v in values.items()}
    std = {p: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for p, v in values.items()}
    return {"mean": mean, "std": std, "n_frames": n}
