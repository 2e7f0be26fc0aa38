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
