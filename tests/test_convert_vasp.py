"""``mtpkit convert`` from VASP output (vasprun.xml, OUTCAR) to MLIP ``.cfg``.

No VASP output ships with the project, so the tests write small, hand-made
files in the layout VASP 6 writes (4-atom Na2Cl2 cell, 3 ionic steps of a
variable-cell relaxation with Fermi smearing), holding only the tags ASE
3.29's readers use (``ase.io.vasp.read_vasp_xml`` and
``ase.io.vasp_parsers.vasp_outcar_parsers``) plus a little context.

Conventions checked:

* ``.cfg`` ``Energy`` is the free energy TOTEN (``e_fr_energy``), which is
  what MLIP's ``convert-cfg --input-format=vasp-outcar`` takes, not the
  sigma->0 energy ``energy(sigma->0)`` / ``e_0_energy`` (they differ here,
  as with any smearing). ASE reports TOTEN as ``free_energy`` and sigma->0
  as ``energy``; the .cfg writer prefers ``free_energy``.
* ``PlusStress`` (eV) = -V * ASE stress = +V * (VASP stress in kB) / 1602.1766208
  (VASP's kB stress is positive under compression), Voigt order
  xx yy zz yz xz xy; OUTCAR's ``in kB`` line is ordered XX YY ZZ XY YZ ZX.
* forces in eV/Å unchanged; MLIP types follow first appearance (Na, Cl)
  unless ``--species`` says otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest

from mtpkit.cli import main
from mtpkit.potentials.cfg import read_cfg

KB_PER_EV_A3 = 1602.1766208  # 1 eV/Å^3 = 160.21766208 GPa = 1602.1766208 kB (the factor MLIP uses)
SYMBOLS = ["Na", "Na", "Cl", "Cl"]

# three ionic steps: cell rows (Å), fractional positions, forces (eV/Å),
# stress (kB, VASP sign, symmetric 3x3), TOTEN and sigma->0 energy (eV)
STEPS = [
    dict(cell=[[3.99000000, 0.00000000, 0.00000000],
               [0.02000000, 3.99000000, 0.00000000],
               [0.00000000, 0.03000000, 5.64000000]],
         frac=[[0.00000000, 0.00000000, 0.00000000],
               [0.51000000, 0.49000000, 0.50500000],
               [0.49500000, 0.50200000, 0.00300000],
               [0.00400000, 0.99600000, 0.49800000]],
         forces=[[0.08134500, -0.02311200, 0.01120300],
                 [-0.31211700, 0.22876500, -0.04102100],
                 [0.19876400, -0.10123400, -0.02011800],
                 [0.03200800, -0.10441900, 0.04993600]],
         stress=[[12.34567, 1.23456, -0.54321],
                 [1.23456, 10.98765, 2.34567],
                 [-0.54321, 2.34567, -3.45678]],
         toten=-13.21345678, e0=-13.21201234),
    dict(cell=[[3.99800000, 0.00000000, 0.00000000],
               [0.01800000, 3.99700000, 0.00000000],
               [0.00000000, 0.02500000, 5.65100000]],
         frac=[[0.00100000, -0.00100000, 0.00000000],
               [0.50600000, 0.49400000, 0.50300000],
               [0.49700000, 0.50100000, 0.00200000],
               [0.00200000, 0.99800000, 0.49900000]],
         forces=[[0.04011100, -0.01020300, 0.00530200],
                 [-0.15432100, 0.11321000, -0.02050400],
                 [0.09870900, -0.05012300, -0.01000100],
                 [0.01550100, -0.05288400, 0.02520300]],
         stress=[[4.56789, 0.61728, -0.27160],
                 [0.61728, 3.98765, 1.17283],
                 [-0.27160, 1.17283, -1.23456]],
         toten=-13.22456789, e0=-13.22310987),
    dict(cell=[[4.00300000, 0.00000000, 0.00000000],
               [0.01500000, 4.00200000, 0.00000000],
               [0.00000000, 0.02000000, 5.65900000]],
         frac=[[0.00100000, -0.00100000, 0.00000000],
               [0.50200000, 0.49800000, 0.50100000],
               [0.49900000, 0.50000000, 0.00100000],
               [0.00100000, 0.99900000, 0.49900000]],
         forces=[[0.00512300, -0.00203100, 0.00101200],
                 [-0.02011100, 0.01502300, -0.00300400],
                 [0.01234500, -0.00651200, -0.00150600],
                 [0.00264300, -0.00648000, 0.00349800]],
         stress=[[0.51234, 0.08765, -0.04321],
                 [0.08765, 0.43210, 0.15432],
                 [-0.04321, 0.15432, -0.12345]],
         toten=-13.22601234, e0=-13.22455678),
]


def _vec(values) -> str:
    return " ".join(f"{x:16.8f}" for x in values)


def _volume(step) -> float:
    return float(abs(np.linalg.det(np.array(step["cell"]))))


def _cartesian(step) -> np.ndarray:
    return np.array(step["frac"]) @ np.array(step["cell"])


def _expected_virial(step) -> np.ndarray:
    """PlusStress (eV), MLIP order xx yy zz yz xz xy, straight from the kB matrix."""
    s = np.array(step["stress"])
    voigt = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
    return voigt * _volume(step) / KB_PER_EV_A3


# --------------------------------------------------------------------------- vasprun.xml


def _crystal(cell) -> str:
    rows = "\n".join(f"    <v>{_vec(r)} </v>" for r in cell)
    return (f'   <crystal>\n    <varray name="basis" >\n{rows}\n    </varray>\n'
            f'    <i name="volume">{abs(np.linalg.det(np.array(cell))):16.8f} </i>\n   </crystal>\n')


def _structure(step, name: str | None = None) -> str:
    attr = f' name="{name}"' if name else ""
    pos = "\n".join(f"    <v>{_vec(r)} </v>" for r in step["frac"])
    return (f" <structure{attr} >\n{_crystal(step['cell'])}"
            f'   <varray name="positions" >\n{pos}\n   </varray>\n </structure>\n')


def _energy_block(e_fr: float, e0: float, indent: str) -> str:
    wo = 2 * e0 - e_fr  # sigma->0 is the mean of the free and entropy-free energies
    return (f"{indent}<energy>\n"
            f'{indent} <i name="e_fr_energy">{e_fr:16.8f} </i>\n'
            f'{indent} <i name="e_wo_entrp">{wo:16.8f} </i>\n'
            f'{indent} <i name="e_0_energy">{e0:16.8f} </i>\n'
            f"{indent}</energy>\n")


def vasprun_text(steps=STEPS, pstress_kb: float = 0.0) -> str:
    """A vasprun.xml with one calculation per step (two SCF steps each).

    With PSTRESS, VASP's ``calculation/energy/e_fr_energy`` holds the enthalpy
    TOTEN + P V (ASE's reader subtracts it again; ase MR 2685).
    """
    atoms = "\n".join(f"    <rc><c>{s:2s}</c><c>   {1 if s == 'Na' else 2}</c></rc>" for s in SYMBOLS)
    out = ['<?xml version="1.0" encoding="ISO-8859-1"?>', "<modeling>",
           " <generator>", '  <i name="program" type="string">vasp </i>',
           '  <i name="version" type="string">6.3.2  </i>', " </generator>",
           " <incar>", '  <i type="string" name="PREC">accurate</i>', '  <i name="ENCUT">    520.00000000</i>',
           '  <i type="int" name="ISMEAR">     1</i>', '  <i name="SIGMA">      0.10000000</i>',
           '  <i type="int" name="IBRION">     2</i>', '  <i type="int" name="ISIF">     3</i>',
           f'  <i name="PSTRESS">{pstress_kb:16.8f}</i>', " </incar>",
           " <kpoints>", '  <generation param="Gamma">',
           '   <v type="int" name="divisions">       2        2        1 </v>', "  </generation>",
           '  <varray name="kpointlist" >', "   <v>       0.00000000       0.00000000       0.00000000 </v>",
           "   <v>       0.50000000       0.00000000       0.00000000 </v>",
           "   <v>       0.50000000       0.50000000       0.00000000 </v>", "  </varray>",
           '  <varray name="weights" >', "   <v>       0.25000000 </v>", "   <v>       0.50000000 </v>",
           "   <v>       0.25000000 </v>", "  </varray>", " </kpoints>",
           " <parameters>", '  <separator name="general" >', '   <i type="string" name="SYSTEM">NaCl</i>',
           "  </separator>", '  <separator name="ionic" >',
           f'   <i name="PSTRESS">{pstress_kb:16.8f}</i>', '   <i type="int" name="ISIF">     3</i>',
           "  </separator>", " </parameters>",
           " <atominfo>", "  <atoms>       4 </atoms>", "  <types>       2 </types>",
           '  <array name="atoms" >', '   <dimension dim="1">ion</dimension>',
           '   <dimension dim="2">field</dimension>', '   <field type="string">element</field>',
           '   <field type="int">atomtype</field>', "   <set>", atoms, "   </set>", "  </array>", " </atominfo>"]
    text = "\n".join(out) + "\n" + _structure(steps[0], "initialpos")
    for step in steps:
        pv = pstress_kb * _volume(step) / KB_PER_EV_A3
        text += " <calculation>\n"
        # an unconverged SCF step, then the converged one (ASE takes e_0 - e_fr from the last)
        text += "  <scstep>\n" + _energy_block(step["toten"] + 0.05, step["e0"] + 0.05, "   ") + "  </scstep>\n"
        text += "  <scstep>\n" + _energy_block(step["toten"], step["e0"], "   ") + "  </scstep>\n"
        text += _structure(step).replace("\n ", "\n  ").replace(" <structure", "  <structure", 1)
        for name in ("forces", "stress"):
            rows = "\n".join(f"   <v>{_vec(r)} </v>" for r in step[name])
            text += f'  <varray name="{name}" >\n{rows}\n  </varray>\n'
        text += _energy_block(step["toten"] + pv, step["e0"] + pv, "  ")
        text += " </calculation>\n"
    text += _structure(steps[-1], "finalpos") + "</modeling>\n"
    return text


# --------------------------------------------------------------------------- OUTCAR


def outcar_text(steps=STEPS) -> str:
    """An OUTCAR with the header lines ASE needs and one block per ionic step."""
    head = """ vasp.6.3.2 18Feb22 (build Mar 08 2022 15:20:08) complex

 executed on             LinuxIFC date 2026.01.12  10:11:12
 running on    8 total cores

 INCAR:
   PREC = Accurate
   ENCUT = 520
   ISMEAR = 1; SIGMA = 0.1
   IBRION = 2; ISIF = 3

 POTCAR:    PAW_PBE Na_pv 19Sep2006
 POTCAR:    PAW_PBE Cl 06Sep2000
 POTCAR:    PAW_PBE Na_pv 19Sep2006
   VRHFIN =Na: 2p3s
 POTCAR:    PAW_PBE Cl 06Sep2000
   VRHFIN =Cl: s p

 Dimension of arrays:
   k-points           NKPTS =      3   k-points in BZ     NKDIM =      3   number of bands    NBANDS=     24
   number of dos      NEDOS =    301   number of ions     NIONS =      4
   ions per type =               2   2

   ISPIN  =      1    spin polarized calculation?

 k-points in reciprocal lattice and weights: Gamma-centred 2x2x1
   0.00000000  0.00000000  0.00000000       0.250
   0.50000000  0.00000000  0.00000000       0.500
   0.50000000  0.50000000  0.00000000       0.250

"""
    text = head
    for n, step in enumerate(steps, start=1):
        s = np.array(step["stress"])
        kb = [s[0, 0], s[1, 1], s[2, 2], s[0, 1], s[1, 2], s[0, 2]]  # VASP: XX YY ZZ XY YZ ZX
        cell = np.array(step["cell"])
        rec = np.linalg.inv(cell).T
        pos = _cartesian(step)
        text += f"""\
---------------------------------------- Iteration    {n}(   1)  ---------------------------------------

  Free energy of the ion-electron system (eV)
  ---------------------------------------------------
  free energy    TOTEN  = {step['toten'] + 0.05:20.8f} eV

  energy without entropy = {2 * step['e0'] - step['toten'] + 0.05:20.8f}  energy(sigma->0) = {step['e0'] + 0.05:20.8f}

---------------------------------------- Iteration    {n}(   2)  ---------------------------------------

 E-fermi :  -1.2345     XC(G=0):  -5.4321     alpha+bet : -3.2109

  FORCE on cell =-STRESS in cart. coord.  units (eV):
  Direction    XX          YY          ZZ          XY          YZ          ZX
  --------------------------------------------------------------------------------------
  Total   {' '.join(f'{x * _volume(step) / KB_PER_EV_A3:11.5f}' for x in kb)}
  in kB   {' '.join(f'{x:11.5f}' for x in kb)}
  external pressure = {np.trace(s) / 3:11.2f} kB  Pullay stress =        0.00 kB

 VOLUME and BASIS-vectors are now :
 -----------------------------------------------------------------------------
  energy-cutoff  :      520.00
  volume of cell : {_volume(step):11.2f}
      direct lattice vectors                 reciprocal lattice vectors
""" + "".join(f"  {r[0]:13.9f}{r[1]:13.9f}{r[2]:13.9f}  {q[0]:13.9f}{q[1]:13.9f}{q[2]:13.9f}\n"
              for r, q in zip(cell, rec)) + """
 POSITION                                       TOTAL-FORCE (eV/Angst)
 -----------------------------------------------------------------------------------
""" + "".join(f" {p[0]:12.5f} {p[1]:12.5f} {p[2]:12.5f}   {f[0]:14.6f} {f[1]:14.6f} {f[2]:14.6f}\n"
              for p, f in zip(pos, step["forces"])) + f"""\
 -----------------------------------------------------------------------------------
    total drift:                               -0.000012      0.000008     -0.000003


  FREE ENERGIE OF THE ION-ELECTRON SYSTEM (eV)
  ---------------------------------------------------
  free  energy   TOTEN  = {step['toten']:20.8f} eV

  energy  without entropy= {2 * step['e0'] - step['toten']:20.8f}  energy(sigma->0) = {step['e0']:20.8f}

"""
    return text


# --------------------------------------------------------------------------- checks


def _check_cfg(path, steps, species, expected_types, pos_atol: float) -> None:
    images = read_cfg(path, species)
    assert len(images) == len(steps)
    for atoms, step in zip(images, steps):
        assert atoms.get_chemical_symbols() == SYMBOLS
        np.testing.assert_array_equal(atoms.arrays["mtp_type"], expected_types)
        np.testing.assert_allclose(np.array(atoms.cell), step["cell"], atol=6e-7)
        np.testing.assert_allclose(atoms.positions, _cartesian(step), atol=pos_atol)
        res = atoms.calc.results
        assert res["energy"] == pytest.approx(step["toten"], abs=2e-8)  # TOTEN, not sigma->0
        assert abs(res["energy"] - step["e0"]) > 1e-3
        np.testing.assert_allclose(res["forces"], step["forces"], atol=6e-7)
        np.testing.assert_allclose(res["virial"], _expected_virial(step), atol=6e-6)


@pytest.mark.parametrize("index_args", [[], ["--index", ":"]])
def test_vasprun_to_cfg_all_steps_default_species(tmp_path, capsys, index_args):
    src = tmp_path / "vasprun.xml"
    src.write_text(vasprun_text())
    out = tmp_path / "train.cfg"
    assert main(["convert", str(src), str(out), *index_args]) == 0
    assert capsys.readouterr().out.strip() == f"wrote 3 configurations to {out} (MLIP types: Na,Cl)"
    _check_cfg(out, STEPS, ["Na", "Cl"], [0, 0, 1, 1], pos_atol=6e-7)


def test_vasprun_species_order_and_index(tmp_path, capsys):
    src = tmp_path / "vasprun.xml"
    src.write_text(vasprun_text())
    out = tmp_path / "train.cfg"
    assert main(["convert", str(src), str(out), "--species", "Cl,Na"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote 3 configurations to {out}"
    _check_cfg(out, STEPS, ["Cl", "Na"], [1, 1, 0, 0], pos_atol=6e-7)
    types = [line.split()[1] for line in out.read_text().splitlines()
             if line.startswith("    ") and len(line.split()) == 8]
    assert types == ["1", "1", "0", "0"] * 3
    last = tmp_path / "last.cfg"
    assert main(["convert", str(src), str(last), "--species", "Cl,Na", "--index", "-1"]) == 0
    assert "wrote 1 configuration " in capsys.readouterr().out
    _check_cfg(last, STEPS[-1:], ["Cl", "Na"], [1, 1, 0, 0], pos_atol=6e-7)
    assert main(["convert", str(src), str(last), "--species", "Na", "--index", "0"]) == 2
    assert "Cl is not in species" in capsys.readouterr().err


def test_vasprun_with_pstress_gives_toten_not_enthalpy(tmp_path):
    src = tmp_path / "vasprun.xml"
    src.write_text(vasprun_text(pstress_kb=50.0))
    out = tmp_path / "train.cfg"
    assert main(["convert", str(src), str(out), "--species", "Na,Cl"]) == 0
    energies = [a.get_potential_energy() for a in read_cfg(out, ["Na", "Cl"])]
    # ASE converts kB with its own EVTOJ (1.60217733e-19 J), 4e-7 relative from CODATA: 2e-7 eV in PV here
    np.testing.assert_allclose(energies, [s["toten"] for s in STEPS], atol=1e-6)


def test_outcar_to_cfg(tmp_path, capsys):
    src = tmp_path / "OUTCAR"
    src.write_text(outcar_text())
    out = tmp_path / "train.cfg"
    assert main(["convert", str(src), str(out), "--index", ":"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote 3 configurations to {out} (MLIP types: Na,Cl)"
    _check_cfg(out, STEPS, ["Na", "Cl"], [0, 0, 1, 1], pos_atol=5e-6)  # OUTCAR prints 5 decimals
    # the same file under another name, format given explicitly, species reordered
    other = tmp_path / "run.log"
    other.write_text(outcar_text())
    assert main(["convert", str(other), str(out), "--input-format", "vasp-out", "--species", "Cl,Na"]) == 0
    _check_cfg(out, STEPS, ["Cl", "Na"], [1, 1, 0, 0], pos_atol=5e-6)


def test_outcar_and_vasprun_agree(tmp_path):
    (tmp_path / "xml").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "xml" / "vasprun.xml").write_text(vasprun_text())
    (tmp_path / "out" / "OUTCAR").write_text(outcar_text())
    for d, name in (("xml", "vasprun.xml"), ("out", "OUTCAR")):
        assert main(["convert", str(tmp_path / d / name), str(tmp_path / f"{d}.cfg")]) == 0
    a, b = read_cfg(tmp_path / "xml.cfg", ["Na", "Cl"]), read_cfg(tmp_path / "out.cfg", ["Na", "Cl"])
    for x, y in zip(a, b, strict=True):
        assert x.get_potential_energy() == y.get_potential_energy()
        np.testing.assert_array_equal(x.get_forces(), y.get_forces())
        np.testing.assert_allclose(x.calc.results["virial"], y.calc.results["virial"], atol=1.1e-5)


@pytest.mark.parametrize("species", [None, "Cl,Na"])
def test_cfg_extxyz_cfg_round_trip(tmp_path, capsys, species):
    src = tmp_path / "vasprun.xml"
    src.write_text(vasprun_text())
    opt = ["--species", species] if species else []
    first, xyz, second = tmp_path / "first.cfg", tmp_path / "mid.extxyz", tmp_path / "second.cfg"
    assert main(["convert", str(src), str(first), *opt]) == 0
    assert main(["convert", str(first), str(xyz), "--species", species or "Na,Cl"]) == 0
    assert main(["convert", str(xyz), str(second), *opt]) == 0
    assert "wrote 3 configurations" in capsys.readouterr().out
    assert second.read_text() == first.read_text()
    import ase.io

    mid = ase.io.read(xyz, index=":")
    assert [a.get_chemical_symbols() for a in mid] == [SYMBOLS] * 3
    for atoms, step in zip(mid, STEPS, strict=True):
        assert atoms.get_potential_energy() == pytest.approx(step["toten"], abs=2e-8)
        v = -atoms.get_stress(voigt=True) * atoms.get_volume()
        np.testing.assert_allclose(v, _expected_virial(step), atol=6e-6)
