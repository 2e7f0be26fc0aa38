"""MD sweeps: structures × temperatures × replicas, run in parallel, resumable.

A sweep is described by a TOML file (paths relative to it)::

    [potential]
    file = "pot.almtp"                  # .mtp or .almtp
    species = ["Na", "Y", "Zr", "Cl"]   # symbols of MTP types 0, 1, ...
    engine = "plugin"                   # or "external" (fix external + Python calculator),
                                        #   or "torch-sim" (batched, mtpkit.md.batched)
    # device = "cuda"                   # torch-sim only: "cpu" (default), "cuda", "cuda:1"
    # dtype = "float32"                 # torch-sim only: "float64" (default) or "float32"
    # batch_size = 64                   # torch-sim only: replicas per batch (default: automatic)
    # [potential.extrapolation]         # optional, plugin and torch-sim: every,
    # every = 10                        #   select_threshold, break_threshold, save

    [md]                                # any MDSettings field except seed
    ensemble = "npt"
    timestep = 2.0                      # fs
    steps = 1000000
    pressure = 0.0                      # GPa
    barostat = "tri"
    dump_every = 500
    restart_every = 10000
    supercell = [2, 2, 2]               # optional repeat of every structure

    [sweep]
    structures = ["structures/*.cif"]   # files or glob patterns
    temperatures = [350, 400, 500, 600, 700]   # K
    replicas = 5
    seed = 1000                         # root of the per-run velocity seeds (see run_seed)
    output = "runs"
    workers = 2                         # local worker processes
    # scheduler = "tcp://host:8786"     # run on a dask.distributed cluster instead

Every run gets ``<output>/<structure>/T<temperature>K/r<replica>/`` and an entry in
``<output>/manifest.json``, written atomically as runs finish: the JSON form of its
:class:`~mtpkit.md.run.MDResult` (:meth:`~mtpkit.md.run.MDResult.to_dict`)::

    status        "done", "extrapolation_break", "interrupted" or "failed"
    steps_done, steps      MD steps run / asked for
    timestep      fs
    wall_time     s
    max_gamma     largest extrapolation grade of the run (dimensionless; null: not graded)
    saved_steps, n_saved   MD steps of the configurations the pair style saved (deduplicated)
    last_good_file         failed runs: last sane configuration (extxyz), else null
    folder, files, message
    structure, temperature (K), replica, seed
    log_tail      failed runs only

:func:`mtpkit.md.run.read_result` on ``folder`` gives the Atoms (saved configurations)
back. Finished runs (``"done"`` or ``"extrapolation_break"``: a break is final) are
never redone; unfinished ones resume from their last checkpoint; a failed run is
reported with its log tail and does not stop the others.

Engine ``"torch-sim"`` runs every run of the sweep in this process as batched NPT/NVT
on the MTP's torch-sim model (:mod:`mtpkit.md.batched`: same run folders and files, so
everything below holds; ``workers`` and ``scheduler`` do not apply; on ``device = "cpu"``
torch uses ``md.threads`` threads, default 1: on a machine shared with other jobs more
threads than free cores make torch's OpenMP much slower, not faster).

Velocity seeds: run ``(iS, iT, r)`` (structure, temperature and replica index, in
file order) gets :func:`run_seed` ``(seed, iS, iT, r)``, a NumPy ``SeedSequence``
child of ``seed``: independent streams that do not collide when a sweep grows.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mtpkit.errors import InputFileError, UserError
from mtpkit.io_utils import atomic_write_json
from mtpkit.md.run import FINISHED, MDSettings

_MD_FIELDS = {f.name for f in fields(MDSettings)}


@dataclass
class RunSpec:
    """One run of a sweep (picklable: sent to workers)."""

    run_id: str
    structure: str
    temperature: float
    replica: int
    seed: int
    folder: str
    potential: str
    species: list[str]
    engine: str
    md: dict
    supercell: list[int] | None = None
    extrapolation: dict | None = None
    device: str = "cpu"
    dtype: str = "float64"
    batch_size: int | None = None


#: MD engines of a sweep (the schema :class:`mtpkit.config.schema.SweepPotentialCfg` lists the same)
ENGINES = ("plugin", "external", "torch-sim")
BATCHED = "torch-sim"


@dataclass
class SweepSpec:
    """A parsed sweep TOML."""

    source: Path
    output: Path
    runs: list[RunSpec]
    workers: int = 1
    scheduler: str | None = None
    extra: dict = field(default_factory=dict)


def load_sweep(path: str | Path) -> SweepSpec:
    """Parse and validate a sweep TOML (schema :class:`mtpkit.config.schema.SweepFile`); paths
    are resolved relative to it.

    Raises
    ------
    InputFileError
        Naming the file and field of the first problem.
    """
    from pydantic import ValidationError

    from mtpkit.config.load import read_toml
    from mtpkit.config.schema import SweepFile
    from mtpkit.errors import input_error_from_validation

    path, doc = read_toml(path, "sweep file")
    try:
        cfg = SweepFile.model_validate(doc)
    except ValidationError as exc:
        raise input_error_from_validation(path, exc) from None
    base = path.parent
    pot, sw = cfg.potential, cfg.sweep
    potential = (base / pot.file).resolve()
    _check_potential(path, potential, pot)
    md, supercell = _md_settings(path, dict(cfg.md))
    structures = _structure_files(path, base, sw.structures)
    output = (base / sw.output).resolve()
    batched = ({"device": pot.device or "cpu", "dtype": pot.dtype or "float64", "batch_size": pot.batch_size}
               if pot.engine == BATCHED else {})
    runs = []
    for i_s, struct in enumerate(structures):
        for i_t, temp in enumerate(sw.temperatures):
            for r in range(sw.replicas):
                run_id = f"{struct.stem}/T{temp:g}K/r{r}"
                runs.append(RunSpec(
                    run_id=run_id, structure=str(struct), temperature=float(temp), replica=r,
                    seed=run_seed(sw.seed, i_s, i_t, r), folder=str(output / run_id),
                    potential=str(potential), species=list(pot.species), engine=pot.engine, md=md,
                    supercell=supercell, extrapolation=pot.extrapolation, **batched))
    return SweepSpec(path, output, runs, workers=sw.workers, scheduler=sw.scheduler)


def _check_potential(path: Path, potential: Path, pot) -> None:
    """The potential file reads, the extrapolation settings are valid, torch-sim is installed."""
    from mtpkit.md.engines import Extrapolation, check_potential_file

    try:
        check_potential_file(potential)
    except InputFileError as exc:
        raise InputFileError(path, str(exc), field="potential.file") from None
    if pot.extrapolation is not None:
        try:
            Extrapolation(**pot.extrapolation)
        except (TypeError, UserError) as exc:
            raise InputFileError(path, str(exc), field="potential.extrapolation") from None
    if pot.engine == BATCHED:
        import importlib.util

        if importlib.util.find_spec("torch_sim") is None:
            raise InputFileError(path, "engine 'torch-sim' needs torch and torch-sim: "
                                 "pip install mtpkit[torch]", field="potential.engine")


def _md_settings(path: Path, md: dict) -> tuple[dict, list[int] | None]:
    """``[md]`` checked against :class:`MDSettings` (seed and temperature come from ``[sweep]``)."""
    supercell = md.pop("supercell", None)
    if supercell is not None and not (isinstance(supercell, list) and len(supercell) == 3
                                      and all(isinstance(k, int) and k > 0 for k in supercell)):
        raise InputFileError(path, "must be three positive integers", field="md.supercell")
    for key in md:
        if key not in _MD_FIELDS or key in ("seed", "temperature"):
            raise InputFileError(path, "unknown or not allowed here (seed and temperature come "
                                 "from [sweep])", field=f"md.{key}")
    try:
        MDSettings(**md, temperature=300.0)  # validate early, naming the field
    except UserError as exc:
        raise InputFileError(path, str(exc), field="md") from None
    return md, supercell


def _structure_files(path: Path, base: Path, patterns: list[str]) -> list[Path]:
    """Every structure file the ``[sweep]`` globs match (at least one each; distinct stems)."""
    structures: list[Path] = []
    for pat in patterns:
        hits = sorted(glob.glob(str(base / pat)))
        if not hits:
            raise InputFileError(path, f"no structure file matches {pat!r}", field="sweep.structures")
        structures += [Path(h).resolve() for h in hits]
    stems = [s.stem for s in structures]
    if len(set(stems)) != len(stems):
        raise InputFileError(path, "two structures have the same file stem", field="sweep.structures")
    return structures


def run_seed(seed: int, structure_index: int, temperature_index: int, replica: int) -> int:
    """The LAMMPS velocity seed of one sweep run, in 1 .. 2**31 - 1.

    ``SeedSequence(seed, spawn_key=(structure_index, temperature_index, replica))
    .generate_state(1)[0] % (2**31 - 1) + 1``: a deterministic function of the four
    integers (the same run always gets the same seed), with well-mixed seeds for
    different runs (the former ``seed + r + 1000*(iT + 100*iS)`` collided once a sweep had
    1000 replicas or 100 temperatures, and neighbouring roots shared most run seeds).
    """
    import numpy as np

    ss = np.random.SeedSequence(int(seed), spawn_key=(int(structure_index),
                                                       int(temperature_index), int(replica)))
    return int(ss.generate_state(1)[0]) % (2**31 - 1) + 1


def run_one(spec: RunSpec) -> dict:
    """Run (or resume) one sweep run in the current process; returns its manifest entry
    (:meth:`MDResult.to_dict <mtpkit.md.run.MDResult.to_dict>`, plus ``log_tail`` when it
    failed; see the module docstring)."""
    if spec.engine == BATCHED:  # one run on its own (e.g. sent to a worker): a batch of one
        from mtpkit.md.batched import run_batched

        return run_batched([spec], device=spec.device, dtype=spec.dtype, progress=None,
                           threads=int(spec.md.get("threads", 1)))[spec.run_id]
    from mtpkit.md.engines import ExternalEngine, Extrapolation, PluginEngine
    from mtpkit.md.run import run_md
    from mtpkit.md.structure import as_atoms

    atoms = as_atoms(spec.structure, "sweep.structures")
    if spec.supercell:
        atoms = atoms.repeat(spec.supercell)
    if spec.engine == "plugin":
        extra = Extrapolation(**spec.extrapolation) if spec.extrapolation else None
        engine = PluginEngine(spec.potential, extrapolation=extra)
    else:
        engine = ExternalEngine.from_potential(spec.potential, spec.species)
    settings = MDSettings(**spec.md, temperature=spec.temperature, seed=spec.seed)
    result = run_md(atoms, engine, spec.species, settings, spec.folder)
    entry = result.to_dict()
    if result.status == "failed":
        entry["log_tail"] = log_tail(Path(spec.folder))
    return entry


def log_tail(folder: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a run's ``log.lammps`` ('' when absent)."""
    log = folder / "log.lammps"
    if not log.is_file():
        return ""
    return "".join(log.read_text(errors="replace").splitlines(keepends=True)[-lines:])


