"""Finding the runs of an MD sweep: what to analyse, grouped by structure and temperature.

Two layouts are read:

1. a manifest ``manifest.json`` (or any JSON given) in the sweep folder::

       {"runs": [{"structure": "NYZC75-a", "temperature_K": 600, "replica": 0,
                  "trajectory": "runs/a/600K/r0/traj.dump", "frame_interval_fs": 10.0,
                  "type_map": ["Na", "Y", "Zr", "Cl"], "status": "done"}, ...]}

   (paths relative to the manifest; ``status`` other than ``done``/``finished``
   marks an unfinished run);

2. the run folders written by :func:`mtpkit.md.run.run_md` anywhere below the sweep
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

__all__ = ["RunRecord", "discover_runs", "type_map_from_data", "mean_thermo_temperature"]

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


def _from_run_folders(root: Path) -> list[RunRecord]:
    out = []
    for state_path in sorted(root.rglob("state.json")):
        folder = state_path.parent
        try:
            state = json.loads(state_path.read_text())
            settings = state["settings"]
            temperature = float(settings["temperature"])
            interval = float(settings["timestep"]) * int(settings["dump_every"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise InputFileError(state_path, f"not an mtpkit MD state file ({exc})") from None
        rel = folder.relative_to(root).parts
        structure = "/".join(rel[:-2]) if len(rel) > 2 else ("/".join(rel[:-1]) if len(rel) > 1 else "")
        status = str(state.get("status") or ("done" if state.get("done") else "running"))
        data = folder / "structure.data"
        tmap = type_map_from_data(data) if data.is_file() else None
        out.append(RunRecord(structure=structure, temperature_K=temperature,
                             replica=rel[-1] if rel else folder.name, trajectory=folder / "traj.dump",
                             frame_interval_fs=interval, type_map=tmap, status=status, folder=folder,
                             measured_temperature_K=mean_thermo_temperature(folder / "thermo.dat")))
    return out


def discover_runs(sweep: str | os.PathLike) -> list[RunRecord]:
    """All runs of a sweep folder (a manifest file or folder, or run folders with state.json)."""
    sweep = Path(sweep)
    if sweep.is_file():
        return _from_manifest(sweep)
    if not sweep.is_dir():
        raise UserError(f"{sweep}: sweep folder not found")
    manifest = sweep / "manifest.json"
    runs = _from_manifest(manifest) if manifest.is_file() else _from_run_folders(sweep)
    if not runs:
        raise UserError(f"{sweep}: no runs found (no manifest.json and no run folders with state.json)")
    return runs
