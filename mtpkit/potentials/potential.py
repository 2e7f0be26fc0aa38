"""A loaded potential: the MTP plus the chemical symbol of each MLIP type."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mtpkit.errors import InputFileError, UserError
from mtpkit.potentials.cfg import species_numbers
from mtpkit.potentials.model import MTP
from mtpkit.potentials.mtp_io import read_mtp, write_mtp

__all__ = ["Potential", "load_potential"]

_SUFFIXES = (".mtp", ".almtp")


@dataclass
class Potential:
    """An MTP and, optionally, ``species[t]`` = chemical symbol of MLIP type ``t``.

    MLIP files do not record species, so ``species`` comes from the caller
    (``load_potential(path, species=...)`` or ``calculator(species=...)``).
    """

    mtp: MTP
    species: list[str] | None = None
    path: Path | None = None

    def __post_init__(self) -> None:
        if self.species is not None:
            self.species = _check_species(self.species, self.mtp)

    @property
    def active_set(self) -> object | None:
        """The MaxVol active set read from an ``.almtp`` (``None`` when absent)."""
        return self.mtp.active_set

    def save(self, path: str | os.PathLike) -> None:
        """Write the potential atomically (``.mtp``: MLIP-2 layout; ``.almtp``: MLIP-3 with active set)."""
        if Path(path).suffix not in _SUFFIXES:
            raise UserError(f"{path}: a potential file must end in .mtp or .almtp")
        write_mtp(path, self.mtp)
        self.path = Path(path)

    def calculator(self, species: Sequence[str | int] | None = None, **kwargs: object):
        """An ASE calculator (:class:`mtpkit.potentials.calculator.MTPCalculator`).

        ``species`` (chemical symbols of types 0, 1, ...) defaults to this
        potential's own list.
        """
        from mtpkit.potentials.calculator import MTPCalculator

        chosen = self.species if species is None else _check_species(species, self.mtp)
        return MTPCalculator(self, species=chosen, **kwargs)

    def torch_model(self, species: Sequence[str | int] | None = None, device: object = "cpu",
                    dtype: object = None, **kwargs: object):
        """A torch-sim model (:class:`mtpkit.potentials.torch_model.MTPTorchModel`) for batched MD.

        ``dtype`` defaults to ``torch.float64``; ``device`` is ``"cpu"`` or
        ``"cuda"``. Needs the ``torch`` extra (``pip install mtpkit[torch]``).
        Grades use this potential's active set (``.almtp``) unless
        ``active_set=`` is given.
        """
        try:
            import torch

            from mtpkit.potentials.torch_model import MTPTorchModel
        except ImportError as exc:
            raise UserError(f"the torch-sim model needs torch and torch-sim ({exc}); "
                            "install them with `pip install mtpkit[torch]`") from exc
        chosen = self.species if species is None else _check_species(species, self.mtp)
        if chosen is None:
            raise UserError("give the species (chemical symbol of each MLIP type): torch_model(species=[...])")
        return MTPTorchModel(self.mtp, chosen, device=device, dtype=torch.float64 if dtype is None else dtype,
                             **kwargs)


def _check_species(species: Sequence[str | int], mtp: MTP) -> list[str]:
    from ase.data import chemical_symbols

    numbers = species_numbers(list(species))
    assert numbers is not None
    if len(numbers) != mtp.species_count:
        raise UserError(f"{len(numbers)} species given ({', '.join(map(str, species))}) but the potential "
                        f"has species_count = {mtp.species_count}")
    return [chemical_symbols[z] for z in numbers]


def load_potential(path: str | os.PathLike, species: Sequence[str | int] | None = None) -> Potential:
    """Load an MLIP ``.mtp`` or ``.almtp`` potential.

    Raises :class:`~mtpkit.errors.InputFileError` for unreadable or malformed
    files (naming file, line and field).
    """
    p = Path(path)
    if p.suffix not in _SUFFIXES:
        raise InputFileError(p, "expected an MLIP potential file ending in .mtp or .almtp")
    return Potential(read_mtp(p), species=None if species is None else list(species), path=p)
