"""Builders of Na–Y–Zr–Cl structures: geometry against the shared reference CIFs and bond lengths."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from mtpkit.errors import UserError
from mtpkit.structures.builders import (
    NYZC75_CELLS,
    bare,
    na3ycl6_p21n,
    nyzc75_cell,
    nyzc75_frame,
    to_atoms,
)
from mtpkit.structures.catalog import MissingStructureDataError, available_structures, build

TIGHT = dict(ltol=0.01, stol=0.01, angle_tol=0.1, primitive_cell=False, scale=False)


def _distances(st, centre: str, ligand: str, rmax: float = 3.6, sublattice: str | None = None):
    """Per centre atom, sorted centre–ligand distances (Å) within rmax."""
    sub = st.site_properties.get("sublattice")
    out = []
    for i, site in enumerate(st):
        if site.specie.symbol != centre or (sublattice and sub[i] != sublattice):
            continue
        out.append(sorted(n.nn_distance for n in st.get_neighbors(site, rmax)
                          if n.specie.symbol == ligand))
    return out


def test_na3ycl6_p21n_matches_shared_cif_and_space_group(data_dir):
    st = na3ycl6_p21n()
    assert st.composition.reduced_formula == "Na3YCl6" and len(st) == 20
    assert SpacegroupAnalyzer(st, symprec=1e-3).get_space_group_number() == 14
    a, b, c = st.lattice.abc
    assert (a, b, c) == pytest.approx((6.927, 7.289, 10.117))
    assert st.lattice.beta == pytest.approx(90.82)
    ref = Structure.from_file(data_dir / "Na3YCl6_P21n.cif")
    assert StructureMatcher(**TIGHT).fit(bare(st), ref)
    sub = st.site_properties["sublattice"]
    assert sub.count("M") == 2 and sub.count("Na_oct") == 2 and sub.count("Na_prism") == 4


def test_na3ycl6_internal_coordinates_are_the_readme_ones():
    # README (rounded to 3 decimals): Na2 (0.529,-0.083,0.234) Cl1 (0.146,0.070,0.239)
    # Cl2 (-0.318,0.177,0.062) Cl3 (0.170,0.303,-0.086); they must be orbit members.
    st = na3ycl6_p21n()
    readme = {"Na": (0.529, -0.083, 0.234), "Cl1": (0.146, 0.070, 0.239),
              "Cl2": (-0.318, 0.177, 0.062), "Cl3": (0.170, 0.303, -0.086)}
    for target in readme.values():
        d = st.frac_coords - np.array(target)
        d -= np.round(d)
        assert np.abs(d).max(axis=1).min() < 1.1e-3


def test_bond_lengths_in_na3ycl6():
    st = na3ycl6_p21n()
    ycl = _distances(st, "Y", "Cl", 3.2)
    assert all(len(d) == 6 for d in ycl)
    assert 2.6 <= np.min(ycl) and np.max(ycl) <= 2.7            # Y–Cl ≈ 2.6–2.7 Å
    oct_ = _distances(st, "Na", "Cl", 3.2, sublattice="Na_oct")
    assert all(len(d) == 6 for d in oct_)
    assert 2.7 <= np.min(oct_) and np.max(oct_) <= 2.9          # octahedral Na–Cl ≈ 2.8 Å
    prism = [d[:6] for d in _distances(st, "Na", "Cl", 3.6, sublattice="Na_prism")]
    assert all(len(d) == 6 for d in prism)
    assert 2.75 <= np.mean(prism) <= 3.0                         # prismatic Na–Cl ≈ 2.8–3.0 Å
    assert np.min(prism) > 2.7


@pytest.mark.parametrize("cell", sorted(NYZC75_CELLS))
def test_nyzc75_frames_hold_one_37_atom_cell(cell):
    parent = na3ycl6_p21n()
    fr = nyzc75_frame(cell, parent)
    sub = fr.site_properties["sublattice"]
    assert len(fr) == 40
    assert [sub.count(k) for k in ("M", "Na_oct", "Na_prism", "Cl")] == [4, 4, 8, 24]
    assert fr.volume == pytest.approx(2 * parent.volume)
    st = nyzc75_cell(1, (0, 5, 11), cell, frame=fr)
    assert st.composition.formula == "Na9 Y1 Zr3 Cl24"
    ox = {"Na": 1, "Y": 3, "Zr": 4, "Cl": -1}
    assert sum(ox[s.specie.symbol] for s in st) == 0


def test_nyzc75_default_matches_shared_37_atom_cif(data_dir):
    st = build("NYZC75-P2_1/n")
    ref = Structure.from_file(data_dir / "NYZC75_P21n_37atoms.cif")
    assert len(st) == 37 and st.composition == ref.composition
    assert StructureMatcher(**TIGHT).fit(bare(st), ref)
    assert StructureMatcher().fit(bare(st), ref)
    # all three vacancies on prismatic sites (octahedral occupancy 100 %), as in the CIF
    assert st.site_properties["sublattice"].count("Na_oct") == 4


def test_zr_cl_unrelaxed_vs_relaxed_reference(data_dir):
    """Unrelaxed substituted cell: Zr sits in the Y octahedron (2.64–2.66 Å);
    the shared CHGNet-relaxed cell shrinks Zr–Cl towards ≈ 2.45–2.55 Å."""
    st = build("NYZC75-P2_1/n")
    zr = np.array(_distances(st, "Zr", "Cl", 3.2))
    y = np.array(_distances(st, "Y", "Cl", 3.2))
    assert zr.shape == (3, 6) and y.shape == (1, 6)
    assert 2.63 <= zr.min() and zr.max() <= 2.67
    relaxed = Structure.from_file(data_dir / "NYZC75_P21n_37atoms_CHGNet-relaxed.cif")
    zr_r = np.array(_distances(relaxed, "Zr", "Cl", 3.2))
    y_r = np.array(_distances(relaxed, "Y", "Cl", 3.2))
    assert zr_r.shape == (3, 6)
    assert 2.40 <= zr_r.min() and zr_r.max() <= 2.58
    assert 2.58 <= y_r.min() and y_r.max() <= 2.72
    assert zr_r.mean() < y_r.mean() - 0.1


@pytest.mark.parametrize("name", ["Na3YCl6-R-3", "Na2ZrCl6-P-3m1", "Na2ZrCl6-P2_1/n"])
def test_structures_without_published_coordinates_raise(name):
    assert available_structures()[name] is False
    with pytest.raises(MissingStructureDataError, match="published") as err:
        build(name)
    assert isinstance(err.value, NotImplementedError)
    assert name in str(err.value)


def test_unknown_structure_and_bad_indices_are_user_errors():
    with pytest.raises(UserError, match="unknown structure"):
        build("Na3YCl6-Fm-3m")
    with pytest.raises(UserError, match="unknown NYZC75 cell"):
        nyzc75_frame("z")
    with pytest.raises(UserError, match="three distinct"):
        nyzc75_cell(0, (1, 1, 2))
    with pytest.raises(UserError, match="y_site"):
        nyzc75_cell(4, (1, 2, 3))


def test_to_atoms_keeps_sublattice():
    st = build("NYZC75-P2_1/n")
    atoms = to_atoms(st)
    assert len(atoms) == 37 and atoms.get_chemical_formula(mode="hill") == "Cl24Na9YZr3"
    assert list(atoms.arrays["sublattice"]) == st.site_properties["sublattice"]
    assert np.allclose(atoms.cell.cellpar(), [13.854, 7.289, 10.117, 90, 90.82, 90])
