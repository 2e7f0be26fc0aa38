"""Fitting a Moment Tensor Potential to energies, forces and stresses.

The loss
--------
For training configurations ``c`` with ``N_c`` atoms, reference total energy
``E*_c`` (eV), forces ``F*_ci`` (eV/Å) and virial ``V*_c = -volume * stress``
(3x3, eV), and the MTP's ``E_c``, ``F_ci``, ``V_c``::

    L = (1 / W) * sum_c w_c * [ w_E * p_c * (E_c - E*_c)^2
                              + w_F * q_c * sum_i |F_ci - F*_ci|^2
                              + w_S * p_c * s_c * sum_ab (V_c,ab - V*_c,ab)^2 ]

* ``w_E, w_F, w_S``: ``energy_weight``, ``force_weight``, ``stress_weight``
  (MLIP's defaults 1, 0.01, 0.001; ``w_F`` carries Å^2 so that every term is
  in eV^2).
* ``w_c >= 0``: per-configuration weight (argument ``weights``, else
  ``atoms.info["weight"]`` -- a cfg ``Feature weight`` line -- else 1);
  ``W = sum_c w_c``, so ``L`` is a weighted mean over configurations.
* ``s_c``: 1 if configuration ``c`` has a stress label and a 3D cell, else 0
  (its stress term is switched off, and a log line says for how many);
  likewise a configuration without force labels gets no force term.
* ``p_c, q_c`` follow MLIP's ``--weighting``: ``"vibrations"`` (default)
  ``p_c = 1/N_c, q_c = 1``, so the energy term is
  ``N_c * (E_c/N_c - E*_c/N_c)^2``, an error of the energy per atom;
  ``"molecules"`` ``p_c = 1, q_c = 1/N_c``; ``"structures"``
  ``p_c = 1/N_c^2, q_c = 1/N_c`` (squared per-atom energy error, mean
  squared force error per atom).

The compiled core evaluates it as ``sum_c a_c dE^2 + b_c |dF|^2 + d_c |dV|^2``
with ``a_c = w_c w_E p_c / W``, ``b_c = w_c w_F q_c / W``,
``d_c = w_c w_S p_c s_c / W`` (:func:`loss_coefficients`).

The fit
-------
1. ``min_dist`` is reset to the smallest interatomic distance of the
   training set, as MLIP does (for a warm start it is only ever lowered).
2. Untrained templates get random radial coefficients (uniform in
   ``[-init_radial_scale, init_radial_scale]``, seeded); a trained initial
   potential is a warm start.
3. Species and moment coefficients, on which energies, forces and virials
   depend linearly, are solved by ridge-regularised linear least squares of
   the same loss (:func:`fit_linear`).
4. L-BFGS (scipy's L-BFGS-B) with the analytic gradient of the compiled
   core. ``method="varpro"`` (default) optimises the radial coefficients and
   re-solves the linear coefficients exactly at every evaluation (variable
   projection: the reduced loss ``min_lin L`` has, by the envelope theorem,
   the radial part of ``grad L`` at the linear optimum as its gradient);
   ``method="joint"`` runs L-BFGS over all parameters after the one linear
   solve, as MLIP does. Variable projection reached a ~500x lower loss than
   the joint scheme in the same 300 iterations on an EMT Cu/Ag/Au set (level 6).
   Progress lines, atomic checkpoints, early stopping on the validation loss.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from ase import Atoms

from mtpkit.errors import UserError
from mtpkit.potentials.labels import Labels, Predictions, config_name, extract_labels
from mtpkit.potentials.metrics import error_metrics, write_metrics
from mtpkit.potentials.model import MTP
from mtpkit.potentials.train_config import TrainConfig

Log = Callable[[str], None]


def _core():
    from mtpkit.potentials import core

    return core


# --------------------------------------------------------------------------- inputs


def types_for_images(images: Sequence[Atoms], species: Sequence[str] | None, species_count: int,
                     source: str | os.PathLike | None = None) -> list[npt.NDArray[np.int64]]:
    """MLIP type index (0-based) of every atom of every configuration.

    With ``species`` (chemical symbol of type 0, 1, ...), symbols are mapped;
    without, ``atoms.arrays["mtp_type"]`` (set by :func:`mtpkit.read_cfg`
    when no species are given) is used. Raises :class:`UserError` naming the
    configuration for an unknown symbol or a type outside ``0..species_count-1``.
    """
    from mtpkit.potentials.species import atom_types

    return [atom_types(atoms, species, species_count, label=config_name(source, k))
            for k, atoms in enumerate(images)]


def config_weights(images: Sequence[Atoms], weights: Sequence[float] | None = None,
                   source: str | os.PathLike | None = None) -> npt.NDArray[np.float64]:
    """Per-configuration weights ``w_c``: ``weights`` if given, else
    ``atoms.info["weight"]`` (a cfg ``Feature weight`` line), else 1."""
    n = len(images)
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.size != n:
            raise UserError(f"got {w.size} configuration weights for {n} configurations")
        raw = list(w)
    else:
        raw = [atoms.info.get("weight", 1.0) for atoms in images]
    out = np.empty(n)
    for k, v in enumerate(raw):
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            raise UserError(f"{config_name(source, k)}: weight {v!r} is not a number") from None
        if not math.isfinite(out[k]) or out[k] < 0:
            raise UserError(f"{config_name(source, k)}: weight {v!r} must be finite and >= 0")
    if n and out.sum() <= 0:
        raise UserError("all configuration weights are zero")
    return out


def loss_coefficients(labels: Labels, weights: npt.ArrayLike, config: TrainConfig
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-configuration ``(a_c, b_c, d_c)`` of the loss (see the module docstring)."""
    w = np.asarray(weights, dtype=np.float64)
    n = labels.natoms.astype(np.float64)
    if config.weighting == "vibrations":
        p, q = 1.0 / n, np.ones_like(n)
    elif config.weighting == "molecules":
        p, q = np.ones_like(n), 1.0 / n
    else:  # structures
        p, q = 1.0 / n**2, 1.0 / n
    wn = w / w.sum()
    a = wn * config.energy_weight * p
    b = wn * config.force_weight * q
    b = b * labels.has_forces
    d = wn * config.stress_weight * p * labels.has_stress
    return a, b, d


