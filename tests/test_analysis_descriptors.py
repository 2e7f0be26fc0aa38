"""Na site classification, O_oct(t), Cl angular displacement of MCl6 octahedra."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from ase import Atoms

from mtpkit.analysis.octahedra import cl_angular_displacement
from mtpkit.analysis.sites import (
    classify_by_polyhedron,
    classify_by_reference,
    octahedral_occupancy,
    polyhedron_scores,
    reference_sites,
)
from mtpkit.errors import UserError

R = 2.8  # Na–Cl, Å
OCT = R * np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
_rt = R * np.sqrt(4 / 7)  # trigonal prism with square faces and all ligands at distance R
_h = R * np.sqrt(3 / 7)
PRISM = np.array([[_rt * np.cos(p), _rt * np.sin(p), s * _h] for s in (1, -1)
                  for p in np.radians([0, 120, 240])])


def _two_sites(first: np.ndarray, second: np.ndarray) -> Atoms:
    """Na in polyhedron ``first`` at (5,5,5) and in ``second`` at (15,5,5) in a 20x10x10 box."""
    c1, c2 = np.array([5.0, 5, 5]), np.array([15.0, 5, 5])
    pos = np.vstack([c1, c2, c1 + first, c2 + second])
    return Atoms(["Na", "Na"] + ["Cl"] * 12, positions=pos, cell=[20, 10, 10], pbc=True)


def test_polyhedron_classification_ideal_shapes():
    atoms = _two_sites(OCT, PRISM)
    scores = polyhedron_scores(atoms.positions, atoms.cell[:], atoms.get_chemical_symbols())
    assert scores[0] == pytest.approx(180.0)
    assert scores[1] == pytest.approx(np.degrees(np.arccos(-5 / 7)), abs=1e-6)
    assert classify_by_polyhedron(atoms.positions, atoms.cell[:],
                                  atoms.get_chemical_symbols()).tolist() == [True, False]
    # a thermally distorted octahedron stays octahedral
    rng = np.random.default_rng(0)
    noisy = _two_sites(OCT + rng.normal(0, 0.15, OCT.shape), PRISM + rng.normal(0, 0.15, PRISM.shape))
    assert classify_by_polyhedron(noisy.positions, noisy.cell[:],
                                  noisy.get_chemical_symbols()).tolist() == [True, False]


def test_reference_sites_and_occupancy_time_series():
    ref = _two_sites(OCT, PRISM)
    frac, is_oct = reference_sites(ref)
    assert is_oct.tolist() == [True, False]
    # one Na (index 0) sits on the octahedral site for 6 frames, then hops to the prismatic one,
    # the other Na stays on the prismatic site: O_oct = 1/2, then 0
    frames = []
    for k in range(10):
        pos = ref.positions.copy()
        pos[1] += [0.1, -0.1, 0.05]
        if k >= 6:
            pos[0] = pos[1] + [0.2, 0.0, 0.0]
        frames.append(SimpleNamespace(index=k, positions=pos, cell=ref.cell[:]))
    flags, nearest, dist = classify_by_reference(frames[7].positions, ref.cell[:], ref.get_chemical_symbols(),
                                                 frac, is_oct)
    assert flags.tolist() == [False, False] and nearest.tolist() == [1, 1] and dist.max() < 0.35
    occ = octahedral_occupancy(frames, ref.get_chemical_symbols(), method="reference", site_frac=frac,
                               site_is_oct=is_oct, equilibration_fraction=0.5)
    assert occ.o_oct.tolist() == [0.5] * 6 + [0.0] * 4
    assert occ.equilibrated_from == 5 and occ.mean == pytest.approx(0.1)
    with pytest.raises(UserError, match="reference sites"):
        octahedral_occupancy(frames, ref.get_chemical_symbols(), method="reference")
    # per octahedral site: the one octahedral site is full, then empty
    per_site = octahedral_occupancy(frames, ref.get_chemical_symbols(), method="reference", site_frac=frac,
                                    site_is_oct=is_oct, per="site")
    assert per_site.o_oct.tolist() == [1.0] * 6 + [0.0] * 4
    with pytest.raises(UserError, match="method='reference'"):
        octahedral_occupancy(frames, ref.get_chemical_symbols(), per="site")


def test_per_site_occupancy_of_nyzc75_representatives_matches_their_names():
    from mtpkit.analysis.sites import octahedral_site_occupancy
    from mtpkit.structures.representatives import md_box_frame, representative_structures

    frame = md_box_frame()
    ref_na = [i for i, s in enumerate(frame) if s.properties.get("sublattice", "").startswith("Na")]
    site_frac = frame.frac_coords[ref_na]
    site_is_oct = np.array([frame[i].properties["sublattice"] == "Na_oct" for i in ref_na])
    for name, rep in representative_structures().items():
        atoms = rep.structure.to_ase_atoms() if hasattr(rep.structure, "to_ase_atoms") else rep.structure
        nearest = classify_by_reference(atoms.positions, atoms.cell[:], atoms.get_chemical_symbols(),
                                        site_frac, site_is_oct)[1]
        expected = int(name.rsplit("oct", 1)[1]) / 100
        assert octahedral_site_occupancy(nearest, site_is_oct) == pytest.approx(expected), name


def test_nyzc75_has_both_site_kinds(nyzc75_atoms):
    flags = classify_by_polyhedron(nyzc75_atoms.positions, nyzc75_atoms.cell[:],
                                   nyzc75_atoms.get_chemical_symbols())
    assert 0 < flags.sum() < len(flags)


def test_cl_angular_displacement_of_rotating_octahedron():
    theta = np.radians(np.arange(0, 50, 5.0))
    frames = []
    for k, t in enumerate(theta):
        rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
        pos = np.vstack([[6.0, 6, 6], 6.0 + OCT @ rot.T, [[1.0, 1.0, 1.0]]])
        frames.append(SimpleNamespace(index=k, positions=pos, cell=np.eye(3) * 12))
    symbols = ["Zr"] + ["Cl"] * 6 + ["Na"]
    res = cl_angular_displacement(frames, symbols, metals=("Y", "Zr"))
    # rotation about z: the four equatorial Cl turn by theta, the two apical ones not at all
    assert np.allclose(res.mean, np.degrees(theta) * 4 / 6, atol=1e-6)
    assert np.allclose(np.sort(res.angles[-1, 0]), [0, 0] + [45.0] * 4, atol=1e-6)
    assert res.per_octahedron.shape == (10, 1)
    with pytest.raises(UserError, match="no Y/Zr"):
        cl_angular_displacement(frames, ["Na"] * 8)
