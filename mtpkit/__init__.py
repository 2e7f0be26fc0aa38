"""mtpkit: Moment Tensor Potentials trained by active learning, run in LAMMPS,
and turned into diffusivities and ionic conductivities.

Public entry points::

    pot = mtpkit.load_potential("pot.mtp")          # .mtp or .almtp
    calc = pot.calculator(species=["Na", "Y", "Zr", "Cl"])
    images = mtpkit.read_cfg("train.cfg", species=["Na", "Y", "Zr", "Cl"])
    mtpkit.write_cfg("out.cfg", images, species=["Na", "Y", "Zr", "Cl"])
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_potential", "read_cfg", "write_cfg"]


def __getattr__(name: str):
    # Lazy so that `import mtpkit` stays cheap and free of import cycles.
    if name == "load_potential":
        from mtpkit.potentials.potential import load_potential

        return load_potential
    if name in ("read_cfg", "write_cfg"):
        from mtpkit.potentials import cfg

        return getattr(cfg, name)
    raise AttributeError(f"module 'mtpkit' has no attribute {name!r}")
