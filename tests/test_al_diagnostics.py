"""`benchmarks/nyzc75-pbe/al_diagnostics.py`: the count behind "the campaign is short of Y sites".

For each species, the parameters only its own sites touch are its radial coefficients as the central
atom, one block per neighbour species within the cutoff, plus its species coefficient; the rank of
those columns over its sites is capped by the number of sites. Checked against a neighbour list.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.neighborlist import neighbor_list
from benchmark_scripts import load_script, rattled_cells

from mtpkit.potentials.mtp_io import read_mtp

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def diagnostics():
    return load_script("al_diagnostics")


def test_species_blocks_match_the_neighbour_species_of_each_central_species(diagnostics):
    mtp = read_mtp(HERE / "data" / "nyzc75_ionic_l08.mtp")
    frames = rattled_cells(6, 3, 0.08)
    blocks = diagnostics.species_blocks(mtp, frames)

    per_pair = mtp.radial_funcs_count * mtp.radial_basis_size
    for s in diagnostics.SPECIES:
        partners: set[str] = set()
        sites = 0
        for a in frames:
            sym = np.array(a.get_chemical_symbols())
            i, j = neighbor_list("ij", a, mtp.max_dist)
            partners.update(sym[j[sym[i] == s]].tolist())
            sites += int((sym == s).sum())
        want = per_pair * len(partners) + 1
        assert blocks[s]["sites"] == sites
        assert blocks[s]["parameters"] == want, (s, sorted(partners))
        assert blocks[s]["rank"] == min(sites, want)
    # one Y per cell: six sites for the Y block, fewer than its parameters
    assert blocks["Y"]["sites"] == 6 < blocks["Y"]["parameters"]
