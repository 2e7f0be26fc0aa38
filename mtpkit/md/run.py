"""One LAMMPS MD run (NVE / NVT / NPT) from an ASE Atoms or pymatgen Structure.

A run lives in its own folder::

    structure.data   initial LAMMPS data file (LAMMPS frame)
    log.lammps       LAMMPS log (appended on resume)
    thermo.dat       step time_ps T(K) PE(eV) KE(eV) Etot(eV) P(bar) V(Å^3) lx ly lz xy xz yz [max_gamma]
    traj.dump        unwrapped coordinates (id type xu yu zu, %.17g) every dump_every steps
    run.restart      LAMMPS restart at the last checkpoint; state.json says its step
    state.json       step, status, done, max_gamma, message, save file, settings
    last_good.extxyz last configuration that passed the sanity checks, written when a run fails
    extrapolative.extxyz  (plugin with extrapolation control) configurations graded above
                     ``select_threshold``, appended by the pair style

The run advances in chunks of ``restart_every`` steps; after each chunk it
writes the restart file and ``state.json`` atomically. :func:`run_md` on a
folder with a checkpoint resumes from it: frames, thermo lines and saved
configurations written after the checkpoint are dropped, so the trajectory has
no gap and no duplicate frame.

A run ends *finished* (``done: true`` in ``state.json``) with status ``"done"``
(all steps) or ``"extrapolation_break"`` (the pair style's extrapolation grade
went above ``break_threshold`` and it halted the run; a checkpoint is written at
that step). A finished run is never run again: :func:`run_md` returns the
recorded result (:func:`read_result`), and sweeps skip it. A ``"done"`` run asked
for more steps than it has is extended; an extrapolation break is final.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from mtpkit.errors import UserError
from mtpkit.io_utils import atomic_open, atomic_write_json
from mtpkit.md import lammps_env
from mtpkit.md.structure import as_atoms, box_from_lammps, lammps_atoms, species_types, write_data

ENSEMBLES = ("nve", "nvt", "npt")
BAROSTATS = ("iso", "aniso", "tri")
GPA_TO_BAR = 1.0e4
THERMO_COLUMNS = ["step", "time_ps", "temp_K", "pe_eV", "ke_eV", "etotal_eV", "press_bar",
                  "vol_A3", "lx", "ly", "lz", "xy", "xz", "yz"]


#: the default blow-up distance as a fraction of the potential's min_dist, in production as in exploration.
#: A pair just inside min_dist is a contact the extrapolation grade already reports, not yet fused atoms:
#: with min_dist = "data" the bound is one training frame's closest pair; in a 296-atom NYZC75 box at 450 K
#: one run passed γ = 10 and recovered, another went on to two atoms 0.58 Å apart six steps after a contact
#: 0.5 % inside min_dist, which this bound still stops (benchmarks/RESULTS.md, session 11)
COLLAPSE_FRACTION = 0.6


def collapse_distance(given: float | None, potential_min_dist: float | None) -> float:
    """The distance (Å) below which a pair stops an MD run as a blow-up: ``given`` when set, else
    :data:`COLLAPSE_FRACTION` of the potential's ``min_dist``, else 0.5 Å."""
    if given:
        return float(given)
    if potential_min_dist:
        return COLLAPSE_FRACTION * float(potential_min_dist)
    return 0.5


