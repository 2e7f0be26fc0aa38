"""How the potential enters LAMMPS: the ``pair_style mtp`` plugin or ``fix external``.

Both engines are small picklable descriptions (so sweeps can ship them to
worker processes); :meth:`setup` issues the LAMMPS commands on a live instance.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from mtpkit.errors import InputFileError, UserError
from mtpkit.md import lammps_env
from mtpkit.md.structure import box_from_lammps

FIX_EXTERNAL_ID = "mtpkit_ext"


@dataclass
class Extrapolation:
    """Extrapolation control of ``pair_style mtp`` (needs a potential with an active set).

    Attributes
    ----------
    every:
        Compute grades every this many steps.
    select_threshold:
        Save configurations whose max grade exceeds this (MLIP's ``threshold_save``).
    break_threshold:
        Stop the run cleanly when the max grade exceeds this (MLIP's ``threshold_break``).
    save:
        File (extended XYZ) that collects the selected configurations, relative to the run folder.
    """

    every: int = 1
    select_threshold: float = 2.1
    break_threshold: float = 10.0
    save: str = "extrapolative.extxyz"

    def __post_init__(self) -> None:
        if self.every < 1:
            raise UserError(f"extrapolation.every must be >= 1, got {self.every}")
        if not 1.0 <= self.select_threshold <= self.break_threshold:
            raise UserError("extrapolation thresholds must satisfy 1 <= select_threshold "
                            f"<= break_threshold, got {self.select_threshold}, "
                            f"{self.break_threshold}")

    def keywords(self, folder: Path) -> str:
        """The ``pair_style mtp`` keywords for this control."""
        return (f"extrapolation_control every {self.every} select_threshold "
                f"{self.select_threshold!r} break_threshold {self.break_threshold!r} "
                f"save {folder / self.save}")


def check_potential_file(path: str | Path) -> Path:
    """Check that ``path`` is an MTP potential (``.mtp``/``.almtp`` text starting with ``MTP``).

    Raises
    ------
    InputFileError
        When the file is missing or is not an MTP potential.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise InputFileError(path, "potential file not found", field="potential")
    with open(path, "rb") as fh:
        head = fh.read(64)
    if not head.lstrip().startswith(b"MTP"):
        raise InputFileError(path, "not an MTP potential file (it must start with 'MTP')",
                             line=1, field="potential")
    return path


def potential_min_dist(path: str | Path) -> float | None:
    """``min_dist`` (Å) from an MTP file header, or ``None`` when absent."""
    with open(path, "rb") as fh:
        text = fh.read(4096).decode("ascii", errors="replace")
    m = re.search(r"min_dist\s*=\s*([-+0-9.eE]+)", text)
    return float(m.group(1)) if m else None


@dataclass
class PluginEngine:
    """The compiled ``pair_style mtp`` plugin reading an ``.mtp``/``.almtp`` file."""

    potential: str | Path
    extrapolation: Extrapolation | None = None

    def __post_init__(self) -> None:
        self.potential = check_potential_file(self.potential)

    name = "plugin"

    def default_min_dist(self) -> float | None:
        return potential_min_dist(self.potential)

    def setup(self, lmp, species: Sequence[str], folder: Path, min_dist: float = 0.0) -> None:
        """``plugin load`` + ``pair_style mtp`` + ``pair_coeff * * species``.

        ``min_dist`` (Å): a closer pair stops the run as a blow-up (0: no check).
        """
        lammps_env.load_plugin(lmp)
        style = f"pair_style mtp {self.potential} min_dist_error {float(min_dist)!r}"
        if self.extrapolation is not None:
            style += " " + self.extrapolation.keywords(folder)
        lmp.command(style)
        lmp.command("pair_coeff * * " + " ".join(species))
        if self.extrapolation is not None:
            lmp.command("compute mtpkit_pair all pair mtp")
            lmp.command("variable mtpkit_max_gamma equal c_mtpkit_pair[1]")

    def thermo_fields(self) -> list[str]:
        return ["v_mtpkit_max_gamma"] if self.extrapolation is not None else []

    def grading(self) -> tuple[str, int] | None:
        """``(LAMMPS reference to the max extrapolation grade, grading interval in steps)``,
        or ``None`` without extrapolation control."""
        if self.extrapolation is None:
            return None
        return "c_mtpkit_pair[1]", int(self.extrapolation.every)

    def save_path(self, folder: Path) -> Path | None:
        """The file the pair style appends selected configurations to (``None``: none)."""
        if self.extrapolation is None or not self.extrapolation.save:
            return None
        return Path(folder) / self.extrapolation.save


@dataclass
class ExternalEngine:
    """Any ASE calculator driven through ``fix external`` (serial only).

    Energy (eV), forces (eV/Å) and the virial (eV, from the calculator's
    stress) are handed to LAMMPS every step, so NPT barostats see the
    potential. ``stress`` may be skipped (``virial=False``) for NVE/NVT.
    """

    calculator: object
    virial: bool = True
    name = "external"
    _species: list[str] = field(default_factory=list, repr=False)
    _lmp: object = field(default=None, repr=False)

    @classmethod
    def from_potential(cls, potential: str | Path, species: Sequence[str]) -> ExternalEngine:
        """The mtpkit calculator of an MTP file, through ``fix external``."""
        path = check_potential_file(potential)
        from mtpkit.potentials.calculator import MTPCalculator
        from mtpkit.potentials.mtp_io import read_mtp

        return cls(MTPCalculator(read_mtp(path), species=list(species),
                                 on_short_distance="ignore"))

    def default_min_dist(self) -> float | None:
        compiled = getattr(self.calculator, "compiled", None)
        return float(compiled.mtp.min_dist) if compiled is not None else None

    def setup(self, lmp, species: Sequence[str], folder: Path, min_dist: float = 0.0) -> None:
        """``pair_style zero`` + ``fix external pf/callback`` with energy and virial.

        ``min_dist`` is checked by the runner between chunks only.
        """
        if int(lmp.extract_setting("world_size")) != 1:
            raise UserError("the fix-external engine runs on one MPI rank only; use the plugin")
        self._species = list(species)
        self._lmp = lmp
        lmp.command("pair_style zero 1.0")
        lmp.command("pair_coeff * *")
        lmp.command(f"fix {FIX_EXTERNAL_ID} all external pf/callback 1 1")
        lmp.command(f"fix_modify {FIX_EXTERNAL_ID} energy yes virial yes")
        lmp.set_fix_external_callback(FIX_EXTERNAL_ID, self._callback, lmp)

    def thermo_fields(self) -> list[str]:
        return []

    def grading(self) -> None:
        """No extrapolation grades through ``fix external``."""
        return None

    def save_path(self, folder: Path) -> None:
        return None

    def _callback(self, lmp, ntimestep: int, nlocal: int, tag, x, f) -> None:
        """Evaluate the calculator on the current configuration; assign forces, energy, virial."""
        types = lmp.numpy.extract_atom("type")[:nlocal]
        order = np.argsort(tag)
        cell = box_from_lammps(lmp)
        symbols = [self._species[t - 1] for t in types[order]]
        atoms = Atoms(symbols=symbols, positions=np.array(x[order]), cell=cell, pbc=True)
        atoms.calc = self.calculator
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        f[order] = forces  # assign: fix external adds f to LAMMPS' forces, pair style is zero
        lmp.fix_external_set_energy_global(FIX_EXTERNAL_ID, float(energy))
        if self.virial:
            s = atoms.get_stress(voigt=True)  # xx yy zz yz xz xy, eV/Å^3
            w = -s * atoms.get_volume()
            lmp.fix_external_set_virial_global(
                FIX_EXTERNAL_ID, [w[0], w[1], w[2], w[5], w[4], w[3]])

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_lmp"] = None
        return state