def read_manifest(output: Path) -> dict:
    path = Path(output) / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {"runs": {}}


def run_sweep(spec: SweepSpec, executor=None,
              progress: Callable[[str], None] | None = print) -> dict:
    """Run every unfinished run of ``spec``; returns the manifest (also in ``manifest.json``).

    ``executor``: an :class:`mtpkit.executor.Executor` (default: local processes with
    ``spec.workers``, or Dask when ``spec.scheduler`` is set).
    """
    from mtpkit.executor import Executor, Job

    spec.output.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(spec.output)
    manifest["sweep"] = str(spec.source)
    entries: dict[str, Any] = manifest.setdefault("runs", {})
    todo = []
    for run in spec.runs:
        old = entries.get(run.run_id)
        if old and old.get("status") in FINISHED and "max_gamma" in old:
            continue
        if _finished_on_disk(Path(run.folder), run.md.get("steps", MDSettings.steps)):
            # finished, but the manifest does not say so (or predates max_gamma): from disk
            entries[run.run_id] = _entry_on_disk(run, old)
            continue
        if old and old.get("status") in FINISHED:
            continue  # recorded as finished; its folder is gone or was never written
        todo.append(run)
    atomic_write_json(spec.output / "manifest.json", manifest)
    skipped = len(spec.runs) - len(todo)
    if progress:
        progress(f"sweep: {len(spec.runs)} runs, {skipped} already finished, {len(todo)} to run")
    if not todo:
        return manifest

    total, done_count = len(todo), 0

    def record(run: RunSpec, entry: dict) -> None:
        nonlocal done_count
        done_count += 1
        entry.update(structure=run.structure, temperature=run.temperature,
                     replica=run.replica, seed=run.seed)
        if run.engine == BATCHED:
            entry.update(engine=BATCHED, device=run.device)
        entries[run.run_id] = entry
        atomic_write_json(spec.output / "manifest.json", manifest)
        if progress:
            msg = (f"[{done_count}/{total}] {run.run_id}: {entry['status']} "
                   f"({entry.get('steps_done')}/{entry.get('steps')} steps, "
                   f"{entry.get('wall_time', 0.0):.1f} s)")
            if entry["status"] != "done" and entry.get("message"):
                msg += f" - {entry['message']}"
            progress(msg)

    def on_done(done: int, total: int, outcome) -> None:
        run = by_key[outcome.key]
        if outcome.ok:
            entry = outcome.result
        else:
            entry = {"status": "failed", "steps_done": _steps_on_disk(Path(run.folder)),
                     "steps": run.md.get("steps", MDSettings.steps),
                     "timestep": run.md.get("timestep", MDSettings.timestep),
                     "wall_time": outcome.wall_time, "folder": run.folder,
                     "message": outcome.error, "files": {}, "max_gamma": None,
                     "saved_steps": [], "n_saved": 0, "last_good_file": None,
                     "log_tail": log_tail(Path(run.folder)) or outcome.traceback[-2000:]}
        record(run, entry)

    batched = [run for run in todo if run.engine == BATCHED]
    todo = [run for run in todo if run.engine != BATCHED]
    if todo:
        by_key = {run.run_id: run for run in todo}
        jobs = [Job(run.run_id, run_one, (run,)) for run in todo]
        own = executor is None
        if own:
            executor = Executor(workers=spec.workers, scheduler=spec.scheduler)
        try:
            executor.run(jobs, progress=on_done)
        finally:
            if own:
                executor.close()
    if batched:
        _run_batched(spec, batched, record, progress)
    return manifest


