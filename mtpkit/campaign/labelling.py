"""Labelling with resume: a store of finished labels that survives interruption.

Each configuration to label carries a unique ``label_id`` (``atoms.info``). Finished
labels are kept in an extended-XYZ store (energy eV, forces eV/Å, stress eV/Å^3 as
calculator results) rewritten atomically after every chunk; failed ones go to a
JSON quarantine with their reason. Calling :func:`label_configurations` again on the
same store labels only what is missing, so nothing finished is labelled twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from ase import Atoms

from mtpkit.active_learning.labellers import LabellerSpec, label_one
from mtpkit.io_utils import atomic_open, atomic_write_json

Log = Callable[[str], None]


def read_store(path: str | os.PathLike) -> list[Atoms]:
    """Labelled configurations of a store (``[]`` when it does not exist yet)."""
    from ase.io import read

    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return []
    return list(read(path, index=":", format="extxyz"))


def write_store(path: str | os.PathLike, images: Sequence[Atoms]) -> None:
    """Write labelled configurations atomically as extended XYZ."""
    from ase.io import write

    with atomic_open(path, "w") as fh:
        if images:
            write(fh, list(images), format="extxyz")


def spec_from_config(labeller: dict) -> LabellerSpec:
    """The :class:`LabellerSpec` of a campaign ``[labeller]`` table."""
    return LabellerSpec(labeller["kind"], dict(labeller["parameters"]), labeller["calculator"],
                        bool(labeller["stress"]))


def label_configurations(spec: LabellerSpec, images: Sequence[Atoms], store: str | os.PathLike,
                         quarantine: str | os.PathLike, *, workers: int = 1, scheduler: str = "",
                         chunk: int | None = None, say: Log | None = None, what: str = "labels"
                         ) -> tuple[list[Atoms], list[dict]]:
    """Label every image not yet in ``store`` (by ``info["label_id"]``).

    Returns (all labelled configurations of the store in input order, quarantine
    entries ``{"label_id", "reason"}``). ``workers`` > 1 or a ``scheduler`` runs
    labels through :class:`mtpkit.executor.Executor`; otherwise in this process.
    """
    ids = [str(a.info["label_id"]) for a in images]
    if len(set(ids)) != len(ids):
        raise ValueError("label_id values must be unique")
    done = {str(a.info["label_id"]): a for a in read_store(store)}
    qpath = Path(quarantine)
    bad: dict[str, str] = json.loads(qpath.read_text()) if qpath.is_file() else {}
    pending = [a for a in images if str(a.info["label_id"]) not in done
               and str(a.info["label_id"]) not in bad]
    if say and (done or bad):
        say(f"{what}: {len(done)} already labelled, {len(bad)} quarantined, {len(pending)} to do")
    step = chunk or max(1, 4 * max(workers, 1))
    executor = None
    if pending and (workers > 1 or scheduler):
        from mtpkit.executor import Executor

        executor = Executor(workers=workers, scheduler=scheduler or None)
    try:
        for start in range(0, len(pending), step):
            part = pending[start:start + step]
            if executor is None:
                results = [label_one(spec, a) for a in part]
            else:
                outcomes = executor.map(label_one, [(spec, a) for a in part])
                results = [o.result if o.ok else (None, o.error) for o in outcomes]
            for atoms, (labelled, reason) in zip(part, results):
                lid = str(atoms.info["label_id"])
                if labelled is None:
                    bad[lid] = reason or "unknown failure"
                else:
                    labelled.info["label_id"] = lid
                    done[lid] = labelled
            write_store(store, [done[i] for i in ids if i in done])
            atomic_write_json(qpath, bad)
            if say:
                say(f"{what}: {sum(i in done for i in ids)}/{len(ids)} labelled"
                    + (f", {len(bad)} quarantined" if bad else ""))
    finally:
        if executor is not None:
            executor.close()
    if not qpath.is_file():
        atomic_write_json(qpath, bad)
    return [done[i] for i in ids if i in done], [{"label_id": k, "reason": v} for k, v in bad.items()
                                                 if k in set(ids)]
