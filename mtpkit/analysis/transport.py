"""MSD → D → σ with pymatgen-analysis-diffusion, replica averaging and bounded memory.

What comes from ``pymatgen.analysis.diffusion.analyzer`` (read its source):

* :class:`DiffusionAnalyzer` ("max" smoothing): drift correction by the mean
  displacement of the framework (all non-mobile atoms), multi-time-origin MSD by
  FFT, the charge (collective) MSCD ``|Σ_i Δr_i|² / N``, lags from 1 ps up to
  ``min(N·n_frames/min_obs, n_frames)`` frames on ≤ 200 points;
* :func:`get_diffusivity_from_msd`: D = slope/6 of a least-squares line through
  MSD(t), weighted by 1/t (its error estimate in this mode is ~100x too small, see
  :func:`_fit`; the weighted slope's standard error is used instead);
* :func:`get_conversion_factor`: Nernst–Einstein σ = N z² e² D / (V k_B T)
  (z from the oxidation state or the valence electrons: 1 for Na).

What this module adds:

* **streaming, bounded memory** — frames are streamed from the file and reduced
  on the fly to the mobile-ion displacements plus one pseudo-atom carrying the
  framework's mean displacement (the very quantity DiffusionAnalyzer subtracts as
  drift, so its results are unchanged).  At most ``max_frames`` frames are kept
  (an evenly strided subset when the file has more; the stride is reported).
  Peak memory per replica ≈ ``max_frames × (N_mobile + 1) × 3 × 8 B × 6``
  (the kept array plus DiffusionAnalyzer's drift-corrected copy, FFT work and
  output), e.g. 10 000 frames × 73 atoms → ≈ 0.1 GB, independent of the
  trajectory length; plus one frame and the 16 MiB scan buffer.
* **replica ("stepwise") averaging** — the MSD(t) and MSCD(t) curves of
  independent replicas at one temperature are averaged point by point and the
  average is fitted; D_err combines the standard error of the replica D's and
  the fit error in quadrature.
* **mean NPT volume** for σ (DiffusionAnalyzer uses the first frame's volume).
* a user-chosen fit window, reported with every result.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mtpkit.analysis.trajectory import iter_unwrapped, open_trajectory
from mtpkit.errors import UserError

__all__ = [
    "DEFAULT_MAX_FRAMES",
    "ReplicaData",
    "ReplicaMSD",
    "TemperatureResult",
    "analyze_replica",
    "analyze_temperature",
    "conversion_factor_S_cm",
    "load_replica",
]

DEFAULT_MAX_FRAMES = 10000
MIN_FIT_POINTS = 5


@dataclass
class ReplicaData:
    """One replica reduced to what transport needs (see the module docstring for memory).

    ``disp``: (N_mobile, n, 3) Å unwrapped displacements from the first kept frame;
    ``framework_disp``: (n, 3) Å mean displacement of all other atoms;
    ``frame_interval_fs``: time between kept frames (file interval × stride).
    """

    path: str
    label: str
    species: str
    temperature_K: float
    frame_interval_fs: float
    stride: int
    n_frames_file: int
    disp: np.ndarray
    framework_disp: np.ndarray
    mean_volume_A3: float
    volume_std_A3: float
    framework_symbol: str
    truncated: bool = False

    @property
    def n_frames(self) -> int:
        return self.disp.shape[1]

    @property
    def n_mobile(self) -> int:
        return self.disp.shape[0]

    @property
    def duration_ps(self) -> float:
        return (self.n_frames - 1) * self.frame_interval_fs / 1000.0


def load_replica(path: str | os.PathLike, species: str, temperature_K: float, frame_interval_fs: float,
                 max_frames: int = DEFAULT_MAX_FRAMES, type_map: Sequence[str] | None = None,
                 format: str | None = None, label: str | None = None,
                 min_frames: int = 20) -> ReplicaData:
    """Stream one trajectory into a :class:`ReplicaData` (memory bounded by ``max_frames``).

    ``frame_interval_fs``: time between frames saved in the file (fs).
    Raises :class:`UserError` for a missing species, too few frames, or jumps
    between frames larger than half a cell.
    """
    if frame_interval_fs <= 0:
        raise UserError(f"the frame interval must be positive, got {frame_interval_fs} fs")
    if temperature_K <= 0:
        raise UserError(f"{path}: temperature must be positive, got {temperature_K} K")
    traj = open_trajectory(path, format=format, type_map=type_map)
    symbols = np.array(traj.symbols)
    mobile = symbols == species
    if not mobile.any():
        raise UserError(f"{path}: no {species} atoms in the trajectory (it has "
                        f"{sorted(set(traj.symbols))}); pass the mobile species with --species")
    if mobile.all():
        raise UserError(f"{path}: only {species} atoms; the drift correction needs framework atoms")
    if traj.n_frames < min_frames:
        raise UserError(f"{path}: {traj.n_frames} frames, fewer than the {min_frames} the MSD fit "
                        "needs; run longer or save frames more often")
    stride = max(1, math.ceil(traj.n_frames / max_frames))
    n_keep = (traj.n_frames - 1) // stride + 1
    disp = np.empty((int(mobile.sum()), n_keep, 3))
    fw = np.empty((n_keep, 3))
    volumes = np.empty(n_keep)
    fw_mask = ~mobile
    ref = None
    k = 0
    for frame in iter_unwrapped(traj, stride=stride):
        if ref is None:
            ref = frame.positions.copy()
        d = frame.positions - ref
        disp[:, k] = d[mobile]
        fw[k] = d[fw_mask].mean(axis=0)
        volumes[k] = abs(np.linalg.det(frame.cell))
        k += 1
    if k != n_keep:
        raise UserError(f"{path}: expected {n_keep} frames, read {k}")
    fw_sym = str(symbols[fw_mask][0])
    return ReplicaData(path=str(path), label=label or Path(path).name, species=species,
                       temperature_K=float(temperature_K), frame_interval_fs=frame_interval_fs * stride,
                       stride=stride, n_frames_file=traj.n_frames, disp=disp, framework_disp=fw,
                       mean_volume_A3=float(volumes.mean()), volume_std_A3=float(volumes.std()),
                       framework_symbol=fw_sym, truncated=traj.truncated)


@dataclass
class ReplicaMSD:
    """DiffusionAnalyzer's curves and results for one replica (times in fs, MSD in Å²)."""

    label: str
    dt_fs: np.ndarray
    msd: np.ndarray
    mscd: np.ndarray
    msd_components: np.ndarray
    D_da: float
    D_da_std: float
    D_charge_da: float
    n_frames: int
    mean_volume_A3: float


