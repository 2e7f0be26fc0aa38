"""Finding the runs of an MD sweep: what to analyse, grouped by structure and temperature.

Layouts read:

1. an :mod:`mtpkit.md.sweep` sweep: its TOML (every planned run; unstarted ones are
   reported as skipped) or its output folder ``<output>/<structure>/T<T>K/r<k>/``
   with ``manifest.json`` (``{"runs": {run_id: {status, folder, message, ...}}}``,
   used for failed statuses) — see 3 for what is read in each run folder;

2. a list-style manifest ``manifest.json`` (or any JSON file given)::

       {"runs": [{"structure": "NYZC75-a", "temperature_K": 600, "replica": 0,
                  "trajectory": "runs/a/600K/r0/traj.dump", "frame_interval_fs": 10.0,
                  "type_map": ["Na", "Y", "Zr", "Cl"], "status": "done"}, ...]}

   (paths relative to the manifest; ``status`` other than ``done``/``finished``
   marks an unfinished run);

3. the run folders written by :func:`mtpkit.md.run.run_md` anywhere below the sweep
   folder: ``state.json`` (status, settings: temperature, timestep, dump_every),
   ``traj.dump`` (``id type xu yu zu``), ``structure.data`` (type → element from its
   Masses) and ``thermo.dat`` (measured temperature).  The structure label is the
   run's path relative to the sweep minus its last two parts (temperature and
   replica folders) — or the whole parent path when shallower.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mtpkit.errors import InputFileError, UserError

__all__ = ["RunRecord", "discover_runs", "mean_thermo_temperature", "type_map_from_data"]

DONE = ("done", "finished", "complete", "completed")


@dataclass
class RunRecord:
    """One MD run of a sweep (temperatures in K, times in fs)."""

    structure: str
    temperature_K: float
    replica: str
    trajectory: Path
    frame_interval_fs: float
    type_map: list[str] | None
    status: str
    folder: Path | None = None
    measured_temperature_K: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status.lower() in DONE


def type_map_from_data(path: str | os.PathLike) -> list[str]:
    """Element symbols by LAMMPS type, from the ``Masses`` section of a data file."""
    from ase.data import atomic_masses, chemical_symbols

    lines = Path(path).read_text().splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Masses")
    except StopIteration:
        raise InputFileError(path, "no Masses section to tell the element of each type") from None
    out: dict[int, str] = {}
    for line in lines[start + 1:]:
        text = line.split("#")[0].strip()
        if not text:
            if out:
                break
            continue
        parts = text.split()
        if not parts[0].isdigit():
            break
        mass = float(parts[1])
        z = int(np.argmin(np.abs(atomic_masses[1:] - mass))) + 1
        if abs(atomic_masses[z] - mass) > 0.05:
            raise InputFileError(path, f"type {parts[0]}: mass {mass} matches no element")
        out[int(parts[0])] = chemical_symbols[z]
    return [out[k] for k in sorted(out)]


def mean_thermo_temperature(path: str | os.PathLike, skip_fraction: float = 0.1) -> float | None:
    """Mean of the ``T(K)`` column of a ``thermo.dat`` after the first ``skip_fraction``."""
    path = Path(path)
    if not path.is_file():
        return None
    header = path.open().readline()
    cols = header.lstrip("#").split()
    col = next((i for i, c in enumerate(cols) if c.lower().startswith("t(k")), 2)
    try:
        data = np.loadtxt(path, comments="#", ndmin=2)
    except ValueError:
        return None
    if data.size == 0:
        return None
    data = data[int(len(data) * skip_fraction):]
    return float(data[:, col].mean()) if len(data) else None


def _from_manifest(path: Path) -> list[RunRecord]:
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputFileError(path, f"not valid JSON ({exc})", line=exc.lineno) from None
    runs = doc.get("runs") if isinstance(doc, dict) else None
    if not isinstance(runs, list):
        raise InputFileError(path, "expected {'runs': [...]}", field="runs")
    out = []
    for k, r in enumerate(runs):
        try:
            traj = path.parent / r["trajectory"]
            out.append(RunRecord(structure=str(r.get("structure", "")), temperature_K=float(r["temperature_K"]),
                                 replica=str(r.get("replica", k)), trajectory=traj,
                                 frame_interval_fs=float(r["frame_interval_fs"]),
                                 type_map=r.get("type_map"), status=str(r.get("status", "done")),
                                 folder=traj.parent,
                                 measured_temperature_K=r.get("measured_temperature_K")))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputFileError(path, f"run {k}: missing or bad field ({exc})", field=f"runs[{k}]") from None
    return out


def _run_record(folder: Path, root: Path, status_override: str | None = None,
                message: str = "") -> RunRecord | None:
    state_path = folder / "state.json"
    if not state_path.is_file():
        return None
    try:
        state = json.loads(state_path.read_text())
        settings = state["settings"]
        temperature = float(settings["temperature"])
        interval = float(settings["timestep"]) * int(settings["dump_every"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InputFileError(state_path, f"not an mtpkit MD state file ({exc})") from None
    try:
        rel = folder.resolve().relative_to(root.resolve()).parts
    except ValueError:
        rel = folder.parts[-3:]
    structure = "/".join(rel[:-2]) if len(rel) > 2 else ("/".join(rel[:-1]) if len(rel) > 1 else "")
    status = status_override or str(state.get("status") or ("done" if state.get("done") else "running"))
    data = folder / "structure.data"
    tmap = type_map_from_data(data) if data.is_file() else None
    rec = RunRecord(structure=structure, temperature_K=temperature,
                    replica=rel[-1] if rel else folder.name, trajectory=folder / "traj.dump",
                    frame_interval_fs=interval, type_map=tmap, status=status, folder=folder,
                    measured_temperature_K=mean_thermo_temperature(folder / "thermo.dat"))
    if message:
        rec.notes.append(message)
    return rec


def _from_run_folders(root: Path) -> list[RunRecord]:
    """Run folders (with state.json) anywhere below ``root``; statuses from the MD sweep's
    ``manifest.json`` (``{"runs": {run_id: {"status", "folder", "message", ...}}}``) when present."""
    entries: dict = {}
    manifest = root / "manifest.json"
    if manifest.is_file():
        try:
            doc = json.loads(manifest.read_text())
        except json.JSONDecodeError as exc:
            raise InputFileError(manifest, f"not valid JSON ({exc})", line=exc.lineno) from None
        entries = doc.get("runs", {}) if isinstance(doc, dict) else {}
    by_folder = {Path(e["folder"]).resolve(): (rid, e) for rid, e in entries.items()
                 if isinstance(e, dict) and e.get("folder")}
    out, seen = [], set()
    for state_path in sorted(root.rglob("state.json")):
        folder = state_path.parent
        rid, entry = by_folder.get(folder.resolve(), (None, {}))
        status = entry.get("status") if entry.get("status") in ("failed", "extrapolation_break") else None
        rec = _run_record(folder, root, status, entry.get("message", ""))
        out.append(rec)
        seen.add(folder.resolve())
    for folder, (rid, entry) in by_folder.items():
        if folder not in seen:  # in the manifest, no state on disk (failed before any checkpoint)
            out.append(RunRecord(structure=rid.rsplit("/", 2)[0] if rid.count("/") >= 2 else "",
                                 temperature_K=float(entry.get("temperature", 0.0)),
                                 replica=str(entry.get("replica", rid)), trajectory=folder / "traj.dump",
                                 frame_interval_fs=0.0, type_map=None,
                                 status=str(entry.get("status", "unknown")), folder=folder,
                                 notes=[entry.get("message", "")] if entry.get("message") else []))
    return out


def _from_sweep_toml(path: Path) -> list[RunRecord]:
    """Every run a sweep TOML plans (see :mod:`mtpkit.md.sweep`); unstarted ones as 'not started'."""
    from mtpkit.md.sweep import load_sweep

    spec = load_sweep(path)
    found = {r.folder.resolve(): r for r in _from_run_folders(spec.output)} if spec.output.is_dir() else {}
    out = []
    for run in spec.runs:
        folder = Path(run.folder)
        rec = found.get(folder.resolve())
        if rec is None:
            rec = RunRecord(structure=run.run_id.rsplit("/", 2)[0], temperature_K=run.temperature,
                            replica=f"r{run.replica}", trajectory=folder / "traj.dump",
                            frame_interval_fs=float(run.md.get("timestep", 1.0)) * int(run.md.get("dump_every", 100)),
                            type_map=list(run.species), status="not started", folder=folder)
        out.append(rec)
    return out


def discover_runs(sweep: str | os.PathLike) -> list[RunRecord]:
    """All runs of a sweep: a sweep TOML (:mod:`mtpkit.md.sweep`), its output folder (run folders
    with state.json, statuses from its manifest.json), or a list-style manifest JSON."""
    sweep = Path(sweep)
    if sweep.is_file() and sweep.suffix.lower() == ".toml":
        runs = _from_sweep_toml(sweep)
    elif sweep.is_file():
        runs = _from_manifest(sweep)
    elif not sweep.is_dir():
        raise UserError(f"{sweep}: sweep folder not found")
    else:
        manifest = sweep / "manifest.json"
        listed = False
        if manifest.is_file():
            try:
                listed = isinstance(json.loads(manifest.read_text()).get("runs"), list)
            except (json.JSONDecodeError, AttributeError):
                listed = False
        runs = _from_manifest(manifest) if listed else _from_run_folders(sweep)
    if not runs:
        raise UserError(f"{sweep}: no runs found (no run folders with state.json, no manifest runs)")
    return runs
