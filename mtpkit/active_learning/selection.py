"""Building an active set and D-optimal selection from a pool (MLIP's ``select-add``).

Both work on *row blocks*: one ``(k_i, n)`` array per configuration (``k_i = 1``
in configuration mode, the number of atoms in neighbourhood mode), as made by
:func:`mtpkit.active_learning.grades.row_blocks`. Everything here is plain
linear algebra on those arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mtpkit.active_learning.active_set import (
    INIT_VALUE,
    SELECT_THRESHOLD,
    ActiveSet,
    Basis,
    Mode,
)


def _stack(blocks: Sequence[npt.ArrayLike], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, owner (block index) and equation index within its block."""
    arrays = [np.atleast_2d(np.asarray(b, dtype=np.float64)) for b in blocks]
    for k, a in enumerate(arrays):
        if a.size and a.shape[1] != n:
            raise ValueError(f"row block {k} has {a.shape[1]} columns, expected {n}")
    arrays = [a if a.size else np.zeros((0, n)) for a in arrays]
    if not arrays:
        return np.zeros((0, n)), np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows = np.vstack(arrays)
    owner = np.concatenate([np.full(a.shape[0], k, np.int64) for k, a in enumerate(arrays)])
    eqn = np.concatenate([np.arange(a.shape[0], dtype=np.int64) for a in arrays])
    return rows, owner, eqn


def build_active_set(blocks: Sequence[npt.ArrayLike], configurations: Sequence | None = None,
                     mode: Mode = "neighborhood", basis: Basis = "all",
                     init_value: float = INIT_VALUE, threshold: float = SELECT_THRESHOLD,
                     weight_scaling: int = 2, n: int | None = None) -> ActiveSet:
    """MaxVol active set over all rows of ``blocks``, started from ``init_value * I``.

    This is what ``mlp select`` does with a whole training set in one batch.
    ``configurations[k]`` is the configuration of ``blocks[k]``; only those
    that own an active row are kept in :attr:`ActiveSet.configurations`.
    """
    if n is None:
        sizes = [np.atleast_2d(b).shape[1] for b in blocks if np.size(b)]
        if not sizes:
            raise ValueError("no rows to build an active set from")
        n = sizes[0]
    rows, owner, eqn = _stack(blocks, n)
    aset = ActiveSet.empty(n, mode=mode, basis=basis, init_value=init_value, threshold=threshold,
                           weight_scaling=weight_scaling)
    res = aset.maxvol(rows, row_owner=owner)
    aset.configurations = list(configurations) if configurations is not None else [None] * len(blocks)
    aset.commit_sources({int(c): (int(owner[c]), int(eqn[c])) for c in res.entered})
    aset.prune_configurations()
    return aset


@dataclass
class Selection:
    """Result of :func:`select_add`.

    Attributes
    ----------
    selected:
        Indices (into the pool) of the configurations chosen, in increasing order.
    active_set:
        The updated active set (a new object; the input is not changed); the
        chosen configurations are appended to its ``configurations``.
    grades:
        Grade of every pool configuration against the *input* active set.
    log_det_gain:
        ``log|det A_new| - log|det A_old|`` (natural log, >= 0).
    """

    selected: npt.NDArray[np.int64]
    active_set: ActiveSet
    grades: npt.NDArray[np.float64]
    log_det_gain: float


def block_grades(active_set: ActiveSet, blocks: Sequence[npt.ArrayLike]) -> npt.NDArray[np.float64]:
    """Grade of each block: the maximum over its rows (0 for an empty block)."""
    rows, owner, _ = _stack(blocks, active_set.size)
    out = np.zeros(len(blocks))
    if rows.shape[0]:
        np.maximum.at(out, owner, active_set.grades(rows))
    return out


def volume_gain(C: npt.NDArray[np.float64], threshold: float) -> float:
    """``log|det|`` gain of MaxVol swapping rows with coefficients ``C`` (= rows A^-1) into A.

    Works on ``C`` alone (a private copy is updated in place by the same
    Sherman-Morrison steps as :meth:`ActiveSet.maxvol`), so evaluating a
    candidate costs one small matrix product and at most a few swaps.
    """
    C = np.array(C, dtype=np.float64)
    gain = 0.0
    for _ in range(C.shape[0] * 4 + 8):
        flat = int(np.argmax(np.abs(C)))
        i, j = divmod(flat, C.shape[1])
        cij = C[i, j]
        if abs(cij) <= threshold:
            break
        gain += float(np.log(abs(cij)))
        u = C[i].copy()
        u[j] -= 1.0
        C -= np.outer(C[:, j], u / cij)
        C[i] = -u / cij
        C[i, j] += 1.0
    return gain


