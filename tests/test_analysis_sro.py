"""Warren–Cowley SRO: signs for ordered arrangements, periodic images, input types."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.io import read

from mtpkit.errors import UserError
from mtpkit.structures.sro import warren_cowley, warren_cowley_trajectory


def _nyzc_doubled(y_slab: str):
    """NYZC75 cell doubled along a; its 8 metal sites get 4 Y + 4 Zr.

    ``layered``: Y fills the metal sites of one half of the doubled cell (a Y slab and a
    Zr slab); ``mixed``: Y on the z≈1/2 metal sites and Zr on the z≈0 ones, so every
    metal's nearest metal neighbours are of the other kind.
    """
    from pathlib import Path

    atoms = read(Path(__file__).parent / "data" / "NYZC75_P21n_37atoms_CHGNet-relaxed.cif") * (2, 1, 1)
    symbols = atoms.get_chemical_symbols()
    frac = atoms.get_scaled_positions()
    metal = [i for i, s in enumerate(symbols) if s in ("Y", "Zr")]
    assert len(metal) == 8
    for i in metal:
        y = (0.1 < (frac[i, 0] + 0.02) % 1.0 < 0.55 if y_slab == "layered"  # x ≈ 1/8, 1/4, 3/8, 1/2
             else abs(frac[i, 2] - 0.5) < 0.25)
        symbols[i] = "Y" if y else "Zr"
    atoms.set_chemical_symbols(symbols)
    assert symbols.count("Y") == 4
    return atoms


def test_sro_layered_positive_mixed_negative_nyzc75():
    layered = warren_cowley(_nyzc_doubled("layered"), ("Y", "Zr"), 8.5)
    mixed = warren_cowley(_nyzc_doubled("mixed"), ("Y", "Zr"), 8.5)
    for s in ("Y", "Zr"):
        assert layered[(s, s)] > 0.2, layered
        assert mixed[(s, s)] < -0.2, mixed
    assert set(layered) == {("Y", "Y"), ("Y", "Zr"), ("Zr", "Y"), ("Zr", "Zr")}


def _cubic(n: int, a: float, rule) -> Atoms:
    grid = np.array([(i, j, k) for i in range(n) for j in range(n) for k in range(n)])
    symbols = ["Y" if rule(*g) else "Zr" for g in grid]
    return Atoms(symbols, positions=grid * a, cell=[n * a] * 3, pbc=True)


def test_sro_simple_cubic_checkerboard_and_slabs_exact():
    a = 4.0
    # first shell only (6 neighbours): rock-salt ordering has no like neighbours -> p_YY = 0
    checker = _cubic(4, a, lambda i, j, k: (i + j + k) % 2 == 0)
    r = warren_cowley(checker, ("Y", "Zr"), cutoff=1.1 * a)
    assert r[("Y", "Y")] == pytest.approx((0.0 - 0.5) / (1 - 0.5))
    assert r[("Y", "Zr")] == pytest.approx((1.0 - 0.5) / (0 - 0.5))
    # two slabs of 2 planes each: first shell of each atom = 4 in-plane like + 1 like + 1 unlike
    slabs = _cubic(4, a, lambda i, j, k: i < 2)
    r = warren_cowley(slabs, ("Y", "Zr"), cutoff=1.1 * a)
    assert r[("Y", "Y")] == pytest.approx((5 / 6 - 0.5) / 0.5)
    assert r[("Zr", "Zr")] == pytest.approx((5 / 6 - 0.5) / 0.5)


def test_sro_periodic_images_counted_and_other_species_ignored():
    # a 2x1x1 cell with cutoff larger than the cell: neighbours are only periodic images
    atoms = Atoms("YZrNaCl", positions=[[0, 0, 0], [3, 0, 0], [1.5, 1, 1], [4.5, 1, 1]],
                  cell=[6, 6, 6], pbc=True)
    r = warren_cowley(atoms, ("Y", "Zr"), cutoff=3.5)
    # each metal has 2 unlike neighbours at 3 Å (along x) and none like within 3.5 Å
    assert r[("Y", "Y")] == pytest.approx(-1.0)
    r_big = warren_cowley(atoms, ("Y", "Zr"), cutoff=6.2)
    # now the self images at 6 Å (6 of them) count as like neighbours, the unlike
    # images at 3 Å (2) are still there as well as those within 6.2 Å: sqrt(3^2+6^2)>6.2
    assert r_big[("Y", "Y")] == pytest.approx((6 / 8 - 0.5) / 0.5)


def test_sro_random_near_zero_and_pymatgen_matches_ase():
    from pymatgen.io.ase import AseAtomsAdaptor

    rng = np.random.default_rng(0)
    atoms = _cubic(8, 4.0, lambda i, j, k: False)
    symbols = np.array(["Zr"] * len(atoms))
    symbols[rng.choice(len(atoms), len(atoms) // 2, replace=False)] = "Y"
    atoms.set_chemical_symbols(symbols.tolist())
    r = warren_cowley(atoms, ("Y", "Zr"), cutoff=8.5)
    assert abs(r[("Y", "Y")]) < 0.05
    structure = AseAtomsAdaptor.get_structure(atoms)
    r_pmg = warren_cowley(structure, ("Y", "Zr"), cutoff=8.5)
    for pair in r:
        assert r_pmg[pair] == pytest.approx(r[pair])


def test_sro_trajectory_average_and_errors():
    layered = _nyzc_doubled("layered")
    mixed = _nyzc_doubled("mixed")
    out = warren_cowley_trajectory([layered, mixed, layered], ("Y", "Zr"), 8.5)
    ly = warren_cowley(layered)[("Y", "Y")]
    mx = warren_cowley(mixed)[("Y", "Y")]
    assert out["n_frames"] == 3
    assert out["mean"][("Y", "Y")] == pytest.approx((2 * ly + mx) / 3)
    assert out["std"][("Y", "Y")] > 0
    with pytest.raises(UserError, match="not present"):
        warren_cowley(Atoms("NaCl", positions=[[0, 0, 0], [2, 0, 0]], cell=[4] * 3, pbc=True))
    with pytest.raises(UserError, match="no frames"):
        warren_cowley_trajectory([])
