r"""A slow, readable NumPy reference of the MTP equations (tests and documentation).

Everything here follows MLIP-2 (``mtpr.cpp``, ``radial_basis.cpp``); the
conventions were checked against MLIP's own outputs (``out.cfg`` from
``mlp calc-efs``) and motep's NumPy engine. For atom ``i`` of species
``s_i`` with neighbours ``j`` (every periodic image with ``0 < r_ij <
max_dist``, images of ``i`` itself included), ``r_ij = r_j - r_i``::

    xi      = (2 r - (min_dist + max_dist)) / (max_dist - min_dist)
    Q_b(r)  = T_b(xi) (max_dist - r)^2                       (0 beyond max_dist)
    f_mu(r) = scaling * sum_b radial_coeffs[s_i, s_j, mu, b] Q_b(r)
    M_a     = sum_j f_mu(r_ij) ux^px uy^py uz^pz,  u = r_ij / r_ij  (basic, row a = (mu,px,py,pz))
    M_k    += mult M_p M_q                                  (alpha_index_times rows (p, q, mult, k), in order)
    B_k     = M[alpha_moment_mapping[k]]
    E_i     = species_coeffs[s_i] + sum_k moment_coeffs[k] B_k

``scaling`` multiplies the radial functions only. Below ``min_dist`` MLIP
does not clamp anything: the Chebyshev polynomials are simply evaluated at
``xi < -1`` (they grow fast), and so does this reference.

Forces ``F = -dE/dx`` and the virial ``W_ab = -sum_ij (dE_i/dr_ij)_a (r_ij)_b``
(eV; MLIP's ``PlusStress``), ASE stress ``= -W / V`` (eV/Å^3, Voigt xx yy zz
yz xz xy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from ase import Atoms
from ase.neighborlist import primitive_neighbor_list

from mtpkit.potentials.model import MTP

__all__ = [
    "basis_values",
    "calculate",
    "neighbors",
    "param_gradient",
    "radial_basis",
    "site_moments",
]


def _types(atoms: Atoms, types: npt.ArrayLike | None, mtp: MTP) -> np.ndarray:
    if types is None:
        if "mtp_type" not in atoms.arrays:
            raise ValueError("give the MLIP type of every atom (types=...) or atoms.arrays['mtp_type']")
        types = atoms.arrays["mtp_type"]
    t = np.asarray(types, dtype=np.int64)
    if t.shape != (len(atoms),):
        raise ValueError(f"types has shape {t.shape}, expected ({len(atoms)},)")
    if t.size and (t.min() < 0 or t.max() >= mtp.species_count):
        raise ValueError(f"types must lie in 0..{mtp.species_count - 1}")
    return t


def neighbors(atoms: Atoms, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(i, j, r_ij)`` for all pairs closer than ``cutoff`` (Å), ``r_ij = r_j - r_i`` with images.

    Periodic images are taken from ASE's ``primitive_neighbor_list``, which
    handles small and triclinic cells whose cutoff sphere spans several images.
    """
    n = len(atoms)
    if n == 0:
        return np.zeros(0, int), np.zeros(0, int), np.zeros((0, 3))
    if not atoms.pbc.any():
        pos = atoms.positions
        vec = pos[None, :, :] - pos[:, None, :]
        dist = np.linalg.norm(vec, axis=-1)
        i, j = np.nonzero((dist < cutoff) & ~np.eye(n, dtype=bool))
        return i, j, vec[i, j]
    i, j, D = primitive_neighbor_list("ijD", atoms.pbc, np.asarray(atoms.cell), atoms.positions,
                                      cutoff, self_interaction=False)
    keep = np.linalg.norm(D, axis=1) < cutoff
    return i[keep], j[keep], D[keep]


