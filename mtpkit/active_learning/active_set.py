"""MaxVol active set (Goreinov et al. 2010; Podryabinkin & Shapeev 2017).

The active set is a square matrix ``A`` (``n x n``) whose rows are "equations"
picked from the training data: energy-gradient rows of whole configurations
(configuration mode) or site-energy-gradient rows of single atoms
(neighbourhood mode). The extrapolation grade of any row ``b`` is

    gamma(b) = max_j |c_j|,   c = b A^-1,

so rows that lie inside the span of the active set (interpolation) grade
``<= 1`` and rows outside it grade ``> 1``.

The basis ``n`` is either all MTP parameters (``basis="all"``: radial,
species and moment coefficients in :meth:`MTP.get_params` order, as MLIP-3
does) or only the linear coefficients (``basis="linear"``: one-hot species,
then the basis functions ``B_k``).

MLIP-3's conventions are followed so that an ``.almtp`` active set reads and
writes unchanged: ``A`` starts as ``init_value * I`` (``1e-6``), rows are
swapped in greedily while some candidate coefficient exceeds ``threshold``
(``1.001``), the candidates' coefficients are updated by Sherman-Morrison
(``A^-1`` itself is recomputed after the swaps); MLIP stores the
*transpose* of ``A^-1`` (its ``invA``); in configuration mode an energy row is
multiplied by ``energy_weight / N^(weight_scaling/2)`` (defaults 1 and 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.linalg.blas import dger, idamax

Mode = Literal["configuration", "neighborhood"]
Basis = Literal["all", "linear"]

MODES: tuple[str, ...] = ("configuration", "neighborhood")
BASES: tuple[str, ...] = ("all", "linear")

#: MLIP-3 defaults (``cfg_selection.h``).
INIT_VALUE = 1e-6
SELECT_THRESHOLD = 1.001


def _single_blas_thread():
    """Limit BLAS to one thread (``threadpoolctl``) when available, else do nothing."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def row_grades(rows: npt.ArrayLike, inv_A: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``max_j |(row A^-1)_j|`` for each row of ``rows`` (``(m, n)``); dimensionless."""
    r = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    if r.shape[0] == 0:
        return np.zeros(0)
    return np.abs(r @ inv_A).max(axis=1)


@dataclass
class SwapResult:
    """What one MaxVol run did.

    Attributes
    ----------
    swaps:
        Number of row swaps made.
    entered:
        Candidate row indices that are in the active set at the end.
    max_grade_before:
        Largest candidate grade before any swap.
    """

    swaps: int
    entered: npt.NDArray[np.int64]
    max_grade_before: float