def _structure_for(data: ReplicaData, volume_A3: float):
    """A pymatgen Structure with the replica's atom count (mobile + 1 framework pseudo-atom)."""
    from pymatgen.core import Lattice, Structure

    length = volume_A3 ** (1.0 / 3.0)
    n = data.n_mobile
    coords = (np.arange(n + 1)[:, None] * np.array([0.37, 0.61, 0.83])) % 1.0
    return Structure(Lattice.cubic(length), [data.species] * n + [data.framework_symbol], coords)


def analyze_replica(data: ReplicaData, n_frames: int | None = None, min_obs: int = 30) -> ReplicaMSD:
    """Run :class:`DiffusionAnalyzer` (smoothed="max") on one replica's first ``n_frames`` frames."""
    from pymatgen.analysis.diffusion.analyzer import DiffusionAnalyzer

    n = data.n_frames if n_frames is None else n_frames
    disp = np.concatenate([data.disp[:, :n], data.framework_disp[None, :n]], axis=0)
    structure = _structure_for(data, data.mean_volume_A3)
    too_short = (f"{data.path}: {n} frames of {data.frame_interval_fs:g} fs "
                 f"({(n - 1) * data.frame_interval_fs / 1000:.2f} ps) are too few for lags "
                 "from 1 ps; run longer")
    # DiffusionAnalyzer (smoothed="max") fits lags from 1 ps: it needs a few beyond that
    if (n - 1) * data.frame_interval_fs < 1000.0 + 3 * data.frame_interval_fs:
        raise UserError(too_short)
    try:
        da = DiffusionAnalyzer(structure, disp, data.species, data.temperature_K,
                               time_step=data.frame_interval_fs, step_skip=1, smoothed="max",
                               min_obs=min_obs)
    except (ValueError, IndexError) as exc:  # IndexError: a fit over too few lags inside pymatgen
        raise UserError(f"{too_short} ({type(exc).__name__}: {exc})") from None
    out = ReplicaMSD(label=data.label, dt_fs=np.asarray(da.dt, float), msd=np.asarray(da.msd),
                     mscd=np.asarray(da.mscd), msd_components=np.asarray(da.msd_components),
                     D_da=float(da.diffusivity), D_da_std=float(da.diffusivity_std_dev),
                     D_charge_da=float(da.chg_diffusivity), n_frames=n,
                     mean_volume_A3=data.mean_volume_A3)
    del da
    return out