def loss_from_predictions(pred: Predictions, labels: Labels, a: np.ndarray, b: np.ndarray,
                          d: np.ndarray) -> float:
    """The loss ``sum_c a_c dE^2 + b_c |dF|^2 + d_c |dV|^2`` of given predictions."""
    total = 0.0
    for c in range(len(labels)):
        total += a[c] * (pred.energy[c] - labels.energy[c]) ** 2
        if b[c]:
            total += b[c] * float(np.sum((pred.forces[c] - labels.forces[c]) ** 2))
        if d[c]:
            total += d[c] * float(np.sum((pred.virial[c] - labels.virial[c]) ** 2))
    return float(total)


def predict_set(mtp: Any, tset: Any) -> Predictions:
    """Energies, forces and virials of every configuration of a packed
    training set (compiled core), as :class:`~mtpkit.potentials.labels.Predictions`."""
    p = _core().predict(mtp, tset)
    return Predictions(np.asarray(p.energies, dtype=np.float64), tset.split_forces(p.forces),
                       list(np.asarray(p.virials, dtype=np.float64).reshape(-1, 3, 3)))


def smallest_distance(tset: Any) -> tuple[float, int]:
    """Smallest interatomic distance (Å, periodic images included, pairs
    within the set's cutoff) of a packed training set and the configuration
    index (``(inf, -1)`` when no pair is within the cutoff)."""
    d = np.asarray(tset.min_distances, dtype=np.float64)
    d = np.where(np.isfinite(d) & (d > 0), d, np.inf)
    if d.size == 0 or not np.isfinite(d.min()):
        return math.inf, -1
    k = int(np.argmin(d))
    return float(d[k]), k


