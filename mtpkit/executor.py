"""Run independent jobs in parallel: local worker processes or a Dask cluster.

Used by MD sweeps and by active learning's labelling. A job is a picklable
callable with its arguments; every job's outcome is captured separately
(result or error with traceback), so one failure never stops the others::

    with Executor(workers=4) as ex:                       # local processes
        outcomes = ex.map(label_one, [(atoms,) for atoms in images])
    with Executor(scheduler="tcp://host:8786") as ex:     # dask.distributed
        outcomes = ex.run([Job("a", f, (1,)), Job("b", f, (2,))], progress=print)
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Job:
    """One unit of work: ``fn(*args, **kwargs)``; ``key`` names it in results and progress."""

    key: str
    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


@dataclass
class Outcome:
    """What happened to a job: ``ok`` with ``result``, or ``error`` (one line) + ``traceback``."""

    key: str
    ok: bool
    result: Any = None
    error: str = ""
    traceback: str = ""
    wall_time: float = 0.0


def _die_with_parent() -> None:
    """Worker initializer: on Linux, ask the kernel to send this worker SIGTERM when the process that
    started it dies, so a killed ``mtpkit label`` (or campaign) does not leave its DFT workers computing
    labels nobody will store for up to an hour (seen in session 11). Elsewhere a no-op."""
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _process_pool(workers: int, mp_context: str) -> cf.ProcessPoolExecutor:
    """Local worker processes that end with the process that started them."""
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(mp_context),
                                  initializer=_die_with_parent)


def _call(job: Job) -> Outcome:
    """Run one job in the worker, turning any exception into a failed :class:`Outcome`."""
    t0 = time.perf_counter()
    try:
        result = job.fn(*job.args, **job.kwargs)
        return Outcome(job.key, True, result, wall_time=time.perf_counter() - t0)
    except BaseException as exc:  # noqa: BLE001  # a failing job is data; it must never take the pool down
        return Outcome(job.key, False, None, f"{type(exc).__name__}: {exc}",
                       traceback.format_exc(), time.perf_counter() - t0)


ProgressFn = Callable[[int, int, Outcome], None]


class Executor:
    """Parallel job runner.

    Parameters
    ----------
    workers:
        Local worker processes (default: CPU count). Ignored with ``scheduler``.
    scheduler:
        Address of a ``dask.distributed`` scheduler (``"tcp://host:8786"``) or a
        ``distributed.Client`` / ``LocalCluster`` object; ``None`` uses local processes.
    mp_context:
        Start method of local workers (default ``"spawn"``: safe with threads and LAMMPS).
    in_process:
        Run :meth:`stream` jobs one at a time in this process (no worker start-up; for one
        worker where isolation is not needed).
    """

    def __init__(self, workers: int | None = None, scheduler: Any = None,
                 mp_context: str = "spawn", in_process: bool = False) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.scheduler = scheduler
        self.mp_context = mp_context
        self.in_process = in_process and scheduler is None
        self._pool: cf.ProcessPoolExecutor | None = None
        self._client = None
        self._own_client = False

    # --- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Shut down local workers / the Dask client this executor opened."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._client is not None and self._own_client:
            self._client.close()
        self._client = None

    @property
    def kind(self) -> str:
        """``"dask"`` or ``"processes"``."""
        return "processes" if self.scheduler is None else "dask"

    def _dask_client(self):
        if self._client is None:
            try:
                from distributed import Client
            except ImportError as exc:
                from mtpkit.errors import UserError

                raise UserError("a Dask scheduler was given but dask.distributed is not "
                                "installed (pip install 'dask[distributed]')") from exc
            if isinstance(self.scheduler, Client):
                self._client, self._own_client = self.scheduler, False
            else:
                self._client, self._own_client = Client(self.scheduler), True
        return self._client

    # --- running -----------------------------------------------------------------
    def run(self, jobs: Sequence[Job], progress: ProgressFn | None = None) -> list[Outcome]:
        """Run ``jobs``; returns their outcomes in input order.

        ``progress(done, total, outcome)`` is called in this process as each job ends.
        """
        jobs = list(jobs)
        keys = [j.key for j in jobs]
        if len(set(keys)) != len(keys):
            raise ValueError("job keys must be unique")
        if not jobs:
            return []
        outcomes = self._run_local(jobs, progress) if self.scheduler is None else self._run_dask(jobs, progress)
        by_key = {o.key: o for o in outcomes}
        return [by_key[k] for k in keys]

    def map(self, fn: Callable[..., Any], arg_tuples: Iterable[tuple],
            progress: ProgressFn | None = None) -> list[Outcome]:
        """``fn(*args)`` for every tuple in ``arg_tuples`` (keys ``"0"``, ``"1"``, ...)."""
        return self.run([Job(str(i), fn, tuple(a)) for i, a in enumerate(arg_tuples)], progress)

    def stream(self, next_job: Callable[[], Job | None],
               finished: Callable[[Outcome], None]) -> int:
        """Keep every worker busy with jobs pulled one at a time from ``next_job()``.

        ``next_job`` is called in this process whenever a worker is free and returns
        the next :class:`Job`, or ``None`` when there is nothing more to start now;
        ``finished(outcome)`` is called here as each job ends, before the next pull,
        so it may record results that change what ``next_job`` returns. Ends when no
        job is running and ``next_job()`` returns ``None``; returns the jobs run.
        """
        if self.in_process:
            n = 0
            while (job := next_job()) is not None:
                finished(_call(job))
                n += 1
            return n
        if self.scheduler is None:
            if self._pool is None:
                self._pool = _process_pool(self.workers, self.mp_context)
            submit = lambda job: self._pool.submit(_call, job)  # noqa: E731
            wait_one = lambda running: next(iter(cf.wait(running, return_when=cf.FIRST_COMPLETED)[0]))  # noqa: E731
            slots = self.workers
        else:
            from distributed import wait

            client = self._dask_client()
            submit = lambda job: client.submit(_call, job, key=f"mtpkit-{job.key}-{id(job)}", pure=False)  # noqa: E731
            wait_one = lambda running: next(iter(wait(list(running), return_when="FIRST_COMPLETED").done))  # noqa: E731
            slots = max(1, sum(client.nthreads().values()))
        running: dict = {}
        n = 0
        while True:
            while len(running) < slots:
                job = next_job()
                if job is None:
                    break
                running[submit(job)] = job
                n += 1
            if not running:
                return n
            fut = wait_one(running)
            job = running.pop(fut)
            try:
                out = fut.result()
            except BaseException as exc:  # noqa: BLE001  # worker died: a failed outcome, the stream goes on
                out = Outcome(job.key, False, None, f"{type(exc).__name__}: {exc}", traceback.format_exc())
                if self.scheduler is None and getattr(self._pool, "_broken", False):
                    self._pool = _process_pool(self.workers, self.mp_context)
            finished(out)

    def _run_local(self, jobs: list[Job], progress: ProgressFn | None) -> list[Outcome]:
        if self._pool is None:
            self._pool = _process_pool(min(self.workers, len(jobs)), self.mp_context)
        futures = {self._pool.submit(_call, job): job for job in jobs}
        outcomes = []
        for fut in cf.as_completed(futures):
            job = futures[fut]
            try:
                out = fut.result()
            except BaseException as exc:  # noqa: BLE001  # worker died (killed, segfault) or unpicklable job
                out = Outcome(job.key, False, None, f"{type(exc).__name__}: {exc}",
                              traceback.format_exc())
                if isinstance(exc, cf.process.BrokenProcessPool):
                    self._pool = None
            outcomes.append(out)
            if progress is not None:
                progress(len(outcomes), len(jobs), out)
        return outcomes

    def _run_dask(self, jobs: list[Job], progress: ProgressFn | None) -> list[Outcome]:
        from distributed import as_completed

        client = self._dask_client()
        futures = [client.submit(_call, job, key=f"mtpkit-{job.key}-{id(job)}", pure=False)
                   for job in jobs]
        owner = {f.key: j for f, j in zip(futures, jobs)}
        outcomes = []
        for fut in as_completed(futures):
            job = owner[fut.key]
            try:
                out = fut.result()
            except BaseException as exc:  # noqa: BLE001  # worker lost; recorded as a failed outcome
                out = Outcome(job.key, False, None, f"{type(exc).__name__}: {exc}",
                              traceback.format_exc())
            outcomes.append(out)
            if progress is not None:
                progress(len(outcomes), len(jobs), out)
        return outcomes
