"""Is the host framework still a crystal? Framework mobility and volume change of one MD run.

A conductivity computed from MD is a solid-electrolyte conductivity only while the
host lattice (here Cl, Y, Zr) stays put and only the mobile ion (Na) hops.  A
potential — or the labeller it was trained on — that melts or amorphises the host at
the production temperature still gives a Na MSD, a D and an Arrhenius line, but they
describe a melt.  This module measures, from the trajectory alone:

* ``msd_A2[species]``: mean squared displacement (Å²) of each species at the lag of half
  the analysed window, averaged over atoms and time origins, measured in fractional
  coordinates (mapped back through the mean cell) from the centre of the host atoms: a
  strain of the cell under the barostat, a drift of the box, or the host recoiling
  against hopping Na is not host motion;
* ``volume_change``: mean cell volume over the second half of the run relative to the
  first frame (0.05 = +5 %);
* ``solid``: every host species' MSD below ``threshold_A2`` (default 2 Å²).

Why 2 Å²: in a solid the displacement between two times is vibrational, ≈ 2⟨u²⟩ with
⟨u²⟩ ≈ 3 U_iso ≈ 0.1–0.25 Å² for Cl in chlorides at 300–700 K, i.e. 0.2–0.5 Å²; 2 Å²
(1.4 Å rms, ≈ 0.4 of the Cl–Cl distance) is beyond any Lindemann-stable vibration and
means the host atoms diffuse.

Frames are read strided (at most ``n_max``); wrapped dumps are unwrapped through
:func:`mtpkit.analysis.trajectory.iter_unwrapped`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from mtpkit.errors import UserError

__all__ = ["FRAMEWORK_MSD_THRESHOLD_A2", "FrameworkCheck", "framework_check", "framework_check_positions"]

#: Host-species MSD (Å²) above which a run is not counted as a solid (see module docstring).
FRAMEWORK_MSD_THRESHOLD_A2 = 2.0


@dataclass
class FrameworkCheck:
    """Result of :func:`framework_check` (Å², fractions, ps)."""

    msd_A2: dict[str, float]
    lag_ps: float
    volume_change: float
    host_species: list[str]
    threshold_A2: float
    solid: bool
    n_frames: int

    @property
    def worst_host(self) -> str:
        """The host species with the largest MSD."""
        return max(self.host_species, key=lambda s: self.msd_A2[s])

    def summary(self) -> str:
        """One line for logs and reports."""
        w = self.worst_host
        verdict = "solid" if self.solid else "NOT solid"
        return (f"{verdict}: {w} MSD {self.msd_A2[w]:.2f} Å² at {self.lag_ps:.3g} ps "
                f"(limit {self.threshold_A2:g}), volume {100 * self.volume_change:+.1f} %")

    def to_dict(self) -> dict:
        return asdict(self) | {"worst_host": self.worst_host}


def framework_check_positions(positions: np.ndarray, cells: np.ndarray, symbols: Sequence[str],
                              frame_interval_ps: float, mobile: Sequence[str] = ("Na",),
                              threshold_A2: float = FRAMEWORK_MSD_THRESHOLD_A2) -> FrameworkCheck:
    """The check on unwrapped positions ``(n_frames, n_atoms, 3)`` Å, the cell of each frame
    ``(n_frames, 3, 3)`` Å (rows are lattice vectors) and the time between the frames given (ps).

    Displacements are measured in fractional coordinates and mapped back through the mean
    cell, so a change of cell shape or size under the barostat (an affine strain, which moves
    atoms far from the origin by Å) is not counted as host motion; the volume change is.
    """
    x = np.asarray(positions, float)
    if x.ndim != 3 or x.shape[0] < 4:
        raise UserError(f"framework check needs at least 4 frames, got {x.shape[0] if x.ndim == 3 else 0}")
    h = np.broadcast_to(np.asarray(cells, float), (x.shape[0], 3, 3))
    frac = np.einsum("fni,fij->fnj", x, np.linalg.inv(h))  # unwrapped fractional coordinates
    x = frac @ h.mean(0)
    sym = np.asarray(symbols)
    species = list(dict.fromkeys(sym.tolist()))
    host = [s for s in species if s not in set(mobile)]
    if not host:
        raise UserError(f"framework check: every species ({', '.join(species)}) is listed as mobile")
    # displacements relative to the host's centre: a drift of the whole box, or the host
    # recoiling against hopping Na (total momentum is conserved), is not host motion
    x = x - x[:, np.isin(sym, host)].mean(axis=1, keepdims=True)
    lag = x.shape[0] // 2
    d2 = ((x[lag:] - x[:-lag]) ** 2).sum(-1).mean(0)  # per atom, over time origins
    msd = {s: float(d2[sym == s].mean()) for s in species}
    v = np.abs(np.linalg.det(h))
    dv = float(v[len(v) // 2:].mean() / v[0] - 1.0)
    return FrameworkCheck(msd_A2=msd, lag_ps=lag * frame_interval_ps, volume_change=dv, host_species=host,
                          threshold_A2=float(threshold_A2),
                          solid=all(msd[s] < threshold_A2 for s in host), n_frames=int(x.shape[0]))


def framework_check(path: str | os.PathLike, frame_interval_fs: float, *, type_map: Sequence[str] | None = None,
                    mobile: Sequence[str] = ("Na",), n_max: int = 200,
                    threshold_A2: float = FRAMEWORK_MSD_THRESHOLD_A2) -> FrameworkCheck:
    """Framework mobility and volume change of the trajectory at ``path`` (LAMMPS dump or extxyz).

    ``frame_interval_fs``: time between consecutive frames of the file (fs); ``type_map``:
    element per LAMMPS type for dumps without an element column; ``mobile``: the diffusing
    species, excluded from the host; at most ``n_max`` evenly strided frames are used.
    """
    from mtpkit.analysis.trajectory import iter_unwrapped, open_trajectory

    traj = open_trajectory(path, type_map=type_map)
    stride = max(1, math.ceil(traj.n_frames / n_max))
    pos, cells = [], []
    # unwrapped dumps are read strided as they are; wrapped ones are followed frame by frame
    frames = traj.frames(stride=stride) if traj.unwrapped else iter_unwrapped(traj, stride=stride)
    for frame in frames:
        pos.append(frame.positions)
        cells.append(frame.cell)
    if len(pos) < 4:
        raise UserError(f"{path}: {len(pos)} frames are too few for a framework check (need 4)")
    return framework_check_positions(np.array(pos), np.array(cells), traj.symbols, stride * frame_interval_fs / 1000.0,
                                     mobile=mobile, threshold_A2=threshold_A2)
