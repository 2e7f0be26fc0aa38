"""Python interface of the compiled MTP core (``mtpkit._core``, C++/OpenMP).

Everything here takes an :class:`~mtpkit.potentials.model.MTP` (or a
:class:`CompiledMTP` made from one) plus ASE ``Atoms`` and per-atom MLIP type
indices, and returns NumPy arrays.

Units and conventions
---------------------
* energies in eV, forces in eV/Å (``F_i = -dE/dx_i``);
* ``virial`` is the 3×3 tensor in eV, ``W = -dE/dε`` = ``-V * stress`` (MLIP's
  ``PlusStress``, positive under compression);
* ``stress`` is ASE's Voigt vector ``(xx, yy, zz, yz, xz, xy)`` in eV/Å^3;
* parameter vectors and gradients follow :meth:`MTP.get_params` order
  (``radial_coeffs.ravel()``, ``species_coeffs``, ``moment_coeffs``);
* linear rows are over ``[species_coeffs | moment_coeffs]`` (``K =
  species_count + alpha_scalar_moments`` columns).

Periodic cells of any shape (triclinic, cells smaller than the cutoff, mixed
``pbc``) and non-periodic systems are handled by the core's own O(N) cell-list
neighbour search. Results do not depend on the number of OpenMP threads
(``OMP_NUM_THREADS`` or :func:`set_num_threads`). Importing this module changes
no environment variable; the ``mtpkit`` command sets ``OMP_WAIT_POLICY=PASSIVE``
(sleeping OpenMP waiters) unless already set — scripts on shared machines may set
it themselves before the first import.

Threads: a :class:`CompiledMTP` may be shared by threads. :meth:`CompiledMTP.set_params`
swaps in a new compiled model, so an evaluation running on another thread finishes
with the parameters it started with and never sees a half-written set.

Atoms closer than the potential's ``min_dist`` are outside the fitted range
of the radial basis: :func:`evaluate` warns (:class:`ShortDistanceWarning`,
naming the two atoms) or raises (:class:`ShortDistanceError`) according to
``on_short_distance``; coinciding atoms (distance 0) and non-finite results
always raise.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from ase import Atoms

from mtpkit import _core
from mtpkit.potentials.model import MTP

__all__ = [
    "EFS",
    "CompiledMTP",
    "LinearRows",
    "Predictions",
    "ShortDistanceError",
    "ShortDistanceWarning",
    "TrainingSet",
    "compile_mtp",
    "energy_param_grads",
    "evaluate",
    "linear_rows",
    "loss_and_grad",
    "max_threads",
    "neighbor_list",
    "predict",
    "set_num_threads",
    "site_basis",
    "virial_to_stress",
]


class ShortDistanceError(ValueError):
    """Two atoms are closer than the potential's ``min_dist`` (or coincide)."""


#: Å: a distance this close to min_dist counts as within it (rounding, not extrapolation)
SHORT_DISTANCE_TOLERANCE = 1e-9


class ShortDistanceWarning(UserWarning):
    """Two atoms are closer than the potential's ``min_dist``."""


def set_num_threads(n: int) -> None:
    """Number of OpenMP threads the core uses from now on (``n >= 1``)."""
    if n < 1:
        raise ValueError("need at least one thread")
    _core.set_num_threads(int(n))


def max_threads() -> int:
    """Number of OpenMP threads the core currently uses."""
    return int(_core.max_threads())


class CompiledMTP:
    """An :class:`MTP` converted once into the core's C++ model.

    Build one per potential and reuse it for repeated evaluations; it holds a
    snapshot of the MTP's arrays (later in-place edits of the MTP are not
    seen — call :meth:`set_params` or compile again).
    """

    def __init__(self, mtp: MTP) -> None:
        self.mtp = mtp
        self._set_lock = threading.Lock()  # keeps .model and .mtp of one set_params together
        self.model = _core.Model(
            int(mtp.species_count),
            float(mtp.min_dist),
            float(mtp.max_dist),
            int(mtp.radial_basis_size),
            int(mtp.radial_funcs_count),
            np.ascontiguousarray(mtp.radial_coeffs, dtype=np.float64).ravel(),
            np.ascontiguousarray(mtp.alpha_index_basic, dtype=np.int64).ravel(),
            np.ascontiguousarray(mtp.alpha_index_times, dtype=np.int64).ravel(),
            np.ascontiguousarray(mtp.alpha_moment_mapping, dtype=np.int64).ravel(),
            int(mtp.alpha_moments_count),
            np.ascontiguousarray(mtp.species_coeffs, dtype=np.float64),
            np.ascontiguousarray(mtp.moment_coeffs, dtype=np.float64),
            float(mtp.scaling),
        )

    @property
    def n_params(self) -> int:
        return int(self.model.n_params)

    @property
    def cutoff(self) -> float:
        return float(self.mtp.max_dist)

    def set_params(self, params: npt.ArrayLike) -> None:
        """Replace all parameters (``MTP.get_params`` order).

        Safe while other threads evaluate this object: the core builds a new
        model and swaps it in, so evaluations already running keep the old
        parameters and later ones use the new ones.
        """
        p = np.ascontiguousarray(params, dtype=np.float64)
        if p.shape != (self.n_params,):
            raise ValueError(f"expected {self.n_params} parameters, got shape {p.shape}")
        with self._set_lock:
            self.model.set_params(p)
            self.mtp = self.mtp.with_params(p)

    def get_params(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.model.get_params())


