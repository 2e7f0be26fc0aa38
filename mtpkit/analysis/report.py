"""The whole conductivity analysis: runs → D, σ per temperature → Arrhenius → files.

:func:`analyze_runs` takes replica specifications grouped by system (structure
label), streams each trajectory (in parallel processes when ``workers`` > 1),
averages replicas per temperature, fits Arrhenius lines and extrapolates σ, and
writes into ``output``:

* ``results.json`` (schema ``mtpkit.conductivity/1``, documented in
  :func:`analyze_runs`), ``transport.csv`` (one row per system and temperature),
  ``msd.csv`` (replica-mean MSD/MSCD curves), ``results.md`` (Markdown tables);
* ``msd[_<system>].png/.svg`` and ``arrhenius[_<system>].png/.svg``.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mtpkit.analysis.arrhenius import MIN_POINTS, ArrheniusFit, extrapolate, fit_arrhenius
from mtpkit.analysis.framework import FRAMEWORK_MSD_THRESHOLD_A2, framework_check
from mtpkit.analysis.transport import (
    DEFAULT_MAX_FRAMES,
    TemperatureResult,
    analyze_temperature,
    conversion_factor_S_cm,
    load_replica,
)
from mtpkit.errors import UserError
from mtpkit.io_utils import atomic_open, atomic_write_json, atomic_write_text

__all__ = ["SCHEMA", "ReplicaSpec", "analyze_runs"]

SCHEMA = "mtpkit.conductivity/1"


@dataclass
class ReplicaSpec:
    """One trajectory to analyse: file, temperature (K), time between saved frames (fs)."""

    path: str
    temperature_K: float
    frame_interval_fs: float
    system: str = ""
    label: str = ""
    type_map: list[str] | None = None
    format: str | None = None
    measured_temperature_K: float | None = None
    notes: list[str] = field(default_factory=list)


def _load(args):
    spec, species, max_frames, descriptors, reference, host_check, host_msd_max_A2 = args
    rep = load_replica(spec.path, species, spec.temperature_K, spec.frame_interval_fs,
                       max_frames=max_frames, type_map=spec.type_map, format=spec.format,
                       label=spec.label or Path(spec.path).name)
    host = None
    if host_check:
        try:
            host = framework_check(spec.path, spec.frame_interval_fs, type_map=spec.type_map, mobile=(species,),
                                   format=spec.format, threshold_A2=host_msd_max_A2).to_dict() | {"label": rep.label}
        except UserError as exc:
            host = {"label": rep.label, "state": None, "error": str(exc)}
    desc = None
    if descriptors:
        from mtpkit.analysis.descriptors import trajectory_descriptors

        desc = trajectory_descriptors(spec.path, spec.frame_interval_fs, center=species,
                                      type_map=spec.type_map, format=spec.format, reference=reference)
        desc["label"] = rep.label
    return rep, desc, host


def _host_notes(label: str, T: float, hosts: list[dict]) -> list[str]:
    """Notes for the replicas of one temperature whose host is not (or not only) a vibrating crystal."""
    prefix = f"{label + ' ' if label else ''}{T:g} K: "
    notes = []
    bad = [h for h in hosts if h.get("state") == "not solid"]
    rot = [h for h in hosts if h.get("state") == "rotating octahedra"]
    if bad:
        notes.append(prefix + f"host NOT solid in {len(bad)} of {len(hosts)} replicas ("
                     + "; ".join(f"{h['label']}: {h['reason']}" for h in bad)
                     + "): D and σ there are not those of a crystal")
    if rot:
        notes.append(prefix + f"rotating octahedra in {len(rot)} of {len(hosts)} replicas (centres on site, "
                     "ligands keep their centre but move by more than the limit): still a solid")
    notes += [prefix + f"host check of {h['label']} failed: {h['error']}" for h in hosts if h.get("error")]
    return notes


def _mean_sem(values: list[float]) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    sem = float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else None
    return {"mean": float(np.mean(values)), "sem_over_replicas": sem, "n_replicas": len(values)}


def _temperature_descriptors(descs: list[dict]) -> dict:
    """Replica means of the equilibrated O_oct and Cl angular displacement."""
    return {"o_oct": _mean_sem([d["o_oct"]["mean"] if d["o_oct"] else None for d in descs]),
            "cl_angle_deg": _mean_sem([d["cl_angle_deg"]["equilibrated_mean"] if d["cl_angle_deg"] else None
                                       for d in descs]),
            "sro_mean": descs[0]["sro_mean"] if len(descs) == 1 else (
                {k: float(np.mean([d["sro_mean"][k] for d in descs])) for k in descs[0]["sro_mean"]}
                if all(d["sro_mean"] for d in descs) else None)}


def _check_temperatures(specs: Sequence[ReplicaSpec], tolerance_K: float, fraction: float) -> None:
    bad = []
    for s in specs:
        if s.measured_temperature_K is None:
            continue
        tol = max(tolerance_K, fraction * s.temperature_K)
        if abs(s.measured_temperature_K - s.temperature_K) > tol:
            bad.append(f"{s.label or s.path}: mean {s.measured_temperature_K:.1f} K vs target "
                       f"{s.temperature_K:g} K")
    if bad:
        raise UserError("replicas at inconsistent temperatures (" + "; ".join(bad) + f"; tolerance "
                        f"max({tolerance_K:g} K, {fraction:.0%})): check the thermostat/equilibration "
                        "or exclude these runs")


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_")


def analyze_runs(specs: Sequence[ReplicaSpec], species: str, output: str | os.PathLike, *,
                 max_frames: int = DEFAULT_MAX_FRAMES, fit_window_ps: tuple[float, float] | None = None,
                 regimes: int = 1, breakpoint_K: float | None = None, quantity: str = "D",
                 extrapolate_T_K: float = 293.0, charge: float | None = None, workers: int = 1,
                 skipped: Sequence[dict] = (), notes: Sequence[str] = (),
                 temperature_tolerance_K: float = 10.0, temperature_tolerance_fraction: float = 0.03,
                 plots: bool = True, descriptors: bool = False, reference=None, host_check: bool = True,
                 host_msd_max_A2: float = FRAMEWORK_MSD_THRESHOLD_A2) -> dict:
    """Analyse trajectories and write results into ``output``; returns the results dict.

    results.json::

        {"schema": "mtpkit.conductivity/1", "species": "Na",
         "settings": {max_frames, fit_window_ps, regimes, breakpoint_K, arrhenius_quantity,
                      extrapolate_T_K, charge},
         "partial": bool, "skipped": [{"run", "reason"}], "notes": [...],
         "systems": [{"label",
                      "temperatures": [{temperature_K, D, D_err, D_err_source, D_ion_sem,
                                        D_replica_sem, D_fit_err, D_replicas, sigma, sigma_err,
                                        D_charge, D_charge_err, D_charge_walk_rel_err,
                                        sigma_charge, sigma_charge_err, haven_ratio,
                                        haven_ratio_err, mean_volume_A3, n_mobile,
                                        fit_window_ps, frame_interval_fs, n_frames,
                                        duration_ps, replicas: [...], notes,
                                        host: [per-replica host-framework check, see
                                               mtpkit.analysis.framework] (host_check)}],
                      "arrhenius": {"selected": "one_regime"|"two_regimes"|null,
                                    "one_regime": {quantity, regimes: [{T_min_K, T_max_K,
                                        n_points, Ea_eV, Ea_err_eV, ln_prefactor, ...}],
                                        breakpoint_K, ...} | null,
                                    "two_regimes": {..., breakpoint_range_K,
                                                    selection} | null,
                                    "selection": {criterion, F, p_value, alpha, delta_bic,
                                                  preferred_regimes, ...} | null},
                      "extrapolated": {"T_K", "sigma", "sigma_err", "D", "D_err", "regime"} | null}],
         + for a single system the same "temperatures", "arrhenius", "extrapolated" at top
         level, and "sigma_293K" {"value", "err"} when extrapolate_T_K == 293}

    ``regimes``: 1 (a second line is still fitted with ≥ 6 temperatures, and a note says
    when the data favour it) or 2 (with ``breakpoint_K`` split there; else the breakpoint
    is searched and two regimes are selected only when the F-test of
    :func:`mtpkit.analysis.arrhenius.fit_arrhenius` prefers them).  D_err (and so σ_err
    and the Arrhenius errors) comes from the displacement statistics, see
    :mod:`mtpkit.analysis.transport`.

    ``host_check``: run :func:`mtpkit.analysis.framework.framework_check` on every replica
    (limit ``host_msd_max_A2`` Å²) and add a note for each temperature
    whose host is not a solid.

    D in cm²/s, σ in S/cm, Ea in eV, T in K, volume Å³, times ps (frame interval fs).
    """
    if not specs:
        raise UserError("nothing to analyse: no finished runs" + (
            f" ({len(skipped)} skipped: " + "; ".join(f"{s['run']}: {s['reason']}" for s in skipped) + ")"
            if skipped else ""))
    _check_temperatures(specs, temperature_tolerance_K, temperature_tolerance_fraction)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    jobs = [(s, species, max_frames, descriptors, reference, host_check, host_msd_max_A2) for s in specs]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            loaded = list(pool.map(_load, jobs))
    else:
        loaded = [_load(j) for j in jobs]
    systems: dict[str, dict[float, list]] = {}
    descs: dict[str, dict[float, list]] = {}
    hosts: dict[str, dict[float, list]] = {}
    for spec, (rep, desc, host) in zip(specs, loaded):
        key = round(spec.temperature_K, 6)
        systems.setdefault(spec.system, {}).setdefault(key, []).append(rep)
        descs.setdefault(spec.system, {}).setdefault(key, []).append(desc)
        hosts.setdefault(spec.system, {}).setdefault(key, []).append(host)
    del loaded
    all_notes = list(notes)
    sys_out = []
    for label in sorted(systems):
        by_t = systems[label]
        results: list[TemperatureResult] = []
        for T in sorted(by_t):
            results.append(analyze_temperature(by_t[T], fit_window_ps=fit_window_ps, charge=charge))
            by_t[T] = None  # free the displacements as soon as possible
        arr, fits = _arrhenius(results, regimes, breakpoint_K, quantity, all_notes, label)
        extra = _extrapolated(results, fits, extrapolate_T_K, charge) if fits else None
        entry = {"label": label, "temperatures": [r.to_dict() for r in results], "arrhenius": arr,
                 "extrapolated": extra}
        if host_check:
            for t_entry, T in zip(entry["temperatures"], sorted(by_t)):
                t_entry["host"] = hosts[label][T]
                all_notes.extend(_host_notes(label, T, hosts[label][T]))
        if descriptors:
            for t_entry, T in zip(entry["temperatures"], sorted(by_t)):
                t_entry["descriptors"] = _temperature_descriptors(descs[label][T])
            entry["descriptors_per_replica"] = [d for T in sorted(by_t) for d in descs[label][T]]
            if plots:
                from mtpkit.analysis.plots import plot_descriptors

                suffix = f"_{_slug(label)}" if label else ""
                plot_descriptors(descs[label], output / f"descriptors{suffix}", title=label)
        if plots:
            suffix = f"_{_slug(label)}" if label else ""
            entry["plots"] = (_plot(results, fits, output, suffix, label))
        entry["_results"] = results
        sys_out.append(entry)
    doc = {"schema": SCHEMA, "species": species,
           "settings": {"max_frames": max_frames, "fit_window_ps": fit_window_ps, "regimes": regimes,
                        "breakpoint_K": breakpoint_K, "arrhenius_quantity": quantity,
                        "extrapolate_T_K": extrapolate_T_K, "charge": charge},
           "partial": bool(skipped), "skipped": list(skipped), "notes": all_notes,
           "systems": [{k: v for k, v in s.items() if k != "_results"} for s in sys_out]}
    if len(sys_out) == 1:
        for key in ("temperatures", "arrhenius", "extrapolated"):
            doc[key] = doc["systems"][0][key]
        ext = doc["extrapolated"]
        if ext is not None and abs(extrapolate_T_K - 293.0) < 1e-9:
            doc["sigma_293K"] = {"value": ext["sigma"], "err": ext["sigma_err"], "unit": "S/cm"}
    atomic_write_json(output / "results.json", doc)
    _write_csv(output / "transport.csv", sys_out)
    _write_msd_csv(output / "msd.csv", sys_out)
    atomic_write_text(output / "results.md", _markdown(doc))
    return doc


def _arrhenius(results, regimes, breakpoint_K, quantity, notes, label):
    T = [r.temperature_K for r in results]
    if quantity == "sigmaT":
        y = [r.sigma * r.temperature_K for r in results]
        e = [r.sigma_err * r.temperature_K for r in results]
    elif quantity == "D":
        y = [r.D for r in results]
        e = [r.D_err for r in results]
    else:
        raise UserError(f"Arrhenius quantity must be 'D' or 'sigmaT', got {quantity!r}")
    where = f"{label}: " if label else ""
    if len(T) < 2:
        notes.append(f"{where}one temperature only: no Arrhenius fit")
        return {"selected": None, "one_regime": None, "two_regimes": None}, None
    e = [max(ei, 1e-3 * yi) for ei, yi in zip(e, y)]  # a zero error would give infinite weight
    one = fit_arrhenius(T, y, e, regimes=1, quantity=quantity)
    two = None
    want_two = regimes == 2 or breakpoint_K is not None
    if breakpoint_K is not None or len(T) >= 2 * MIN_POINTS:
        two = fit_arrhenius(T, y, e, regimes=2, breakpoint_K=breakpoint_K, quantity=quantity)
    elif want_two:
        notes.append(f"{where}two Arrhenius regimes asked for, but a searched breakpoint needs at least "
                     f"{2 * MIN_POINTS} temperatures ({len(T)} here): one regime fitted")
    sel = two.selection if two else None
    p = sel.get("p_value") if sel else None
    test = f"F-test p = {p:.3g}, α = {sel['alpha']:g}" if p is not None else ""
    if breakpoint_K is not None:  # the user's split is kept; say when the data do not need it
        selected = "two_regimes"
        if sel["preferred_regimes"] == 1:
            notes.append(f"{where}two regimes split at {breakpoint_K:g} K as asked, but one line fits the "
                         f"data as well ({test})")
    elif want_two and two is not None:
        selected = "two_regimes" if two.preferred_regimes == 2 else "one_regime"
        if selected == "one_regime":
            notes.append(f"{where}two Arrhenius regimes asked for, but the data do not need a second line "
                         f"({test}): one regime selected")
    else:
        selected = "one_regime"
        if two is not None and two.preferred_regimes == 2:
            lo, hi = two.breakpoint_range_K
            notes.append(f"{where}the data favour two Arrhenius regimes with a breakpoint between {lo:g} and "
                         f"{hi:g} K ({test}); one regime reported as asked (--regimes 2 to select two)")
    fits = two if selected == "two_regimes" else one
    return ({"selected": selected, "one_regime": one.to_dict(),
             "two_regimes": two.to_dict() if two else None, "selection": sel}, fits)


def _extrapolated(results, fit: ArrheniusFit, T_new: float, charge) -> dict:
    nearest = min(results, key=lambda r: abs(r.temperature_K - T_new))
    conv = conversion_factor_S_cm(nearest.n_mobile, nearest.mean_volume_A3, nearest.species, T_new, charge)
    out = extrapolate(fit, T_new, conversion=conv if fit.quantity == "D" else None)
    res = {"T_K": T_new, "sigma": out["value"], "sigma_err": out["err"], "regime": out["regime"],
           "ln_err": out["ln_err"], "volume_A3": nearest.mean_volume_A3,
           "volume_from_T_K": nearest.temperature_K}
    if fit.quantity == "D":
        res["D"] = out["value"] / conv
        res["D_err"] = out["err"] / conv
    return res


def _plot(results, fit, output: Path, suffix: str, label: str) -> list[str]:
    from mtpkit.analysis.plots import plot_arrhenius, plot_msd

    paths = plot_msd(results, output / f"msd{suffix}", title=label)
    if len(results) >= 1:
        paths += plot_arrhenius(results, fit, output / f"arrhenius{suffix}", title=label)
    return paths


CSV_FIELDS = ["system", "temperature_K", "D_cm2_s", "D_err_cm2_s", "D_fit_err_cm2_s", "D_replica_sem_cm2_s",
              "sigma_S_cm", "sigma_err_S_cm", "D_charge_cm2_s", "D_charge_err_cm2_s", "sigma_charge_S_cm",
              "haven_ratio", "haven_ratio_err", "mean_volume_A3", "n_replicas", "fit_start_ps",
              "fit_end_ps", "frame_interval_fs", "duration_ps"]


def _write_csv(path: Path, systems) -> None:
    with atomic_open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_FIELDS)
        for s in systems:
            for r in s["_results"]:
                w.writerow([s["label"], r.temperature_K, r.D, r.D_err, r.D_fit_err, r.D_replica_sem, r.sigma,
                            r.sigma_err, r.D_charge, r.D_charge_err, r.sigma_charge, r.haven_ratio,
                            r.haven_ratio_err, r.mean_volume_A3, len(r.replicas), r.fit_window_ps[0],
                            r.fit_window_ps[1], r.frame_interval_fs, r.duration_ps])


def _write_msd_csv(path: Path, systems) -> None:
    with atomic_open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["system", "temperature_K", "t_ps", "msd_mean_A2", "mscd_mean_A2", "in_fit_window"])
        for s in systems:
            for r in s["_results"]:
                lo, hi = r.fit_window_ps
                for t, m, c in zip(r.t_ps, r.msd_mean, r.mscd_mean):
                    w.writerow([s["label"], r.temperature_K, f"{t:.6g}", f"{m:.8g}", f"{c:.8g}",
                                int(lo - 1e-9 <= t <= hi + 1e-9)])


def _pm(v, e, fmt="{:.3e}") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{fmt.format(v)} ± {fmt.format(e)}"


def _host_cell(hosts: list[dict] | None) -> str:
    """``crystal 2, not solid 1``-style count of the replicas' host states."""
    if not hosts:
        return "—"
    return ", ".join(f"{k} {v}" for k, v in Counter(h.get("state") or "unchecked" for h in hosts).items())


