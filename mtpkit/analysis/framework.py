"""Is the host framework still a crystal? Host mobility, octahedra and volume of one MD run.

A conductivity computed from MD is a solid-electrolyte conductivity only while the host
(here the Y/Zr metal sublattice and its Cl octahedra) stays a solid and only the mobile
ion (Na) hops.  A potential — or the labeller it was trained on — that melts the host at
the production temperature still gives a Na MSD, a D and an Arrhenius line, but they
describe a melt.  Halide hosts also have a state in between: the metal sublattice stays
on its sites and every Cl stays in its own MCl6 octahedron, but the octahedra rotate
(rotor or "paddle-wheel" dynamics), so Cl moves by Å without leaving its metal.  From the
trajectory alone this module measures:

* ``msd_A2[species]``: mean squared displacement (Å²) of each species at the lag of half
  the analysed window, averaged over atoms and time origins, measured in fractional
  coordinates (mapped back through the mean cell) from the centre of the host atoms: a
  strain of the cell under the barostat, a drift of the box, or the host recoiling
  against hopping Na is not host motion;
* ``same_centre``: fraction of ligand atoms (Cl) whose nearest centre atom (any host
  species that is not a ligand: Y, Zr) is the same one at ``t`` and ``t + lag``
  (averaged over time origins; minimum image in each frame's cell);
* ``volume_change``: mean cell volume over the second half of the run relative to the
  first frame (0.05 = +5 %);
* ``state``: ``"crystal"`` (every host species' MSD below ``threshold_A2``, default
  2 Å²); ``"rotating octahedra"`` (centres below the limit and at least
  ``intact_fraction`` (0.99) of the ligands keep their centre, ligands above the limit);
  otherwise ``"not solid"`` (the metal sublattice diffuses or octahedra exchange Cl).
  ``solid`` is true for the first two.

Why 2 Å²: in a solid the displacement between two times is vibrational, ≈ 2⟨u²⟩ with
⟨u²⟩ ≈ 3 U_iso ≈ 0.1–0.25 Å² for Cl in chlorides at 300–700 K, i.e. 0.2–0.5 Å²; 2 Å²
(1.4 Å rms, ≈ 0.4 of the Cl–Cl distance) is beyond any Lindemann-stable vibration.

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

__all__ = ["DEFAULT_LIGANDS", "FRAMEWORK_MSD_THRESHOLD_A2", "INTACT_FRACTION", "FrameworkCheck", "framework_check",
           "framework_check_positions"]

#: Host-species MSD (Å²) above which a species is not vibrating about a site (module docstring).
FRAMEWORK_MSD_THRESHOLD_A2 = 2.0
#: Fraction of ligands that must keep their centre for the octahedra to count as intact.
INTACT_FRACTION = 0.99
#: Anions treated as ligands around the other host species when present (Cl in MCl6, O in MO6, ...).
DEFAULT_LIGANDS = ("F", "Cl", "Br", "I", "O", "S", "Se", "Te", "N")


@dataclass
class FrameworkCheck:
    """Result of :func:`framework_check` (Å², fractions, ps)."""

    msd_A2: dict[str, float]
    lag_ps: float
    volume_change: float
    host_species: list[str]
    ligand_species: list[str]
    same_centre: float | None
    threshold_A2: float
    state: str
    n_frames: int

    @property
    def solid(self) -> bool:
        """The host is a solid: a crystal, or a crystal whose octahedra rotate."""
        return self.state != "not solid"

    @property
    def worst_host(self) -> str:
        """The host species with the largest MSD."""
        return max(self.host_species, key=lambda s: self.msd_A2[s])

    @property
    def reason(self) -> str:
        """What decided the state, for notes: the moving centre, the broken octahedra or the MSD."""
        centres = [sp for sp in self.host_species if sp not in self.ligand_species]
        moving = [sp for sp in centres if self.msd_A2[sp] >= self.threshold_A2]
        if self.state == "not solid" and moving:
            sp = max(moving, key=lambda k: self.msd_A2[k])
            return f"{sp} MSD {self.msd_A2[sp]:.2f} Å² (its sites diffuse)"
        if self.state == "not solid" and self.same_centre is not None and centres:
            return f"only {100 * self.same_centre:.1f} % of {'/'.join(self.ligand_species)} keep their centre"
        w = self.worst_host
        return f"{w} MSD {self.msd_A2[w]:.2f} Å²"

    def summary(self) -> str:
        """One line for logs and reports."""
        w = self.worst_host
        kept = ("" if self.same_centre is None else
                f", {100 * self.same_centre:.1f} % of {'/'.join(self.ligand_species)} keep their metal")
        return (f"{self.state if self.solid else 'NOT solid'}: {w} MSD {self.msd_A2[w]:.2f} Å² at "
                f"{self.lag_ps:.3g} ps (limit {self.threshold_A2:g}){kept}, volume {100 * self.volume_change:+.1f} %"
                + ("" if self.solid else f"; {self.reason}"))

    def to_dict(self) -> dict:
        return asdict(self) | {"worst_host": self.worst_host, "solid": self.solid, "reason": self.reason}


def _nearest_centre(x: np.ndarray, h: np.ndarray, ligands: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index (into ``centres``) of each ligand's nearest centre in every frame (exact minimum
    image in that frame's cell, :func:`mtpkit.analysis.sites.min_image`)."""
    from mtpkit.analysis.sites import min_image

    out = np.empty((x.shape[0], len(ligands)), np.int64)
    for k in range(x.shape[0]):
        d = min_image(x[k, ligands][:, None, :] - x[k, centres][None, :, :], h[k])
        out[k] = np.argmin(np.einsum("lcx,lcx->lc", d, d), axis=1)
    return out