@dataclass
class MDSettings:
    """Settings of one MD run.

    Attributes
    ----------
    ensemble: ``"nve"``, ``"nvt"`` or ``"npt"`` (Nosé–Hoover chains for NVT/NPT).
    temperature: target (and initial-velocity) temperature in K.
    steps: number of MD steps.
    timestep: fs (> 0).
    pressure: target pressure in GPa (NPT).
    barostat: ``"iso"``, ``"aniso"`` or ``"tri"`` (full triclinic cell fluctuations).
    tdamp, pdamp: thermostat / barostat damping times in fs (default 100 / 1000 timesteps).
    seed: velocity seed (positive int); replicas should use different seeds.
    init_velocities: draw Gaussian velocities at ``temperature`` (zero total momentum).
    thermo_every, dump_every, restart_every: output intervals in steps.
    min_dist: Å; a pair closer than this stops the run as a blow-up (``None``:
        :func:`collapse_distance` of the potential's ``min_dist``).
    threads: OpenMP threads per MPI rank for LAMMPS (``package omp``); ``pair_style mtp``
        runs its site kernels on them (results do not depend on the count).
    """

    ensemble: str = "npt"
    temperature: float = 300.0
    steps: int = 1000
    timestep: float = 1.0
    pressure: float = 0.0
    barostat: str = "tri"
    tdamp: float | None = None
    pdamp: float | None = None
    seed: int = 12345
    init_velocities: bool = True
    thermo_every: int = 100
    dump_every: int = 100
    restart_every: int = 1000
    min_dist: float | None = None
    threads: int = 1

    def __post_init__(self) -> None:
        self.ensemble = str(self.ensemble).lower()
        self.barostat = str(self.barostat).lower()
        if self.ensemble not in ENSEMBLES:
            raise UserError(f"ensemble: expected one of {ENSEMBLES}, got {self.ensemble!r}")
        if self.barostat not in BAROSTATS:
            raise UserError(f"barostat: expected one of {BAROSTATS}, got {self.barostat!r}")
        if not (isinstance(self.timestep, (int, float)) and self.timestep > 0
                and math.isfinite(self.timestep)):
            raise UserError(f"timestep: must be a positive number of fs, got {self.timestep!r}")
        if not self.temperature > 0 and (self.ensemble != "nve" or self.init_velocities):
            raise UserError(f"temperature: must be > 0 K, got {self.temperature!r}")
        for name in ("steps", "thermo_every", "dump_every", "restart_every", "seed", "threads"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < (0 if name == "steps" else 1):
                raise UserError(f"{name}: must be a positive integer, got {value!r}")
        for name in ("tdamp", "pdamp"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise UserError(f"{name}: must be a positive time in fs, got {value!r}")

    @property
    def tdamp_fs(self) -> float:
        return self.tdamp if self.tdamp is not None else 100.0 * self.timestep

    @property
    def pdamp_fs(self) -> float:
        return self.pdamp if self.pdamp is not None else 1000.0 * self.timestep


FINISHED = ("done", "extrapolation_break")
"""Statuses of a finished run: recorded with ``done: true`` and never run again."""


@dataclass
class MDResult:
    """Outcome of :func:`run_md` (or of :func:`read_result` on a run folder).

    Attributes
    ----------
    status:
        ``"done"`` (all steps run), ``"extrapolation_break"`` (the max extrapolation grade
        went above the pair style's ``break_threshold``, which halted the run; final),
        ``"interrupted"`` (LAMMPS stopped early for another reason, e.g. a ``timer timeout``
        or ``fix halt``; a checkpoint is written there and a resume continues from it),
        ``"failed"`` (blow-up or LAMMPS error; see ``message``; a resume restarts from the
        last checkpoint) or ``"running"`` (read from a folder whose run has not ended).
    steps_done:
        MD steps run (for a break: the step at which the grade crossed the threshold).
    steps:
        MD steps asked for.
    wall_time:
        Seconds, summed over all sessions of the run.
    folder:
        The run folder.
    message:
        Why the run stopped early or failed (``"already finished"`` when nothing was run).
    files:
        Output name (``log``, ``thermo``, ``trajectory``, ``restart``, ``state``, ``data``,
        ``last_good``, ``saved``) -> path, for the files that exist.
    timestep:
        fs (MD time of a step: ``step * timestep``).
    max_gamma:
        Largest extrapolation grade (dimensionless, MaxVol γ) of every step the pair style
        graded in the run, ``steps_done`` included; NaN when the run was not graded
        (no extrapolation control, or the fix-external engine).
    saved_configurations:
        Configurations the pair style saved (grade above ``select_threshold``), one per MD
        step in step order, up to ``steps_done``: ``info["step"]`` (MD step),
        ``info["max_gamma"]``, ``info["time_fs"]`` and per-atom ``arrays["gamma"]``;
        positions in Å, LAMMPS frame. Duplicates of a step (a restart re-grades and
        re-appends its checkpoint step) are removed, keeping the last copy.
    last_good:
        For a failed run, the last configuration that passed the sanity checks (also in
        ``last_good.extxyz``, with velocities in ASE units); ``None`` otherwise.
    """

    status: str
    steps_done: int
    steps: int
    wall_time: float
    folder: str
    message: str = ""
    files: dict[str, str] = field(default_factory=dict)
    timestep: float = math.nan
    max_gamma: float = math.nan
    saved_configurations: list[Atoms] = field(default_factory=list, repr=False)
    last_good: Atoms | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        """``True`` for a run that will not run again (``"done"`` or ``"extrapolation_break"``)."""
        return self.status in FINISHED

    def to_dict(self) -> dict:
        """The JSON form (a sweep manifest entry): the fields above, with ``max_gamma``
        ``None`` when not graded, and the Atoms replaced by ``saved_steps`` (MD steps of
        ``saved_configurations``), ``n_saved`` and ``last_good_file`` (path or ``None``);
        :func:`read_result` on ``folder`` gives the Atoms back."""
        return {
            "status": self.status, "steps_done": int(self.steps_done), "steps": int(self.steps),
            "wall_time": float(self.wall_time), "folder": self.folder, "message": self.message,
            "files": dict(self.files), "timestep": _json_float(self.timestep),
            "max_gamma": _json_float(self.max_gamma),
            "saved_steps": [int(a.info["step"]) for a in self.saved_configurations],
            "n_saved": len(self.saved_configurations),
            "last_good_file": self.files.get("last_good") if self.last_good is not None else None,
        }


def _json_float(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


class BlowUp(RuntimeError):
    """The MD became unphysical (lost atoms, NaN energy, atoms too close)."""


def run_md(structure, engine, species: Sequence[str], settings: MDSettings,
           folder: str | os.PathLike, progress: Callable[[int, int], None] | None = None,
           screen: bool = False) -> MDResult:
    """Run (or resume, or skip when finished) one MD run in ``folder``.

    Parameters
    ----------
    structure:
        ASE Atoms, pymatgen Structure or a structure file path.
    engine:
        :class:`~mtpkit.md.engines.PluginEngine` or :class:`~mtpkit.md.engines.ExternalEngine`.
    species:
        Chemical symbols of LAMMPS types 1..n (the potential's species order).
    settings:
        :class:`MDSettings`.
    folder:
        Run folder; created when missing.
    progress:
        Called as ``progress(steps_done, steps)`` after every chunk.

    Returns
    -------
    MDResult
        For a finished run (``"done"`` with at least ``settings.steps`` steps, or an
        ``"extrapolation_break"``) nothing is run: the result recorded in ``folder`` is
        returned (:func:`read_result`, message ``"already finished"``).
    """
    t0 = time.perf_counter()
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    state = _read_state(folder)
    if state is not None and _finished(state, settings.steps):
        result = read_result(folder)
        result.message = "already finished" + (f": {result.message}" if result.message else "")
        return result
    if state is not None and not (folder / "run.restart").is_file():
        state = None  # nothing to resume from: start again
    run = _Run(engine, list(species), settings, folder, state, t0)
    atoms = run.prepare(structure)
    run.open(screen)
    try:
        run.setup(atoms)
        run.chunks(progress)
    except BlowUp as exc:
        run.status, run.message = "failed", f"MD blow-up after step {run.steps_done} (the last checkpoint): {exc}"
    except Exception as exc:  # noqa: BLE001  # LAMMPS errors arrive as generic exceptions; recorded as status
        run.status, run.message = "failed", (f"LAMMPS error after step {run.steps_done} (the last checkpoint; "
                                             f"the failed chunk's thermo and steps are dropped): {exc}")
    finally:
        run.close()
    return run.result()


class _Run:
    """The state of one :func:`run_md` call, one method per phase: prepare the folder, open
    LAMMPS, set up (fresh or from the restart), run chunks with checkpoints, close, result."""

    def __init__(self, engine, species: list[str], settings: MDSettings, folder: Path, state: dict | None,
                 t0: float) -> None:
        self.engine, self.species, self.settings, self.folder = engine, species, settings, folder
        self.state, self.t0 = state, t0
        self.start = int(state.get("step", 0)) if state else 0
        self.wall_before = float(state.get("wall_time", 0.0)) if state else 0.0
        self.grading = _grading(engine)
        self.save = _save_path(engine, folder)
        self.steps_done = self.start
        self.max_gamma = math.nan
        self.status, self.message = "done", ""
        self.resume_from = (self.start, math.nan)  # step and max_gamma of the restart file on disk
        self.last_good: Atoms | None = None
        self.lmp = None
        self.rank0 = True

    def prepare(self, structure) -> Atoms | None:
        """Clear what an earlier failure or a fresh start replaces; the start structure (fresh runs)."""
        with contextlib.suppress(FileNotFoundError):  # from an earlier failure of this run
            (self.folder / "last_good.extxyz").unlink()
        atoms = lammps_atoms(as_atoms(structure, "structure")) if self.start == 0 else None
        if atoms is not None:
            species_types(atoms, self.species)  # bad species: a UserError now, not a failed run
            if self.save is not None:
                with contextlib.suppress(FileNotFoundError):  # a fresh run saves from scratch
                    self.save.unlink()
        self.last_good = atoms
        return atoms

    def open(self, screen: bool) -> None:
        s = self.settings
        self.min_dist = collapse_distance(s.min_dist, self.engine.default_min_dist())
        self.lmp = lammps_env.new_lammps(log=None, screen=screen,
                                         extra_args=["-pk", "omp", str(s.threads)] if s.threads > 1 else None)
        self.lmp.command(f"log {self.folder / 'log.lammps'} append")
        self.rank0 = int(self.lmp.extract_setting("world_rank")) == 0

    def checkpoint(self, run_status: str) -> None:
        _checkpoint(self.lmp, self.folder, self.settings, self.steps_done,
                    self.wall_before + time.perf_counter() - self.t0, status=run_status,
                    max_gamma=self.max_gamma, message=self.message, save=self.save)
        self.resume_from = (self.steps_done, self.max_gamma)

    def setup(self, atoms: Atoms | None) -> None:
        lmp, state = self.lmp, self.state
        if self.start == 0:
            _fresh_setup(lmp, atoms, self.engine, self.species, self.settings, self.folder, self.min_dist)
        else:
            _truncate_outputs(self.folder, self.start, self.save)
            if self.grading is not None:
                self.max_gamma = (_nan(state.get("checkpoint_max_gamma", state.get("max_gamma")))
                                  if "max_gamma" in state
                                  else _max_gamma_from_files(self.folder, self.save, self.start - 1))
                self.resume_from = (self.start, self.max_gamma)
            _resume_setup(lmp, self.engine, self.species, self.settings, self.folder, self.min_dist)
        self.last_good = _gather_atoms(lmp, self.species)
        if self.steps_done >= self.settings.steps:  # nothing to run (steps = 0)
            self.checkpoint("done")

    def chunks(self, progress: Callable[[int, int], None] | None) -> None:
        """Run to ``settings.steps`` in chunks of ``restart_every``, a checkpoint after each; stop
        at the pair style's extrapolation break (final) or another early stop (resumable)."""
        lmp, s = self.lmp, self.settings
        while self.steps_done < s.steps:
            n = min(s.restart_every - self.steps_done % s.restart_every, s.steps - self.steps_done)
            target = self.steps_done + n
            _thermo_fix(lmp, self.engine, s, self.folder, self.steps_done)
            if self.grading is not None:
                _gamma_fix(lmp, *self.grading)
            lmp.command(f"run {n} start 0 stop {s.steps} pre yes post no")
            reached = int(lmp.get_thermo("step"))
            if self.grading is not None:
                self.max_gamma = _nanmax(self.max_gamma, _gamma_fix_max(lmp))
            halted = _pair_value(lmp, "halted") == 1.0
            self.last_good = _check_sane(lmp, self.species, self.min_dist)
            self.steps_done = reached
            if halted:  # the pair style's soft halt (timer->force_timeout): final
                self.status = "extrapolation_break"
                self.message = (f"max extrapolation grade {_pair_value(lmp, 'max_gamma'):.6g} above "
                                f"the break threshold at step {reached}")
            elif reached < target:  # a timer timeout, fix halt, ...: resumable from here
                self.status = "interrupted"
                self.message = (f"LAMMPS stopped the run at step {reached} before step {target} "
                                "without an extrapolation break (timer timeout or fix halt?); "
                                "a resume continues from here")
            self.checkpoint("running" if self.status == "done" and self.steps_done < s.steps else self.status)
            if progress is not None:
                progress(self.steps_done, s.steps)
            if self.status != "done":
                break

    def close(self) -> None:
        """Best-effort cleanup: the grades of a chunk cut short, the thermo file, LAMMPS itself."""
        lmp = self.lmp
        if lmp is None:
            return
        if self.grading is not None:  # a chunk cut short by an error: its grades still count
            with contextlib.suppress(Exception):  # best effort, as below
                if lmp.has_id("fix", "mtpkit_gamma"):
                    self.max_gamma = _nanmax(self.max_gamma, _gamma_fix_max(lmp))
        try:
            if lmp.has_id("fix", "mtpkit_print"):
                lmp.command("unfix mtpkit_print")
            if int(lmp.extract_setting("world_rank")) == 0:
                _truncate_thermo(self.folder / "thermo.dat", self.steps_done + 1)
        except Exception:  # noqa: BLE001  # best-effort cleanup; the run's status is already set
            pass
        with contextlib.suppress(Exception):  # best-effort cleanup, as above
            lmp.close()

    def result(self) -> MDResult:
        """Record a failure (last good configuration, state at the last checkpoint); the result."""
        s, folder = self.settings, self.folder
        wall = self.wall_before + time.perf_counter() - self.t0
        last_good = self.last_good
        if self.status == "failed":
            if last_good is not None and self.rank0:
                from ase.io import write

                write(folder / "last_good.extxyz", last_good, format="extxyz")
            if self.rank0:  # recorded for read_result; a resume restarts from the last checkpoint
                _write_state(folder, s, self.resume_from[0], wall, status="failed", max_gamma=self.max_gamma,
                             message=self.message, save=self.save, checkpoint_max_gamma=self.resume_from[1])
        else:
            last_good = None
        # a failed run keeps the saves of its failed chunk (candidates for labels); a resume drops them
        saved = (read_saved(self.save, s.timestep, None if self.status == "failed" else self.steps_done)
                 if self.save is not None else [])
        return MDResult(self.status, self.steps_done, s.steps, wall, str(folder), self.message,
                        _files(folder, self.save), s.timestep, self.max_gamma, saved, last_good)


def read_result(folder: str | os.PathLike) -> MDResult | None:
    """The result recorded in a run folder (``state.json`` and the files beside it).

    Everything :func:`run_md` returns, read back without LAMMPS: status, steps (up to the
    last checkpoint for a run that has not finished), ``max_gamma`` and the saved
    configurations; for a failed run also ``last_good`` (from ``last_good.extxyz``) and
    the configurations saved after its last checkpoint, with ``steps_done`` the checkpoint
    step. ``None`` when the folder has no ``state.json`` (no run, or a run that stopped
    before LAMMPS started). Folders written before ``max_gamma`` was recorded get it from
    ``thermo.dat``'s ``max_gamma`` column and the saved configurations.
    """
    folder = Path(folder).resolve()
    state = _read_state(folder)
    if state is None:
        return None
    step = int(state.get("step", 0))
    status = str(state.get("status") or ("done" if state.get("done") else "running"))
    settings = state.get("settings") or {}
    timestep = float(settings.get("timestep", math.nan))
    if state.get("save"):
        save = folder / state["save"]
    else:  # recorded before the save file was: the default name, when present
        save = folder / "extrapolative.extxyz" if "save" not in state else None
        if save is not None and not save.is_file():
            save = None
    failed = status == "failed"
    saved = read_saved(save, timestep, None if failed else step) if save is not None else []
    max_gamma = (_nan(state.get("max_gamma")) if "max_gamma" in state
                 else _max_gamma_from_files(folder, save, step))
    last_good = None
    if failed and (folder / "last_good.extxyz").is_file():
        from ase.io import read

        last_good = read(folder / "last_good.extxyz", format="extxyz")
    return MDResult(status, step, int(state.get("steps", step)),
                    float(state.get("wall_time", 0.0)), str(folder), str(state.get("message", "")),
                    _files(folder, save), timestep, max_gamma, saved, last_good)


def is_finished(folder: str | os.PathLike, steps: int | None = None) -> bool:
    """Whether the run in ``folder`` is finished: ``"done"`` (with at least ``steps``
    steps when given) or stopped at an extrapolation break. Such a run is never run again."""
    state = _read_state(Path(folder))
    if state is None:
        return False
    if steps is None:
        return bool(state.get("done")) or state.get("status") == "extrapolation_break"
    return _finished(state, steps)


def read_saved(path: str | os.PathLike, timestep: float = math.nan,
               up_to: int | None = None) -> list[Atoms]:
    """The configurations in a ``pair_style mtp`` save file, one per MD step, in step order.

    A step saved more than once (a restart re-grades its checkpoint step) keeps its last
    copy; steps after ``up_to`` and a frame cut short by a kill are left out. Each Atoms has
    ``info["step"]``, ``info["max_gamma"]``, ``info["time_fs"]`` (``step * timestep``) and
    per-atom ``arrays["gamma"]``.
    """
    from ase.io import read

    path = Path(path)
    if not path.is_file():
        return []
    by_step = {}
    for step, text in _saved_frames(path):
        if up_to is None or step <= up_to:
            by_step[step] = text
    out = []
    for step in sorted(by_step):
        atoms = read(io.StringIO(by_step[step].decode()), format="extxyz")
        atoms.info["step"] = step
        atoms.info["time_fs"] = step * timestep
        out.append(atoms)
    return out


# --- LAMMPS set-up --------------------------------------------------------------

def _common_header(lmp) -> None:
    lmp.command("units metal")
    lmp.command("atom_style atomic")
    lmp.command("atom_modify map array")
    lmp.command("boundary p p p")


def _fresh_setup(lmp, atoms: Atoms, engine, species, settings: MDSettings, folder: Path,
                 min_dist: float) -> None:
    data = folder / "structure.data"
    write_data(data, atoms, species)
    _common_header(lmp)
    lmp.command(f"read_data {data}")
    _potential_and_fixes(lmp, engine, species, settings, folder, min_dist)
    if settings.init_velocities:
        lmp.command(f"velocity all create {settings.temperature!r} {settings.seed} "
                    "mom yes rot no dist gaussian loop geom")
    _outputs(lmp, engine, settings, folder, append=False)


def _resume_setup(lmp, engine, species, settings: MDSettings, folder: Path,
                  min_dist: float) -> None:
    _common_header(lmp)
    lmp.command(f"read_restart {folder / 'run.restart'}")
    _potential_and_fixes(lmp, engine, species, settings, folder, min_dist)
    _outputs(lmp, engine, settings, folder, append=True)


def _potential_and_fixes(lmp, engine, species, settings: MDSettings, folder: Path,
                         min_dist: float) -> None:
    lmp.command(f"timestep {settings.timestep / 1000.0!r}")
    lmp.command("neighbor 1.0 bin")
    lmp.command("neigh_modify every 1 delay 0 check yes")
    engine.setup(lmp, species, folder, min_dist)
    t = settings.temperature
    tdamp = settings.tdamp_fs / 1000.0
    if settings.ensemble == "nve":
        lmp.command("fix mtpkit_int all nve")
    elif settings.ensemble == "nvt":
        lmp.command(f"fix mtpkit_int all nvt temp {t!r} {t!r} {tdamp!r}")
    else:
        p = settings.pressure * GPA_TO_BAR
        pdamp = settings.pdamp_fs / 1000.0
        lmp.command(f"fix mtpkit_int all npt temp {t!r} {t!r} {tdamp!r} "
                    f"{settings.barostat} {p!r} {p!r} {pdamp!r}")


def _outputs(lmp, engine, settings: MDSettings, folder: Path, append: bool) -> None:
    extra = engine.thermo_fields()
    lmp.command("thermo_style custom step time temp pe ke etotal press vol lx ly lz xy xz yz "
                + " ".join(extra))
    lmp.command("thermo_modify lost error norm no flush yes format float %.10g")
    lmp.command(f"thermo {settings.thermo_every}")
    fields = ["step", "time", "temp", "pe", "ke", "etotal", "press", "vol",
              "lx", "ly", "lz", "xy", "xz", "yz"]
    for name in fields:
        lmp.command(f"variable mtpkit_{name} equal {name}")
    if not append:
        title = " ".join(THERMO_COLUMNS + (["max_gamma"] if extra else []))
        (folder / "thermo.dat").write_text(f"# {title}\n")
    dump = folder / "traj.dump"
    lmp.command(f"dump mtpkit_traj all custom {settings.dump_every} {dump} id type xu yu zu")
    lmp.command("dump_modify mtpkit_traj sort id format float %.17g"
                + (" append yes" if append else ""))


def _thermo_fix(lmp, engine, settings: MDSettings, folder: Path, step: int) -> None:
    """(Re)define the ``fix print`` writing ``thermo.dat`` from ``step`` on.

    Each chunk's set-up prints its first step again, so lines from ``step`` on are
    dropped first and the fix is redefined in append mode.
    """
    if lmp.has_id("fix", "mtpkit_print"):
        lmp.command("unfix mtpkit_print")
    if int(lmp.extract_setting("world_rank")) == 0:
        _truncate_thermo(folder / "thermo.dat", step)
    fields = ["step", "time", "temp", "pe", "ke", "etotal", "press", "vol",
              "lx", "ly", "lz", "xy", "xz", "yz"]
    cols = " ".join(f"${{mtpkit_{n}}}" for n in fields) + "".join(
        f" ${{{e[2:]}}}" for e in engine.thermo_fields())
    lmp.command(f'fix mtpkit_print all print {settings.thermo_every} "{cols}" '
                f'append {folder / "thermo.dat"} screen no')


def _checkpoint(lmp, folder: Path, settings: MDSettings, step: int, wall: float, status: str,
                max_gamma: float = math.nan, message: str = "", save: Path | None = None) -> None:
    """Write ``run.restart`` at ``step``, then ``state.json`` (atomically, rank 0)."""
    tmp = folder / ".run.restart.tmp"
    lmp.command(f"write_restart {tmp}")
    if int(lmp.extract_setting("world_rank")) == 0:
        os.replace(tmp, folder / "run.restart")
        _write_state(folder, settings, step, wall, status=status, max_gamma=max_gamma,
                     message=message, save=save)


def _write_state(folder: Path, settings: MDSettings, step: int, wall: float, status: str,
                 max_gamma: float = math.nan, message: str = "", save: Path | None = None,
                 checkpoint_max_gamma: float | None = None) -> None:
    """``state.json``: ``step`` is the step of ``run.restart`` (a resume starts there);
    ``max_gamma`` the run's largest grade so far. A failed run records the grade at its
    checkpoint apart (``checkpoint_max_gamma``), for an exact resume."""
    if save is not None:
        save = save.relative_to(folder) if save.is_relative_to(folder) else save
    state = {
        "step": step, "steps": settings.steps, "wall_time": wall,
        "done": status in FINISHED, "status": status, "message": message,
        "max_gamma": _json_float(max_gamma), "save": str(save) if save is not None else None,
        "settings": asdict(settings)}
    if checkpoint_max_gamma is not None:
        state["checkpoint_max_gamma"] = _json_float(checkpoint_max_gamma)
    atomic_write_json(folder / "state.json", state)


def _read_state(folder: Path) -> dict | None:
    path = folder / "state.json"
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return state if isinstance(state, dict) else None


def _finished(state: dict, steps: int) -> bool:
    """A break is final (also one recorded with ``done: false`` by older versions); a
    ``"done"`` run is finished when it has at least ``steps`` steps (else it is extended)."""
    return (state.get("status") == "extrapolation_break"
            or int(state.get("step", 0)) >= steps)


def _files(folder: Path, save: Path | None = None) -> dict[str, str]:
    names = {"log": "log.lammps", "thermo": "thermo.dat", "trajectory": "traj.dump",
             "restart": "run.restart", "state": "state.json", "data": "structure.data",
             "last_good": "last_good.extxyz"}
    out = {k: str(folder / v) for k, v in names.items() if (folder / v).exists()}
    if save is not None and save.exists():
        out["saved"] = str(save)
    return out


# --- extrapolation grades ----------------------------------------------------------

def _grading(engine) -> tuple[str, int] | None:
    """``(LAMMPS reference to the max grade, grading interval in steps)`` or ``None``."""
    grading = getattr(engine, "grading", None)
    return grading() if callable(grading) else None


def _save_path(engine, folder: Path) -> Path | None:
    save_path = getattr(engine, "save_path", None)
    return save_path(folder) if callable(save_path) else None


def _gamma_fix(lmp, ref: str, every: int) -> None:
    """Define a ``fix vector`` storing the max grade at every graded step of one chunk.

    The pair style keeps only the latest grade and ``thermo.dat`` samples it every
    ``thermo_every`` steps; this fix sees every graded step. It lives for one chunk
    (:func:`_gamma_fix_max` removes it): ``write_restart`` re-initialises fixes with the
    run's end step reset to 0, which a ``fix vector`` started later cannot size.
    """
    if lmp.has_id("fix", "mtpkit_gamma"):
        lmp.command("unfix mtpkit_gamma")
    lmp.command(f"fix mtpkit_gamma all vector {every} {ref}")


def _gamma_fix_max(lmp) -> float:
    """Largest value stored by the chunk's ``fix vector`` (NaN when it stored none); the
    fix is removed."""
    mod = lammps_env.import_lammps()
    n = lmp.extract_fix("mtpkit_gamma", mod.LMP_STYLE_GLOBAL, mod.LMP_SIZE_VECTOR) or 0
    values = [lmp.extract_fix("mtpkit_gamma", mod.LMP_STYLE_GLOBAL, mod.LMP_TYPE_VECTOR, i)
              for i in range(int(n))]
    lmp.command("unfix mtpkit_gamma")
    return max(values) if values else math.nan


def _pair_value(lmp, name: str) -> float:
    """A scalar the pair style exposes through ``Pair::extract`` (NaN when it has none)."""
    try:
        value = lmp.extract_pair(name)
    except Exception:  # noqa: BLE001  # pair styles without extract(); LAMMPS raises generic errors
        return math.nan
    return float(value) if isinstance(value, (int, float)) else math.nan


def _nan(value) -> float:
    return math.nan if value is None else float(value)


def _nanmax(a: float, b: float) -> float:
    if math.isnan(a):
        return b
    return a if math.isnan(b) else max(a, b)


def _max_gamma_from_files(folder: Path, save: Path | None, up_to: int) -> float:
    """Largest grade in ``thermo.dat``'s ``max_gamma`` column and the saved configurations
    up to step ``up_to`` (for runs recorded before ``state.json`` held ``max_gamma``)."""
    best = math.nan
    thermo = folder / "thermo.dat"
    if thermo.is_file():
        with open(thermo) as fh:
            header = fh.readline().lstrip("#").split()
            if header and header[-1] == "max_gamma":
                for line in fh:
                    cols = line.split()
                    if cols and not line.startswith("#") and int(float(cols[0])) <= up_to:
                        best = _nanmax(best, float(cols[-1]))
    if save is not None and save.is_file():
        for step, text in _saved_frames(save):
            m = re.search(rb"\bmax_gamma=(\S+)", text.split(b"\n", 2)[1])
            if step <= up_to and m is not None:
                best = _nanmax(best, float(m.group(1)))
    return best


def _saved_frames(path: Path) -> list[tuple[int, bytes]]:
    """``(step, text)`` of each complete frame of a pair-style save file, in file order."""
    lines = path.read_bytes().splitlines(keepends=True)
    frames = []
    i = 0
    while i < len(lines):
        try:
            n = int(lines[i])
        except ValueError:
            break
        end = i + 2 + n
        if n < 0 or end > len(lines) or not lines[end - 1].endswith(b"\n"):
            break  # cut short (killed while writing)
        m = re.search(rb"\bstep=(-?\d+)", lines[i + 1])
        if m is None:
            break
        frames.append((int(m.group(1)), b"".join(lines[i:end])))
        i = end
    return frames


def _truncate_saved(path: Path, step: int) -> None:
    """Keep the complete frames of a save file with step < ``step``."""
    if path.is_file():
        keep = b"".join(text for s, text in _saved_frames(path) if s < step)
        if keep != path.read_bytes():
            with atomic_open(path, "wb") as fh:
                fh.write(keep)


# --- resume: drop output written after the checkpoint ----------------------------

def _truncate_outputs(folder: Path, step: int, save: Path | None = None) -> None:
    """Cut ``traj.dump``, ``thermo.dat`` and the save file back to entries with timestep
    < ``step`` (the pair style grades the checkpoint step again and re-appends it)."""
    dump = folder / "traj.dump"
    if dump.is_file():
        with open(dump, "rb+") as fh:
            cut = None
            pos = frame_start = 0
            expect_step = False
            for line in fh:
                if expect_step:
                    if int(line) >= step:
                        cut = frame_start
                        break
                    expect_step = False
                if line.startswith(b"ITEM: TIMESTEP"):
                    frame_start = pos
                    expect_step = True
                pos += len(line)
            if cut is not None:
                fh.truncate(cut)
    _truncate_thermo(folder / "thermo.dat", step)
    if save is not None:
        _truncate_saved(save, step)


def _truncate_thermo(thermo: Path, step: int) -> None:
    """Drop the lines of ``thermo.dat`` with step >= ``step`` (and a line cut short by a
    kill). The file is replaced atomically: a kill during the rewrite loses no line."""
    if thermo.is_file():
        text = thermo.read_text()
        keep = []
        for line in text.splitlines(keepends=True):
            if line.startswith("#"):
                if not keep:  # the column header; later "# Fix print" titles are dropped
                    keep.append(line)
            elif line.strip() and line.endswith("\n") and int(float(line.split()[0])) < step:
                keep.append(line)
        if "".join(keep) != text:
            with atomic_open(thermo, "w") as fh:
                fh.write("".join(keep))


# --- sanity checks and snapshots -------------------------------------------------

def _gather_atoms(lmp, species) -> Atoms:
    """The whole configuration (all ranks) as ASE Atoms, atoms in id order."""
    n = int(lmp.get_natoms())
    x = np.ctypeslib.as_array(lmp.gather_atoms("x", 1, 3), shape=(n * 3,)).reshape(n, 3)
    v = np.ctypeslib.as_array(lmp.gather_atoms("v", 1, 3), shape=(n * 3,)).reshape(n, 3)
    types = np.ctypeslib.as_array(lmp.gather_atoms("type", 0, 1), shape=(n,))
    atoms = Atoms(symbols=[species[t - 1] for t in types], positions=x.copy(),
                  cell=box_from_lammps(lmp), pbc=True)
    from ase import units

    atoms.set_velocities(v / (1000.0 * units.fs))  # LAMMPS metal: Å/ps
    return atoms


def _check_sane(lmp, species, min_dist: float) -> Atoms:
    """The current configuration; raises :class:`BlowUp` when it is unphysical."""
    pe = lmp.get_thermo("pe")
    if not math.isfinite(pe):
        raise BlowUp("potential energy is not finite")
    atoms = _gather_atoms(lmp, species)
    if not np.all(np.isfinite(atoms.positions)):
        raise BlowUp("non-finite coordinates")
    from ase.neighborlist import neighbor_list

    d = neighbor_list("d", atoms, min_dist)
    if d.size:
        raise BlowUp(f"atoms closer than min_dist = {min_dist} Å (closest {d.min():.3f} Å)")
    return atoms
