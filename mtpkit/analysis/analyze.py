"""The conductivity analysis: MD replicas → D, σ per temperature → Arrhenius → σ(T).

Shaped like pymatgen-analysis-diffusion (one analyzer object plus plain functions):

* :class:`TransportAnalysis` is the analysis of one system (structure), built from its
  replicas grouped by temperature, with methods for the per-temperature results
  (:meth:`~TransportAnalysis.temperatures`), the Arrhenius fit
  (:meth:`~TransportAnalysis.arrhenius`), the extrapolated σ
  (:meth:`~TransportAnalysis.extrapolate`) and the host-framework checks
  (:meth:`~TransportAnalysis.host_checks`);
* :func:`select_arrhenius` (one or two regimes, by the user's choice and the F-test) and
  :func:`extrapolated` are plain functions on per-temperature results;
* :func:`analyze_runs` is the driver: it checks the replicas' temperatures, reads the
  trajectories (:func:`load_replicas`, in parallel processes when ``workers`` > 1),
  builds one :class:`TransportAnalysis` per system and writes the files with
  :mod:`mtpkit.analysis.writers`; its settings are one :class:`AnalysisOptions`.

Files written into the output folder: ``results.json`` (schema ``mtpkit.conductivity/1``,
documented in :func:`analyze_runs`), ``transport.csv`` (one row per system and
temperature), ``msd.csv`` (replica-mean MSD/MSCD curves), ``results.md`` (Markdown tables),
``msd[_<system>].png/.svg`` and ``arrhenius[_<system>].png/.svg``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtpkit.analysis.arrhenius import MIN_POINTS, ArrheniusFit, extrapolate, fit_arrhenius
from mtpkit.analysis.framework import FRAMEWORK_MSD_THRESHOLD_A2, framework_check
from mtpkit.analysis.transport import (
    DEFAULT_MAX_FRAMES,
    ReplicaData,
    TemperatureResult,
    analyze_temperature,
    conversion_factor_S_cm,
    load_replica,
)
from mtpkit.errors import UserError

__all__ = ["SCHEMA", "AnalysisOptions", "ReplicaSpec", "TransportAnalysis", "analyze_runs", "extrapolated",
           "load_replicas", "select_arrhenius"]

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


@dataclass
class AnalysisOptions:
    """Settings of :func:`analyze_runs`.

    ``regimes``: 1 (a second line is still fitted with ≥ 6 temperatures, and a note says
    when the data favour it) or 2 (with ``breakpoint_K`` split there; else the breakpoint
    is searched and two regimes are selected only when the F-test of
    :func:`mtpkit.analysis.arrhenius.fit_arrhenius` prefers them).  ``quantity``: fit
    ln D ("D") or ln(σT) ("sigmaT") against 1/T.  ``charge``: of the mobile ion in e
    (default: its valence).  ``workers``: processes reading trajectories.

    ``temperature_tolerance_K``/``_fraction``: a replica whose measured mean temperature
    is further than max(K, fraction·T) from its target is refused.

    ``host_check``: run :func:`mtpkit.analysis.framework.framework_check` on every replica
    (limit ``host_msd_max_A2`` Å²) and add a note for each temperature whose host is not
    a solid.  ``descriptors``: O_oct, Cl angular displacement and SRO per replica
    (:func:`mtpkit.analysis.descriptors.trajectory_descriptors`, Na sites classified by
    the ``reference`` structure when one is given).  ``plots``: write the PNG/SVG plots.
    """

    max_frames: int = DEFAULT_MAX_FRAMES
    fit_window_ps: tuple[float, float] | None = None
    regimes: int | str = 1
    breakpoint_K: float | None = None
    quantity: str = "D"
    extrapolate_T_K: float = 293.0
    charge: float | None = None
    workers: int = 1
    temperature_tolerance_K: float = 10.0
    temperature_tolerance_fraction: float = 0.03
    plots: bool = True
    descriptors: bool = False
    reference: Any = None
    host_check: bool = True
    host_msd_max_A2: float = FRAMEWORK_MSD_THRESHOLD_A2

    def settings(self) -> dict:
        """The ``settings`` entry of results.json."""
        return {"max_frames": self.max_frames, "fit_window_ps": self.fit_window_ps, "regimes": self.regimes,
                "breakpoint_K": self.breakpoint_K, "arrhenius_quantity": self.quantity,
                "extrapolate_T_K": self.extrapolate_T_K, "charge": self.charge}


# --------------------------------------------------------------------------- loading


@dataclass
class LoadedReplica:
    """A replica's displacements, with its host check and descriptors when asked for."""

    data: ReplicaData
    descriptors: dict | None = None
    host: dict | None = None


