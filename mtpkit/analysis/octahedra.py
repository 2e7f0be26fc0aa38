"""Cl motion in MCl6 octahedra: per-Cl angular displacement of the M–Cl bonds over time.

At the first frame each metal M (Y, Zr by default) takes its 6 nearest Cl
(minimum image).  In every later frame the same M–Cl bond vectors (minimum
image in the current cell) are compared with their first-frame directions; the
angle between them (deg) is the Cl's angular displacement about its metal.
Rigid-octahedron rotations and Cl hops both raise it; librations alone keep it
at a few degrees.  Memory: one frame plus n_frames × n_M × 6 floats.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from mtpkit.analysis.sites import equilibrated_mean, min_image
from mtpkit.errors import UserError

__all__ = ["ClAngularDisplacement", "cl_angular_displacement"]


@dataclass
class ClAngularDisplacement:
    """``angles`` (n_frames, n_M, 6) deg; ``per_octahedron`` (n_frames, n_M) mean over its Cl;
    ``mean`` (n_frames,) over all bonds; ``metal_index``/``ligand_index`` atom indices."""

    frame_index: np.ndarray
    angles: np.ndarray
    metal_index: np.ndarray
    ligand_index: np.ndarray
    equilibrated_mean: float
    equilibrated_sem: float

    @property
    def per_octahedron(self) -> np.ndarray:
        return self.angles.mean(axis=2)

    @property
    def mean(self) -> np.ndarray:
        return self.angles.mean(axis=(1, 2))

    def to_dict(self) -> dict:
        return {"frame_index": self.frame_index.tolist(), "mean_deg": self.mean.tolist(),
                "per_octahedron_final_deg": self.per_octahedron[-1].tolist(),
                "metal_index": self.metal_index.tolist(), "equilibrated_mean_deg": self.equilibrated_mean,
                "equilibrated_sem_deg": self.equilibrated_sem}


def cl_angular_displacement(frames: Iterable, symbols: Sequence[str], metals: Sequence[str] = ("Y", "Zr"),
                            ligand: str = "Cl", n_ligands: int = 6,
                            equilibration_fraction: float = 0.2) -> ClAngularDisplacement:
    """Angular displacement (deg) of each M–Cl bond from its first-frame direction, per frame.

    ``frames``: objects with ``positions`` (N, 3) Å, ``cell`` (3, 3) Å and ``index`` (streamed).
    """
    symbols = np.asarray(symbols)
    mi = np.flatnonzero(np.isin(symbols, list(metals)))
    li = np.flatnonzero(symbols == ligand)
    if mi.size == 0:
        raise UserError(f"no {'/'.join(metals)} atoms for MCl6 octahedra (have {sorted(set(symbols))})")
    if li.size < n_ligands:
        raise UserError(f"{li.size} {ligand} atoms, fewer than {n_ligands} per octahedron")
    ligands = u0 = None
    idx, out = [], []
    for frame in frames:
        pos = frame.positions
        if ligands is None:
            vec = min_image(pos[li][None] - pos[mi][:, None], frame.cell)
            near = np.argsort(np.linalg.norm(vec, axis=-1), axis=1)[:, :n_ligands]
            ligands = li[near]  # (n_M, 6) atom indices
        v = min_image(pos[ligands] - pos[mi][:, None], frame.cell)
        u = v / np.linalg.norm(v, axis=-1, keepdims=True)
        if u0 is None:
            u0 = u
        out.append(np.degrees(np.arccos(np.clip(np.sum(u * u0, axis=-1), -1.0, 1.0))))
        idx.append(frame.index)
    if not out:
        raise UserError("Cl angular displacement: the trajectory has no frames")
    angles = np.array(out)
    mean, sem, _ = equilibrated_mean(angles.mean(axis=(1, 2)), equilibration_fraction)
    return ClAngularDisplacement(np.array(idx), angles, mi, ligands, mean, sem)
