"""The active-learning engine: one loop behind ``mtpkit learn`` and the ``active_learning``
stage of ``mtpkit run``.

Iteration 0 fits the first potential (a template, or a warm start from
``potential.initial``) on every label of the store under the campaign's labeller
settings. Each later iteration ``k``:

1. **explore** — ``runs_per_structure`` MD runs per structure (different seeds) at the
   current *rung*: one temperature of the ladder (``schedule = "ladder"``) or all of them
   at once (``schedule = "all"``); with ``md_size_rung`` one last rung runs at the highest
   production temperature in the production-size structures (runs of ``md_size_steps``, so
   that it can check production-length runs; labelling there is ``md_size_labels``: the
   box frames, cells cut from them, or nothing). The LAMMPS plugin runs them
   in parallel (:mod:`mtpkit.active_learning.explore`), ASE in this process otherwise.
2. **reliable?** — every run reached its length with max γ < ``gamma_stop``: move to the
   next rung (the potential is unchanged); after the last rung the learning is done. With
   ``probes_per_iteration``, frames drawn at random from the runs' trajectories whatever their
   grade (:func:`~mtpkit.active_learning.candidates.draw_probes`) are labelled (store subset
   ``probe``) and the exploring potential's errors on them reported; with ``probe_energy_rmse``
   / ``probe_force_rmse`` set, the rung is reliable only if those errors are within them too.
3. **candidates** — the frames each run saved above ``gamma_select`` (``candidate_policy``
   ``top`` or ``even``, at most ``candidates_per_run``; a failed run that saved none gives
   its last good configuration), deduplicated against each other and the training set
   (``dedup_distance`` Å, across NPT cells).
4. **select** — a D-optimal subset (MaxVol, :func:`~mtpkit.active_learning.selection.select_add`)
   of at most ``labels_per_iteration`` and of what is left of the label budget ``max_labels``
   (probes labelled this iteration count against it).
5. **label** — the selection and the probes, through the label store
   (:class:`~mtpkit.active_learning.store.LabelStore`): in-process labellers one per worker,
   VASP/QE through job folders; failed labels are retried ``labeller.retries`` times, then stay
   quarantined with their reason.
6. **fit** — warm start from the previous potential on every label; the active set is rebuilt
   over the whole training set.

Stop rules, one set: reliable at every rung; the label budget spent; ``max_iterations``
reached; nothing left to learn from (no candidate, or an empty selection, and no probe).

Files (``folder/``): ``state.json`` (iteration, rung, stop reason, final potential),
``iter_NNN/`` with ``explore.json``, ``candidates.extxyz``, ``selection.json``, ``probes.extxyz``,
``fit.json`` and the potential files of :mod:`mtpkit.active_learning.fit`, ``report.json``
(one per iteration: what :func:`learning_history` gathers). Every phase first looks for its
own output, and labels live in the store, so a kill at any moment loses only work in flight.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ase import Atoms

from mtpkit.active_learning.candidates import deduplicate, draw_probes, pick
from mtpkit.active_learning.explore import ExploreSettings, choose_engine, explore_ase_all, explore_lammps
from mtpkit.active_learning.fit import (
    ACTIVE_SET,
    ALMTP,
    POTENTIAL,
    Template,
    adopt_potential,
    fit_potential,
    load_fitted,
)
from mtpkit.active_learning.labellers import BatchLabeller, LabellerSpec
from mtpkit.active_learning.store import LabelStore
from mtpkit.errors import UserError
from mtpkit.io_utils import atomic_open, atomic_write_json
from mtpkit.seeds import EXPLORATION, FIT, PROBES, seed_for

log = logging.getLogger(__name__)

STATE_SCHEMA = "mtpkit.active-learning/1"
#: subsets of the store that are never trained on
NOT_TRAINED = ("heldout", "convergence")


@dataclass(frozen=True)
class Rung:
    """One exploration step of the schedule: temperatures (K), and whether it runs in the
    production-size structures."""

    temperatures: tuple[float, ...]
    md_size: bool = False

    @property
    def name(self) -> str:
        t = ", ".join(f"{x:g}" for x in self.temperatures)
        return f"{t} K" + (" (production-size structures)" if self.md_size else "")


@dataclass
class LearningPlan:
    """Everything the engine needs, as plain values (the campaign or ``mtpkit learn`` builds it).

    ``al``, ``potential`` and ``labeller`` are the ``[active_learning]``, ``[potential]`` and
    ``[labeller]`` tables of the configuration schema (attribute access).
    """

    species: list[str]
    seed: int
    al: Any
    potential: Any
    labeller: Any
    structures: dict[str, Path]
    md_structures: dict[str, Path] = field(default_factory=dict)
    production_top_K: float | None = None
    workers: int = 1
    scheduler: str = ""

    def spec(self) -> LabellerSpec:
        return LabellerSpec.from_table(self.labeller)

    def rungs(self) -> list[Rung]:
        temps = tuple(float(t) for t in self.al.temperatures)
        rungs = [Rung((t,)) for t in temps] if self.al.schedule == "ladder" else [Rung(temps)]
        if self.al.md_size_rung and self.md_structures and self.production_top_K:
            rungs.append(Rung((float(self.production_top_K),), md_size=True))
        return rungs


def label_configurations(store: LabelStore, plan: LearningPlan, images: list[Atoms], sources: list[str],
                         subset: str | Sequence[str], jobs_dir: Path) -> tuple[list[int], list[int]]:
    """Label ``images`` into ``store`` under the plan's labeller (reusing any finished label of the
    same configuration and settings), as store subset ``subset`` (one for all, or one per image);
    returns (ok row ids, quarantined row ids)."""
    from mtpkit.active_learning.label_queue import label_batch

    spec = plan.spec()
    subsets = [subset] * len(images) if isinstance(subset, str) else list(subset)
    ids = [store.request(a, spec, source=src, subset=sub) for a, src, sub in zip(images, sources, subsets, strict=True)]
    wanted = set(ids)
    lab = plan.labeller
    for attempt in range(1 + int(lab.retries)):
        if attempt:
            failed = [r.id for r in store.rows(status="quarantined") if r.id in wanted]
            if not failed:
                break
            for rid in failed:
                store.release(rid)
        if lab.kind in ("vasp", "qe"):
            b = lab.batch
            batch = BatchLabeller(lab.kind, b.job_template, b.submit_command, dict(b.input_parameters))
            label_batch(store, batch, wanted, jobs_dir, poll_seconds=b.poll_seconds,
                        timeout_s=b.timeout_hours * 3600.0)
        else:
            _label_local(store, plan, wanted)
    status = {r.id: r.status for r in store.rows() if r.id in wanted}
    return ([i for i in dict.fromkeys(ids) if status.get(i) == "ok"],
            [i for i in dict.fromkeys(ids) if status.get(i) == "quarantined"])


def _label_local(store: LabelStore, plan: LearningPlan, wanted: set[int], poll_s: float = 30.0) -> None:
    """Label the pending ``wanted`` rows here; rows another live process (``mtpkit label`` on the
    same store) has claimed are waited for, and labelled here if that process dies first."""
    from mtpkit.active_learning.label_queue import label_pending

    while True:
        label_pending(store, workers=plan.workers, scheduler=plan.scheduler or None, rows=wanted,
                      in_process=plan.workers == 1 and not plan.scheduler)
        elsewhere = [r for r in store.rows(status="pending") if r.id in wanted and store.claimed_elsewhere(r)]
        if not elsewhere:
            return
        log.info("%d row(s) are being labelled by another process (%s); waiting", len(elsewhere),
                 elsewhere[0].keys.get("claimed_by"))
        time.sleep(poll_s)


class ActiveLearner:
    """Runs a :class:`LearningPlan` in ``folder`` with labels in ``store`` (see the module docstring)."""

    def __init__(self, plan: LearningPlan, folder: Path, store: LabelStore) -> None:
        self.plan = plan
        self.folder = Path(folder)
        self.store = store
        self.spec = plan.spec()
        self.rungs = plan.rungs()
        self.state_path = self.folder / "state.json"

    # ------------------------------------------------------------------ data
    def it_dir(self, k: int) -> Path:
        return self.folder / f"iter_{k:03d}"

    def training_set(self) -> list[Atoms]:
        """Every finished label of the store under this labeller, except held-out/convergence rows."""
        return [a for a in self.store.labelled(settings=self.spec) if a.info.get("subset") not in NOT_TRAINED]

    def heldout(self) -> list[Atoms]:
        """Held-out labels: the ``heldout`` subset of the store and the ``heldout`` file."""
        images = self.store.labelled(settings=self.spec, subset="heldout")
        if self.plan.al.heldout:
            from mtpkit.potentials.convert import read_images

            images += read_images(str(self.plan.al.heldout), self.plan.species)
        return images

    def steps_of(self, rung: Rung) -> int:
        """MD steps of each exploration run at ``rung`` (``md_size_steps`` in the production-size rung)."""
        al = self.plan.al
        return int(al.md_size_steps) if rung.md_size and al.md_size_steps else int(al.steps)

    def _load_state(self) -> dict:
        if self.state_path.is_file():
            state = json.loads(self.state_path.read_text())
            if state.get("schema") != STATE_SCHEMA:
                raise UserError(f"{self.state_path}: not an active-learning state of this version "
                                f"(schema {state.get('schema')!r}, expected {STATE_SCHEMA!r})")
            return state
        return {"schema": STATE_SCHEMA, "iteration": 0, "rung": 0, "finished": False, "stop_reason": "",
                "final_potential": None, "labels_added": 0}

    def _save(self, state: dict) -> None:
        atomic_write_json(self.state_path, state)

    def last_fit(self, before: int) -> Path:
        """Folder of the newest fitted potential of an iteration < ``before``."""
        for k in range(before - 1, -1, -1):
            if (self.it_dir(k) / "fit.json").is_file():
                return self.it_dir(k)
        raise UserError(f"{self.folder}: no fitted potential before iteration {before}")

    # ------------------------------------------------------------------ loop
    def run(self) -> dict:
        """Run or resume until a stop rule holds; returns the final state."""
        self.folder.mkdir(parents=True, exist_ok=True)
        state = self._load_state()
        al = self.plan.al
        if state["finished"] and state["stop_reason"].startswith("max_iterations") \
                and state["iteration"] < al.max_iterations:
            state.update(finished=False, stop_reason="")  # the cap was raised: go on
        while not state["finished"]:
            k = state["iteration"]
            if k == 0:
                self._initial_fit()
            else:
                self._iteration(k, state)
            if not state["finished"] and k >= al.max_iterations:
                state.update(finished=True, stop_reason=f"max_iterations ({al.max_iterations}) reached before "
                                                        "every exploration rung was reliable")
            if not state["finished"]:
                state["iteration"] = k + 1
            state["final_potential"] = str(self.last_fit(k + 1).relative_to(self.folder))
            self._save(state)
        log.info("active learning stopped: %s; final potential %s", state["stop_reason"], state["final_potential"])
        return state

    def _initial_fit(self) -> None:
        d = self.it_dir(0)
        if (d / "fit.json").is_file():
            return
        t0 = time.perf_counter()
        images = self.training_set()
        if len(images) < 2:
            raise UserError(f"active learning: {len(images)} labelled configuration(s) in {self.store.path} "
                            f"under the {self.spec.kind} labeller; the first fit needs at least 2")
        init = None
        if self.plan.potential.initial:
            from mtpkit.potentials.mtp_io import read_mtp

            init = read_mtp(self.plan.potential.initial)
            if init.species_count != len(self.plan.species):
                raise UserError(f"potential.initial: {self.plan.potential.initial} has species_count = "
                                f"{init.species_count}, but campaign.species has {len(self.plan.species)}")
        metrics = self._fit(images, init, 0, adopt=init is not None and not self.plan.potential.refit_initial)
        self._report(0, None, [], {"n_train": len(images), "errors": metrics,
                                   "wall_s": {"fit": time.perf_counter() - t0}})

    def _fit(self, images: list[Atoms], init, k: int, adopt: bool = False) -> dict:
        """Fit iteration ``k``'s potential (``adopt``: take ``init`` as it is, potential.refit_initial = false)."""
        d = self.it_dir(k)
        p, al = self.plan.potential, self.plan.al
        if adopt:
            metrics = adopt_potential(init, images, self.plan.species, folder=d, mode=al.mode, basis=al.basis)
        else:
            metrics = fit_potential(images, init, self.plan.species,
                                    template=Template(p.level, p.radial_basis_size, p.min_dist, p.max_dist),
                                    training=p.training, seed=seed_for(self.plan.seed, FIT, k), folder=d,
                                    mode=al.mode, basis=al.basis)
        metrics.update(self._heldout_errors(d))
        atomic_write_json(d / "fit.json", metrics)
        m = metrics["train"]
        log.info("fit: %d configurations, %d parameters, %s; train RMSE E %.2f meV/atom, F %.3f eV/Å",
                 len(images), metrics["n_params"], metrics["stop_reason"], m["energy_rmse_mev_per_atom"],
                 m["force_rmse"])
        return metrics

    def _iteration(self, k: int, state: dict) -> None:
        al = self.plan.al
        d = self.it_dir(k)
        d.mkdir(parents=True, exist_ok=True)
        rung = self.rungs[state["rung"]]
        prev = self.last_fit(k)
        wall: dict[str, float] = {}
        t0 = time.perf_counter()
        records, frames = self._explore(k, rung, prev, d)
        wall["explore"] = time.perf_counter() - t0
        max_g = max((r["max_gamma"] for r in records), default=0.0)
        reliable = bool(records) and all(r["status"] == "done" and r["max_gamma"] < al.gamma_stop for r in records)
        entry: dict[str, Any] = {"max_gamma": max_g, "converged": reliable, "wall_s": wall,
                                 "n_train": json.loads((prev / "fit.json").read_text())["n_train"]}
        log.info("iteration %d at %s: max γ %.3g; %s", k, rung.name, max_g,
                 ", ".join(f"{r['run']}: {r['status']} after {r['time_ps']:.2f} ps" for r in records))
        probes = self._probes(k, rung, records, d)
        spent = 0  # probes labelled here and not yet counted: the selection's room is what is left
        if reliable and probes:  # the grades say reliable: do the probes' errors agree?
            t1 = time.perf_counter()
            ok_p, bad_p = label_configurations(self.store, self.plan, probes, probe_sources(k, probes),
                                               "probe", self.folder / "jobs")
            wall["label_probes"] = time.perf_counter() - t1
            entry["probes"] = self._probe_errors(k, probes, prev)
            reliable = entry["converged"] = self._probes_within(entry["probes"])
            if reliable:  # otherwise the labelling below takes them again, and counts them
                entry.update(n_labelled=len(ok_p), n_quarantined=len(bad_p))
                state["labels_added"] = int(state.get("labels_added", 0)) + len(ok_p)
            else:
                spent = len(ok_p)
        if reliable:
            state["rung"] += 1
            if state["rung"] >= len(self.rungs):
                lengths = sorted({self.steps_of(r) * al.timestep / 1000 for r in self.rungs})
                state.update(finished=True, stop_reason=(
                    f"reliable: every exploration run reached {' or '.join(f'{t:g}' for t in lengths)} ps with "
                    f"max γ < {al.gamma_stop:g} at every rung"))
            self._report(k, rung, records, entry)
            return
        t1 = time.perf_counter()
        chosen, info = self._select(k, prev, frames, state, rung, records, spent)
        wall["select"] = time.perf_counter() - t1
        entry.update(n_candidates=info["candidates"], n_unique=info["unique"], n_selected=len(chosen))
        if not chosen and not probes:
            state.update(finished=True, stop_reason=f"iteration {k}: not reliable at {rung.name}, but "
                                                    f"{info['why_empty']}")
            self._report(k, rung, records, entry)
            return
        t2 = time.perf_counter()
        sources = [f"al:it{k:03d}:{a.info.get('run', '')}:step{a.info.get('md_step', -1)}"
                   + (f":cut{a.info['cut_atom']}" if "cut_atom" in a.info else "") for a in chosen]
        # the probes are labelled with the selection (already labelled ones are reused), and trained on
        ok, bad = label_configurations(self.store, self.plan, chosen + probes,
                                       sources + probe_sources(k, probes),
                                       ["al"] * len(chosen) + ["probe"] * len(probes), self.folder / "jobs")
        wall["label"] = time.perf_counter() - t2
        if probes and "probes" not in entry:
            entry["probes"] = self._probe_errors(k, probes, prev)
        state["labels_added"] = int(state.get("labels_added", 0)) + len(ok)
        t3 = time.perf_counter()
        images = self.training_set()
        if (d / "fit.json").is_file():
            metrics = json.loads((d / "fit.json").read_text())
        else:
            mtp, _ = load_fitted(prev, self.plan.species)
            metrics = self._fit(images, mtp, k)
        wall["fit"] = time.perf_counter() - t3
        entry.update(n_labelled=len(ok), n_quarantined=len(bad), n_train=len(images), errors=metrics)
        self._report(k, rung, records, entry)
        budget = int(al.max_labels)
        if budget and state["labels_added"] >= budget:
            state.update(finished=True, stop_reason=f"label budget spent ({state['labels_added']} of "
                                                    f"max_labels = {budget})")

    def _explore(self, k: int, rung: Rung, prev: Path, d: Path) -> tuple[list[dict], list[list[Atoms]]]:
        rec_path = d / "explore.json"
        cand_path = d / "explored.extxyz"
        if rec_path.is_file():
            records = json.loads(rec_path.read_text())
            frames = _read_frames(cand_path)
            return records, [[a for a in frames if a.info.get("run") == r["run"]] for r in records]
        al = self.plan.al
        s = ExploreSettings(self.steps_of(rung), al.timestep, al.ensemble, al.pressure, al.barostat, al.friction,
                            al.grade_every, al.gamma_select, al.gamma_break)
        sources = self.plan.md_structures if rung.md_size else self.plan.structures
        jobs = []
        for i, (name, path) in enumerate(sources.items()):
            for j, T in enumerate(rung.temperatures):
                for r in range(al.runs_per_structure):
                    rid = f"{name}/T{T:g}K{'-md' if rung.md_size else ''}/r{r}"
                    jobs.append((rid, name, path, T, seed_for(self.plan.seed, EXPLORATION, k, i, j, r), rung.md_size))
        engine = choose_engine(al.engine, al.basis)
        log.info("iteration %d: exploring at %s with the %s engine (%d runs of %d steps)", k, rung.name,
                 engine, len(jobs), s.steps)
        if engine == "lammps":
            runs, frames = explore_lammps(jobs, prev / ALMTP, self.plan.species, s, d / "explore",
                                          workers=self.plan.workers, scheduler=self.plan.scheduler,
                                          log=lambda m: log.info("iteration %d explore: %s", k, m))
        else:
            mtp, aset = load_fitted(prev, self.plan.species)
            runs, frames = explore_ase_all(jobs, mtp, aset, self.plan.species, s,
                                           log=lambda m: log.info("iteration %d explore: %s", k, m))
        _write_frames(cand_path, [a for f in frames for a in f])
        records = [r.to_dict() for r in runs]
        atomic_write_json(rec_path, records)
        return records, frames

    def _select(self, k: int, prev: Path, frames: list[list[Atoms]], state: dict, rung: Rung,
                records: list[dict], spent: int = 0) -> tuple[list[Atoms], dict]:
        """Iteration ``k``'s candidates and the configurations selected from them for labelling, at most
        ``labels_per_iteration`` and what ``max_labels`` leaves after ``state``'s labels and the ``spent``
        probes of this iteration (saved: a resumed iteration gets the same)."""
        from mtpkit.active_learning.grades import rows_for
        from mtpkit.active_learning.selection import select_add

        d = self.it_dir(k)
        sel_path, cand_path = d / "selection.json", d / "candidates.extxyz"
        if sel_path.is_file():
            info = json.loads(sel_path.read_text())
            cands = _read_frames(cand_path)
            return [cands[i] for i in info["selected"]], info
        al = self.plan.al
        if rung.md_size and al.md_size_labels == "none":
            info = {"candidates": 0, "unique": 0, "selected": [], "grades": [],
                    "why_empty": "md_size_labels = 'none' labels nothing there (the rung is a check)"}
            _write_frames(cand_path, [])
            atomic_write_json(sel_path, info)
            return [], info
        picked = [a for f in frames for a in pick(f, al.candidates_per_run, al.candidate_policy)]
        info_cut: dict[str, Any] = {}
        if rung.md_size and al.md_size_labels == "tile":
            names = [r["structure"] for r, f in zip(records, frames, strict=True)
                     for _ in pick(f, al.candidates_per_run, al.candidate_policy)]
            n_frames = len(picked)
            picked = self._cut_tiles(prev, picked, names)
            info_cut = {"cut_from_frames": n_frames, "cut_tiles": len(picked)}
            log.info("iteration %d: %d of %d box frames cut to %d-atom cells around their most extrapolating "
                     "atom", k, len(picked), n_frames, len(picked[0]) if picked else 0)
        cands = deduplicate(picked, self.training_set(), al.dedup_distance)
        room = al.labels_per_iteration
        if al.max_labels:
            room = min(room, int(al.max_labels) - int(state.get("labels_added", 0)) - spent)
        info: dict[str, Any] = {"candidates": len(picked), "unique": len(cands), "selected": [], "grades": [],
                                **info_cut}
        if not cands:
            info["why_empty"] = "the runs saved no new configuration to learn from"
        elif room <= 0:
            info["why_empty"] = "the label budget is spent"
        else:
            mtp, aset = load_fitted(prev, self.plan.species)
            res = select_add(aset, rows_for(mtp, aset, cands, self.plan.species), cands, limit=room)
            info.update(selected=[int(i) for i in res.selected], grades=[float(g) for g in res.grades],
                        log_det_gain=res.log_det_gain)
            if not info["selected"]:
                info["why_empty"] = "no candidate enlarges the active set (empty selection)"
        _write_frames(cand_path, cands)
        atomic_write_json(sel_path, info)
        log.info("iteration %d: %d candidates, %d unique, %d selected", k, len(picked), len(cands),
                 len(info["selected"]))
        # label what the file holds (positions to 1e-8 Å), as a resumed iteration does: requesting the
        # in-memory frames gave another config_id to 5 of 8 frames re-requested on resume (1e-6 rounding
        # boundaries), and the store labelled them twice
        cands = _read_frames(cand_path)
        return [cands[i] for i in info["selected"]], info

    def _cut_tiles(self, prev: Path, boxes: list[Atoms], names: list[str]) -> list[Atoms]:
        """Each box frame cut to a cell of its learning structure's shape and composition around
        its atom of highest neighbourhood grade (:mod:`mtpkit.active_learning.cut`); frames
        with no such window are left out. Atoms closer than 0.9 of the frame's own closest
        pair count as an artefact of the cut."""
        from ase.io import read

        from mtpkit.active_learning.cut import closest_pair, composition_of, cut_tile, supercell_matrix
        from mtpkit.active_learning.grades import grade_images

        mtp, aset = load_fitted(prev, self.plan.species)
        grades = grade_images(mtp, aset, boxes, self.plan.species)
        tiles, shapes = [], {}
        for box, name, g in zip(boxes, names, grades.per_atom or [], strict=True):
            if name not in shapes:
                tile = read(self.plan.structures[name], format="extxyz")
                md = read(self.plan.md_structures[name], format="extxyz")
                shapes[name] = (supercell_matrix(md.cell, tile.cell), composition_of(tile))
            matrix, composition = shapes[name]
            centre = int(g.argmax())
            cut = cut_tile(box, centre, matrix, composition, min_distance=0.9 * closest_pair(box))
            if cut is None:
                continue
            cut.info.update(run=box.info.get("run", ""), md_step=box.info.get("md_step", -1),
                            MV_grade=float(g[centre]), cut_atom=centre, structure=name)
            tiles.append(cut)
        return tiles

    def _heldout_errors(self, d: Path) -> dict:
        """``{"heldout": metrics}`` of the potential in ``d`` on the held-out labels, or ``{}``."""
        held = self.heldout()
        if not held:
            return {}
        return {"heldout": self._errors(d, held, "held-out configuration")}

    def _errors(self, d: Path, images: list[Atoms], what: str) -> dict:
        """Error metrics (:func:`~mtpkit.potentials.metrics.error_metrics`) of the potential in ``d``
        on the labelled ``images``."""
        from mtpkit.potentials.labels import extract_labels, predict
        from mtpkit.potentials.metrics import error_metrics
        from mtpkit.potentials.species import atom_types

        mtp, _ = load_fitted(d, self.plan.species)
        types = [atom_types(a, self.plan.species, mtp.species_count, what) for a in images]
        return error_metrics(predict(mtp, images, types), extract_labels(images))

    # ------------------------------------------------------------------ probes
    def _probes(self, k: int, rung: Rung, records: list[dict], d: Path) -> list[Atoms]:
        """Iteration ``k``'s probe frames (drawn once, then read back from ``probes.extxyz``): none
        without ``probes_per_iteration`` or in the production-size rung (no labels there)."""
        n = int(self.plan.al.probes_per_iteration)
        if not n or rung.md_size:
            return []
        path = d / "probes.extxyz"
        if not path.is_file():
            dumps = [(r["run"], d / "explore" / r["run"] / "traj.dump") for r in records]
            dumps = [(run, p) for run, p in dumps if p.is_file()]
            if not dumps:
                log.warning("iteration %d: no exploration trajectory to draw probes from (the ASE engine "
                            "keeps none): no probes", k)
            _write_frames(path, draw_probes(dumps, n, seed_for(self.plan.seed, PROBES, k), self.plan.species))
        return _read_frames(path)  # label what the file holds, as a resumed iteration does

    def _probe_errors(self, k: int, probes: list[Atoms], prev: Path) -> dict:
        """The exploring potential's (``prev``) errors on the labelled probes of iteration ``k``."""
        spec = self.spec
        rows = [self.store.row(self.store.request(a, spec, source=src, subset="probe"))
                for a, src in zip(probes, probe_sources(k, probes), strict=True)]
        labelled = [r.atoms for r in rows if r.status == "ok"]
        out: dict[str, Any] = {"n": len(probes), "n_labelled": len(labelled), "potential": prev.name,
                               "errors": self._errors(prev, labelled, "probe") if labelled else None}
        if labelled:
            m = out["errors"]
            log.info("iteration %d: %d probes, errors of %s: E RMSE %.2f meV/atom, F RMSE %.3f eV/Å", k,
                     len(labelled), prev.name, m["energy_rmse_mev_per_atom"], m["force_rmse"])
        return out

    def _probes_within(self, probes: dict) -> bool:
        """Whether the probes' errors are within ``probe_energy_rmse`` / ``probe_force_rmse`` (those
        that are set); with a bound set and no probe labelled, nothing shows it holds."""
        al, m = self.plan.al, probes["errors"]
        if m is None:
            return not (al.probe_energy_rmse or al.probe_force_rmse)
        return not ((al.probe_energy_rmse and m["energy_rmse_mev_per_atom"] > al.probe_energy_rmse)
                    or (al.probe_force_rmse and m["force_rmse"] > al.probe_force_rmse))

    def _report(self, k: int, rung: Rung | None, records: list[dict], entry: dict) -> None:
        d = self.it_dir(k)
        report = {"iteration": k, "temperature_K": None if rung is None else
                  (rung.temperatures[0] if len(rung.temperatures) == 1 else list(rung.temperatures)),
                  "md_size": bool(rung and rung.md_size), "runs": records, "max_gamma": None, "converged": None,
                  "n_candidates": 0, "n_unique": 0, "n_selected": 0, "n_labelled": 0, "n_quarantined": 0,
                  "n_train": None, "errors": None, "parity_plot": None, **entry}
        if (d / "fit.json").is_file():
            report["parity_plot"] = str((d / "train.png").relative_to(self.folder))
        atomic_write_json(d / "report.json", report)