def load_one(spec: ReplicaSpec, species: str, options: AnalysisOptions) -> LoadedReplica:
    """Read one trajectory: displacements of ``species``, host-framework check, descriptors."""
    data = load_replica(spec.path, species, spec.temperature_K, spec.frame_interval_fs,
                        max_frames=options.max_frames, type_map=spec.type_map, format=spec.format,
                        label=spec.label or Path(spec.path).name)
    host = None
    if options.host_check:
        try:
            host = framework_check(spec.path, spec.frame_interval_fs, type_map=spec.type_map, mobile=(species,),
                                   format=spec.format, threshold_A2=options.host_msd_max_A2
                                   ).to_dict() | {"label": data.label}
        except UserError as exc:
            host = {"label": data.label, "state": None, "error": str(exc)}
    desc = None
    if options.descriptors:
        from mtpkit.analysis.descriptors import trajectory_descriptors

        desc = trajectory_descriptors(spec.path, spec.frame_interval_fs, center=species,
                                      type_map=spec.type_map, format=spec.format, reference=options.reference)
        desc["label"] = data.label
    return LoadedReplica(data, desc, host)


def _load_job(job: tuple[ReplicaSpec, str, AnalysisOptions]) -> LoadedReplica:
    return load_one(*job)


def load_replicas(specs: Sequence[ReplicaSpec], species: str, options: AnalysisOptions) -> list[LoadedReplica]:
    """:func:`load_one` for every spec, in ``options.workers`` processes when there are several."""
    jobs = [(s, species, options) for s in specs]
    if options.workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=min(options.workers, len(jobs))) as pool:
            return list(pool.map(_load_job, jobs))
    return [_load_job(j) for j in jobs]


def check_temperatures(specs: Sequence[ReplicaSpec], tolerance_K: float, fraction: float) -> None:
    """Refuse replicas whose measured mean temperature is far from their target."""
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


# --------------------------------------------------------------------------- Arrhenius


def _arrhenius_data(results: Sequence[TemperatureResult], quantity: str):
    T = [r.temperature_K for r in results]
    if quantity == "sigmaT":
        return T, [r.sigma * r.temperature_K for r in results], [r.sigma_err * r.temperature_K for r in results]
    if quantity == "D":
        return T, [r.D for r in results], [r.D_err for r in results]
    raise UserError(f"Arrhenius quantity must be 'D' or 'sigmaT', got {quantity!r}")


def select_arrhenius(results: Sequence[TemperatureResult], regimes: int | str, breakpoint_K: float | None,
                     quantity: str, notes: list[str], label: str = "") -> tuple[dict, ArrheniusFit | None]:
    """Fit one and (with enough temperatures, or when asked) two Arrhenius regimes and select one.

    Returns (the results.json ``arrhenius`` entry, the selected fit or None with fewer than
    two temperatures); notes on the choice are appended to ``notes``.
    """
    T, y, e = _arrhenius_data(results, quantity)
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


def extrapolated(results: Sequence[TemperatureResult], fit: ArrheniusFit, T_new: float,
                 charge: float | None) -> dict:
    """σ (and D when D was fitted) at ``T_new`` from ``fit``, at the volume of the nearest temperature."""
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


# --------------------------------------------------------------------------- host checks, descriptors


def host_notes(label: str, T: float, hosts: list[dict]) -> list[str]:
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


