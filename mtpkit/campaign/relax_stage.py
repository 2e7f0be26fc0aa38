"""Stage 1b: relax every structure with the labeller (cell + positions) before anything uses it.

The representative structures of stage 1 are ideal, unrelaxed decorations of the
Na3YCl6-type frame (Zr–Cl ≈ 2.65 Å instead of ≈ 2.5 Å, stressed by GPa). Starting
sets built around them, and MD started from them, sit far from where the MD goes.
Here each structure is relaxed with the labeller itself: ASE FIRE on a
:class:`ase.filters.FrechetCellFilter` (cell and positions at ``relax.pressure``
GPa), at most ``relax.steps`` steps or until max force < ``relax.fmax`` eV/Å
(cell "forces" included). ``relax.cell = false`` keeps the cell and relaxes the
positions only; ``relax.steps = 0`` copies the structure unchanged.

Written into the stage folder, per structure: ``<name>.extxyz`` (the relaxed
structure every later stage starts from), ``<name>.log`` (the optimiser log),
``<name>_path.extxyz`` (labelled frames along the relaxation: energy eV, forces
eV/Å, stress eV/Å^3, reused by the starting set), and ``relax.json`` with energy,
volume, stress and mean cation–Cl distances before and after. A structure whose
``<name>.extxyz`` exists is never relaxed again.

A plain relaxation stops in the nearest minimum, which need not be the lowest: with
``relax.anneal_temperature`` > 0 each relaxed structure is also annealed (short
labeller NPT at that temperature, ``anneal_seeds`` seeds) and quenched, symmetry
allowed to break, and the lowest minimum found is kept (:func:`anneal_quench`);
``relax.json`` records every candidate's energy and volume.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from ase.units import GPa as GPA  # eV/Å^3 per GPa
from threadpoolctl import threadpool_limits

from mtpkit.campaign.structures_stage import md_file_name
from mtpkit.config import PipelineConfig
from mtpkit.io_utils import atomic_open, atomic_write_json
from mtpkit.seeds import ANNEAL, seed_for

Log = Callable[[str], None]
BOND_CUTOFF = 3.3  # Å, cation–Cl first shell


def mean_bonds(atoms, anion: str = "Cl", cutoff: float = BOND_CUTOFF) -> dict[str, float]:
    """Mean distance (Å) from each cation species to its ``anion`` neighbours within ``cutoff``."""
    from ase.neighborlist import neighbor_list

    i, j, d = neighbor_list("ijd", atoms, cutoff)
    sym = np.array(atoms.get_chemical_symbols())
    out = {}
    for s in sorted(set(sym) - {anion}):
        m = (sym[i] == s) & (sym[j] == anion)
        if m.any():
            out[f"{s}-{anion}"] = float(d[m].mean())
    return out


def _summary(atoms) -> dict:
    stress = atoms.get_stress(voigt=True) / GPA
    return {"energy_eV": float(atoms.get_potential_energy()), "volume_A3": float(atoms.get_volume()),
            "max_force_eV_A": float(np.abs(atoms.get_forces()).max()),
            "stress_GPa": [float(x) for x in stress], "bonds_A": mean_bonds(atoms)}


def relax_one(atoms, calculator, *, steps: int, fmax: float, cell: bool, pressure_GPa: float,
              log_path: Path, keep_every: int = 5) -> tuple:
    """Relax a copy of ``atoms``; returns (relaxed Atoms, labelled path frames, info dict)."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    from mtpkit.active_learning.labellers import check_label, labelled_copy

    work = atoms.copy()
    work.calc = calculator
    before = _summary(work)
    path: list = []
    target = FrechetCellFilter(work, scalar_pressure=pressure_GPa * GPA) if cell else work
    t0 = time.perf_counter()
    # the cell filter's 3x3 matrix functions go through BLAS/LAPACK; with BLAS threads on a busy
    # machine each call cost ~10 ms instead of µs (measured: an 8-atom EMT quench 87 s vs 6.6 s)
    with open(log_path, "w") as log, threadpool_limits(limits=1, user_api="blas"):
        opt = FIRE(target, logfile=log)

        def keep() -> None:
            if opt.nsteps % keep_every:
                return
            e, f = work.get_potential_energy(), work.get_forces()
            s = work.get_stress(voigt=True)
            if check_label(e, f, s, len(work)) is None:
                frame = labelled_copy(work, e, f, s)
                frame.info = {"relax_step": int(opt.nsteps)}
                path.append(frame)

        opt.attach(keep, interval=1)
        converged = bool(opt.run(fmax=fmax, steps=steps)) if steps > 0 else False
    after = _summary(work)
    relaxed = work.copy()
    relaxed.calc = None
    info = {"steps": int(opt.nsteps), "converged": converged, "fmax_eV_A": fmax, "cell": cell,
            "pressure_GPa": pressure_GPa, "wall_s": time.perf_counter() - t0,
            "before": before, "after": after}
    return relaxed, path, info


