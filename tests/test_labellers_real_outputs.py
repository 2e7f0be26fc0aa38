"""BatchLabeller.ingest on real VASP and Quantum ESPRESSO outputs.

VASP: the outputs shipped inside the installed ``ase`` wheel
(``ase/test/testdata/vasp``: ``OUTCAR_example_1`` from vasp.5.3.3,
``vasprun_pstress.xml``, ``convergence_OUTCAR_*``), used in place.
QE: our own pw.x 6.7 run on rock-salt NaCl in ``tests/data/qe_nacl`` (see its
README); the slow test redoes it end to end (ld1.x pseudopotentials, prepare,
pw.x through the job script, ingest). Regenerate that data with
``python tests/test_labellers_real_outputs.py regenerate``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import ase
import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk
from ase.io import read
from ase.units import create_units

from mtpkit.active_learning.labellers import (
    BatchLabeller,
    LabelError,
    vasp_scf_converged,
)

ASE_VASP = Path(ase.__file__).parent / "test" / "testdata" / "vasp"
QE_DATA = Path(__file__).parent / "data" / "qe_nacl"
KBAR = units.GPa / 10  # eV/Å^3 per kbar
QE_UNITS = create_units("2006")  # the constants ASE's espresso-out reader converts pw.x's Ry and bohr with

needs_ase_vasp = pytest.mark.skipif(not (ASE_VASP / "OUTCAR_example_1").exists(),
                                    reason=f"this ase install ships no VASP test outputs ({ASE_VASP})")


def _bare(atoms: Atoms) -> Atoms:
    """The structure alone (what a job is prepared from), without the read-back results."""
    out = atoms.copy()
    out.calc = None
    return out


def _vasp_labeller() -> BatchLabeller:
    return BatchLabeller("vasp", "#!/bin/sh\ncd {folder}\nmpirun vasp_std\n", submit_command="true",
                         input_parameters={"encut": 400, "ediff": 1e-4, "kpts": [1, 1, 1]})


def _vasp_job(tmp_path: Path, atoms: Atoms, files: dict[str, str]) -> Path:
    """A job folder prepared by BatchLabeller with ``files`` (name in the folder: text) as VASP's output."""
    d = _vasp_labeller().prepare(atoms, tmp_path / "job", "job")
    for name, text in files.items():
        (d / name).write_text(text)
    return d


# --------------------------------------------------------------------------- VASP


def _ingest_vasp_file(tmp_path, name: str, fmt: str, as_file: str):
    """Ingest ASE's real VASP output ``name`` placed as ``as_file`` in a prepared job folder;
    checks the result equals ASE's own reading. Returns (labelled atoms, file text, the
    prepared atoms, the job folder)."""
    src = ASE_VASP / name
    text = src.read_text()
    ref = read(src, index=-1, format=fmt)
    atoms = _bare(ref)
    d = _vasp_job(tmp_path, atoms, {as_file: text})
    assert (d / "POSCAR").exists() and "ENCUT = 400" in (d / "INCAR").read_text()
    out, reason = _vasp_labeller().ingest(atoms, d)
    assert reason is None, reason
    np.testing.assert_array_equal(out.positions, atoms.positions)
    assert out.get_potential_energy() == ref.get_potential_energy(force_consistent=True)
    np.testing.assert_array_equal(out.get_forces(), ref.get_forces())
    np.testing.assert_array_equal(out.get_stress(), ref.get_stress())
    return out, text, atoms, d


@needs_ase_vasp
def test_vasp_outcar_ingest_matches_ase_and_file_text(tmp_path):
    out, text, *_ = _ingest_vasp_file(tmp_path, "OUTCAR_example_1", "vasp-out", "OUTCAR")
    assert len(out) == 18 and out.get_chemical_formula() == "Ni18"

    # the numbers are the file's: last "free energy TOTEN" (force-consistent, not
    # energy(sigma->0)), first TOTAL-FORCE row, "in kB" line
    toten = float(re.findall(r"free  energy   TOTEN  =\s*(\S+)", text)[-1])
    assert out.get_potential_energy() == pytest.approx(toten, abs=1e-8)
    assert toten == pytest.approx(-68.22868532)
    block = text[text.rindex("TOTAL-FORCE (eV/Angst)"):].splitlines()[2]
    np.testing.assert_allclose(out.get_forces()[0], [float(x) for x in block.split()[3:6]], atol=1e-6)
    kb = [float(x) for x in re.findall(r"in kB(.*)", text)[-1].split()]  # xx yy zz xy yz zx, kbar
    voigt = -np.array([kb[0], kb[1], kb[2], kb[4], kb[5], kb[3]]) * KBAR  # ASE: xx yy zz yz xz xy
    np.testing.assert_allclose(out.get_stress(), voigt, rtol=1e-6, atol=1e-12)


