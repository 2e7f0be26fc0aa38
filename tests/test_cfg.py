"""MLIP .cfg reading and writing."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mtpkit.errors import InputFileError, UserError
from mtpkit.potentials.cfg import iter_cfg, read_cfg, read_cfg_text, write_cfg

ONE = """BEGIN_CFG
 Size
    2
 Supercell
         4.000000      0.000000      0.000000
         1.000000      5.000000      0.000000
         0.500000      0.200000      6.000000
 AtomData:  id type       cartes_x      cartes_y      cartes_z           fx          fy          fz
             1    0       0.000000      0.000000      0.000000     0.100000    0.000000    0.000000
             2    1       1.000000      2.000000      3.000000    -0.100000    0.000000    0.000000
 Energy
         -7.500000000000
 PlusStress:  xx          yy          zz          yz          xz          xy
         1.00000     2.00000     3.00000     4.00000     5.00000     6.00000
 Feature   EFS_by\tVASP
 Feature   MV_grade\t1.500000
END_CFG

"""


def test_mlip_out_cfg_rewrite_is_byte_identical(motep_data, tmp_path):
    files = sorted(motep_data.glob("fitting/*/*/*/out.cfg"))
    assert len(files) >= 30
    chosen = [*files[::8], motep_data / "fitting/crystals/multi/10/out.cfg"]  # includes nbh_grades/MV_grade
    for f in chosen:
        images = read_cfg(f)
        out = tmp_path / "out.cfg"
        assert write_cfg(out, images) == len(images)
        assert out.read_bytes() == f.read_bytes(), f


def test_labels_and_conventions(tmp_path):
    path = tmp_path / "one.cfg"
    path.write_text(ONE)
    (atoms,) = read_cfg(path, species=["Na", "Cl"])
    assert atoms.get_chemical_symbols() == ["Na", "Cl"]
    assert list(atoms.arrays["mtp_type"]) == [0, 1]
    assert atoms.pbc.all()
    assert atoms.get_potential_energy() == -7.5
    np.testing.assert_allclose(atoms.get_forces()[0], [0.1, 0, 0])
    volume = abs(np.linalg.det(atoms.cell))
    # PlusStress = virial (eV) = -V * ASE stress, Voigt xx yy zz yz xz xy
    np.testing.assert_allclose(atoms.get_stress(), -np.arange(1, 7) / volume)
    assert atoms.info == {"EFS_by": "VASP", "MV_grade": 1.5}
    out = tmp_path / "again.cfg"
    write_cfg(out, [atoms], species=["Na", "Cl"])
    assert out.read_text() == ONE


def test_without_species_placeholders_round_trip(tmp_path):
    path = tmp_path / "one.cfg"
    path.write_text(ONE)
    (atoms,) = read_cfg(path)
    assert list(atoms.numbers) == [0, 1]
    write_cfg(tmp_path / "b.cfg", [atoms])
    assert (tmp_path / "b.cfg").read_text() == ONE


def test_direct_coordinates_non_periodic_and_missing_stress(tmp_path):
    text = """BEGIN_CFG
 Size
    1
 Supercell
    2.0 0.0 0.0
    0.0 4.0 0.0
    0.0 0.0 8.0
 AtomData:  id type direct_x direct_y direct_z nbh_grades
    1 0 0.5 0.5 0.25 2.5
 Energy
    1.0
END_CFG
BEGIN_CFG
 Size
    2
 AtomData:  id type cartes_x cartes_y cartes_z
    1 0 0.0 0.0 0.0
    2 0 0.0 0.0 1.1
