"""The 8 representative NYZC75 MD boxes: names, sizes, composition, Na sites, SRO classes, files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pymatgen.core import Structure

from mtpkit.structures.builders import na3ycl6_p21n
from mtpkit.structures.enumerate import OXIDATION_STATES, enumerate_orderings, tm_label, y_network_dimension
from mtpkit.structures.representatives import (
    md_box_frame,
    representative_orderings,
    representative_structures,
    save_representatives,
)
from mtpkit.structures.sro import warren_cowley

NAMES = [f"{tm}_oct{occ}" for tm in ("layered-TM", "mixed-TM") for occ in (25, 50, 75, 100)]


@pytest.fixture(scope="module")
def orderings():
    return enumerate_orderings()


@pytest.fixture(scope="module")
def reps(orderings):
    return representative_structures(orderings)


def test_names_sizes_composition_and_box(reps):
    assert list(reps) == NAMES
    parent = na3ycl6_p21n()
    box = np.diag([4, 2, 2]) @ parent.lattice.matrix
    for rep in reps.values():
        st = rep.structure
        assert len(st) == 296
        assert st.composition.formula == "Na72 Y8 Zr24 Cl192"
        assert sum(OXIDATION_STATES[s.specie.symbol] for s in st) == 0
        assert np.allclose(st.lattice.matrix, box, atol=1e-8)


def test_octahedral_and_prismatic_na_counts(reps):
    for rep in reps.values():
        sub = rep.structure.site_properties["sublattice"]
        n_oct = rep.oct_occupancy // 25
        assert sub.count("Na_oct") == 8 * n_oct          # 8 cells x occupied octahedral sites
        assert sub.count("Na_prism") == 72 - 8 * n_oct
        assert 100 * sub.count("Na_oct") / 32 == rep.oct_occupancy


def test_tm_classes_from_sro_of_the_md_box(reps):
    for name, rep in reps.items():
        sro = warren_cowley(rep.structure, ("Y", "Zr"), 8.5)
        assert sro == pytest.approx(rep.ordering.sro)      # tiling keeps the 37-atom SRO
        label = tm_label(sro, y_network_dimension(rep.structure))
        assert label == rep.tm_label == name.split("_")[0]
        if label == "layered-TM":
            assert sro[("Y", "Y")] == pytest.approx(1 / 9)
        else:
            assert sro[("Y", "Y")] == pytest.approx(-1 / 3)   # most mixed: isolated Y
    # one TM arrangement per class
    for tm in ("layered-TM", "mixed-TM"):
        assert len({r.ordering.cell for r in reps.values() if r.tm_label == tm}) == 1


def test_each_is_the_lowest_ewald_in_its_cell_and_occupancy(orderings):
    chosen = representative_orderings(orderings)
    for o in chosen.values():
        pool = [p for p in orderings if p.cell == o.cell and p.oct_occupancy == o.oct_occupancy]
        assert o.ewald == min(p.ewald for p in pool)


def test_boxes_sit_on_the_shared_md_frame_without_overlaps(reps):
    frame = md_box_frame()
    assert len(frame) == 320
    assert frame.site_properties["sublattice"].count("Na_oct") == 32
    fr = frame.frac_coords
    for rep in list(reps.values())[::3]:
        st = rep.structure
        d = st.frac_coords[:, None, :] - fr[None, :, :]
        d -= np.round(d)
        nearest = np.abs(d).max(axis=2).argmin(axis=1)
        assert np.abs(d[np.arange(len(st)), nearest]).max() < 1e-6
        fsub = np.array(frame.site_properties["sublattice"])[nearest]
        assert list(fsub) == st.site_properties["sublattice"]
        dm = st.distance_matrix + np.eye(len(st)) * 10
        assert dm.min() > 2.6


def test_save_representatives_writes_files_atomically(tmp_path, reps):
    path = save_representatives(tmp_path / "reps", representatives=reps)
    summary = json.loads(path.read_text())
    assert sorted(summary) == sorted(NAMES)
    assert all(v["n_atoms"] == 296 for v in summary.values())
    assert summary["layered-TM_oct25"]["oct_occupancy_percent"] == 25
    st = Structure.from_file(tmp_path / "reps" / "mixed-TM_oct100.cif")
    assert len(st) == 296
    assert not [p for p in (tmp_path / "reps").iterdir() if p.name.startswith(".")]
