"""The active-learning loop behind ``mtpkit learn``: explore, select, label, refit, report.

Iteration 0 labels the starting structures (and rattled copies, and an
optional labelled starting set) and fits the first potential from a template.
Every later iteration ``k``:

1. **explore**: one MD run per structure, temperature (and pressure) with the
   potential of iteration ``k-1``; every ``grade_every`` steps the grade of the
   current configuration is computed against its active set; configurations
   above ``gamma_select`` become candidates, a grade above ``gamma_break``
   stops the run. If every run reached its length with max grade below
   ``stopping.gamma_max`` the campaign is done.
2. **select**: candidates are deduplicated (against each other and the training
   set) and a D-optimal subset of at most ``max_labels_per_iteration`` is chosen
   (:func:`~mtpkit.active_learning.selection.select_add`).
3. **label**: through :class:`mtpkit.executor.Executor` (local processes or Dask);
   each finished label is written to ``labels/<id>.extxyz`` at once; failures
   are retried, then written to ``quarantine/<id>.json`` with their reason.
4. **train**: refit from the previous potential (warm start) on all labels;
   the active set is rebuilt over the training set.
5. **report**: ``iter_NNN/report.json`` (grade statistics, labels added,
   errors on the held-out set, time per phase).

State lives in the campaign folder; ``state.json`` (iteration, phase, phase
times) is replaced atomically after each phase, every phase first looks for
its own finished output, and labels are keyed by a hash of the configuration,
so ``kill -9`` at any moment followed by ``--resume`` loses no finished label
and labels nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from mtpkit.active_learning.active_set import ActiveSet, load_npz, save_npz, to_mlip
from mtpkit.active_learning.campaign import Campaign
from mtpkit.active_learning.grades import row_blocks
from mtpkit.active_learning.labellers import label_one
from mtpkit.active_learning.selection import build_active_set, select_add
from mtpkit.errors import UserError
from mtpkit.io_utils import atomic_open, atomic_write_json

Log = Callable[[str], None]
PHASES = ("explore", "select", "label", "train", "report")


# --------------------------------------------------------------------------- small helpers


def read_structures(files: Sequence[str], supercell: Sequence[int]) -> list[Atoms]:
    """Starting structures (ASE-readable files), repeated by ``supercell``."""
    from ase.io import read

    out = []
    for f in files:
        try:
            atoms = read(f)
        except Exception as exc:  # noqa: BLE001
            raise UserError(f"structures.files: cannot read {f}: {exc}") from None
        atoms.calc = None
        out.append(atoms.repeat(tuple(int(x) for x in supercell)))
    return out


def config_id(atoms: Atoms) -> str:
    """Stable 16-hex-digit key of a configuration (species, positions and cell to 1e-6 Å)."""
    h = hashlib.sha1()
    h.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
    h.update(np.round(np.asarray(atoms.positions, dtype=float), 6).tobytes())
    h.update(np.round(np.asarray(atoms.cell.array, dtype=float), 6).tobytes())
    return h.hexdigest()[:16]


def write_images(path: Path, images: Sequence[Atoms]) -> None:
    """Atomic extended-XYZ write (labels kept when atoms carry a calculator)."""
    from ase.io import write

    with atomic_open(path, "w") as fh:
        if images:
            write(fh, list(images), format="extxyz")


def read_images(path: Path) -> list[Atoms]:
    from ase.io import read

    if not path.exists() or path.stat().st_size == 0:
        return []
    return list(read(path, index=":", format="extxyz"))


def read_labelled(path: str | os.PathLike, species: Sequence[str]) -> list[Atoms]:
    """Labelled configurations from a ``.cfg`` (types mapped to ``species``) or any ASE format."""
    if str(path).endswith(".cfg"):
        from mtpkit.potentials.cfg import read_cfg

        return read_cfg(path, species)
    from ase.io import read

    return list(read(path, index=":"))


def max_shift(a: Atoms, b: Atoms) -> float:
    """Largest atomic displacement between two configurations of the same atoms (minimum image, Å)."""
    if len(a) != len(b) or not np.array_equal(a.numbers, b.numbers):
        return np.inf
    if not np.allclose(a.cell.array, b.cell.array, atol=1e-6):
        return np.inf
    d = b.positions - a.positions
    if a.pbc.any():
        from ase.geometry import find_mic

        d, _ = find_mic(d, a.cell, a.pbc)
    return float(np.sqrt((d ** 2).sum(axis=1)).max())


# --------------------------------------------------------------------------- state


@dataclass
class LoopState:
    iteration: int = 0
    phase: str = "explore"
    done: bool = False
    stop_reason: str = ""
    phase_times: dict | None = None  # "iter/phase" -> seconds (accumulated over resumes)

    @classmethod
    def load(cls, path: Path) -> LoopState:
        d = json.loads(path.read_text())
        return cls(**d)

    def save(self, path: Path) -> None:
        atomic_write_json(path, self.__dict__)


class Loop:
    """Runs a :class:`Campaign` in its folder (see the module docstring)."""

    def __init__(self, campaign: Campaign, log: Log | None = print) -> None:
        self.c = campaign
        self.folder = campaign.folder
        self.say: Log = log if log is not None else (lambda _m: None)
        self.species = campaign.species
        self.labels_dir = self.folder / "labels"
        self.quarantine_dir = self.folder / "quarantine"
        self.state_path = self.folder / "state.json"
        self._heldout: list[Atoms] | None = None

    # --- paths ---------------------------------------------------------------------
    def it_dir(self, k: int) -> Path:
        return self.folder / f"iter_{k:03d}"

    # --- entry ---------------------------------------------------------------------
    def start(self, resume: bool = False) -> LoopState:
        """Create the folder (or resume it) and run until the stopping rule or ``max_iterations``."""
        if self.state_path.exists():
            if not resume:
                raise UserError(f"{self.folder} already holds a campaign; use --resume to continue it "
                                "or choose another campaign.folder")
            state = LoopState.load(self.state_path)
            if (state.done and state.stop_reason.startswith("reached max_iterations")
                    and state.iteration <= self.c.campaign.max_iterations):
                state.done, state.stop_reason = False, ""  # max_iterations was raised: go on
            self.say(f"resuming iteration {state.iteration}, phase {state.phase}")
        else:
            if resume:
                raise UserError(f"--resume: no campaign state in {self.folder}")
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.folder / "campaign.json", self.c.to_dict())
            state = LoopState(iteration=0, phase="explore", phase_times={})
            state.save(self.state_path)
        if state.phase_times is None:
            state.phase_times = {}
        while not state.done:
            k, phase = state.iteration, state.phase
            t0 = time.perf_counter()
            getattr(self, f"phase_{phase}")(k, state)
            key = f"{k}/{phase}"
            state.phase_times[key] = state.phase_times.get(key, 0.0) + time.perf_counter() - t0
            if state.done:
                state.save(self.state_path)
                break
            nxt = PHASES.index(phase) + 1
            if nxt == len(PHASES):
                state.iteration, state.phase = k + 1, "explore"
                if state.iteration >= self.c.campaign.max_iterations + 1:
                    state.done, state.stop_reason = True, f"reached max_iterations = {self.c.campaign.max_iterations}"
            else:
                state.phase = PHASES[nxt]
            state.save(self.state_path)
        self.say(f"campaign stopped: {state.stop_reason}")
        self._write_summary(state)
        return state

    # --- potentials ----------------------------------------------------------------
    def potential_path(self, k: int) -> Path:
        return self.it_dir(k) / "pot.mtp"

    def load_potential(self, k: int):
        from mtpkit.potentials.mtp_io import read_mtp

        return read_mtp(self.potential_path(k))

    def load_active_set(self, k: int) -> ActiveSet:
        return load_npz(self.it_dir(k) / "active_set.npz")

    # --- phase 1: explore ------------------------------------------------------------
    def phase_explore(self, k: int, state: LoopState) -> None:
        d = self.it_dir(k)
        d.mkdir(parents=True, exist_ok=True)
        out = d / "explore.json"
        if out.exists():
            summary = json.loads(out.read_text())
        elif k == 0:
            summary = self._initial_candidates(d)
        else:
            summary = self._explore(k, d)
        if k > 0 and summary["runs"] and all(
                r["steps_done"] >= r["steps"] and r["max_grade"] < self.c.stopping.gamma_max
                for r in summary["runs"]):
            state.done = True
            state.stop_reason = (f"every exploration run reached {self.c.exploration.steps} steps with max grade "
                                 f"< {self.c.stopping.gamma_max} (iteration {k}); final potential "
                                 f"{self.potential_path(k - 1)}")
            self._report(k, state, final=True)

    def _initial_candidates(self, d: Path) -> dict:
        s = self.c.structures
        rng = np.random.default_rng(self.c.campaign.seed)
        cands = []
        for atoms in read_structures(s.files, s.supercell):
            cands.append(atoms.copy())
            for _ in range(s.rattled_per_structure):
                a = atoms.copy()
                a.positions += rng.normal(scale=s.rattle, size=a.positions.shape)
                cands.append(a)
        write_images(d / "candidates.extxyz", cands)
        summary = {"runs": [], "candidates": len(cands)}
        atomic_write_json(d / "explore.json", summary)
        return summary

    def _explore(self, k: int, d: Path) -> dict:
        ex = self.c.exploration
        mtp = self.load_potential(k - 1)
        aset = self.load_active_set(k - 1)
        structures = read_structures(self.c.structures.files, self.c.structures.supercell)
        runs_dir = d / "runs"
        runs_dir.mkdir(exist_ok=True)
        pressures = ex.pressures if ex.ensemble == "npt" else [None]
        engine = exploration_engine(ex.engine, aset)
        self.say(f"iter {k}: exploring with the {engine} engine")
        results, all_cands = [], []
        r = 0
        for si, atoms in enumerate(structures):
            for T in ex.temperatures:
                for P in pressures:
                    rfile = runs_dir / f"run_{r:03d}.json"
                    cfile = runs_dir / f"run_{r:03d}.extxyz"
                    if rfile.exists():  # finished before an interruption
                        res = json.loads(rfile.read_text())
                    else:
                        seed = int(self.c.campaign.seed) * 100003 + k * 1009 + r
                        gs, gb = self.c.selection.gamma_select, self.c.selection.gamma_break
                        pr = None if P is None else float(P)
                        if engine == "lammps":
                            res, cands = explore_lammps(self.it_dir(k - 1) / "pot.almtp", atoms, self.species,
                                                        float(T), pr, ex, gs, gb, seed, runs_dir / f"md_{r:03d}")
                        else:
                            res, cands = explore_ase(mtp, aset, atoms, self.species, float(T), pr, ex, gs, gb,
                                                     seed)
                        res["engine"] = engine
                        res.update(structure=si, temperature=float(T), pressure=P)
                        write_images(cfile, cands)
                        atomic_write_json(rfile, res)
                    results.append(res)
                    all_cands.extend(read_images(cfile))
                    self.say(f"  iter {k} run {r}: structure {si}, {T} K: {res['status']} after "
                             f"{res['steps_done']}/{res['steps']} steps, max grade {res['max_grade']:.3g}, "
                             f"{res['candidates']} candidates")
                    r += 1
        write_images(d / "candidates.extxyz", all_cands)
        summary = {"runs": results, "candidates": len(all_cands),
                   "md_time": float(sum(x["md_time"] for x in results))}
        atomic_write_json(d / "explore.json", summary)
        return summary

    # --- phase 2: select -------------------------------------------------------------
    def training_images(self, upto: int) -> list[Atoms]:
        """Labelled training set after iteration ``upto``: starting set + labels, in selection order."""
        images: list[Atoms] = []
        if self.c.structures.initial_training:
            images.extend(read_labelled(self.c.structures.initial_training, self.species))
        for k in range(upto + 1):
            sel = self.it_dir(k) / "selected.json"
            if not sel.exists():
                continue
            for cid in json.loads(sel.read_text())["ids"]:
                f = self.labels_dir / f"{cid}.extxyz"
                if f.exists():
                    images.extend(read_images(f))
        return images

    def phase_select(self, k: int, state: LoopState) -> None:
        d = self.it_dir(k)
        if (d / "selected.json").exists():
            return
        cands = read_images(d / "candidates.extxyz")
        train = self.training_images(k - 1)
        unique: list[Atoms] = []
        tol = self.c.selection.dedup_distance
        for a in cands:
            if any(max_shift(a, b) <= tol for b in unique) or any(max_shift(a, b) <= tol for b in train):
                continue
            unique.append(a)
        info: dict = {"candidates": len(cands), "unique": len(unique)}
        if k == 0:
            chosen = unique
            info["grades"] = []
        elif unique:
            mtp = self.load_potential(k - 1)
            aset = self.load_active_set(k - 1)
            blocks = row_blocks(mtp, unique, aset.mode, aset.basis, self.species,
                                energy_weight=aset.energy_weight or 1.0, weight_scaling=aset.weight_scaling)
            sel = select_add(aset, blocks, None, limit=self.c.selection.max_labels_per_iteration)
            chosen = [unique[int(i)] for i in sel.selected]
            info["grades"] = [float(g) for g in sel.grades]
            info["log_det_gain"] = sel.log_det_gain
        else:
            chosen = []
            info["grades"] = []
        for a in chosen:
            a.calc = None
        ids = [config_id(a) for a in chosen]
        write_images(d / "selected.extxyz", chosen)
        info["ids"] = ids
        atomic_write_json(d / "selected.json", info)
        self.say(f"iter {k}: selected {len(chosen)} of {len(unique)} unique candidates ({len(cands)} found)")

    # --- phase 3: label --------------------------------------------------------------
    def phase_label(self, k: int, state: LoopState) -> None:
        d = self.it_dir(k)
        info = json.loads((d / "selected.json").read_text())
        chosen = read_images(d / "selected.extxyz")
        self.labels_dir.mkdir(exist_ok=True)
        self.quarantine_dir.mkdir(exist_ok=True)
        todo = [(cid, a) for cid, a in zip(info["ids"], chosen)
                if not (self.labels_dir / f"{cid}.extxyz").exists()
                and not (self.quarantine_dir / f"{cid}.json").exists()]
        todo += [t for t in self._retries() if t[0] not in {c for c, _ in todo}]
        t0 = time.perf_counter()
        attempts: dict[str, list[str]] = {cid: [] for cid, _ in todo}
        for _attempt in range(1 + self.c.labeller.retries):
            if not todo:
                break
            failed = self._label_batch(todo, attempts)
            todo = [(cid, a) for cid, a in todo if cid in failed]
        retried = self.quarantine_dir / "retry"
        for cid in attempts:
            if retried.exists():
                (retried / f"{cid}.json").unlink(missing_ok=True)
        for cid, a in todo:
            atomic_write_json(self.quarantine_dir / f"{cid}.json",
                              {"id": cid, "iteration": k, "reasons": attempts[cid], "reason": attempts[cid][-1],
                               "formula": a.get_chemical_formula()})
            self.say(f"  quarantined {cid}: {attempts[cid][-1]}")
        done = sum((self.labels_dir / f"{cid}.extxyz").exists() for cid in info["ids"])
        self.say(f"iter {k}: {done} of {len(info['ids'])} labelled, {len(todo)} quarantined "
                 f"({time.perf_counter() - t0:.1f} s)")

    def retry_quarantined(self) -> int:
        """Release every quarantined configuration for one more labelling attempt.

        They are labelled in the next label phase (after ``--resume``); a label
        that fails again goes back to quarantine. Returns how many were released.
        """
        retry = self.quarantine_dir / "retry"
        n = 0
        for q in sorted(self.quarantine_dir.glob("*.json")) if self.quarantine_dir.exists() else []:
            retry.mkdir(parents=True, exist_ok=True)
            os.replace(q, retry / q.name)
            n += 1
        return n

    def _retries(self) -> list[tuple[str, Atoms]]:
        """Released quarantined configurations still without a label, with their atoms."""
        retry = self.quarantine_dir / "retry"
        out = []
        for q in sorted(retry.glob("*.json")) if retry.exists() else []:
            rec = json.loads(q.read_text())
            cid, k = rec["id"], int(rec["iteration"])
            if (self.labels_dir / f"{cid}.extxyz").exists():
                continue
            ids = json.loads((self.it_dir(k) / "selected.json").read_text())["ids"]
            atoms = read_images(self.it_dir(k) / "selected.extxyz")
            if cid in ids:
                out.append((cid, atoms[ids.index(cid)]))
        return out

    def _label_batch(self, todo: list[tuple[str, Atoms]], attempts: dict[str, list[str]]) -> set[str]:
        """Label ``todo``; each success is written as it finishes; returns the ids that failed."""
        spec = self.c.labeller.spec()
        failed: set[str] = set()

        def finish(cid: str, result: tuple[Atoms | None, str | None] | None, error: str = "") -> None:
            labelled, reason = result if result is not None else (None, error)
            if labelled is not None:
                write_images(self.labels_dir / f"{cid}.extxyz", [labelled])
            else:
                attempts[cid].append(reason or "unknown failure")
                failed.add(cid)

        lab = self.c.labeller
        if lab.workers == 1 and not lab.scheduler:
            for cid, a in todo:
                finish(cid, label_one(spec, a))
            return failed
        from mtpkit.executor import Executor, Job

        jobs = [Job(cid, label_one, (spec, a)) for cid, a in todo]
        with Executor(workers=lab.workers, scheduler=lab.scheduler or None) as ex:
            ex.run(jobs, progress=lambda _done, _total, o: finish(o.key, o.result if o.ok else None, o.error))
        return failed

    # --- phase 4: train --------------------------------------------------------------
    def phase_train(self, k: int, state: LoopState) -> None:
        d = self.it_dir(k)
        if (d / "active_set.npz").exists() and self.potential_path(k).exists():
            return
        from mtpkit.potentials.mtp_io import read_mtp, write_mtp
        from mtpkit.potentials.training import train

        images = self.training_images(k)
        if not images:
            raise UserError("no labelled configurations to train on (all labels quarantined?)")
        if k == 0:
            if self.c.potential.initial:
                init = read_mtp(self.c.potential.initial)
            else:
                from mtpkit.potentials.templates import make_template

                p = self.c.potential
                init = make_template(p.level, len(self.species), p.radial_basis_size, p.min_dist, p.max_dist)
        else:
            init = self.load_potential(k - 1)
        t0 = time.perf_counter()
        settings = dict(self.c.training)
        settings.setdefault("seed", int(self.c.campaign.seed))
        res = train(images, init, species=self.species, log=None, **settings)
        train_time = time.perf_counter() - t0
        mtp = res.mtp
        mtp.active_set = None
        write_mtp(self.potential_path(k), mtp)
        s = self.c.selection
        t1 = time.perf_counter()
        blocks = row_blocks(mtp, images, s.mode, s.basis, self.species)
        aset = build_active_set(blocks, images, mode=s.mode, basis=s.basis)
        if s.basis == "all":
            with_as = mtp.copy()
            with_as.active_set = to_mlip(aset, self.species)
            write_mtp(d / "pot.almtp", with_as)
        save_npz(d / "active_set.npz", aset)
        atomic_write_json(d / "train.json", {
            "train_time": train_time, "active_set_time": time.perf_counter() - t1,
            "n_train": len(images), "iterations": res.iterations, "stop_reason": res.stop_reason,
            "train_metrics": res.train_metrics, "valid_metrics": res.valid_metrics,
            "active_set_filled": aset.filled, "active_set_size": aset.size})
        self.say(f"iter {k}: trained on {len(images)} configurations in {train_time:.1f} s "
                 f"({res.stop_reason}); active set {aset.filled}/{aset.size} rows")

    # --- phase 5: report -------------------------------------------------------------
    def phase_report(self, k: int, state: LoopState) -> None:
        self._report(k, state, final=False)

    def heldout(self) -> list[Atoms]:
        if self._heldout is None:
            self._heldout = []
            if self.c.validation.heldout:
                self._heldout = read_labelled(self.c.validation.heldout, self.species)
        return self._heldout

    def _errors(self, k: int) -> dict | None:
        held = self.heldout()
        if not held or not self.potential_path(k).exists():
            return None
        return heldout_errors(self.load_potential(k), held, self.species)

    def _report(self, k: int, state: LoopState, final: bool) -> None:
        d = self.it_dir(k)
        explore = json.loads((d / "explore.json").read_text()) if (d / "explore.json").exists() else {"runs": []}
        sel = json.loads((d / "selected.json").read_text()) if (d / "selected.json").exists() else {}
        trn = json.loads((d / "train.json").read_text()) if (d / "train.json").exists() else {}
        grades = [r["max_grade"] for r in explore.get("runs", [])]
        ids = sel.get("ids", [])
        labelled = sum((self.labels_dir / f"{c}.extxyz").exists() for c in ids)
        quarantined = sum((self.quarantine_dir / f"{c}.json").exists() for c in ids)
        times = {ph: (state.phase_times or {}).get(f"{k}/{ph}", 0.0) for ph in PHASES}
        md_time = float(explore.get("md_time", 0.0))
        train_time = float(trn.get("train_time", 0.0))
        label_time = times["label"]
        total = sum(times.values())
        report = {
            "iteration": k,
            "final": final,
            "runs": len(explore.get("runs", [])),
            "runs_completed": sum(r["steps_done"] >= r["steps"] for r in explore.get("runs", [])),
            "max_grade": {"max": max(grades) if grades else None,
                          "median": float(np.median(grades)) if grades else None,
                          "per_run": grades},
            "candidates": explore.get("candidates", 0),
            "unique_candidates": sel.get("unique"),
            "labels_added": labelled,
            "quarantined": quarantined,
            "training_size": trn.get("n_train"),
            "train_metrics": trn.get("train_metrics"),
            "heldout_errors": None if final else self._errors(k),
            "phase_times_s": times,
            "md_time_s": md_time,
            "train_time_s": train_time,
            "label_time_s": label_time,
            "bookkeeping_time_s": max(total - md_time - train_time - label_time, 0.0),
        }
        atomic_write_json(d / "report.json", report)
        he = report["heldout_errors"]
        self.say(f"iter {k} report: max grade {report['max_grade']['max']}, labels +{labelled}, "
                 f"quarantined {quarantined}"
                 + (f", held-out force RMSE {he['force_rmse']:.4f} eV/Å" if he else ""))

    def _write_summary(self, state: LoopState) -> None:
        reports = []
        for k in range(state.iteration + 1):
            f = self.it_dir(k) / "report.json"
            if f.exists():
                reports.append(json.loads(f.read_text()))
        times = state.phase_times or {}
        total = float(sum(times.values()))
        md = sum(r.get("md_time_s", 0.0) for r in reports)
        tr = sum(r.get("train_time_s", 0.0) for r in reports)
        la = sum(r.get("label_time_s", 0.0) for r in reports)
        summary = {"stop_reason": state.stop_reason, "iterations": state.iteration,
                   "labels": len(list(self.labels_dir.glob("*.extxyz"))) if self.labels_dir.exists() else 0,
                   "quarantined": len(list(self.quarantine_dir.glob("*.json"))) if self.quarantine_dir.exists() else 0,
                   "wall_time_s": total, "md_time_s": md, "train_time_s": tr, "label_time_s": la,
                   "bookkeeping_share": (total - md - tr - la) / total if total > 0 else 0.0,
                   "reports": reports}
        atomic_write_json(self.folder / "summary.json", summary)


# --------------------------------------------------------------------------- exploration (ASE)


def explore_ase(mtp, aset: ActiveSet, atoms: Atoms, species: Sequence[str], temperature: float,
                pressure: float | None, ex, gamma_select: float, gamma_break: float, seed: int
                ) -> tuple[dict, list[Atoms]]:
    """One Langevin (NVT) or Berendsen (NPT) MD run with the mtpkit calculator and grade checks.

    Returns the run record (``status``: ``done``, ``break`` or ``failed``;
    ``steps_done``; ``max_grade``; ``md_time`` s) and the candidate
    configurations (grade > ``gamma_select``; at most
    ``ex.max_candidates_per_run``, the highest kept, each with ``info["MV_grade"]``).
    """
    import warnings

    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from mtpkit.active_learning.grades import config_row, site_rows
    from mtpkit.potentials import core
    from mtpkit.potentials.calculator import MTPCalculator
    from mtpkit.potentials.species import atom_types

    rng = np.random.default_rng(seed)
    work = atoms.copy()
    work.calc = MTPCalculator(mtp, species=list(species), on_short_distance="ignore")
    compiled = core.compile_mtp(mtp)
    types = atom_types(work, species, mtp.species_count)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        MaxwellBoltzmannDistribution(work, temperature_K=temperature, rng=rng)
    if pressure is None:
        dyn = Langevin(work, ex.timestep * units.fs, temperature_K=temperature,
                       friction=ex.friction / units.fs, fixcm=False, rng=rng)
    else:
        from ase.md.nptberendsen import NPTBerendsen

        dyn = NPTBerendsen(work, ex.timestep * units.fs, temperature_K=temperature,
                           pressure_au=pressure * units.GPa, taut=100 * units.fs, taup=1000 * units.fs,
                           compressibility_au=4.57e-5 / units.bar)

    def grade_now() -> float:
        if aset.mode == "configuration":
            row = config_row(compiled, work, types, aset.basis, aset.energy_weight or 1.0, aset.weight_scaling)
            return float(aset.grades(row[None, :])[0])
        return float(aset.grades(site_rows(compiled, work, types, aset.basis)).max())

    cands: list[tuple[float, Atoms]] = []
    steps_done, max_grade, status, t0 = 0, 0.0, "done", time.perf_counter()
    md_time = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while steps_done < ex.steps:
            n = min(ex.grade_every, ex.steps - steps_done)
            t1 = time.perf_counter()
            try:
                dyn.run(n)
            except Exception as exc:  # noqa: BLE001  # the MTP left its domain badly enough to fail
                md_time += time.perf_counter() - t1
                status = f"failed: {type(exc).__name__}: {exc}"
                break
            md_time += time.perf_counter() - t1
            steps_done += n
            if not np.all(np.isfinite(work.positions)):
                status = "failed: non-finite positions"
                break
            g = grade_now()
            max_grade = max(max_grade, g)
            if g > gamma_select:
                snap = work.copy()
                snap.calc = None
                snap.info = {"MV_grade": g, "md_step": steps_done, "temperature": temperature}
                cands.append((g, snap))
            if g > gamma_break:
                status = "break"
                break
    cands.sort(key=lambda t: -t[0])
    kept = [a for _, a in cands[: ex.max_candidates_per_run]]
    return ({"status": status, "steps_done": steps_done, "steps": ex.steps, "max_grade": max_grade,
             "candidates": len(kept), "md_time": md_time, "wall_time": time.perf_counter() - t0}, kept)


def exploration_engine(requested: str, aset: ActiveSet) -> str:
    """``"lammps"`` (the ``pair_style mtp`` plugin with extrapolation control) or ``"ase"``.

    ``auto`` takes LAMMPS when the plugin is built and the active set is over
    all parameters (what the plugin reads from an ``.almtp``), else ASE.
    """
    if requested == "ase":
        return "ase"
    try:
        from mtpkit.md import lammps_env

        lammps_env.plugin_path()
        ok = aset.basis == "all"
    except Exception:  # noqa: BLE001
        ok = False
    if requested == "lammps" and not ok:
        raise UserError("exploration.engine = 'lammps' needs the built mtpkit LAMMPS plugin and "
                        "selection.basis = 'all'")
    return "lammps" if ok else "ase"


def explore_lammps(almtp: Path, atoms: Atoms, species: Sequence[str], temperature: float,
                   pressure: float | None, ex, gamma_select: float, gamma_break: float, seed: int,
                   folder: Path) -> tuple[dict, list[Atoms]]:
    """One LAMMPS run with ``pair_style mtp`` extrapolation control (:mod:`mtpkit.md`).

    Grades are computed by the plugin every ``grade_every`` steps against the
    active set stored in ``almtp``; configurations above ``gamma_select`` are
    saved by the plugin, a grade above ``gamma_break`` stops the run.
    """
    from ase.io import read

    from mtpkit.md.engines import Extrapolation, PluginEngine, potential_min_dist
    from mtpkit.md.run import MDSettings, run_md

    t0 = time.perf_counter()
    eng = PluginEngine(potential=str(almtp), extrapolation=Extrapolation(
        every=ex.grade_every, select_threshold=gamma_select, break_threshold=gamma_break,
        save="extrapolative.extxyz"))
    settings = MDSettings(ensemble=ex.ensemble, temperature=temperature, steps=ex.steps, timestep=ex.timestep,
                          pressure=0.0 if pressure is None else pressure, barostat="iso", seed=seed % 900000 + 1,
                          thermo_every=ex.grade_every, dump_every=ex.steps, restart_every=ex.steps,
                          # only a real collapse is a blow-up; close contacts beyond the training
                          # data are what the extrapolation grade is for
                          min_dist=0.6 * (potential_min_dist(almtp) or 1.0))
    res = run_md(atoms, eng, list(species), settings, folder)
    max_grade = 0.0
    thermo = folder / "thermo.dat"
    if thermo.exists():
        data = [ln.split() for ln in thermo.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        vals = [float(row[-1]) for row in data if row]
        max_grade = max(vals) if vals else 0.0
    cands = []
    saved = folder / "extrapolative.extxyz"
    if saved.exists() and saved.stat().st_size:
        for a in read(saved, index=":", format="extxyz"):
            g = float(a.info.get("max_gamma", 0.0))
            max_grade = max(max_grade, g)
            b = Atoms(a.get_chemical_symbols(), positions=a.positions, cell=a.cell, pbc=True)
            b.info = {"MV_grade": g, "md_step": int(a.info.get("step", 0)), "temperature": temperature}
            cands.append((g, b))
    status = {"done": "done", "extrapolation_break": "break"}.get(res.status, f"failed: {res.message}")
    last = folder / "last_good.extxyz"
    if status.startswith("failed") and last.exists():  # where the potential went wrong: worth a label
        a = read(last, format="extxyz")
        b = Atoms(a.get_chemical_symbols(), positions=a.positions, cell=a.cell, pbc=True)
        b.info = {"MV_grade": gamma_break, "md_step": -1, "temperature": temperature}
        cands.append((gamma_break, b))
    cands.sort(key=lambda t: -t[0])
    kept = [a for _, a in cands[: ex.max_candidates_per_run]]
    return ({"status": status, "steps_done": int(res.steps_done), "steps": ex.steps, "max_grade": max_grade,
             "candidates": len(kept), "md_time": float(res.wall_time), "wall_time": time.perf_counter() - t0},
            kept)


def heldout_errors(mtp, images: Sequence[Atoms], species: Sequence[str]) -> dict:
    """Energy (eV/atom) and force (eV/Å) RMSE and MAE of ``mtp`` on labelled ``images``."""
    from mtpkit.potentials.calculator import MTPCalculator

    calc = MTPCalculator(mtp, species=list(species), on_short_distance="ignore")
    de, df = [], []
    for a in images:
        ref_e = a.get_potential_energy()
        ref_f = a.get_forces()
        b = a.copy()
        b.calc = calc
        de.append((b.get_potential_energy() - ref_e) / len(a))
        df.append((b.get_forces() - ref_f).ravel())
    de_a, df_a = np.asarray(de), np.concatenate(df) if df else np.zeros(0)
    return {"n": len(images),
            "energy_rmse": float(np.sqrt(np.mean(de_a ** 2))) if de_a.size else None,
            "energy_mae": float(np.mean(np.abs(de_a))) if de_a.size else None,
            "force_rmse": float(np.sqrt(np.mean(df_a ** 2))) if df_a.size else None,
            "force_mae": float(np.mean(np.abs(df_a))) if df_a.size else None}


def run_campaign(path: str | os.PathLike, resume: bool = False, log: Log | None = print) -> LoopState:
    """Validate ``path`` (everything, before any work) and run or resume it."""
    from mtpkit.active_learning.campaign import load_campaign

    camp = load_campaign(path)
    return Loop(camp, log=log).start(resume=resume)
