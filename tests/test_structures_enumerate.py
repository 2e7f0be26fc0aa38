"""NYZC75 ordering enumeration: counts, deduplication vs StructureMatcher, Ewald, SRO/TM and Na tags."""

from __future__ import annotations

import itertools
import random
import warnings

import numpy as np
import pytest
from pymatgen.analysis.ewald import EwaldSummation
from pymatgen.analysis.structure_matcher import StructureMatcher

from mtpkit.structures.builders import NYZC75_CELLS, bare, nyzc75_cell, nyzc75_frame
from mtpkit.structures.enumerate import (
    OXIDATION_STATES,
    enumerate_orderings,
    tm_label,
    verify_with_structure_matcher,
    y_network_dimension,
)
from mtpkit.structures.sro import warren_cowley

EXPECTED_COUNTS = {"a": 115, "b": 115, "c": 115, "ab": 120, "ac": 110, "bc": 110, "abc": 115}


@pytest.fixture(scope="module")
def orderings():
    return enumerate_orderings()


def _ewald(structure) -> float:
    st = bare(structure)
    st.add_oxidation_state_by_element(OXIDATION_STATES)
    return EwaldSummation(st).total_energy


def test_counts_per_cell_and_total(orderings):
    by_cell = {c: [o for o in orderings if o.cell == c] for c in NYZC75_CELLS}
    assert {c: len(v) for c, v in by_cell.items()} == EXPECTED_COUNTS
    assert len(orderings) == 800
    for members in by_cell.values():      # orbits partition the 4 * C(12,3) = 880 raw orderings
        assert sum(o.multiplicity for o in members) == 880
        assert all(o.multiplicity in (1, 2, 4, 8) for o in members)
    assert len({(o.cell, o.name) for o in orderings}) == 800
    assert len(enumerate_orderings(["a"])) == 115          # stable on a re-run


def test_ewald_energy_equals_pymatgen_ewald_summation(orderings):
    rng = random.Random(1)
    for o in rng.sample(orderings, 5):
        assert o.ewald == pytest.approx(_ewald(o.structure()), abs=1e-6)


def test_distinct_orderings_are_distinct_for_structure_matcher(orderings):
    # every pair with equal Ewald energy (the only candidates for equivalence) is compared
    assert verify_with_structure_matcher(orderings) == []


def test_raw_orderings_match_exactly_one_representative():
    cell = "a"
    frame = nyzc75_frame(cell)
    reps = enumerate_orderings([cell])
    sm = StructureMatcher()
    rng = random.Random(7)
    raw = [(y, v) for y in range(4) for v in itertools.combinations(range(12), 3)]
    for y, vac in rng.sample(raw, 12):
        st = nyzc75_cell(y, vac, cell, frame=frame)
        e = _ewald(st)
        candidates = [o for o in reps if abs(o.ewald - e) < 1e-6]
        matches = [o for o in candidates if sm.fit(bare(st), bare(o.structure(frame)))]
        assert len(matches) == 1


def test_sro_values_tm_labels_and_y_network(orderings):
    expected = {"c": (1 / 9, 2, "layered-TM"), "a": (-1 / 9, 1, "mixed-TM"),
                "b": (-1 / 9, 1, "mixed-TM"), "ac": (-1 / 9, 1, "mixed-TM"),
                "bc": (-1 / 9, 1, "mixed-TM"), "ab": (-1 / 3, 0, "mixed-TM"),
                "abc": (-1 / 3, 0, "mixed-TM")}
    rng = random.Random(3)
    for cell, (sro_yy, ynet, label) in expected.items():
        members = [o for o in orderings if o.cell == cell]
        for o in members:
            assert o.sro[("Y", "Y")] == pytest.approx(sro_yy)
            assert o.sro[("Y", "Zr")] == pytest.approx(3 * sro_yy)   # c_Y = 1/4
            assert o.y_network == ynet and o.tm_label == label
            assert o.tm_label == tm_label(o.sro, o.y_network)
        # recomputed on the ordering's own structure (not only the per-cell probe)
        o = rng.choice(members)
        st = o.structure()
        assert warren_cowley(st, ("Y", "Zr"), 8.5) == pytest.approx(o.sro)
        assert y_network_dimension(st) == ynet
        assert (o.sro[("Y", "Y")] > 0) == (o.tm_label == "layered-TM")


def test_tm_label_rule_edges():
    sro = {("Y", "Y"): 0.0, ("Y", "Zr"): 0.0}
    assert tm_label(sro, 2) == "unclassified"
    assert tm_label({("Y", "Y"): 0.2}, 3) == "unclassified"   # clustered but not in sheets
    assert tm_label({("Y", "Y"): 0.2}, 2) == "layered-TM"
    assert tm_label({("Y", "Y"): -0.1}, 1) == "mixed-TM"


def test_octahedral_occupancy_and_na_counts(orderings):
    counts = {}
    for o in orderings:
        assert o.n_oct + o.n_prism == 9 and 1 <= o.n_oct <= 4 and 5 <= o.n_prism <= 8
        assert o.oct_occupancy == 25 * o.n_oct
        counts[o.oct_occupancy] = counts.get(o.oct_occupancy, 0) + o.multiplicity
    # raw orderings: 3, 2, 1, 0 vacancies among the 4 octahedral sites, per cell x 4 Y choices
    per_cell = {25: 4 * 4, 50: 4 * 6 * 8, 75: 4 * 4 * 28, 100: 4 * 56}
    assert counts == {k: 7 * v for k, v in per_cell.items()}
    o = orderings[0]
    sub = o.structure().site_properties["sublattice"]
    assert sub.count("Na_oct") == o.n_oct and sub.count("Na_prism") == o.n_prism


def test_y_network_dimension_of_simple_lattices():
    from ase import Atoms

    sc = Atoms("Y", cell=np.eye(3) * 7.0, pbc=True)
    assert y_network_dimension(sc, 7.5) == 3
    sheet = Atoms("Y", cell=np.diag([7.0, 7.0, 20.0]), pbc=True)
    assert y_network_dimension(sheet, 7.5) == 2
    assert y_network_dimension(Atoms("Y", cell=np.eye(3) * 10.0, pbc=True), 7.5) == 0


@pytest.mark.slow
def test_full_pairwise_structure_matcher_on_cell_a():
    reps = enumerate_orderings(["a"])
    frame = nyzc75_frame("a")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        groups = StructureMatcher().group_structures([bare(o.structure(frame)) for o in reps])
    assert len(groups) == 115