def conversion_factor_S_cm(n_mobile: int, volume_A3: float, species: str, temperature_K: float,
                           charge: float | None = None) -> float:
    """Nernst–Einstein σ/D in (S/cm)/(cm²/s), via pymatgen's :func:`get_conversion_factor`.

    ``charge``: the ion's charge in e (default: pymatgen's guess, the valence electrons).
    """
    from pymatgen.analysis.diffusion.analyzer import get_conversion_factor
    from pymatgen.core import Element, Lattice, Structure

    structure = Structure(Lattice.cubic(volume_A3 ** (1.0 / 3.0)), [species] * n_mobile,
                          (np.arange(n_mobile)[:, None] * np.array([0.37, 0.61, 0.83])) % 1.0)
    factor = get_conversion_factor(structure, species, temperature_K) / 1000.0  # mS/cm -> S/cm
    if charge is not None:
        z_lib = Element(species).full_electronic_structure[-1][2]
        factor *= (charge / z_lib) ** 2
    return float(factor)


@dataclass
class TemperatureResult:
    """Transport at one temperature from its replicas (D in cm²/s, σ in S/cm, times in ps)."""

    temperature_K: float
    species: str
    D: float
    D_err: float
    D_fit_err: float
    D_fit_err_pymatgen: float
    D_replica_sem: float
    D_replicas: list[float]
    sigma: float
    sigma_err: float
    D_charge: float
    D_charge_err: float
    sigma_charge: float
    sigma_charge_err: float
    haven_ratio: float
    haven_ratio_err: float
    mean_volume_A3: float
    n_mobile: int
    fit_window_ps: tuple[float, float]
    frame_interval_fs: float
    n_frames: int
    duration_ps: float
    replicas: list[dict]
    notes: list[str] = field(default_factory=list)
    t_ps: np.ndarray | None = None
    msd_mean: np.ndarray | None = None
    msd_replicas: np.ndarray | None = None
    mscd_mean: np.ndarray | None = None

    def to_dict(self) -> dict:
        """JSON-ready summary (curves omitted)."""
        keys = ["temperature_K", "species", "D", "D_err", "D_fit_err", "D_fit_err_pymatgen", "D_replica_sem",
                "D_replicas",
                "sigma", "sigma_err", "D_charge", "D_charge_err", "sigma_charge", "sigma_charge_err",
                "haven_ratio", "haven_ratio_err", "mean_volume_A3", "n_mobile", "frame_interval_fs",
                "n_frames", "duration_ps", "replicas", "notes"]
        out = {k: getattr(self, k) for k in keys}
        out["fit_window_ps"] = list(self.fit_window_ps)
        out["units"] = {"D": "cm^2/s", "sigma": "S/cm", "volume": "A^3", "time": "ps"}
        return out


def _fit(msd: np.ndarray, dt: np.ndarray) -> tuple[float, float, float]:
    """(D, D standard error, pymatgen's D "std dev") in cm²/s from MSD (Å²) vs t (fs).

    D is pymatgen's :func:`get_diffusivity_from_msd` (smoothed="max": 1/t weights).
    Its error in that mode combines the *weighted* residual with the unweighted slope
    formula, which understates the error by roughly sqrt(t/fs) (≈100x at ps lags); the
    error used here is the standard error of the slope of the same weighted fit,
    sqrt[(XᵀWX)⁻¹₀₀ χ²/(n−2)] / 60.  pymatgen's number is kept for reference.
    """
    from pymatgen.analysis.diffusion.analyzer import get_diffusivity_from_msd

    d, err_lib = get_diffusivity_from_msd(msd, dt, smoothed="max")
    w = 1.0 / dt
    X = np.column_stack([dt, np.ones_like(dt)])
    xtwx = X.T @ (X * w[:, None])
    beta = np.linalg.solve(xtwx, X.T @ (w * msd))
    chi2 = float(np.sum(w * (msd - X @ beta) ** 2))
    var = np.linalg.inv(xtwx)[0, 0] * chi2 / max(len(dt) - 2, 1)
    return float(d), float(np.sqrt(var) / 60.0), float(err_lib)