def framework_check_positions(positions: np.ndarray, cells: np.ndarray, symbols: Sequence[str],
                              frame_interval_ps: float, mobile: Sequence[str] = ("Na",),
                              threshold_A2: float = FRAMEWORK_MSD_THRESHOLD_A2,
                              ligands: Sequence[str] = DEFAULT_LIGANDS,
                              intact_fraction: float = INTACT_FRACTION) -> FrameworkCheck:
    """The check on unwrapped positions ``(n_frames, n_atoms, 3)`` Å, the cell of each frame
    ``(n_frames, 3, 3)`` Å (rows are lattice vectors) and the time between the frames given (ps).

    Displacements are measured in fractional coordinates and mapped back through the mean
    cell, so a change of cell shape or size under the barostat (an affine strain, which moves
    atoms far from the origin by Å) is not counted as host motion; the volume change is.
    """
    raw = x = np.asarray(positions, float)
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
    lig = [sp for sp in host if sp in set(ligands)]
    centres = [sp for sp in host if sp not in set(ligands)]
    same = None
    if lig and centres:
        near = _nearest_centre(raw, h, np.flatnonzero(np.isin(sym, lig)), np.flatnonzero(np.isin(sym, centres)))
        same = float((near[lag:] == near[:-lag]).mean())
    below = {sp: msd[sp] < threshold_A2 for sp in host}
    if all(below.values()):
        state = "crystal"
    elif (centres and all(below[sp] for sp in centres) and same is not None
          and same >= intact_fraction):
        state = "rotating octahedra"
    else:
        state = "not solid"
    return FrameworkCheck(msd_A2=msd, lag_ps=lag * frame_interval_ps, volume_change=dv, host_species=host,
                          ligand_species=lig, same_centre=same, threshold_A2=float(threshold_A2), state=state,
                          n_frames=int(x.shape[0]))


def framework_check(path: str | os.PathLike, frame_interval_fs: float, *, type_map: Sequence[str] | None = None,
                    mobile: Sequence[str] = ("Na",), ligands: Sequence[str] = DEFAULT_LIGANDS, n_max: int = 200,
                    threshold_A2: float = FRAMEWORK_MSD_THRESHOLD_A2, format: str | None = None) -> FrameworkCheck:
    """Framework mobility and volume change of the trajectory at ``path`` (LAMMPS dump or extxyz).

    ``frame_interval_fs``: time between consecutive frames of the file (fs); ``type_map``:
    element per LAMMPS type for dumps without an element column; ``mobile``: the diffusing
    species, excluded from the host; ``ligands``: host species that sit around the others
    (Cl in MCl6 octahedra; default the anions of :data:`DEFAULT_LIGANDS` present); at most
    ``n_max`` evenly strided frames are used; ``format`` as for
    :func:`mtpkit.analysis.trajectory.open_trajectory`.
    """
    from mtpkit.analysis.trajectory import iter_unwrapped, open_trajectory

    traj = open_trajectory(path, format=format, type_map=type_map)
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
                                     mobile=mobile, threshold_A2=threshold_A2, ligands=ligands)
