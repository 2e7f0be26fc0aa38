"""Structures in and out of LAMMPS: ASE/pymatgen input, LAMMPS data files, box conversion.

LAMMPS needs a "restricted triclinic" cell: ``a`` along x, ``b`` in the xy
plane (upper-triangular box matrix in row-vector convention). :func:`to_lammps_cell`
rotates any right-handed cell into that frame; fractional coordinates are kept.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers

from mtpkit.errors import InputFileError, UserError


def as_atoms(structure, source: str | None = None) -> Atoms:
    """An ASE ``Atoms`` from ``Atoms``, a pymatgen ``Structure`` or a file path.

    Raises
    ------
    InputFileError
        When a file cannot be read as a structure.
    UserError
        When the object is of an unknown type or not periodic in 3D.
    """
    if isinstance(structure, (str, os.PathLike)):
        path = Path(structure)
        if not path.is_file():
            raise InputFileError(path, "structure file not found", field=source)
        try:
            from ase.io import read

            atoms = read(path)
        except Exception as exc:  # ASE raises many types for unreadable files
            raise InputFileError(path, f"cannot read a structure ({type(exc).__name__}: {exc})",
                                 field=source) from exc
        if isinstance(atoms, list):
            atoms = atoms[-1]
    elif isinstance(structure, Atoms):
        atoms = structure.copy()
    elif type(structure).__name__ in ("Structure", "IStructure"):
        from pymatgen.io.ase import AseAtomsAdaptor

        atoms = AseAtomsAdaptor.get_atoms(structure)
    else:
        raise UserError(f"{source or 'structure'}: expected ASE Atoms, pymatgen Structure or a "
                        f"file path, got {type(structure).__name__}")
    if len(atoms) == 0:
        raise UserError(f"{source or 'structure'}: the structure has no atoms")
    if not all(atoms.pbc) or abs(np.linalg.det(atoms.cell.array)) < 1e-9:
        raise UserError(f"{source or 'structure'}: MD needs a 3D periodic cell")
    atoms.calc = None
    return atoms


def to_lammps_cell(cell: npt.ArrayLike) -> tuple[np.ndarray, dict[str, float]]:
    """The restricted-triclinic LAMMPS box for a right-handed cell (rows = a, b, c, Å).

    Returns the rotated cell matrix (rows) and the LAMMPS box parameters
    ``lx, ly, lz, xy, xz, yz``.
    """
    cell = np.asarray(cell, dtype=float)
    if np.linalg.det(cell) <= 0:
        raise UserError("the cell is left-handed (negative determinant); reorder its vectors")
    a, b, c = cell
    lx = np.linalg.norm(a)
    xy = b @ a / lx
    ly = np.sqrt(b @ b - xy**2)
    xz = c @ a / lx
    yz = (b @ c - xy * xz) / ly
    lz = np.sqrt(c @ c - xz**2 - yz**2)
    rot = np.array([[lx, 0, 0], [xy, ly, 0], [xz, yz, lz]])
    return rot, dict(lx=lx, ly=ly, lz=lz, xy=xy, xz=xz, yz=yz)


def lammps_atoms(atoms: Atoms) -> Atoms:
    """A copy of ``atoms`` in the LAMMPS frame (restricted triclinic, wrapped into the box)."""
    rot, _ = to_lammps_cell(atoms.cell.array)
    out = atoms.copy()
    frac = atoms.get_scaled_positions(wrap=True)
    out.set_cell(rot, scale_atoms=False)
    out.set_scaled_positions(frac)
    if atoms.has("momenta"):  # rotate velocities with the cell
        rmat = np.linalg.solve(atoms.cell.array, rot)  # rows: old frame -> new frame
        out.set_momenta(atoms.get_momenta() @ rmat)
    return out


def write_data(path: str | Path, atoms: Atoms, species: Sequence[str]) -> None:
    """Write a LAMMPS ``atom_style atomic`` data file (full precision) for ``atoms``.

    Type ``k+1`` is ``species[k]``; masses are ASE's standard atomic masses (g/mol).
    ``atoms`` must already be in the LAMMPS frame (see :func:`lammps_atoms`).
    """
    _, box = to_lammps_cell(atoms.cell.array)
    box = {k: float(v) for k, v in box.items()}
    types = species_types(atoms, species)
    lines = [
        "LAMMPS data file written by mtpkit",
        "",
        f"{len(atoms)} atoms",
        f"{len(species)} atom types",
        "",
        f"0.0 {box['lx']!r} xlo xhi",
        f"0.0 {box['ly']!r} ylo yhi",
        f"0.0 {box['lz']!r} zlo zhi",
        f"{box['xy']!r} {box['xz']!r} {box['yz']!r} xy xz yz",
        "",
        "Masses",
        "",
    ]
    lines += [f"{k + 1} {float(atomic_masses[atomic_numbers[s]])!r}" for k, s in enumerate(species)]
    lines += ["", "Atoms # atomic", ""]
    for i, (t, pos) in enumerate(zip(types, atoms.positions)):
        lines.append(f"{i + 1} {t + 1} {float(pos[0])!r} {float(pos[1])!r} {float(pos[2])!r}")
    Path(path).write_text("\n".join(lines) + "\n")


def species_types(atoms: Atoms, species: Sequence[str]) -> np.ndarray:
    """0-based type index of every atom in ``species`` order.

    Raises
    ------
    UserError
        When an element of ``atoms`` is not in ``species`` or ``species`` names an unknown element.
    """
    for s in species:
        if s not in atomic_numbers:
            raise UserError(f"species: unknown chemical element {s!r}")
    index = {s: k for k, s in enumerate(species)}
    missing = sorted(set(atoms.get_chemical_symbols()) - set(index))
    if missing:
        raise UserError(f"species: the structure contains {missing} which is not in the "
                        f"species list {list(species)}")
    return np.array([index[s] for s in atoms.get_chemical_symbols()], dtype=np.int64)


def box_from_lammps(lmp) -> np.ndarray:
    """The current LAMMPS box as a 3x3 cell matrix (rows = a, b, c, Å)."""
    boxlo, boxhi, xy, yz, xz, _periodicity, _changed = lmp.extract_box()
    lx, ly, lz = (boxhi[k] - boxlo[k] for k in range(3))
    return np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])