END_CFG
"""
    p = tmp_path / "x.cfg"
    p.write_text(text)
    a, b = read_cfg(p, species=["H"])
    np.testing.assert_allclose(a.positions, [[1.0, 2.0, 2.0]])
    np.testing.assert_allclose(a.arrays["nbh_grades"], [2.5])
    assert "stress" not in a.calc.results and "forces" not in a.calc.results
    assert not b.pbc.any() and b.calc is None
    write_cfg(tmp_path / "y.cfg", [a, b], species=["H"])
    a2, _ = read_cfg(tmp_path / "y.cfg", species=["H"])
    np.testing.assert_allclose(a2.positions, a.positions)
    assert "Supercell" not in (tmp_path / "y.cfg").read_text().split("END_CFG")[1]


def test_iterator_streams(motep_data):
    f = motep_data / "original/crystals/multi/training.cfg"
    it = iter_cfg(f, species=["Cu", "Ag", "Au"])
    first = next(it)
    assert len(first) == 27
    assert sum(1 for _ in it) == 1000


def test_read_cfg_text():
    (atoms,) = read_cfg_text(ONE, species=["Na", "Cl"])
    assert atoms.get_potential_energy() == -7.5


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "msg"),
    [
        ("         -7.500000000000", "         nan", 12, "Energy", "non-finite"),
        ("0.100000    0.000000    0.000000", "0.100000    nan    0.000000", 9, "fy", "non-finite"),
        ("     1.00000     2.00000", "     1.00000     2.0x000", 14, "PlusStress yy", "malformed"),
        ("             2    1       1.0", "             2    5       1.0", 10, "type", "beyond"),
        ("0.000000     0.100000    0.000000    0.000000\n", "0.000000     0.100000    0.000000\n", 9,
         "AtomData", "columns"),
    ],
)
def test_bad_cfg_names_file_line_field(tmp_path, old, new, line, field, msg):
    assert old in ONE
    p = tmp_path / "bad.cfg"
    p.write_text(ONE.replace(old, new, 1))
    with pytest.raises(InputFileError, match=msg) as info:
        read_cfg(p, species=["Na", "Cl"])
    assert info.value.line == line and info.value.field == field and str(p) in str(info.value)


def test_truncated_and_garbage(tmp_path):
    p = tmp_path / "t.cfg"
    p.write_text(ONE[: ONE.index(" Energy")])
    with pytest.raises(InputFileError, match="end of file"):
        read_cfg(p)
    p.write_text("hello\n")
    with pytest.raises(InputFileError, match="BEGIN_CFG"):
        read_cfg(p)


def test_write_errors_and_atomicity(tmp_path):
    atoms = Atoms("NaCl", positions=[[0, 0, 0], [0, 0, 2.5]], cell=[5, 5, 5], pbc=True)
    out = tmp_path / "o.cfg"
    out.write_text("old")
    with pytest.raises(UserError, match="Cl is not in species"):
        write_cfg(out, [atoms], species=["Na"])
    assert out.read_text() == "old"  # untouched by the failed write
    with pytest.raises(UserError, match="species"):
        write_cfg(out, [atoms])
    atoms.calc = SinglePointCalculator(atoms, energy=float("nan"))
    with pytest.raises(UserError, match="non-finite energy"):
        write_cfg(out, [atoms], species=["Na", "Cl"])
    assert out.read_text() == "old"


def test_lossless_round_trip_triclinic(tmp_path):
    rng = np.random.default_rng(3)
    cell = np.array([[5.1, 0.3, -0.2], [0.7, 4.9, 0.4], [-0.5, 0.6, 6.3]])
    atoms = Atoms("Na2YCl3", positions=rng.random((6, 3)) * 4, cell=cell, pbc=True)
    stress = rng.normal(size=6) * 0.01
    atoms.calc = SinglePointCalculator(atoms, energy=-12.3456789012345, forces=rng.normal(size=(6, 3)),
                                       stress=stress)
    atoms.info["weight"] = 0.123456789
    species = ["Na", "Y", "Cl"]
    write_cfg(tmp_path / "l.cfg", [atoms], species, lossless=True)
    (back,) = read_cfg(tmp_path / "l.cfg", species)
    np.testing.assert_allclose(back.positions, atoms.positions, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(back.get_stress(), stress, rtol=1e-14)
    assert back.get_potential_energy() == pytest.approx(-12.3456789012345, abs=1e-14)
    assert back.info["weight"] == 0.123456789
    # MLIP's fixed layout keeps 6 decimals of positions and 5 of the virial (eV)
    write_cfg(tmp_path / "m.cfg", [atoms], species)
    (mlip,) = read_cfg(tmp_path / "m.cfg", species)
    np.testing.assert_allclose(mlip.positions, atoms.positions, atol=5e-7)
    np.testing.assert_allclose(mlip.get_stress() * atoms.get_volume(), stress * atoms.get_volume(), atol=5e-6)


def test_multiline_feature(tmp_path):
    atoms = Atoms("H", positions=[[0, 0, 0]])
    atoms.info["note"] = "line one\nline two"
    write_cfg(tmp_path / "f.cfg", [atoms], ["H"])
    assert read_cfg(tmp_path / "f.cfg", ["H"])[0].info["note"] == "line one\nline two"


def test_convert_cfg_extxyz_traj_round_trip(motep_data, tmp_path, capsys):
    from mtpkit.cli import main

    src = motep_data / "fitting/crystals/noncubic/10/out.cfg"
    first = tmp_path / "first.cfg"
    assert main(["convert", str(src), str(tmp_path / "a.extxyz"), "--species", "Cu", "--index", ":5"]) == 0
    assert "wrote 5 configurations" in capsys.readouterr().out
    assert main(["convert", str(tmp_path / "a.extxyz"), str(tmp_path / "b.traj")]) == 0
    assert main(["convert", str(tmp_path / "b.traj"), str(first), "--species", "Cu"]) == 0
    original = src.read_text().split("END_CFG\n\n")[:5]
    assert first.read_text() == "END_CFG\n\n".join(original) + "END_CFG\n\n"
    import ase.io

    back = ase.io.read(tmp_path / "a.extxyz", index=":")
    labels = read_cfg(src, ["Cu"])[:5]
    for a, b in zip(back, labels):
        assert a.get_potential_energy() == b.get_potential_energy()
        np.testing.assert_allclose(a.get_stress(), b.get_stress(), rtol=1e-12)
        np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=0)


def test_convert_errors(tmp_path, capsys):
    from mtpkit.cli import main

    assert main(["convert", str(tmp_path / "missing.xyz"), str(tmp_path / "o.cfg")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "bad.xyz").write_text("garbage\n")
    assert main(["convert", str(tmp_path / "bad.xyz"), str(tmp_path / "o.cfg")]) == 2
    assert "ASE cannot read" in capsys.readouterr().err
    atoms = Atoms("NaCl", positions=[[0, 0, 0], [0, 0, 2.5]], cell=[5, 5, 5], pbc=True)
    import ase.io

    ase.io.write(tmp_path / "nacl.extxyz", atoms)
    assert main(["convert", str(tmp_path / "nacl.extxyz"), str(tmp_path / "o.cfg"), "--species", "Na,Y"]) == 2
    assert "Cl is not in species" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "nacl.extxyz"), str(tmp_path / "o.cfg"), "--species", "Na,Xx"]) == 2
    assert "unknown chemical symbol 'Xx'" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "nacl.extxyz"), str(tmp_path / "o.cfg")]) == 0
    assert "MLIP types: Na,Cl" in capsys.readouterr().out
    assert not list(tmp_path.glob(".o.cfg*"))  # no temporary files left behind


def test_convert_cfg_without_species_never_invents_elements(tmp_path, capsys):
    """A .cfg holds type indices: without --species, converting it to extxyz (or any
    non-.cfg format) is refused instead of writing type 0 as X and type 1 as H."""
    from mtpkit.cli import main
    from mtpkit.potentials.convert import convert

    src = tmp_path / "in.cfg"
    src.write_text(ONE)
    out = tmp_path / "out.extxyz"
    assert main(["convert", str(src), str(out)]) == 2
    err = capsys.readouterr().err
    assert "type indices, not elements" in err and "--species" in err and str(src) in err
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    with pytest.raises(UserError, match="species"):
        convert(src, tmp_path / "out.traj")
    # .cfg -> .cfg keeps the types as they are, byte for byte
    assert main(["convert", str(src), str(tmp_path / "same.cfg")]) == 0
    assert (tmp_path / "same.cfg").read_text() == ONE
    # with the species: real elements, and back to .cfg without species gives the same types
    assert main(["convert", str(src), str(out), "--species", "Na,Cl"]) == 0
    import ase.io

    assert ase.io.read(out).get_chemical_symbols() == ["Na", "Cl"]
    assert main(["convert", str(out), str(tmp_path / "back.cfg")]) == 0  # types travel as mtp_type
    assert (tmp_path / "back.cfg").read_text() == ONE