def _mean_sem(values: list[float | None]) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    sem = float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else None
    return {"mean": float(np.mean(values)), "sem_over_replicas": sem, "n_replicas": len(values)}


def temperature_descriptors(descs: list[dict]) -> dict:
    """Replica means of the equilibrated O_oct and Cl angular displacement, and the mean SRO."""
    return {"o_oct": _mean_sem([d["o_oct"]["mean"] if d["o_oct"] else None for d in descs]),
            "cl_angle_deg": _mean_sem([d["cl_angle_deg"]["equilibrated_mean"] if d["cl_angle_deg"] else None
                                       for d in descs]),
            "sro_mean": descs[0]["sro_mean"] if len(descs) == 1 else (
                {k: float(np.mean([d["sro_mean"][k] for d in descs])) for k in descs[0]["sro_mean"]}
                if all(d["sro_mean"] for d in descs) else None)}


# --------------------------------------------------------------------------- the analyzer


class TransportAnalysis:
    """Transport of one system from its replicas grouped by temperature (K).

    ``hosts_by_T``/``descriptors_by_T``: per-replica host checks and descriptors, same
    keys and order as ``replicas_by_T`` (None when not computed).  The displacements are
    dropped once :meth:`temperatures` has analysed them.
    """

    def __init__(self, replicas_by_T: Mapping[float, Sequence[ReplicaData]], *, label: str = "",
                 options: AnalysisOptions | None = None, hosts_by_T: Mapping[float, list[dict]] | None = None,
                 descriptors_by_T: Mapping[float, list[dict]] | None = None):
        self.label = label
        self.options = options or AnalysisOptions()
        self.T_K = sorted(replicas_by_T)
        self._replicas: dict[float, Sequence[ReplicaData] | None] = {T: replicas_by_T[T] for T in self.T_K}
        self.hosts_by_T = hosts_by_T
        self.descriptors_by_T = descriptors_by_T
        self._fit_notes: list[str] = []
        self._results: list[TemperatureResult] | None = None
        self._arrhenius: tuple[dict, ArrheniusFit | None] | None = None

    def temperatures(self) -> list[TemperatureResult]:
        """Replica-averaged D, σ, Haven ratio per temperature, in increasing T."""
        if self._results is None:
            results = []
            for T in self.T_K:
                results.append(analyze_temperature(self._replicas[T], fit_window_ps=self.options.fit_window_ps,
                                                   charge=self.options.charge))
                self._replicas[T] = None  # free the displacements as soon as possible
            self._results = results
        return self._results

    def arrhenius(self) -> tuple[dict, ArrheniusFit | None]:
        """(results.json ``arrhenius`` entry, selected fit or None), see :func:`select_arrhenius`."""
        if self._arrhenius is None:
            o = self.options
            self._arrhenius = select_arrhenius(self.temperatures(), o.regimes, o.breakpoint_K, o.quantity,
                                               self._fit_notes, self.label)
        return self._arrhenius

    def extrapolate(self, T_K: float | None = None) -> dict | None:
        """σ at ``T_K`` (default ``options.extrapolate_T_K``) from the selected Arrhenius fit."""
        fit = self.arrhenius()[1]
        if not fit:
            return None
        T_K = self.options.extrapolate_T_K if T_K is None else T_K
        return extrapolated(self.temperatures(), fit, T_K, self.options.charge)

    def host_checks(self) -> dict[float, list[dict]] | None:
        """Per temperature, the replicas' host-framework checks (None when not run)."""
        return None if self.hosts_by_T is None else {T: self.hosts_by_T[T] for T in self.T_K}

    def notes(self) -> list[str]:
        """Notes on the Arrhenius choice, then on the temperatures whose host is not a vibrating crystal."""
        self.arrhenius()  # the fit writes its notes
        checks = self.host_checks() or {}
        return self._fit_notes + [n for T, hosts in checks.items() for n in host_notes(self.label, T, hosts)]

    def to_dict(self) -> dict:
        """The system's results.json entry (without plots)."""
        arr = self.arrhenius()[0]
        entry = {"label": self.label, "temperatures": [r.to_dict() for r in self.temperatures()],
                 "arrhenius": arr, "extrapolated": self.extrapolate()}
        hosts = self.host_checks()
        if hosts is not None:
            for t_entry, T in zip(entry["temperatures"], self.T_K):
                t_entry["host"] = hosts[T]
        if self.descriptors_by_T is not None:
            for t_entry, T in zip(entry["temperatures"], self.T_K):
                t_entry["descriptors"] = temperature_descriptors(self.descriptors_by_T[T])
            entry["descriptors_per_replica"] = [d for T in self.T_K for d in self.descriptors_by_T[T]]
        return entry