def compile_mtp(mtp: MTP | CompiledMTP) -> CompiledMTP:
    """``mtp`` as a :class:`CompiledMTP` (returned unchanged if it already is one)."""
    return mtp if isinstance(mtp, CompiledMTP) else CompiledMTP(mtp)


# --------------------------------------------------------------------------- helpers


def _types_array(atoms: Atoms, types: npt.ArrayLike | None, species_count: int) -> np.ndarray:
    if types is None:
        if "mtp_type" not in atoms.arrays:
            raise ValueError("no types given and atoms.arrays has no 'mtp_type'")
        types = atoms.arrays["mtp_type"]
    t = np.asarray(types)
    if t.shape != (len(atoms),):
        raise ValueError(f"types has shape {t.shape}, expected ({len(atoms)},)")
    if t.size and not np.issubdtype(t.dtype, np.integer):
        raise ValueError("types must be integers (MLIP type indices)")
    bad = np.flatnonzero((t < 0) | (t >= species_count))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"atom {i} has type {int(t[i])}, but the potential has species_count = "
            f"{species_count} (types 0..{species_count - 1})"
        )
    return np.ascontiguousarray(t, dtype=np.int32)


def _cell_pbc(atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    cell = np.ascontiguousarray(atoms.cell.array, dtype=np.float64)
    pbc = np.ascontiguousarray(atoms.pbc, dtype=bool)
    return cell, pbc


def neighbor_list(atoms: Atoms, cutoff: float):
    """The core's full neighbour list (pairs with ``0 < r < cutoff``) of ``atoms``.

    Attributes of the result: ``offsets`` (N+1), ``j`` (pairs), ``rij``
    (pairs × 3, Å), ``min_r``/``min_i``/``min_j`` (closest pair).
    """
    cell, pbc = _cell_pbc(atoms)
    pos = np.ascontiguousarray(atoms.positions, dtype=np.float64)
    try:
        return _core.build_neighbor_list(pos, cell, pbc, float(cutoff))
    except ValueError as exc:
        raise ValueError(f"{exc} (cell={cell.tolist()}, pbc={pbc.tolist()})") from None


def _check_short(min_r: float, i: int, j: int, min_dist: float, policy: str, where: str = "") -> None:
    if policy not in ("warn", "raise", "ignore"):
        raise ValueError(f"on_short_distance must be 'warn', 'raise' or 'ignore', not {policy!r}")
    if min_r == 0.0:
        raise ShortDistanceError(f"{where}atoms {i} and {j} coincide (distance 0)")
    # min_dist is often the smallest distance of the training set ("data"): that pair, evaluated again,
    # may come out an ulp shorter, which is not outside the fitted range
    if policy == "ignore" or not (min_r < min_dist - SHORT_DISTANCE_TOLERANCE):
        return
    msg = (
        f"{where}atoms {i} and {j} are {min_r:.4f} Å apart, closer than the potential's "
        f"min_dist = {min_dist:.4f} Å (outside the fitted range of the radial basis)"
    )
    if policy == "raise":
        raise ShortDistanceError(msg)
    warnings.warn(msg, ShortDistanceWarning, stacklevel=3)


def virial_to_stress(virial: npt.ArrayLike, volume: float) -> npt.NDArray[np.float64]:
    """ASE Voigt stress (eV/Å^3, ``xx yy zz yz xz xy``) from a 3×3 virial (eV)."""
    w = np.asarray(virial, dtype=np.float64).reshape(3, 3)
    s = -0.5 * (w + w.T) / volume
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


# --------------------------------------------------------------------------- single configuration


@dataclass
class EFS:
    """Energy (eV), forces (N×3, eV/Å), virial (3×3, eV), site energies (N, eV)."""

    energy: float
    forces: npt.NDArray[np.float64]
    virial: npt.NDArray[np.float64]
    site_energies: npt.NDArray[np.float64]
    volume: float | None = None

    @property
    def stress(self) -> npt.NDArray[np.float64]:
        """ASE Voigt stress in eV/Å^3 (needs a 3D periodic cell)."""
        if not self.volume:
            raise ValueError("stress needs a periodic cell with a nonzero volume")
        return virial_to_stress(self.virial, self.volume)


def evaluate(
    mtp: MTP | CompiledMTP,
    atoms: Atoms,
    types: npt.ArrayLike | None = None,
    *,
    on_short_distance: str = "warn",
) -> EFS:
    """Energy, forces, virial and site energies of one configuration.

    ``types`` are MLIP type indices per atom (default: ``atoms.arrays['mtp_type']``).
    ``on_short_distance``: ``'warn'`` (default), ``'raise'`` or ``'ignore'`` when two
    atoms are closer than ``min_dist``.
    """
    cm = compile_mtp(mtp)
    t = _types_array(atoms, types, cm.mtp.species_count)
    nl = neighbor_list(atoms, cm.cutoff)
    _check_short(nl.min_r, nl.min_i, nl.min_j, cm.mtp.min_dist, on_short_distance)
    energy, forces, virial, site = _core.evaluate(cm.model, nl, t)
    if not (np.isfinite(energy) and np.all(np.isfinite(forces))):
        raise FloatingPointError("MTP evaluation gave non-finite energy or forces")
    volume = float(abs(atoms.cell.volume)) if atoms.pbc.all() and atoms.cell.rank == 3 else None
    return EFS(float(energy), np.asarray(forces), np.asarray(virial), np.asarray(site), volume)


def site_basis(mtp: MTP | CompiledMTP, atoms: Atoms, types: npt.ArrayLike | None = None) -> npt.NDArray[np.float64]:
    """Per-atom linear basis rows ``(N, species_count + alpha_scalar_moments)``:
    ``[one-hot(type) | B_k(i)]``, so that site energies = rows @ [species | moment coeffs]."""
    cm = compile_mtp(mtp)
    t = _types_array(atoms, types, cm.mtp.species_count)
    nl = neighbor_list(atoms, cm.cutoff)
    _check_short(nl.min_r, nl.min_i, nl.min_j, cm.mtp.min_dist, "ignore")
    return np.asarray(_core.site_basis(cm.model, nl, t))


def energy_param_grads(
    mtp: MTP | CompiledMTP, atoms: Atoms, types: npt.ArrayLike | None = None, per_atom: bool = False
) -> npt.NDArray[np.float64]:
    """``dE/dθ`` over all parameters (``MTP.get_params`` order): shape ``(n_params,)``,
    or ``(N, n_params)`` site-energy gradients when ``per_atom``."""
    cm = compile_mtp(mtp)
    t = _types_array(atoms, types, cm.mtp.species_count)
    nl = neighbor_list(atoms, cm.cutoff)
    _check_short(nl.min_r, nl.min_i, nl.min_j, cm.mtp.min_dist, "ignore")
    return np.asarray(_core.energy_param_grads(cm.model, nl, t, bool(per_atom)))


# --------------------------------------------------------------------------- training sets


def _labels(atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray]:
    """(energy, forces, virial) labels of an image; NaN where absent."""
    n = len(atoms)
    e, f, v = np.nan, np.full((n, 3), np.nan), np.full((3, 3), np.nan)
    calc = atoms.calc
    res = getattr(calc, "results", None) or {}
    if res.get("energy") is not None:
        e = float(res["energy"])
    elif res.get("free_energy") is not None:
        e = float(res["free_energy"])
    if res.get("forces") is not None:
        f = np.asarray(res["forces"], dtype=np.float64).reshape(n, 3)
    s = res.get("stress")
    if s is not None and atoms.pbc.all() and atoms.cell.rank == 3:
        s = np.asarray(s, dtype=np.float64)
        if s.shape == (6,):
            xx, yy, zz, yz, xz, xy = s
            s = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
        v = -abs(atoms.cell.volume) * s.reshape(3, 3)
    return e, f, v


class TrainingSet:
    """Configurations packed for the core, neighbour lists built once.

    Parameters
    ----------
    images:
        ASE Atoms; their calculator results (``energy``, ``forces``,
        ``stress``), when present, become the default targets of
        :func:`loss_and_grad` (absent labels are NaN).
    types_list:
        Per image, the MLIP type index of every atom.
    cutoff:
        Neighbour cutoff in Å (≥ the potential's ``max_dist``).

    Attributes: ``n_configs``, ``n_atoms`` (per config), ``offsets`` (atom
    offsets, ``n_configs + 1``), ``volumes`` (Å^3; NaN without a 3D cell),
    ``min_distances`` (closest pair per config, Å), ``energies``,
    ``forces`` (concatenated, ``(sum N, 3)``), ``virials`` (``(n_configs, 3, 3)``).
    """

    def __init__(self, images: Sequence[Atoms], types_list: Sequence[npt.ArrayLike], cutoff: float) -> None:
        images = list(images)
        types_list = list(types_list)
        if len(images) != len(types_list):
            raise ValueError(f"{len(images)} images but {len(types_list)} type arrays")
        self.cutoff = float(cutoff)
        pos, typ = [], []
        cells = np.zeros((len(images), 3, 3))
        pbc = np.zeros((len(images), 3), dtype=bool)
        for c, (atoms, t) in enumerate(zip(images, types_list)):
            t = np.ascontiguousarray(t, dtype=np.int32)
            if t.shape != (len(atoms),):
                raise ValueError(f"configuration {c}: types has shape {t.shape}, expected ({len(atoms)},)")
            if t.size and t.min() < 0:
                raise ValueError(f"configuration {c}: negative type index")
            pos.append(np.ascontiguousarray(atoms.positions, dtype=np.float64))
            typ.append(t)
            cells[c], pbc[c] = _cell_pbc(atoms)
        self._ts = _core.build_training_set(pos, np.ascontiguousarray(cells), np.ascontiguousarray(pbc), typ,
                                            self.cutoff)
        self.n_configs = len(images)
        self.n_atoms = np.array([len(a) for a in images], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.n_atoms)]).astype(np.int64)
        self.types = np.concatenate(typ) if typ else np.zeros(0, dtype=np.int32)
        self.volumes = np.array(
            [abs(a.cell.volume) if a.pbc.all() and a.cell.rank == 3 else np.nan for a in images]
        )
        self.min_distances = np.asarray(self._ts.min_r)
        labels = [_labels(a) for a in images]
        self.energies = np.array([lab[0] for lab in labels], dtype=np.float64)
        self.forces = (
            np.concatenate([lab[1] for lab in labels]) if labels else np.zeros((0, 3))
        )
        self.virials = np.array([lab[2] for lab in labels], dtype=np.float64).reshape(-1, 3, 3)

    def __len__(self) -> int:
        return self.n_configs

    def split_forces(self, forces: npt.ArrayLike) -> list[npt.NDArray[np.float64]]:
        """Concatenated per-atom rows ``(sum N, ...)`` split into per-config arrays."""
        f = np.asarray(forces)
        return [f[self.offsets[c] : self.offsets[c + 1]] for c in range(self.n_configs)]

    def _check(self, cm: CompiledMTP) -> None:
        if self.cutoff < cm.cutoff:
            raise ValueError(
                f"training set was packed with cutoff {self.cutoff} Å < the potential's max_dist {cm.cutoff} Å"
            )
        if self.types.size and self.types.max() >= cm.mtp.species_count:
            i = int(np.argmax(self.types >= cm.mtp.species_count))
            c = int(np.searchsorted(self.offsets, i, side="right") - 1)
            raise ValueError(
                f"configuration {c}, atom {i - self.offsets[c]}: type {int(self.types[i])} but the "
                f"potential has species_count = {cm.mtp.species_count}"
            )


