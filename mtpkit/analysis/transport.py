"""MSD → D → σ with pymatgen-analysis-diffusion, replica averaging and bounded memory.

What comes from ``pymatgen.analysis.diffusion.analyzer`` (read its source):

* :class:`DiffusionAnalyzer` ("max" smoothing): drift correction by the mean
  displacement of the framework (all non-mobile atoms), multi-time-origin MSD by
  FFT, the charge (collective) MSCD ``|Σ_i Δr_i|² / N``, lags from 1 ps up to
  ``min(N·n_frames/min_obs, n_frames)`` frames on ≤ 200 points;
* :func:`get_diffusivity_from_msd`: D = slope/6 of a least-squares line through
  MSD(t), weighted by 1/t (its error estimate in this mode is ~100x too small, see
  :func:`_fit`).

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
  average is fitted.
* **error bars from the statistics of the displacements** (not from the residuals
  of the MSD line, whose points are strongly correlated: that "fit error" is kept
  as ``D_fit_err`` for reference only):

  - tracer D: the fit is linear in the MSD, so D is exactly the mean of the
    per-ion D_i (each ion's own multi-origin MSD fitted with the same lags and
    weights).  With the ions independent, the standard error of D is
    std(D_i)/sqrt(N) (``D_ion_sem``; pooled over replicas as sqrt(Σ SE_r²)/R).
    This holds for any displacement statistics: a run with few hops gives a
    widely spread D_i and a large error (the 1/sqrt(N_eff hops) behaviour of
    He et al., npj Comput. Mater. 4, 18 (2018)) without having to know a jump
    length;
  - charge D (one collective displacement per replica): the relative standard
    deviation of D fitted in the same way from one Gaussian random walk of the same
    length (``D_charge_walk_rel_err``, by Monte Carlo, cached per lag grid), times
    the replica-mean D_charge, over sqrt(R);
  - replicas: ``D_err = max(ion/walk estimate, standard error of the replica
    D's)``, the truncated random-effects estimate of the error of a mean of R
    replicas (the replica scatter takes over when the replicas differ by more than
    their own statistics allow, e.g. unequilibrated or non-ergodic runs).

* **Nernst–Einstein** σ = N z² e² D / (V k_B T) with :mod:`scipy.constants`, with
  the **mean NPT volume** (DiffusionAnalyzer uses the first frame's volume).
* a user-chosen fit window, reported with every result.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import constants

from mtpkit.analysis.linefit import weighted_line_fit
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
    "ion_charge",
    "load_replica",
]

DEFAULT_MAX_FRAMES = 10000
MIN_FIT_POINTS = 5
#: fs in a ps (a unit definition, exact).
FS_PER_PS = 1000.0
#: Å²/fs in cm²/s (0.1).
A2_PER_FS_TO_CM2_PER_S = (constants.angstrom / constants.centi) ** 2 / constants.femto
#: Gaussian random walks simulated for the relative error of a collective (charge) D.
N_WALKS = 1024
#: Frames of those walks at most (longer runs are simulated on every m-th frame).
WALK_MAX_FRAMES = 501


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
        return (self.n_frames - 1) * self.frame_interval_fs / FS_PER_PS


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
    """DiffusionAnalyzer's curves and results for one replica (times in fs, MSD in Å²).

    ``msd_ions``: (N_mobile, n_lags) multi-origin MSD of each mobile ion (Å²).
    """

    label: str
    dt_fs: np.ndarray
    msd: np.ndarray
    mscd: np.ndarray
    msd_components: np.ndarray
    msd_ions: np.ndarray
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
                 f"({(n - 1) * data.frame_interval_fs / FS_PER_PS:.2f} ps) are too few for lags "
                 "from 1 ps; run longer")
    # DiffusionAnalyzer (smoothed="max") fits lags from 1 ps: it needs a few beyond that
    if (n - 1) * data.frame_interval_fs < FS_PER_PS + 3 * data.frame_interval_fs:
        raise UserError(too_short)
    try:
        da = DiffusionAnalyzer(structure, disp, data.species, data.temperature_K,
                               time_step=data.frame_interval_fs, step_skip=1, smoothed="max",
                               min_obs=min_obs)
    except (ValueError, IndexError) as exc:  # IndexError: a fit over too few lags inside pymatgen
        raise UserError(f"{too_short} ({type(exc).__name__}: {exc})") from None
    out = ReplicaMSD(label=data.label, dt_fs=np.asarray(da.dt, float), msd=np.asarray(da.msd),
                     mscd=np.asarray(da.mscd), msd_components=np.asarray(da.msd_components),
                     msd_ions=np.array(da.sq_disp_ions[:data.n_mobile], float),
                     D_da=float(da.diffusivity), D_da_std=float(da.diffusivity_std_dev),
                     D_charge_da=float(da.chg_diffusivity), n_frames=n,
                     mean_volume_A3=data.mean_volume_A3)
    del da
    return out


def ion_charge(species: str) -> int:
    """Charge (e) of a mobile ion: its only common oxidation state (pymatgen's element data).

    Raises :class:`UserError` when the element has several (or none); pass the charge then.
    """
    from pymatgen.core import Element

    try:
        states = Element(species).common_oxidation_states
    except ValueError:
        raise UserError(f"unknown element {species!r}") from None
    if len(states) != 1:
        raise UserError(f"{species} has common oxidation states {list(states)}: give the ion's charge "
                        "(--charge)")
    return int(states[0])


def conversion_factor_S_cm(n_mobile: int, volume_A3: float, species: str, temperature_K: float,
                           charge: float | None = None) -> float:
    """Nernst–Einstein σ/D = N z² e² / (V k_B T) in (S/cm)/(cm²/s).

    ``n_mobile`` ions of charge ``charge`` (e; default :func:`ion_charge`, +1 for Na) in
    ``volume_A3`` Å³ at ``temperature_K`` K; constants from :mod:`scipy.constants`.
    """
    z = ion_charge(species) if charge is None else charge
    n_per_cm3 = n_mobile / (volume_A3 * (constants.angstrom / constants.centi) ** 3)
    return float(n_per_cm3 * (z * constants.e) ** 2 / (constants.k * temperature_K))


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
    D_ion_sem: float
    D_err_source: str
    D_replicas: list[float]
    sigma: float
    sigma_err: float
    D_charge: float
    D_charge_err: float
    D_charge_walk_rel_err: float
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
        keys = ["temperature_K", "species", "D", "D_err", "D_err_source", "D_ion_sem", "D_replica_sem",
                "D_fit_err", "D_fit_err_pymatgen", "D_replicas",
                "sigma", "sigma_err", "D_charge", "D_charge_err", "D_charge_walk_rel_err", "sigma_charge",
                "sigma_charge_err",
                "haven_ratio", "haven_ratio_err", "mean_volume_A3", "n_mobile", "frame_interval_fs",
                "n_frames", "duration_ps", "replicas", "notes"]
        out = {k: getattr(self, k) for k in keys}
        out["fit_window_ps"] = list(self.fit_window_ps)
        out["units"] = {"D": "cm^2/s", "sigma": "S/cm", "volume": "A^3", "time": "ps"}
        return out


def _fit(msd: np.ndarray, dt: np.ndarray) -> tuple[float, float, float]:
    """(D, slope-fit error, pymatgen's D "std dev") in cm²/s from MSD (Å²) vs t (fs).

    D is pymatgen's :func:`get_diffusivity_from_msd` (smoothed="max": 1/t weights).
    Its error in that mode combines the *weighted* residual with the unweighted slope
    formula, which understates the error by roughly sqrt(t/fs) (≈100x at ps lags).  The
    second number is the standard error of the slope of the same weighted fit,
    sqrt[(XᵀWX)⁻¹ χ²/(n−2)]/6: still far too small, because the MSD points at different
    lags share the same displacements (their errors are correlated); it is reported for
    reference, the error of D comes from :func:`_ion_D` / :func:`_walk_rel_err`.
    """
    from pymatgen.analysis.diffusion.analyzer import get_diffusivity_from_msd

    d, err_lib = get_diffusivity_from_msd(msd, dt, smoothed="max")
    line = weighted_line_fit(dt, msd, 1.0 / dt)
    var = line.cov_unscaled[1, 1] * line.chi2 / max(line.dof, 1)
    return float(d), float(np.sqrt(var) / 6.0 * A2_PER_FS_TO_CM2_PER_S), float(err_lib)


def _ion_D(msd_ions: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """D (cm²/s) of each ion from its own MSD (Å², (N, n_lags)) vs t (fs), fitted as :func:`_fit`.

    The weighted fit is linear in the MSD, so their mean is the D of the mean MSD.
    """
    return weighted_line_fit(dt, msd_ions.T, 1.0 / dt).slope / 6.0 * A2_PER_FS_TO_CM2_PER_S


def _msd_fft(x: np.ndarray) -> np.ndarray:
    """Multi-origin MSD of trajectories ``x`` (walkers, n_frames, 3) at every lag 0…n−1 (summed over axes)."""
    n = x.shape[1]
    sq = np.sum(x * x, axis=2)  # (walkers, n)
    total = 2.0 * sq.sum(axis=1, keepdims=True)
    # Σ_t |x(t+k)|² + |x(t)|² over the n−k origins, from running sums of both ends
    head = np.concatenate([np.zeros((len(x), 1)), np.cumsum(sq, axis=1)[:, :-1]], axis=1)
    tail = np.concatenate([np.zeros((len(x), 1)), np.cumsum(sq[:, ::-1], axis=1)[:, :-1]], axis=1)
    f = np.fft.rfft(x, n=2 * n, axis=1)
    acf = np.fft.irfft(f * f.conj(), n=2 * n, axis=1)[:, :n].sum(axis=2)
    return (total - head - tail - 2.0 * acf) / (n - np.arange(n))


@lru_cache(maxsize=16)
def _walk_rel_err(n_frames: int, lags: tuple[int, ...], n_walks: int = N_WALKS, seed: int = 0,
                  max_points: int = WALK_MAX_FRAMES) -> float:
    """Relative standard deviation of D fitted as in :func:`_fit` (lags in frames, 1/t weights)
    from a single Gaussian 3-D random walk of ``n_frames`` frames (Monte Carlo, fixed seed).

    Longer runs are simulated on every m-th frame (at most ``max_points`` frames, lags
    rounded to multiples of m): the error is scale-free, and time origins m frames apart
    carry almost all the information of every frame when m is small next to the lags.
    """
    rng = np.random.default_rng(seed)
    m = max(1, math.ceil((n_frames - 1) / (max_points - 1)))
    n_frames = (n_frames - 1) // m + 1
    lag = np.clip(np.rint(np.asarray(lags, float) / m).astype(int), 1, n_frames - 1)
    slopes = []
    for start in range(0, n_walks, 256):
        w = min(256, n_walks - start)
        steps = rng.standard_normal((w, n_frames - 1, 3))  # unit variance per frame and axis
        x = np.concatenate([np.zeros((w, 1, 3)), np.cumsum(steps, axis=1)], axis=1)
        slopes.append(weighted_line_fit(lag, _msd_fft(x)[:, lag].T, 1.0 / lag).slope)
    return float(np.std(np.concatenate(slopes), ddof=1) / 3.0)  # true MSD slope: 3 per frame


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
        mask = (dt >= lo * FS_PER_PS - 1e-9) & (dt <= hi * FS_PER_PS + 1e-9)
        if mask.sum() < MIN_FIT_POINTS:
            raise UserError(f"fit window {lo:g}-{hi:g} ps holds {int(mask.sum())} MSD points (need "
                            f"{MIN_FIT_POINTS}); the lags available are {dt[0] / FS_PER_PS:g}-"
                            f"{dt[-1] / FS_PER_PS:g} ps")
    msd_all = np.array([c.msd for c in curves])
    mscd_all = np.array([c.mscd for c in curves])
    msd_mean = msd_all.mean(axis=0)
    mscd_mean = mscd_all.mean(axis=0)
    D, D_fit, D_fit_lib = _fit(msd_mean[mask], dt[mask])
    Dc, _, _ = _fit(mscd_mean[mask], dt[mask])
    D_reps = [_fit(c.msd[mask], dt[mask])[0] for c in curves]
    Dc_reps = [_fit(c.mscd[mask], dt[mask])[0] for c in curves]
    R = len(curves)
    sem = float(np.std(D_reps, ddof=1) / math.sqrt(R)) if R > 1 else 0.0
    sem_c = float(np.std(Dc_reps, ddof=1) / math.sqrt(R)) if R > 1 else 0.0
    lags = tuple(int(k) for k in np.rint(dt[mask] / first.frame_interval_fs))
    walk_rel = _walk_rel_err(n, lags)
    if first.n_mobile > 1:  # spread of the per-ion D's, ions independent
        ion_se = [float(np.std(_ion_D(c.msd_ions[:, mask], dt[mask]), ddof=1)) / math.sqrt(first.n_mobile)
                  for c in curves]
        ion_sem = math.sqrt(sum(e * e for e in ion_se)) / R
    else:  # one ion: a single walk
        ion_sem = walk_rel * D / math.sqrt(R)
    D_err = max(ion_sem, sem)
    D_err_source = "replicas" if sem > ion_sem else "ions"
    Dc_err = max(walk_rel * Dc / math.sqrt(R), sem_c)
    if R == 1:
        notes.append("one replica: D error from the spread of the per-ion D's alone (ions taken as "
                     "independent; no replica scatter to check it)")
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
        D_fit_err_pymatgen=D_fit_lib, D_replica_sem=sem, D_ion_sem=ion_sem, D_err_source=D_err_source,
        D_replicas=D_reps, sigma=D * conv, sigma_err=D_err * conv, D_charge=Dc, D_charge_err=Dc_err,
        D_charge_walk_rel_err=walk_rel,
        sigma_charge=Dc * conv, sigma_charge_err=Dc_err * conv, haven_ratio=haven, haven_ratio_err=haven_err,
        mean_volume_A3=volume, n_mobile=first.n_mobile,
        fit_window_ps=(float(dt[mask][0] / FS_PER_PS), float(dt[mask][-1] / FS_PER_PS)),
        frame_interval_fs=first.frame_interval_fs, n_frames=n,
        duration_ps=(n - 1) * first.frame_interval_fs / FS_PER_PS, replicas=rep_info, notes=notes,
        t_ps=dt / FS_PER_PS, msd_mean=msd_mean, msd_replicas=msd_all, mscd_mean=mscd_mean)

