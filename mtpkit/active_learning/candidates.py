"""Candidate configurations from exploration runs: per-run policy and geometric deduplication.

Policies (``active_learning.candidate_policy``), applied to the frames one run saved
(each carrying its grade as ``info["MV_grade"]``):

``top``   the highest-graded frames first;
``even``  frames evenly spaced over the run (consecutive saved frames are correlated,
          so spreading them out covers more of the run's path).

Probes (``active_learning.probes_per_iteration``) are the opposite of candidates: frames drawn
at random from the runs' trajectories whatever their grade (:func:`draw_probes`), to measure the
potential's error on the states its MD visits.

Two configurations are duplicates when :func:`max_shift` between them is at most
``dedup_distance`` Å; that works across NPT cells (the comparison includes the cell).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms


def pick(frames: Sequence[Atoms], limit: int, policy: str) -> list[Atoms]:
    """At most ``limit`` of ``frames`` by ``policy`` (``"top"`` or ``"even"``), in their original order."""
    if len(frames) <= limit:
        return list(frames)
    if policy == "top":
        grades = np.array([float(a.info.get("MV_grade", 0.0)) for a in frames])
        keep = np.sort(np.argsort(-grades, kind="stable")[:limit])
    elif policy == "even":
        keep = np.unique(np.linspace(0, len(frames) - 1, limit).round().astype(int))
    else:
        raise ValueError(f"candidate policy must be 'top' or 'even', got {policy!r}")
    return [frames[int(k)] for k in keep]


def draw_probes(dumps: Sequence[tuple[str, Path]], n: int, seed: int, species: Sequence[str]) -> list[Atoms]:
    """``n`` frames drawn without replacement from the LAMMPS text dumps ``(run id, path)``, every
    frame but each run's first (its starting structure) equally likely, in draw-pool order; each
    wrapped into its cell and tagged with ``info["run"]`` and ``info["md_step"]``. Fewer when the
    dumps hold fewer. ``species``: element of each LAMMPS type (type 1 first)."""
    from ase.io import read

    pool: list[Atoms] = []
    for run, path in dumps:
        for f in read(path, index="1:", format="lammps-dump-text", specorder=list(species)):
            a = Atoms(f.numbers, positions=f.positions, cell=f.cell, pbc=True)
            a.wrap()
            a.info = {"run": run, "md_step": int(f.info.get("timestep", -1))}
            pool.append(a)
    if not pool or n <= 0:
        return []
    rng = np.random.default_rng(seed)
    return [pool[int(i)] for i in np.sort(rng.choice(len(pool), size=min(n, len(pool)), replace=False))]


def max_shift(a: Atoms, b: Atoms) -> float:
    """How far apart two configurations of the same atoms are (Å): the larger of the largest
    atomic displacement (fractional differences wrapped to the nearest image, measured in
    ``a``'s cell) and the largest change of a cell vector. ``inf`` for different atoms."""
    if len(a) != len(b) or not np.array_equal(a.numbers, b.numbers):
        return np.inf
    if not a.pbc.any():
        return float(np.linalg.norm(b.positions - a.positions, axis=1).max())
    ca, cb = a.cell.array, b.cell.array
    ds = b.cell.scaled_positions(b.positions) - a.cell.scaled_positions(a.positions)
    ds -= np.round(ds) * a.pbc
    # rounding finds the nearest image exactly for the small shifts that make a duplicate;
    # larger shifts may come out larger than their minimum image, which changes no verdict
    d = ds @ ca
    return float(max(np.linalg.norm(d, axis=1).max(), np.linalg.norm(cb - ca, axis=1).max()))


def deduplicate(candidates: Sequence[Atoms], known: Sequence[Atoms], distance: float) -> list[Atoms]:
    """``candidates`` without those within ``distance`` Å of an earlier candidate or of ``known``.

    Configurations are bucketed by their species sequence, so only comparable ones are compared.
    """
    buckets: dict[bytes, list[Atoms]] = {}
    for b in known:
        buckets.setdefault(np.asarray(b.numbers).tobytes(), []).append(b)
    out = []
    for a in candidates:
        same = buckets.setdefault(np.asarray(a.numbers).tobytes(), [])
        if any(max_shift(a, b) <= distance for b in same):
            continue
        same.append(a)
        out.append(a)
    return out
