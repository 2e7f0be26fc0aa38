"""The label store: one SQLite file (``ase.db``) holding every labelled configuration.

A row is one configuration *under one labeller setting*. It is written once as
``pending`` (the configuration, where it came from, which subset it serves) and
completed in place, in one transaction, as ``ok`` (energy eV, forces eV/Å, stress
eV/Å^3 on the row's atoms) or ``quarantined`` (with the reason). Nothing is ever
rewritten as a whole file, a kill loses at most the labels still being computed,
and labels made by one version of the learning engine are read by any other: the
store knows nothing about iterations, only configurations and settings.

Key-value pairs of every row (searchable with ``ase db``):

``config_id``    content hash of the configuration (species, positions, cell; 1e-6 Å)
``settings_id``  hash of the labeller kind and parameters (:func:`settings_id`)
``labeller``     the labeller kind (``gpaw``, ``chgnet``, ...)
``status``       ``pending``, ``ok`` or ``quarantined``
``subset``       what the label is for (``train``, ``heldout``, ``convergence``, ...)
``priority``     labelling order of pending rows (lower first)
``source``       provenance of the configuration (free text, e.g. ``anneal:layered-TM_oct25:600K:s1:f12``)
``wall_s``       seconds the label took (completed rows)
``code``         the labelling code and its version (completed rows)
``attempts``     earlier failed attempts of a row released for another try
``claimed_by``   ``host:boot:pid:start`` of the process labelling a pending row right now (:meth:`LabelStore.claim`),
                 so that two labelling processes on one store (a campaign and ``mtpkit label``)
                 never compute the same row; a claim by a process that has died is void

The row's ``data`` holds ``settings`` (the full labeller spec), ``reason``
(quarantined rows) and ``extra`` (labeller-specific numbers, e.g. the Pulay-stress
correction applied).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

__all__ = ["LabelStore", "StoredLabel", "config_id", "settings_id"]

STATUSES = ("pending", "ok", "quarantined")
#: positions and cell (Å) within which a configuration requested again from the same source is the
#: stored one (an extxyz round trip changes them by up to 5e-9 Å)
TWIN_TOLERANCE = 1e-6


def _key(digest: str, n: int) -> str:
    """``n`` hex digits of ``digest``; one that would read as a number (``"12e45"``, all digits),
    which ase.db refuses as text, becomes ``"x"`` + ``n - 1`` digits. Keys already stored never
    change: they were text."""
    key = digest[:n]
    try:
        float(key)
    except ValueError:
        return key
    return "x" + digest[: n - 1]


def config_id(atoms: Atoms) -> str:
    """Stable 16-character key of a configuration (species, positions and cell to 1e-6 Å)."""
    h = hashlib.sha1()
    h.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
    h.update(np.round(np.asarray(atoms.positions, dtype=float), 6).tobytes())
    h.update(np.round(np.asarray(atoms.cell.array, dtype=float), 6).tobytes())
    return _key(h.hexdigest(), 16)


def settings_id(settings: Any) -> str:
    """12-character key of a labeller setting (a ``LabellerSpec`` or a plain dict).

    The kind, parameters and calculator path count; dict order does not.
    """
    d = asdict(settings) if hasattr(settings, "__dataclass_fields__") else dict(settings)
    text = json.dumps(d, sort_keys=True, default=list)
    return _key(hashlib.sha1(text.encode()).hexdigest(), 12)


@dataclass(frozen=True)
class StoredLabel:
    """One row of the store: its ``id``, the ``atoms`` (with their label when ``status == 'ok'``)
    and the row's key-value pairs and data."""

    id: int
    atoms: Atoms
    status: str
    keys: dict
    data: dict