def _markdown(doc: dict) -> str:
    out = io.StringIO()
    out.write(f"# Conductivity of {doc['species']}\n\n")
    if doc["partial"]:
        out.write(f"**Partial sweep**: {len(doc['skipped'])} run(s) not analysed:\n\n")
        for s in doc["skipped"]:
            out.write(f"- `{s['run']}`: {s['reason']}\n")
        out.write("\n")
    for s in doc["systems"]:
        out.write(f"## {s['label'] or 'results'}\n\n")
        out.write("| T (K) | D (cm²/s) | σ (S/cm) | D_charge (cm²/s) | Haven ratio | replicas | fit window (ps) "
                  "| host |\n")
        out.write("|---|---|---|---|---|---|---|---|\n")
        for r in s["temperatures"]:
            out.write(f"| {r['temperature_K']:g} | {_pm(r['D'], r['D_err'])} | {_pm(r['sigma'], r['sigma_err'])} "
                      f"| {_pm(r['D_charge'], r['D_charge_err'])} "
                      f"| {_pm(r['haven_ratio'], r['haven_ratio_err'], '{:.2f}')} "
                      f"| {len(r['replicas'])} | {r['fit_window_ps'][0]:.3g}–{r['fit_window_ps'][1]:.3g} "
                      f"| {_host_cell(r.get('host'))} |\n")
        arr = s["arrhenius"]
        if arr and arr["selected"]:
            fit = arr[arr["selected"]]
            rng = fit.get("breakpoint_range_K")
            out.write(f"\nArrhenius fit of {fit['quantity']} ({arr['selected'].replace('_', ' ')}"
                      + (f", breakpoint {fit['breakpoint_K']:.0f} K" if fit["breakpoint_K"] else "")
                      + (f" (between {rng[0]:g} and {rng[1]:g} K)" if rng else "") + "):\n\n")
            out.write("| T range (K) | Ea (eV) | points |\n|---|---|---|\n")
            for reg in fit["regimes"]:
                out.write(f"| {reg['T_min_K']:g}–{reg['T_max_K']:g} | {_pm(reg['Ea_eV'], reg['Ea_err_eV'], '{:.3f}')} "
                          f"| {reg['n_points']} |\n")
            sel = arr.get("selection")
            if sel and sel.get("p_value") is not None:
                out.write(f"\nTwo regimes vs one: F = {sel['F']:.3g}, p = {sel['p_value']:.3g} "
                          f"({sel['p_value_method']}; two regimes preferred when p < {sel['alpha']:g})\n")
        ext = s["extrapolated"]
        if ext:
            out.write(f"\nσ({ext['T_K']:g} K) = {_pm(ext['sigma'], ext['sigma_err'])} S/cm "
                      f"(regime {ext['regime'] + 1}, Arrhenius extrapolation)\n")
        out.write("\n")
    if doc["notes"] or any(n for s in doc["systems"] for r in s["temperatures"] for n in r["notes"]):
        out.write("## Notes\n\n")
        for n in doc["notes"]:
            out.write(f"- {n}\n")
        for s in doc["systems"]:
            for r in s["temperatures"]:
                for n in r["notes"]:
                    out.write(f"- {s['label'] + ' ' if s['label'] else ''}{r['temperature_K']:g} K: {n}\n")
    return out.getvalue()
