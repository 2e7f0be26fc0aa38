"""The Moment Tensor Potential as plain data.

An :class:`MTP` holds exactly what an MLIP-2 ``.mtp`` file holds, in MLIP's
own layout, so that files round-trip and every engine (the NumPy reference,
the compiled core, the LAMMPS plugin) reads the same arrays.

Site energy of atom ``i`` of species ``s_i`` (eV)::

    E_i = species_coeffs[s_i] + sum_k moment_coeffs[k] * B_k(i)
    B_k(i) = alpha_moments(i)[alpha_moment_mapping[k]]

Basic alpha moments (row ``a`` of ``alpha_index_basic = (mu, px, py, pz)``)::

    M_a(i) = sum_j f_mu(r_ij; s_i, s_j) * ux^px * uy^py * uz^pz,  u = r_ij / |r_ij|
    f_mu(r; s, t) = scaling * sum_b radial_coeffs[s, t, mu, b] * Q_b(r)
    Q_b(r) = T_b(xi) * (max_dist - r)^2 for r < max_dist, else 0
    xi = (2 r - (min_dist + max_dist)) / (max_dist - min_dist)

(T_b: Chebyshev polynomials of the first kind.) Further alpha moments come
from ``alpha_index_times`` rows ``(i, j, mult, k)``: ``M_k += mult * M_i * M_j``,
applied in file order. Total energy is the sum of site energies.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt


@dataclass
class MTP:
    """A Moment Tensor Potential (MLIP-2 layout).

    Attributes
    ----------
    species_count:
        Number of species (MLIP type indices ``0 .. species_count-1``).
    min_dist, max_dist:
        Radial basis interval in Å; ``max_dist`` is the cutoff.
    radial_basis_size:
        Number of Chebyshev functions ``Q_b``.
    radial_funcs_count:
        Number of radial functions ``f_mu`` per species pair.
    radial_coeffs:
        Array ``(species_count, species_count, radial_funcs_count,
        radial_basis_size)``; indexed ``[central, neighbour, mu, b]``.
    alpha_index_basic:
        Integer array ``(n_basic, 4)``: ``(mu, px, py, pz)``.
    alpha_index_times:
        Integer array ``(n_times, 4)``: ``(i, j, mult, k)``.
    alpha_moment_mapping:
        Integer array ``(n_scalar,)``: which alpha moments are basis functions.
    alpha_moments_count:
        Total number of alpha moments.
    species_coeffs:
        Array ``(species_count,)`` in eV.
    moment_coeffs:
        Array ``(n_scalar,)`` in eV.
    scaling:
        Global multiplier of the radial functions (MLIP's ``scaling``).
    potential_name, potential_tag, version:
        Header fields kept for round trips.
    active_set:
        Optional MaxVol active set attached to the potential (see
        :mod:`mtpkit.active_learning`); ``None`` when absent.
    trained:
        ``False`` for an untrained template (an MLIP ``.mtp`` file without
        coefficients; its coefficients hold MLIP's default initial values and
        :func:`mtpkit.potentials.mtp_io.write_mtp` writes it back as a
        template). :meth:`with_params` returns a trained copy.
    """

    species_count: int
    min_dist: float
    max_dist: float
    radial_basis_size: int
    radial_funcs_count: int
    radial_coeffs: npt.NDArray[np.float64]
    alpha_index_basic: npt.NDArray[np.int64]
    alpha_index_times: npt.NDArray[np.int64]
    alpha_moment_mapping: npt.NDArray[np.int64]
    alpha_moments_count: int
    species_coeffs: npt.NDArray[np.float64]
    moment_coeffs: npt.NDArray[np.float64]
    scaling: float = 1.0
    potential_name: str = "MTP1m"
    potential_tag: str = ""
    version: str = "1.1.0"
    active_set: object | None = field(default=None, repr=False)
    trained: bool = True

    def __post_init__(self) -> None:
        self.radial_coeffs = np.ascontiguousarray(self.radial_coeffs, dtype=np.float64)
        self.alpha_index_basic = np.ascontiguousarray(
            np.asarray(self.alpha_index_basic, dtype=np.int64).reshape(-1, 4)
        )
        self.alpha_index_times = np.ascontiguousarray(
            np.asarray(self.alpha_index_times, dtype=np.int64).reshape(-1, 4)
        )
        self.alpha_moment_mapping = np.ascontiguousarray(self.alpha_moment_mapping, dtype=np.int64)
        self.species_coeffs = np.ascontiguousarray(self.species_coeffs, dtype=np.float64)
        self.moment_coeffs = np.ascontiguousarray(self.moment_coeffs, dtype=np.float64)
        s, r, b = self.species_count, self.radial_funcs_count, self.radial_basis_size
        if self.radial_coeffs.shape != (s, s, r, b):
            raise ValueError(
                f"radial_coeffs has shape {self.radial_coeffs.shape}, expected {(s, s, r, b)}"
            )
        if self.species_coeffs.shape != (s,):
            raise ValueError(f"species_coeffs has {self.species_coeffs.size} values, expected {s}")
        if self.moment_coeffs.shape != self.alpha_moment_mapping.shape:
            raise ValueError(
                f"moment_coeffs has {self.moment_coeffs.size} values, "
                f"expected alpha_scalar_moments = {self.alpha_moment_mapping.size}"
            )
        if not 0.0 <= self.min_dist < self.max_dist:
            raise ValueError(f"need 0 <= min_dist < max_dist, got {self.min_dist}, {self.max_dist}")

    # --- derived sizes -------------------------------------------------------
    @property
    def alpha_scalar_moments(self) -> int:
        """Number of basis functions ``B_k`` (length of ``moment_coeffs``)."""
        return int(self.alpha_moment_mapping.size)

    @property
    def cutoff(self) -> float:
        """Interaction cutoff in Å (``max_dist``)."""
        return float(self.max_dist)

    @property
    def n_params(self) -> int:
        """Number of trainable parameters in :meth:`get_params` order."""
        return self.radial_coeffs.size + self.species_count + self.alpha_scalar_moments

    # --- flat parameter vector (training order) ------------------------------
    def get_params(self) -> npt.NDArray[np.float64]:
        """All trainable parameters as one vector: radial, species, moment coefficients."""
        return np.concatenate(
            [self.radial_coeffs.ravel(), self.species_coeffs, self.moment_coeffs]
        )

    def with_params(self, params: npt.ArrayLike) -> MTP:
        """A copy with parameters from a vector in :meth:`get_params` order (marked trained)."""
        p = np.asarray(params, dtype=np.float64)
        if p.shape != (self.n_params,):
            raise ValueError(f"expected {self.n_params} parameters, got shape {p.shape}")
        nr = self.radial_coeffs.size
        ns = self.species_count
        return replace(
            self,
            radial_coeffs=p[:nr].reshape(self.radial_coeffs.shape).copy(),
            species_coeffs=p[nr : nr + ns].copy(),
            moment_coeffs=p[nr + ns :].copy(),
            trained=True,
        )

    def copy(self) -> MTP:
        """A deep copy of the arrays (the active set is shared)."""
        return replace(
            self,
            radial_coeffs=self.radial_coeffs.copy(),
            alpha_index_basic=self.alpha_index_basic.copy(),
            alpha_index_times=self.alpha_index_times.copy(),
            alpha_moment_mapping=self.alpha_moment_mapping.copy(),
            species_coeffs=self.species_coeffs.copy(),
            moment_coeffs=self.moment_coeffs.copy(),
        )
