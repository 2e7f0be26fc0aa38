"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from fetch_test_data import MAKE_TARGET, MOTEP_DATA, MOTEP_VERSION

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


@pytest.fixture(scope="session")
def motep_data() -> Path:
    """Folder ``tests/data_path`` of motep's sdist: MLIP-made potentials and outputs.

    Only read here, never fetched: ``make test-data`` (run by ``make test``) fills
    ``tests/.cache`` once, so the tests need no network.
    """
    if not MOTEP_DATA.is_dir():
        pytest.fail(f"test data missing: {MOTEP_DATA} (motep {MOTEP_VERSION}'s sdist). "
                    f"Run `{MAKE_TARGET}` once (needs the network; `make test` runs it "
                    "before pytest).", pytrace=False)
    return MOTEP_DATA


@pytest.fixture
def torch_one_thread():
    """torch on one CPU thread for the test (two busy cores: more threads only fight the others)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