def analyses_by_system(specs: Sequence[ReplicaSpec], loaded: list[LoadedReplica],
                       options: AnalysisOptions) -> list[TransportAnalysis]:
    """One :class:`TransportAnalysis` per system (spec.system), sorted by label; empties ``loaded``."""
    groups: dict[str, tuple[dict, dict, dict]] = {}
    for spec, rep in zip(specs, loaded):
        key = round(spec.temperature_K, 6)
        reps, descs, hosts = groups.setdefault(spec.system, ({}, {}, {}))
        reps.setdefault(key, []).append(rep.data)
        descs.setdefault(key, []).append(rep.descriptors)
        hosts.setdefault(key, []).append(rep.host)
    loaded.clear()  # the analyses hold the only references, and free them as they go
    return [TransportAnalysis(reps, label=label, options=options, hosts_by_T=hosts if options.host_check else None,
                              descriptors_by_T=descs if options.descriptors else None)
            for label, (reps, descs, hosts) in sorted(groups.items())]


# --------------------------------------------------------------------------- the driver


def results_document(species: str, options: AnalysisOptions, systems: list[dict], skipped: Sequence[dict],
                     notes: list[str]) -> dict:
    """results.json from the systems' entries; a single system is repeated at top level."""
    doc = {"schema": SCHEMA, "species": species, "settings": options.settings(),
           "partial": bool(skipped), "skipped": list(skipped), "notes": notes, "systems": systems}
    if len(systems) == 1:
        for key in ("temperatures", "arrhenius", "extrapolated"):
            doc[key] = systems[0][key]
        ext = doc["extrapolated"]
        if ext is not None and abs(options.extrapolate_T_K - 293.0) < 1e-9:
            doc["sigma_293K"] = {"value": ext["sigma"], "err": ext["sigma_err"], "unit": "S/cm"}
    return doc


def analyze_runs(specs: Sequence[ReplicaSpec], species: str, output: str | os.PathLike,
                 options: AnalysisOptions | None = None, *, skipped: Sequence[dict] = (),
                 notes: Sequence[str] = ()) -> dict:
    """Analyse trajectories and write results into ``output``; returns the results dict.

    ``skipped`` ({"run", "reason"}) and ``notes`` come from the caller's run discovery.

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

    D_err (and so σ_err and the Arrhenius errors) comes from the displacement statistics,
    see :mod:`mtpkit.analysis.transport`; the settings are described in :class:`AnalysisOptions`.

    D in cm²/s, σ in S/cm, Ea in eV, T in K, volume Å³, times ps (frame interval fs).
    """
    from mtpkit.analysis.writers import write_plots, write_results

    if not specs:
        raise UserError("nothing to analyse: no finished runs" + (
            f" ({len(skipped)} skipped: " + "; ".join(f"{s['run']}: {s['reason']}" for s in skipped) + ")"
            if skipped else ""))
    options = options or AnalysisOptions()
    check_temperatures(specs, options.temperature_tolerance_K, options.temperature_tolerance_fraction)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    analyses = analyses_by_system(specs, load_replicas(specs, species, options), options)
    all_notes, systems = list(notes), []
    for analysis in analyses:
        entry = analysis.to_dict()
        all_notes.extend(analysis.notes())
        if options.plots:
            entry["plots"] = write_plots(output, analysis)
        systems.append(entry)
    doc = results_document(species, options, systems, skipped, all_notes)
    write_results(output, doc, analyses)
    return doc
