"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def data_dir() -> Path:
    """Folder of small shipped test inputs (CIFs, .mtp, .cfg)."""
    return DATA


@pytest.fixture
def nyzc75_atoms():
    """The 37-atom NYZC75 P2_1/n model (CHGNet-relaxed), as ASE Atoms."""
    from ase.io import read

    return read(DATA / "NYZC75_P21n_37atoms_CHGNet-relaxed.cif")


MOTEP_VERSION = "0.2.0"
CACHE = Path(__file__).parent / ".cache"


def motep_sdist_dir() -> Path | None:
    """The unpacked motep sdist (MLIP-2-trained ``pot.mtp`` files with MLIP's ``out.cfg``).

    Fetched once with pip from the package registry into ``tests/.cache``;
    ``None`` when pip cannot fetch it.
    """
    import subprocess
    import sys
    import tarfile

    target = CACHE / f"motep-{MOTEP_VERSION}"
    if (target / "tests" / "data_path").is_dir():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"motep-{MOTEP_VERSION}.tar.gz"
    if not tarball.exists():
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "motep",
             "-d", str(CACHE), f"motep=={MOTEP_VERSION}"],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0 or not tarball.exists():
            return None
    with tarfile.open(tarball) as tar:
        tar.extractall(CACHE, filter="data")
    return target


@pytest.fixture(scope="session")
def motep_data() -> Path:
    """Folder ``tests/data_path`` of motep's sdist: MLIP-made potentials and outputs."""
    root = motep_sdist_dir()
    if root is None:
        pytest.fail("could not fetch motep's sdist with pip (needed for MLIP reference outputs)")
    return root / "tests" / "data_path"