@needs_ase_vasp
def test_vasp_vasprun_ingest_matches_ase_and_file_text(tmp_path):
    out, text, atoms, d = _ingest_vasp_file(tmp_path, "vasprun_pstress.xml", "vasp-xml", "vasprun.xml")
    assert out.get_chemical_formula() == "C2"
    last = text[text.rindex('<varray name="stress"'):]
    sxx = float(last.splitlines()[1].split()[1])  # kbar
    assert sxx == pytest.approx(-165.99562580)
    assert out.get_stress()[0] == pytest.approx(-sxx * KBAR, rel=1e-8)

    # a vasprun.xml still being written (no </modeling>) is pending, or quarantined once the job ended
    (d / "vasprun.xml").write_text(text[: len(text) // 2])
    assert _vasp_labeller().ingest(atoms, d) == (None, "pending")
    out, reason = _vasp_labeller().ingest(atoms, d, finished=True)
    assert out is None and "</modeling>" in reason
    # a last electronic loop that used every NELM step is not converged
    nelm = int(re.search(r'name="NELM">\s*(\d+)', text).group(1))
    steps = len(re.findall(r"<scstep>", text))
    assert steps < nelm
    (d / "vasprun.xml").write_text(re.sub(r'(<parameters>.*?name="NELM">)\s*\d+',
                                          lambda m: f"{m.group(1)} {steps}", text, count=1, flags=re.DOTALL))
    out, reason = _vasp_labeller().ingest(atoms, d)
    assert out is None and "NELM" in reason


@needs_ase_vasp
def test_vasp_output_of_another_geometry_is_quarantined(tmp_path):
    text = (ASE_VASP / "OUTCAR_example_1").read_text()
    atoms = _bare(read(ASE_VASP / "OUTCAR_example_1", format="vasp-out"))
    moved = atoms.copy()
    moved.positions[3] += (0.05, 0.0, 0.0)  # the job was prepared from another structure
    d = _vasp_job(tmp_path, moved, {"OUTCAR": text})
    out, reason = _vasp_labeller().ingest(moved, d)
    assert out is None and "moved by 0.05" in reason
    # unfinished OUTCAR (no timing block): pending while running, quarantined once the job ended
    (d / "OUTCAR").write_text(text[: text.index("General timing")])
    assert _vasp_labeller().ingest(atoms, d) == (None, "pending")
    assert "General timing" in _vasp_labeller().ingest(atoms, d, finished=True)[1]


def _outcar_with_scf(real: str, snippet: str) -> str:
    """The real OUTCAR with its electronic loop's energy changes and exit line replaced by ``snippet``'s."""
    loop = [ln for ln in snippet.splitlines() if "total energy-change" in ln or "aborting loop" in ln]
    lines = real.splitlines()
    at = next(i for i, ln in enumerate(lines) if "aborting loop" in ln)
    keep = [ln for i, ln in enumerate(lines)
            if i != at and "total energy-change" not in ln]
    at -= sum("total energy-change" in ln for ln in lines[:at])
    return "\n".join(keep[:at] + loop + keep[at:]) + "\n"


@needs_ase_vasp
@pytest.mark.parametrize("name, with_exit_line, converged", [
    ("convergence_OUTCAR_y_y", True, True),
    ("convergence_OUTCAR_y_y", False, True),
    ("convergence_OUTCAR_y_n", True, False),   # VASP 6: "EDIFF was not reached (unconverged)"
    ("convergence_OUTCAR_y_n", False, True),   # same numbers without the line: below EDIFF
    ("convergence_OUTCAR_n_y", True, True),    # the exit line decides
    ("convergence_OUTCAR_n_y", False, False),  # VASP 5 stopped at NELM: last change 6e-3 > EDIFF 1e-4
])
def test_vasp_unconverged_electronic_loop_is_quarantined(tmp_path, name, with_exit_line, converged):
    snippet = (ASE_VASP / name).read_text()
    if not with_exit_line:
        snippet = "\n".join(ln for ln in snippet.splitlines() if "aborting loop" not in ln)
    assert vasp_scf_converged(snippet.splitlines()) is converged  # the same verdicts as ASE's own test
    real = (ASE_VASP / "OUTCAR_example_1").read_text()
    outcar = _outcar_with_scf(real, snippet)
    assert outcar.count("total energy-change") == snippet.count("total energy-change")
    atoms = _bare(read(ASE_VASP / "OUTCAR_example_1", format="vasp-out"))
    d = _vasp_job(tmp_path, atoms, {"OUTCAR": outcar})
    out, reason = _vasp_labeller().ingest(atoms, d)
    if converged:
        assert reason is None and out.get_potential_energy() == pytest.approx(-68.22868532)
    else:
        assert out is None and "did not converge" in reason


# --------------------------------------------------------------------------- Quantum ESPRESSO

#: parameters of the committed NaCl run (tests/data/qe_nacl); pseudopotentials in ../pseudo
QE_PARAMETERS = {
    "input_data": {
        "control": {"calculation": "scf", "pseudo_dir": "../pseudo", "outdir": "./scratch", "prefix": "nacl"},
        "system": {"ecutwfc": 45.0},
        "electrons": {"conv_thr": 1e-9},
    },
    "pseudopotentials": {"Na": "Na.pbe-tm.UPF", "Cl": "Cl.pbe-tm.UPF"},
    "kpts": (2, 2, 2),
}
QE_JOB = "#!/bin/sh\ncd {folder} && OMP_NUM_THREADS=1 pw.x -in pw.in > pw.out 2> pw.err\n"


def nacl_displaced() -> Atoms:
    """Rock-salt NaCl, fcc primitive cell a = 5.6 Å, Na moved off its site (Å)."""
    atoms = bulk("NaCl", "rocksalt", a=5.6)
    atoms.positions[0] += (0.05, 0.02, -0.03)
    return atoms


def qe_labeller() -> BatchLabeller:
    return BatchLabeller("qe", QE_JOB, submit_command="sh job.sh", input_parameters=QE_PARAMETERS)


def _qe_job(tmp_path: Path, output: str) -> Path:
    d = qe_labeller().prepare(nacl_displaced(), tmp_path / "job", "nacl")
    (d / "pw.out").write_text(output)
    return d


def test_qe_prepare_writes_the_committed_input_and_asks_for_forces(tmp_path):
    d = qe_labeller().prepare(nacl_displaced(), tmp_path / "job", "nacl")
    text = (d / "pw.in").read_text()
    assert text == (QE_DATA / "pw.in").read_text()
    assert re.search(r"tprnfor\s*=\s*\.true\.", text) and re.search(r"tstress\s*=\s*\.true\.", text)
    assert QE_PARAMETERS["input_data"]["control"].get("tprnfor") is None  # the caller's dict is untouched


def test_qe_ingest_of_real_pw_output_matches_ase_and_file_text(tmp_path):
    text = (QE_DATA / "pw.out").read_text()
    d = _qe_job(tmp_path, text)
    atoms = nacl_displaced()
    out, reason = qe_labeller().ingest(atoms, d)
    assert reason is None, reason
    ref = read(QE_DATA / "pw.out", format="espresso-out", index=-1)
    assert out.get_potential_energy() == ref.get_potential_energy(force_consistent=True)
    np.testing.assert_array_equal(out.get_forces(), ref.get_forces())
    np.testing.assert_array_equal(out.get_stress(), ref.get_stress())
    np.testing.assert_array_equal(out.positions, atoms.positions)

    e_ry = float(re.search(r"^!\s+total energy\s+=\s+(\S+) Ry", text, re.MULTILINE).group(1))
    assert out.get_potential_energy() == pytest.approx(e_ry * QE_UNITS["Ry"], abs=1e-6)
    assert out.get_potential_energy() == pytest.approx(e_ry * units.Ry, rel=1e-6)  # ASE's default CODATA
    f_ry = [[float(x) for x in m] for m in re.findall(r"atom\s+\d+ type\s+\d+\s+force =\s+(\S+)\s+(\S+)\s+(\S+)", text)]
    np.testing.assert_allclose(out.get_forces(), np.array(f_ry) * QE_UNITS["Ry"] / QE_UNITS["Bohr"], atol=1e-7)
    assert np.abs(out.get_forces()).max() > 0.01  # the displaced Na feels a force
    np.testing.assert_allclose(out.get_forces().sum(axis=0), 0.0, atol=1e-8)
    srow = text[text.index("total   stress"):].splitlines()[1].split()
    assert out.get_stress()[0] == pytest.approx(-float(srow[0]) * QE_UNITS["Ry"] / QE_UNITS["Bohr"] ** 3, rel=2e-5)
    assert out.get_stress()[0] == pytest.approx(-float(srow[3]) * KBAR, rel=1e-3)


@pytest.mark.parametrize("cut_before, missing", [
    ("convergence has been achieved", "SCF convergence"),
    ("Forces acting on atoms", "forces"),
    ("JOB DONE", "the end of the run"),
])
def test_qe_truncated_real_output_is_pending_then_quarantined(tmp_path, cut_before, missing):
    text = (QE_DATA / "pw.out").read_text()
    d = _qe_job(tmp_path, text[: text.index(cut_before)])
    atoms = nacl_displaced()
    assert qe_labeller().ingest(atoms, d) == (None, "pending")  # the job may still be running
    out, reason = qe_labeller().ingest(atoms, d, finished=True)
    assert out is None and "JOB DONE" in reason and missing in reason


def test_qe_output_without_forces_is_quarantined_not_raised(tmp_path):
    text = (QE_DATA / "pw.out").read_text()
    start = text.index("Forces acting on atoms")
    end = text.index("Computing stress")
    d = _qe_job(tmp_path, text[:start] + text[end:])  # a run with tprnfor off
    out, reason = qe_labeller().ingest(nacl_displaced(), d)
    assert out is None and "forces" in reason


def test_job_without_any_output_is_pending_then_quarantined(tmp_path):
    atoms = nacl_displaced()
    for labeller, what in ((_vasp_labeller(), "no OUTCAR or vasprun.xml"), (qe_labeller(), "no pw.out")):
        d = labeller.prepare(atoms, tmp_path / labeller.code, "job")
        assert labeller.ingest(atoms, d) == (None, "pending")
        out, reason = labeller.ingest(atoms, d, finished=True)
        assert out is None and "job ended before the output was complete" in reason and what in reason


# --------------------------------------------------------------------------- end to end (pw.x)


def make_pseudopotentials(folder: Path) -> None:
    """Run ld1.x on the committed inputs in ``folder``: Na/Cl PBE Troullier–Martins UPF files + test logs."""
    folder.mkdir(parents=True, exist_ok=True)
    for el in ("Na", "Cl"):
        for stem in (f"{el}.ld1", f"{el}.ld1-test"):
            with open(QE_DATA / f"{stem}.in") as fin, open(folder / f"{stem}.out", "w") as fout:
                subprocess.run(["ld1.x"], stdin=fin, stdout=fout, stderr=subprocess.STDOUT, cwd=folder, check=True)
        assert (folder / f"{el}.pbe-tm.UPF").exists()


def run_nacl(root: Path) -> tuple[Path, tuple]:
    """Pseudopotentials in ``root/pseudo``, then prepare -> pw.x via job.sh -> ingest in ``root/job``."""
    make_pseudopotentials(root / "pseudo")
    lab = qe_labeller()
    atoms = nacl_displaced()
    d = lab.prepare(atoms, root / "job", "nacl")
    lab.submit(d)
    return d, lab.ingest(atoms, d, finished=True)


needs_qe = pytest.mark.skipif(shutil.which("pw.x") is None or shutil.which("ld1.x") is None,
                              reason="Quantum ESPRESSO (pw.x, ld1.x) not on PATH: apt-get install quantum-espresso")


@pytest.mark.slow
@needs_qe
def test_qe_end_to_end_pseudos_prepare_pwx_ingest(tmp_path):
    _, (out, reason) = run_nacl(tmp_path)
    assert reason is None, reason
    for el in ("Na", "Cl"):  # ld1.x's own tests: no ghost below the bound states, AE = PS eigenvalues
        log = (tmp_path / "pseudo" / f"{el}.ld1.out").read_text()
        assert "Test with a basis set of Bessel functions" in log
        table = log[log.index("De AE-PS (Ry)"):].split("eps =")[0]  # n l nl (occ) e_AE e_PS De, Ry
        deltas = [float(x) for x in re.findall(r"\(\s*\d\.\d\d\)\s+\S+\s+\S+\s+(\S+)", table)]
        assert deltas and max(abs(x) for x in deltas) < 1e-4
    ref = read(QE_DATA / "pw.out", format="espresso-out", index=-1)
    assert out.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-5)
    np.testing.assert_allclose(out.get_forces(), ref.get_forces(), atol=1e-4)
    np.testing.assert_allclose(out.get_stress(), ref.get_stress(), atol=1e-6)


@pytest.mark.slow
@needs_qe
def test_qe_pwx_error_is_quarantined_with_its_message(tmp_path):
    params = {**QE_PARAMETERS, "pseudopotentials": {"Na": "Na.missing.UPF", "Cl": "Cl.missing.UPF"}}
    lab = BatchLabeller("qe", QE_JOB, submit_command="sh job.sh", input_parameters=params)
    d = lab.prepare(nacl_displaced(), tmp_path / "job", "nacl")
    with pytest.raises(LabelError, match="submit command failed"):  # pw.x exits non-zero, so does job.sh
        lab.submit(d)
    out, reason = lab.ingest(nacl_displaced(), d)
    assert out is None and reason.startswith("pw.x stopped with an error in"), reason


def regenerate() -> None:
    """Rewrite tests/data/qe_nacl/{pw.in,pw.out,*.ld1*.out} from a fresh run."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        d, (out, reason) = run_nacl(Path(tmp))
        if reason:
            raise SystemExit(f"run failed: {reason}")
        for name in ("pw.in", "pw.out"):
            shutil.copyfile(d / name, QE_DATA / name)
        for log in (Path(tmp) / "pseudo").glob("*.out"):
            shutil.copyfile(log, QE_DATA / log.name)
        print(f"energy {out.get_potential_energy():.6f} eV")


if __name__ == "__main__" and sys.argv[1:] == ["regenerate"]:
    regenerate()
