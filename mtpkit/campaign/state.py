"""Campaign state on disk: which stages are finished, and a progress log.

``<folder>/state.json`` (written atomically after every change)::

    {"stages": {"structures": {"status": "done", "wall_s": 1.2, "finished": "2025-..."}, ...},
     "scale": "tiny"}

A stage marked ``done`` is never run again; a stage that was interrupted keeps
the files it finished (each stage resumes inside itself where it can).
``<folder>/progress.log`` receives every progress line with a timestamp.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mtpkit.io_utils import atomic_write_json

Log = Callable[[str], None]


class CampaignState:
    """Stage bookkeeping for one campaign folder."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / "state.json"
        self.data: dict[str, Any] = {"stages": {}}
        if self.path.is_file():
            self.data = json.loads(self.path.read_text())
            self.data.setdefault("stages", {})

    def is_done(self, stage: str) -> bool:
        return self.data["stages"].get(stage, {}).get("status") == "done"

    def stage(self, stage: str) -> dict[str, Any]:
        return self.data["stages"].get(stage, {})

    def mark(self, stage: str, status: str, **info: Any) -> None:
        entry = self.data["stages"].setdefault(stage, {})
        entry.update(info, status=status, updated=time.strftime("%Y-%m-%dT%H:%M:%S"))
        self.save()

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.save()

    def save(self) -> None:
        atomic_write_json(self.path, self.data)


@contextlib.contextmanager
def forward_logging(say: Log) -> Iterator[None]:
    """While inside, INFO and higher messages of the ``mtpkit`` loggers (the active-learning
    engine, the label queue) go to ``say`` too; the logger is restored afterwards."""
    logger = logging.getLogger("mtpkit")

    class _Say(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            say(record.getMessage())

    handler = _Say(logging.INFO)
    old_level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def make_logger(folder: str | os.PathLike, echo: bool = True) -> Log:
    """A progress function: prints ``[campaign] message`` and appends it to ``progress.log``."""
    log_path = Path(folder) / "progress.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def say(message: str) -> None:
        line = f"[{time.perf_counter() - t0:7.1f} s] {message}"
        if echo:
            print(line, file=sys.stdout, flush=True)
        with open(log_path, "a") as fh:
            fh.write(time.strftime("%Y-%m-%d %H:%M:%S ") + line + "\n")

    return say
