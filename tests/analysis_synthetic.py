"""Synthetic trajectories with known transport for the analysis tests and benchmark."""

from __future__ import annotations

import numpy as np


def lattice_walk(n_mobile: int, n_frame: int, n_frames: int, dt_fs: float, hop_rate_per_fs: float,
                 hop_A: float, seed: int, cell_A: float = 20.0,
                 vib_A: float = 0.05) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Mobile "Na" atoms hopping ±hop_A along x, y or z with rate Γ (Poisson, per fs) among a
    vibrating "Cl" framework; returns (symbols, cell 3x3, positions (n_frames, N, 3)).

    Expected tracer D = hop_A² Γ / 6 (Å²/fs); the hops are independent, so D_charge = D too.
    """
    rng = np.random.default_rng(seed)
    p_hops = rng.poisson(hop_rate_per_fs * dt_fs, size=(n_frames - 1, n_mobile))
    steps = np.zeros((n_frames - 1, n_mobile, 3))
    max_h = int(p_hops.max()) if p_hops.size else 0
    for h in range(1, max_h + 1):
        active = p_hops >= h
        axis = rng.integers(0, 3, size=active.shape)
        sign = rng.choice([-1.0, 1.0], size=active.shape)
        for ax in range(3):
            steps[..., ax] += np.where(active & (axis == ax), sign * hop_A, 0.0)
    start = rng.uniform(0, cell_A, (n_mobile, 3))
    mob = start[None] + np.concatenate([np.zeros((1, n_mobile, 3)), np.cumsum(steps, axis=0)])
    mob += rng.normal(0, vib_A, mob.shape)
    fw0 = rng.uniform(0, cell_A, (n_frame, 3))
    fw = fw0[None] + rng.normal(0, vib_A, (n_frames, n_frame, 3))
    positions = np.concatenate([mob, fw], axis=1)
    symbols = ["Na"] * n_mobile + ["Cl"] * n_frame
    return symbols, np.eye(3) * cell_A, positions
