"""MLIP ``.cfg`` configuration files <-> ASE ``Atoms``.

One configuration::

    BEGIN_CFG
     Size
        <number of atoms>
     Supercell                      (absent: non-periodic; one row per periodic direction)
        <a_x a_y a_z>  (Å) ...
     AtomData:  id type cartes_x cartes_y cartes_z fx fy fz [site_en] [charge] [nbh_grades] ...
        ...                         (any subset/order of columns; direct_x.. instead of cartes_x..)
     Energy
        <total energy, eV>
     PlusStress:  xx yy zz yz xz xy
        <virial, eV>                (= -V * ASE stress; positive under compression)
     Feature   <key>\\t<value>       (any number; go to atoms.info)
    END_CFG

``type`` is the 0-based MLIP species index: with ``species`` given it is
mapped to ``species[type]`` (a chemical symbol or atomic number); without,
atoms get placeholder atomic numbers equal to the type (X, H, He, ...). The
type is always kept in ``atoms.arrays["mtp_type"]``.

Labels become a :class:`~ase.calculators.singlepoint.SinglePointCalculator`
with ``energy``/``free_energy`` (eV), ``forces`` (eV/Å), ``stress`` (ASE
Voigt, eV/Å^3, only when the file has ``PlusStress`` and a cell) and
``energies`` (from ``site_en``). ``nbh_grades`` and ``charge`` columns go to
``atoms.arrays``. Writing uses MLIP's own fixed-width layout, so a file MLIP
wrote is reproduced byte for byte.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols

from mtpkit.errors import InputFileError, UserError
from mtpkit.io_utils import atomic_open
from mtpkit.potentials.cfg_reference import (
    _parse,
)

__all__ = [
    "default_species",
    "format_cfg",
    "iter_cfg",
    "read_cfg",
    "read_cfg_reference",
    "read_cfg_text",
    "read_cfg_text_reference",
    "species_numbers",
    "write_cfg",
]



def species_numbers(species: Sequence[str | int] | None) -> list[int] | None:
    """Atomic numbers for a species list given as symbols or numbers (``None`` passes through)."""
    if species is None:
        return None
    out = []
    for s in species:
        if isinstance(s, (int, np.integer)):
            if not 0 <= int(s) < len(chemical_symbols):
                raise UserError(f"unknown atomic number {s} in species")
            out.append(int(s))
        else:
            name = str(s).strip()
            if name not in atomic_numbers:
                raise UserError(f"unknown chemical symbol {name!r} in species")
            out.append(atomic_numbers[name])
    if len(set(out)) != len(out):
        raise UserError(f"species {list(species)} contains duplicates")
    return out


# --------------------------------------------------------------------------- reading


def _lines_of(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    try:
        fh = open(path, encoding="utf-8")  # noqa: SIM115 - closed by the generator
    except OSError as exc:
        raise InputFileError(path, f"cannot read: {exc.strerror or exc}") from None
    with fh:
        yield from enumerate(fh, start=1)


def iter_cfg(path: str | os.PathLike, species: Sequence[str | int] | None = None) -> Iterator[Atoms]:
    """Yield the configurations of a ``.cfg`` file one by one (constant memory).

    This is the readable reference parser, line by line; :func:`read_cfg`
    gives the same configurations and errors, faster.
    """
    yield from _parse(_lines_of(path), os.fspath(path), species_numbers(species))


def read_cfg(path: str | os.PathLike, species: Sequence[str | int] | None = None) -> list[Atoms]:
    """All configurations of a ``.cfg`` file as ASE ``Atoms`` with labels attached.

    Reads the whole file at once and parses atom tables with NumPy
    (:mod:`mtpkit.potentials.cfg_fast`); the result and any error are those of
    the reference parser :func:`read_cfg_reference`.

    Raises
    ------
    InputFileError
        Naming file, line and field (malformed or NaN numbers, a type beyond
        ``species``, wrong column counts, missing blocks).
    """
    from mtpkit.potentials.cfg_fast import parse_cfg_bytes, read_bytes

    numbers = species_numbers(species)
    data = read_bytes(path)
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return read_cfg_reference(path, species)  # raises as the reference does
    return parse_cfg_bytes(data, os.fspath(path), numbers)


def read_cfg_reference(path: str | os.PathLike, species: Sequence[str | int] | None = None) -> list[Atoms]:
    """:func:`read_cfg` by the readable line-by-line reference parser (slower)."""
    return list(iter_cfg(path, species))


def read_cfg_text(text: str, species: Sequence[str | int] | None = None,
                  path: str | os.PathLike | None = None) -> list[Atoms]:
    """Parse ``.cfg`` text (e.g. the selected set stored in an ``.almtp``)."""
    from mtpkit.potentials.cfg_fast import parse_cfg_bytes

    # str.splitlines() also breaks lines at these; the fast parser only at \n and \r
    if any(c in text for c in _OTHER_LINE_BREAKS):
        return read_cfg_text_reference(text, species, path)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return read_cfg_text_reference(text, species, path)
    return parse_cfg_bytes(data, "<text>" if path is None else os.fspath(path), species_numbers(species))


_OTHER_LINE_BREAKS = ("\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")


def read_cfg_text_reference(text: str, species: Sequence[str | int] | None = None,
                            path: str | os.PathLike | None = None) -> list[Atoms]:
    """:func:`read_cfg_text` by the reference parser."""
    lines = enumerate(text.splitlines(keepends=True), start=1)
    return list(_parse(lines, "<text>" if path is None else os.fspath(path), species_numbers(species)))


# --------------------------------------------------------------------------- writing


def _types_of(atoms: Atoms, numbers: list[int] | None, index: int) -> np.ndarray:
    if numbers is None:
        if "mtp_type" not in atoms.arrays:
            raise UserError(f"configuration {index}: no species list given and no 'mtp_type' array; "
                            "pass species=[...] to map chemical symbols to MLIP types")
        return np.asarray(atoms.arrays["mtp_type"], dtype=np.int64)
    z = np.asarray(atoms.numbers, dtype=np.int64)
    lookup = np.full(max(numbers, default=0) + 1, -1, dtype=np.int64)
    lookup[numbers] = np.arange(len(numbers))
    types = lookup[np.minimum(z, lookup.size - 1)]
    unknown = (types < 0) | (z >= lookup.size)
    if unknown.any():
        bad = int(z[np.argmax(unknown)])
        raise UserError(f"configuration {index}: element {chemical_symbols[bad]} is not in species "
                        f"{[chemical_symbols[z] for z in numbers]}")
    return types


def _feature_text(value: object) -> str | None:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        fixed = f"{v:f}"  # MLIP's to_string(double)
        return fixed if float(fixed) == v else repr(v)
    if isinstance(value, str):
        return value
    return None


def format_cfg(atoms: Atoms, species: Sequence[str | int] | None = None, *, index: int = 0,
               lossless: bool = False) -> str:
    """One configuration in MLIP's ``.cfg`` layout.

    ``lossless=True`` writes every float as ``%.16e`` instead of MLIP's fixed
    widths (6 decimals for positions and forces, 5 for the virial).
    """
    return _format(atoms, species_numbers(species), index, lossless)


#: rows formatted by one %-template at a time (bounds the template and its value tuple)
_ROWS_PER_TEMPLATE = 8192


def _atom_rows(types: np.ndarray, positions: np.ndarray, site, forces, charges, grades, lossless: bool) -> str:
    """The AtomData rows (without the final newline): the same text as
    :func:`_atom_rows_reference`, formatted column by column with NumPy
    (:func:`mtpkit.potentials.cfg_fast.format_rows`) or else by one %-template
    per block of rows."""

    n = len(types)
    # (blanks before, values, width, decimals) of every number of a row
    fields: list[tuple[str, np.ndarray, int, int | None]] = [
        ("    ", np.arange(1, n + 1, dtype=np.float64), 10, None),
        (" ", np.asarray(types, dtype=np.float64), 4, None)]

    def add(blanks: str, values, count: int, width: int, decimals: int) -> None:
        values = np.asarray(values, dtype=np.float64).reshape(n, count)
        fields.extend((blanks if k == 0 else " ", values[:, k], width, decimals) for k in range(count))

    add("  ", positions, 3, 13, 6)
    if site is not None:
        add("  ", site, 1, 17, 12)
    if forces is not None:
        add("  ", forces, 3, 11, 6)
    if charges is not None:
        add("    ", charges, 1, 8, 4)
    if grades is not None:
        add("  ", grades, 1, 15, 5)
    if not lossless and n:
        from mtpkit.potentials.cfg_fast import format_rows

        text = format_rows(fields)
        if text is not None:
            return text[:-1]
    # one %-template per block of rows (values too wide for the fixed layout, non-finite, lossless)
    row = "".join(blanks + ("%.16e" if lossless and d is not None else f"%{w}{'d' if d is None else f'.{d}f'}")
                  for blanks, _v, w, d in fields)
    table = np.column_stack([v for _b, v, _w, _d in fields])
    parts = []
    for start in range(0, n, _ROWS_PER_TEMPLATE):
        block = table[start:start + _ROWS_PER_TEMPLATE]
        parts.append("\n".join([row] * len(block)) % tuple(block.ravel().tolist()))
    return "\n".join(parts)


def _atom_rows_reference(types, positions, site, forces, charges, grades, lossless: bool) -> str:
    """The AtomData rows, row by row: the readable definition of the layout
    (MLIP's fixed widths) that :func:`_atom_rows` reproduces."""

    def f(x: float, width: int, prec: int) -> str:
        return f"{x:.16e}" if lossless else f"{x:{width}.{prec}f}"

    out = []
    for i in range(len(types)):
        row = f"    {i + 1:10d} {types[i]:4d}  " + " ".join(f(x, 13, 6) for x in positions[i])
        if site is not None:
            row += "  " + f(site[i], 17, 12)
        if forces is not None:
            row += "  " + " ".join(f(x, 11, 6) for x in forces[i])
        if charges is not None:
            row += "    " + f(charges[i], 8, 4)
        if grades is not None:
            row += "  " + f(grades[i], 15, 5)
        out.append(row)
    return "\n".join(out)


def _format(atoms: Atoms, numbers: list[int] | None, index: int, lossless: bool) -> str:
    types = _types_of(atoms, numbers, index)

    def f(x: float, width: int, prec: int) -> str:
        return f"{x:.16e}" if lossless else f"{x:{width}.{prec}f}"

    results = atoms.calc.results if atoms.calc is not None else {}
    out = ["BEGIN_CFG", " Size", f"    {len(atoms)}"]
    periodic = bool(np.any(atoms.pbc))
    if periodic:
        out.append(" Supercell")
        for row in np.asarray(atoms.cell):
            out.append("    " + " ".join(f(x, 13, 6) for x in row))
    forces = results.get("forces")
    site = results.get("energies")
    charges = atoms.arrays.get("charges")
    grades = atoms.arrays.get("nbh_grades")
    if len(atoms) > 0:
        header = " AtomData:  id type       cartes_x      cartes_y      cartes_z"
        if site is not None:
            header += "            site_en"
        if forces is not None:
            header += "           fx          fy          fz"
        if charges is not None:
            header += "      charge"
        if grades is not None:
            header += "       nbh_grades"
        out.append(header)
        out.append(_atom_rows(types, atoms.positions, site, forces, charges, grades, lossless))
    energy = results.get("free_energy", results.get("energy"))
    if energy is not None:
        out += [" Energy", "    " + f(float(energy), 20, 12)]
    virial = None
    volume = atoms.cell.volume if "stress" in results and periodic else 0.0
    if volume > 0:
        from ase.stress import full_3x3_to_voigt_6_stress

        stress = np.asarray(results["stress"], dtype=float)
        if stress.shape == (3, 3):
            stress = full_3x3_to_voigt_6_stress(stress)
        virial = -stress * volume
        if "virial" in results and np.allclose(results["virial"], virial, rtol=1e-12, atol=1e-12):
            virial = np.asarray(results["virial"])  # the exact numbers that were read
    elif "virial" in results:
        virial = np.asarray(results["virial"])
    if virial is not None:
        out.append(" PlusStress:  xx          yy          zz          yz          xz          xy")
        out.append("     " + " ".join(f(x, 11, 5) for x in virial))
    for key in sorted(atoms.info):
        text = _feature_text(atoms.info[key])
        if text is None or not key or any(c.isspace() for c in key):
            continue
        for part in text.split("\n"):
            out.append(f" Feature   {key}\t{part}")
    out.append("END_CFG")
    return "\n".join(out) + "\n\n"


def write_cfg(path: str | os.PathLike, images: Atoms | Iterable[Atoms],
              species: Sequence[str | int] | None = None, *, lossless: bool = False) -> int:
    """Write configurations atomically in MLIP's ``.cfg`` layout; returns how many.

    ``species[t]`` is the chemical symbol (or atomic number) of MLIP type
    ``t``; without it, ``atoms.arrays["mtp_type"]`` gives the types. NaN
    energies, forces or stresses raise :class:`~mtpkit.errors.UserError`.
    """
    numbers = species_numbers(species)
    if isinstance(images, Atoms):
        images = [images]
    count = 0
    with atomic_open(path, "w", encoding="utf-8") as fh:
        for i, atoms in enumerate(images):
            _check_finite(atoms, i)
            fh.write(_format(atoms, numbers, i, lossless))
            count += 1
    return count


def _check_finite(atoms: Atoms, index: int) -> None:
    if not np.all(np.isfinite(atoms.positions)):
        raise UserError(f"configuration {index}: non-finite positions")
    if atoms.calc is None:
        return
    for key in ("energy", "free_energy", "forces", "stress"):
        value = atoms.calc.results.get(key)
        if value is not None and not np.all(np.isfinite(value)):
            raise UserError(f"configuration {index}: non-finite {key}")


def default_species(images: Iterable[Atoms]) -> list[str]:
    """Chemical symbols in order of first appearance (a species list for :func:`write_cfg`)."""
    seen: dict[int, None] = {}
    for atoms in images:
        for z in atoms.numbers:
            seen.setdefault(int(z), None)
    return [chemical_symbols[z] for z in seen]
