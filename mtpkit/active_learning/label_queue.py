"""Label every pending row of a :class:`~mtpkit.active_learning.store.LabelStore`.

Each pending row carries its own labeller settings, so one store can hold a
convergence study (several settings for the same configurations) next to the
training labels. Rows are labelled one per worker process through
:meth:`mtpkit.executor.Executor.stream` (each worker limited to ``threads``
BLAS/OpenMP threads, so ``workers × threads`` cores are used), lowest ``priority``
first, then in the order they were requested. Every finished label is committed to
the store by this process as it arrives, and the next row is chosen only then, so
rows requested while the queue runs are picked up too. A kill loses only the labels
being computed; the next call starts with the rows still pending.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ase import Atoms

from mtpkit.active_learning.labellers import LabellerSpec, LabelOutcome, label_with_provenance
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
                  subset: str | None = None, limit: int | None = None,
                  after_each: Callable[[], None] | None = None) -> dict[str, int]:
    """Label the pending rows of ``store`` (optionally of one ``subset``; at most ``limit`` rows).

    Returns the store's counts per status afterwards. Progress (row, result, seconds,
    rows left) goes to the ``mtpkit.active_learning.label_queue`` logger. A row whose
    worker died (killed, out of memory) stays pending and is not tried again in this call.
    ``after_each()`` runs after every committed label (e.g. to snapshot the store).
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
        row = next((r for r in store.pending_by_priority(subset=subset) if r.id not in busy), None)
        if row is None:
            return None
        started += 1
        in_flight[str(row.id)] = row
        return Job(str(row.id), _label_job, (row.data["settings"], _bare(row.atoms), threads))

    def finished(outcome: Outcome) -> None:
        row = in_flight.pop(outcome.key)
        if not outcome.ok:
            skip.add(row.id)
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
        left = store.counts(subset=subset)["pending"]
        log.info("row %s %s [%s]: %s in %.0f s; %.0f s elapsed, %d pending", row.id, row.keys["source"],
                 row.keys["subset"], what, res.wall_s, time.perf_counter() - t0, left)

    log.info("label store %s: %d pending rows, %d worker(s) × %d thread(s)", store.path,
             store.counts(subset=subset)["pending"], workers, threads)
    with Executor(workers=workers, scheduler=scheduler) as ex:
        ex.stream(next_job, finished)
    return store.counts()


def _bare(atoms: Atoms) -> Atoms:
    out = atoms.copy()
    out.calc = None
    out.info = {}
    return out