class LabelStore:
    """A label store in the SQLite file ``path`` (created on first use).

    One process writes at a time (SQLite locks the file; the labelling driver is
    the only writer while it runs); any number may read.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        import ase.db

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = ase.db.connect(str(self.path), type="db", append=True, use_lock_file=False)

    # ------------------------------------------------------------------ writing

    def request(self, atoms: Atoms, settings: Any, *, source: str, subset: str = "train",
                priority: int = 100) -> int:
        """Add ``atoms`` as a pending label under ``settings``; returns the row id.

        A configuration already stored under the same settings (pending, done or
        quarantined) is not added again: its row id is returned; the first row of the
        same ``source`` within :data:`TWIN_TOLERANCE` counts as the same configuration
        (a frame re-read from a file). Pending rows are labelled lowest ``priority`` first.
        """
        for key, text in (("source", source), ("subset", subset)):
            try:
                float(text)
            except ValueError:
                continue
            raise ValueError(f"{key} {text!r}: ase.db keeps text that reads as a number as a number; "
                             f"give a name with letters")
        cid, sid = config_id(atoms), settings_id(settings)
        existing = self._same_source_twin(atoms, sid, source)
        if existing is None:
            existing = self.find(cid, sid)
        if existing is not None:
            return existing
        bare = atoms.copy()
        bare.calc = None
        spec = asdict(settings) if hasattr(settings, "__dataclass_fields__") else dict(settings)
        return self._db.write(bare, config_id=cid, settings_id=sid, labeller=str(spec.get("kind", "")),
                              status="pending", subset=subset, source=source, priority=int(priority),
                              data={"settings": spec})

    def claim(self, row_id: int, owner: str | None = None) -> bool:
        """Take pending row ``row_id`` for labelling by ``owner`` (default: this process, :func:`process_owner`).

        Returns ``False`` when the row is not pending or another live process holds it; the
        check and the claim happen under a lock file beside the store, so of two processes
        claiming one row exactly one wins. :meth:`complete`, :meth:`quarantine` and
        :meth:`unclaim` end a claim; a claim whose process has died (same host) or is older
        than ``CLAIM_TTL_S`` (another host) no longer counts.
        """
        owner = owner or process_owner()
        with self._claim_lock():
            row = self._db.get(id=row_id)
            if row.get("status") != "pending":
                return False
            if _held_by_other(row.get("claimed_by"), float(row.get("claimed_at", 0.0)), owner):
                return False
            self._db.update(row_id, claimed_by=owner, claimed_at=time.time())
            return True

    def unclaim(self, row_id: int) -> None:
        """End the claim on ``row_id`` (its labelling stopped without a result)."""
        with self._claim_lock():
            self._db.update(row_id, delete_keys=["claimed_by", "claimed_at"])

    def claimed_elsewhere(self, row: StoredLabel, owner: str | None = None) -> bool:
        """Whether pending ``row`` is being labelled by another live process."""
        return row.status == "pending" and _held_by_other(row.keys.get("claimed_by"),
                                                          float(row.keys.get("claimed_at", 0.0)),
                                                          owner or process_owner())

    @contextlib.contextmanager
    def _claim_lock(self) -> Iterator[None]:
        with open(self.path.with_name(self.path.name + ".claims.lock"), "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def reprioritize(self, row_id: int, priority: int) -> bool:
        """Change when pending row ``row_id`` is labelled (lowest ``priority`` first). Returns
        whether it changed: a finished or quarantined row is left as it is."""
        if self._db.get(id=row_id).get("status") != "pending":
            return False
        self._db.update(row_id, priority=int(priority))
        return True

    def complete(self, row_id: int, labelled: Atoms, *, wall_s: float, code: str,
                 extra: dict | None = None) -> None:
        """Store the label of pending row ``row_id`` (``labelled`` carries it as its calculator)."""
        self._db.update(row_id, atoms=labelled, status="ok", wall_s=float(wall_s), code=code,
                        data={"extra": extra or {}}, delete_keys=["claimed_by", "claimed_at"])

    def quarantine(self, row_id: int, reason: str, *, wall_s: float = 0.0, code: str = "") -> None:
        """Mark row ``row_id`` as never to be trained on, with the ``reason``."""
        self._db.update(row_id, status="quarantined", wall_s=float(wall_s), code=code,
                        data={"reason": str(reason)}, delete_keys=["claimed_by", "claimed_at"])

    def release(self, row_id: int) -> None:
        """Put a quarantined row back to pending for one more attempt (``attempts`` counts them)."""
        row = self._db.get(id=row_id)
        self._db.update(row_id, status="pending", attempts=int(row.get("attempts", 0)) + 1)

    def add(self, labelled: Atoms, settings: Any, *, source: str, subset: str, code: str = "",
            wall_s: float = 0.0) -> int:
        """Store a configuration labelled elsewhere (its calculator holds the label), e.g. a frame of
        labeller MD or of a relaxation, whose label came with no extra calculation. A
        configuration already stored under ``settings`` is left as it is; returns the row id."""
        rid = self.request(labelled, settings, source=source, subset=subset)
        if self._db.get(id=rid).get("status") == "pending":
            self.complete(rid, labelled, wall_s=wall_s, code=code)
        return rid

    # ------------------------------------------------------------------ reading

    def _same_source_twin(self, atoms: Atoms, sid: str, source: str) -> int | None:
        """First row of the same ``source`` under ``sid`` holding ``atoms`` to within
        :data:`TWIN_TOLERANCE` (a frame re-read from a file at another precision: its ``config_id``
        may differ where a coordinate sits on a rounding boundary), or ``None``."""
        for row in self._db.select(settings_id=sid, source=source, sort="id"):
            other = row.toatoms()
            if (len(other) == len(atoms) and np.array_equal(other.numbers, atoms.numbers)
                    and np.abs(other.positions - atoms.positions).max() <= TWIN_TOLERANCE
                    and np.abs(other.cell.array - atoms.cell.array).max() <= TWIN_TOLERANCE):
                return int(row.id)
        return None

    def find(self, cid: str, sid: str) -> int | None:
        """Row id of configuration ``cid`` under settings ``sid``, or ``None``."""
        for row in self._db.select(config_id=cid, settings_id=sid, limit=1):
            return int(row.id)
        return None

    def rows(self, *, status: str | None = None, settings: Any = None, subset: str | None = None,
             labeller: str | None = None) -> Iterator[StoredLabel]:
        """Rows in insertion order, filtered by status, settings (spec or id), subset, labeller."""
        query = _query(status, settings, subset, labeller)
        for row in self._db.select(sort="id", **query):
            yield _stored(row)

    def row(self, row_id: int) -> StoredLabel:
        """Row ``row_id`` (KeyError if there is none)."""
        return _stored(self._db.get(id=int(row_id)))

    def pending_by_priority(self, subset: str | None = None, max_priority: int | None = None) -> list[StoredLabel]:
        """Pending rows (of ``priority <= max_priority`` when given), lowest ``priority`` first, then in
        request order."""
        rows = [r for r in self.rows(status="pending", subset=subset)
                if max_priority is None or int(r.keys.get("priority", 100)) <= max_priority]
        return sorted(rows, key=lambda r: (int(r.keys.get("priority", 100)), r.id))

    def labelled(self, **filters: Any) -> list[Atoms]:
        """Every ``ok`` label matching ``filters`` (as :meth:`rows`), as Atoms with their results."""
        return [r.atoms for r in self.rows(status="ok", **filters)]

    def counts(self, *, settings: Any = None, subset: str | None = None,
               labeller: str | None = None) -> dict[str, int]:
        """Number of rows per status (filters as :meth:`rows`); counted in SQLite, no rows read."""
        return {s: self._db.count(**_query(s, settings, subset, labeller)) for s in STATUSES}

    def __len__(self) -> int:
        return self._db.count()

    # ------------------------------------------------------------------ files

    def snapshot(self, target: str | os.PathLike) -> Path:
        """A consistent copy of the store at ``target`` (SQLite backup, then an atomic rename),
        safe to take while another process is writing."""
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.unlink(missing_ok=True)
        src = sqlite3.connect(str(self.path))
        dst = sqlite3.connect(str(tmp))
        try:
            with dst:
                src.backup(dst)
        finally:
            src.close()
            dst.close()
        os.replace(tmp, target)
        return target


def _stored(row: Any) -> StoredLabel:
    atoms = row.toatoms(add_additional_information=False)
    keys = dict(row.key_value_pairs)
    atoms.info.update({"label_id": int(row.id), **keys})
    return StoredLabel(int(row.id), atoms, keys["status"], keys, dict(row.data))


def _query(status: str | None, settings: Any, subset: str | None, labeller: str | None) -> dict[str, Any]:
    """The ase.db key filter of :meth:`LabelStore.rows` and :meth:`LabelStore.counts`."""
    query: dict[str, Any] = {}
    if status is not None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        query["status"] = status
    if settings is not None:
        query["settings_id"] = settings if isinstance(settings, str) else settings_id(settings)
    if subset is not None:
        query["subset"] = subset
    if labeller is not None:
        query["labeller"] = labeller
    return query


#: a claim by a process on another host counts for this long (s); same-host claims count while the process lives
CLAIM_TTL_S = 48 * 3600.0


def process_owner(pid: int | None = None) -> str:
    """``host:boot:pid:start`` of process ``pid`` (default: this one), as :meth:`LabelStore.claim`
    records it; boot id and start time tell a live claimant from a later process that got the same
    pid (after a reboot, or pid reuse)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{_boot_id()}:{pid}:{_start_time(pid)}"


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()[:8]
    except OSError:
        return "-"


def _start_time(pid: int) -> str:
    """Start time of ``pid`` in clock ticks after boot (Linux ``/proc``), ``"-"`` where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return "-"


def _held_by_other(holder: str | None, claimed_at: float, owner: str) -> bool:
    """Whether a claim by ``holder`` (made at ``claimed_at``) keeps ``owner`` from a row."""
    return bool(holder) and holder != owner and _claim_alive(holder, claimed_at)


def _claim_alive(holder: str, claimed_at: float) -> bool:
    parts = holder.split(":")
    if len(parts) != 4 or parts[0] != socket.gethostname() or not parts[2].isdigit():
        return time.time() - claimed_at < CLAIM_TTL_S
    _, boot, pid, start = parts
    if boot != _boot_id():
        return False  # claimed before this machine's last boot
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        pass
    return start == "-" or _start_time(int(pid)) == start
