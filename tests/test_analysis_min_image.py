"""Minimum image in strongly sheared triclinic cells (tilt up to LAMMPS's limit of half the box length)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from ase.geometry import find_mic

from mtpkit.analysis.framework import _nearest_centre
from mtpkit.analysis.sites import classify_by_polyhedron, min_image, polyhedron_scores

L = 7.0
#: LAMMPS keeps |xy| ≤ lx/2, |xz| ≤ lx/2, |yz| ≤ ly/2: these cells sit at that limit.
SHEARED = [np.array([[L, 0, 0], [L / 2, L, 0], [L / 2, L / 2, L]]),
           np.array([[L, 0, 0], [-L / 2, L, 0], [L / 2, -L / 2, L]]),
           np.array([[L, 0, 0], [L / 2, 1.2 * L, 0], [-L / 2, 0.6 * L, 0.9 * L]])]


def _rounding(v: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """The old method: round the fractional coordinates in the cell as given."""
    f = v @ np.linalg.inv(cell)
    return (f - np.round(f)) @ cell


def _brute_force_lengths(v: np.ndarray, cell: np.ndarray, reach: int = 6) -> np.ndarray:
    """Shortest |v + n·cell| over all integer n with |n_i| ≤ reach (from the rounded image)."""
    shifts = np.array(list(itertools.product(range(-reach, reach + 1), repeat=3))) @ cell
    return np.linalg.norm(_rounding(v, cell)[:, None, :] + shifts[None], axis=2).min(axis=1)


@pytest.mark.parametrize("cell", [*SHEARED, np.diag([7.0, 8.0, 9.0]),
                                  np.array([[L, 0, 0], [3 * L, L, 0], [-5 * L, 2 * L, L]])])
def test_min_image_is_the_shortest_image_in_any_cell(cell):
    rng = np.random.default_rng(0)
    v = rng.uniform(-3 * L, 3 * L, (1000, 3))
    got = min_image(v, cell)
    assert np.allclose(np.linalg.norm(got, axis=1), find_mic(v, cell)[1], rtol=0, atol=1e-9)
    if abs(cell[2, 0]) <= cell[0, 0]:  # the brute-force search reaches far enough
        assert np.allclose(np.linalg.norm(got, axis=1), _brute_force_lengths(v, cell), rtol=0, atol=1e-9)
    f = (got - v) @ np.linalg.inv(cell)  # moved by lattice vectors only
    assert np.allclose(f, np.round(f), atol=1e-9)
    assert np.allclose(min_image(v.reshape(50, 20, 3), cell), got.reshape(50, 20, 3))


def test_rounding_alone_picks_longer_images_at_the_tilt_limit():
    rng = np.random.default_rng(1)
    v = rng.uniform(-2 * L, 2 * L, (1000, 3))
    cell = SHEARED[0]
    old = np.linalg.norm(_rounding(v, cell), axis=1)
    best = _brute_force_lengths(v, cell)
    wrong = old > best + 1e-9
    assert wrong.mean() > 0.15  # what the old code did: a quarter of all vectors
    assert best[wrong].min() < 0.5 * L  # also vectors shorter than half the box (from 0.37 L: Na–Cl in a 7 Å cell)
    assert np.allclose(np.linalg.norm(min_image(v, cell), axis=1), best, atol=1e-9)


def _rock_salt(cell_in_d: list[list[int]], d: float = 2.82) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Rock-salt NaCl (Na–Cl distance d Å) in a cell whose rows are integer multiples of d."""
    cell = np.array(cell_in_d, float) * d
    inv = np.linalg.inv(cell)
    sites = {}
    for ijk in itertools.product(range(-8, 9), repeat=3):
        f = np.round((np.array(ijk) * d @ inv) % 1.0, 8) % 1.0
        sites[tuple(f)] = "Na" if sum(ijk) % 2 == 0 else "Cl"
    frac = np.array(sorted(sites))
    return frac @ cell, cell, [sites[tuple(f)] for f in frac]


def test_rock_salt_octahedra_in_a_cell_at_the_tilt_limit():
    # 16 atoms; a = 4d, b = (2d, 2d, 0), c = (2d, 0, 2d): xy = xz = lx/2 (the LAMMPS limit)
    pos, cell, sym = _rock_salt([[4, 0, 0], [2, 2, 0], [2, 0, 2]])
    assert len(sym) == 16 and abs(cell[1, 0]) == cell[0, 0] / 2
    scores = polyhedron_scores(pos, cell, sym)
    assert np.allclose(scores, 180.0, atol=1e-6)  # rounding gave 143-153°: "prisms"
    assert classify_by_polyhedron(pos, cell, sym).all()
    # the same crystal in the orthogonal 64-atom cell gives the same answer
    pos_o, cell_o, sym_o = _rock_salt([[4, 0, 0], [0, 4, 0], [0, 0, 4]])
    assert np.allclose(polyhedron_scores(pos_o, cell_o, sym_o), 180.0, atol=1e-6)


def test_nearest_centre_in_a_sheared_cell():
    rng = np.random.default_rng(2)
    cell = SHEARED[0]
    n_frames, centres, ligands = 6, np.arange(6), np.arange(6, 24)
    x = rng.uniform(0, 1, (n_frames, 24, 3)) @ cell
    h = np.broadcast_to(cell, (n_frames, 3, 3))
    got = _nearest_centre(x, h, ligands, centres)
    for k in range(n_frames):
        d = x[k, ligands][:, None, :] - x[k, centres][None, :, :]
        best = _brute_force_lengths(d.reshape(-1, 3), cell).reshape(len(ligands), len(centres))
        assert np.allclose(best[np.arange(len(ligands)), got[k]], best.min(axis=1), atol=1e-9)
        # the old rounding picks a farther centre for some ligand in these frames
    old = np.array([np.argmin(np.linalg.norm(_rounding(x[k, ligands][:, None] - x[k, centres][None], cell),
                                             axis=-1), axis=1) for k in range(n_frames)])
    assert (old != got).any()