@dataclass
class Predictions:
    """Model predictions over a :class:`TrainingSet`: energies (n_configs, eV),
    forces (sum N × 3, eV/Å, concatenated in set order), virials (n_configs × 3 × 3, eV)."""

    energies: npt.NDArray[np.float64]
    forces: npt.NDArray[np.float64]
    virials: npt.NDArray[np.float64]


def predict(mtp: MTP | CompiledMTP, tset: TrainingSet) -> Predictions:
    """Energies, forces and virials of every configuration of ``tset``."""
    cm = compile_mtp(mtp)
    tset._check(cm)
    e, f, v = _core.predict(cm.model, tset._ts)
    return Predictions(np.asarray(e), np.asarray(f), np.asarray(v))


def _coeff(x: npt.ArrayLike, n: int, name: str) -> np.ndarray:
    a = np.broadcast_to(np.asarray(x, dtype=np.float64), (n,)).copy()
    if not np.all(np.isfinite(a)):
        raise ValueError(f"loss coefficient {name} has non-finite values")
    return a


def _targets(tset: TrainingSet, energies, forces, virials):
    n = tset.n_configs
    e = tset.energies if energies is None else np.asarray(energies, dtype=np.float64).reshape(n)
    if forces is None:
        f = tset.forces
    elif isinstance(forces, (list, tuple)):
        f = (np.concatenate([np.asarray(x, dtype=np.float64).reshape(-1, 3) for x in forces]) if forces
             else np.zeros((0, 3)))
    else:
        f = np.asarray(forces, dtype=np.float64)
    f = f.reshape(int(tset.offsets[-1]), 3)
    if virials is None:
        v = tset.virials
    else:
        v = np.asarray(virials, dtype=np.float64)
        if v.shape == (n, 6):
            xx, yy, zz, yz, xz, xy = v.T
            v = np.stack([xx, xy, xz, xy, yy, yz, xz, yz, zz], axis=1)
        v = v.reshape(n, 3, 3)
    return np.ascontiguousarray(e), np.ascontiguousarray(f), np.ascontiguousarray(v)


