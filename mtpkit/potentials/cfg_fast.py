"""Fast ``.cfg`` reading: the whole file at once, atom tables parsed with NumPy.

:mod:`mtpkit.potentials.cfg` holds the readable line-by-line reader, the
reference: this module must give exactly what it gives (the same ``Atoms``,
bit for bit, and the same exception with the same file, line and field), only
faster. It reads the file into memory and walks it with a byte cursor. Headers
(``Size``, ``Supercell``, ``Energy``, ...) are a few lines per configuration and
are parsed in Python as the reference does. The atom table, the bulk of the
file, is parsed in one go per configuration when it has the fixed-width layout
that MLIP and mtpkit write (every row the same length, every column right-aligned
at the same place, plain decimals ``[+-]digits[.digits]`` of at most 16 digits):
the digits are summed into an exact integer mantissa (< 2^53) and divided by
a power of ten <= 10^15, a single correctly rounded operation, which is what
``float(text)`` returns.

Anything else -- other layouts, exponents, ``nan``, ``ghost`` columns, repeated
blocks, malformed input of any kind -- sends that configuration to the
reference parser (which then either reads it or raises its own error), and
reading continues fast after it. The fast path never raises a parse error of
its own.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import numpy as np
from ase import Atoms

from mtpkit.potentials import cfg_reference as ref

__all__ = ["parse_cfg_bytes"]

# bytes an atom table may contain on the fast path (anything else: reference parser)
_ROW_DELETE = b"0123456789.+- \t\n"
_P10 = 10.0 ** np.arange(16)
_MAX_MANTISSA = float(2**53)


class _Cursor:
    """Line cursor over the file's bytes (1-based line numbers, lines keep their ``\\n``).

    Iterating yields ``(lineno, line)`` like the reference's ``enumerate(file, 1)``.
    """

    __slots__ = ("data", "lineno", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.lineno = 0

    def __iter__(self) -> Iterator[tuple[int, str]]:
        return self

    def __next__(self) -> tuple[int, str]:
        data, pos = self.data, self.pos
        if pos >= len(data):
            raise StopIteration
        nl = data.find(b"\n", pos)
        end = len(data) if nl < 0 else nl + 1
        self.pos = end
        self.lineno += 1
        return self.lineno, data[pos:end].decode("utf-8")

    def nonblank(self) -> tuple[int, str] | None:
        """The next line that is not blank (``None`` at the end)."""
        for lineno, line in self:
            if line.strip():
                return lineno, line
        return None


def parse_cfg_bytes(data: bytes, path: str, numbers: list[int] | None) -> list[Atoms]:
    """All configurations of a ``.cfg`` file's bytes (``numbers``: atomic number of each type).

    The caller checks that ``data`` is valid UTF-8 (as the reference reads it).
    """
    if b"\r" in data:  # universal newlines, as the reference's text-mode file
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    cur = _Cursor(data)
    out: list[Atoms] = []
    for lineno, line in cur:
        s = line.strip()
        if not s:
            continue
        if s != "BEGIN_CFG":
            # the reference raises its own error for this line
            next(ref._parse(iter([(lineno, line)]), path, numbers))
        pos, at = cur.pos, cur.lineno
        atoms = _fast_one(cur, path, lineno, numbers)
        if atoms is None:
            cur.pos, cur.lineno = pos, at
            atoms = ref._parse_one(ref._nonblank_getter(cur, path), path, lineno, numbers)
        out.append(atoms)
    return out


def _finite_floats(parts: list[str]) -> list[float] | None:
    try:
        values = [float(p) for p in parts]
    except ValueError:
        return None
    return values if all(math.isfinite(v) for v in values) else None


def _fast_one(cur: _Cursor, path: str, begin_line: int, numbers: list[int] | None) -> Atoms | None:
    """One configuration after its ``BEGIN_CFG``; ``None``: let the reference parse it."""
    size: int | None = None
    cell_rows: list[list[float]] = []
    columns: dict[str, np.ndarray] = {}
    energy: float | None = None
    virial: dict[str, float] | None = None
    raw_features: dict[str, str] = {}
    seen: set[str] = set()
    while True:
        item = cur.nonblank()
        if item is None:
            return None
        lineno, line = item
        words = line.split()
        head = words[0]
        if head == "END_CFG":
            break
        if head != "Feature":
            if head in seen:
                return None
            seen.add(head)
        if head == "Size":
            item = cur.nonblank()
            if item is None:
                return None
            try:
                size = int(item[1].strip())
            except ValueError:
                return None
            if size < 0:
                return None
        elif head in ("Supercell", "SuperCell"):
            while len(cell_rows) < 3:
                pos, at = cur.pos, cur.lineno
                item = cur.nonblank()
                if item is None:
                    return None
                parts = item[1].split()
                try:
                    float(parts[0])
                except ValueError:
                    cur.pos, cur.lineno = pos, at  # the next keyword
                    break
                row = _finite_floats(parts) if len(parts) == 3 else None
                if row is None:
                    return None
                cell_rows.append(row)
        elif head in ("AtomData:", "Atomic_data:"):
            names = words[1:]
            if size is None or "type" not in names or "ghost" in names or len(set(names)) != len(names):
                return None
            table = _atom_table(cur, size, len(names))
            if table is None:
                return None
            columns = {name: table[:, c] for c, name in enumerate(names)}
            columns["_line"] = np.array([lineno])
        elif head == "Energy":
            item = cur.nonblank()
            value = None if item is None else _finite_floats(item[1].split()[:1])
            if value is None:
                return None
            energy = value[0]
        elif head in ("PlusStress:", "PlusStress"):
            keys = words[1:]
            if sorted(keys) != sorted(ref._VOIGT):
                return None
            item = cur.nonblank()
            parts = [] if item is None else item[1].split()
            values = _finite_floats(parts) if len(parts) == 6 else None
            if values is None:
                return None
            virial = dict(zip(keys, values))
        elif head == "Feature":
            rest = line.strip()[len("Feature"):].lstrip()
            key, _, value = rest.partition("\t") if "\t" in rest else rest.partition(" ")
            key, value = key.strip(), value.strip()
            if not key:
                return None
            if key in raw_features:
                raw_features[key] += "\n" + value
            else:
                raw_features[key] = value
        else:
            return None
    if size is None or (size and not columns):
        return None
    features = {key: ref._feature_value(value) for key, value in raw_features.items()}
    return ref._build_atoms(path, begin_line, size, cell_rows, columns, energy, virial, features, numbers)


def _atom_table(cur: _Cursor, size: int, ncols: int) -> np.ndarray | None:
    """The ``size`` rows after the cursor as a ``(size, ncols)`` float array,
    or ``None`` (cursor unmoved) when the reference parser must read them."""
    if size == 0:
        return np.zeros((0, ncols))
    if size * ncols >= FIXED_WIDTH_MIN_VALUES:
        table = _fixed_width_rows(cur, size, ncols)
        if table is not None:
            return table
    return _split_rows(cur, size, ncols)


#: tables with at least this many numbers try the fixed-width parser first (its
#: set-up costs ~0.3 ms; splitting and converting costs ~0.2 µs a number)
FIXED_WIDTH_MIN_VALUES = 2000


def _split_rows(cur: _Cursor, size: int, ncols: int) -> np.ndarray | None:
    """Rows split at blanks and converted by NumPy (``float()``'s syntax), as the
    reference's ``_atom_table`` does, without its line-by-line machinery."""
    data, find = cur.data, cur.data.find
    end = cur.pos
    for _ in range(size):
        end = find(b"\n", end) + 1
        if end == 0:  # the file ends inside the table
            return None
    lines = data[cur.pos:end].decode("utf-8").split("\n")[:-1]
    tokens = [line.split() for line in lines]
    if any(len(parts) != ncols for parts in tokens):  # also a blank line, which the reference skips
        return None
    try:
        table = np.array(tokens, dtype=float).reshape(size, ncols)
    except ValueError:
        return None
    if not np.all(np.isfinite(table)):
        return None
    cur.pos = end
    cur.lineno += size
    return table


def _fixed_width_rows(cur: _Cursor, size: int, ncols: int) -> np.ndarray | None:
    """The rows parsed by :func:`_fixed_width_table`, or ``None`` (cursor unmoved)."""
    data, pos = cur.data, cur.pos
    nl = data.find(b"\n", pos)
    if nl < 0:
        return None
    width = nl + 1 - pos
    end = pos + size * width
    if width < 2 or end > len(data):
        return None
    block = data[pos:end]
    if block.translate(None, _ROW_DELETE) or block.count(b"\n") != size:
        return None
    rows = np.frombuffer(block, dtype=np.uint8).reshape(size, width)
    if not np.all(rows[:, -1] == 10):  # so each row is exactly one line
        return None
    table = _fixed_width_table(rows[:, :-1], ncols)
    if table is not None:
        cur.pos = end
        cur.lineno += size
    return table


def _fixed_width_table(rows: np.ndarray, ncols: int) -> np.ndarray | None:
    """Numbers of equal-length rows of ``[ \\t0-9.+-]`` bytes, or ``None``.

    Column ``k`` must occupy the same byte columns in every row (the ``k``-th
    run of byte columns that are non-blank in some row), end at the run's last
    byte, have its decimal point (if any) at the same byte, and look like
    ``[blanks][+|-]digits[.digits]``.
    """
    t = np.ascontiguousarray(rows.T)  # (bytes per row, rows): byte columns contiguous
    n = t.shape[1]
    filled = t > 32  # not space or tab
    edges = np.diff(filled.any(axis=1).view(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if starts.size != ncols:
        return None
    digit = t - np.uint8(48)
    is_digit = digit < 10
    digit *= is_digit  # 0 for blanks, signs, points
    out = np.empty((n, ncols))
    for k, (s, e) in enumerate(zip(starts.tolist(), ends.tolist())):
        if not is_digit[e - 1].all():
            return None
        dots = np.flatnonzero(t[s:e, 0] == 46)
        p = s + int(dots[0]) if dots.size else e  # byte column of the decimal point
        decimals = e - 1 - p if p < e else 0
        if p < e and not (np.all(t[p] == 46) and np.all(is_digit[p + 1:e])):
            return None
        if (p - s) + decimals > 16:
            return None
        left = filled[s:p]
        if p - s > 1 and np.any(left[:-1] & ~left[1:]):  # a blank after a character
            return None
        negative = None
        other = left & ~is_digit[s:p]
        if other.any():
            first = left.copy()
            first[1:] &= ~left[:-1]
            chars = t[s:p]
            if np.any(other & ~(first & ((chars == 45) | (chars == 43)))):
                return None  # only a leading sign may be a non-digit
            negative = np.any(chars == 45, axis=0)
        powers = [(p - 1 - c) + decimals for c in range(s, p)] + list(range(decimals - 1, -1, -1))
        cols = [*range(s, p), *range(p + 1, e)]
        mantissa = _P10[powers] @ digit[cols].astype(np.float64)
        if mantissa.size and mantissa.max() >= _MAX_MANTISSA:
            return None
        value = mantissa / _P10[decimals]
        out[:, k] = value if negative is None else np.where(negative, -value, value)
    return out


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's bytes; :class:`~mtpkit.errors.InputFileError` as the reference when unreadable."""
    from mtpkit.errors import InputFileError

    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise InputFileError(path, f"cannot read: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------- writing


def format_rows(fields: list[tuple[str, np.ndarray, int, int | None]]) -> str | None:
    """Rows of fixed-width numbers, formatted with NumPy, or ``None`` when a
    value does not fit its width or is not finite (format those with ``%``).

    ``fields`` lists, in order, ``(blanks before, values (n,), width,
    decimals)``: ``decimals`` ``None`` formats integers as ``%{width}d``, else
    ``%{width}.{decimals}f``. The text is exactly what ``%`` gives, every row
    ending in a newline.
    """
    n = len(fields[0][1])
    starts = []
    end = 0
    for blanks, _values, width, _decimals in fields:
        end += len(blanks)
        starts.append(end)
        end += width
    rows = np.full((n, end + 1), 32, dtype=np.uint8)
    rows[:, end] = 10
    for (_blanks, values, width, decimals), start in zip(fields, starts):
        if not _fixed_columns(values, width, decimals, rows[:, start:start + width].T):
            return None
    return rows.tobytes().decode("ascii")


def _fixed_columns(x: np.ndarray, width: int, decimals: int | None, out: np.ndarray) -> bool:
    """Write ``%{width}.{decimals}f`` (``%{width}d`` for ``decimals=None``) of
    ``x`` into ``out`` (``(width, n)`` bytes, blank-filled); False if a value is
    not finite (or not an integer for ``%d``) or does not fit in ``width``.

    Rounding: ``y = |x| 10^decimals`` is rounded to the nearest integer; where
    ``y`` lies within two ulps of a tie the product's own rounding could decide,
    so those few values are rounded by Python's formatting (exact, half-even).
    """
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        return False
    negative = np.signbit(x)
    a = np.abs(x)
    if decimals is None:
        q = np.rint(a)
        if np.any(q != a) or (q.size and q.max() >= 2.0**53):
            return False
        scale = 1.0
    else:
        y = a * 10.0**decimals
        if y.size and y.max() >= 2.0**52:
            return False
        q = np.rint(y)
        near_tie = np.abs(y - np.floor(y) - 0.5) <= 2 * np.spacing(y)
        for i in np.flatnonzero(near_tie).tolist():
            q[i] = float(f"{a[i]:.{decimals}f}".replace(".", ""))
        scale = 10.0**decimals
    whole = np.floor(q / scale)  # exact: q < 2^53 and scale a power of ten
    frac = q - whole * scale
    ndigits = np.ones(x.shape, dtype=np.int64)
    top = whole.max() if whole.size else 0.0
    power = 10.0
    while power <= top:
        ndigits += whole >= power
        power *= 10.0
    length = ndigits + negative + (0 if decimals is None else decimals + 1)
    if length.size and length.max() > width:
        return False
    col = width - 1
    if decimals is not None:
        for _ in range(decimals):
            rest = np.floor(frac / 10.0)
            out[col] = 48 + (frac - 10.0 * rest)
            frac = rest
            col -= 1
        out[col] = 46  # '.'
        col -= 1
    for k in range(int(ndigits.max(initial=1)) + 1):
        if col < 0:
            break
        rest = np.floor(whole / 10.0)
        digit = 48 + (whole - 10.0 * rest)
        whole = rest
        if k == 0:
            out[col] = digit
        else:
            out[col] = np.where(k < ndigits, digit, np.where(negative & (k == ndigits), 45, 32))
        col -= 1
    return True