def _write_frames(path: Path, frames: list[Atoms]) -> None:
    from ase.io import write

    with atomic_open(path, "w") as fh:
        if frames:
            write(fh, frames, format="extxyz")


def _read_frames(path: Path) -> list[Atoms]:
    from ase.io import read

    if not path.is_file() or path.stat().st_size == 0:
        return []
    return list(read(path, index=":", format="extxyz"))


def probe_sources(k: int, probes: list[Atoms]) -> list[str]:
    """The store ``source`` of iteration ``k``'s probes: ``probe:itNNN:<run>:step<S>``."""
    return [f"probe:it{k:03d}:{a.info.get('run', '')}:step{a.info.get('md_step', -1)}" for a in probes]


def learning_history(folder: Path) -> dict:
    """The state and every iteration's report of a learning folder, as one dict:
    ``{"iterations": [...], "stop_reason", "finished", "final_potential", "labels_added"}``."""
    folder = Path(folder)
    state = json.loads((folder / "state.json").read_text()) if (folder / "state.json").is_file() else {}
    reports = [json.loads(p.read_text()) for p in sorted(folder.glob("iter_*/report.json"))]
    return {"iterations": reports, **{k: state.get(k) for k in ("stop_reason", "finished", "final_potential",
                                                                 "labels_added")}}


def final_potential(folder: Path) -> Path:
    """The ``.almtp`` (or ``.mtp`` with a linear-basis active set) the learning in ``folder`` ended with."""
    state = json.loads((Path(folder) / "state.json").read_text())
    d = Path(folder) / state["final_potential"]
    return d / ALMTP if (d / ALMTP).is_file() else d / POTENTIAL


__all__ = ["ACTIVE_SET", "ActiveLearner", "LearningPlan", "Rung", "final_potential", "label_configurations",
           "learning_history", "probe_sources"]
