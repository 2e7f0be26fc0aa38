"""pair_style mtp (LAMMPS plugin) against the Python core on triclinic NYZC-like cells."""

from __future__ import annotations

import numpy as np
import pytest
from _md_support import MOTEP_FIT, NYZC_SPECIES, core_efs, lammps_with_plugin, nyzc_cell, synthetic_mtp


@pytest.fixture(scope="module")
def level16_potential(tmp_path_factory, motep_data):
    from mtpkit.potentials.mtp_io import write_mtp

    mtp = synthetic_mtp(motep_data / "fitting" / "crystals" / "cubic" / "16" / "initial.mtp")
    path = tmp_path_factory.mktemp("pot") / "syn16.mtp"
    write_mtp(path, mtp)
    return mtp, path


def _lammps_results(lmp, n):
    pe = lmp.get_thermo("pe")
    f = lmp.numpy.extract_atom("f")[:n].copy()
    ids = lmp.numpy.extract_atom("id")[:n]
    order = np.argsort(ids)
    press = lmp.numpy.extract_compute("thermo_press", 0, 1)  # xx yy zz xy xz yz (bar)
    eatom = lmp.numpy.extract_compute("pe_atom", 1, 1)[:n][order]
    vatom = lmp.numpy.extract_compute("v_atom", 1, 2)[:n][order]  # -virial/volume... in bar*A^3
    return pe, f[order], np.array(press), eatom, vatom


@pytest.mark.parametrize("newton", ["on", "off"])
def test_plugin_matches_core_triclinic(level16_potential, data_dir, tmp_path, newton):
    mtp, path = level16_potential
    atoms = nyzc_cell(data_dir, rattle=0.05)
    assert not np.allclose(atoms.cell.angles(), 90.0)  # monoclinic
    lmp, latoms = lammps_with_plugin(path, atoms, NYZC_SPECIES, newton=newton, workdir=tmp_path)
    pe, f, press, eatom, vatom = _lammps_results(lmp, len(atoms))
    ref = core_efs(mtp, latoms, NYZC_SPECIES)
    assert abs(pe - ref.energy) <= 1e-10 * max(1.0, abs(ref.energy))
    assert np.abs(f - ref.forces).max() <= 1e-10
    np.testing.assert_allclose(eatom, ref.site_energies, rtol=0, atol=1e-10)
    # LAMMPS pressure tensor (bar) -> virial (eV): W = P V / nktv2p, minus nothing (T = 0)
    nktv2p = 1.6021765e6
    vol = latoms.get_volume()
    w = press * vol / nktv2p
    W = ref.virial
    ref6 = np.array([W[0, 0], W[1, 1], W[2, 2], W[0, 1], W[0, 2], W[1, 2]])
    assert np.abs(w - ref6).max() <= 1e-10 * max(1.0, np.abs(ref6).max())
    # per-atom virials (stress/atom gives -W_i in bar*Å^3) sum to the global virial
    wsum = -vatom.sum(axis=0) / nktv2p
    assert np.abs(wsum - ref6).max() <= 1e-9 * max(1.0, np.abs(ref6).max())
    lmp.close()


@pytest.mark.parametrize("newton", ["on", "off"])
def test_plugin_threads_give_identical_results(level16_potential, data_dir, tmp_path, newton):
    """2 OpenMP threads: energies, forces and per-atom virials bitwise equal to 1 thread."""
    _mtp, path = level16_potential
    atoms = nyzc_cell(data_dir, rattle=0.05)
    out = []
    for threads in (1, 2):
        lmp, _ = lammps_with_plugin(path, atoms, NYZC_SPECIES, newton=newton, workdir=tmp_path,
                                    threads=threads)
        out.append(_lammps_results(lmp, len(atoms)))
        lmp.close()
    (pe1, f1, p1, e1, v1), (pe2, f2, p2, e2, v2) = out
    assert pe1 == pe2
    assert np.array_equal(f1, f2) and np.array_equal(p1, p2)
    assert np.array_equal(e1, e2) and np.array_equal(v1, v2)


def test_plugin_matches_mlip_trained_potential(motep_data, tmp_path):
    """An MLIP-2-trained 3-species potential on MLIP's own configuration."""
    import mtpkit
    from mtpkit.potentials.mtp_io import read_mtp

    folder = MOTEP_FIT / "crystals" / "multi" / "08"
    mtp = read_mtp(folder / "pot.mtp")
    image = mtpkit.read_cfg(folder / "out.cfg")[3]
    species = ["Cu", "Pd", "Ag"]
    atoms = image.copy()
    atoms.set_chemical_symbols([species[t] for t in image.arrays["mtp_type"]])
    lmp, latoms = lammps_with_plugin(folder / "pot.mtp", atoms, species, workdir=tmp_path)
    pe, f, *_ = _lammps_results(lmp, len(atoms))
    ref = core_efs(mtp, latoms, species)
    assert abs(pe - ref.energy) <= 1e-10 * max(1.0, abs(ref.energy))
    assert np.abs(f - ref.forces).max() <= 1e-10
    # and MLIP's own energy for that configuration (written with ~1e-9 relative precision)
    assert abs(pe - image.get_potential_energy()) < 1e-6 * len(atoms)
    lmp.close()


def test_pair_coeff_unknown_species(level16_potential, data_dir, tmp_path):
    _mtp, path = level16_potential
    atoms = nyzc_cell(data_dir, rattle=0.0)
    with pytest.raises(Exception, match="unknown species 'Qq'"):
        lammps_with_plugin(path, atoms, NYZC_SPECIES, workdir=tmp_path,
                           coeff=["Na", "Y", "Zr", "Qq"])
    with pytest.raises(Exception, match=r"unknown species 'Cu'.*Na Y Zr Cl"):
        lammps_with_plugin(path, atoms, NYZC_SPECIES, workdir=tmp_path,
                           coeff=["Na", "Y", "Cu", "Cl"], extra_style="species Na Y Zr Cl")


def test_pair_style_rejects_non_mtp_file(data_dir, tmp_path):
    bad = tmp_path / "not_a_potential.mtp"
    bad.write_text("hello\nworld\n")
    atoms = nyzc_cell(data_dir, rattle=0.0)
    with pytest.raises(Exception, match="not an MTP potential"):
        lammps_with_plugin(bad, atoms, NYZC_SPECIES, workdir=tmp_path)
    trunc = tmp_path / "truncated.mtp"
    trunc.write_text("MTP\nversion = 1.1.0\nspecies_count = 4\n")
    with pytest.raises(Exception, match="radial_basis_type"):
        lammps_with_plugin(trunc, atoms, NYZC_SPECIES, workdir=tmp_path)
