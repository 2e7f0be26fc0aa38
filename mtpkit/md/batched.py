r"""Batched MD: many sweep runs as one batch on the MTP's torch-sim model (CPU or GPU).

Engine ``"torch-sim"`` of :mod:`mtpkit.md.sweep` (``[potential] engine = "torch-sim"``,
``device = "cpu"`` or ``"cuda"``). The runs of a sweep (structures × temperatures ×
replicas) that share their MD settings are integrated together: one
:class:`~mtpkit.potentials.torch_model.MTPTorchModel` evaluation per step for the whole
batch, replicas of different sizes and temperatures side by side. Every run still gets
its own folder with the files a LAMMPS run writes (:mod:`mtpkit.md.run`), so
:func:`mtpkit.md.run.read_result`, sweep resumption and ``mtpkit conductivity`` read
them unchanged::

    structure.data    initial LAMMPS data file (LAMMPS frame; type -> element for the analysis)
    thermo.dat        step time_ps T(K) PE KE Etot P(bar) V(Å^3) lx ly lz xy xz yz [max_gamma]
                      every thermo_every steps (%.10g, like LAMMPS' thermo)
    traj.dump         LAMMPS text dump, ``id type xu yu zu`` (%.17g), restricted-triclinic
                      box, every dump_every steps; xu = x + image·cell as in LAMMPS
    batched.ckpt.npz  checkpoint: wrapped positions, image counts, velocities, cell and the
                      replica's random-number generator states, every restart_every steps
    state.json        as :func:`mtpkit.md.run.run_md` writes it (step of the checkpoint,
                      status, max_gamma, settings)
    extrapolative.extxyz  with extrapolation control: configurations graded above
                      select_threshold (``step``, ``max_gamma``, per-atom ``gamma``)
    last_good.extxyz  a failed replica's last checkpointed configuration

Integrator: why not torch-sim's own
-----------------------------------
torch-sim 0.3.0 has two NPT integrators, ``npt_langevin`` and ``npt_nose_hoover``.
Both accept a per-system ``kT`` (so one batch could mix temperatures), but both
scale the cell **isotropically only** (no anisotropic or triclinic cell
fluctuations), wrap positions into the cell every step, draw their noise from the
global torch generator (one stream for the batch: a replica's trajectory depends on
which runs share its batch, and a per-replica seed cannot be honoured), and
``npt_langevin`` evaluates the model twice per step. The issue asks for triclinic
cell fluctuations (monoclinic structures), per-replica seeds and exact resumption,
so this module integrates with its own few lines on the torch-sim model and state:

* atoms: velocity Verlet, one model evaluation per step;
* thermostat (NVT, NPT): stochastic velocity rescaling (Bussi, Donadio, Parrinello,
  J. Chem. Phys. 126, 014101 (2007)), half a step before and after the Verlet step,
  each replica with its own temperature, ``tdamp`` and noise;
* barostat (NPT): stochastic cell rescaling (Bernetti & Bussi, J. Chem. Phys. 153,
  114107 (2020); anisotropic form as in Del Tatto et al., Appl. Sci. 12, 1139
  (2022)), applied with the drift, from the pressure tensor of the end of the
  previous step (first-order barostat, as GROMACS applies it). With strain
  increment ``dε`` (3×3 symmetric), ``P`` the instantaneous pressure tensor
  (kinetic + virial), ``β`` the compressibility guess :data:`COMPRESSIBILITY` and
  ``τ_p = pdamp``::

      iso:   d ln V = β/τ_p (tr P/3 − P0) dt + sqrt(2 kT β dt / (V τ_p)) ξ,    dε = d ln V / 3 · I
      aniso: dε_aa  = β/(3τ_p) (P_aa − P0) dt + sqrt(2 kT β dt / (3 V τ_p)) ξ_a
      tri:   dε     = β/(3τ_p) (P − P0 I) dt + sqrt(2 kT β dt / (3 V τ_p)) (W + Wᵀ)/2

  (``ξ`` standard normal, ``W`` a 3×3 matrix of them: each strain component gets
  the mobility that samples exp(−(U + P0 V)/kT) V^N over cell shapes). For ``tri``
  the symmetric strain is turned into a lower-triangular one with the same
  symmetric part (off-diagonal entries doubled below the diagonal, none above),
  which only adds an infinitesimal rotation: the cell stays LAMMPS' restricted
  triclinic (``a`` along x, ``b`` in the xy plane), as with ``fix npt tri``, so
  dumps of successive frames share one frame of reference. Positions scale as
  ``r ← r exp(dε)``, cell rows ``h ← h exp(dε)``, velocities ``v ← v exp(dε)^{-T}``.
  ``β`` sets only how fast the volume relaxes (``τ_p β_true/β``), not the
  distribution sampled.

Each replica draws its noise from its own NumPy generators seeded by the run's seed
(:func:`mtpkit.md.sweep.run_seed`): initial velocities (Gaussian, zero total
momentum, scaled to the temperature with 3N−3 degrees of freedom, as LAMMPS'
``velocity create ... mom yes dist gaussian``), thermostat and barostat noise. A
replica's trajectory therefore does not depend on the batch it shares (up to
floating-point summation order), and a resume from a checkpoint continues exactly:
the checkpoint holds the generator states at that step and the forces are recomputed
from the saved positions.

Extrapolation control (``[potential.extrapolation]``, needs an ``.almtp``): the batch is
graded every ``every`` steps (``system_grades`` of the model, in the same evaluation as
the forces); a replica graded above ``select_threshold`` has the configuration appended
to its save file; above ``break_threshold`` that replica alone stops there with status
``"extrapolation_break"`` (final, checkpointed), the others go on.

Failures: a replica whose energy or coordinates stop being finite, or with two atoms
closer than ``min_dist`` (checked at every checkpoint; default
:func:`~mtpkit.md.run.collapse_distance`), stops with status ``"failed"``
(``last_good.extxyz``: its last checkpointed configuration); a resume restarts it from
that checkpoint. The rest of the batch goes on.

Batches: runs are grouped by identical MD settings and resume step; a group is split
into batches of at most ``batch_size`` replicas (default: on CUDA as many as 60 % of the
free device memory holds, measured on a probe step; on CPU, replicas up to 4096 atoms
per batch, since a bigger batch is not faster there), run one after the other. A batch
shrinks as replicas finish or break; finished slots are not refilled.

Not like the LAMMPS engine: switching a partly run folder between engines restarts it
from step 0 (neither reads the other's checkpoint); the time column is ``step ×
timestep``; NVT and NPT use the stochastic thermostat above, not Nosé–Hoover chains
(same ensembles, different dynamics of the thermostat variables); a ``tri`` box is never
flipped (LAMMPS re-chooses a tilted box past half a box length), which matters only where
the shear is free (a liquid: use ``iso`` there). Checked against the plugin in
tests/test_md_batched_physics.py (benchmarks/RESULTS.md): same mean volume, volume and
temperature fluctuations and Na diffusivity.

Cost: the model builds each replica's neighbour list on the CPU (vesin, through
torch-sim) at every step, so on a GPU the step time has a per-replica CPU part; the
integrator itself adds a few ms per step (``benchmarks/bench_batched.py``).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_masses

from mtpkit.errors import UserError
from mtpkit.io_utils import atomic_open
from mtpkit.md.engines import Extrapolation, potential_min_dist
from mtpkit.md.run import (
    FINISHED,
    THERMO_COLUMNS,
    MDSettings,
    _finished,
    _read_state,
    _truncate_outputs,
    _write_state,
    collapse_distance,
    read_result,
)
from mtpkit.md.structure import as_atoms, lammps_atoms, species_types, write_data

__all__ = ["COMPRESSIBILITY", "BatchIntegrator", "run_batched"]

MVV2E = 103.6426965   # eV per amu·Å²/fs²
KB = 8.617333262e-5   # eV/K
EV_A3_IN_BAR = 1.602176634e6
EV_A3_IN_GPA = 160.21766208
COMPRESSIBILITY = 0.1 * EV_A3_IN_GPA
"""Compressibility guess β of the barostat, Å^3/eV (0.1 GPa⁻¹, a bulk modulus of 10 GPa)."""
CHECKPOINT = "batched.ckpt.npz"
CPU_ATOMS_PER_BATCH = 4096
NOISE_BLOCK = 1000  # steps of noise drawn at once (values do not depend on it)


# --------------------------------------------------------------------------- integrator


@dataclass
class Noise:
    """Random numbers of a block of steps for the replicas of a batch (on the device).

    ``thermo``: (steps, 2, B) standard normals (one per thermostat half step);
    ``chi2``: (steps, 2, B) χ² draws with ``dof - 1`` degrees of freedom;
    ``cell``: (steps, B, 3, 3) standard normals for the barostat.
    """

    thermo: object
    chi2: object
    cell: object

    def select(self, keep) -> Noise:
        return Noise(self.thermo[:, :, keep], self.chi2[:, :, keep], self.cell[:, keep])


class ReplicaRandom:
    """The random streams of one replica: velocities, thermostat normals, thermostat χ²,
    barostat normals — four children of ``SeedSequence(seed)``. Drawing a block of steps
    at once or step by step gives the same numbers."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        children = np.random.SeedSequence(self.seed).spawn(4)
        self.velocity, self.thermo, self.chi2, self.cell = (np.random.Generator(np.random.PCG64(c))
                                                            for c in children)

    def draw(self, steps: int, dof: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (self.thermo.standard_normal((steps, 2)), self.chi2.chisquare(dof - 1, (steps, 2)),
                self.cell.standard_normal((steps, 3, 3)))

    def get_state(self) -> str:
        return json.dumps({"seed": self.seed, "streams": [g.bit_generator.state for g in
                                                          (self.velocity, self.thermo, self.chi2, self.cell)]})

    @classmethod
    def from_state(cls, text: str) -> ReplicaRandom:
        doc = json.loads(text)
        out = cls(doc["seed"])
        for g, s in zip((out.velocity, out.thermo, out.chi2, out.cell), doc["streams"]):
            g.bit_generator.state = s
        return out


class BatchIntegrator:
    """NVE / NVT / NPT for a batch of replicas on a torch-sim model (see the module docstring).

    The integrator keeps its own state in float64 on ``device`` (wrapped positions,
    integer image counts, velocities in Å/fs, cells as rows in LAMMPS' restricted
    triclinic frame) and hands the model a ``SimState`` in the model's dtype.

    Parameters
    ----------
    model:
        A torch-sim model returning ``energy``, ``forces``, ``stress`` (and, when its
        ``compute_grades`` is set, ``system_grades``/``grades``).
    atoms:
        One ASE Atoms per replica, in the LAMMPS frame (:func:`mtpkit.md.structure.lammps_atoms`).
    temperatures:
        K, one per replica (thermostat target).
    settings:
        The shared :class:`~mtpkit.md.run.MDSettings` (ensemble, timestep, pressure,
        barostat, tdamp, pdamp; the temperature there is ignored).
    velocities:
        Å/fs per replica, or ``None`` for zero velocities.
    """

    def __init__(self, model, atoms: Sequence[Atoms], temperatures: Sequence[float],
                 settings: MDSettings, velocities: Sequence[np.ndarray | None] | None = None) -> None:
        import torch

        self.torch = torch
        self.model = model
        self.device = torch.device(model.device)
        self.model_dtype = model.dtype
        self.settings = settings
        f64 = dict(dtype=torch.float64, device=self.device)
        counts = [len(a) for a in atoms]
        self.n_atoms = torch.tensor(counts, device=self.device)
        self.system_idx = torch.repeat_interleave(torch.arange(len(atoms), device=self.device), self.n_atoms)
        numbers = np.concatenate([a.numbers for a in atoms])
        self.atomic_numbers = torch.as_tensor(numbers, device=self.device)
        self.masses = torch.as_tensor(atomic_masses[numbers], **f64)
        self.cell = torch.as_tensor(np.array([a.cell.array for a in atoms]), **f64)
        self.positions = torch.as_tensor(np.concatenate([a.positions for a in atoms]), **f64)
        self.images = torch.zeros(len(numbers), 3, dtype=torch.long, device=self.device)
        vel = [np.zeros((n, 3)) if velocities is None or velocities[k] is None else velocities[k]
               for k, n in enumerate(counts)]
        self.velocities = torch.as_tensor(np.concatenate(vel), **f64)
        self.kT = torch.as_tensor(np.asarray(temperatures, float) * KB, **f64)
        self.dof = (3 * self.n_atoms - 3).clamp(min=1).to(torch.float64)
        self.dt = float(settings.timestep)
        self.forces = torch.zeros_like(self.positions)
        self.energy = torch.zeros(len(atoms), **f64)
        self.stress = torch.zeros(len(atoms), 3, 3, **f64)
        self.grades: object | None = None
        self.system_grades: object | None = None
        self.pressure_tensor = torch.zeros(len(atoms), 3, 3, **f64)
        self.p0 = float(settings.pressure) / EV_A3_IN_GPA
        self.wrap()

    # -- bookkeeping ------------------------------------------------------------------

    @property
    def n_systems(self) -> int:
        return int(self.kT.shape[0])

    def _per_atom(self, x):
        return x[self.system_idx]

    def keep(self, keep: Sequence[int]) -> None:
        """Keep only the replicas ``keep`` (indices into the current batch), in that order."""
        torch = self.torch
        keep_t = torch.as_tensor(list(keep), dtype=torch.long, device=self.device)
        atom_mask = torch.isin(self.system_idx, keep_t)
        new_index = torch.full((self.n_systems,), -1, dtype=torch.long, device=self.device)
        new_index[keep_t] = torch.arange(len(keep_t), device=self.device)
        # atoms stay in replica order only when keep is sorted: reorder explicitly
        order = torch.argsort(new_index[self.system_idx[atom_mask]], stable=True)
        idx = torch.nonzero(atom_mask).squeeze(1)[order]
        for name in ("atomic_numbers", "masses", "positions", "images", "velocities", "forces"):
            setattr(self, name, getattr(self, name)[idx])
        if self.grades is not None:
            self.grades = self.grades[idx]
        self.system_idx = new_index[self.system_idx[idx]]
        for name in ("n_atoms", "cell", "kT", "dof", "energy", "stress", "pressure_tensor"):
            setattr(self, name, getattr(self, name)[keep_t])
        if self.system_grades is not None:
            self.system_grades = self.system_grades[keep_t]

    def wrap(self) -> None:
        """Positions back into the cell (fractional in [0, 1)), image counts updated."""
        inv = self.torch.linalg.inv(self.cell)
        frac = self.torch.einsum("na,nab->nb", self.positions, inv[self.system_idx])
        shift = self.torch.floor(frac)
        if bool((shift != 0).any()):
            self.images += shift.long()
            frac = frac - shift
            self.positions = self.torch.einsum("na,nab->nb", frac, self.cell[self.system_idx])

    def unwrapped(self):
        """Unwrapped positions ``x + image · cell`` (as LAMMPS' ``xu yu zu``)."""
        return self.positions + self.torch.einsum("na,nab->nb", self.images.to(self.positions.dtype),
                                                  self.cell[self.system_idx])

    def volume(self):
        return self.torch.linalg.det(self.cell)

    def kinetic_tensor(self):
        """Σ m v⊗v per replica, eV (twice the kinetic-energy tensor)."""
        mv = (self.masses * MVV2E)[:, None] * self.velocities
        outer = mv[:, :, None] * self.velocities[:, None, :]
        return self.torch.zeros_like(self.cell).index_add(0, self.system_idx, outer)

    def kinetic_energy(self):
        ke = 0.5 * MVV2E * self.masses * (self.velocities**2).sum(dim=1)
        return self.torch.zeros_like(self.kT).index_add(0, self.system_idx, ke)

    def temperature(self):
        """K, with 3N − 3 degrees of freedom (LAMMPS' default ``temp`` compute)."""
        return 2.0 * self.kinetic_energy() / (self.dof * KB)

    def update_pressure(self) -> None:
        """Instantaneous pressure tensor (kinetic + virial), eV/Å^3."""
        self.pressure_tensor = self.kinetic_tensor() / self.volume()[:, None, None] - self.stress

    # -- model ------------------------------------------------------------------------

    def evaluate(self, grades: bool = False) -> None:
        """Energy, forces, stress (and grades) at the current positions."""
        import torch_sim as ts

        torch = self.torch
        dt = self.model_dtype
        state = ts.SimState(positions=self.positions.to(dt), masses=self.masses.to(dt),
                            cell=self.cell.mT.contiguous().to(dt), pbc=True,
                            atomic_numbers=self.atomic_numbers, system_idx=self.system_idx)
        before = getattr(self.model, "compute_grades", False)
        if grades:
            self.model.compute_grades = True
        try:
            out = self.model(state)
        finally:
            if grades:
                self.model.compute_grades = before
        self.energy = out["energy"].to(torch.float64)
        self.forces = out["forces"].to(torch.float64)
        self.stress = out["stress"].to(torch.float64)
        if grades:
            self.system_grades = out["system_grades"].to(torch.float64)
            self.grades = out["grades"].to(torch.float64) if "grades" in out else None
        else:
            self.system_grades = self.grades = None

    # -- one step ---------------------------------------------------------------------

    def draw_noise(self, randoms: Sequence[ReplicaRandom], steps: int) -> Noise:
        """``steps`` steps of noise for every replica, from each replica's own streams."""
        dof = self.dof.long().tolist()
        drawn = [r.draw(steps, d) for r, d in zip(randoms, dof)]
        f64 = dict(dtype=self.torch.float64, device=self.device)
        return Noise(self.torch.as_tensor(np.stack([d[0] for d in drawn], axis=2), **f64),
                     self.torch.as_tensor(np.stack([d[1] for d in drawn], axis=2), **f64),
                     self.torch.as_tensor(np.stack([d[2] for d in drawn], axis=1), **f64))

    def step(self, noise: Noise, k: int, grades: bool = False) -> None:
        """One MD step with row ``k`` of ``noise``: :meth:`advance`, :meth:`evaluate`,
        :meth:`finish`."""
        self.advance(noise, k)
        self.evaluate(grades)
        self.finish(noise, k)

    def advance(self, noise: Noise, k: int) -> None:
        """First half of a step: thermostat half step, half kick, drift, barostat, wrap."""
        s = self.settings
        if s.ensemble in ("nvt", "npt"):
            self._thermostat(0.5 * self.dt, noise.thermo[k, 0], noise.chi2[k, 0])
        self.velocities = self.velocities + (0.5 * self.dt / MVV2E) * self.forces / self.masses[:, None]
        self.positions = self.positions + self.dt * self.velocities
        if s.ensemble == "npt":
            self._barostat(noise.cell[k])
        self.wrap()

    def finish(self, noise: Noise, k: int) -> None:
        """Second half of a step (after :meth:`evaluate`): half kick, thermostat half step,
        pressure tensor for the next barostat step."""
        self.velocities = self.velocities + (0.5 * self.dt / MVV2E) * self.forces / self.masses[:, None]
        if self.settings.ensemble in ("nvt", "npt"):
            self._thermostat(0.5 * self.dt, noise.thermo[k, 1], noise.chi2[k, 1])
        self.update_pressure()

    def _thermostat(self, dt: float, r1, chi2) -> None:
        """Bussi's stochastic velocity rescaling over ``dt`` (fs), every replica at once."""
        torch = self.torch
        tau = self.settings.tdamp_fs
        factor = math.exp(-dt / tau)
        kin = self.kinetic_energy()
        target = 0.5 * self.dof * self.kT
        new = (kin + (1.0 - factor) * (target * (r1**2 + chi2) / self.dof - kin)
               + 2.0 * r1 * torch.sqrt(kin * target / self.dof * (1.0 - factor) * factor))
        alpha = torch.where(kin > 0, torch.sqrt(torch.clamp(new, min=0.0) / torch.clamp(kin, min=1e-300)),
                            torch.ones_like(kin))
        self.velocities = self.velocities * alpha[self.system_idx][:, None]

    def _barostat(self, w) -> None:
        """Stochastic cell rescaling over one step; ``w`` (B, 3, 3) standard normals."""
        torch = self.torch
        s = self.settings
        beta, tau, dt = COMPRESSIBILITY, s.pdamp_fs, self.dt
        volume = self.volume()
        eye = torch.eye(3, dtype=torch.float64, device=self.device)
        P = self.pressure_tensor
        kT = self.kT
        if s.barostat == "iso":
            dlnv = (beta / tau * (P.diagonal(dim1=1, dim2=2).sum(1) / 3.0 - self.p0) * dt
                    + torch.sqrt(2.0 * kT * beta * dt / (volume * tau)) * w[:, 0, 0])
            strain = (dlnv / 3.0)[:, None, None] * eye
        else:
            amp = torch.sqrt(2.0 * kT * beta * dt / (3.0 * volume * tau))[:, None, None]
            drift = beta / (3.0 * tau) * (P - self.p0 * eye) * dt
            if s.barostat == "aniso":
                strain = (drift + amp * w) * eye
            else:
                sym = drift + amp * 0.5 * (w + w.mT)
                strain = torch.tril(sym, diagonal=-1) * 2.0 + sym * eye  # same symmetric part, no rotation of the box
        mu = torch.linalg.matrix_exp(strain)
        per_atom = mu[self.system_idx]
        self.positions = torch.einsum("na,nab->nb", self.positions, per_atom)
        self.velocities = torch.einsum("na,nab->nb", self.velocities, torch.linalg.inv(per_atom).mT)
        # image offsets scale with the cell: x + n·h → x·μ + n·h·μ keeps xu = xu·μ, as in LAMMPS
        self.cell = torch.bmm(self.cell, mu)


def initial_velocities(atoms: Atoms, temperature: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian velocities (Å/fs) at ``temperature`` K: zero total momentum, scaled to the
    temperature exactly with 3N − 3 degrees of freedom (LAMMPS' ``velocity create ... mom yes
    dist gaussian``, with another random stream)."""
    m = atomic_masses[atoms.numbers]
    v = rng.standard_normal((len(atoms), 3)) * np.sqrt(KB * temperature / (m * MVV2E))[:, None]
    v -= (m[:, None] * v).sum(0) / m.sum()
    dof = max(3 * len(atoms) - 3, 1)
    t_now = (m[:, None] * MVV2E * v**2).sum() / (dof * KB)
    return v * math.sqrt(temperature / t_now) if t_now > 0 else v


# --------------------------------------------------------------------------- sweep runs


@dataclass
class _Replica:
    """One run of a batch: its folder, outputs waiting to be written and its result."""

    run: object  # mtpkit.md.sweep.RunSpec
    folder: Path
    settings: MDSettings
    atoms: Atoms  # LAMMPS frame, initial (fresh) or checkpointed
    types: np.ndarray
    random: ReplicaRandom
    extrapolation: Extrapolation | None
    save: Path | None
    min_dist: float
    start: int
    velocities: np.ndarray | None = None
    images: np.ndarray | None = None
    wall_before: float = 0.0
    max_gamma: float = math.nan
    last_gamma: float = math.nan
    step: int = 0
    status: str = "running"
    message: str = ""
    checkpoint_step: int = 0
    checkpoint_gamma: float = math.nan
    last_good: Atoms | None = None
    dump: list[str] = field(default_factory=list)
    thermo: list[str] = field(default_factory=list)
    saved: list[str] = field(default_factory=list)
    buffered: int = 0
    t_joined: float = 0.0


def run_batched(runs: Sequence, *, device: str = "cpu", dtype: str = "float64",
                batch_size: int | None = None, threads: int | None = None,
                progress: Callable[[str], None] | None = print,
                on_done: Callable[[object, dict], None] | None = None) -> dict[str, dict]:
    """Run (or resume) sweep runs (:class:`mtpkit.md.sweep.RunSpec`) on the torch-sim engine.

    Runs sharing potential, species and MD settings and the same resume step are
    batched; each batch runs to its end before the next starts. ``on_done(run, entry)``
    is called as each run ends (``entry``: :meth:`MDResult.to_dict
    <mtpkit.md.run.MDResult.to_dict>`). Returns ``run_id -> entry``. ``threads``: torch's
    CPU threads (``None``: leave torch's setting; more threads than free cores slow
    torch's OpenMP down badly on a shared machine).
    """
    try:
        import torch
        import torch_sim  # noqa: F401
    except ImportError as exc:
        raise UserError(f"engine 'torch-sim' needs torch and torch-sim ({exc}); "
                        "install them with `pip install mtpkit[torch]`") from exc

    dtype_t = _torch_dtype(dtype)
    dev = _check_device(device)
    if threads and dev.type == "cpu":
        torch.set_num_threads(int(threads))
    results: dict[str, dict] = {}
    groups: dict[str, list] = {}
    prepared = []
    for run in runs:
        try:
            rep = _prepare(run)
        except Exception as exc:  # noqa: BLE001  # an unreadable structure fails its run only
            entry = _failed_entry(run, f"{type(exc).__name__}: {exc}")
            results[run.run_id] = entry
            if on_done:
                on_done(run, entry)
            continue
        if rep.status in FINISHED:
            entry = read_result(rep.folder).to_dict()
            results[run.run_id] = entry
            if on_done:
                on_done(run, entry)
            continue
        prepared.append(rep)
    for rep in prepared:
        key = json.dumps([rep.run.potential, list(rep.run.species), rep.run.md, rep.run.extrapolation,
                          rep.start, rep.images is not None], sort_keys=True, default=str)
        groups.setdefault(key, []).append(rep)
    models: dict[tuple, object] = {}
    batches = []
    for reps in groups.values():
        first = reps[0]
        mkey = (first.run.potential, tuple(first.run.species), first.extrapolation is not None)
        if mkey not in models:
            models[mkey] = _model(first.run.potential, first.run.species, dev, dtype_t,
                                  first.extrapolation is not None)
        size = batch_size or _auto_batch_size(models[mkey], reps, dev)
        for i in range(0, len(reps), size):
            batches.append((models[mkey], reps[i:i + size]))
    for b, (model, reps) in enumerate(batches):
        label = f"batch {b + 1}/{len(batches)}"
        for rep in _run_batch(model, reps, label, progress):
            entry = read_result(rep.folder).to_dict()
            if rep.status == "failed":
                entry["status"] = "failed"
            results[rep.run.run_id] = entry
            if on_done:
                on_done(rep.run, entry)
    return results


def _failed_entry(run, message: str) -> dict:
    """The manifest entry of a run that could not start."""
    steps = int(run.md.get("steps", MDSettings.steps))
    return {"status": "failed", "steps_done": 0, "steps": steps, "wall_time": 0.0,
            "folder": str(run.folder), "message": message, "files": {},
            "timestep": float(run.md.get("timestep", MDSettings.timestep)), "max_gamma": None,
            "saved_steps": [], "n_saved": 0, "last_good_file": None}


def _torch_dtype(name: str):
    import torch

    table = {"float64": torch.float64, "float32": torch.float32, "double": torch.float64,
             "float": torch.float32}
    if str(name) not in table:
        raise UserError(f"dtype: expected 'float64' or 'float32', got {name!r}")
    return table[str(name)]


def _check_device(device: str):
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserError(f"device: expected 'cpu' or 'cuda' (or 'cuda:N'), got {device!r}") from None
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"device: expected 'cpu' or 'cuda', got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r}: no CUDA device is available to torch "
                        f"(torch {torch.__version__}; a CPU build?)")
    return dev


def _model(potential: str, species: Sequence[str], device, dtype, grades: bool):
    from mtpkit.potentials.potential import load_potential

    pot = load_potential(potential)
    if grades and getattr(pot.mtp, "active_set", None) is None:
        raise UserError(f"{potential}: extrapolation control needs a potential with an active set (.almtp)")
    return pot.torch_model(species=list(species), device=device, dtype=dtype, compute_grades=False)


def _auto_batch_size(model, reps: list[_Replica], device) -> int:
    """Replicas per batch: on CUDA what fits 60 % of the free memory (probed), on CPU
    replicas up to :data:`CPU_ATOMS_PER_BATCH` atoms."""
    n_atoms = max(len(r.atoms) for r in reps)
    if device.type != "cuda":
        return max(1, min(len(reps), CPU_ATOMS_PER_BATCH // n_atoms))
    import torch

    probe_n = min(len(reps), 4)
    probe = BatchIntegrator(model, [reps[0].atoms] * probe_n, [300.0] * probe_n, reps[0].settings)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    probe.evaluate(grades=reps[0].extrapolation is not None)
    torch.cuda.synchronize(device)
    per_replica = max((torch.cuda.max_memory_allocated(device) - base) / probe_n, 1.0)
    del probe
    torch.cuda.empty_cache()
    free, _total = torch.cuda.mem_get_info(device)
    return max(1, min(len(reps), int(0.6 * free / per_replica)))


def _prepare(run) -> _Replica:
    """The replica of a sweep run: fresh, or resumed from its checkpoint."""
    folder = Path(run.folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    settings = MDSettings(**run.md, temperature=run.temperature, seed=run.seed)
    extrapolation = Extrapolation(**run.extrapolation) if run.extrapolation else None
    save = folder / extrapolation.save if extrapolation and extrapolation.save else None
    min_dist = collapse_distance(settings.min_dist, potential_min_dist(run.potential))
    state = _read_state(folder)
    ckpt = folder / CHECKPOINT
    common = dict(run=run, folder=folder, settings=settings, extrapolation=extrapolation,
                  save=save, min_dist=min_dist)
    if state is not None and _finished(state, settings.steps):  # recorded, nothing to read
        rep = _Replica(atoms=Atoms(), types=np.zeros(0, int), random=ReplicaRandom(run.seed),
                       start=int(state.get("step", 0)), **common)
        rep.status = str(state.get("status") or "done")
        return rep
    if state is not None and ckpt.is_file():
        with np.load(ckpt, allow_pickle=False) as data:
            step = int(data["step"])
            atoms = Atoms(numbers=data["numbers"], positions=data["positions"], cell=data["cell"], pbc=True)
            types = species_types(atoms, run.species)
            rep = _Replica(atoms=atoms, types=types, random=ReplicaRandom.from_state(str(data["random"])),
                           start=step, velocities=np.array(data["velocities"]),
                           images=np.array(data["images"]), **common)
            rep.max_gamma = float(data["max_gamma"])
            rep.wall_before = float(data["wall_time"])
        _truncate_outputs(folder, step, save)
        rep.step = rep.checkpoint_step = step
        rep.checkpoint_gamma = rep.max_gamma
        rep.last_good = atoms
        return rep
    # fresh start (also when another engine's unfinished run is in the folder)
    atoms = as_atoms(run.structure, "sweep.structures")
    if run.supercell:
        atoms = atoms.repeat(run.supercell)
    atoms = lammps_atoms(atoms)
    types = species_types(atoms, run.species)
    random = ReplicaRandom(run.seed)
    vel = (initial_velocities(atoms, settings.temperature, random.velocity)
           if settings.init_velocities else None)
    write_data(folder / "structure.data", atoms, run.species)
    for name in ("traj.dump", CHECKPOINT, "last_good.extxyz", "run.restart"):
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
    if save is not None:
        with contextlib.suppress(FileNotFoundError):
            save.unlink()
    title = " ".join(THERMO_COLUMNS + (["max_gamma"] if extrapolation else []))
    (folder / "thermo.dat").write_text(f"# {title}\n")
    rep = _Replica(atoms=atoms, types=types, random=random, start=0, velocities=vel, **common)
    rep.last_good = atoms
    return rep


def _run_batch(model, reps: list[_Replica], label: str,
               progress: Callable[[str], None] | None) -> list[_Replica]:
    """Integrate one batch to the end; returns the replicas in the order they ended."""
    s0 = reps[0].settings
    start = reps[0].start
    integ = BatchIntegrator(model, [r.atoms for r in reps], [r.settings.temperature for r in reps],
                            s0, [r.velocities for r in reps])
    if reps[0].images is not None:
        import torch

        integ.images = torch.as_tensor(np.concatenate([r.images for r in reps]), dtype=torch.long,
                                       device=integ.device)
    active = list(reps)
    ended: list[_Replica] = []
    t0 = time.perf_counter()
    for r in active:
        r.t_joined = t0
        r.step = start
    every = [r.extrapolation.every if r.extrapolation else 0 for r in active]
    grade_every = every[0]
    step = start
    steps = s0.steps
    total_atoms = int(integ.n_atoms.sum())
    if progress:
        progress(f"torch-sim {label}: {len(active)} replicas, {total_atoms} atoms on "
                 f"{integ.device.type}, steps {start} -> {steps}")

    def graded(at: int) -> bool:
        return bool(grade_every) and at % grade_every == 0

    def end_replicas(idx: list[int]) -> None:
        nonlocal active
        if not idx:
            return
        keep = [k for k in range(len(active)) if k not in set(idx)]
        for k in idx:
            ended.append(active[k])
        integ.keep(keep)
        active = [active[k] for k in keep]

    try:
        integ.evaluate(graded(step))
    except Exception as exc:  # noqa: BLE001  # the model failed on the whole batch: every run fails
        for r in active:
            _fail(r, f"model evaluation failed at step {step}: {exc}", time.perf_counter())
        return list(active)
    integ.update_pressure()
    end_replicas(_after_step(integ, active, step, graded(step)))
    t_chunk, atom_steps = time.perf_counter(), 0
    noise = _NoiseFeed(integ)
    while active and step < steps:
        n = min(s0.restart_every - step % s0.restart_every, steps - step)
        noise.start_chunk(active, n)
        for _ in range(n):
            block, row = noise.next(active)
            step += 1
            integ.advance(block, row)
            try:
                integ.evaluate(graded(step))
            except Exception as exc:  # noqa: BLE001  # a blown-up replica must not end the others
                bad = _non_finite(integ)
                for k in bad or range(len(active)):
                    why = "non-finite coordinates" if bad else f"model evaluation failed ({exc})"
                    _fail(active[k], f"MD blow-up after step {step - 1}: {why}", time.perf_counter())
                end_replicas(bad or list(range(len(active))))
                if not active:
                    break
                block, row = noise.next(active, again=True)
                integ.evaluate(graded(step))
            integ.finish(block, row)
            atom_steps += int(integ.n_atoms.sum())
            end_replicas(_after_step(integ, active, step, graded(step)))
            if not active:
                break
        if not active:
            break
        # end of a chunk: sanity check, outputs flushed, checkpoint and state.json
        now = time.perf_counter()
        bad = _check_sane(integ, active)
        for k, msg in bad:
            _fail(active[k], f"MD blow-up after step {step}: {msg}", now)
        end_replicas([k for k, _ in bad])
        done = step >= steps
        for k, r in enumerate(active):
            _checkpoint(integ, k, r, step, now, "done" if done else "running")
        if progress and active:
            rate = atom_steps / max(time.perf_counter() - t_chunk, 1e-9)
            left = (steps - step) * int(integ.n_atoms.sum()) / rate
            progress(f"torch-sim {label}: step {step}/{steps}, {len(active)} replicas running, "
                     f"{rate:.4g} atom-steps/s" + (f", about {left / 60:.1f} min left" if not done else ""))
        if done:
            ended.extend(active)
            active = []
        t_chunk, atom_steps = time.perf_counter(), 0
    if active:  # nothing to run (steps <= start): record the start as the end
        now = time.perf_counter()
        for k, r in enumerate(active):
            _checkpoint(integ, k, r, step, now, "done")
        ended.extend(active)
    return ended


class _NoiseFeed:
    """Noise for the steps of a chunk, drawn in blocks of :data:`NOISE_BLOCK` steps from
    each active replica's streams; columns follow the replicas as they leave the batch."""

    def __init__(self, integ: BatchIntegrator) -> None:
        self.integ = integ
        self.left = 0
        self.block: Noise | None = None
        self.row = 0
        self.owners: list[int] = []

    def start_chunk(self, active: list[_Replica], n: int) -> None:
        self.left = n
        self.block = None

    def next(self, active: list[_Replica], again: bool = False) -> tuple[Noise, int]:
        """The block and row of the current step (``again``: the same step, after replicas left)."""
        ids = [id(r) for r in active]
        if not again and (self.block is None or self.row + 1 >= self.block.thermo.shape[0]):
            size = min(NOISE_BLOCK, self.left)
            self.block = self.integ.draw_noise([r.random for r in active], size)
            self.owners, self.row = ids, 0
            self.left -= size
        elif not again:
            self.row += 1
        if ids != self.owners:
            where = {o: i for i, o in enumerate(self.owners)}
            self.block = self.block.select([where[i] for i in ids])
            self.owners = ids
        return self.block, self.row


def _non_finite(integ: BatchIntegrator) -> list[int]:
    torch = integ.torch
    bad_atoms = ~torch.isfinite(integ.positions).all(dim=1)
    bad = torch.zeros(integ.n_systems, dtype=torch.bool, device=integ.device)
    bad = bad.index_put((integ.system_idx[bad_atoms],), torch.ones_like(integ.system_idx[bad_atoms],
                                                                       dtype=torch.bool))
    return torch.nonzero(bad).squeeze(1).tolist()


def _after_step(integ: BatchIntegrator, active: list[_Replica], step: int, graded: bool) -> list[int]:
    """Outputs of ``step``; grades, breaks and blow-ups. Returns the replicas that ended."""
    torch = integ.torch
    ended = []
    ends = torch.cumsum(integ.n_atoms, 0).tolist()
    starts = [e - n for e, n in zip(ends, integ.n_atoms.tolist())]
    energy = integ.energy.tolist()
    for r in active:
        r.step = step
    finite = [math.isfinite(e) for e in energy]
    system_grades = integ.system_grades.tolist() if graded and integ.system_grades is not None else None
    s = active[0].settings
    want_thermo = step % s.thermo_every == 0
    want_dump = step % s.dump_every == 0
    thermo = _thermo_values(integ) if want_thermo else None
    positions = None
    if want_dump:
        positions = integ.unwrapped().cpu().numpy()
    cells = integ.cell.cpu().numpy() if (want_dump or system_grades) else None
    for k, r in enumerate(active):
        if not finite[k]:
            _fail(r, f"MD blow-up at step {step}: potential energy is not finite", time.perf_counter())
            ended.append(k)
            continue
        if system_grades is not None:
            g = system_grades[k]
            r.last_gamma = g
            r.max_gamma = g if math.isnan(r.max_gamma) else max(r.max_gamma, g)
        if thermo is not None:
            r.thermo.append(_thermo_line(thermo, k, step, s.timestep, r))
        if positions is not None:
            r.dump.append(_dump_frame(step, positions[starts[k]:ends[k]], cells[k], r.types))
        if system_grades is not None and r.extrapolation is not None:
            g = system_grades[k]
            if g > r.extrapolation.select_threshold and r.save is not None:
                r.saved.append(_saved_frame(integ, k, starts[k], ends[k], cells[k], r, step, g))
            if g > r.extrapolation.break_threshold:
                r.status = "extrapolation_break"
                r.message = (f"max extrapolation grade {g:.6g} above the break threshold at step {step}")
                _checkpoint(integ, k, r, step, time.perf_counter(), "extrapolation_break")
                ended.append(k)
                continue
        r.buffered += len(r.dump[-1]) if positions is not None else 0
        if r.buffered > (1 << 22):
            _flush(r)
    return ended


def _thermo_values(integ: BatchIntegrator) -> dict[str, list]:
    ke = integ.kinetic_energy()
    vol = integ.volume()
    press = integ.pressure_tensor.diagonal(dim1=1, dim2=2).sum(1) / 3.0 * EV_A3_IN_BAR
    cell = integ.cell
    return {"T": integ.temperature().tolist(), "pe": integ.energy.tolist(), "ke": ke.tolist(),
            "p": press.tolist(), "v": vol.tolist(), "cell": cell.cpu().numpy()}


def _thermo_line(v: dict, k: int, step: int, timestep: float, r: _Replica) -> str:
    c = v["cell"][k]
    vals = [step * timestep / 1000.0, v["T"][k], v["pe"][k], v["ke"][k], v["pe"][k] + v["ke"][k],
            v["p"][k], v["v"][k], c[0, 0], c[1, 1], c[2, 2], c[1, 0], c[2, 0], c[2, 1]]
    if r.extrapolation is not None:
        vals.append(r.last_gamma)
    return f"{step} " + " ".join(f"{x:.10g}" for x in vals) + "\n"


def _dump_frame(step: int, xu: np.ndarray, cell: np.ndarray, types: np.ndarray) -> str:
    """One LAMMPS ``dump custom id type xu yu zu`` frame with a restricted-triclinic box."""
    lx, ly, lz = cell[0, 0], cell[1, 1], cell[2, 2]
    xy, xz, yz = cell[1, 0], cell[2, 0], cell[2, 1]
    lo_x = min(0.0, xy, xz, xy + xz)
    hi_x = max(0.0, xy, xz, xy + xz)
    head = (f"ITEM: TIMESTEP\n{step}\nITEM: NUMBER OF ATOMS\n{len(xu)}\n"
            f"ITEM: BOX BOUNDS xy xz yz pp pp pp\n"
            f"{lo_x:.16e} {lx + hi_x:.16e} {xy:.16e}\n"
            f"{min(0.0, yz):.16e} {ly + max(0.0, yz):.16e} {xz:.16e}\n"
            f"0.0000000000000000e+00 {lz:.16e} {yz:.16e}\n"
            "ITEM: ATOMS id type xu yu zu\n")
    rows = np.empty((len(xu), 5), dtype=object)
    rows[:, 0] = np.arange(1, len(xu) + 1)
    rows[:, 1] = types + 1
    rows[:, 2:] = xu
    body = ("%d %d %.17g %.17g %.17g\n" * len(xu)) % tuple(rows.ravel())
    return head + body


def _saved_frame(integ: BatchIntegrator, k: int, a: int, b: int, cell: np.ndarray, r: _Replica,
                 step: int, gamma: float) -> str:
    """An extended-XYZ frame like the pair style's save file (``step``, ``max_gamma``, ``gamma``)."""
    import io

    from ase.io import write

    atoms = Atoms(numbers=integ.atomic_numbers[a:b].cpu().numpy(),
                  positions=integ.positions[a:b].cpu().numpy(), cell=cell, pbc=True)
    atoms.info["step"] = int(step)
    atoms.info["max_gamma"] = float(gamma)
    if integ.grades is not None:
        atoms.arrays["gamma"] = integ.grades[a:b].cpu().numpy()
    buf = io.StringIO()
    write(buf, atoms, format="extxyz")
    return buf.getvalue()


def _flush(r: _Replica) -> None:
    """Append the buffered dump frames, thermo lines and saved configurations to their files."""
    for name, buf in (("traj.dump", r.dump), ("thermo.dat", r.thermo)):
        if buf:
            with open(r.folder / name, "a") as fh:
                fh.write("".join(buf))
            buf.clear()
    if r.saved and r.save is not None:
        with open(r.save, "a") as fh:
            fh.write("".join(r.saved))
        r.saved.clear()
    r.buffered = 0


def _replica_arrays(integ: BatchIntegrator, k: int) -> dict[str, np.ndarray]:
    sel = integ.system_idx == k
    return {"positions": integ.positions[sel].cpu().numpy(), "images": integ.images[sel].cpu().numpy(),
            "velocities": integ.velocities[sel].cpu().numpy(), "cell": integ.cell[k].cpu().numpy(),
            "numbers": integ.atomic_numbers[sel].cpu().numpy()}


def _checkpoint(integ: BatchIntegrator, k: int, r: _Replica, step: int, now: float, status: str) -> None:
    """Flush the outputs, then write the checkpoint and ``state.json`` atomically."""
    _flush(r)
    arrays = _replica_arrays(integ, k)
    wall = r.wall_before + now - r.t_joined
    with atomic_open(r.folder / CHECKPOINT, "wb") as fh:
        np.savez(fh, step=np.int64(step), max_gamma=np.float64(r.max_gamma), wall_time=np.float64(wall),
                 random=np.str_(r.random.get_state()), **arrays)
    r.status = status
    r.checkpoint_step = step
    r.checkpoint_gamma = r.max_gamma
    r.last_good = Atoms(numbers=arrays["numbers"], positions=arrays["positions"], cell=arrays["cell"],
                        pbc=True)
    _write_state(r.folder, r.settings, step, wall, status=status, max_gamma=r.max_gamma,
                 message=r.message, save=r.save)


def _fail(r: _Replica, message: str, now: float) -> None:
    """Record a failed replica: its buffered outputs are written, ``last_good.extxyz`` is its
    last checkpointed configuration and ``state.json`` points at that checkpoint."""
    _flush(r)
    r.status, r.message = "failed", message
    wall = r.wall_before + now - r.t_joined
    if r.last_good is not None:
        from ase.io import write

        write(r.folder / "last_good.extxyz", r.last_good, format="extxyz")
    _write_state(r.folder, r.settings, r.checkpoint_step, wall, status="failed", max_gamma=r.max_gamma,
                 message=message, save=r.save, checkpoint_max_gamma=r.checkpoint_gamma)


def _check_sane(integ: BatchIntegrator, active: list[_Replica]) -> list[tuple[int, str]]:
    """Replicas with non-finite coordinates or two atoms closer than their ``min_dist``."""
    from ase.neighborlist import neighbor_list

    bad = []
    pos = integ.positions.cpu().numpy()
    cells = integ.cell.cpu().numpy()
    ends = np.cumsum(integ.n_atoms.cpu().numpy())
    for k, r in enumerate(active):
        p = pos[ends[k] - len(r.types):ends[k]]
        if not np.all(np.isfinite(p)):
            bad.append((k, "non-finite coordinates"))
            continue
        d = neighbor_list("d", Atoms(positions=p, cell=cells[k], pbc=True), r.min_dist)
        if d.size:
            bad.append((k, f"atoms closer than min_dist = {r.min_dist} Å (closest {d.min():.3f} Å)"))
    return bad

