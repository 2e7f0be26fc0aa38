"""Read and write MLIP potential files: MLIP-2 ``.mtp`` and MLIP-3 ``.almtp``.

Output is byte-compatible with what MLIP writes:

* trained potentials (``mlp train``): every float as ``%.15e``, tab-indented
  radial-basis block, ``{a, b, ...}`` lists, keys in MLIP's order, a
  ``scaling`` line (MLIP-2 always writes it; MLIP-3's ``.almtp`` omits it
  when it is 1);
* untrained templates (MLIP's ``untrained_mtps/*.mtp``): no ``scaling``, no
  coefficients, floats in their shortest form (``min_dist = 0.5``).

An ``.almtp`` written by MLIP-3 is the MTP text, then (without a newline
after the last ``}``) the MaxVol selection state::

    \\n#MVS_v1.1\\n
    energy_weight %.16e\\n  force_weight ..  stress_weight ..  site_en_weight ..
    weight_scaling <int>\\n
    #<A: n*n float64><invA: n*n float64>\\n#\\n        (native little-endian)
    <cfg index> <equation index>\\n   (n lines)
    #\\n
    <the selected configurations in .cfg format>

with ``n`` = number of MTP coefficients (radial + species + moment). It is
read into :class:`MVSSection` and written back unchanged.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mtpkit.errors import InputFileError
from mtpkit.io_utils import atomic_open
from mtpkit.potentials.model import MTP

__all__ = ["MVSSection", "format_mtp", "parse_mtp", "read_mtp", "write_mtp"]

MVS_MARKER = b"#MVS_v1.1\n"
_KNOWN_KEYS = frozenset({
    "version", "potential_name", "scaling", "species_count", "potential_tag", "radial_basis_type",
    "min_dist", "max_dist", "radial_basis_size", "radial_funcs_count", "alpha_moments_count",
    "alpha_index_basic_count", "alpha_index_basic", "alpha_index_times_count", "alpha_index_times",
    "alpha_scalar_moments", "alpha_moment_mapping", "species_coeffs", "moment_coeffs",
    "magnetic_basis_type",
})
_WEIGHT_KEYS = ("energy_weight", "force_weight", "stress_weight", "site_en_weight")


@dataclass
class MVSSection:
    """MLIP-3's MaxVol selection state (the ``#MVS_v1.1`` section of an ``.almtp``).

    Attributes
    ----------
    energy_weight, force_weight, stress_weight, site_en_weight:
        Weights of the equation kinds in the selection (dimensionless).
    weight_scaling:
        MLIP's ``weight_scaling`` power.
    A, invA:
        ``(n, n)`` MaxVol matrix and its inverse, in the order MLIP stores them
        (``n`` = number of MTP coefficients).
    links:
        ``(n, 2)`` integers: for each active row, the index of its selected
        configuration and the equation index inside it (``-1 -1`` for unused rows).
    selected_cfgs:
        The selected configurations as ``.cfg`` text (parse it with
        :func:`mtpkit.potentials.cfg.read_cfg_text`).
    """

    energy_weight: float
    force_weight: float
    stress_weight: float
    site_en_weight: float
    weight_scaling: int
    A: npt.NDArray[np.float64]
    invA: npt.NDArray[np.float64]
    links: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    selected_cfgs: str = ""

    @property
    def size(self) -> int:
        """Number of rows ``n`` (the MTP's coefficient count)."""
        return int(self.A.shape[0])

    def to_bytes(self) -> bytes:
        """The section exactly as MLIP-3 writes it, starting at ``#MVS_v1.1``."""
        head = MVS_MARKER.decode()
        for key in _WEIGHT_KEYS:
            head += f"{key} {getattr(self, key):.16e}\n"
        head += f"weight_scaling {int(self.weight_scaling)}\n#"
        body = (np.ascontiguousarray(self.A, dtype="<f8").tobytes()
                + np.ascontiguousarray(self.invA, dtype="<f8").tobytes())
        links = "".join(f"{int(c)} {int(e)}\n" for c, e in self.links)
        return head.encode() + body + b"\n#\n" + links.encode() + b"#\n" + self.selected_cfgs.encode()


# --------------------------------------------------------------------------- reading


class _Lines:
    """Line cursor with 1-based line numbers for error messages."""

    def __init__(self, path: str, text: str, first_line: int = 1) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.pos = 0
        self.first = first_line

    @property
    def lineno(self) -> int:
        return self.first + self.pos

    def error(self, msg: str, field: str | None = None, line: int | None = None) -> InputFileError:
        return InputFileError(self.path, msg, line=self.lineno if line is None else line, field=field)

    def peek(self) -> str | None:
        while self.pos < len(self.lines) and not self.lines[self.pos].strip():
            self.pos += 1
        return self.lines[self.pos] if self.pos < len(self.lines) else None

    def next(self) -> str:
        line = self.peek()
        if line is None:
            raise self.error("unexpected end of file")
        self.pos += 1
        return line


def _key_value(cur: _Lines, line: str) -> tuple[str, str]:
    if "=" not in line:
        raise cur.error(f"expected 'key = value', got {line.strip()!r}", line=cur.lineno - 1)
    key, value = line.split("=", 1)
    return key.strip(), value.strip()


def _to_int(cur: _Lines, text: str, key: str, line: int) -> int:
    try:
        return int(text)
    except ValueError:
        raise cur.error(f"malformed integer {text!r}", field=key, line=line) from None


def _to_float(cur: _Lines, text: str, key: str, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise cur.error(f"malformed number {text!r}", field=key, line=line) from None
    if not np.isfinite(value):
        raise cur.error(f"non-finite number {text!r}", field=key, line=line)
    return value


def _flat_list(cur: _Lines, text: str, key: str, line: int, conv) -> list:
    text = text.strip()
    if not (text.startswith("{") and text.endswith("}")):
        raise cur.error(f"expected a list in braces, got {text[:40]!r}", field=key, line=line)
    inner = text[1:-1].strip()
    if not inner:
        return []
    return [conv(cur, item.strip(), key, line) for item in inner.split(",")]


def _nested_list(cur: _Lines, text: str, key: str, line: int) -> list[list[int]]:
    text = text.strip()
    if not (text.startswith("{") and text.endswith("}")):
        raise cur.error(f"expected a list of lists in braces, got {text[:40]!r}", field=key, line=line)
    inner = text[1:-1].strip()
    if not inner:
        return []
    groups = re.findall(r"\{([^{}]*)\}", inner)
    leftover = re.sub(r"\{[^{}]*\}", "", inner).replace(",", "").strip()
    if leftover:
        raise cur.error(f"unexpected text {leftover[:40]!r} in list", field=key, line=line)
    rows = []
    for g in groups:
        row = [_to_int(cur, item.strip(), key, line) for item in g.split(",")]
        if len(row) != 4:
            raise cur.error(f"each entry needs 4 integers, got {len(row)}", field=key, line=line)
        rows.append(row)
    return rows


class _Values:
    """The ``key = value`` lines of an ``.mtp`` file (value text and line number per key),
    with typed, checked access; errors name the file, line and key."""

    def __init__(self, cur: _Lines, values: dict[str, tuple[str, int]], end_line: int) -> None:
        self.cur, self.values, self.end_line = cur, values, end_line

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def line(self, key: str) -> int:
        return self.values[key][1]

    def get(self, key: str, default: str) -> str:
        return self.values.get(key, (default, 0))[0]

    def need(self, key: str) -> tuple[str, int]:
        if key not in self.values:
            raise InputFileError(self.cur.path, "missing key", line=self.end_line, field=key)
        return self.values[key]

    def integer(self, key: str, minimum: int = 0) -> int:
        text_, ln = self.need(key)
        v = _to_int(self.cur, text_, key, ln)
        if v < minimum:
            raise self.cur.error(f"must be >= {minimum}, got {v}", field=key, line=ln)
        return v

    def number(self, key: str) -> float:
        text_, ln = self.need(key)
        return _to_float(self.cur, text_, key, ln)

    def nested_list(self, key: str) -> list[list[int]]:
        return _nested_list(self.cur, *self.need(key), key)

    def flat_list(self, key: str, conv) -> list:
        return _flat_list(self.cur, *self.need(key), key, conv)

    def error(self, msg: str, key: str) -> InputFileError:
        return self.cur.error(msg, field=key, line=self.line(key))


@dataclass
class _RadialBlock:
    """The rows of the ``radial_coeffs`` block (text, line number) and the line it starts at."""

    rows: list[tuple[str, int]]
    line: int


def _read_lines(cur: _Lines) -> tuple[_Values, _RadialBlock | None]:
    """Every ``key = value`` line after the ``MTP`` line, and the radial_coeffs block."""
    values: dict[str, tuple[str, int]] = {}
    radial = None
    while (line := cur.peek()) is not None:
        lineno = cur.lineno
        cur.next()
        if line.strip() == "radial_coeffs":
            radial = _RadialBlock([], lineno)
            while (nxt := cur.peek()) is not None and "=" not in nxt:
                radial.rows.append((nxt.strip(), cur.lineno))
                cur.next()
            continue
        key, value = _key_value(cur, line)
        if key in values:
            raise cur.error("duplicate key", field=key, line=lineno)
        values[key] = (value, lineno)
    unknown = sorted(set(values) - _KNOWN_KEYS)
    if unknown:  # stacklevel: the caller of read_mtp (via parse_mtp)
        warnings.warn(f"{cur.path}: ignoring unknown keys {', '.join(unknown)}", stacklevel=4)
    return _Values(cur, values, cur.lineno), radial


def _read_header(v: _Values) -> dict[str, Any]:
    """Version, radial basis (type, range, size, count), species count and scaling."""
    version, ln = v.need("version")
    if version != "1.1.0":
        raise v.cur.error(f"unsupported version {version!r} (expected 1.1.0)", field="version", line=ln)
    rb_type, ln = v.need("radial_basis_type")
    if rb_type != "RBChebyshev":
        raise v.cur.error(f"unknown radial_basis_type {rb_type!r} (only RBChebyshev is supported)",
                          field="radial_basis_type", line=ln)
    if "magnetic_basis_type" in v:
        raise v.error("magnetic MTPs are not supported", "magnetic_basis_type")
    species_count = v.integer("species_count", 1)
    min_dist = v.number("min_dist")
    max_dist = v.number("max_dist")
    if not 0.0 <= min_dist < max_dist:
        raise v.error(f"need 0 <= min_dist < max_dist, got {min_dist}, {max_dist}", "max_dist")
    return {"version": version, "species_count": species_count, "min_dist": min_dist,
            "max_dist": max_dist, "radial_basis_size": v.integer("radial_basis_size", 1),
            "radial_funcs_count": v.integer("radial_funcs_count", 1),
            "scaling": v.number("scaling") if "scaling" in v else 1.0}


def _read_moments(v: _Values, rf_count: int) -> dict[str, Any]:
    """The moment structure (``alpha_*`` keys), its counts checked against its lists."""
    n_moments = v.integer("alpha_moments_count", 1)
    n_basic = v.integer("alpha_index_basic_count", 1)
    basic = v.nested_list("alpha_index_basic")
    if len(basic) != n_basic:
        raise v.error(f"has {len(basic)} entries, alpha_index_basic_count says {n_basic}", "alpha_index_basic")
    n_times = v.integer("alpha_index_times_count", 0)
    times = v.nested_list("alpha_index_times")
    if len(times) != n_times:
        raise v.error(f"has {len(times)} entries, alpha_index_times_count says {n_times}", "alpha_index_times")
    n_scalar = v.integer("alpha_scalar_moments", 1)
    mapping = v.flat_list("alpha_moment_mapping", _to_int)
    if len(mapping) != n_scalar:
        raise v.error(f"has {len(mapping)} entries, alpha_scalar_moments says {n_scalar}",
                      "alpha_moment_mapping")
    _check_moments(v, rf_count, n_moments, n_basic, basic, times, mapping)
    return {"alpha_index_basic": np.array(basic, dtype=np.int64).reshape(-1, 4),
            "alpha_index_times": np.array(times, dtype=np.int64).reshape(-1, 4),
            "alpha_moment_mapping": np.array(mapping, dtype=np.int64),
            "alpha_moments_count": n_moments}


def _check_moments(v: _Values, rf_count: int, n_moments: int, n_basic: int, basic: list[list[int]],
                   times: list[list[int]], mapping: list[int]) -> None:
    """Every index of the moment structure in range."""
    if n_basic > n_moments:
        raise v.error("alpha_index_basic_count exceeds alpha_moments_count", "alpha_index_basic_count")
    for row in basic:
        if not 0 <= row[0] < rf_count or min(row[1:]) < 0:
            raise v.error(f"entry {row} out of range (radial_funcs_count = {rf_count})", "alpha_index_basic")
    for row in times:
        i, j, _, k = row
        if not (0 <= i < n_moments and 0 <= j < n_moments and n_basic <= k < n_moments):
            raise v.error(f"entry {row} out of range (alpha_moments_count = {n_moments})", "alpha_index_times")
    for m in mapping:
        if not 0 <= m < n_moments:
            raise v.error(f"index {m} out of range (alpha_moments_count = {n_moments})", "alpha_moment_mapping")


def _read_coefficients(v: _Values, radial: _RadialBlock | None, species_count: int, rf_count: int,
                       rb_size: int, n_scalar: int) -> dict[str, Any]:
    """Radial, species and moment coefficients of a trained potential, or MLIP's defaults for
    an untrained template (a file with none of them)."""
    trained = any(k in v for k in ("species_coeffs", "moment_coeffs")) or radial is not None
    if not trained:
        radial_coeffs, species_coeffs, moment_coeffs = _default_coeffs(species_count, rf_count, rb_size, n_scalar)
        return {"radial_coeffs": radial_coeffs, "species_coeffs": np.array(species_coeffs, dtype=np.float64),
                "moment_coeffs": np.array(moment_coeffs, dtype=np.float64), "trained": False}
    if radial is None:
        raise InputFileError(v.cur.path, "missing radial_coeffs block", line=v.end_line, field="radial_coeffs")
    radial_coeffs = _parse_radial(v.cur, radial.rows, radial.line, species_count, rf_count, rb_size)
    species_coeffs = v.flat_list("species_coeffs", _to_float)
    if len(species_coeffs) != species_count:
        raise v.error(f"has {len(species_coeffs)} values, species_count is {species_count}", "species_coeffs")
    moment_coeffs = v.flat_list("moment_coeffs", _to_float)
    if len(moment_coeffs) != n_scalar:
        raise v.error(f"has {len(moment_coeffs)} values, alpha_scalar_moments is {n_scalar}", "moment_coeffs")
    return {"radial_coeffs": radial_coeffs, "species_coeffs": np.array(species_coeffs, dtype=np.float64),
            "moment_coeffs": np.array(moment_coeffs, dtype=np.float64), "trained": True}


def parse_mtp(text: str, path: str | os.PathLike | None = None) -> MTP:
    """Parse the text of an MLIP ``.mtp`` file (without an active-set section)."""
    cur = _Lines("<input>" if path is None else os.fspath(path), text)
    first = cur.next().strip()
    if first != "MTP":
        raise cur.error(f"first line must be 'MTP', got {first!r}", line=cur.lineno - 1)
    values, radial = _read_lines(cur)
    header = _read_header(values)
    moments = _read_moments(values, header["radial_funcs_count"])
    coeffs = _read_coefficients(values, radial, header["species_count"], header["radial_funcs_count"],
                                header["radial_basis_size"], len(moments["alpha_moment_mapping"]))
    return MTP(**header, **moments, **coeffs, potential_name=values.get("potential_name", "MTP1m"),
               potential_tag=values.get("potential_tag", ""))


def _default_coeffs(species_count: int, rf_count: int, rb_size: int, n_scalar: int):
    """MLIP's default initial coefficients for an untrained template.

    Radial coefficients 1e-6 with 1e-3 at ``[mu, min(mu, size-1)]``; species
    and moment coefficients 1e-3 (what MLIP sets when a file has none).
    """
    radial = np.full((species_count, species_count, rf_count, rb_size), 1e-6)
    for mu in range(rf_count):
        radial[:, :, mu, min(mu, rb_size - 1)] = 1e-3
    return radial, np.full(species_count, 1e-3), np.full(n_scalar, 1e-3)


def _parse_radial(cur: _Lines, rows: list[tuple[str, int]], line0: int, s: int, r: int, b: int):
    radial = np.zeros((s, s, r, b))
    expected = s * s * (r + 1)
    if len(rows) != expected:
        raise cur.error(f"radial_coeffs has {len(rows)} lines, expected {expected} "
                        f"({s}x{s} species pairs, {r} functions each)", field="radial_coeffs", line=line0)
    it = iter(rows)
    for a in range(s):
        for c in range(s):
            label, ln = next(it)
            if label != f"{a}-{c}":
                raise cur.error(f"expected species pair label '{a}-{c}', got {label!r}",
                                field="radial_coeffs", line=ln)
            for mu in range(r):
                text, ln = next(it)
                vals = _flat_list(cur, text, "radial_coeffs", ln, _to_float)
                if len(vals) != b:
                    raise cur.error(f"has {len(vals)} values, radial_basis_size is {b}",
                                    field="radial_coeffs", line=ln)
                radial[a, c, mu] = vals
    return radial


def _parse_active_set(path: str, data: bytes, start: int, n_expected: int) -> MVSSection | None:
    """Parse the ``#MVS_v1.1`` section starting at byte ``start``; warn and return None if unparseable."""
    def fail(msg: str) -> None:
        warnings.warn(f"{path}: cannot parse the #MVS_v1.1 active-set section ({msg}); "
                      "it is ignored and will not be written back", stacklevel=3)

    pos = start + len(MVS_MARKER)
    weights: dict[str, float] = {}
    for key in (*_WEIGHT_KEYS, "weight_scaling"):
        nl = data.find(b"\n", pos)
        if nl < 0:
            return fail(f"missing {key}")
        parts = data[pos:nl].decode("ascii", "replace").split()
        if len(parts) != 2 or parts[0] != key:
            return fail(f"expected '{key} <value>'")
        try:
            weights[key] = int(parts[1]) if key == "weight_scaling" else float(parts[1])
        except ValueError:
            return fail(f"malformed {key}")
        pos = nl + 1
    if data[pos:pos + 1] != b"#":
        return fail("missing '#' before the matrices")
    pos += 1
    candidates = [n_expected] + [n for n in range(1, 5000) if n != n_expected]
    n = None
    for cand in candidates:
        end = pos + 16 * cand * cand
        if end + 3 > len(data):
            if cand > n_expected:
                break
            continue
        if data[end:end + 3] == b"\n#\n":
            n = cand
            break
    if n is None:
        return fail("cannot find the end of the binary matrices")
    mats = np.frombuffer(data, dtype="<f8", count=2 * n * n, offset=pos).astype(np.float64)
    A, invA = mats[: n * n].reshape(n, n).copy(), mats[n * n:].reshape(n, n).copy()
    pos += 16 * n * n + 3
    links = []
    for _ in range(n):
        nl = data.find(b"\n", pos)
        parts = data[pos:nl].split() if nl >= 0 else []
        if len(parts) != 2:
            return fail("malformed equation links")
        try:
            links.append((int(parts[0]), int(parts[1])))
        except ValueError:
            return fail("malformed equation links")
        pos = nl + 1
    if data[pos:pos + 2] != b"#\n":
        return fail("missing '#' after the equation links")
    pos += 2
    return MVSSection(A=A, invA=invA, links=np.array(links, dtype=np.int64).reshape(-1, 2),
                     selected_cfgs=data[pos:].decode("utf-8"), **weights)


def read_mtp(path: str | os.PathLike) -> MTP:
    """Read an MLIP ``.mtp`` or ``.almtp`` file.

    Untrained templates get MLIP's default initial coefficients and
    ``trained=False``. An ``.almtp`` active-set section is read into
    ``mtp.active_set`` (:class:`MVSSection`).

    Raises
    ------
    InputFileError
        Naming the file, line and field of the first problem found.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputFileError(path, f"cannot read: {exc.strerror or exc}") from None
    marker = data.find(b"\n" + MVS_MARKER)
    head = data if marker < 0 else data[: marker + 1]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(path, f"not a text .mtp file ({exc.reason} at byte {exc.start})") from None
    mtp = parse_mtp(text.replace("\r\n", "\n"), path)
    if marker >= 0:
        mtp.active_set = _parse_active_set(os.fspath(path), data, marker + 1, mtp.n_params)
    return mtp


# --------------------------------------------------------------------------- writing


def _e(x: float) -> str:
    return f"{x:.15e}"


def _short(x: float) -> str:
    s = repr(float(x))
    return s.removesuffix(".0")


def _ilist(rows: npt.NDArray[np.int64]) -> str:
    return "{" + ", ".join("{" + ", ".join(str(int(v)) for v in row) + "}" for row in rows) + "}"


def format_mtp(mtp: MTP, *, scaling_line: bool = True) -> str:
    """The ``.mtp`` text of ``mtp`` (a template when ``mtp.trained`` is False).

    Like MLIP, a trained potential's text has no newline after the final ``}``.

    ``scaling_line=False`` omits ``scaling`` when it equals 1 (MLIP-3 style).
    """
    out = ["MTP", f"version = {mtp.version}", f"potential_name = {mtp.potential_name}"]
    if mtp.trained and (scaling_line or mtp.scaling != 1.0):
        out.append(f"scaling = {_e(mtp.scaling)}")
    out.append(f"species_count = {mtp.species_count}")
    out.append(f"potential_tag = {mtp.potential_tag}")
    out.append("radial_basis_type = RBChebyshev")
    f = _e if mtp.trained else _short
    out.append(f"\tmin_dist = {f(mtp.min_dist)}")
    out.append(f"\tmax_dist = {f(mtp.max_dist)}")
    out.append(f"\tradial_basis_size = {mtp.radial_basis_size}")
    out.append(f"\tradial_funcs_count = {mtp.radial_funcs_count}")
    if mtp.trained:
        out.append("\tradial_coeffs")
        for a in range(mtp.species_count):
            for c in range(mtp.species_count):
                out.append(f"\t\t{a}-{c}")
                for row in mtp.radial_coeffs[a, c]:
                    out.append("\t\t\t{" + ", ".join(_e(v) for v in row) + "}")
    out.append(f"alpha_moments_count = {mtp.alpha_moments_count}")
    out.append(f"alpha_index_basic_count = {len(mtp.alpha_index_basic)}")
    out.append(f"alpha_index_basic = {_ilist(mtp.alpha_index_basic)}")
    out.append(f"alpha_index_times_count = {len(mtp.alpha_index_times)}")
    out.append(f"alpha_index_times = {_ilist(mtp.alpha_index_times)}")
    out.append(f"alpha_scalar_moments = {mtp.alpha_scalar_moments}")
    out.append("alpha_moment_mapping = {" + ", ".join(str(int(v)) for v in mtp.alpha_moment_mapping) + "}")
    if mtp.trained:
        out.append("species_coeffs = {" + ", ".join(_e(v) for v in mtp.species_coeffs) + "}")
        out.append("moment_coeffs = {" + ", ".join(_e(v) for v in mtp.moment_coeffs) + "}")
    # MLIP ends a trained file right after the closing brace; templates end with a newline.
    return "\n".join(out) + ("" if mtp.trained else "\n")


def write_mtp(path: str | os.PathLike, mtp: MTP) -> None:
    """Write ``mtp`` atomically as MLIP writes it.

    A path ending in ``.almtp`` gets MLIP-3's layout (no ``scaling`` line when
    it is 1) followed by ``mtp.active_set`` when present; anything else gets
    MLIP-2's ``.mtp`` layout.
    """
    almtp = os.fspath(path).endswith(".almtp")
    text = format_mtp(mtp, scaling_line=not almtp)
    data = text.encode()
    active = mtp.active_set
    if active is not None:
        if not isinstance(active, MVSSection):
            raise TypeError(f"mtp.active_set must be an MVSSection (MLIP-3's #MVS_v1.1 section), "
                            f"got {type(active).__name__}")
        if not almtp:
            warnings.warn(f"{path}: the active set is only written to .almtp files; it is dropped here",
                          stacklevel=2)
        else:
            if active.size != mtp.n_params:
                raise ValueError(f"active set has {active.size} rows, the MTP has {mtp.n_params} coefficients")
            data = data.rstrip(b"\n") + b"\n" + active.to_bytes()
    with atomic_open(path, "wb") as fh:
        fh.write(data)
