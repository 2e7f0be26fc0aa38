"""Files of the conductivity analysis: results.json, results.md, CSV tables and plots.

Plain functions on the results document of :func:`mtpkit.analysis.analyze.analyze_runs`
and on its :class:`~mtpkit.analysis.analyze.TransportAnalysis` objects (one per system):

* :func:`write_results`: ``results.json``, ``transport.csv``, ``msd.csv``, ``results.md``;
* :func:`write_plots`: ``msd[_<system>]``, ``arrhenius[_<system>]`` and, with
  descriptors, ``descriptors[_<system>]`` as PNG and SVG;
* :func:`results_markdown`: the Markdown of ``results.md``.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mtpkit.io_utils import atomic_open, atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from mtpkit.analysis.analyze import TransportAnalysis

__all__ = ["CSV_FIELDS", "results_markdown", "write_msd_csv", "write_plots", "write_results", "write_transport_csv"]

CSV_FIELDS = ["system", "temperature_K", "D_cm2_s", "D_err_cm2_s", "D_fit_err_cm2_s", "D_replica_sem_cm2_s",
              "sigma_S_cm", "sigma_err_S_cm", "D_charge_cm2_s", "D_charge_err_cm2_s", "sigma_charge_S_cm",
              "haven_ratio", "haven_ratio_err", "mean_volume_A3", "n_replicas", "fit_start_ps",
              "fit_end_ps", "frame_interval_fs", "duration_ps"]


def write_results(output: Path, doc: dict, analyses: Sequence[TransportAnalysis]) -> None:
    """``results.json`` (``doc``), ``transport.csv``, ``msd.csv`` and ``results.md`` in ``output``."""
    atomic_write_json(output / "results.json", doc)
    write_transport_csv(output / "transport.csv", analyses)
    write_msd_csv(output / "msd.csv", analyses)
    atomic_write_text(output / "results.md", results_markdown(doc))


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_")


def write_plots(output: Path, analysis: TransportAnalysis) -> list[str]:
    """The system's MSD and Arrhenius plots (and descriptor plot); returns the MSD and Arrhenius files."""
    from mtpkit.analysis.plots import plot_arrhenius, plot_descriptors, plot_msd

    label = analysis.label
    suffix = f"_{_slug(label)}" if label else ""
    if analysis.descriptors_by_T is not None:
        plot_descriptors(analysis.descriptors_by_T, output / f"descriptors{suffix}", title=label)
    results = analysis.temperatures()
    paths = plot_msd(results, output / f"msd{suffix}", title=label)
    if len(results) >= 1:
        paths += plot_arrhenius(results, analysis.arrhenius()[1], output / f"arrhenius{suffix}", title=label)
    return paths


def write_transport_csv(path: Path, analyses: Sequence[TransportAnalysis]) -> None:
    """One row per system and temperature: D, σ, Haven ratio and their errors, fit window."""
    with atomic_open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_FIELDS)
        for a in analyses:
            for r in a.temperatures():
                w.writerow([a.label, r.temperature_K, r.D, r.D_err, r.D_fit_err, r.D_replica_sem, r.sigma,
                            r.sigma_err, r.D_charge, r.D_charge_err, r.sigma_charge, r.haven_ratio,
                            r.haven_ratio_err, r.mean_volume_A3, len(r.replicas), r.fit_window_ps[0],
                            r.fit_window_ps[1], r.frame_interval_fs, r.duration_ps])


def write_msd_csv(path: Path, analyses: Sequence[TransportAnalysis]) -> None:
    """Replica-mean MSD and MSCD curves (Å²) vs lag (ps), marking the lags inside the fit window."""
    with atomic_open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["system", "temperature_K", "t_ps", "msd_mean_A2", "mscd_mean_A2", "in_fit_window"])
        for a in analyses:
            for r in a.temperatures():
                lo, hi = r.fit_window_ps
                for t, m, c in zip(r.t_ps, r.msd_mean, r.mscd_mean):
                    w.writerow([a.label, r.temperature_K, f"{t:.6g}", f"{m:.8g}", f"{c:.8g}",
                                int(lo - 1e-9 <= t <= hi + 1e-9)])