def loss_and_grad(
    mtp: MTP | CompiledMTP,
    tset: TrainingSet,
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    d: npt.ArrayLike,
    *,
    energies: npt.ArrayLike | None = None,
    forces: npt.ArrayLike | Sequence[npt.ArrayLike] | None = None,
    virials: npt.ArrayLike | None = None,
    return_predictions: bool = False,
):
    """Weighted least-squares loss and its analytic gradient over all parameters.

    ``L = sum_c [a_c (E_c - E*_c)^2 + b_c sum_i |F_ci - F*_ci|^2
    + d_c sum_ab (W_c,ab - W*_c,ab)^2]`` with per-configuration coefficients
    ``a, b, d`` (scalars broadcast). Targets default to the labels stored in
    ``tset``; ``energies`` (n_configs, eV), ``forces`` (concatenated ``(sum N, 3)``
    or a list per config, eV/Å), ``virials`` (``(n_configs, 3, 3)`` or Voigt
    ``(n_configs, 6)``, eV) override them. A zero coefficient switches a term off
    and its targets are not read (may be NaN); a NaN target with a nonzero
    coefficient raises ``ValueError`` naming the configuration.

    Returns ``(loss, grad)`` (grad in ``MTP.get_params`` order), plus
    :class:`Predictions` when ``return_predictions``.
    """
    cm = compile_mtp(mtp)
    tset._check(cm)
    n = tset.n_configs
    a, b, d = _coeff(a, n, "a"), _coeff(b, n, "b"), _coeff(d, n, "d")
    e, f, v = _targets(tset, energies, forces, virials)
    bad = np.flatnonzero((a != 0) & ~np.isfinite(e))
    if bad.size:
        raise ValueError(f"configuration {int(bad[0])}: energy target is missing/NaN but its weight a is nonzero")
    bad_rows = np.concatenate([[0], np.cumsum(~np.isfinite(f).all(axis=1))])
    fin_f = bad_rows[tset.offsets[1:]] == bad_rows[tset.offsets[:-1]]
    bad = np.flatnonzero((b != 0) & ~fin_f)
    if bad.size:
        raise ValueError(f"configuration {int(bad[0])}: force targets are missing/NaN but its weight b is nonzero")
    bad = np.flatnonzero((d != 0) & ~np.all(np.isfinite(v.reshape(n, 9)), axis=1))
    if bad.size:
        raise ValueError(f"configuration {int(bad[0])}: virial/stress target is missing/NaN "
                         "but its weight d is nonzero")
    loss, grad, pe, pf, pv = _core.loss_and_grad(cm.model, tset._ts, e, f, v, a, b, d)
    if return_predictions:
        return float(loss), np.asarray(grad), Predictions(np.asarray(pe), np.asarray(pf), np.asarray(pv))
    return float(loss), np.asarray(grad)


@dataclass
class LinearRows:
    """Design rows over ``[species_coeffs | moment_coeffs]`` (K columns), radial
    coefficients fixed: ``energy`` (n_configs, K), ``forces`` (sum N, 3, K),
    ``virial`` (n_configs, 3, 3, K); ``offsets`` (n_configs + 1) index ``forces``."""

    energy: npt.NDArray[np.float64]
    forces: npt.NDArray[np.float64]
    virial: npt.NDArray[np.float64]
    offsets: npt.NDArray[np.int64]


def linear_rows(mtp: MTP | CompiledMTP, tset: TrainingSet) -> LinearRows:
    """Linear design rows: ``E_c = energy[c] @ x``, ``F = forces @ x``,
    ``W_c = virial[c] @ x`` with ``x = [species_coeffs | moment_coeffs]``."""
    cm = compile_mtp(mtp)
    tset._check(cm)
    er, fr, vr = _core.linear_rows(cm.model, tset._ts)
    return LinearRows(np.asarray(er), np.asarray(fr), np.asarray(vr), tset.offsets.copy())