def _commit(new: ActiveSet, rows: np.ndarray, eqn: np.ndarray, index: int, threshold: float | None) -> None:
    """Swap ``rows`` (configuration ``index`` of ``new.configurations``) into ``new``."""
    res = new.maxvol(rows, threshold=threshold)
    new.commit_sources({int(c): (index, int(eqn[c])) for c in res.entered})


def select_add(active_set: ActiveSet, blocks: Sequence[npt.ArrayLike], configurations: Sequence | None = None,
               limit: int | None = None, threshold: float | None = None) -> Selection:
    """D-optimal choice of pool configurations to add to the training set.

    Without ``limit``: MaxVol swaps pool rows into a copy of ``active_set``
    while any grade exceeds the threshold (each swap the one that increases
    ``|det A|`` most); the configurations owning rows in the final matrix are
    selected (MLIP's ``select-add``).

    With ``limit``: greedy D-optimal choice at the level of configurations:
    repeatedly add the configuration whose rows, swapped in by MaxVol,
    increase ``log|det A|`` most, until ``limit`` are chosen or no candidate
    increases it. ``log det`` is submodular, so stale gains are upper bounds
    and a lazy priority queue re-evaluates only the current leader.
    """
    import heapq

    if limit is not None and limit < 0:
        raise ValueError("limit must be >= 0")
    grades = block_grades(active_set, blocks)
    new = active_set.copy()
    if limit == 0 or not len(blocks):
        return Selection(np.zeros(0, np.int64), new, grades, 0.0)
    thr = active_set.threshold if threshold is None else float(threshold)
    before = new.log_abs_det()
    confs = list(configurations) if configurations is not None else [None] * len(blocks)
    base = len(new.configurations)
    if limit is None:
        rows, owner, eqn = _stack(blocks, active_set.size)
        res = new.maxvol(rows, row_owner=owner, threshold=threshold)
        chosen = np.unique(owner[res.entered])
        index_of = {int(k): base + t for t, k in enumerate(chosen)}
        new.configurations = list(new.configurations) + [confs[int(k)] for k in chosen]
        new.commit_sources({int(c): (index_of[int(owner[c])], int(eqn[c])) for c in res.entered})
        new.prune_configurations()
        return Selection(chosen.astype(np.int64), new, grades, new.log_abs_det() - before)

    arrays = [np.atleast_2d(np.asarray(b, dtype=np.float64)) for b in blocks]
    version = 0
    heap = []  # (-gain, index, version the gain was computed at)
    for k in np.flatnonzero(grades > thr):
        g = volume_gain(arrays[k] @ new.inv_A, thr)
        if g > 0:
            heap.append((-g, int(k), version))
    heapq.heapify(heap)
    chosen_list: list[int] = []
    while heap and len(chosen_list) < limit:
        _neg_gain, k, ver = heapq.heappop(heap)
        if ver != version:  # stale: re-evaluate against the current active set
            g = volume_gain(arrays[k] @ new.inv_A, thr)
            if g > 0:
                heapq.heappush(heap, (-g, k, version))
            continue
        new.configurations = [*new.configurations, confs[k]]
        _commit(new, arrays[k], np.arange(arrays[k].shape[0]), len(new.configurations) - 1, threshold)
        chosen_list.append(k)
        version += 1
    new.prune_configurations()
    chosen = np.array(sorted(chosen_list), dtype=np.int64)
    return Selection(chosen, new, grades, new.log_abs_det() - before)


def active_set_for(mtp, species=None, train_images=None, mode: Mode | None = None, basis: Basis = "all",
                   source: str = "potential") -> ActiveSet:
    """The active set to grade with: the potential's own (MLIP-3 ``.almtp``) or one built from ``train_images``.

    ``mode`` overrides nothing of a stored set; with ``train_images`` it
    chooses the mode (default neighbourhood, as MLIP-3's LAMMPS interface).
    """
    from mtpkit.active_learning.active_set import from_mlip
    from mtpkit.active_learning.grades import row_blocks
    from mtpkit.errors import UserError

    if train_images is not None:
        m = mode or "neighborhood"
        blocks = row_blocks(mtp, train_images, m, basis, species)
        return build_active_set(blocks, train_images, mode=m, basis=basis, n=blocks[0].shape[1] if blocks else None)
    stored = getattr(mtp, "active_set", None)
    if stored is None:
        raise UserError(f"{source}: the potential carries no active set; give training configurations "
                        "(--train) to build one, or use an MLIP-3 .almtp with its selection state")
    if isinstance(stored, ActiveSet):
        return stored
    try:
        aset = from_mlip(stored, species)
    except ValueError as exc:
        raise UserError(f"{source}: {exc}") from None
    if mode is not None and mode != aset.mode:
        raise UserError(f"{source}: the stored active set is in {aset.mode} mode, not {mode}")
    return aset
