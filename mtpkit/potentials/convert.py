"""Convert labelled configurations between MLIP ``.cfg`` and anything ASE reads or writes.

Energies (eV), forces (eV/Å) and stresses (eV/Å^3, ASE convention; written to
``.cfg`` as ``PlusStress`` = -V * stress) travel as calculator results.
Typical inputs: ``.cfg``, extxyz, VASP ``vasprun.xml`` / ``OUTCAR``, ASE
trajectories.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ase import Atoms

from mtpkit.errors import InputFileError, UserError
from mtpkit.potentials.cfg import default_species, read_cfg, write_cfg

__all__ = ["convert", "read_images", "write_images"]


def _is_cfg(path: str | os.PathLike, fmt: str | None) -> bool:
    return fmt == "cfg" if fmt else Path(path).suffix.lower() == ".cfg"


def read_images(path: str | os.PathLike, species: Sequence[str] | None = None, fmt: str | None = None,
                index: str = ":") -> list[Atoms]:
    """All configurations of ``path`` with their labels (``.cfg`` or any format ASE reads)."""
    if not Path(path).exists():
        raise InputFileError(path, "no such file")
    if _is_cfg(path, fmt):
        images = read_cfg(path, species)
        if index != ":":
            from ase.io.formats import string2index

            sel = images[string2index(index)]
            images = sel if isinstance(sel, list) else [sel]
        return images
    import ase.io

    try:
        images = ase.io.read(path, index=index, format=fmt)
    except Exception as exc:  # noqa: BLE001 - ASE raises many kinds; report one clear line
        raise InputFileError(path, f"ASE cannot read it{f' as {fmt}' if fmt else ''}: "
                                   f"{type(exc).__name__}: {exc}") from None
    images = images if isinstance(images, list) else [images]
    if not images:
        raise InputFileError(path, "contains no configurations")
    return images


def write_images(path: str | os.PathLike, images: Sequence[Atoms], species: Sequence[str] | None = None,
                 fmt: str | None = None) -> list[str] | None:
    """Write ``images`` atomically; returns the species list used for a ``.cfg`` (else ``None``).

    For ``.cfg`` without ``species``: the MLIP types already attached
    (``atoms.arrays["mtp_type"]``) or else symbols in order of first appearance.
    """
    if _is_cfg(path, fmt):
        if species is None and not all("mtp_type" in a.arrays for a in images):
            species = default_species(images)
        write_cfg(path, images, species)
        return None if species is None else list(species)
    import ase.io

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    try:
        try:
            fmt_used = fmt or ase.io.formats.filetype(target, read=False)
            ase.io.write(tmp, list(images), format=fmt_used)
        except Exception as exc:  # noqa: BLE001 - any ASE writer failure becomes one clear line
            raise UserError(f"{path}: ASE cannot write it{f' as {fmt}' if fmt else ''}: "
                            f"{type(exc).__name__}: {exc}") from None
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return None


def convert(source: str | os.PathLike, target: str | os.PathLike, species: Sequence[str] | None = None,
            in_format: str | None = None, out_format: str | None = None, index: str = ":"
            ) -> tuple[int, list[str] | None]:
    """Convert ``source`` to ``target``; returns (number of configurations, species used for a .cfg).

    A ``.cfg`` stores MLIP type indices, not elements: converting one to any
    other format needs ``species`` (the chemical symbol of each type), else
    :class:`~mtpkit.errors.UserError` -- the placeholder elements of untyped
    reading (type 0 as X, 1 as H, ...) would be written as if they were real.
    ``.cfg`` to ``.cfg`` keeps the types as they are.
    """
    if species is None and _is_cfg(source, in_format) and not _is_cfg(target, out_format):
        raise UserError(f"{source}: a .cfg stores MLIP type indices, not elements; give the species "
                        f"(chemical symbol of each type 0, 1, ..., e.g. --species Na,Cl) to write {target}")
    images = read_images(source, species, in_format, index)
    used = write_images(target, images, species, out_format)
    return len(images), used
