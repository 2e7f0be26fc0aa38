"""Short MD with the labeller itself: labelled snapshots for the starting set, for free.

Every MD step evaluates the labeller (energy eV, forces eV/Å, stress eV/Å^3), so
keeping every ``every``-th frame with its results gives labelled configurations
from the region the MTP's own MD will visit (thermal distortions of the relaxed
cell) without any extra labelling call. Langevin NVT (ASE) at the relaxed cell,
velocities drawn at ``temperature``; the cell shape is explored by the strained
copies of the starting set instead.

One store per structure and temperature (``md_<name>_T<T>K.extxyz``), written
atomically when the run has finished; an existing store is reused on resume.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

Log = Callable[[str], None]


def labeller_md(atoms, calculator, *, temperature: float, steps: int, every: int, timestep: float,
                seed: int, friction: float = 0.02) -> list:
    """Langevin NVT of ``steps`` steps of ``timestep`` fs at ``temperature`` K with ``calculator``.

    Returns the labelled frames at steps ``every``, 2·``every``, ... (labels are the
    calculator's results at that frame); non-finite labels are skipped. ``friction``
    in 1/fs.
    """
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    from mtpkit.active_learning.labellers import check_label, labelled_copy

    work = atoms.copy()
    work.calc = calculator
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(work, temperature_K=temperature, rng=rng)
    Stationary(work)
    dyn = Langevin(work, timestep * units.fs, temperature_K=temperature, friction=friction / units.fs,
                   rng=rng)
    frames: list = []

    def keep() -> None:
        if dyn.nsteps == 0 or dyn.nsteps % every:
            return
        e, f = work.get_potential_energy(), work.get_forces()
        s = work.get_stress(voigt=True)
        if check_label(e, f, s, len(work)) is None:
            frame = labelled_copy(work, e, f, s)
            frame.info = {"md_step": int(dyn.nsteps), "md_temperature_K": float(temperature)}
            frames.append(frame)

    dyn.attach(keep, interval=1)
    dyn.run(steps)
    return frames


def md_snapshots(calculator_factory: Callable[[], object], atoms, name: str, folder: Path,
                 temperatures: list[float], steps: int, every: int, timestep: float, seed: int,
                 say: Log) -> list:
    """Labelled snapshots of ``name`` at every temperature (stores reused when present)."""
    from ase.io import read, write

    from mtpkit.io_utils import atomic_open

    out: list = []
    for k, T in enumerate(temperatures):
        store = folder / f"md_{name}_T{float(T):g}K.extxyz"
        if store.is_file():
            frames = list(read(store, index=":", format="extxyz")) if store.stat().st_size else []
            say(f"starting set: labeller MD of {name} at {T:g} K: {len(frames)} snapshots reused")
        else:
            t0 = time.perf_counter()
            frames = labeller_md(atoms, calculator_factory(), temperature=float(T), steps=steps,
                                 every=every, timestep=timestep,
                                 seed=int(np.random.SeedSequence(seed, spawn_key=(k,)).generate_state(1)[0]))
            for j, f in enumerate(frames):
                f.info.update(label_id=f"md-{name}-T{float(T):g}K-{j}",
                              source=f"labeller MD, {name} at {T:g} K")
            with atomic_open(store, "w") as fh:
                if frames:
                    write(fh, frames, format="extxyz")
            say(f"starting set: labeller MD of {name} at {T:g} K: {steps} steps of {timestep:g} fs, "
                f"{len(frames)} labelled snapshots in {time.perf_counter() - t0:.1f} s")
        out.extend(frames)
    return out