def anneal_quench(atoms, calculator, *, temperature_K: float, steps: int, timestep_fs: float, seeds: list[int],
                  fmax: float, quench_steps: int, pressure_GPa: float = 0.0) -> tuple:
    """Anneal-and-quench search for a lower minimum than the one a plain relaxation reaches.

    For each seed: Maxwell–Boltzmann velocities at ``temperature_K``, ``steps`` steps of
    ``timestep_fs`` fs of MTK NPT (Nosé–Hoover chains, full cell fluctuations at
    ``pressure_GPa``), then FIRE on a :class:`~ase.filters.FrechetCellFilter` until max force
    < ``fmax`` eV/Å or ``quench_steps`` steps. Symmetry is allowed to break. The plain
    relaxation of ``atoms`` itself (seed ``None``) is a candidate too, so the result is never
    higher than it. Returns (lowest Atoms, list of per-candidate dicts with seed, energy per
    atom eV, volume Å^3, converged).
    """
    from ase import units
    from ase.filters import FrechetCellFilter
    from ase.md.nose_hoover_chain import MTKNPT
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
    from ase.optimize import FIRE

    def quench(work) -> bool:
        opt = FIRE(FrechetCellFilter(work, scalar_pressure=pressure_GPa * GPA), logfile=None)
        return bool(opt.run(fmax=fmax, steps=quench_steps))

    candidates = []
    with threadpool_limits(limits=1, user_api="blas"):  # 3x3 matrix functions: see relax_one
        for seed in [None, *seeds]:
            work = atoms.copy()
            work.calc = calculator
            if seed is not None:
                MaxwellBoltzmannDistribution(work, temperature_K=temperature_K, rng=np.random.default_rng(seed))
                Stationary(work)
                dt = timestep_fs * units.fs
                MTKNPT(work, timestep=dt, temperature_K=temperature_K, pressure_au=pressure_GPa * GPA,
                       tdamp=100 * dt, pdamp=1000 * dt).run(steps)
                work.set_momenta(np.zeros((len(work), 3)))
            converged = quench(work)
            e = float(work.get_potential_energy()) / len(work)
            done = work.copy()
            done.calc = None
            candidates.append((e, done, {"seed": seed, "energy_per_atom_eV": e, "volume_A3": float(work.get_volume()),
                                         "cellpar": [float(x) for x in work.cell.cellpar()], "converged": converged}))
    best = min(candidates, key=lambda c: c[0])
    return best[1], [c[2] for c in candidates]


