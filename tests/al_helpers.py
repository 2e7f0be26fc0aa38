"""Helpers for the active-learning loop tests (imported by a subprocess through PYTHONPATH)."""

from __future__ import annotations

import os
import time

import numpy as np
from ase.calculators.emt import EMT


class SlowEMT(EMT):
    """ASE's EMT that sleeps ``delay`` s per calculation and logs each finished one.

    One line per finished calculation (a hash of the configuration) goes to the
    file named by ``MTPKIT_TEST_LABEL_LOG``, so a test can count how often each
    configuration was labelled. ``fail_above`` (Å, max |displacement| from the
    first-seen lattice) makes a calculation return NaN energies to exercise quarantine.
    """

    def __init__(self, delay: float = 0.0, nan_every: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.delay = delay
        self.nan_every = nan_every
        self.count = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=("positions",)):
        super().calculate(atoms, properties, system_changes)
        if self.delay:
            time.sleep(self.delay)
        self.count += 1
        if self.nan_every and self.count % self.nan_every == 0:
            self.results["energy"] = float("nan")
        log = os.environ.get("MTPKIT_TEST_LABEL_LOG")
        if log:
            from mtpkit.active_learning.store import config_id

            with open(log, "a") as fh:
                fh.write(config_id(self.atoms) + "\n")


def positions_hash(atoms) -> str:
    return str(np.round(atoms.positions, 6).sum())


class FlakyEMT(EMT):
    """ASE's EMT whose first ``fail_times`` calculations of every second configuration it meets
    (in the order first seen) give a NaN energy: a transient failure that a retry can cure."""

    def __init__(self, fail_times: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.fail_times = fail_times
        self.order: list = []
        self.tries: dict = {}

    def calculate(self, atoms=None, properties=("energy",), system_changes=("positions",)):
        from mtpkit.active_learning.store import config_id

        super().calculate(atoms, properties, system_changes)
        if "forces" not in properties:
            return
        cid = config_id(self.atoms)
        if cid not in self.tries:
            self.order.append(cid)
            self.tries[cid] = 0
        self.tries[cid] += 1
        if self.order.index(cid) % 2 == 1 and self.tries[cid] <= self.fail_times:
            self.results["energy"] = float("nan")
