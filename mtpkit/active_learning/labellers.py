"""Labellers: turn configurations into energies (eV), forces (eV/Å) and stresses (eV/Å^3).

A labeller is described by a plain, picklable :class:`LabellerSpec` (a kind
and keyword arguments) so that labelling can run in worker processes or on a
Dask cluster; the ASE calculator is built lazily inside the worker.

Kinds
-----
``chgnet``     CHGNet, model 0.3.0 (weights ship in the ``chgnet`` wheel; CPU).
``sevennet``   SevenNet-0 (``sevenn``; model ``7net-0``).
``gpaw``       GPAW DFT, plane waves with the Pulay-stress correction or LCAO
               (:mod:`mtpkit.active_learning.dft_gpaw`).
``emt``, ``lj``, ``morse``   ASE's cheap analytic calculators (tests, demos).
``ase``        Any ASE calculator: ``calculator = "package.module:Class"`` and
               ``parameters = {...}`` passed to its constructor.

A label is *quarantined* (never trained on, listed with its reason) when the
calculation raises, when SCF convergence fails, or when energy, forces or
stress are not finite. Batch DFT on clusters is :class:`BatchLabeller`.
"""

from __future__ import annotations

import atexit
import importlib
import math
import os
import re
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mtpkit.errors import UserError

KINDS = ("chgnet", "sevennet", "gpaw", "emt", "lj", "morse", "ase")

#: extra modules each kind needs, and the pip extra that installs them
_REQUIRES = {
    "chgnet": ("chgnet", "pip install 'mtpkit[chgnet]'"),
    "sevennet": ("sevenn", "pip install 'mtpkit[sevennet]'"),
    "gpaw": ("gpaw", "apt-get install libxc-dev && pip install 'mtpkit[gpaw]'"),
}


