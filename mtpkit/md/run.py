"""One LAMMPS MD run (NVE / NVT / NPT) from an ASE Atoms or pymatgen Structure.

A run lives in its own folder::

    structure.data   initial LAMMPS data file (LAMMPS frame)
    log.lammps       LAMMPS log (appended on resume)
    thermo.dat       step time_ps T(K) PE(eV) KE(eV) Etot(eV) P(bar) V(Å^3) lx ly lz xy xz yz [max_gamma]
    traj.dump        unwrapped coordinates (id type xu yu zu, %.17g) every dump_every steps
    run.restart      LAMMPS restart at the last checkpoint; state.json says its step
    last_good.extxyz last checkpoint configuration, written when a run fails

The run advances in chunks of ``restart_every`` steps; after each chunk it
writes the restart file and ``state.json`` atomically. :func:`run_md` on a
folder with a checkpoint resumes from it: frames and thermo lines written after
the checkpoint are dropped, so the trajectory has no gap and no duplicate frame.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from mtpkit.errors import UserError
from mtpkit.io_utils import atomic_write_json
from mtpkit.md import lammps_env
from mtpkit.md.structure import as_atoms, box_from_lammps, lammps_atoms, species_types, write_data

ENSEMBLES = ("nve", "nvt", "npt")
BAROSTATS = ("iso", "aniso", "tri")
GPA_TO_BAR = 1.0e4
THERMO_COLUMNS = ["step", "time_ps", "temp_K", "pe_eV", "ke_eV", "etotal_eV", "press_bar",
                  "vol_A3", "lx", "ly", "lz", "xy", "xz", "yz"]


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
    min_dist: Å; a pair closer than this stops the run as a blow-up (``None``: potential's
        ``min_dist`` when known, else 0.5 Å).
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


@dataclass
class MDResult:
    """Outcome of :func:`run_md`.

    ``status`` is ``"done"``, ``"failed"`` (blow-up or LAMMPS error; see ``message``)
    or ``"extrapolation_break"`` (max grade above the break threshold).
    """

    status: str
    steps_done: int
    steps: int
    wall_time: float
    folder: str
    message: str = ""
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


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
    """
    t0 = time.perf_counter()
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    species = list(species)
    state = _read_state(folder)
    start = state.get("step", 0) if state else 0
    wall_before = state.get("wall_time", 0.0) if state else 0.0
    if state and state.get("steps") != settings.steps and start >= settings.steps:
        start = settings.steps
    files = _files(folder)
    if start >= settings.steps and state:
        return MDResult("done", start, settings.steps, wall_before, str(folder),
                        "already finished", files)

    atoms = lammps_atoms(as_atoms(structure, "structure")) if start == 0 else None
    if atoms is not None:
        species_types(atoms, species)  # bad species: a UserError now, not a failed run
    min_dist = settings.min_dist or engine.default_min_dist() or 0.5
    lmp = lammps_env.new_lammps(log=None, screen=screen,
                                extra_args=["-pk", "omp", str(settings.threads)]
                                if settings.threads > 1 else None)
    lmp.command(f"log {folder / 'log.lammps'} append")
    last_good = atoms
    steps_done = start
    status, message = "done", ""
    try:
        if start == 0:
            _fresh_setup(lmp, atoms, engine, species, settings, folder, min_dist)
        else:
            _truncate_outputs(folder, start)
            _resume_setup(lmp, engine, species, settings, folder, min_dist)
        last_good = _gather_atoms(lmp, species)
        while steps_done < settings.steps:
            n = min(settings.restart_every - steps_done % settings.restart_every,
                    settings.steps - steps_done)
            _thermo_fix(lmp, engine, settings, folder, steps_done)
            lmp.command(f"run {n} start 0 stop {settings.steps} pre yes "
                        "post no")
            reached = int(lmp.get_thermo("step"))
            last_good = _check_sane(lmp, species, min_dist)
            if reached < steps_done + n:  # a soft halt: extrapolation break
                steps_done = reached
                status = "extrapolation_break"
                message = f"max extrapolation grade above break threshold at step {reached}"
                break
            steps_done = reached
            _checkpoint(lmp, folder, settings, steps_done,
                        wall_before + time.perf_counter() - t0)
            if progress is not None:
                progress(steps_done, settings.steps)
    except BlowUp as exc:
        status, message = "failed", f"MD blow-up after step {steps_done}: {exc}"
    except Exception as exc:  # noqa: BLE001  # LAMMPS errors arrive as generic exceptions; recorded as status
        status, message = "failed", f"LAMMPS error after step {steps_done}: {exc}"
    finally:
        try:
            if lmp.has_id("fix", "mtpkit_print"):
                lmp.command("unfix mtpkit_print")
            if int(lmp.extract_setting("world_rank")) == 0:
                _truncate_thermo(folder / "thermo.dat", steps_done + 1)
        except Exception:  # noqa: BLE001  # best-effort cleanup; the run's status is already set
            pass
        with contextlib.suppress(Exception):  # best-effort cleanup, as above
            lmp.close()
    if status == "failed" and last_good is not None:
        from ase.io import write

        write(folder / "last_good.extxyz", last_good, format="extxyz")
    wall = wall_before + time.perf_counter() - t0
    if status != "failed":
        _write_state(folder, settings, steps_done, wall,
                     done=(status == "done"), status=status)
    return MDResult(status, steps_done, settings.steps, wall, str(folder), message,
                    _files(folder))


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


def _checkpoint(lmp, folder: Path, settings: MDSettings, step: int, wall: float) -> None:
    tmp = folder / ".run.restart.tmp"
    lmp.command(f"write_restart {tmp}")
    if int(lmp.extract_setting("world_rank")) == 0:
        os.replace(tmp, folder / "run.restart")
        _write_state(folder, settings, step, wall, done=step >= settings.steps,
                     status="done" if step >= settings.steps else "running")


def _write_state(folder: Path, settings: MDSettings, step: int, wall: float, done: bool,
                 status: str) -> None:
    atomic_write_json(folder / "state.json", {
        "step": step, "steps": settings.steps, "wall_time": wall, "done": done,
        "status": status, "settings": asdict(settings)})


def _read_state(folder: Path) -> dict | None:
    path = folder / "state.json"
    if not path.is_file() or not (folder / "run.restart").is_file():
        return None
    return json.loads(path.read_text())


def _files(folder: Path) -> dict[str, str]:
    names = {"log": "log.lammps", "thermo": "thermo.dat", "trajectory": "traj.dump",
             "restart": "run.restart", "state": "state.json", "data": "structure.data",
             "last_good": "last_good.extxyz"}
    return {k: str(folder / v) for k, v in names.items() if (folder / v).exists()}


# --- resume: drop output written after the checkpoint ----------------------------

def _truncate_outputs(folder: Path, step: int) -> None:
    """Cut ``traj.dump`` and ``thermo.dat`` back to entries with timestep < ``step``."""
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


def _truncate_thermo(thermo: Path, step: int) -> None:
    """Drop the lines of ``thermo.dat`` with step >= ``step``."""
    if thermo.is_file():
        keep = []
        for line in thermo.read_text().splitlines(keepends=True):
            if line.startswith("#"):
                if not keep:  # the column header; later "# Fix print" titles are dropped
                    keep.append(line)
            elif line.strip() and int(float(line.split()[0])) < step:
                keep.append(line)
        thermo.write_text("".join(keep))


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