def run_relax(cfg: PipelineConfig, folder: Path, structures_dir: Path, names: list[str],
              say: Log) -> dict:
    """Relax (or reuse) every structure; with ``relax.anneal_temperature`` > 0 also anneal and
    quench it (:func:`anneal_quench`) and keep the lowest minimum. Returns the ``relax.json`` dict."""
    from ase.io import read, write

    from mtpkit.active_learning.labellers import LabellerSpec, make_calculator

    rx = cfg.relax
    folder.mkdir(parents=True, exist_ok=True)
    summary_path = folder / "relax.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {"structures": {}}
    calc = None
    st_info = json.loads((structures_dir / "structures.json").read_text())["structures"] \
        if (structures_dir / "structures.json").is_file() else {}
    for name in names:
        target = folder / f"{name}.extxyz"
        supercell = st_info.get(name, {}).get("md_supercell")
        if target.is_file() and name in summary["structures"]:
            say(f"relax: {name}: already relaxed, reused")
            if supercell is not None and not (folder / md_file_name(name)).is_file():
                _write_md_tile(folder, name, target, supercell, say)
            continue
        atoms = read(structures_dir / f"{name}.extxyz", format="extxyz")
        atoms.calc = None
        if rx.steps == 0 and rx.anneal_temperature == 0:
            # structures already relaxed elsewhere (e.g. annealed minima): no labeller call at all,
            # which matters when the labeller is DFT
            _use_as_given(folder, name, atoms, supercell, summary, say)
            atomic_write_json(summary_path, summary)
            continue
        if calc is None:
            calc = make_calculator(LabellerSpec.from_table(cfg.labeller))
        say(f"relax: {name}: FIRE, {'cell + positions' if rx.cell else 'positions'}, "
            f"at most {rx.steps} steps to fmax {rx.fmax:g} eV/Å")
        relaxed, path, info = relax_one(atoms, calc, steps=rx.steps, fmax=rx.fmax, cell=rx.cell,
                                        pressure_GPa=rx.pressure, log_path=folder / f"{name}.log")
        if rx.anneal_temperature > 0 and rx.anneal_seeds > 0:
            seeds = [seed_for(cfg.campaign.seed, ANNEAL, s) for s in range(rx.anneal_seeds)]
            best, candidates = anneal_quench(relaxed, calc, temperature_K=rx.anneal_temperature,
                                             steps=rx.anneal_steps, timestep_fs=2.0, seeds=seeds,
                                             fmax=rx.fmax, quench_steps=max(rx.steps, 1),
                                             pressure_GPa=rx.pressure)
            gain = 1000 * (candidates[0]["energy_per_atom_eV"] - min(c["energy_per_atom_eV"] for c in candidates))
            info["anneal"] = {"temperature_K": rx.anneal_temperature, "steps": rx.anneal_steps,
                              "candidates": candidates, "gain_meV_per_atom": gain}
            say(f"relax: {name}: anneal at {rx.anneal_temperature:g} K + quench, {rx.anneal_seeds} seed(s): "
                f"lowest minimum {gain:.2f} meV/atom below the plain relaxation")
            best.calc = calc
            info["after"] = _summary(best)
            best.calc = None
            relaxed = best
        with atomic_open(folder / f"{name}_path.extxyz", "w") as fh:
            if path:
                write(fh, path, format="extxyz")
        relaxed.info = {"name": name}
        with atomic_open(target, "w") as fh:
            write(fh, relaxed, format="extxyz")
        if supercell is not None:
            _write_md_tile(folder, name, target, supercell, say)
        summary["structures"][name] = info
        atomic_write_json(summary_path, summary)
        b, a = info["before"], info["after"]
        bonds = ", ".join(f"{k} {b['bonds_A'][k]:.3f}→{a['bonds_A'].get(k, float('nan')):.3f} Å"
                          for k in b["bonds_A"])
        say(f"relax: {name}: {info['steps']} steps ({'converged' if info['converged'] else 'not converged'}, "
            f"{info['wall_s']:.1f} s); E {b['energy_eV']:.3f}→{a['energy_eV']:.3f} eV, "
            f"V {b['volume_A3']:.1f}→{a['volume_A3']:.1f} Å³, max|F| {a['max_force_eV_A']:.3f} eV/Å; {bonds}")
    atomic_write_json(summary_path, summary)
    return summary


def _use_as_given(folder: Path, name: str, atoms, supercell, summary: dict, say: Log) -> None:
    """``relax.steps = 0`` (and no anneal): ``atoms`` is the relaxed structure, unlabelled."""
    from ase.io import write

    atoms.info = {"name": name}
    with atomic_open(folder / f"{name}.extxyz", "w") as fh:
        write(fh, atoms, format="extxyz")
    with atomic_open(folder / f"{name}_path.extxyz", "w"):
        pass
    if supercell is not None:
        _write_md_tile(folder, name, folder / f"{name}.extxyz", supercell, say)
    summary["structures"][name] = {"steps": 0, "as_given": True, "volume_A3": float(atoms.get_volume())}
    say(f"relax: {name}: relax.steps = 0, used as given (V {atoms.get_volume():.1f} Å³, no labeller call)")


def _write_md_tile(folder: Path, name: str, relaxed: Path, supercell: list, say: Log) -> None:
    """``<name>_md.extxyz``: the relaxed learning cell tiled by the integer matrix
    ``supercell`` into the production-MD structure (same strain, same ordering)."""
    from ase.build import make_supercell
    from ase.io import read, write

    cell = read(relaxed, format="extxyz")
    cell.calc = None
    box = make_supercell(cell, np.array(supercell, int))
    box.info = {"name": name}
    with atomic_open(folder / md_file_name(name), "w") as fh:
        write(fh, box, format="extxyz")
    say(f"relax: {name}: production MD structure = relaxed cell tiled to {len(box)} atoms "
        f"(V {box.get_volume():.1f} Å³)")


def read_path_frames(folder: Path, name: str) -> list:
    """Labelled frames saved along the relaxation of ``name`` (``[]`` when none)."""
    from ase.io import read

    p = folder / f"{name}_path.extxyz"
    if not p.is_file() or p.stat().st_size == 0:
        return []
    return list(read(p, index=":", format="extxyz"))
