"""Transport plots (matplotlib, Agg backend): MSD with the fit window, Arrhenius with regimes.

Each figure is written as PNG and SVG next to each other.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mtpkit.analysis.arrhenius import ArrheniusFit
from mtpkit.analysis.transport import TemperatureResult

__all__ = ["plot_arrhenius", "plot_descriptors", "plot_msd"]


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, stem: str | os.PathLike, formats: Sequence[str] = ("png", "svg"),
                dpi: int = 150) -> list[str]:
    """Write ``fig`` as ``stem.<format>`` for each format, atomically; returns the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in formats:
        path = stem.with_suffix(f".{ext}")
        tmp = path.with_name(f".{path.name}.tmp")
        fig.savefig(tmp, format=ext, dpi=dpi, bbox_inches="tight")
        os.replace(tmp, path)
        paths.append(str(path))
    return paths



def plot_msd(results: Sequence[TemperatureResult], stem: str | os.PathLike, title: str = "") -> list[str]:
    """MSD (Å²) vs lag time (ps) per temperature: replica mean (line), replicas (thin), fit window
    (shaded).  Returns the written file paths."""
    plt = _figure()
    n = len(results)
    ncol = min(n, 3)
    nrow = (n + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
    for ax, res in zip(axes.ravel(), results):
        t = res.t_ps
        for curve in res.msd_replicas:
            ax.plot(t, curve, lw=0.6, alpha=0.5, color="0.5")
        ax.plot(t, res.msd_mean, color="C0", lw=1.6, label="replica mean")
        lo, hi = res.fit_window_ps
        ax.axvspan(lo, hi, color="C1", alpha=0.15, label="fit window")
        # the fitted line: MSD = 6 D t + c, D in cm²/s -> Å²/ps: × 1e4
        mask = (t >= lo) & (t <= hi)
        slope = 6 * res.D * 1e4
        c = float(np.mean(res.msd_mean[mask] - slope * t[mask]))
        ax.plot(t[mask], slope * t[mask] + c, "--", color="C3", lw=1.0, label="fit")
        ax.set_title(f"{res.temperature_K:g} K: D = {res.D:.2e} ± {res.D_err:.1e} cm²/s", fontsize=9)
        ax.set_xlabel("t (ps)")
        ax.set_ylabel(f"MSD {res.species} (Å²)")
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    paths = save_figure(fig, Path(stem))
    plt.close(fig)
    return paths


def plot_arrhenius(results: Sequence[TemperatureResult], fit: ArrheniusFit | None,
                   stem: str | os.PathLike, title: str = "") -> list[str]:
    """D (or σT) vs 1000/T on a log axis with error bars and each regime's line and Ea."""
    plt = _figure()
    T = np.array([r.temperature_K for r in results])
    if fit is not None and fit.quantity == "sigmaT":
        y = np.array([r.sigma * r.temperature_K for r in results])
        yerr = np.array([r.sigma_err * r.temperature_K for r in results])
        ylabel = "σT (S K/cm)"
    else:
        y = np.array([r.D for r in results])
        yerr = np.array([r.D_err for r in results])
        ylabel = f"D {results[0].species if results else ''} (cm²/s)"
    fig, ax = plt.subplots(figsize=(5, 4))
    ok = y > 0
    ax.errorbar(1000 / T[ok], y[ok], yerr=yerr[ok], fmt="o", color="k", ms=4, capsize=2, label="MD")
    if fit is not None:
        for k, reg in enumerate(fit.regimes):
            tt = np.linspace(reg.T_min_K, reg.T_max_K, 50)
            ax.plot(1000 / tt, np.exp(reg.ln_y(tt)), "-", color=f"C{k}",
                    label=f"{reg.T_min_K:g}–{reg.T_max_K:g} K: Ea = {reg.Ea_eV:.3f} ± {reg.Ea_err_eV:.3f} eV")
            if fit.breakpoint_K:  # dashed continuation of each line up to the breakpoint
                edge = reg.T_max_K if k == 0 else reg.T_min_K
                te = np.linspace(edge, fit.breakpoint_K, 10)
                ax.plot(1000 / te, np.exp(reg.ln_y(te)), "--", color=f"C{k}", lw=0.8)
        if fit.breakpoint_K:
            ax.axvline(1000 / fit.breakpoint_K, color="0.6", ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("1000/T (1/K)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    paths = save_figure(fig, Path(stem))
    plt.close(fig)
    return paths


def plot_descriptors(descs_by_T: dict, stem: str | os.PathLike, title: str = "") -> list[str]:
    """O_oct(t) and the mean Cl angular displacement (deg) vs time (ps), one colour per temperature
    (replicas drawn separately)."""
    plt = _figure()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    for k, T in enumerate(sorted(descs_by_T)):
        for j, d in enumerate(descs_by_T[T]):
            lab = f"{T:g} K" if j == 0 else None
            if d.get("o_oct"):
                a1.plot(d["t_ps"], d["o_oct"]["series"], color=f"C{k % 10}", lw=0.8, label=lab)
            if d.get("cl_angle_deg"):
                a2.plot(d["t_ps"], d["cl_angle_deg"]["series"], color=f"C{k % 10}", lw=0.8, label=lab)
    a1.set_xlabel("t (ps)")
    a1.set_ylabel("O_oct (fraction of Na in octahedra)")
    a2.set_xlabel("t (ps)")
    a2.set_ylabel("Cl angular displacement (deg)")
    a1.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    paths = save_figure(fig, Path(stem))
    plt.close(fig)
    return paths
