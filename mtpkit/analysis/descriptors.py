"""Structure descriptors of one trajectory: O_oct(t), Cl angular displacement, Y/Zr SRO.

Reads at most ``max_frames`` evenly strided frames (one in memory at a time).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from mtpkit.analysis.octahedra import cl_angular_displacement
from mtpkit.analysis.sites import octahedral_occupancy, reference_sites
from mtpkit.analysis.trajectory import frame_to_atoms, iter_unwrapped, open_trajectory
from mtpkit.errors import UserError
from mtpkit.structures.sro import warren_cowley, warren_cowley_trajectory

__all__ = ["trajectory_descriptors"]


def trajectory_descriptors(path: str | os.PathLike, frame_interval_fs: float, center: str = "Na",
                           ligand: str = "Cl", metals: Sequence[str] = ("Y", "Zr"),
                           sro_cutoff: float = 8.5, max_frames: int = 400,
                           type_map: Sequence[str] | None = None, format: str | None = None,
                           equilibration_fraction: float = 0.2, reference=None) -> dict:
    """Descriptors of one trajectory (times in ps, angles in deg).

    Returns ``{"t_ps", "o_oct": {series, mean, sem, ...}, "cl_angle_deg": {mean series,
    equilibrated mean, sem}, "sro_first_frame": {"Y-Zr": ..}, "sro_mean": {..}, "stride"}``;
    a descriptor whose atoms are missing is ``None`` with the reason under ``"skipped"``.
    ``reference``: an ASE ``Atoms`` (e.g. the ideal structure) whose Na sites, labelled by their
    polyhedra, classify the Na by nearest site instead of by their own polyhedra; it is
    repeated to the trajectory's cell when that is a diagonal supercell of it.
    """
    traj = open_trajectory(path, format=format, type_map=type_map)
    stride = max(1, math.ceil(traj.n_frames / max_frames))
    symbols = traj.symbols
    present = set(symbols)
    frames = list(iter_unwrapped(traj, stride=stride))  # ≤ max_frames frames
    t_ps = np.array([f.index for f in frames]) * frame_interval_fs / 1000.0
    out: dict = {"path": str(path), "stride": stride, "t_ps": t_ps.tolist(), "skipped": {}}
    if center in present and ligand in present:
        if reference is None:
            occ = octahedral_occupancy(frames, symbols, center, ligand,
                                       equilibration_fraction=equilibration_fraction)
        else:
            site_frac, site_oct = reference_sites(_match_supercell(reference, frames[0].cell, path),
                                                  center, ligand)
            occ = octahedral_occupancy(frames, symbols, center, ligand, method="reference",
                                       site_frac=site_frac, site_is_oct=site_oct,
                                       equilibration_fraction=equilibration_fraction)
        out["o_oct"] = {"series": occ.o_oct.tolist(), "mean": occ.mean, "sem": occ.sem,
                        "equilibrated_from_ps": occ.equilibrated_from * frame_interval_fs / 1000.0,
                        "method": "polyhedron" if reference is None else "reference sites"}
    else:
        out["o_oct"] = None
        out["skipped"]["o_oct"] = f"needs {center} and {ligand} atoms"
    if present & set(metals) and ligand in present:
        cl = cl_angular_displacement(frames, symbols, metals, ligand,
                                     equilibration_fraction=equilibration_fraction)
        out["cl_angle_deg"] = {"series": cl.mean.tolist(), "equilibrated_mean": cl.equilibrated_mean,
                               "sem": cl.equilibrated_sem,
                               "per_octahedron_final": cl.per_octahedron[-1].tolist()}
    else:
        out["cl_angle_deg"] = None
        out["skipped"]["cl_angle_deg"] = f"needs {'/'.join(metals)} and {ligand} atoms"
    sro_species = [m for m in metals if m in present]
    if len(sro_species) >= 2:
        first = warren_cowley(frame_to_atoms(traj, frames[0]), sro_species, sro_cutoff)
        step = max(1, len(frames) // 20)
        avg = warren_cowley_trajectory((frame_to_atoms(traj, f) for f in frames[::step]), sro_species,
                                       sro_cutoff)
        out["sro_first_frame"] = {f"{a}-{b}": v for (a, b), v in first.items()}
        out["sro_mean"] = {f"{a}-{b}": v for (a, b), v in avg["mean"].items()}
    else:
        out["sro_first_frame"] = out["sro_mean"] = None
        out["skipped"]["sro"] = f"needs at least two of {list(metals)}"
    return out


def _match_supercell(reference, cell: np.ndarray, path) -> object:
    """``reference`` repeated (n1, n2, n3) to match the lattice-vector lengths of ``cell``."""
    ref_len = np.linalg.norm(np.asarray(reference.cell[:]), axis=1)
    traj_len = np.linalg.norm(np.asarray(cell), axis=1)
    reps = np.rint(traj_len / ref_len).astype(int)
    if np.any(reps < 1) or np.any(np.abs(traj_len / (reps * ref_len) - 1) > 0.05):
        raise UserError(f"{path}: the reference structure's cell ({np.round(ref_len, 2).tolist()} Å) does "
                        f"not tile the trajectory's cell ({np.round(traj_len, 2).tolist()} Å); give a "
                        "reference in the same (super)cell")
    return reference.repeat(tuple(int(r) for r in reps))
