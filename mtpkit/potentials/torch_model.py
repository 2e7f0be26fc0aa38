r"""The MTP as a torch-sim model: energy, forces, stress and extrapolation grades of a batch.

``mtpkit.load_potential(path).torch_model(species=[...], device="cpu", dtype=torch.float64)``
returns an :class:`MTPTorchModel`, a ``torch_sim.models.interface.ModelInterface``.
One call evaluates any number of systems (``SimState`` with ``system_idx``), each
with its own cell (triclinic included) and number of atoms, on CPU or CUDA.

The equations are those of the NumPy reference (:mod:`mtpkit.potentials.reference`),
written on flat tensors of all pairs of all systems instead of one atom at a time.
For a pair ``p = (i, j)`` with ``r_ij = r_j - r_i`` (all images closer than
``max_dist``, from torch-sim's vesin neighbour list; the image shift is ``S @ cell`` with
the row-vector cell, computed here because torch-sim 0.3.0's
``transforms.get_pair_displacements`` applies the transposed cell, which is wrong for
triclinic cells)::

    xi      = (2 r - (min_dist + max_dist)) / (max_dist - min_dist)
    Q_b(r)  = T_b(xi) (max_dist - r)^2                 (0 beyond max_dist)
    f_mu    = scaling * sum_b radial_coeffs[s_i, s_j, mu, b] Q_b(r)
    M_a(i)  = sum_j f_mu(r_ij) ux^px uy^py uz^pz       (basic moments, a = (mu, px, py, pz))
    M_k    += mult M_p M_q                             (alpha_index_times)
    E_i     = species_coeffs[s_i] + sum_k moment_coeffs[k] M[alpha_moment_mapping[k]]

The products ``alpha_index_times`` are applied level by level: a moment's level
is one more than the highest level of the factors of any of its products, so
all products of one level are one gather, multiply and ``index_add`` (MLIP
applies them one row at a time in file order; the sums are the same).

Forces and stress come from autograd of the total energy, as in torch-sim's
other models: ``F = -dE/dr`` and, with every pair vector strained as
``r_ij (1 + eps)`` (one ``eps`` per system), ``stress = (1/V) dE/d eps`` at
``eps = 0``, symmetrised. That is ASE's sign (positive under tension), which is
also torch-sim's (``torch_sim.quantities.get_pressure`` takes ``P = -tr(stress)/3``);
returned as ``(n_systems, 3, 3)`` in eV/Å^3. Energies in eV, forces in eV/Å.

Extrapolation grades (:meth:`MTPTorchModel.grades`) reproduce
:mod:`mtpkit.active_learning.grades` for the potential's MaxVol active set
(MLIP-3 ``.almtp``, all parameters): in neighbourhood mode the row of atom
``i`` is ``dE_i/dθ`` over all parameters in ``MTP.get_params`` order
(``radial_coeffs`` ravelled, ``species_coeffs``, ``moment_coeffs``) and its
grade is ``max_j |(row A^-1)_j|``; in configuration mode one row per system,
``energy_weight / N^(weight_scaling/2) * dE/dθ``. The radial part uses the same
backward pass as the forces: ``dE_i/dC[s_i, s_j, mu, b] = sum_j dE/df_mu(r_ij)
* scaling * Q_b(r_ij)``.

Accuracy against the compiled calculator (measured on CPU; ``tests/test_torch_model.py``):

* float64: 2e-16 to 6e-15 relative (to the largest value) in energy, forces and stress on
  triclinic Na/Y/Zr/Cl cells with a random level-10 potential, 7e-14 in energy with an
  MLIP-trained level-10 potential; tested at 1e-10. Grades agree with
  :mod:`mtpkit.active_learning.grades` to 2e-10 relative (``row A^-1`` cancels heavily
  when ``A`` is ill-conditioned, cond ~1e10 here); tested at 1e-8.
* float32: energy 1e-6 relative, forces 5e-6 and stress 4e-6 of the largest component
  (random level-10 and level-16 potentials, 8 × 296-atom cells); with the MLIP-trained
  level-10 potential 2e-5 eV/atom in energy, 1.5e-5 eV/Å in forces, 2e-6 eV/Å^3 (0.3 bar)
  in stress. Tested at 1e-5 (energy) and 1e-4 (forces, stress). Good enough for MD; use
  float64 for grades near a selection threshold and for finite-difference checks.

Memory: the basic moments take ``n_pairs × n_basic`` numbers (plus autograd's copies),
so very high levels on very large batches may need smaller batches (torch-sim's
autobatcher sizes them with ``memory_scales_with = "n_atoms_x_density"``).

torch and torch-sim are imported here only: ``pip install mtpkit[torch]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch_sim as ts
from torch_sim.models.interface import ModelInterface
from torch_sim.neighbors import vesin_nl_ts

from mtpkit.errors import UserError
from mtpkit.potentials.model import MTP

__all__ = ["MTPTorchModel"]


def _product_levels(mtp: MTP) -> tuple[np.ndarray, list[tuple[np.ndarray, ...]]]:
    """Plan of the products ``alpha_index_times`` level by level.

    Returns ``column`` (column of each alpha moment in the tensor ``[basic | level 1 |
    level 2 | ...]``; moments that are neither basic nor a product target get the
    last column, which holds zeros) and, per level, ``(p_col, q_col, mult,
    target_local, n_targets)``: the columns of the factors, the multiplicities, the
    index of each product's target among that level's new columns, and how many
    there are.
    """
    n_basic = len(mtp.alpha_index_basic)
    times = mtp.alpha_index_times
    # MLIP applies the rows in file order; a moment used as a factor must be complete by then
    last_write = {int(k): r for r, k in enumerate(times[:, 3])}
    for r, (p, q, _, k) in enumerate(times):
        if k < n_basic or last_write.get(int(p), -1) >= r or last_write.get(int(q), -1) >= r:
            raise ValueError(f"alpha_index_times row {r} ({p} {q} -> {k}) uses a moment before it is complete")
    level = np.zeros(mtp.alpha_moments_count, dtype=np.int64)
    for p, q, _, k in times:
        level[k] = max(level[k], 1 + max(level[p], level[q]))
    targets = set(times[:, 3].tolist())
    column = np.full(mtp.alpha_moments_count, -1, dtype=np.int64)
    column[:n_basic] = np.arange(n_basic)
    n_cols = n_basic
    plan = []
    for lev in range(1, int(level.max(initial=0)) + 1):
        new = np.array(sorted(k for k in targets if level[k] == lev), dtype=np.int64)
        rows = times[level[times[:, 3]] == lev]
        local = np.searchsorted(new, rows[:, 3])
        plan.append((column[rows[:, 0]], column[rows[:, 1]], rows[:, 2].astype(np.float64), local, len(new)))
        column[new] = n_cols + np.arange(len(new))
        n_cols += len(new)
    column[column < 0] = n_cols  # never written: a zero column appended at the end
    return column, plan


def _inverse_and_mode(active_set: object) -> tuple[np.ndarray, str, float, int]:
    """``(A^-1, mode, energy_weight, weight_scaling)`` of an active set in either form.

    MLIP-3's stored form (:class:`mtpkit.potentials.mtp_io.MVSSection`, what
    ``load_potential`` reads from an ``.almtp``) keeps ``invA`` transposed;
    :class:`mtpkit.active_learning.active_set.ActiveSet` keeps ``inv_A``.
    """
    if hasattr(active_set, "invA"):  # MLIP-3 form
        if active_set.force_weight != 0 or active_set.stress_weight != 0:
            raise UserError("the active set selects by forces/stresses; only energy (configuration) "
                            "or site-energy (neighbourhood) grades are supported")
        if active_set.site_en_weight != 0 and active_set.energy_weight != 0:
            raise UserError("the active set mixes energy and site-energy equations; choose one mode")
        mode = "neighborhood" if active_set.site_en_weight != 0 else "configuration"
        return (np.asarray(active_set.invA, dtype=np.float64).T, mode, float(active_set.energy_weight),
                int(active_set.weight_scaling))
    if getattr(active_set, "basis", "all") != "all":
        raise UserError("only an active set over all parameters (basis 'all') is supported")
    return (np.asarray(active_set.inv_A, dtype=np.float64), str(active_set.mode),
            float(active_set.energy_weight), int(active_set.weight_scaling))


class MTPTorchModel(ModelInterface):
    """A Moment Tensor Potential for torch-sim's batched simulations.

    Parameters
    ----------
    mtp:
        The potential.
    species:
        Chemical symbol (or atomic number) of MLIP type ``0, 1, ...``.
    device, dtype:
        Where and in which precision to compute (``"cpu"``, ``"cuda"``;
        ``torch.float64`` or ``torch.float32``). States must have this dtype.
    compute_forces, compute_stress:
        Which derivatives :meth:`forward` returns (stress only for periodic states).
    compute_grades:
        Also return ``"grades"`` (per atom, neighbourhood mode) and
        ``"system_grades"`` (per system) from :meth:`forward`.
    active_set:
        The MaxVol active set for grades (default: the potential's own, from an
        ``.almtp``); either MLIP-3's stored form or
        :class:`mtpkit.active_learning.active_set.ActiveSet`.
    """

    def __init__(
        self,
        mtp: MTP,
        species: Sequence[str | int],
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float64,
        *,
        compute_forces: bool = True,
        compute_stress: bool = True,
        compute_grades: bool = False,
        active_set: object | None = None,
    ) -> None:
        super().__init__()
        from ase.data import atomic_numbers

        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, not {dtype}")
        if len(species) != mtp.species_count:
            raise UserError(f"{len(species)} species given but the potential has species_count = "
                            f"{mtp.species_count}")
        self._device = torch.device(device or "cpu")
        self._dtype = dtype
        self._compute_forces = compute_forces
        self._compute_stress = compute_stress
        self.compute_grades = compute_grades
        self.mtp = mtp

        def tensor(x, dt=dtype):
            return torch.as_tensor(np.asarray(x), dtype=dt, device=self._device)

        numbers = [s if isinstance(s, (int, np.integer)) else atomic_numbers[s] for s in species]
        type_of = np.full(max(119, max(numbers) + 1), -1, dtype=np.int64)
        type_of[numbers] = np.arange(len(numbers))
        self.species_numbers = list(map(int, numbers))
        self.type_of_number = tensor(type_of, torch.long)
        self.cutoff = torch.tensor(float(mtp.max_dist), dtype=torch.float64)
        s, n_mu, n_b = mtp.species_count, mtp.radial_funcs_count, mtp.radial_basis_size
        # (s_i * S + s_j) -> (mu, b): one gather per pair
        self.radial_coeffs = tensor(mtp.radial_coeffs.reshape(s * s, n_mu, n_b))
        self.species_coeffs = tensor(mtp.species_coeffs)
        self.moment_coeffs = tensor(mtp.moment_coeffs)
        # basic moment a = (mu, px, py, pz): radial function mu times monomial ux^px uy^py uz^pz
        basic = mtp.alpha_index_basic
        monomials, which = np.unique(basic[:, 1:], axis=0, return_inverse=True)
        self.basic_mu = tensor(basic[:, 0], torch.long)
        self.basic_monomial = tensor(which.ravel(), torch.long)
        self.monomial_powers = [tensor(monomials[:, c], torch.long) for c in range(3)]
        self.max_power = int(basic[:, 1:].max(initial=0))
        column, plan = _product_levels(mtp)
        self.basis_columns = tensor(column[mtp.alpha_moment_mapping], torch.long)
        self.levels = [(tensor(p, torch.long), tensor(q, torch.long), tensor(m), tensor(k, torch.long), n)
                       for p, q, m, k, n in plan]
        self.n_columns = len(mtp.alpha_index_basic) + sum(n for *_, n in plan) + 1

        aset = mtp.active_set if active_set is None else active_set
        self.grade_mode: str | None = None
        if aset is not None:
            inv, self.grade_mode, self.energy_weight, self.weight_scaling = _inverse_and_mode(aset)
            if inv.shape != (mtp.n_params, mtp.n_params):
                raise UserError(f"the active set has {inv.shape[0]} rows but the potential has "
                                f"{mtp.n_params} parameters: it belongs to another potential")
            self.inv_A = tensor(inv)
        if compute_grades and aset is None:
            raise UserError("compute_grades needs an active set (an .almtp potential or active_set=...)")

    # ------------------------------------------------------------------ pieces of the model

    def radial_basis(self, r: torch.Tensor) -> torch.Tensor:
        """``Q_b(r)`` (without ``scaling``), shape ``(radial_basis_size, len(r))``."""
        lo, hi = self.mtp.min_dist, self.mtp.max_dist
        xi = (2.0 * r - (lo + hi)) / (hi - lo)
        cheb = [torch.ones_like(r), xi]
        for _ in range(2, self.mtp.radial_basis_size):
            cheb.append(2.0 * xi * cheb[-1] - cheb[-2])
        T = torch.stack(cheb[: self.mtp.radial_basis_size])
        return torch.where(r < hi, T * (hi - r) ** 2, torch.zeros_like(T))

    def moments(self, basic: torch.Tensor) -> torch.Tensor:
        """All alpha moments, rows ``[basic | level 1 | level 2 | ... | zero]``, from ``(n_basic, N)``."""
        M = basic
        for p, q, mult, target, n_new in self.levels:
            new = M.new_zeros(n_new, M.shape[1]).index_add(0, target, mult[:, None] * M[p] * M[q])
            M = torch.cat([M, new])
        return torch.cat([M, M.new_zeros(1, M.shape[1])])

    def _types(self, atomic_numbers: torch.Tensor) -> torch.Tensor:
        t = self.type_of_number[atomic_numbers.clamp(0, len(self.type_of_number) - 1)]
        if bool((t < 0).any()):
            from ase.data import chemical_symbols

            z = int(atomic_numbers[t < 0][0])
            raise UserError(f"element {chemical_symbols[z]} is not in the potential's species "
                            f"{','.join(chemical_symbols[n] for n in self.species_numbers)}")
        return t

    def _pairs(self, state: ts.SimState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(i, j, image shift in Å, system of the pair)`` for all systems, atom indices global."""
        cells = state.row_vector_cell
        starts = torch.cumsum(state.n_atoms_per_system, 0) - state.n_atoms_per_system
        ii, jj, shifts, owner = [], [], [], []
        for b, (start, count) in enumerate(zip(starts.tolist(), state.n_atoms_per_system.tolist())):
            pos = state.positions[start:start + count].detach()
            mapping, images = vesin_nl_ts(pos, cells[b].detach(), state.pbc, self.cutoff)
            ii.append(mapping[0] + start)
            jj.append(mapping[1] + start)
            shifts.append(images.to(self._dtype) @ cells[b].detach())
            owner.append(torch.full_like(mapping[0], b))
        return torch.cat(ii), torch.cat(jj), torch.cat(shifts), torch.cat(owner)

    # ------------------------------------------------------------------ evaluation

    def _evaluate(self, state: ts.SimState | dict, forces: bool, stress: bool, grades: bool) -> dict:
        if isinstance(state, dict):
            state = ts.SimState(**state, masses=torch.ones_like(state["positions"][:, 0]))
        if state.positions.dtype != self._dtype:
            raise TypeError(f"state dtype {state.positions.dtype} does not match the model's {self._dtype}")
        stress = stress and bool(state.pbc)
        n_sys = state.n_systems
        types = self._types(state.atomic_numbers)
        i, j, shift, owner = self._pairs(state)
        with torch.enable_grad():
            positions = state.positions.detach().requires_grad_(forces)
            strain = torch.zeros(n_sys, 3, 3, dtype=self._dtype, device=self._device, requires_grad=stress)
            vec = positions[j] - positions[i] + shift
            vec = vec + torch.einsum("pa,pab->pb", vec, strain[owner])
            r = vec.norm(dim=1)
            u = vec / r[:, None]
            # per-pair quantities are (feature, pair) and per-atom ones (feature, atom): row gathers are fast
            Q = self.radial_basis(r)
            S = self.mtp.species_count
            C = self.radial_coeffs[types[i] * S + types[j]]  # (pairs, mu, b)
            f = self.mtp.scaling * torch.einsum("pmb,bp->mp", C, Q)
            if grades and not f.requires_grad:  # grades alone: f is where the graph starts
                f.requires_grad_()
            powers = [torch.stack([u[:, c] ** k for k in range(self.max_power + 1)]) for c in range(3)]
            mono = powers[0][self.monomial_powers[0]] * powers[1][self.monomial_powers[1]] \
                * powers[2][self.monomial_powers[2]]  # (monomials, pairs)
            per_pair = f[self.basic_mu] * mono[self.basic_monomial]
            basic = per_pair.new_zeros(per_pair.shape[0], len(types)).index_add(1, i, per_pair)
            B = self.moments(basic)[self.basis_columns]  # (n_scalar, N)
            site = self.species_coeffs[types] + self.moment_coeffs @ B
            energy = site.new_zeros(n_sys).index_add(0, state.system_idx, site)
            wanted = [x for x, w in ((positions, forces), (strain, stress), (f, grades)) if w]
            derivs = list(torch.autograd.grad(energy.sum(), wanted)) if wanted else []
        out = {"energy": energy.detach(), "energies": site.detach()}
        if forces:
            out["forces"] = -derivs.pop(0)
        if stress:
            volume = torch.linalg.det(state.row_vector_cell).abs()
            sigma = derivs.pop(0) / volume[:, None, None]
            out["stress"] = 0.5 * (sigma + sigma.mT)
        if grades:
            rows = self._site_rows(types, i, j, derivs.pop(0).T, Q.detach().T, B.detach().T)
            out.update(self._grades(rows, state.system_idx, n_sys))
        return out

    def _site_rows(self, types, i, j, dE_df, Q, B) -> torch.Tensor:
        """``(N, n_params)`` rows ``dE_i/dθ`` in ``MTP.get_params`` order."""
        n, S = len(types), self.mtp.species_count
        per_pair = self.mtp.scaling * dE_df[:, :, None] * Q[:, None, :]  # dE_i/dC[s_i, s_j] of pair (i, j)
        by_neighbour = per_pair.new_zeros(n * S, per_pair.shape[1] * per_pair.shape[2])
        by_neighbour.index_add_(0, i * S + types[j], per_pair.reshape(len(i), -1))
        radial = by_neighbour.new_zeros(n, S, S * by_neighbour.shape[1])
        radial[torch.arange(n, device=self._device), types] = by_neighbour.reshape(n, -1)
        one_hot = torch.nn.functional.one_hot(types, S).to(self._dtype)
        return torch.cat([radial.reshape(n, -1), one_hot, B], dim=1)

    def _grades(self, rows, system_idx, n_sys) -> dict[str, torch.Tensor]:
        if self.grade_mode == "neighborhood":
            per_atom = (rows @ self.inv_A).abs().amax(dim=1)
            per_system = per_atom.new_zeros(n_sys).scatter_reduce(0, system_idx, per_atom, "amax")
            return {"grades": per_atom, "system_grades": per_system}
        counts = torch.bincount(system_idx, minlength=n_sys).clamp(min=1).to(self._dtype)
        summed = rows.new_zeros(n_sys, rows.shape[1]).index_add(0, system_idx, rows)
        weight = (self.energy_weight or 1.0) / counts ** (self.weight_scaling / 2.0)
        return {"system_grades": (weight[:, None] * summed @ self.inv_A).abs().amax(dim=1)}

    def forward(self, state: ts.SimState | dict, **kwargs) -> dict[str, torch.Tensor]:
        """``energy`` (n_systems,), ``energies`` (n_atoms,) site energies, ``forces`` (n_atoms, 3),
        ``stress`` (n_systems, 3, 3); with ``compute_grades``, ``grades`` (n_atoms,, neighbourhood
        mode) and ``system_grades`` (n_systems,)."""
        return self._evaluate(state, self._compute_forces, self._compute_stress, self.compute_grades)

    def grades(self, state: ts.SimState | dict) -> torch.Tensor:
        """Extrapolation grade of every atom ``(n_atoms,)`` (neighbourhood-mode active set)."""
        if self.grade_mode != "neighborhood":
            raise UserError("per-atom grades need a neighbourhood-mode active set "
                            f"(this one: {self.grade_mode}); use system_grades")
        return self._evaluate(state, False, False, True)["grades"]

    def system_grades(self, state: ts.SimState | dict) -> torch.Tensor:
        """Extrapolation grade of every system ``(n_systems,)``: the largest atom grade
        (neighbourhood mode) or the configuration grade (configuration mode)."""
        if self.grade_mode is None:
            raise UserError("grades need an active set (an .almtp potential or active_set=...)")
        return self._evaluate(state, False, False, True)["system_grades"]
