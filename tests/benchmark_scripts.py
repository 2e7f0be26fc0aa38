"""Load a script of ``benchmarks/nyzc75-pbe`` as a module, and the rattled NYZC75 cells its tests use."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
from ase.io import read

HERE = Path(__file__).resolve().parent
PBE_DIR = HERE.parent / "benchmarks" / "nyzc75-pbe"


def load_script(name: str) -> ModuleType:
    """``benchmarks/nyzc75-pbe/<name>.py`` as a module (imported under a name of its own)."""
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", PBE_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rattled_cells(n: int, seed: int, sigma: float, strain: float = 0.0) -> list:
    """``n`` copies of the 37-atom NYZC75 test cell, positions rattled by ``sigma`` Å and the cell
    scaled by a uniform factor within ``1 ± strain``."""
    base = read(HERE / "data" / "NYZC75_P21n_37atoms_CHGNet-relaxed.cif")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a = base.copy()
        a.positions += rng.normal(0.0, sigma, a.positions.shape)
        if strain:
            a.set_cell(a.cell * (1.0 + rng.uniform(-strain, strain)), scale_atoms=True)
        out.append(a)
    return out