@dataclass
class ActiveSet:
    """A MaxVol active set.

    Attributes
    ----------
    mode:
        ``"configuration"`` (one energy row per configuration) or
        ``"neighborhood"`` (one site-energy row per atom).
    basis:
        ``"all"`` (gradients with respect to all MTP parameters, MLIP-3's
        choice) or ``"linear"`` (linear coefficients only).
    A:
        ``(n, n)`` matrix whose rows are the active rows.
    inv_A:
        ``A^-1`` (true inverse, ``A @ inv_A = I``).
    sources:
        ``(n, 2)`` integers: for each row of ``A``, the index of its source
        configuration in :attr:`configurations` and the equation (atom) index
        inside it; ``-1 -1`` for rows still at their initial value.
    configurations:
        The source configurations (ASE ``Atoms``), in index order.
    energy_weight, site_en_weight, weight_scaling:
        MLIP's selection weights (configuration mode scales an energy row by
        ``energy_weight / N**(weight_scaling / 2)``).
    init_value, threshold:
        Initial diagonal of ``A`` and the swap threshold of MaxVol.
    """

    mode: Mode
    basis: Basis
    A: npt.NDArray[np.float64]
    inv_A: npt.NDArray[np.float64]
    sources: npt.NDArray[np.int64]
    configurations: list = field(default_factory=list)
    energy_weight: float = 1.0
    site_en_weight: float = 0.0
    weight_scaling: int = 2
    init_value: float = INIT_VALUE
    threshold: float = SELECT_THRESHOLD

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.basis not in BASES:
            raise ValueError(f"basis must be one of {BASES}, got {self.basis!r}")
        self.A = np.ascontiguousarray(self.A, dtype=np.float64)
        self.inv_A = np.ascontiguousarray(self.inv_A, dtype=np.float64)
        n = self.A.shape[0]
        if self.A.shape != (n, n) or self.inv_A.shape != (n, n):
            raise ValueError(f"A {self.A.shape} and inv_A {self.inv_A.shape} must be square and equal")
        self.sources = np.asarray(self.sources, dtype=np.int64).reshape(n, 2)

    # --- construction ---------------------------------------------------------------
    @classmethod
    def empty(cls, n: int, mode: Mode = "neighborhood", basis: Basis = "all",
              init_value: float = INIT_VALUE, threshold: float = SELECT_THRESHOLD,
              weight_scaling: int = 2) -> ActiveSet:
        """An active set of size ``n`` at its initial value ``init_value * I``."""
        return cls(
            mode=mode, basis=basis,
            A=np.eye(n) * init_value, inv_A=np.eye(n) / init_value,
            sources=np.full((n, 2), -1, dtype=np.int64), configurations=[],
            energy_weight=1.0 if mode == "configuration" else 0.0,
            site_en_weight=1.0 if mode == "neighborhood" else 0.0,
            weight_scaling=weight_scaling, init_value=init_value, threshold=threshold,
        )

    @property
    def size(self) -> int:
        """Number of rows ``n``."""
        return int(self.A.shape[0])

    @property
    def filled(self) -> int:
        """How many rows hold real equations (not the initial ``init_value`` rows)."""
        return int(np.count_nonzero(self.sources[:, 0] >= 0))

    def log_abs_det(self) -> float:
        """``log |det A|`` (natural log)."""
        return float(np.linalg.slogdet(self.A)[1])

    # --- grades ------------------------------------------------------------------------
    def grades(self, rows: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Extrapolation grade of each row (``(m, n)``)."""
        rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
        if rows.shape[1] != self.size:
            raise ValueError(f"rows have {rows.shape[1]} columns, the active set has {self.size}")
        return row_grades(rows, self.inv_A)

    # --- MaxVol ------------------------------------------------------------------------
    def maxvol(self, rows: npt.ArrayLike, row_owner: npt.ArrayLike | None = None,
               threshold: float | None = None,
               max_swaps: int | None = None) -> SwapResult:
        """Swap candidate ``rows`` into the active set while some grade exceeds ``threshold``.

        Greedy MaxVol exactly as MLIP does it: take the largest ``|c_ij|`` of
        ``C = rows A^-1``; if it exceeds the threshold, row ``i`` replaces row
        ``j`` of ``A`` (which becomes a candidate itself, so it may come back),
        ``C`` is updated by Sherman-Morrison; repeat. Each swap multiplies
        ``|det A|`` by ``|c_ij|``. ``A^-1`` is recomputed once at the end.

        Parameters
        ----------
        rows:
            ``(m, n)`` candidate rows.
        row_owner:
            For each candidate row, an integer owner id (e.g. configuration
            index), carried along when rows are displaced.
        threshold:
            Swap threshold (default :attr:`threshold`).
        max_swaps:
            Stop after this many swaps.

        Returns
        -------
        SwapResult
            ``entered`` indexes the candidate rows now in ``A``; the caller maps
            them to owners. Sources of rows that entered are set to
            ``(-2 - i, -2 - i)`` placeholders that :meth:`commit_sources` fills in.
        """
        with _single_blas_thread():  # level-1/2 BLAS calls: threading only adds overhead
            return self._maxvol(rows, row_owner, threshold, max_swaps)

    def _maxvol(self, rows, row_owner, threshold, max_swaps) -> SwapResult:
        B = np.array(np.atleast_2d(rows), dtype=np.float64)  # own copy: displaced rows go here
        m, n = B.shape
        if n != self.size:
            raise ValueError(f"rows have {n} columns, the active set has {self.size}")
        thr = self.threshold if threshold is None else float(threshold)
        if m == 0:
            return SwapResult(0, np.zeros(0, np.int64), 0.0)
        owner = (np.arange(m) if row_owner is None else np.asarray(row_owner, dtype=np.int64)).copy()
        if owner.shape != (m,):
            raise ValueError("row_owner must have one entry per row")
        # candidate slot -> what it currently holds: >=0 candidate row index, <0 encoded old A row
        holds = np.arange(m, dtype=np.int64)
        # active row -> candidate index (or -1 when it is an original row)
        a_from = np.full(n, -1, dtype=np.int64)
        a_owner = np.full(n, -1, dtype=np.int64)
        old_rows: list[tuple[npt.NDArray[np.float64], tuple[int, int]]] = []
        # C = B A^-1 kept column-major (m x n Fortran) so that BLAS idamax/dger work in place
        C = np.asfortranarray(B @ self.inv_A)
        flatC = C.ravel(order="K")
        max_before = float(np.abs(flatC[idamax(flatC)]))
        swaps = 0
        limit = np.inf if max_swaps is None else max_swaps
        while swaps < limit:
            k = int(idamax(flatC))
            j, i = divmod(k, m)
            cij = C[i, j]
            if abs(cij) <= thr:
                break
            c = C[i].copy()
            # Sherman-Morrison: A' = A + e_j (b - a_j)^T,  c = b A^-1,  a_j A^-1 = e_j
            u = c.copy()
            u[j] -= 1.0
            colC = C[:, j].copy()
            C = dger(-1.0 / cij, colC, u, a=C, overwrite_a=1)
            flatC = C.ravel(order="K")
            # the displaced row a_j becomes candidate slot i: its coefficients are e_j - u / c_j
            displaced_row = self.A[j].copy()
            displaced_src = (int(self.sources[j, 0]), int(self.sources[j, 1]))
            displaced_cand = int(a_from[j])
            displaced_owner = int(a_owner[j])
            self.A[j] = B[i]
            if holds[i] >= 0:
                a_from[j] = holds[i]
                a_owner[j] = owner[i]
                self.sources[j] = (-2 - holds[i], -2 - holds[i])
            else:  # an original row came back
                a_from[j] = -1
                a_owner[j] = -1
                self.sources[j] = old_rows[-1 - holds[i]][1]
            B[i] = displaced_row
            C[i] = -u / cij
            C[i, j] += 1.0
            if displaced_cand >= 0:
                holds[i] = displaced_cand
                owner[i] = displaced_owner
            else:
                old_rows.append((displaced_row, displaced_src))
                holds[i] = -len(old_rows)
                owner[i] = -1
            swaps += 1
        if swaps:
            # A^-1 is only needed after the swaps (C carries the Sherman-Morrison updates the
            # swap choices depend on), so it is recomputed once instead of updated per swap.
            self.inv_A = np.ascontiguousarray(np.linalg.inv(self.A))
        entered = np.sort(a_from[a_from >= 0])
        return SwapResult(swaps, entered, max_before)

    def commit_sources(self, candidate_to_source: dict[int, tuple[int, int]]) -> None:
        """Replace the placeholders left by :meth:`maxvol` with ``(configuration, equation)``."""
        for r in range(self.size):
            if self.sources[r, 0] <= -2:
                cand = -2 - int(self.sources[r, 0])
                self.sources[r] = candidate_to_source[cand]

    def refresh_inverse(self) -> float:
        """Recompute ``A^-1`` from ``A`` (removes Sherman-Morrison drift); returns max change."""
        new = np.linalg.inv(self.A)
        delta = float(np.abs(new - self.inv_A).max())
        self.inv_A = new
        return delta

    def prune_configurations(self) -> None:
        """Drop source configurations that no longer own an active row; renumber sources."""
        used = sorted({int(s) for s in self.sources[:, 0] if s >= 0})
        remap = {old: new for new, old in enumerate(used)}
        self.configurations = [self.configurations[k] for k in used]
        for r in range(self.size):
            if self.sources[r, 0] >= 0:
                self.sources[r, 0] = remap[int(self.sources[r, 0])]

    def copy(self) -> ActiveSet:
        """A deep copy of the matrices (configurations are shared)."""
        return ActiveSet(
            mode=self.mode, basis=self.basis, A=self.A.copy(), inv_A=self.inv_A.copy(),
            sources=self.sources.copy(), configurations=list(self.configurations),
            energy_weight=self.energy_weight, site_en_weight=self.site_en_weight,
            weight_scaling=self.weight_scaling, init_value=self.init_value, threshold=self.threshold,
        )


# --------------------------------------------------------------------------- MLIP-3 (.almtp) form


def to_mlip(active_set: ActiveSet, species=None):
    """The MLIP-3 ``#MVS_v1.1`` form (:class:`mtpkit.potentials.mtp_io.MVSSection`).

    ``invA`` is stored transposed, as MLIP does; the source configurations
    become the selected-configuration text (lossless floats), each tagged with
    the ``selected_eqn_inds`` feature like MLIP's own.
    """
    from mtpkit.potentials.cfg import format_cfg
    from mtpkit.potentials.mtp_io import MVSSection

    if active_set.basis != "all":
        raise ValueError("only an active set over all parameters can be stored in an .almtp "
                         "(MLIP-3's basis); keep a 'linear' one in the campaign state instead")
    texts = []
    for k, atoms in enumerate(active_set.configurations):
        if atoms is None:
            raise ValueError(f"active-set source configuration {k} is unknown; cannot store it")
        a = atoms.copy()
        a.calc = atoms.calc
        eqns = sorted(int(e) for c, e in active_set.sources if c == k)
        a.info = {key: v for key, v in atoms.info.items() if isinstance(v, (int, float, str))}
        a.info["selected_eqn_inds"] = ",".join(str(e) for e in eqns)
        texts.append(format_cfg(a, species, index=k, lossless=True))
    return MVSSection(
        energy_weight=float(active_set.energy_weight), force_weight=0.0, stress_weight=0.0,
        site_en_weight=float(active_set.site_en_weight), weight_scaling=int(active_set.weight_scaling),
        A=active_set.A.copy(), invA=active_set.inv_A.T.copy(),
        links=active_set.sources.copy(), selected_cfgs="".join(texts),
    )


def from_mlip(mlip, species=None, basis: Basis = "all") -> ActiveSet:
    """Our :class:`ActiveSet` from MLIP-3's stored form (as read by ``mtp_io``).

    Raises ``ValueError`` for selection by forces or stresses, or a mixed
    energy + site-energy selection: those grade rows we do not produce.
    """
    from mtpkit.potentials.cfg import read_cfg_text

    if mlip.force_weight != 0 or mlip.stress_weight != 0:
        raise ValueError("the active set selects by forces/stresses (force_weight or stress_weight != 0); "
                         "only energy (configuration) or site-energy (neighbourhood) selection is supported")
    if mlip.site_en_weight != 0 and mlip.energy_weight != 0:
        raise ValueError("the active set mixes energy and site-energy equations; choose one mode")
    mode: Mode = "neighborhood" if mlip.site_en_weight != 0 else "configuration"
    configs = read_cfg_text(mlip.selected_cfgs, species) if mlip.selected_cfgs.strip() else []
    links = np.asarray(mlip.links, dtype=np.int64).reshape(-1, 2)
    n = mlip.A.shape[0]
    if links.shape[0] != n:
        links = np.full((n, 2), -1, dtype=np.int64)
    return ActiveSet(
        mode=mode, basis=basis, A=np.array(mlip.A, dtype=np.float64),
        inv_A=np.array(mlip.invA, dtype=np.float64).T.copy(), sources=links, configurations=configs,
        energy_weight=float(mlip.energy_weight), site_en_weight=float(mlip.site_en_weight),
        weight_scaling=int(mlip.weight_scaling),
    )


def save_npz(path, active_set: ActiveSet) -> None:
    """Store matrices and metadata (not configurations) atomically as ``.npz``."""
    from mtpkit.io_utils import atomic_open

    with atomic_open(path, "wb") as fh:
        np.savez(fh, A=active_set.A, inv_A=active_set.inv_A, sources=active_set.sources,
                 meta=np.array([active_set.mode, active_set.basis]),
                 weights=np.array([active_set.energy_weight, active_set.site_en_weight,
                                   active_set.weight_scaling, active_set.init_value, active_set.threshold]))


def load_npz(path, configurations=None) -> ActiveSet:
    """Read what :func:`save_npz` wrote."""
    with np.load(path, allow_pickle=False) as z:
        mode, basis = (str(x) for x in z["meta"])
        ew, sw, ws, iv, th = (float(x) for x in z["weights"])
        sources = z["sources"]
        if configurations is None:  # placeholders keep source indices valid
            configurations = [None] * (int(sources[:, 0].max()) + 1 if sources.size else 0)
        return ActiveSet(mode=mode, basis=basis, A=z["A"], inv_A=z["inv_A"], sources=sources,
                         configurations=list(configurations), energy_weight=ew, site_en_weight=sw,
                         weight_scaling=int(ws), init_value=iv, threshold=th)
