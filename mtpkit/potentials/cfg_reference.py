"""The reference (line-by-line) reader of MLIP ``.cfg`` files: the readable definition of the
format that :mod:`mtpkit.potentials.cfg` (the public API) and its fast paths in
:mod:`mtpkit.potentials.cfg_fast` fall back to, so every result and every error (file, line,
field) is this reader's. Format and units: see :mod:`mtpkit.potentials.cfg`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import chemical_symbols

from mtpkit.errors import InputFileError

_CARTES = ("cartes_x", "cartes_y", "cartes_z")
_DIRECT = ("direct_x", "direct_y", "direct_z")
_FORCES = ("fx", "fy", "fz")
_VOIGT = ("xx", "yy", "zz", "yz", "xz", "xy")


def _num(path: str, text: str, lineno: int, field: str, kind=float):
    try:
        value = kind(text)
    except ValueError:
        raise InputFileError(path, f"malformed number {text!r}", line=lineno, field=field) from None
    if kind is float and not math.isfinite(value):
        raise InputFileError(path, f"non-finite value {text!r}", line=lineno, field=field)
    return value


def _feature_value(text: str) -> int | float | str:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else text


def _nonblank_getter(lines: Iterator[tuple[int, str]], path: str):
    """``nxt(what)``: the next non-blank ``(lineno, line)``, or an end-of-file error naming ``what``."""
    it = iter(lines)

    def nxt(what: str) -> tuple[int, str]:
        for lineno, line in it:
            if line.strip():
                return lineno, line
        raise InputFileError(path, f"unexpected end of file while reading {what}")

    return nxt


def _parse(lines: Iterator[tuple[int, str]], path: str, numbers: list[int] | None) -> Iterator[Atoms]:
    it = iter(lines)
    nxt = _nonblank_getter(it, path)
    for lineno, line in it:
        s = line.strip()
        if not s:
            continue
        if s != "BEGIN_CFG":
            raise InputFileError(path, f"expected BEGIN_CFG, got {s[:40]!r}", line=lineno)
        yield _parse_one(nxt, path, lineno, numbers)


def _parse_one(nxt, path: str, begin_line: int, numbers: list[int] | None) -> Atoms:
    size: int | None = None
    cell_rows: list[list[float]] = []
    columns: dict[str, np.ndarray] = {}
    energy: float | None = None
    virial: dict[str, float] | None = None
    features: dict[str, int | float | str] = {}
    raw_features: dict[str, str] = {}
    while True:
        lineno, line = nxt("a configuration")
        words = line.split()
        head = words[0]
        if head == "END_CFG":
            break
        if head == "Size":
            ln, value = nxt("Size")
            size = _num(path, value.strip(), ln, "Size", int)
            if size < 0:
                raise InputFileError(path, f"negative Size {size}", line=ln, field="Size")
        elif head in ("Supercell", "SuperCell"):
            # one to three rows follow; stop at the next keyword
            while True:
                ln, row = nxt("Supercell")
                parts = row.split()
                try:
                    float(parts[0])
                except ValueError:
                    nxt = _pushback(nxt, (ln, row))
                    break
                if len(parts) != 3:
                    raise InputFileError(path, f"a Supercell row needs 3 numbers, got {len(parts)}",
                                         line=ln, field="Supercell")
                cell_rows.append([_num(path, p, ln, "Supercell") for p in parts])
                if len(cell_rows) == 3:
                    break
        elif head in ("AtomData:", "Atomic_data:"):
            if size is None:
                raise InputFileError(path, "AtomData before Size", line=lineno, field="AtomData")
            names = words[1:]
            if "type" not in names:
                raise InputFileError(path, "AtomData has no 'type' column", line=lineno, field="type")
            if len(set(names)) != len(names):
                raise InputFileError(path, "AtomData has duplicate columns", line=lineno, field="AtomData")
            rows = []
            for _ in range(size):
                ln, row = nxt("AtomData")
                parts = row.split()
                if len(parts) != len(names):
                    raise InputFileError(path, f"atom row has {len(parts)} columns, header has {len(names)}",
                                         line=ln, field="AtomData")
                rows.append((ln, parts))
            data = _atom_table(path, names, rows)
            columns = {name: data[:, c] for c, name in enumerate(names)}
            columns["_line"] = np.array([lineno])
        elif head == "Energy":
            ln, value = nxt("Energy")
            energy = _num(path, value.split()[0], ln, "Energy")
        elif head == "PlusStress:" or head == "PlusStress":
            keys = words[1:]
            if sorted(keys) != sorted(_VOIGT):
                raise InputFileError(path, f"PlusStress needs columns {' '.join(_VOIGT)}, got {keys}",
                                     line=lineno, field="PlusStress")
            ln, value = nxt("PlusStress")
            parts = value.split()
            if len(parts) != 6:
                raise InputFileError(path, f"PlusStress needs 6 numbers, got {len(parts)}", line=ln,
                                     field="PlusStress")
            virial = {k: _num(path, p, ln, f"PlusStress {k}") for k, p in zip(keys, parts)}
        elif head == "Feature":
            rest = line.strip()[len("Feature"):].lstrip()
            key, _, value = rest.partition("\t") if "\t" in rest else rest.partition(" ")
            key, value = key.strip(), value.strip()
            if not key:
                raise InputFileError(path, "Feature without a key", line=lineno, field="Feature")
            if key in raw_features:  # MLIP splits multi-line values over repeated lines
                raw_features[key] += "\n" + value
            else:
                raw_features[key] = value
        else:
            raise InputFileError(path, f"unknown block {head!r}", line=lineno)

    for key, value in raw_features.items():
        features[key] = _feature_value(value)
    if size is None:
        raise InputFileError(path, "configuration without Size", line=begin_line, field="Size")
    if size and not columns:
        raise InputFileError(path, "configuration without AtomData", line=begin_line, field="AtomData")
    return _build_atoms(path, begin_line, size, cell_rows, columns, energy, virial, features, numbers)


def _atom_table(path: str, names: list[str], rows: list[tuple[int, list[str]]]) -> np.ndarray:
    """AtomData rows as floats; on bad input, find and name the offending line and column."""
    if "ghost" in names:
        g = names.index("ghost")
        for _, parts in rows:
            parts[g] = "1" if parts[g].lower() == "true" else "0"
    try:
        data = np.array([parts for _, parts in rows], dtype=float).reshape(len(rows), len(names))
        if np.all(np.isfinite(data)):
            return data
    except ValueError:
        pass
    for ln, parts in rows:  # slow path only to locate the problem
        for name, p in zip(names, parts):
            _num(path, p, ln, name)
    raise InputFileError(path, "malformed AtomData", line=rows[0][0], field="AtomData")  # pragma: no cover


def _pushback(nxt, item):
    """Return a line getter that first yields ``item`` again."""
    pending = [item]

    def getter(what: str):
        if pending:
            return pending.pop()
        return nxt(what)

    return getter


def _build_atoms(path, begin_line, size, cell_rows, columns, energy, virial, features, numbers) -> Atoms:
    line = int(columns.pop("_line", [begin_line])[0])
    types = columns.get("type", np.zeros(0)).astype(np.int64)
    if np.any(columns.get("type", np.zeros(0)) != types):
        raise InputFileError(path, "non-integer type", line=line, field="type")
    if types.size and types.min() < 0:
        raise InputFileError(path, f"negative type {types.min()}", line=line, field="type")
    if numbers is None:
        z = types.copy()
        if z.size and z.max() >= len(chemical_symbols):
            raise InputFileError(path, f"type {z.max()} too large", line=line, field="type")
    else:
        if types.size and types.max() >= len(numbers):
            bad = int(np.argmax(types >= len(numbers)))
            raise InputFileError(
                path, f"type {types[bad]} of atom {bad + 1} is beyond the {len(numbers)} species given",
                line=line + 1 + bad, field="type")
        z = np.array(numbers, dtype=np.int64)[types] if types.size else types
    cell = np.zeros((3, 3))
    pbc = [False, False, False]
    for a, row in enumerate(cell_rows):
        cell[a] = row
        pbc[a] = True
    if all(c in columns for c in _CARTES):
        atoms = Atoms(numbers=z, positions=np.column_stack([columns[c] for c in _CARTES]), cell=cell, pbc=pbc)
    elif all(c in columns for c in _DIRECT):
        if len(cell_rows) != 3:
            raise InputFileError(path, "direct coordinates need a 3-row Supercell", line=line,
                                 field="direct_x")
        atoms = Atoms(numbers=z, scaled_positions=np.column_stack([columns[c] for c in _DIRECT]),
                      cell=cell, pbc=pbc)
    elif size == 0:
        atoms = Atoms(cell=cell, pbc=pbc)
    else:
        raise InputFileError(path, "AtomData needs cartes_x/y/z or direct_x/y/z", line=line,
                             field="AtomData")
    atoms.arrays["mtp_type"] = types
    results: dict[str, object] = {}
    if energy is not None:
        results["energy"] = energy
        results["free_energy"] = energy
    if all(c in columns for c in _FORCES):
        results["forces"] = np.column_stack([columns[c] for c in _FORCES])
    if "site_en" in columns:
        results["energies"] = columns["site_en"].copy()
    volume = atoms.cell.volume if virial is not None and len(cell_rows) == 3 else 0.0
    if volume > 0:
        v = np.array([virial[k] for k in _VOIGT])
        results["stress"] = -v / volume
    known = {"id", "type", "site_en", *_CARTES, *_DIRECT, *_FORCES}
    for name, col in columns.items():
        if name in known:
            continue
        key = "charges" if name == "charge" else name
        atoms.arrays[key] = col.copy()
    atoms.info.update(features)
    if results or virial is not None:
        atoms.calc = SinglePointCalculator(atoms, **results)
        if virial is not None:
            # kept as read (MLIP order xx yy zz yz xz xy, eV), also for non-periodic configurations
            atoms.calc.results["virial"] = np.array([virial[k] for k in _VOIGT])
    return atoms
