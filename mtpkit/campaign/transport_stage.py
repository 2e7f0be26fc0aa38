"""Stage 5: transport, SRO and O_oct(t) from the production runs.

Per structure, through :mod:`mtpkit.analysis`:

* :func:`mtpkit.analysis.analyze.analyze_runs` on its finished runs: replica-averaged
  MSD → D (cm²/s), σ (S/cm), Arrhenius fit of D (two regimes split at
  ``analysis.breakpoint_K`` when at least two temperatures lie on each side, else one),
  σ extrapolated to ``extrapolate_T_K`` with its propagated error; written to
  ``<stage>/<structure>/`` (results.json/md, transport.csv, msd and Arrhenius plots);
* Warren–Cowley SRO of Y/Zr (8.5 Å): the starting structure and the average over
  frames of the hottest run;
* host-framework check of every run (:func:`mtpkit.analysis.framework.framework_check`):
  MSD of Cl/Y/Zr, whether each Cl keeps its metal, volume change; state "crystal",
  "rotating octahedra" (still a solid) or "not solid" (Y/Zr move more than
  ``analysis.framework_msd_max_A2`` or octahedra exchange Cl) — the Na transport of a
  run that is not solid is that of a molten host, not of the crystal;
* O_oct(t): fraction of the octahedral Na reference sites of the ideal frame that hold
  a Na (the study's octahedral occupancy: 25/50/75/100 % for its models)
  (:func:`mtpkit.analysis.sites.octahedral_occupancy`, method "reference") for every run,
  with its equilibrated mean ± block standard error; plot per structure.

``<stage>/summary.json`` collects what the report needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mtpkit.config import PipelineConfig
from mtpkit.io_utils import atomic_write_json

Log = Callable[[str], None]


def _strided_frames(path: str, species: list[str], n_max: int):
    """At most ``n_max`` evenly strided frames as dumped (SRO and O_oct use minimum images,
    so the frames need not be unwrapped; unwrapping a strided read would refuse the
    Na jumps between frames far apart)."""
    from mtpkit.analysis.trajectory import open_trajectory

    traj = open_trajectory(path, type_map=species)
    stride = max(1, math.ceil(traj.n_frames / n_max))
    return traj, traj.frames(stride=stride)


def _o_oct(run_folder: Path, species: list[str], n_max: int, sites: dict, frame_fs: float) -> dict:
    from mtpkit.analysis.sites import octahedral_occupancy

    traj, frames = _strided_frames(str(run_folder / "traj.dump"), species, n_max)
    occ = octahedral_occupancy(frames, traj.symbols, method="reference",
                               site_frac=np.array(sites["na_sites_frac"]),
                               site_is_oct=np.array(sites["na_sites_oct"], bool), per="site")
    return {"t_ps": (occ.frame_index * frame_fs / 1000.0).tolist(), "o_oct": occ.o_oct.tolist(),
            "mean": occ.mean, "sem": occ.sem,
            "equilibrated_from_ps": occ.equilibrated_from * frame_fs / 1000.0}


def _o_oct_start(path: Path, sites: dict) -> float:
    """O_oct of the starting structure, classified like the MD frames."""
    from ase.io import read

    from mtpkit.analysis.sites import classify_by_reference, octahedral_site_occupancy

    atoms = read(path, format="extxyz")
    site_is_oct = np.array(sites["na_sites_oct"], bool)
    nearest = classify_by_reference(atoms.positions, atoms.cell[:], atoms.get_chemical_symbols(),
                                    np.array(sites["na_sites_frac"]), site_is_oct)[1]
    return octahedral_site_occupancy(nearest, site_is_oct)


def _plot_o_oct(series: dict, name: str, stem: Path, ideal: float) -> str:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from mtpkit.analysis.plots import save_figure

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for label, s in series.items():
        ax.plot(s["t_ps"], s["o_oct"], lw=1, label=f"{label} (mean {s['mean']:.3f})")
    ax.axhline(ideal, color="k", ls=":", lw=1, label=f"starting structure ({ideal:.3f})")
    ax.set_xlabel("t (ps)")
    ax.set_ylabel("O_oct (fraction of octahedral Na sites occupied)")
    ax.set_title(name)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = save_figure(fig, stem, formats=("png",), dpi=130)[0]
    plt.close(fig)
    return path


def run_transport(cfg: PipelineConfig, folder: Path, manifest: dict, structures: dict,
                  structures_dir: Path, say: Log) -> dict:
    """Analyse the production sweep; returns (and writes) ``summary.json``."""
    from mtpkit.analysis.analyze import AnalysisOptions, ReplicaSpec, analyze_runs
    from mtpkit.analysis.trajectory import frame_to_atoms
    from mtpkit.errors import UserError
    from mtpkit.structures.sro import warren_cowley_trajectory

    species = cfg.species
    an, pr = cfg.analysis, cfg.production
    frame_fs = float(pr.timestep) * int(pr.dump_every)
    bp = float(an.breakpoint_K)
    summary: dict = {"species": "Na", "breakpoint_K": bp or None, "extrapolate_T_K": an.extrapolate_T_K,
                     "frame_interval_fs": frame_fs, "structures": {}}
    for name, info in structures["structures"].items():
        if pr.structures and name not in pr.structures:
            continue  # learnt on, not produced (production.structures)
        runs = [(rid, e) for rid, e in manifest["runs"].items() if rid.split("/")[0] == name]
        done = [(rid, e) for rid, e in runs if e.get("status") == "done"]
        entry: dict = {"runs_total": len(runs), "runs_done": len(done), "notes": []}
        summary["structures"][name] = entry
        if len(done) < len(runs):
            entry["notes"].append(f"{len(runs) - len(done)} of {len(runs)} runs did not finish and are "
                                  "not analysed")
        specs = [ReplicaSpec(path=str(Path(e["folder"]) / "traj.dump"),
                             temperature_K=float(e["temperature"]), frame_interval_fs=frame_fs,
                             system=name, label=rid, type_map=species) for rid, e in done]
        temps = sorted({s.temperature_K for s in specs})
        two = bp > 0 and sum(t < bp for t in temps) >= 2 and sum(t >= bp for t in temps) >= 2
        if bp > 0 and not two:
            entry["notes"].append(f"two Arrhenius regimes need >= 2 temperatures on each side of "
                                  f"{bp:g} K (have {', '.join(f'{t:g}' for t in temps)} K): one regime fitted")
        out = folder / name
        if specs:
            try:
                doc = analyze_runs(specs, "Na", out, AnalysisOptions(
                    max_frames=int(an.max_frames), regimes=2 if two else 1, breakpoint_K=bp if two else None,
                    extrapolate_T_K=float(an.extrapolate_T_K), workers=int(cfg.campaign.workers),
                    host_msd_max_A2=float(an.framework_msd_max_A2)))
                sysd = doc["systems"][0]
                entry["transport"] = {"temperatures": sysd["temperatures"], "arrhenius": sysd["arrhenius"],
                                      "extrapolated": sysd["extrapolated"], "notes": doc["notes"],
                                      "plots": [str(Path(p).relative_to(folder)) for p in sysd.get("plots", [])],
                                      "results": str((out / "results.json").relative_to(folder))}
                say(f"transport: {name}: " + ", ".join(
                    f"D({t['temperature_K']:g} K) = {t['D']:.2e} cm²/s" for t in sysd["temperatures"]))
            except UserError as exc:
                entry["transport"] = None
                entry["notes"].append(f"transport analysis failed: {exc}")
                say(f"transport: {name}: analysis failed: {exc}")
        else:
            entry["transport"] = None
        # host framework: is each run still a crystal? (checked by analyze_runs, per replica)
        entry["framework"] = {}
        for t in (entry.get("transport") or {}).get("temperatures", []):
            for h in t.get("host") or []:
                if h.get("state") is not None:  # a failed check is already in the analysis notes
                    entry["framework"][h["label"].split("/", 1)[1]] = h | {"temperature_K": t["temperature_K"]}
        liquid = [rid for rid, c in entry["framework"].items() if not c["solid"]]
        if liquid:  # the per-temperature notes come with the transport analysis
            say(f"transport: {name}: host framework not solid in {len(liquid)} of {len(entry['framework'])} runs")
        # SRO: starting structure and the hottest finished run
        entry["sro_initial"] = info["sro"]
        entry["sro_md"] = None
        if done:
            rid, e = max(done, key=lambda x: float(x[1]["temperature"]))
            traj, frames = _strided_frames(str(Path(e["folder"]) / "traj.dump"), species, 10)
            res = warren_cowley_trajectory((frame_to_atoms(traj, f) for f in frames), ("Y", "Zr"), 8.5)
            entry["sro_md"] = {"run": rid, "mean": {f"{a}-{b}": v for (a, b), v in res["mean"].items()},
                               "std": {f"{a}-{b}": v for (a, b), v in res["std"].items()},
                               "n_frames": res["n_frames"]}
        # O_oct(t)
        series = {}
        for rid, e in done:
            try:
                series[rid.split("/", 1)[1]] = _o_oct(Path(e["folder"]), species, int(an.o_oct_frames),
                                                      info, frame_fs)
            except UserError as exc:
                entry["notes"].append(f"O_oct for {rid}: {exc}")
        ideal = _o_oct_start(structures_dir / info.get("md_file", info["file"]), info)
        entry["o_oct_initial"] = ideal
        entry["o_oct"] = series
        if series:
            entry["o_oct_plot"] = str(Path(_plot_o_oct(series, name, folder / f"o_oct_{name}", ideal)
                                           ).relative_to(folder))
    atomic_write_json(folder / "summary.json", summary)
    return summary
