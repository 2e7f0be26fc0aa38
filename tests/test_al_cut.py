"""Cells cut from a production-size box around one atom (mtpkit.active_learning.cut)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, make_supercell
from ase.geometry import get_distances

from mtpkit.active_learning.cut import composition_of, cut_tile, supercell_matrix


def tile() -> Atoms:
    """A 63-atom NaCl-like tile with a vacancy and a substitution (so its composition is not trivial)."""
    t = bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat((2, 2, 2))
    del t[3]
    t.numbers[5] = 19  # K on a Na site
    return t


def sorted_distances(atoms: Atoms) -> np.ndarray:
    _, d = get_distances(atoms.positions, cell=atoms.cell, pbc=True)
    return np.sort(d.ravel())


@pytest.mark.parametrize("matrix", [np.diag([2, 2, 2]), np.array([[1, 1, 0], [-1, 1, 0], [0, 0, 2]])])
def test_a_perfect_supercell_gives_the_tile_back(matrix):
    t = tile()
    box = make_supercell(t, matrix)
    assert np.array_equal(supercell_matrix(box.cell, t.cell), matrix)
    for centre in (0, 7, len(box) - 1):
        cut = cut_tile(box, centre, matrix, composition_of(t), min_distance=1.0)
        assert cut is not None and composition_of(cut) == composition_of(t)
        assert np.allclose(cut.cell.array, t.cell.array)
        # a translated copy of the tile: the same multiset of periodic distances
        assert np.allclose(sorted_distances(cut), sorted_distances(t), atol=1e-8)
        assert cut.numbers[cut.info["cut_centre"]] == box.numbers[centre]
        assert cut.arrays["box_index"][cut.info["cut_centre"]] == centre


def test_the_centre_keeps_the_boxs_near_neighbours():
    t = tile()
    matrix = np.diag([2, 2, 2])
    box = make_supercell(t, matrix)
    rng = np.random.default_rng(4)
    box.positions += rng.normal(scale=0.1, size=box.positions.shape)
    box.set_cell(box.cell.array @ (np.eye(3) + rng.normal(scale=0.01, size=(3, 3))), scale_atoms=True)
    centre = 11
    cut = cut_tile(box, centre, matrix, composition_of(t), min_distance=1.0)
    assert cut is not None
    c = cut.info["cut_centre"]
    # the centre's neighbours closer than the window's nearest face are the box's, at the box's distances
    heights = 1.0 / np.linalg.norm(np.linalg.inv(cut.cell.array), axis=0)
    f = cut.get_scaled_positions()[c]
    r_safe = (np.minimum(f, 1.0 - f) * heights).min()
    assert r_safe >= 0.25 * heights.min() - 1e-9  # the centre stays in the window's middle half
    d_box = box.get_distances(centre, range(len(box)), mic=True)
    d_cut = cut.get_distances(c, range(len(cut)), mic=True)
    near_box = np.sort(d_box[(d_box > 0) & (d_box < r_safe)])
    near_cut = np.sort(d_cut[(d_cut > 0) & (d_cut < r_safe)])
    assert len(near_box) >= 6 and np.allclose(near_box, near_cut, atol=1e-9)


def test_no_window_with_the_composition_gives_none():
    t = tile()
    box = make_supercell(t, np.diag([2, 2, 2]))
    wrong = composition_of(t)
    wrong[11] += 1
    assert cut_tile(box, 0, np.diag([2, 2, 2]), wrong, min_distance=1.0) is None
    # and no window whose atoms stay min_distance apart
    assert cut_tile(box, 0, np.diag([2, 2, 2]), composition_of(t), min_distance=4.5) is None


def test_a_box_that_is_not_a_supercell_is_refused():
    t = tile()
    box = t.repeat((2, 2, 2))
    box.set_cell(box.cell.array * [1.25, 1.0, 1.0], scale_atoms=True)
    with pytest.raises(ValueError, match="not a supercell of the tile"):
        supercell_matrix(box.cell, t.cell)