# --------------------------------------------------------------------------- results.md


def _pm(v, e, fmt="{:.3e}") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{fmt.format(v)} ± {fmt.format(e)}"


def _host_cell(hosts: list[dict] | None) -> str:
    """``crystal 2, not solid 1``-style count of the replicas' host states."""
    if not hosts:
        return "—"
    return ", ".join(f"{k} {v}" for k, v in Counter(h.get("state") or "unchecked" for h in hosts).items())


def _temperature_table(temperatures: list[dict]) -> str:
    out = ["| T (K) | D (cm²/s) | σ (S/cm) | D_charge (cm²/s) | Haven ratio | replicas | fit window (ps) | host |\n",
           "|---|---|---|---|---|---|---|---|\n"]
    for r in temperatures:
        out.append(f"| {r['temperature_K']:g} | {_pm(r['D'], r['D_err'])} | {_pm(r['sigma'], r['sigma_err'])} "
                   f"| {_pm(r['D_charge'], r['D_charge_err'])} "
                   f"| {_pm(r['haven_ratio'], r['haven_ratio_err'], '{:.2f}')} "
                   f"| {len(r['replicas'])} | {r['fit_window_ps'][0]:.3g}–{r['fit_window_ps'][1]:.3g} "
                   f"| {_host_cell(r.get('host'))} |\n")
    return "".join(out)


def _arrhenius_section(arr: dict | None) -> str:
    if not (arr and arr["selected"]):
        return ""
    fit = arr[arr["selected"]]
    rng = fit.get("breakpoint_range_K")
    out = [f"\nArrhenius fit of {fit['quantity']} ({arr['selected'].replace('_', ' ')}"
           + (f", breakpoint {fit['breakpoint_K']:.0f} K" if fit["breakpoint_K"] else "")
           + (f" (between {rng[0]:g} and {rng[1]:g} K)" if rng else "") + "):\n\n",
           "| T range (K) | Ea (eV) | points |\n|---|---|---|\n"]
    for reg in fit["regimes"]:
        out.append(f"| {reg['T_min_K']:g}–{reg['T_max_K']:g} | {_pm(reg['Ea_eV'], reg['Ea_err_eV'], '{:.3f}')} "
                   f"| {reg['n_points']} |\n")
    sel = arr.get("selection")
    if sel and sel.get("p_value") is not None:
        out.append(f"\nTwo regimes vs one: F = {sel['F']:.3g}, p = {sel['p_value']:.3g} "
                   f"({sel['p_value_method']}; two regimes preferred when p < {sel['alpha']:g})\n")
    return "".join(out)


def _notes_section(doc: dict) -> str:
    per_T = [f"{s['label'] + ' ' if s['label'] else ''}{r['temperature_K']:g} K: {n}"
             for s in doc["systems"] for r in s["temperatures"] for n in r["notes"]]
    if not (doc["notes"] or per_T):
        return ""
    return "## Notes\n\n" + "".join(f"- {n}\n" for n in [*doc["notes"], *per_T])


def results_markdown(doc: dict) -> str:
    """``results.md``: skipped runs, per system the temperature and Arrhenius tables, σ(T), notes."""
    out = io.StringIO()
    out.write(f"# Conductivity of {doc['species']}\n\n")
    if doc["partial"]:
        out.write(f"**Partial sweep**: {len(doc['skipped'])} run(s) not analysed:\n\n")
        for s in doc["skipped"]:
            out.write(f"- `{s['run']}`: {s['reason']}\n")
        out.write("\n")
    for s in doc["systems"]:
        out.write(f"## {s['label'] or 'results'}\n\n")
        out.write(_temperature_table(s["temperatures"]))
        out.write(_arrhenius_section(s["arrhenius"]))
        ext = s["extrapolated"]
        if ext:
            out.write(f"\nσ({ext['T_K']:g} K) = {_pm(ext['sigma'], ext['sigma_err'])} S/cm "
                      f"(regime {ext['regime'] + 1}, Arrhenius extrapolation)\n")
        out.write("\n")
    out.write(_notes_section(doc))
    return out.getvalue()