def _run_batched(spec: SweepSpec, runs: list[RunSpec], record, progress) -> None:
    """The torch-sim runs, batched in this process (one batch per device and settings)."""
    from mtpkit.md.batched import run_batched

    recorded: set[str] = set()

    def on_done(run: RunSpec, entry: dict) -> None:
        recorded.add(run.run_id)
        record(run, entry)

    by_device: dict[tuple, list[RunSpec]] = {}
    for run in runs:
        by_device.setdefault((run.device, run.dtype, run.batch_size), []).append(run)
    for (device, dtype, size), group in by_device.items():
        threads = max(int(r.md.get("threads", 1)) for r in group)
        try:
            run_batched(group, device=device, dtype=dtype, batch_size=size, threads=threads,
                        progress=progress, on_done=on_done)
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001  # engine set-up errors fail these runs, not the sweep
            import traceback

            tail = traceback.format_exc()[-2000:]
            for run in group:
                if run.run_id not in recorded:
                    record(run, {"status": "failed", "steps_done": _steps_on_disk(Path(run.folder)),
                                 "steps": run.md.get("steps", MDSettings.steps),
                                 "timestep": run.md.get("timestep", MDSettings.timestep),
                                 "wall_time": 0.0, "folder": run.folder,
                                 "message": f"torch-sim engine error: {exc}", "files": {},
                                 "max_gamma": None, "saved_steps": [], "n_saved": 0,
                                 "last_good_file": None, "log_tail": tail})


def _finished_on_disk(folder: Path, steps: int | None = None) -> bool:
    """A finished run in ``folder``: done (with ``steps`` steps) or stopped at an
    extrapolation break (final)."""
    from mtpkit.md.run import is_finished

    return is_finished(folder, steps)


def _entry_on_disk(run: RunSpec, old: dict | None) -> dict:
    """The manifest entry of a finished run, read back from its folder."""
    from mtpkit.md.run import read_result

    result = read_result(Path(run.folder))
    entry = {**(old or {}), **result.to_dict()}
    entry.pop("log_tail", None)
    entry.update(structure=run.structure, temperature=run.temperature, replica=run.replica,
                 seed=run.seed)
    return entry


def _steps_on_disk(folder: Path) -> int:
    try:
        return int(json.loads((folder / "state.json").read_text()).get("step", 0))
    except (OSError, json.JSONDecodeError, ValueError):
        return 0
