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

#: Orderings per cell; derived independently below by Burnside counting over the frame's
#: space group (test_counts_equal_burnside_count_over_the_frame_group) and, in the slow
#: test, by grouping all 880 raw orderings per cell with StructureMatcher.
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
    # deterministic: a re-run gives the same representatives in the same order
    assert [o.name for o in enumerate_orderings(["a"])] == [o.name for o in by_cell["a"]]


def _spglib_site_permutations(frame, symprec: float) -> np.ndarray:
    """Site permutations of the frame's space-group operations, straight from spglib
    (independent of enumerate.frame_permutations and its orbit code)."""
    import spglib

    lattice, frac = frame.lattice.matrix, frame.frac_coords
    kinds = sorted({site.specie.symbol for site in frame})
    numbers = [kinds.index(site.specie.symbol) for site in frame]
    sym = spglib.get_symmetry((lattice, frac, numbers), symprec=symprec)
    perms = []
    for rot, trans in zip(sym["rotations"], sym["translations"]):
        diff = (frac @ rot.T + trans)[:, None, :] - frac[None, :, :]
        diff -= np.round(diff)
        dist = np.linalg.norm(diff @ lattice, axis=2)
        perm = dist.argmin(axis=1)
        assert dist[np.arange(len(frac)), perm].max() < 10 * symprec
        assert sorted(perm.tolist()) == list(range(len(frac)))
        perms.append(perm)
    return np.array(perms)


def _burnside_counts(frame, symprec: float = 1e-3) -> tuple[dict[int, int], int]:
    """Orbits of (1 Y among the metal sites, 3 vacancies among the Na sites) under the frame's
    space group, by Burnside's lemma: #orbits = (1/|G|) sum_g #fixed(g).  An ordering is
    fixed by g when g fixes the Y site and maps the vacancy set onto itself, i.e. the vacancy
    set is a union of g's cycles on the Na sites.  Counted per number of octahedral vacancies
    (g keeps octahedral and prismatic Na sites apart).  Returns ({n_oct_vacant: orbits}, |G|).
    """
    sub = frame.site_properties["sublattice"]
    metals = [i for i, s in enumerate(sub) if s == "M"]
    nas = [i for i, s in enumerate(sub) if s in ("Na_oct", "Na_prism")]
    perms = _spglib_site_permutations(frame, symprec)
    total = np.zeros(4, int)   # index: vacancies on octahedral sites (0-3)
    for perm in perms:
        assert all(sub[perm[i]] == sub[i] for i in metals + nas)
        fixed_metals = sum(1 for i in metals if perm[i] == i)
        # cycles of perm on the Na sites, as (length, on an octahedral site)
        cycles, seen = [], set()
        for start in nas:
            length, i = 0, start
            while i not in seen:
                seen.add(i)
                i = int(perm[i])
                length += 1
            if length:
                cycles.append((length, sub[start] == "Na_oct"))
        # ways[k][m]: unions of cycles holding k sites, m of them octahedral
        ways = np.zeros((4, 4), int)
        ways[0, 0] = 1
        for length, octahedral in cycles:
            new = ways.copy()
            for k in range(4 - length):
                for m in range(4):
                    mm = m + length * octahedral
                    if mm < 4:
                        new[k + length, mm] += ways[k, m]
            ways = new
        total += fixed_metals * ways[3]
    assert all(t % len(perms) == 0 for t in total)
    return {m: int(t) // len(perms) for m, t in enumerate(total)}, len(perms)


def test_counts_equal_burnside_count_over_the_frame_group(orderings):
    from pymatgen.core import Lattice

    frames = {cell: nyzc75_frame(cell) for cell in NYZC75_CELLS}
    for cell, frame in frames.items():
        by_oct, order = _burnside_counts(frame)
        assert order == 8          # 2/m point group x 2 translations of the doubled cell
        # the group (hence the count) does not change with a 100x looser tolerance
        assert _burnside_counts(frame, symprec=0.1)[1] == order
        code = [o for o in orderings if o.cell == cell]
        assert sum(by_oct.values()) == len(code) == EXPECTED_COUNTS[cell]
        assert {m: sum(1 for o in code if 4 - o.n_oct == m) for m in range(4)} == by_oct
    # orderings of different cells are never equivalent: one Y per cell makes the cell the
    # primitive cell of every ordering, and no two of the seven cells are congruent lattices
    lattices: dict[str, Lattice] = {c: f.lattice for c, f in frames.items()}
    for c1, c2 in itertools.combinations(lattices, 2):
        assert lattices[c1].find_mapping(lattices[c2], ltol=0.01, atol=0.5) is None, (c1, c2)


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


def _geometric_invariant(frame, y_site: int, vacancies, distances, cl) -> np.ndarray:
    """An isometry invariant of one raw ordering, from the frame geometry alone: sorted
    minimum-image Y-vacancy and vacancy-vacancy distances and each vacancy's nearest Cl (Å)."""
    sub = frame.site_properties["sublattice"]
    y = [i for i, s in enumerate(sub) if s == "M"][y_site]
    nas = [i for i, s in enumerate(sub) if s in ("Na_oct", "Na_prism")]
    vac = [nas[v] for v in vacancies]
    pairs = [distances[i, j] for i, j in itertools.combinations(vac, 2)]
    return np.concatenate([np.sort(distances[y, vac]), np.sort(pairs),
                           np.sort(distances[np.ix_(vac, cl)].min(axis=1))])


@pytest.mark.slow
@pytest.mark.parametrize("cell", list(NYZC75_CELLS))
def test_structure_matcher_groups_all_raw_orderings_into_the_enumerated_ones(cell):
    """Completeness and distinctness without enumerate's orbit code: StructureMatcher groups
    all 880 raw orderings of the cell (compared within buckets of an exact isometry
    invariant, so equivalent orderings always meet), and each group must hold exactly one
    enumerated representative, as many raw orderings as its multiplicity.  Under a minute a cell."""
    frame = nyzc75_frame(cell)
    distances = frame.lattice.get_all_distances(frame.frac_coords, frame.frac_coords)
    cl = [i for i, s in enumerate(frame.site_properties["sublattice"]) if s == "Cl"]
    keys: list[np.ndarray] = []            # one invariant per bucket, compared within 1e-6 Å
    buckets: list[list[tuple[int, tuple[int, ...]]]] = []
    for y in range(4):
        for vac in itertools.combinations(range(12), 3):
            key = _geometric_invariant(frame, y, vac, distances, cl)
            hit = [k for k, ref in enumerate(keys) if np.abs(ref - key).max() < 1e-6]
            assert len(hit) <= 1
            if not hit:
                keys.append(key)
                buckets.append([])
            buckets[hit[0] if hit else -1].append((y, vac))
    reps = {(o.y_site, o.vacancies): o for o in enumerate_orderings([cell])}
    sm = StructureMatcher()
    n_groups = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for members in buckets:
            structs = [bare(nyzc75_cell(y, vac, cell, frame=frame)) for y, vac in members]
            for group in sm.group_structures(structs):
                raw = [members[next(k for k, st in enumerate(structs) if st is g)] for g in group]
                found = [reps[r] for r in raw if r in reps]
                assert len(found) == 1, (cell, raw)
                assert found[0].multiplicity == len(raw)
                n_groups += 1
    assert n_groups == len(reps) == EXPECTED_COUNTS[cell]