class LabelError(RuntimeError):
    """A labelling calculation that failed; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LabellerSpec:
    """What labels configurations, as plain data.

    Attributes
    ----------
    kind:
        One of :data:`KINDS`.
    parameters:
        Keyword arguments of the calculator (kind-specific).
    calculator:
        ``"module:Class"`` for ``kind = "ase"``.
    stress:
        Whether to request the stress (periodic cells only).
    """

    kind: str
    parameters: dict = field(default_factory=dict)
    calculator: str = ""
    stress: bool = True

    @classmethod
    def from_table(cls, table: Any) -> LabellerSpec:
        """The spec of a ``[labeller]`` table (anything with ``kind``, ``parameters``,
        ``calculator`` and ``stress`` attributes, e.g. the configuration schema's)."""
        return cls(table.kind, dict(table.parameters), table.calculator, bool(table.stress))

    def check(self, key: str = "labeller") -> None:
        """Raise :class:`UserError` naming ``key`` if the labeller cannot be used here.

        Imports the calculator's package (not the model weights), so that a
        campaign fails before any work starts.
        """
        if self.kind not in KINDS:
            raise UserError(f"{key}.kind: unknown labeller {self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.kind in _REQUIRES:
            module, how = _REQUIRES[self.kind]
            try:
                importlib.import_module(module)
            except Exception as exc:  # noqa: BLE001  # ImportError or a broken install
                raise UserError(f"{key}.kind = {self.kind!r}: cannot import {module!r} ({exc}); "
                                f"install it with: {how}") from None
        if self.kind == "ase":
            if not self.calculator or ":" not in self.calculator:
                raise UserError(f"{key}.calculator: give the ASE calculator as 'package.module:Class'")
            _import_object(self.calculator, f"{key}.calculator")


def _import_object(path: str, key: str) -> Any:
    module, _, name = path.partition(":")
    try:
        obj = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{key}: cannot import {path!r} ({exc})") from None
    return obj


def make_calculator(spec: LabellerSpec):
    """Build the ASE calculator of ``spec`` (loads model weights; may be slow)."""
    p = dict(spec.parameters)
    if spec.kind == "chgnet":
        from chgnet.model import CHGNet
        from chgnet.model.dynamics import CHGNetCalculator

        model = CHGNet.load(model_name=str(p.pop("model", "0.3.0")), verbose=False)
        return CHGNetCalculator(model, use_device=p.pop("device", "cpu"), **p)
    if spec.kind == "sevennet":
        from sevenn.calculator import SevenNetCalculator

        return SevenNetCalculator(p.pop("model", "7net-0"), device=p.pop("device", "cpu"), **p)
    if spec.kind == "gpaw":
        from mtpkit.active_learning.dft_gpaw import make_gpaw

        return make_gpaw(p)
    if spec.kind == "emt":
        from ase.calculators.emt import EMT

        return EMT(**p)
    if spec.kind == "lj":
        from ase.calculators.lj import LennardJones

        return LennardJones(**p)
    if spec.kind == "morse":
        from ase.calculators.morse import MorsePotential

        return MorsePotential(**p)
    if spec.kind == "ase":
        cls = _import_object(spec.calculator, "labeller.calculator")
        return cls(**p)
    raise UserError(f"labeller.kind: unknown labeller {spec.kind!r}")


def check_label(energy: float, forces: np.ndarray, stress: np.ndarray | None, natoms: int) -> str | None:
    """Why a label must not be trained on, or ``None`` when it is fine."""
    if energy is None or not math.isfinite(float(energy)):
        return f"energy is not finite ({energy})"
    f = np.asarray(forces, dtype=float)
    if f.shape != (natoms, 3):
        return f"forces have shape {f.shape}, expected ({natoms}, 3)"
    if not np.all(np.isfinite(f)):
        return "forces contain NaN or inf"
    if stress is not None:
        s = np.asarray(stress, dtype=float)
        if s.size not in (6, 9) or not np.all(np.isfinite(s)):
            return "stress is not a finite 6- or 9-vector"
    return None


def force_consistent_energy(atoms: Atoms) -> float:
    """Energy (eV) of ``atoms``' calculator to train on: the free energy where the calculator
    has one (DFT with smearing, VASP's TOTEN: the forces are its derivatives, not those of
    the sigma->0 energy), the plain potential energy otherwise. A non-finite energy stays
    as it is, so it is quarantined."""
    energy = atoms.get_potential_energy()
    free = (getattr(atoms.calc, "results", None) or {}).get("free_energy")
    if free is not None and math.isfinite(float(energy)):
        return float(free)
    return energy


def labelled_copy(atoms: Atoms, energy: float, forces: np.ndarray, stress: np.ndarray | None) -> Atoms:
    """A copy of ``atoms`` carrying the label as a :class:`SinglePointCalculator`."""
    out = atoms.copy()
    out.calc = None
    results: dict[str, Any] = {"energy": float(energy), "forces": np.asarray(forces, dtype=float)}
    if stress is not None:
        s = np.asarray(stress, dtype=float)
        if s.size == 9:
            s = s.reshape(3, 3)[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
        results["stress"] = s
    out.calc = SinglePointCalculator(out, **results)
    return out


_CALC_CACHE: dict[tuple[int, str], Any] = {}
# drop cached calculators before interpreter teardown (GPAW's writes its timing log from __del__)
atexit.register(_CALC_CACHE.clear)


def _cached_calculator(spec: LabellerSpec):
    # One calculator per thread: ASE calculators keep per-call state (atoms, results), so
    # threads of one worker (dask's threaded workers) must not share one.
    key = (threading.get_ident(), repr(spec))
    if key not in _CALC_CACHE:
        _CALC_CACHE[key] = make_calculator(spec)
    return _CALC_CACHE[key]


@dataclass
class LabelOutcome:
    """One labelling calculation: the labelled copy or the reason it failed, and its provenance.

    ``wall_s`` seconds of the calculation, ``code`` the labelling code and its
    version, ``extra`` labeller-specific numbers (e.g. GPAW's Pulay correction).
    """

    atoms: Atoms | None
    reason: str | None
    wall_s: float = 0.0
    code: str = ""
    extra: dict = field(default_factory=dict)


def code_version(kind: str) -> str:
    """``"<package> <version>"`` of the code behind a labeller kind."""
    package = {"chgnet": "chgnet", "sevennet": "sevenn", "gpaw": "gpaw"}.get(kind, "ase")
    try:
        from importlib.metadata import version

        return f"{package} {version(package)}"
    except Exception:  # noqa: BLE001  # not installed: the label fails elsewhere with a clear reason
        return package


def label_with_provenance(spec: LabellerSpec, atoms: Atoms) -> LabelOutcome:
    """Label one configuration and say how: see :class:`LabelOutcome`.

    Never raises for a failing calculation: the reason (exception type and
    message, SCF non-convergence, non-finite numbers) is returned instead so
    the caller can quarantine it. Calculators are cached per process and thread.
    """
    t0 = time.perf_counter()
    code = code_version(spec.kind)
    extra: dict = {}
    work = atoms.copy()
    try:
        calc = _cached_calculator(spec)
        work.calc = calc
        forces = work.get_forces()
        energy = force_consistent_energy(work)
        stress = work.get_stress() if spec.stress and work.pbc.all() else None
        if spec.kind == "gpaw":
            scf = getattr(calc, "scf", None)
            if scf is not None and getattr(scf, "converged", True) is False:
                return LabelOutcome(None, "GPAW SCF did not converge", time.perf_counter() - t0, code)
            if stress is not None:
                from mtpkit.active_learning.dft_gpaw import pulay_stress

                correction, extra = pulay_stress(work, spec.parameters)
                stress = np.asarray(stress, dtype=float) + correction
    except Exception as exc:  # noqa: BLE001  # a failed calculation is data, not a crash
        name = type(exc).__name__
        reason = f"SCF did not converge ({name}: {exc})" if "Convergence" in name else f"{name}: {exc}"
        return LabelOutcome(None, reason, time.perf_counter() - t0, code)
    finally:
        work.calc = None
    wall = time.perf_counter() - t0
    reason = check_label(energy, forces, stress, len(atoms))
    if reason:
        return LabelOutcome(None, reason, wall, code, extra)
    return LabelOutcome(labelled_copy(atoms, energy, forces, stress), None, wall, code, extra)


def label_one(spec: LabellerSpec, atoms: Atoms) -> tuple[Atoms | None, str | None]:
    """Label one configuration: ``(labelled copy, None)`` or ``(None, reason)``
    (:func:`label_with_provenance` without the provenance)."""
    out = label_with_provenance(spec, atoms)
    return out.atoms, out.reason


# --------------------------------------------------------------------------- batch (clusters)


@dataclass
class BatchLabeller:
    """One job folder per configuration for VASP or Quantum ESPRESSO on a cluster.

    :meth:`prepare` writes the inputs with ASE's writers and a ``job.sh`` from
    the user's template (``{name}``, ``{folder}``, ``{natoms}`` are filled in);
    :meth:`submit` runs ``submit_command`` (e.g. ``sbatch job.sh``) inside the
    folder; :meth:`ingest` reads ``vasprun.xml``/``OUTCAR`` or the ``pw``
    output with ASE's readers once the job finished.

    Attributes
    ----------
    code:
        ``"vasp"`` or ``"qe"``.
    job_template:
        Text of the job script.
    submit_command:
        Command run in the job folder to submit it (split like a shell would).
    input_parameters:
        VASP: INCAR tags (``{"encut": 520, "ediff": 1e-6, ...}``), written with
        :class:`ase.calculators.vasp.Vasp`'s input writer when available, else
        as a plain INCAR. QE: ``input_data``, ``pseudopotentials``, ``kpts``
        for :func:`ase.io.espresso.write_espresso_in`.
    """

    code: str
    job_template: str
    submit_command: str = "sbatch job.sh"
    input_parameters: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.code not in ("vasp", "qe"):
            raise UserError(f"labeller.code: must be 'vasp' or 'qe', got {self.code!r}")

    def prepare(self, atoms: Atoms, folder: str | os.PathLike, name: str) -> Path:
        """Write the job folder (inputs + ``job.sh``); returns it."""
        from ase.io import write

        d = Path(folder)
        d.mkdir(parents=True, exist_ok=True)
        p = dict(self.input_parameters)
        if self.code == "vasp":
            write(d / "POSCAR", atoms, format="vasp", direct=True, sort=False)
            kpts = p.pop("kpts", None)
            incar = "".join(f"{k.upper()} = {_incar_value(v)}\n" for k, v in sorted(p.items()))
            (d / "INCAR").write_text(incar)
            if kpts is not None:
                k = [int(x) for x in kpts]
                (d / "KPOINTS").write_text(f"auto\n0\nGamma\n{k[0]} {k[1]} {k[2]}\n0 0 0\n")
        else:
            # a label needs forces and stress: pw.x prints them only when asked
            input_data = {k: dict(v) if isinstance(v, dict) else v
                          for k, v in p.get("input_data", {}).items()}
            control = input_data.setdefault("control", {})
            control["tprnfor"] = True
            control.setdefault("tstress", True)
            write(d / "pw.in", atoms, format="espresso-in", input_data=input_data,
                  pseudopotentials=p.get("pseudopotentials", {}),
                  kpts=tuple(p.get("kpts", (1, 1, 1))))
        script = self.job_template.format(name=name, folder=str(d.resolve()), natoms=len(atoms))
        (d / "job.sh").write_text(script)
        os.chmod(d / "job.sh", 0o755)
        return d

    def submit(self, folder: str | os.PathLike) -> str:
        """Run the submit command inside ``folder``; returns its standard output."""
        proc = subprocess.run(shlex.split(self.submit_command), cwd=folder, capture_output=True, text=True,
                              check=False)
        if proc.returncode != 0:
            raise LabelError(f"submit command failed ({proc.returncode}): {proc.stderr.strip()}")
        (Path(folder) / ".submitted").write_text(proc.stdout)
        return proc.stdout

    def ingest(self, atoms: Atoms, folder: str | os.PathLike, *,
               finished: bool = False) -> tuple[Atoms | None, str | None]:
        """Read a job: ``(labelled copy, None)``, ``(None, reason)`` or ``(None, "pending")``.

        ``atoms`` is the configuration the folder was prepared from; the
        output's species, cell and positions must match it (0.001 Å), so a
        relaxation or a mixed-up folder is never labelled with the wrong
        geometry. An output without its end-of-run marker (VASP's timing
        block, pw.x's ``JOB DONE``) is ``"pending"``; pass ``finished=True``
        when the scheduler says the job ended, and such an output (walltime
        kill, crash) is quarantined with a reason instead.
        """
        d = Path(folder)
        try:
            if self.code == "vasp":
                return self._ingest_vasp(atoms, d, finished)
            return self._ingest_qe(atoms, d, finished)
        except LabelError as exc:
            return None, exc.reason

    def _ingest_vasp(self, atoms: Atoms, d: Path, finished: bool) -> tuple[Atoms | None, str | None]:
        from ase.io import read

        outcar = d / "OUTCAR"
        vasprun = d / "vasprun.xml"
        if not outcar.exists() and not vasprun.exists():
            return _unfinished(finished, "no OUTCAR or vasprun.xml was written")
        if outcar.exists():
            lines = outcar.read_text(errors="replace").splitlines()
            done = any("General timing and accounting" in line for line in lines)
            # while VASP runs, the current loop is unconverged by its numbers: only its exit
            # line, or the numbers once the run is over, decide
            if vasp_scf_converged(lines, run_ended=done) is False:
                raise LabelError("VASP electronic loop did not converge "
                                 "(last SCF: EDIFF was not reached)")
            if not done:
                return _unfinished(finished, "OUTCAR has no 'General timing and accounting' block")
        else:
            text = vasprun.read_text(errors="replace")
            if "</modeling>" not in text:
                return _unfinished(finished, "vasprun.xml is not closed (no </modeling>)")
            reason = _vasprun_scf_problem(vasprun)
            if reason:
                raise LabelError(reason)
        try:
            res = read(vasprun if vasprun.exists() else outcar, index=-1)
        except Exception as exc:  # noqa: BLE001
            raise LabelError(f"cannot read VASP output: {type(exc).__name__}: {exc}") from None
        return self._finish(atoms, res)

    def _ingest_qe(self, atoms: Atoms, d: Path, finished: bool) -> tuple[Atoms | None, str | None]:
        from ase.io import read

        out = next((d / n for n in ("pw.out", "espresso.pwo", "pw.pwo") if (d / n).exists()), None)
        if out is None:
            return _unfinished(finished, "no pw.out / espresso.pwo / pw.pwo was written")
        text = out.read_text(errors="replace")
        if "convergence NOT achieved" in text:
            raise LabelError("QE SCF did not converge (convergence NOT achieved)")
        err = re.search(r"Error in routine\s+(\S+)\s*\(\s*-?\d+\s*\):\s*\n\s*(.*)", text)
        if err:
            raise LabelError(f"pw.x stopped with an error in {err.group(1)}: {err.group(2).strip()}")
        if "JOB DONE" not in text:
            missing = ("SCF convergence" if "convergence has been achieved" not in text
                       else "forces" if "Forces acting on atoms" not in text else "the end of the run")
            return _unfinished(finished, f"pw.x output has no 'JOB DONE' (stops before {missing})")
        try:
            res = read(out, format="espresso-out", index=-1)
        except Exception as exc:  # noqa: BLE001
            raise LabelError(f"cannot read pw output: {type(exc).__name__}: {exc}") from None
        return self._finish(atoms, res)

    @staticmethod
    def _finish(atoms: Atoms, res: Atoms) -> tuple[Atoms | None, str | None]:
        if len(res) != len(atoms) or not np.array_equal(res.numbers, atoms.numbers):
            raise LabelError("output structure does not match the submitted one (atoms or order differ)")
        mismatch = _geometry_mismatch(atoms, res)
        if mismatch:
            raise LabelError(f"output structure does not match the submitted one ({mismatch})")
        try:
            energy = force_consistent_energy(res)
            forces = res.get_forces()
        except Exception as exc:  # noqa: BLE001  # PropertyNotImplementedError, missing results
            raise LabelError(f"output has no energy or forces ({type(exc).__name__}: {exc})") from None
        try:
            stress = res.get_stress()
        except Exception:  # noqa: BLE001
            stress = None
        reason = check_label(energy, forces, stress, len(atoms))
        if reason:
            return None, reason
        return labelled_copy(atoms, energy, forces, stress), None


def _unfinished(finished: bool, what: str) -> tuple[None, str]:
    if finished:
        raise LabelError(f"job ended before the output was complete: {what}")
    return None, "pending"


#: length tolerance (Å) between the prepared structure and the one a code writes back
GEOMETRY_TOL = 1e-3


def _geometry_mismatch(atoms: Atoms, res: Atoms) -> str | None:
    """Why ``res`` (read back from the output) is not the geometry of ``atoms``, or ``None``."""
    if atoms.pbc.all():
        dcell = np.abs(np.asarray(res.cell) - np.asarray(atoms.cell)).max()
        if dcell > GEOMETRY_TOL:
            return f"cell differs by {dcell:.2g} Å"
        frac = np.linalg.solve(np.asarray(atoms.cell).T, (res.positions - atoms.positions).T).T
        frac -= np.round(frac)
        shift = frac @ np.asarray(atoms.cell)
    else:
        shift = res.positions - atoms.positions
    worst = float(np.linalg.norm(shift, axis=1).max())
    if worst > GEOMETRY_TOL:
        return f"an atom moved by {worst:.3g} Å (a relaxation or MD run, or another job's folder)"
    return None


_VASP_IONIC = re.compile(r"Iteration\s+(\d+)\s*\(")


def vasp_scf_converged(lines: list[str], run_ended: bool = True) -> bool | None:
    """Whether the last electronic loop of a VASP OUTCAR converged; ``None`` if it cannot tell.

    The loop's exit line decides when present (VASP 6 writes ``aborting loop
    EDIFF was not reached (unconverged)``; VASP 5 and 6 write ``aborting loop
    because EDIFF is reached``). Without one (VASP 5 stops silently at NELM),
    the last ``total energy-change (2. order)`` line must have both numbers
    below ``EDIFF`` (eV), the rule ASE's ``Vasp.read_convergence`` uses. Only the last ionic
    step counts: that is the one being labelled. With ``run_ended=False`` (VASP still
    running) only an exit line decides: the numbers of a running loop are not a verdict.
    """
    exit_ok, change_ok = _vasp_last_scf(lines)
    if exit_ok is not None:
        return exit_ok
    return change_ok if run_ended else None


def _vasp_last_scf(lines: list[str]) -> tuple[bool | None, bool | None]:
    """(what the last loop's exit line says, what its last energy change says); ``None``: absent."""
    ediff = None
    ionic = None
    exit_ok: bool | None = None
    last_change: tuple[float, float] | None = None
    for line in lines:
        if ediff is None and line.lstrip().startswith("EDIFF  ="):
            ediff = float(line.split("=")[1].split()[0])
        m = _VASP_IONIC.search(line)
        if m and m.group(1) != ionic:
            ionic, exit_ok, last_change = m.group(1), None, None
        if "aborting loop" in line:
            exit_ok = "because EDIFF is reached" in line
        elif "total energy-change" in line and "MIXING" not in line:
            change = _energy_change(line)
            if change is not None:
                last_change, exit_ok = change, None
    if ediff is None or last_change is None:
        return exit_ok, None
    return exit_ok, abs(last_change[0]) < ediff and abs(last_change[1]) < ediff


def _energy_change(line: str) -> tuple[float, float] | None:
    # " total energy-change (2. order) :-0.6025550E-02  (-0.6005618E-02)"; the second number is
    # sometimes printed without its "E" (" 0.2737684-111"), which means 1e-111-ish: treat as 0
    try:
        body = line.split(":", 1)[1]
        first, _, rest = body.partition("(")
        second = rest.split(")")[0].strip()
        a = float(first)
        try:
            b = float(second)
        except ValueError:
            b = 0.0
        return a, b
    except (IndexError, ValueError):
        return None


def _vasprun_scf_problem(path: Path) -> str | None:
    """Why the last calculation in ``vasprun.xml`` is not a converged SCF, or ``None``.

    vasprun.xml has no convergence flag; a last electronic loop that used all
    ``NELM`` steps is taken as not converged (as VASP stops there).
    """
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        return f"cannot parse vasprun.xml ({exc})"
    nelm = root.find("./parameters//i[@name='NELM']")
    calcs = root.findall("calculation")
    if nelm is None or not calcs:
        return None
    nsteps = len(calcs[-1].findall("scstep"))
    if nsteps >= int(nelm.text.split()[0]):
        return f"VASP electronic loop did not converge (used all NELM = {nsteps} steps)"
    return None


def _incar_value(v: Any) -> str:
    if isinstance(v, bool):
        return ".TRUE." if v else ".FALSE."
    if isinstance(v, (list, tuple)):
        return " ".join(str(x) for x in v)
    return str(v)


_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_name(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return _SAFE.sub("_", text)