def analyze_temperature(replicas: Sequence[ReplicaData], fit_window_ps: tuple[float, float] | None = None,
                        charge: float | None = None, min_obs: int = 30,
                        temperature_tolerance_K: float = 1e-6) -> TemperatureResult:
    """Replica-averaged ("stepwise averaged") MSD → D, σ (tracer and charge), Haven ratio.

    ``fit_window_ps``: (start, end) lag window in ps for the line fit; default the
    whole DiffusionAnalyzer lag grid (1 ps to the run length).  Replicas must share
    the temperature, species, atom count and frame interval; longer ones are cut
    to the shortest (noted).
    """
    if not replicas:
        raise UserError("no trajectories to analyse")
    first = replicas[0]
    temps = [r.temperature_K for r in replicas]
    if max(temps) - min(temps) > temperature_tolerance_K:
        raise UserError(f"replicas grouped together have different temperatures {sorted(set(temps))} K "
                        f"({', '.join(r.path for r in replicas)}); give each its own --temperature group")
    for r in replicas[1:]:
        if r.species != first.species or r.n_mobile != first.n_mobile:
            raise UserError(f"{r.path}: {r.n_mobile} {r.species} atoms but {first.path} has "
                            f"{first.n_mobile} {first.species}; replicas must be the same system")
        if abs(r.frame_interval_fs - first.frame_interval_fs) > 1e-9 * first.frame_interval_fs:
            raise UserError(f"{r.path}: frame interval {r.frame_interval_fs:g} fs (after stride "
                            f"{r.stride}) differs from {first.path} ({first.frame_interval_fs:g} fs); "
                            "save frames at the same interval or pass the same --max-frames")
    notes: list[str] = []
    n = min(r.n_frames for r in replicas)
    if any(r.n_frames != n for r in replicas):
        notes.append(f"replicas of unequal length: all cut to the shortest ({n} frames)")
    for r in replicas:
        if r.stride > 1:
            notes.append(f"{r.label}: 1 in {r.stride} of {r.n_frames_file} frames used "
                         f"(max_frames bound)")
        if r.truncated:
            notes.append(f"{r.label}: last frame incomplete (unfinished run), dropped")
    T = first.temperature_K
    curves = [analyze_replica(r, n, min_obs) for r in replicas]
    dt = curves[0].dt_fs
    if fit_window_ps is None:
        mask = np.ones_like(dt, bool)
    else:
        lo, hi = fit_window_ps
        mask = (dt >= lo * 1000 - 1e-9) & (dt <= hi * 1000 + 1e-9)
        if mask.sum() < MIN_FIT_POINTS:
            raise UserError(f"fit window {lo:g}-{hi:g} ps holds {int(mask.sum())} MSD points (need "
                            f"{MIN_FIT_POINTS}); the lags available are {dt[0] / 1000:g}-"
                            f"{dt[-1] / 1000:g} ps")
    msd_all = np.array([c.msd for c in curves])
    mscd_all = np.array([c.mscd for c in curves])
    msd_mean = msd_all.mean(axis=0)
    mscd_mean = mscd_all.mean(axis=0)
    D, D_fit, D_fit_lib = _fit(msd_mean[mask], dt[mask])
    Dc, Dc_fit, _ = _fit(mscd_mean[mask], dt[mask])
    D_reps = [_fit(c.msd[mask], dt[mask])[0] for c in curves]
    Dc_reps = [_fit(c.mscd[mask], dt[mask])[0] for c in curves]
    R = len(curves)
    sem = float(np.std(D_reps, ddof=1) / math.sqrt(R)) if R > 1 else 0.0
    sem_c = float(np.std(Dc_reps, ddof=1) / math.sqrt(R)) if R > 1 else 0.0
    D_err = math.hypot(sem, D_fit)
    Dc_err = math.hypot(sem_c, Dc_fit)
    if R == 1:
        notes.append("one replica: D error is the MSD-fit error only (no replica spread)")
    volume = float(np.mean([r.mean_volume_A3 for r in replicas]))
    conv = conversion_factor_S_cm(first.n_mobile, volume, first.species, T, charge)
    haven = D / Dc if Dc > 0 else float("nan")
    haven_err = (abs(haven) * math.hypot(D_err / D if D > 0 else 0.0, Dc_err / Dc if Dc > 0 else 0.0)
                 if Dc > 0 else float("nan"))
    rep_info = []
    for r, c, dr, dcr in zip(replicas, curves, D_reps, Dc_reps):
        rep_info.append({"label": r.label, "path": r.path, "D": dr, "D_charge": dcr,
                         "D_diffusionanalyzer_full_window": c.D_da, "n_frames_file": r.n_frames_file,
                         "stride": r.stride, "n_frames_used": n, "mean_volume_A3": r.mean_volume_A3,
                         "volume_std_A3": r.volume_std_A3, "truncated": r.truncated})
    return TemperatureResult(
        temperature_K=T, species=first.species, D=D, D_err=D_err, D_fit_err=D_fit,
        D_fit_err_pymatgen=D_fit_lib, D_replica_sem=sem,
        D_replicas=D_reps, sigma=D * conv, sigma_err=D_err * conv, D_charge=Dc, D_charge_err=Dc_err,
        sigma_charge=Dc * conv, sigma_charge_err=Dc_err * conv, haven_ratio=haven, haven_ratio_err=haven_err,
        mean_volume_A3=volume, n_mobile=first.n_mobile,
        fit_window_ps=(float(dt[mask][0] / 1000), float(dt[mask][-1] / 1000)),
        frame_interval_fs=first.frame_interval_fs, n_frames=n,
        duration_ps=(n - 1) * first.frame_interval_fs / 1000, replicas=rep_info, notes=notes,
        t_ps=dt / 1000, msd_mean=msd_mean, msd_replicas=msd_all, mscd_mean=mscd_mean)