def split_indices(n: int, valid_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random (seeded) split of ``range(n)`` into sorted train and validation indices."""
    if valid_fraction <= 0 or n < 2:
        return np.arange(n), np.arange(0)
    n_valid = min(n - 1, max(1, round(valid_fraction * n)))
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_valid:]), np.sort(perm[:n_valid])


def _all_typed(images: Sequence[Atoms]) -> bool:
    return bool(images) and all("mtp_type" in a.arrays for a in images)


def count_species(species: Sequence[str] | None, images: Sequence[Atoms], source: str = "the training set") -> int:
    """Species of a fit: ``len(species)``, else one more than the largest MLIP type
    (``atoms.arrays["mtp_type"]``, as read from .cfg files) in ``images``, as
    ``mlp train`` counts them. Raises :class:`UserError` when neither tells."""
    if species is not None:
        return len(species)
    if not _all_typed(images):
        raise UserError(f"{source}: configurations without MLIP types; give the species list")
    largest = max((int(np.max(a.arrays["mtp_type"])) for a in images if len(a)), default=-1)
    if largest < 0:
        raise UserError(f"{source}: no atoms to count the species from; give the species list")
    return largest + 1


def resolve_init(init: Any, species: Sequence[str] | None, images: Sequence[Atoms]
                 ) -> tuple[MTP, list[str] | None]:
    """The initial MTP and species list from ``init``: an :class:`MTP`, a
    :class:`~mtpkit.potentials.potential.Potential` (anything with ``.mtp``),
    a path to a ``.mtp``/``.almtp`` file, or an integer template level.

    An untrained template with fewer species than the fit (MLIP-3's templates
    have ``species_count = 1``) is set up for the fit's species count."""
    pot_species = None
    if isinstance(init, MTP):
        mtp = init.copy()
    elif hasattr(init, "mtp") and isinstance(init.mtp, MTP):
        mtp = init.mtp.copy()
        pot_species = getattr(init, "species", None)
    elif isinstance(init, (int, np.integer)) and not isinstance(init, bool):
        from mtpkit.potentials.templates import make_template

        mtp = make_template(int(init), count_species(species, images))
    elif isinstance(init, (str, os.PathLike)):
        from mtpkit.potentials.mtp_io import read_mtp

        mtp = read_mtp(init)
    else:
        raise UserError(f"cannot start training from {type(init).__name__}: give an MTP, a Potential, "
                        "a .mtp path or a template level")
    if species is None and pot_species:
        species = list(pot_species)
    if not mtp.trained and (species is not None or _all_typed(images)):
        # MLIP-3's MTP_templates/*.almtp ship with species_count = 1; like `mlp train`,
        # an untrained template takes the species count of the fit
        needed = count_species(species, images)
        if mtp.species_count < needed:
            from mtpkit.potentials.templates import for_species

            mtp = for_species(mtp, needed)
    if species is not None:
        species = list(species)
        if len(species) > mtp.species_count:
            raise UserError(f"{len(species)} species given ({','.join(species)}) but the potential has "
                            f"species_count = {mtp.species_count}")
        if len(set(species)) != len(species):
            raise UserError(f"species list {','.join(species)} repeats a symbol")
    return mtp, species


# --------------------------------------------------------------------------- linear fit


def fit_linear(mtp: MTP, tset: Any, labels: Labels, a: np.ndarray, b: np.ndarray, d: np.ndarray,
               ridge: float) -> MTP:
    """Species and moment coefficients minimising the loss for fixed radial
    coefficients (ridge-regularised normal equations, columns scaled to unit
    diagonal so that ``ridge`` is relative).

    ``tset`` is a packed training set, or a list of ``(packed set, indices)``
    parts covering the configurations of ``labels`` (to bound the memory of
    the force rows).
    """
    from scipy.linalg import LinAlgError, lstsq, solve

    parts = tset if isinstance(tset, list) else [(tset, np.arange(len(labels)))]
    n_lin = mtp.species_count + mtp.alpha_scalar_moments
    G = np.zeros((n_lin, n_lin))
    r = np.zeros(n_lin)
    for part, idx in parts:
        idx = np.asarray(idx, dtype=np.int64)
        rows = _core().linear_rows(mtp, part)
        sa, sb, sd = np.sqrt(a[idx]), np.sqrt(b[idx]), np.sqrt(d[idx])
        # energies
        A = np.asarray(rows.energy).reshape(-1, n_lin) * sa[:, None]
        G += A.T @ A
        r += A.T @ (sa * labels.energy[idx])
        # forces: one row per atom and component, weighted by sqrt(b_c)
        w = np.repeat(np.repeat(sb, labels.natoms[idx]), 3)
        if np.any(w):
            A = np.asarray(rows.forces).reshape(-1, n_lin) * w[:, None]
            f_ref = np.concatenate([labels.forces[c].reshape(-1) for c in idx])
            G += A.T @ A
            r += A.T @ (w * np.where(w != 0, f_ref, 0.0))
        # virials
        w = np.repeat(sd, 9)
        if np.any(w):
            A = np.asarray(rows.virial).reshape(-1, n_lin) * w[:, None]
            v_ref = np.concatenate([labels.virial[c].reshape(-1) for c in idx])
            G += A.T @ A
            r += A.T @ (w * v_ref)
    diag = np.sqrt(np.diag(G))
    diag[~(diag > 0)] = 1.0
    Gs = G / np.outer(diag, diag) + ridge * np.eye(n_lin)
    rs = r / diag
    try:
        z = solve(Gs, rs, assume_a="pos")
    except (LinAlgError, ValueError):
        z = lstsq(Gs, rs)[0]
    x = z / diag
    p = mtp.get_params()
    p[mtp.radial_coeffs.size:] = x
    return mtp.with_params(p)


#: Largest force-row block (bytes) :func:`fit_linear` builds at once.
LINEAR_ROWS_BYTES = 256 * 2**20


def _linear_parts(core: Any, tset: Any, images: Sequence[Atoms], types: Sequence[np.ndarray],
                  mtp: MTP) -> Any:
    """``tset`` itself when its force rows fit in :data:`LINEAR_ROWS_BYTES`,
    else a list of ``(packed subset, indices)`` parts that each do."""
    k = mtp.species_count + mtp.alpha_scalar_moments
    per_config = [24 * k * len(im) + 80 * k for im in images]
    if sum(per_config) <= LINEAR_ROWS_BYTES:
        return tset
    parts, cur, size = [], [], 0
    for c, nbytes in enumerate(per_config):
        if cur and size + nbytes > LINEAR_ROWS_BYTES:
            parts.append(cur)
            cur, size = [], 0
        cur.append(c)
        size += nbytes
    if cur:
        parts.append(cur)
    return [(core.TrainingSet([images[c] for c in idx], [types[c] for c in idx], mtp.cutoff),
             np.asarray(idx)) for idx in parts]


# --------------------------------------------------------------------------- result


@dataclass
class TrainResult:
    """What :func:`train` returns.

    ``mtp`` is the fitted potential (the best-validation parameters when
    early stopping ran); ``history`` holds one dict per L-BFGS iteration
    (``iteration``, ``loss``, and where computed ``valid_loss`` and train
    metrics); metrics are those of :func:`mtpkit.potentials.metrics.error_metrics`.
    """

    mtp: MTP
    species: list[str] | None
    config: TrainConfig
    iterations: int
    n_evaluations: int
    stop_reason: str
    initial_loss: float
    train_loss: float
    valid_loss: float | None
    min_dist: float
    train_metrics: dict[str, float]
    valid_metrics: dict[str, float] | None
    history: list[dict[str, float]] = field(repr=False)
    train_predictions: Predictions = field(repr=False)
    train_labels: Labels = field(repr=False)
    valid_predictions: Predictions | None = field(default=None, repr=False)
    valid_labels: Labels | None = field(default=None, repr=False)
    elapsed_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary of the run (settings, stopping, losses)."""
        return {
            "species": self.species,
            "settings": self.config.model_dump(),
            "iterations": self.iterations,
            "loss_evaluations": self.n_evaluations,
            "stop_reason": self.stop_reason,
            "initial_loss": self.initial_loss,
            "train_loss": self.train_loss,
            "valid_loss": self.valid_loss,
            "min_dist": self.min_dist,
            "elapsed_s": self.elapsed_s,
        }

    def write_metrics(self, prefix: str | os.PathLike) -> dict[str, Path]:
        """``PREFIX.json``/``.md``/``.png`` for the training and validation sets."""
        data = {"train": (self.train_predictions, self.train_labels)}
        if self.valid_predictions is not None and self.valid_labels is not None:
            data["validation"] = (self.valid_predictions, self.valid_labels)
        return write_metrics(prefix, data, extra=self.summary(), title="MTP training errors")


# --------------------------------------------------------------------------- train


def train(images: Sequence[Atoms], init: Any, *, species: Sequence[str] | None = None,
          valid: Sequence[Atoms] | None = None, config: TrainConfig | None = None,
          weights: Sequence[float] | None = None, valid_weights: Sequence[float] | None = None,
          source: str | os.PathLike | None = None, valid_source: str | os.PathLike | None = None,
          log: Log | None = print, **settings: Any) -> TrainResult:
    """Fit an MTP to labelled configurations.

    Parameters
    ----------
    images:
        Training configurations with labels as calculator results (energy in
        eV, forces in eV/Å, optional stress in eV/Å^3, ASE convention).
    init:
        Initial potential: an :class:`MTP`, a ``Potential``, a ``.mtp`` path,
        or an integer template level. An untrained template starts from random
        radial coefficients (seeded); a trained potential is a warm start.
    species:
        Chemical symbol of each type index; defaults to the potential's own
        species, else the configurations' ``arrays["mtp_type"]``.
    valid:
        Validation configurations (early stopping, report). Without it,
        ``config.valid_fraction`` of ``images`` is held out (seeded).
    config, settings:
        A :class:`TrainConfig`; keyword ``settings`` override its fields.
    weights, valid_weights:
        Per-configuration weights (default ``atoms.info["weight"]`` or 1).
    source, valid_source:
        Names (file paths) used in messages about bad configurations.
    log:
        Receives progress lines (``None``: silent).

    The loss and the steps of the fit are described in the module docstring.
    """
    t0 = time.perf_counter()
    cfg = config if config is not None else TrainConfig()
    if settings:
        cfg = cfg.replace(**settings)
    say: Log = log if log is not None else (lambda _msg: None)
    images = list(images)
    if not images:
        raise UserError(f"{source or 'training set'}: no configurations to train on")

    mtp, species = resolve_init(init, species, images)
    data = _prepare_data(images, valid, species, mtp.species_count, cfg, weights, valid_weights,
                         source, valid_source, say)
    core = _core()
    tset = core.TrainingSet(data.images, data.types, mtp.cutoff)
    vset = core.TrainingSet(data.v_images, data.v_types, mtp.cutoff) if data.has_valid else None
    mtp = _set_min_dist(mtp, tset, cfg, say, data.labels.names)  # step 1 of the module docstring
    mtp, fresh = _initial_params(mtp, cfg, say)  # 2
    obj = _Objective(core, mtp, data, tset, vset, cfg)
    x = mtp.get_params()
    initial_loss, g0 = obj.loss_grad(x)
    if not math.isfinite(initial_loss) or not np.all(np.isfinite(g0)):
        raise UserError(f"initial loss is not finite ({initial_loss}); check the labels and the "
                        "initial potential")
    x, initial_loss = _linear_start(obj, mtp, x, initial_loss, cfg, fresh, say)  # 3
    lbfgs = _Lbfgs(obj, mtp, x, initial_loss, g0, cfg, say, t0)  # 4
    x_final, stop = lbfgs.run()
    return _assemble_result(obj, mtp, lbfgs, x_final, stop, initial_loss, species, cfg, say, t0)


@dataclass
class _FitData:
    """The training and validation configurations of a fit with their types, labels and weights."""

    images: list[Atoms]
    types: list[np.ndarray]
    labels: Labels
    weights: np.ndarray
    v_images: list[Atoms]
    v_types: list[np.ndarray]
    v_labels: Labels
    v_weights: np.ndarray
    has_valid: bool


def _prepare_data(images: list[Atoms], valid: Sequence[Atoms] | None, species: Sequence[str] | None,
                  species_count: int, cfg: TrainConfig, weights: Sequence[float] | None,
                  valid_weights: Sequence[float] | None, source: str | os.PathLike | None,
                  valid_source: str | os.PathLike | None, say: Log) -> _FitData:
    """Types, labels and weights of the training set and of the validation set (given, or
    ``cfg.valid_fraction`` of ``images`` held out); says which label terms are switched off."""
    all_types = types_for_images(images, species, species_count, source)
    all_labels = extract_labels(images, source, require_forces=False)
    all_weights = config_weights(images, weights, source)
    if valid is not None:
        valid = list(valid)
        tr_idx = np.arange(len(images))
        v_images = valid
        v_types = types_for_images(valid, species, species_count, valid_source)
        v_labels = extract_labels(valid, valid_source, require_forces=False)
        v_weights = config_weights(valid, valid_weights, valid_source)
    else:
        tr_idx, va_idx = split_indices(len(images), cfg.valid_fraction, cfg.seed)
        v_images = [images[i] for i in va_idx]
        v_types = [all_types[i] for i in va_idx]
        v_labels = all_labels.subset(va_idx)
        v_weights = all_weights[va_idx]
        if va_idx.size:
            say(f"validation: {va_idx.size} of {len(images)} configurations held out (seed {cfg.seed})")
    t_weights = all_weights[tr_idx]
    if t_weights.sum() <= 0:
        raise UserError("all training configurations have weight 0")
    data = _FitData([images[i] for i in tr_idx], [all_types[i] for i in tr_idx], all_labels.subset(tr_idx),
                    t_weights, v_images, v_types, v_labels, v_weights,
                    has_valid=len(v_images) > 0 and float(np.sum(v_weights)) > 0)
    labels = data.labels
    n_no_forces = int((~labels.has_forces).sum())
    if n_no_forces and cfg.force_weight > 0:
        say(f"forces: {n_no_forces} of {len(labels)} training configurations have no force labels; "
            "their force term is switched off (b_c = 0)")
    n_no_stress = int((~labels.has_stress).sum())
    if n_no_stress and cfg.stress_weight > 0:
        say(f"stress: {n_no_stress} of {len(labels)} training configurations have no stress label "
            "(or no 3D cell); their stress term is switched off (d_c = 0)")
    return data


def _initial_params(mtp: MTP, cfg: TrainConfig, say: Log) -> tuple[MTP, bool]:
    """Random radial coefficients (seeded; the other parameters 0) or a warm start, as
    ``cfg.init_params`` says; returns the potential and whether it was drawn fresh."""
    fresh = cfg.init_params == "random" or (cfg.init_params == "auto" and not mtp.trained)
    if fresh:
        rng = np.random.default_rng(cfg.seed)
        p = mtp.get_params()
        nr = mtp.radial_coeffs.size
        p[:nr] = rng.uniform(-cfg.init_radial_scale, cfg.init_radial_scale, nr)
        p[nr:] = 0.0
        mtp = mtp.with_params(p)
        say(f"init: random radial coefficients in [-{cfg.init_radial_scale:g}, "
            f"{cfg.init_radial_scale:g}] (seed {cfg.seed}), {mtp.n_params} parameters")
    else:
        mtp = mtp.with_params(mtp.get_params())
        say(f"init: warm start from the given potential, {mtp.n_params} parameters")
    return mtp, fresh


class _Objective:
    """The loss of a fit on the compiled core, as a function of all parameters ``x``: the
    training loss and its gradient, the linear solve of the species and moment coefficients,
    and the validation loss."""

    def __init__(self, core: Any, mtp: MTP, data: _FitData, tset: Any, vset: Any,
                 cfg: TrainConfig) -> None:
        self.data, self.tset, self.vset, self.ridge = data, tset, vset, cfg.ridge
        self.core = core
        self.a, self.b, self.d = loss_coefficients(data.labels, data.weights, cfg)
        if data.has_valid:
            self.va, self.vb, self.vd = loss_coefficients(data.v_labels, data.v_weights, cfg)
        self.targets = {"energies": data.labels.energy, "forces": data.labels.forces,
                        "virials": np.array(data.labels.virial).reshape(-1, 3, 3)}
        self.model = core.CompiledMTP(mtp)
        self.lin_parts = _linear_parts(core, tset, data.images, data.types, mtp)

    def loss_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        self.model.set_params(x)
        value, grad = self.core.loss_and_grad(self.model, self.tset, self.a, self.b, self.d, **self.targets)
        return float(value), np.asarray(grad, dtype=np.float64)

    def solve_linear(self, x: np.ndarray) -> np.ndarray:
        """``x`` with the species and moment coefficients of the least-squares optimum."""
        self.model.set_params(x)
        return fit_linear(self.model.mtp, self.lin_parts, self.data.labels, self.a, self.b, self.d,
                          self.ridge).get_params()

    def valid_loss(self, x: np.ndarray) -> float:
        self.model.set_params(x)
        return loss_from_predictions(predict_set(self.model, self.vset), self.data.v_labels,
                                     self.va, self.vb, self.vd)

    def train_metrics(self, x: np.ndarray) -> dict[str, float]:
        self.model.set_params(x)
        return error_metrics(predict_set(self.model, self.tset), self.data.labels)


def _linear_start(obj: _Objective, mtp: MTP, x: np.ndarray, initial_loss: float, cfg: TrainConfig,
                  fresh: bool, say: Log) -> tuple[np.ndarray, float]:
    """Step 3: the linear least-squares solve, kept for varpro, a fresh start or a lower loss."""
    varpro = cfg.method == "varpro"
    if not (varpro or (cfg.linear_fit and mtp.alpha_scalar_moments + mtp.species_count > 0)):
        return x, initial_loss
    cand = obj.solve_linear(x)
    lin_loss, _ = obj.loss_grad(cand)
    if math.isfinite(lin_loss) and (fresh or varpro or lin_loss < initial_loss):
        say(f"linear least squares (species + moment coefficients): loss {initial_loss:.6e} "
            f"-> {lin_loss:.6e}")
        return cand, lin_loss
    say(f"linear least squares would not lower the loss ({lin_loss:.6e} >= "
        f"{initial_loss:.6e}); kept the warm-start coefficients")
    return x, initial_loss


class _Lbfgs:
    """Step 4: L-BFGS over the radial coefficients with the linear ones solved exactly at
    every evaluation (varpro), or over all parameters (joint); validation checks, early
    stopping, progress lines and checkpoints at each iteration."""

    def __init__(self, obj: _Objective, mtp: MTP, x: np.ndarray, initial_loss: float, g0: np.ndarray,
                 cfg: TrainConfig, say: Log, t0: float) -> None:
        self.obj, self.mtp, self.x, self.cfg, self.say, self.t0 = obj, mtp, x, cfg, say, t0
        self.initial_loss = initial_loss
        self.varpro = cfg.method == "varpro"
        self.nr = mtp.radial_coeffs.size
        self.history: list[dict[str, float]] = []
        self.it = self.nfev = self.bad = 0
        self.best_valid, self.best_x, self.best_it = math.inf, None, 0
        self.stop: str | None = None
        self.cache: dict[bytes, np.ndarray] = {}
        self.z0 = x[:self.nr].copy() if self.varpro else x.copy()
        self.last_f, self.last_g = initial_loss, (g0[:self.nr] if self.varpro else g0)
        # the optimiser sees L / L0 (L0: loss after the linear fit), so that its
        # tolerances do not depend on the units and size of the data
        self.scale = 1.0 / initial_loss if initial_loss > 0 else 1.0

    def full(self, z: np.ndarray) -> np.ndarray:
        """All parameters for the optimiser's variables ``z``."""
        if not self.varpro:
            return z
        key = z.tobytes()
        if key not in self.cache:
            xf = self.x.copy()
            xf[:self.nr] = z
            if len(self.cache) >= 8:
                self.cache.pop(next(iter(self.cache)))
            self.cache[key] = self.obj.solve_linear(xf)
        return self.cache[key]

    def fun(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        self.nfev += 1
        try:
            f, g = self.obj.loss_grad(self.full(z))
        except FloatingPointError:
            f, g = math.nan, self.last_g
        if self.varpro:
            g = g[:self.nr]
        if not math.isfinite(f) or not np.all(np.isfinite(g)):
            # a trial step of the line search went too far: report a large
            # loss so that it backtracks, never a NaN
            return 1e6 * max(abs(self.last_f) * self.scale, 1.0), -self.scale * self.last_g
        self.last_f, self.last_g = f, g
        return f * self.scale, g * self.scale

    def progress(self, xk: np.ndarray, fval: float, rec: dict[str, float]) -> None:
        m = self.obj.train_metrics(xk)
        rec.update(train_energy_rmse_mev_per_atom=m["energy_rmse_mev_per_atom"],
                   train_force_rmse=m["force_rmse"], train_stress_rmse_gpa=m["stress_rmse_gpa"])
        line = (f"iter {self.it:5d}  loss {fval:.6e}  E {m['energy_rmse_mev_per_atom']:.3f} meV/atom  "
                f"F {m['force_rmse']:.4f} eV/A  S {m['stress_rmse_gpa']:.4f} GPa")
        if "valid_loss" in rec:
            line += f"  | valid loss {rec['valid_loss']:.6e}"
        self.say(line + f"  ({time.perf_counter() - self.t0:.1f} s)")

    def callback(self, intermediate_result) -> None:
        cfg = self.cfg
        self.it += 1
        it = self.it
        xk = self.full(np.array(intermediate_result.x, dtype=np.float64)).copy()
        fval = float(intermediate_result.fun) / self.scale
        rec: dict[str, float] = {"iteration": it, "loss": fval}
        if self.obj.data.has_valid and it % cfg.valid_every == 0:
            vl = self.obj.valid_loss(xk)
            rec["valid_loss"] = vl
            if vl < self.best_valid:
                self.best_valid, self.best_x, self.bad, self.best_it = vl, xk, 0, it
            else:
                self.bad += 1
        if cfg.print_every and it % cfg.print_every == 0:
            self.progress(xk, fval, rec)
        if cfg.checkpoint is not None and it % cfg.checkpoint_every == 0:
            _write_checkpoint(cfg.checkpoint, self.mtp.with_params(xk))
        self.history.append(rec)
        if self.obj.data.has_valid and cfg.patience and self.bad >= cfg.patience:
            self.stop = (f"early stopping: validation loss did not improve for {cfg.patience} "
                         f"checks ({cfg.patience * cfg.valid_every} iterations)")
            raise StopIteration

    def run(self) -> tuple[np.ndarray, str]:
        """The parameters L-BFGS ends at and why it stopped."""
        from scipy.optimize import minimize

        cfg, data = self.cfg, self.obj.data
        what = "radial coefficients, linear ones solved at each step" if self.varpro else "all parameters"
        self.say(f"L-BFGS over {self.z0.size} {what}: {len(data.images)} training configurations "
                 f"({int(data.labels.natoms.sum())} atoms)"
                 + (f", {len(data.v_images)} validation" if data.has_valid else "")
                 + f", max {cfg.max_iter} iterations, initial loss {self.initial_loss:.6e}")
        if cfg.max_iter <= 0 or not self.z0.size:
            return self.x, "no L-BFGS iterations (max_iter = 0): linear fit only"
        res = minimize(self.fun, self.z0, jac=True, method="L-BFGS-B", callback=self.callback,
                       options={"maxiter": cfg.max_iter, "maxcor": cfg.lbfgs_memory,
                                "ftol": cfg.ftol, "gtol": cfg.gtol, "maxfun": 20 * cfg.max_iter + 20})
        x_final = self.full(np.array(res.x, dtype=np.float64)).copy()
        return x_final, self.stop or (f"max_iter ({cfg.max_iter}) reached" if self.it >= cfg.max_iter
                                      else f"L-BFGS: {res.message}")


def _assemble_result(obj: _Objective, mtp: MTP, lbfgs: _Lbfgs, x_final: np.ndarray, stop: str,
                     initial_loss: float, species: Sequence[str] | None, cfg: TrainConfig, say: Log,
                     t0: float) -> TrainResult:
    """The best-validation parameters (when they beat the last ones), the final losses,
    metrics and checkpoint, the closing log lines and the :class:`TrainResult`."""
    data = obj.data
    vl_final = None
    if data.has_valid:
        vl_final = obj.valid_loss(x_final)
        if lbfgs.best_x is not None and lbfgs.best_valid < vl_final:
            x_final = lbfgs.best_x
            stop += f"; returning the best-validation parameters of iteration {lbfgs.best_it}"
            vl_final = lbfgs.best_valid
    if not np.all(np.isfinite(x_final)):
        raise UserError("training produced non-finite parameters")
    final = mtp.with_params(x_final)
    train_loss, _ = obj.loss_grad(x_final)
    t_pred = predict_set(final, obj.tset)
    t_metrics = error_metrics(t_pred, data.labels)
    v_pred = predict_set(final, obj.vset) if data.has_valid else None
    v_metrics = error_metrics(v_pred, data.v_labels) if data.has_valid else None
    if cfg.checkpoint is not None:
        _write_checkpoint(cfg.checkpoint, final)
    elapsed = time.perf_counter() - t0
    say(f"done: {stop}; {lbfgs.it} iterations, {lbfgs.nfev} loss evaluations, {elapsed:.1f} s")
    say(f"train: loss {train_loss:.6e}, " + _fmt(t_metrics))
    if v_metrics is not None:
        say(f"validation: loss {vl_final:.6e}, " + _fmt(v_metrics))
    return TrainResult(
        mtp=final, species=list(species) if species is not None else None, config=cfg,
        iterations=lbfgs.it, n_evaluations=lbfgs.nfev, stop_reason=stop,
        initial_loss=initial_loss, train_loss=train_loss, valid_loss=vl_final,
        min_dist=final.min_dist, train_metrics=t_metrics, valid_metrics=v_metrics,
        history=lbfgs.history, train_predictions=t_pred, train_labels=data.labels,
        valid_predictions=v_pred, valid_labels=data.v_labels if data.has_valid else None,
        elapsed_s=elapsed,
    )


def _fmt(m: dict[str, float]) -> str:
    from mtpkit.potentials.metrics import format_metrics

    return format_metrics(m)


def _set_min_dist(mtp: MTP, tset: Any, cfg: TrainConfig, say: Log, names: Sequence[str]) -> MTP:
    from dataclasses import replace

    dmin, where = smallest_distance(tset)
    if cfg.min_dist == "keep":
        if dmin < mtp.min_dist:
            say(f"warning: {names[where]} has atoms {dmin:.4f} A apart, closer than "
                f"min_dist = {mtp.min_dist:.4f} A (kept as asked)")
        return mtp
    if cfg.min_dist != "data":
        new = float(cfg.min_dist)
        if new >= mtp.max_dist:
            raise UserError(f"min_dist {new} must be below max_dist {mtp.max_dist}")
        if new != mtp.min_dist:
            say(f"min_dist: {mtp.min_dist:.6g} -> {new:.6g} A (as configured)")
        return replace(mtp, min_dist=new)
    if not math.isfinite(dmin):
        say(f"min_dist: no atom pair within the cutoff {mtp.max_dist:g} A; min_dist "
            f"{mtp.min_dist:.6g} A kept")
        return mtp
    if mtp.trained and dmin >= mtp.min_dist:
        say(f"min_dist: kept {mtp.min_dist:.6g} A for the warm start (smallest distance in the "
            f"training set {dmin:.6g} A)")
        return mtp
    say(f"min_dist: {mtp.min_dist:.6g} -> {dmin:.6g} A, the smallest interatomic distance in the "
        f"training set ({names[where]}), as MLIP does")
    return replace(mtp, min_dist=dmin)


def _write_checkpoint(path: str | os.PathLike, mtp: MTP) -> None:
    from mtpkit.potentials.mtp_io import write_mtp

    write_mtp(path, mtp)
