"""pair_style mtp (LAMMPS plugin) against the Python core on triclinic NYZC-like cells."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


# --------------------------------------------------------------------------- pair_style/pair_coeff handling


def _lammps(commands: list[str]):
    """A LAMMPS instance with the plugin loaded, after ``commands``."""
    from mtpkit.md import lammps_env

    lmp = lammps_env.new_lammps()
    lammps_env.load_plugin(lmp)
    for c in commands:
        lmp.command(c)
    return lmp


def _setup(data: Path, units: str = "metal") -> list[str]:
    return [f"units {units}", "atom_style atomic", "atom_modify map array", f"read_data {data}"]


def _energy_forces(lmp, n: int) -> tuple[float, np.ndarray]:
    lmp.command("run 0")
    ids = lmp.numpy.extract_atom("id")[:n]
    return lmp.get_thermo("pe"), lmp.numpy.extract_atom("f")[:n][np.argsort(ids)].copy()


def test_null_type_under_pair_style_hybrid(level16_potential, data_dir, tmp_path):
    """An extra atom type left out with NULL and covered by another style (hybrid): the MTP
    sees neither its atoms as sites nor as neighbours."""
    from mtpkit.md.structure import lammps_atoms, write_data

    mtp, path = level16_potential
    atoms = lammps_atoms(nyzc_cell(data_dir, rattle=0.05))
    extra = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s == "Cl"][:3]
    symbols = atoms.get_chemical_symbols()
    for i in extra:
        symbols[i] = "Ar"
    atoms.set_chemical_symbols(symbols)
    species = [*NYZC_SPECIES, "Ar"]
    write_data(tmp_path / "in.data", atoms, species)
    lmp = _lammps([*_setup(tmp_path / "in.data"), f"pair_style hybrid mtp {path} zero 6.0",
                   "pair_coeff * * mtp Na Y Zr Cl NULL", "pair_coeff * 5 zero"])
    pe, f = _energy_forces(lmp, len(atoms))
    lmp.close()
    keep = [i for i in range(len(atoms)) if i not in extra]
    ref = core_efs(mtp, atoms[keep], NYZC_SPECIES)
    assert abs(pe - ref.energy) <= 1e-10 * max(1.0, abs(ref.energy))
    assert np.abs(f[keep] - ref.forces).max() <= 1e-10
    assert np.all(f[extra] == 0.0)
    # without hybrid, a NULL type would have no interactions at all: refused at init
    lmp = _lammps([*_setup(tmp_path / "in.data"), f"pair_style mtp {path}",
                   "pair_coeff * * Na Y Zr Cl NULL"])
    with pytest.raises(Exception, match=r"(?s)All pair coeffs are not set.*1\s+5: is not set"):
        lmp.command("run 0")
    lmp.close()


def test_reissued_pair_style_with_fewer_species_needs_new_pair_coeff(level16_potential, motep_data,
                                                                      data_dir, tmp_path):
    """``pair_style mtp small.mtp`` after ``pair_coeff`` for a 4-species file: the old map
    (MTP types up to 3) must not reach the 2-species kernel."""
    from mtpkit.md.structure import lammps_atoms, write_data
    from mtpkit.potentials.mtp_io import write_mtp

    _mtp, path = level16_potential
    small = synthetic_mtp(motep_data / "fitting" / "crystals" / "cubic" / "08" / "initial.mtp",
                          species_count=2, seed=5)
    small_path = tmp_path / "small.mtp"
    write_mtp(small_path, small)
    atoms = lammps_atoms(nyzc_cell(data_dir, rattle=0.05))
    write_data(tmp_path / "in.data", atoms, NYZC_SPECIES)
    lmp = _lammps([*_setup(tmp_path / "in.data"), f"pair_style mtp {path}",
                   "pair_coeff * * Na Y Zr Cl", "run 0", f"pair_style mtp {small_path}"])
    with pytest.raises(Exception, match=r"(?s)All pair coeffs are not set.*1\s+1: is not set"):
        lmp.command("run 0")
    lmp.command("pair_coeff * * 0 1 1 0")
    pe, f = _energy_forces(lmp, len(atoms))
    lmp.close()
    from mtpkit.potentials import core

    types = np.array([{"Na": 0, "Y": 1, "Zr": 1, "Cl": 0}[s] for s in atoms.get_chemical_symbols()])
    ref = core.evaluate(small, atoms, types, on_short_distance="ignore")
    assert abs(pe - ref.energy) <= 1e-10 * max(1.0, abs(ref.energy))
    assert np.abs(f - ref.forces).max() <= 1e-10


@pytest.mark.parametrize("units", ["real", "si"])
def test_pair_style_refuses_units_other_than_metal(level16_potential, data_dir, tmp_path, units):
    from mtpkit.md.structure import lammps_atoms, write_data

    _mtp, path = level16_potential
    write_data(tmp_path / "in.data", lammps_atoms(nyzc_cell(data_dir, rattle=0.0)), NYZC_SPECIES)
    lmp = _lammps(_setup(tmp_path / "in.data", units=units))
    with pytest.raises(Exception, match=f"needs 'units metal', not 'units {units}'"):
        lmp.command(f"pair_style mtp {path}")
    lmp.close()


LMP_SCRIPT = """
import sys
from mtpkit.md import lammps_env
lmp = lammps_env.new_lammps()
lammps_env.load_plugin(lmp)
try:
    for c in sys.argv[1:]:
        lmp.command(c)
except Exception as exc:
    print("LAMMPS error:", exc)
    sys.exit(3)
print("done")
"""


def _lammps_subprocess(commands: list[str]) -> subprocess.CompletedProcess:
    """``commands`` in a fresh process (a C++ exception that is not a LAMMPS error aborts it)."""
    return subprocess.run([sys.executable, "-c", LMP_SCRIPT, *commands], capture_output=True,
                          text=True, timeout=300, check=False)


def test_pair_coeff_index_out_of_int_range_is_a_lammps_error(level16_potential, data_dir, tmp_path):
    from mtpkit.md.structure import lammps_atoms, write_data

    _mtp, path = level16_potential
    write_data(tmp_path / "in.data", lammps_atoms(nyzc_cell(data_dir, rattle=0.0)), NYZC_SPECIES)
    proc = _lammps_subprocess([*_setup(tmp_path / "in.data"), f"pair_style mtp {path}",
                               "pair_coeff * * 99999999999999999999 1 2 3"])
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "99999999999999999999" in proc.stdout


def test_potential_file_integer_that_does_not_fit_int(level16_potential, data_dir, tmp_path):
    """species_count = 2^32 + 4 would wrap to 4 if narrowed silently."""
    _mtp, path = level16_potential
    text = Path(path).read_text()
    assert "species_count = 4\n" in text
    bad = tmp_path / "wrap.mtp"
    bad.write_text(text.replace("species_count = 4\n", f"species_count = {2**32 + 4}\n"))
    atoms = nyzc_cell(data_dir, rattle=0.0)
    with pytest.raises(Exception, match=r"species_count.*fits a 32-bit int"):
        lammps_with_plugin(bad, atoms, NYZC_SPECIES, workdir=tmp_path)
