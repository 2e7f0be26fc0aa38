"""Label every pending row of a :class:`~mtpkit.active_learning.store.LabelStore`.

Each pending row carries its own labeller settings, so one store can hold a
convergence study (several settings for the same configurations) next to the
training labels. Rows are labelled one per worker process through
:meth:`mtpkit.executor.Executor.stream` (each worker limited to ``threads``
BLAS/OpenMP threads, so ``workers × threads`` cores are used), lowest ``priority``
first, then in the order they were requested. Every finished label is committed to
the store by this process as it arrives, and the next row is chosen only then, so
rows requested while the queue runs are picked up too. A row is claimed before it is
handed to a worker (:meth:`~mtpkit.active_learning.store.LabelStore.claim`), so two
processes labelling one store never compute the same row. A kill loses only the labels
being computed (their claims die with the process); the next call starts with the rows
still pending.

:func:`label_batch` does the same through job folders on a cluster (VASP / QE).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from ase import Atoms

from mtpkit.active_learning.labellers import BatchLabeller, LabellerSpec, LabelOutcome, label_with_provenance
from mtpkit.active_learning.store import LabelStore, StoredLabel
from mtpkit.executor import Executor, Job, Outcome

log = logging.getLogger(__name__)


def spec_from_settings(settings: dict) -> LabellerSpec:
    """The :class:`LabellerSpec` stored with a row (``data["settings"]``)."""
    return LabellerSpec(kind=settings["kind"], parameters=dict(settings.get("parameters", {})),
                        calculator=settings.get("calculator", ""), stress=bool(settings.get("stress", True)))


def _label_job(settings: dict, atoms: Atoms, threads: int) -> LabelOutcome:
    """Worker side: label ``atoms`` with at most ``threads`` BLAS/OpenMP threads."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        return label_with_provenance(spec_from_settings(settings), atoms)


def label_pending(store: LabelStore, *, workers: int = 1, threads: int = 1, scheduler=None,
                  subset: str | None = None, limit: int | None = None, rows: set[int] | None = None,
                  after_each: Callable[[], None] | None = None, in_process: bool = False,
                  max_priority: int | None = None) -> dict[str, int]:
    """Label the pending rows of ``store`` (optionally only ``rows`` (ids), of one ``subset``, of
    ``priority <= max_priority``; at most ``limit`` rows).

    Returns the store's counts per status afterwards. Progress (row, result, seconds,
    rows left) goes to the ``mtpkit.active_learning.label_queue`` logger. A row whose
    worker died (killed, out of memory) stays pending and is not tried again in this call.
    ``after_each()`` runs after every committed label (e.g. to snapshot the store).
    ``in_process`` labels in this process, one at a time (no worker start-up).
    """
    in_flight: dict[str, StoredLabel] = {}
    skip: set[int] = set()
    started = 0
    t0 = time.perf_counter()

    def next_job() -> Job | None:
        nonlocal started
        if limit is not None and started >= limit:
            return None
        busy = {r.id for r in in_flight.values()} | skip
        for row in store.pending_by_priority(subset=subset, max_priority=max_priority):
            # a row another live process has claimed is that process's to label
            if row.id not in busy and (rows is None or row.id in rows) and store.claim(row.id):
                break
        else:
            return None
        started += 1
        in_flight[str(row.id)] = row
        return Job(str(row.id), _label_job, (row.data["settings"], _bare(row.atoms), threads))

    def finished(outcome: Outcome) -> None:
        row = in_flight.pop(outcome.key)
        if not outcome.ok:
            skip.add(row.id)
            store.unclaim(row.id)
            log.warning("row %s (%s): worker failed, left pending: %s", row.id, row.keys["source"], outcome.error)
            return
        res: LabelOutcome = outcome.result
        if res.atoms is None:
            store.quarantine(row.id, res.reason or "unknown failure", wall_s=res.wall_s, code=res.code)
            what = f"quarantined ({res.reason})"
        else:
            store.complete(row.id, res.atoms, wall_s=res.wall_s, code=res.code, extra=res.extra)
            what = f"ok, E {res.atoms.get_potential_energy():.4f} eV"
        if after_each is not None:
            after_each()
        left = sum(1 for r in store.rows(status="pending", subset=subset) if rows is None or r.id in rows)
        log.info("row %s %s [%s]: %s in %.0f s; %.0f s elapsed, %d pending", row.id, row.keys["source"],
                 row.keys["subset"], what, res.wall_s, time.perf_counter() - t0, left)

    log.info("label store %s: %d pending rows, %d worker(s) × %d thread(s)", store.path,
             sum(1 for r in store.rows(status="pending", subset=subset) if rows is None or r.id in rows),
             workers, threads)
    with Executor(workers=workers, scheduler=scheduler, in_process=in_process) as ex:
        ex.stream(next_job, finished)
    return store.counts()


def _bare(atoms: Atoms) -> Atoms:
    out = atoms.copy()
    out.calc = None
    out.info = {}
    return out


def label_batch(store: LabelStore, labeller: BatchLabeller, rows: set[int], jobs_dir: Path, *,
                poll_seconds: float, timeout_s: float, sleep: Callable[[float], None] | None = None) -> dict[str, int]:
    """Label pending ``rows`` through job folders (VASP / Quantum ESPRESSO on a cluster).

    prepare → submit → poll → ingest: one folder per row (``<config_id>-<settings_id>-a<attempt>``);
    a folder holding ``.submitting`` or ``.submitted`` is never submitted again, so a kill at any
    point (also between submitting and recording it) submits no job twice. Every
    ``poll_seconds`` each submitted job is ingested: a finished output is committed, a failed
    one quarantined with its reason; a job still without a complete output ``timeout_s`` seconds
    after its submission is taken as ended (quarantined with what is missing).
    """
    jobs_dir.mkdir(parents=True, exist_ok=True)
    todo: dict[int, tuple[StoredLabel, Path]] = {}
    for row in store.rows(status="pending"):
        if row.id not in rows:
            continue
        attempt = int(row.keys.get("attempts", 0))
        d = jobs_dir / f"{row.keys['config_id']}-{row.keys['settings_id']}-a{attempt}"
        if not (d / ".submitting").exists() and not (d / ".submitted").exists():
            labeller.prepare(_bare(row.atoms), d, d.name)
            (d / ".submitting").write_text(f"{time.time()}\n")
            labeller.submit(d)
            log.info("row %s (%s): submitted in %s", row.id, row.keys["source"], d)
        todo[row.id] = (row, d)
    while todo:
        for rid, (row, d) in list(todo.items()):
            marker = d / ".submitted" if (d / ".submitted").exists() else d / ".submitting"
            age = time.time() - marker.stat().st_mtime
            labelled, reason = labeller.ingest(_bare(row.atoms), d, finished=age > timeout_s)
            if reason == "pending":
                continue
            code = f"{labeller.code} (job folder {d.name})"
            if labelled is not None:
                store.complete(rid, labelled, wall_s=age, code=code, extra={"job_folder": str(d)})
                log.info("row %s (%s): ok from %s", rid, row.keys["source"], d)
            else:
                store.quarantine(rid, reason or "unknown failure", wall_s=age, code=code)
                log.info("row %s (%s): quarantined (%s)", rid, row.keys["source"], reason)
            del todo[rid]
        if todo:
            (sleep or time.sleep)(poll_seconds)
    return store.counts()
