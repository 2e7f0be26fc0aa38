"""GPAW as a labeller: the calculator from plain parameters, and the Pulay-stress correction.

Parameters (``LabellerSpec(kind="gpaw", parameters={...})``):

``mode``          ``"pw"`` (plane waves, default) or ``"lcao"``
``mode_ecut``     plane-wave cutoff in eV (``pw``; default 400)
``basis``         LCAO basis (``lcao``; default ``"dzp"``)
``kpts``          Monkhorst–Pack grid, e.g. ``[1, 2, 2]``, or ``{"density": d}`` (points per Å^-1 of
                  reciprocal length, 2π included; one mesh per cell, so cells of different
                  shape get the same k-spacing)
``xc``            functional (default ``"PBE"``)
``smearing_eV``   Fermi–Dirac width in eV (default 0.05)
``convergence``   GPAW's convergence dict (default: GPAW's)
``pulay``         ``"estimate"`` (default with ``pw``), a number, or ``None``

A finite plane-wave basis at a fixed cutoff makes the stress too low by the Pulay
stress, ``(2/3) · ecut · (dE/d ecut) / V`` on the diagonal. GPAW's legacy code
added it when given ``dedecut``; its default (new) code path ignores that keyword,
so the correction is applied here, to the stress GPAW returns:

* ``"estimate"``: GPAW's own estimate of dE/d ecut, summed over atoms from each
  PAW setup's kinetic-energy tail at the cutoff (``gpaw.utilities.ekin``; no SCF);
* a number: dE/d ecut **per atom** (dimensionless, eV per eV of cutoff), measured
  by the user from energies at two cutoffs;
* ``None``: no correction.

The applied correction (GPa) and dE/d ecut are returned so that the label store
keeps them with every label.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from ase import Atoms
from ase.units import GPa, Ha

DEFAULT_ECUT = 400.0


def make_gpaw(parameters: dict) -> Any:
    """The GPAW ASE calculator for ``parameters`` (see the module docstring)."""
    from gpaw import GPAW, PW, FermiDirac

    p = dict(parameters)
    p.pop("pulay", None)
    mode = p.pop("mode", "pw")
    ecut = float(p.pop("mode_ecut", DEFAULT_ECUT))
    basis = p.pop("basis", "dzp")
    width = float(p.pop("smearing_eV", 0.05))
    p.setdefault("xc", "PBE")
    p.setdefault("kpts", (2, 2, 2))
    p.setdefault("txt", None)
    p["kpts"] = tuple(int(k) for k in p["kpts"]) if isinstance(p["kpts"], (list, tuple)) else p["kpts"]
    p.setdefault("occupations", FermiDirac(width))
    if mode == "pw":
        return GPAW(mode=PW(ecut), **p)
    if mode == "lcao":
        return GPAW(mode="lcao", basis=basis, **p)
    raise ValueError(f"labeller.parameters.mode: 'pw' or 'lcao', got {mode!r}")


@lru_cache(maxsize=64)
def setup_dedecut(symbol: str, xc: str, ecut_eV: float) -> float:
    """GPAW's estimate of dE/d ecut (eV per eV) of one atom of ``symbol`` at the cutoff ``ecut_eV``."""
    from gpaw.setup import create_setup
    from gpaw.utilities.ekin import dekindecut, ekin

    g, de, _ = ekin(create_setup(symbol, xc))
    return float(-dekindecut(g, de, ecut_eV / Ha))


def pulay_dedecut(atoms: Atoms, parameters: dict) -> float | None:
    """dE/d ecut (eV per eV) of the whole cell under ``parameters``, or ``None`` (no correction)."""
    if parameters.get("mode", "pw") != "pw":
        return None
    how = parameters.get("pulay", "estimate")
    if how is None:
        return None
    if how == "estimate":
        ecut = float(parameters.get("mode_ecut", DEFAULT_ECUT))
        xc = str(parameters.get("xc", "PBE"))
        return float(sum(setup_dedecut(s, xc, ecut) for s in atoms.get_chemical_symbols()))
    try:
        return float(how) * len(atoms)
    except (TypeError, ValueError):
        raise ValueError(f"labeller.parameters.pulay: 'estimate', a number (dE/d ecut per atom) or none, "
                         f"got {how!r}") from None


def pulay_stress(atoms: Atoms, parameters: dict) -> tuple[np.ndarray, dict]:
    """The Pulay-stress correction (Voigt 6-vector, eV/Å^3, ASE sign) to add to GPAW's stress,
    and what to record about it (``pulay_GPa``, ``dedecut``)."""
    dedecut = pulay_dedecut(atoms, parameters)
    if dedecut is None:
        return np.zeros(6), {"pulay_GPa": 0.0}
    ecut = float(parameters.get("mode_ecut", DEFAULT_ECUT))
    s = 2.0 / 3.0 * ecut * dedecut / atoms.get_volume()
    return np.array([s, s, s, 0.0, 0.0, 0.0]), {"pulay_GPa": float(s / GPa), "dedecut": float(dedecut)}
