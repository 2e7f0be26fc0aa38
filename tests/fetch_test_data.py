"""Fetch the test-only data once, before the tests: ``make test-data`` (``make test`` runs it).

The MLIP-made potentials and outputs the tests compare against (``tests/data_path`` of motep's
source distribution, MLIP-2-trained ``pot.mtp`` files with MLIP's ``out.cfg``) are downloaded
with pip from the package registry and unpacked into ``tests/.cache/``.  Nothing is fetched
when the cache is already filled, so only the first run needs the network; the tests
themselves only read the cache (``motep_data`` fixture in conftest.py).

Not a test module (no ``test_`` prefix): run it as ``python tests/fetch_test_data.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

MOTEP_VERSION = "0.2.0"
CACHE = Path(__file__).resolve().parent / ".cache"
#: the unpacked sdist; its ``tests/data_path`` is what the tests read
MOTEP_SDIST = CACHE / f"motep-{MOTEP_VERSION}"
MOTEP_DATA = MOTEP_SDIST / "tests" / "data_path"
MAKE_TARGET = "make test-data"


def motep_sdist_dir() -> Path | None:
    """The unpacked motep sdist in ``tests/.cache``, fetched with pip when missing;
    ``None`` when pip cannot fetch it (e.g. offline)."""
    if MOTEP_DATA.is_dir():
        return MOTEP_SDIST
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"motep-{MOTEP_VERSION}.tar.gz"
    if not tarball.exists():
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "motep",
             "-d", str(CACHE), f"motep=={MOTEP_VERSION}"],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0 or not tarball.exists():
            sys.stderr.write(proc.stdout + proc.stderr)
            return None
    # unpack next to the cache and move into place in one step, so that an interrupted
    # run never leaves a half-filled folder that looks complete
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp, tarfile.open(tarball) as tar:
        tar.extractall(tmp, filter="data")
        if MOTEP_SDIST.exists():  # an incomplete tree (no tests/data_path) from an older run
            shutil.rmtree(MOTEP_SDIST)
        (Path(tmp) / MOTEP_SDIST.name).rename(MOTEP_SDIST)
    return MOTEP_SDIST if MOTEP_DATA.is_dir() else None


def main() -> int:
    root = motep_sdist_dir()
    if root is None:
        print(f"could not fetch motep=={MOTEP_VERSION}'s sdist with pip into {CACHE} "
              "(needs the network once)", file=sys.stderr)
        return 1
    print(f"test data: {MOTEP_DATA}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