def radial_basis(mtp: MTP, r: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``Q_b(r)`` and ``dQ_b/dr`` for distances ``r`` (Å): arrays ``(len(r), radial_basis_size)``.

    Without ``scaling`` (it enters :math:`f_\\mu`).
    """
    r = np.asarray(r, dtype=float)
    lo, hi, size = mtp.min_dist, mtp.max_dist, mtp.radial_basis_size
    xi = (2.0 * r - (lo + hi)) / (hi - lo)
    dxi = 2.0 / (hi - lo)
    T = np.zeros((r.size, size))
    dT = np.zeros((r.size, size))
    T[:, 0] = 1.0
    if size > 1:
        T[:, 1] = xi
        dT[:, 1] = dxi
    for b in range(2, size):
        T[:, b] = 2.0 * xi * T[:, b - 1] - T[:, b - 2]
        dT[:, b] = 2.0 * dxi * T[:, b - 1] + 2.0 * xi * dT[:, b - 1] - dT[:, b - 2]
    inside = (r < hi)[:, None]
    w = ((hi - r) ** 2)[:, None]
    dw = (-2.0 * (hi - r))[:, None]
    return np.where(inside, T * w, 0.0), np.where(inside, dT * w + T * dw, 0.0)


@dataclass
class _Basic:
    """Basic-moment quantities of one atomic environment (``n`` neighbours)."""

    values: np.ndarray  # (n_basic,) basic moments
    Q: np.ndarray  # (n, B) radial basis
    upow: np.ndarray  # (n, n_basic) u^p
    dMdR: np.ndarray | None  # (n, n_basic, 3) d(basic moment)/d r_ij


def _basic(mtp: MTP, ti: int, tj: np.ndarray, R: np.ndarray, derivatives: bool) -> _Basic:
    d = np.linalg.norm(R, axis=1)
    u = R / d[:, None]
    Q, dQ = radial_basis(mtp, d)
    C = mtp.radial_coeffs[ti, tj]  # (n, mu, b)
    f = mtp.scaling * np.einsum("nmb,nb->nm", C, Q)
    mu, px, py, pz = mtp.alpha_index_basic.T
    upow = u[:, None, 0] ** px * u[:, None, 1] ** py * u[:, None, 2] ** pz  # (n, n_basic)
    fb = f[:, mu]
    dMdR = None
    if derivatives:
        dfb = (mtp.scaling * np.einsum("nmb,nb->nm", C, dQ))[:, mu]
        k = px + py + pz
        # d/dr [f(r) u^p] = u^p (f' - k f / r) u + (f / r) (p_x u^(p-e_x), p_y u^(p-e_y), p_z u^(p-e_z))
        dMdR = (upow * (dfb - k * fb / d[:, None]))[:, :, None] * u[:, None, :]
        pows = (px, py, pz)
        for c in range(3):
            lowered = list(pows)
            lowered[c] = np.maximum(pows[c] - 1, 0)
            mono = u[:, None, 0] ** lowered[0] * u[:, None, 1] ** lowered[1] * u[:, None, 2] ** lowered[2]
            dMdR[:, :, c] += fb / d[:, None] * pows[c] * mono
    return _Basic((fb * upow).sum(axis=0), Q, upow, dMdR)


def _all_moments(mtp: MTP, basic: np.ndarray) -> np.ndarray:
    """Alpha moments from basic ones; ``basic`` is ``(n_sites, n_basic)``, output ``(n_sites, n_alpha)``."""
    M = np.zeros((basic.shape[0], mtp.alpha_moments_count))
    M[:, : basic.shape[1]] = basic
    for p, q, mult, target in mtp.alpha_index_times:
        M[:, target] += mult * M[:, p] * M[:, q]
    return M


def _adjoint(mtp: MTP, M: np.ndarray) -> np.ndarray:
    """``dE_i/dM`` for every site (reverse pass through ``alpha_index_times``)."""
    adj = np.zeros_like(M)
    np.add.at(adj.T, mtp.alpha_moment_mapping, mtp.moment_coeffs[:, None] * np.ones(M.shape[0]))
    for p, q, mult, target in mtp.alpha_index_times[::-1]:
        adj[:, p] += mult * adj[:, target] * M[:, q]
        adj[:, q] += mult * adj[:, target] * M[:, p]
    return adj


def site_moments(mtp: MTP, center_type: int, neighbor_types: npt.ArrayLike,
                 vectors: npt.ArrayLike) -> np.ndarray:
    """All alpha moments ``M`` of one environment (basic ones first, then the products).

    ``vectors``: ``(n, 3)`` Å, ``r_j - r_i``; ``neighbor_types``: ``(n,)``.
    """
    R = np.asarray(vectors, dtype=float).reshape(-1, 3)
    basic = _basic(mtp, int(center_type), np.asarray(neighbor_types, dtype=np.int64), R, False)
    return _all_moments(mtp, basic.values[None, :])[0]


def _environments(mtp: MTP, atoms: Atoms, types: np.ndarray, derivatives: bool):
    """Per atom: (neighbour indices, r_ij, basic-moment data)."""
    i, j, D = neighbors(atoms, mtp.max_dist)
    order = np.argsort(i, kind="stable")
    i, j, D = i[order], j[order], D[order]
    starts = np.searchsorted(i, np.arange(len(atoms) + 1))
    envs = []
    for a in range(len(atoms)):
        sl = slice(starts[a], starts[a + 1])
        envs.append((j[sl], D[sl], _basic(mtp, int(types[a]), types[j[sl]], D[sl], derivatives)))
    return envs


def _moments_of(mtp: MTP, envs) -> np.ndarray:
    basic = np.array([e[2].values for e in envs]).reshape(len(envs), len(mtp.alpha_index_basic))
    return _all_moments(mtp, basic)


def calculate(mtp: MTP, atoms: Atoms, types: npt.ArrayLike | None = None) -> dict[str, object]:
    """Energy (eV), forces (eV/Å), virial (3x3, eV), site energies (eV) and, for 3D-periodic
    cells, ASE stress (Voigt, eV/Å^3) of ``atoms`` with MLIP types ``types``."""
    t = _types(atoms, types, mtp)
    n = len(atoms)
    envs = _environments(mtp, atoms, t, derivatives=True)
    M = _moments_of(mtp, envs)
    site_energies = mtp.species_coeffs[t] + M[:, mtp.alpha_moment_mapping] @ mtp.moment_coeffs
    adj = _adjoint(mtp, M)[:, : len(mtp.alpha_index_basic)]
    forces = np.zeros((n, 3))
    virial = np.zeros((3, 3))
    for a, (js, R, basic) in enumerate(envs):
        g = np.einsum("a,nac->nc", adj[a], basic.dMdR)  # dE_a / d r_aj
        forces[a] += g.sum(axis=0)
        np.add.at(forces, js, -g)
        virial -= g.T @ R
    virial = 0.5 * (virial + virial.T)
    out: dict[str, object] = {
        "energy": float(site_energies.sum()),
        "forces": forces,
        "virial": virial,
        "site_energies": site_energies,
    }
    if atoms.pbc.all() and atoms.cell.rank == 3:
        w = -virial / atoms.cell.volume
        out["stress"] = np.array([w[0, 0], w[1, 1], w[2, 2], w[1, 2], w[0, 2], w[0, 1]])
    return out


def basis_values(mtp: MTP, atoms: Atoms, types: npt.ArrayLike | None = None) -> np.ndarray:
    """Per-atom rows ``[one-hot species | B_k(i)]``, shape ``(n_atoms, species_count + n_scalar)``.

    ``E = rows.sum(0) @ concat(species_coeffs, moment_coeffs)``.
    """
    t = _types(atoms, types, mtp)
    rows = np.zeros((len(atoms), mtp.species_count + mtp.alpha_scalar_moments))
    rows[np.arange(len(atoms)), t] = 1.0
    M = _moments_of(mtp, _environments(mtp, atoms, t, derivatives=False))
    rows[:, mtp.species_count:] = M[:, mtp.alpha_moment_mapping]
    return rows


def param_gradient(mtp: MTP, atoms: Atoms, types: npt.ArrayLike | None = None) -> np.ndarray:
    """``dE/dparams`` (eV per parameter unit) in :meth:`MTP.get_params` order, analytic."""
    t = _types(atoms, types, mtp)
    n_basic = len(mtp.alpha_index_basic)
    mu = mtp.alpha_index_basic[:, 0]
    envs = _environments(mtp, atoms, t, derivatives=False)
    M = _moments_of(mtp, envs)
    adj = _adjoint(mtp, M)[:, :n_basic]
    d_radial = np.zeros_like(mtp.radial_coeffs)
    d_species = np.bincount(t, minlength=mtp.species_count).astype(float)
    d_moment = M[:, mtp.alpha_moment_mapping].sum(axis=0)
    for a, (js, _, basic) in enumerate(envs):
        # dE/dc[s_a, s_j, m, b] = scaling * sum_{basic rows with mu = m} adj * u^p * Q_b
        weighted = basic.upow * adj[a]  # (n, n_basic)
        per_mu = np.zeros((len(js), mtp.radial_funcs_count))
        np.add.at(per_mu.T, mu, weighted.T)
        contrib = mtp.scaling * per_mu[:, :, None] * basic.Q[:, None, :]  # (n, mu, b)
        np.add.at(d_radial[int(t[a])], t[js], contrib)
    return np.concatenate([d_radial.ravel(), d_species, d_moment])
