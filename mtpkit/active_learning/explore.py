"""Exploration: MD with the current potential, watching its extrapolation grade.

Two engines give the same :class:`ExploreRun` records and candidate frames:

``lammps``  the ``pair_style mtp`` plugin with extrapolation control, runs in
            parallel through :func:`mtpkit.md.sweep.run_sweep` (local processes or
            Dask); needs the built plugin and an active set over all parameters
            (what an ``.almtp`` stores);
``ase``     ASE Langevin (NVT) or Berendsen (NPT) with the mtpkit calculator, grades
            computed in Python every ``grade_every`` steps; runs in this process, for
            installs without the plugin and for linear-basis active sets.

Statuses use the MD layer's words: ``done``, ``extrapolation_break``, ``failed``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from mtpkit.errors import UserError


@dataclass
class ExploreRun:
    """One exploration run: where, what happened, the largest grade (dimensionless)."""

    run: str
    structure: str
    temperature_K: float
    md_size: bool
    status: str
    steps_done: int
    steps: int
    time_ps: float
    max_gamma: float
    n_saved: int
    message: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ExploreSettings:
    """MD and grade settings of an exploration (K, fs, GPa; grades dimensionless)."""

    steps: int
    timestep: float
    ensemble: str
    pressure: float
    barostat: str
    friction: float
    grade_every: int
    gamma_select: float
    gamma_break: float


def choose_engine(requested: str, basis: str) -> str:
    """``"lammps"`` or ``"ase"`` for ``requested`` (``auto``, ``lammps``, ``ase``)."""
    if requested == "ase":
        return "ase"
    try:
        from mtpkit.md import lammps_env

        lammps_env.plugin_path()
        ok = basis == "all"
    except Exception:  # noqa: BLE001  # plugin not built or LAMMPS missing: the ASE engine works anyway
        ok = False
    if requested == "lammps" and not ok:
        raise UserError("active_learning.engine = 'lammps' needs the built mtpkit LAMMPS plugin and "
                        "active_learning.basis = 'all'")
    return "lammps" if ok else "ase"


def frame(atoms: Atoms, grade: float, step: int, run: str) -> Atoms:
    """A bare copy of ``atoms`` (no calculator, no arrays but positions) tagged as a candidate."""
    out = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    out.info = {"MV_grade": float(grade), "md_step": int(step), "run": run}
    return out


def explore_lammps(jobs: Sequence[tuple[str, str, Path, float, int, bool]], potential: Path,
                   species: list[str], s: ExploreSettings, out_dir: Path, *, workers: int, scheduler: str | None,
                   log: Callable[[str], None]) -> tuple[list[ExploreRun], list[list[Atoms]]]:
    """Runs ``jobs`` = (run id, structure name, structure file, T, seed, md_size) as one sweep.

    Returns the records and, per run, the frames above ``gamma_select`` it saved (with
    the last good configuration of a failed run that saved none).
    """
    from mtpkit.md.engines import potential_min_dist
    from mtpkit.md.run import collapse_distance, read_result
    from mtpkit.md.sweep import RunSpec, SweepSpec, run_sweep

    # only a real collapse is a blow-up here: contacts closer than the training data are what the
    # extrapolation grade is for (at the potential's own min_dist a relaxed start can stop at step 0)
    md = {"ensemble": s.ensemble, "timestep": s.timestep, "steps": s.steps, "pressure": s.pressure,
          "barostat": s.barostat, "thermo_every": s.grade_every, "dump_every": max(1, s.steps // 20),
          "restart_every": s.steps, "min_dist": collapse_distance(None, potential_min_dist(potential))}
    extra = {"every": s.grade_every, "select_threshold": s.gamma_select, "break_threshold": s.gamma_break,
             "save": "extrapolative.extxyz"}
    runs = [RunSpec(run_id=rid, structure=str(path), temperature=float(T), replica=0, seed=int(seed),
                    folder=str(out_dir / rid), potential=str(potential), species=species, engine="plugin",
                    md=md, extrapolation=extra)
            for rid, _, path, T, seed, _ in jobs]
    spec = SweepSpec(source=out_dir / "explore.toml", output=out_dir, runs=runs, workers=workers,
                     scheduler=scheduler or None)
    manifest = run_sweep(spec, progress=log)
    records, frames = [], []
    for (rid, name, _, T, _, md_size), run in zip(jobs, runs):
        res = read_result(Path(run.folder))
        if res is None:  # LAMMPS never started (a worker crash): a failed run that taught nothing
            entry = manifest["runs"].get(rid, {})
            records.append(ExploreRun(rid, name, float(T), md_size, "failed", 0, s.steps, 0.0, 0.0, 0,
                                      str(entry.get("message", "no result recorded"))))
            frames.append([])
            continue
        saved = [frame(a, a.info.get("max_gamma", np.nan), a.info.get("step", -1), rid)
                 for a in res.saved_configurations]
        if not saved and res.status == "failed" and res.last_good is not None:
            saved = [frame(res.last_good, s.gamma_break, res.steps_done, rid)]
        records.append(ExploreRun(rid, name, float(T), md_size, res.status, res.steps_done, s.steps,
                                  res.steps_done * s.timestep / 1000.0, _finite(res.max_gamma), len(saved),
                                  res.message))
        frames.append(saved)
    return records, frames


def _finite(g: float | None) -> float:
    return 0.0 if g is None or not np.isfinite(g) else float(g)


def explore_ase(mtp, aset, atoms: Atoms, species: Sequence[str], temperature: float, s: ExploreSettings,
                seed: int, run: str) -> tuple[str, int, float, list[Atoms], str]:
    """One ASE run with grade checks: (status, steps done, max grade, frames above
    ``gamma_select``, message)."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from mtpkit.active_learning.grades import config_row, site_rows
    from mtpkit.potentials import core
    from mtpkit.potentials.calculator import MTPCalculator
    from mtpkit.potentials.species import atom_types

    rng = np.random.default_rng(seed)
    work = atoms.copy()
    work.calc = MTPCalculator(mtp, species=list(species), on_short_distance="ignore")
    compiled = core.compile_mtp(mtp)
    types = atom_types(work, species, mtp.species_count)
    MaxwellBoltzmannDistribution(work, temperature_K=temperature, rng=rng)
    if s.ensemble == "nvt":
        dyn = Langevin(work, s.timestep * units.fs, temperature_K=temperature, friction=s.friction / units.fs,
                       fixcm=False, rng=rng)
    else:
        from ase.md.nptberendsen import NPTBerendsen

        dyn = NPTBerendsen(work, s.timestep * units.fs, temperature_K=temperature,
                           pressure_au=s.pressure * units.GPa, taut=100 * units.fs, taup=1000 * units.fs,
                           compressibility_au=4.57e-5 / units.bar)

    def grade_now() -> float:
        if aset.mode == "configuration":
            row = config_row(compiled, work, types, aset.basis, aset.energy_weight or 1.0, aset.weight_scaling)
            return float(aset.grades(row[None, :])[0])
        return float(aset.grades(site_rows(compiled, work, types, aset.basis)).max())

    frames: list[Atoms] = []
    steps_done, max_grade, status, message = 0, 0.0, "done", ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while steps_done < s.steps:
            n = min(s.grade_every, s.steps - steps_done)
            try:
                dyn.run(n)
            except Exception as exc:  # noqa: BLE001  # the MTP left its domain badly enough to fail
                status, message = "failed", f"{type(exc).__name__}: {exc}"
                break
            steps_done += n
            if not np.all(np.isfinite(work.positions)):
                status, message = "failed", "non-finite positions"
                break
            g = grade_now()
            max_grade = max(max_grade, g)
            if g > s.gamma_select:
                frames.append(frame(work, g, steps_done, run))
            if g > s.gamma_break:
                status, message = "extrapolation_break", f"grade {g:.3g} above gamma_break at step {steps_done}"
                break
    return status, steps_done, max_grade, frames, message


def explore_ase_all(jobs: Sequence[tuple[str, str, Path, float, int, bool]], mtp, aset, species: list[str],
                    s: ExploreSettings, log: Callable[[str], None]) -> tuple[list[ExploreRun], list[list[Atoms]]]:
    """The jobs of :func:`explore_lammps`, run one after the other with :func:`explore_ase`."""
    from ase.io import read

    records, frames = [], []
    for rid, name, path, T, seed, md_size in jobs:
        t0 = time.perf_counter()
        status, done, gmax, saved, msg = explore_ase(mtp, aset, read(path), species, float(T), s, seed, rid)
        records.append(ExploreRun(rid, name, float(T), md_size, status, done, s.steps, done * s.timestep / 1000.0,
                                  gmax, len(saved), msg))
        frames.append(saved)
        log(f"{rid}: {status} after {done}/{s.steps} steps, max γ {gmax:.3g} ({time.perf_counter() - t0:.1f} s)")
    return records, frames
