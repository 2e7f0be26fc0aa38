"""Streaming trajectory readers: LAMMPS text dumps and extended XYZ.

Frames are read one at a time (never the whole file), each with its own cell,
so NPT runs are handled.  Positions are returned in Å, cells as 3x3 row
vectors in Å.

LAMMPS text dumps (``dump custom``):

* coordinates ``xu yu zu`` (unwrapped, preferred), ``xsu ysu zsu``, ``x y z`` +
  image flags ``ix iy iz``, or wrapped ``x y z`` / ``xs ys zs`` (then
  :func:`iter_unwrapped` unwraps them by the minimum image between consecutive
  frames, which needs every frame);
* orthogonal and (restricted) triclinic boxes (``ITEM: BOX BOUNDS xy xz yz ...``);
* species from an ``element`` column or from ``type`` plus a ``type_map``
  (``type_map[0]`` is type 1);
* atoms are sorted by ``id`` in every frame.

NPT caveat: LAMMPS writes ``xu = x + image·L(t)``, so an atom that has crossed the
boundary n times carries an error n·ΔL(t) from box fluctuations (typically ≲ 0.1 Å
per crossing, negligible against the MSD of a diffusing ion).  Wrapped input is
unwrapped by minimum-image steps in the current cell instead, which has no such
error.

Frames can be read with a stride without parsing the skipped ones: a dump under
64 MiB is scanned once for its frame offsets (a fast byte search, 8 bytes per
frame); a larger one with evenly spaced timesteps is not read at all beyond the
frames asked for — each frame's offset is found by seeking to its estimated
position and correcting from the timestep there (``_SparseIndex``), so reading
every 10th frame of a file reads about a tenth of it.  A truncated last frame (a run still going or killed)
is dropped and reported in :attr:`Trajectory.truncated`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mtpkit.errors import InputFileError, UserError

__all__ = ["Frame", "Trajectory", "frame_to_atoms", "iter_unwrapped", "open_trajectory"]

_HEADER = b"ITEM: TIMESTEP"
_CHUNK = 1 << 24  # 16 MiB read buffer for the offset scan


@dataclass
class Frame:
    """One trajectory frame.

    ``positions`` (N, 3) Å in the atom order of :attr:`Trajectory.symbols`;
    ``cell`` (3, 3) Å, rows are the lattice vectors; ``unwrapped`` tells whether
    the positions are continuous in time (no periodic wrapping).
    """

    index: int
    timestep: int | None
    cell: np.ndarray
    positions: np.ndarray
    unwrapped: bool


@dataclass
class Trajectory:
    """A trajectory file opened for streaming; see :func:`open_trajectory`."""

    path: Path
    format: str
    symbols: list[str]
    n_frames: int
    unwrapped: bool
    truncated: bool = False
    _offsets: np.ndarray | _SparseIndex | None = field(default=None, repr=False)
    _columns: dict | None = field(default=None, repr=False)
    _type_map: Sequence[str] | None = field(default=None, repr=False)

    @property
    def n_atoms(self) -> int:
        return len(self.symbols)

    def frames(self, start: int = 0, stop: int | None = None, stride: int = 1) -> Iterator[Frame]:
        """Frames ``start:stop:stride`` (one in memory at a time)."""
        stop = self.n_frames if stop is None else min(stop, self.n_frames)
        if stride < 1:
            raise UserError(f"frame stride must be >= 1, got {stride}")
        if self.format == "lammps-dump":
            yield from self._lammps_frames(start, stop, stride)
        else:
            yield from self._xyz_frames(start, stop, stride)

    # -- LAMMPS -------------------------------------------------------------
    def _lammps_frames(self, start: int, stop: int, stride: int) -> Iterator[Frame]:
        with open(self.path, "rb") as fh:
            for k in range(start, stop, stride):
                raw = None
                if isinstance(self._offsets, _SparseIndex):
                    try:
                        raw = self._offsets.read_frame(k)
                    except _NonUniform:  # irregular timesteps: fall back to the full scan
                        self._offsets = _scan_offsets(self.path)[: self.n_frames + 1]
                if raw is None:
                    a, b = self._offsets[k], self._offsets[k + 1]
                    fh.seek(int(a))
                    raw = fh.read(int(b - a))
                yield _parse_lammps_frame(raw, k, self.path, self._columns, self.n_atoms,
                                          self.unwrapped)

    # -- extxyz -------------------------------------------------------------
    def _xyz_frames(self, start: int, stop: int, stride: int) -> Iterator[Frame]:
        from ase.io import iread

        for k, atoms in enumerate(iread(str(self.path), index=slice(start, stop, stride),
                                        format="extxyz")):
            if atoms.get_chemical_symbols() != self.symbols:
                raise InputFileError(self.path, f"frame {start + k * stride}: the atoms or their order "
                                     "changed; a trajectory must keep the same atoms in the same order")
            yield Frame(index=start + k * stride, timestep=atoms.info.get("timestep"),
                        cell=np.array(atoms.cell[:], float), positions=atoms.positions.copy(),
                        unwrapped=False)


def open_trajectory(path: str | os.PathLike, format: str | None = None,
                    type_map: Sequence[str] | None = None) -> Trajectory:
    """Open a LAMMPS text dump or an extended XYZ trajectory for streaming.

    ``format``: ``"lammps-dump"`` or ``"extxyz"`` (default: from the suffix; ``.xyz``/
    ``.extxyz`` are extxyz, anything else is tried as a LAMMPS dump).
    ``type_map``: element symbols by LAMMPS type (type 1 first) for dumps without an
    ``element`` column.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "trajectory file not found")
    if format is None:
        format = "extxyz" if path.suffix.lower() in (".xyz", ".extxyz") else "lammps-dump"
    if format == "lammps-dump":
        return _open_lammps(path, type_map)
    if format == "extxyz":
        return _open_xyz(path)
    raise UserError(f"unknown trajectory format {format!r}; use 'lammps-dump' or 'extxyz'")


def _scan_offsets(path: Path) -> np.ndarray:
    """Byte offsets of every ``ITEM: TIMESTEP`` line start, plus the file size at the end."""
    offsets: list[int] = []
    keep = len(_HEADER)  # overlap: a header across a chunk boundary plus its preceding newline
    with open(path, "rb") as fh:
        end = 0  # file offset just after the bytes read so far
        buf = b""
        while chunk := fh.read(_CHUNK):
            buf = buf[-keep:] + chunk
            end += len(chunk)
            start0 = end - len(buf)  # file offset of buf[0]
            pos = buf.find(_HEADER)
            while pos >= 0:
                if start0 + pos == 0 or (pos > 0 and buf[pos - 1] == 0x0A):
                    offsets.append(start0 + pos)
                pos = buf.find(_HEADER, pos + 1)
        size = fh.tell()
    # a header inside the overlap is found twice: dedupe
    return np.append(np.unique(np.array(offsets, dtype=np.int64)), size)


def _lammps_header(raw: bytes, path: Path, k: int) -> tuple[int, int, np.ndarray, list[str], int]:
    """(timestep, natoms, cell, atom columns, byte offset of the first atom line)."""
    lines = raw.split(b"\n", 9)
    try:
        if lines[0].strip() != _HEADER:
            raise ValueError("expected 'ITEM: TIMESTEP'")
        timestep = int(lines[1])
        if not lines[2].startswith(b"ITEM: NUMBER OF ATOMS"):
            raise ValueError("expected 'ITEM: NUMBER OF ATOMS'")
        natoms = int(lines[3])
        box = lines[4].decode()
        if not box.startswith("ITEM: BOX BOUNDS"):
            raise ValueError("expected 'ITEM: BOX BOUNDS'")
        if "abc origin" in box:
            raise ValueError("general-triclinic boxes ('abc origin') are not supported; "
                             "dump with a restricted triclinic box")
        bounds = np.array([[float(v) for v in lines[5 + i].split()] for i in range(3)])
        if not lines[8].startswith(b"ITEM: ATOMS"):
            raise ValueError("expected 'ITEM: ATOMS'")
        columns = lines[8].decode().split()[2:]
    except (ValueError, IndexError) as exc:
        raise InputFileError(path, f"frame {k}: malformed LAMMPS dump header ({exc})") from None
    if bounds.shape[1] == 3:  # triclinic: bounds are the bounding box
        xy, xz, yz = bounds[:, 2]
        xlo = bounds[0, 0] - min(0.0, xy, xz, xy + xz)
        xhi = bounds[0, 1] - max(0.0, xy, xz, xy + xz)
        ylo = bounds[1, 0] - min(0.0, yz)
        yhi = bounds[1, 1] - max(0.0, yz)
        cell = np.array([[xhi - xlo, 0, 0], [xy, yhi - ylo, 0], [xz, yz, bounds[2, 1] - bounds[2, 0]]])
    else:
        cell = np.diag(bounds[:, 1] - bounds[:, 0])
    body = sum(len(line) + 1 for line in lines[:9])
    return timestep, natoms, cell, columns, body


def _column_plan(columns: list[str], path: Path) -> dict:
    """Which columns hold id, species and coordinates, and how to turn them into Å."""
    def idx(names):
        return [columns.index(n) for n in names] if all(n in columns for n in names) else None

    plan: dict = {"ncols": len(columns), "id": columns.index("id") if "id" in columns else None,
                  "type": columns.index("type") if "type" in columns else None,
                  "element": columns.index("element") if "element" in columns else None}
    for names, kind in ((("xu", "yu", "zu"), "cart-unwrapped"), (("xsu", "ysu", "zsu"), "scaled-unwrapped"),
                        (("x", "y", "z"), "cart"), (("xs", "ys", "zs"), "scaled")):
        cols = idx(names)
        if cols is not None:
            plan["coords"], plan["kind"] = cols, kind
            break
    else:
        raise InputFileError(path, f"no coordinate columns in 'ITEM: ATOMS {' '.join(columns)}'; dump "
                             "'xu yu zu' (unwrapped) or 'x y z'", field="ITEM: ATOMS")
    plan["image"] = idx(("ix", "iy", "iz")) if plan["kind"] in ("cart", "scaled") else None
    plan["unwrapped"] = plan["kind"].endswith("unwrapped") or plan["image"] is not None
    return plan


def _parse_lammps_frame(raw: bytes, k: int, path: Path, plan: dict, natoms: int,
                        unwrapped: bool) -> Frame:
    timestep, n, cell, _columns, body = _lammps_header(raw, path, k)
    if n != natoms:
        raise InputFileError(path, f"frame {k} (timestep {timestep}): {n} atoms, the first frame had "
                             f"{natoms}; a trajectory must keep the same atoms")
    tokens = raw[body:].split()
    ncols = plan["ncols"]
    if len(tokens) != natoms * ncols:
        raise InputFileError(path, f"frame {k} (timestep {timestep}): expected {natoms} atom lines of "
                             f"{ncols} columns, got {len(tokens)} values (truncated or corrupt file)")
    try:
        if plan["element"] is None:  # all-numeric table: the fast path
            table = np.array(tokens, dtype=float).reshape(natoms, ncols)
        else:
            table = np.array(tokens).reshape(natoms, ncols)
        xyz = table[:, plan["coords"]].astype(float)
        order = (np.argsort(table[:, plan["id"]].astype(float), kind="stable")
                 if plan["id"] is not None else None)
        if plan["image"] is not None:
            image = table[:, plan["image"]].astype(float)
    except ValueError as exc:
        raise InputFileError(path, f"frame {k} (timestep {timestep}): non-numeric value ({exc})") from None
    if plan["kind"].startswith("scaled"):
        xyz = xyz @ cell
    if plan["image"] is not None:
        xyz = xyz + image @ cell
    if order is not None:
        xyz = xyz[order]
    return Frame(index=k, timestep=timestep, cell=cell, positions=xyz, unwrapped=unwrapped)


class _NonUniform(Exception):
    """The dump's timesteps are not evenly spaced: frame offsets cannot be found by seeking."""


class _SparseIndex:
    """Frame offsets of a large dump found on demand by seeking, not by reading the file.

    Needs evenly spaced timesteps (frame k has timestep t0 + k·Δt) and frame sizes that
    vary little (true of ``dump custom`` files); each lookup seeks to the estimated
    offset, reads a window of about one frame and corrects from the timestep found.
    Raises :class:`_NonUniform` when the timesteps do not fit; callers then scan the file.
    """

    def __init__(self, path: Path, size: int) -> None:
        self.path, self.size = path, size
        self._fh = open(path, "rb")  # noqa: SIM115  # held for the index's lifetime, closed in __del__
        off0, ts0 = self._find(0)
        if off0 != 0:
            raise _NonUniform
        off1, ts1 = self._find(1)
        if off1 is None or ts1 <= ts0:
            raise _NonUniform
        self.ts0, self.dts = ts0, ts1 - ts0
        off_last, ts_last = self._find_last()
        n_last = self.index_of(ts_last)
        if n_last < 1 or off_last <= off1:
            raise _NonUniform
        self.known = {0: off0, 1: off1, n_last: off_last}
        self.n_last = n_last
        self.avg = (off_last - off0) / n_last
        self.end = size  # set to off_last by the caller when the last frame is incomplete

    def __del__(self) -> None:
        fh = getattr(self, "_fh", None)
        if fh is not None:
            fh.close()

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_fh"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._fh = open(self.path, "rb")  # noqa: SIM115  # as in __init__

    def index_of(self, ts: int) -> int:
        q, r = divmod(ts - self.ts0, self.dts)
        if r or q < 0:
            raise _NonUniform
        return int(q)

    def read_frame(self, k: int) -> bytes:
        """The bytes of frame ``k`` (one read of about a frame; learns where frame k+1 starts)."""
        start = self[k]
        end = self.known.get(k + 1, self.end if k == self.n_last else None)
        if end is not None:
            self._fh.seek(start)
            return self._fh.read(end - start)
        want = int(self.avg * 1.02) + 4096
        self._fh.seek(start)
        buf = self._fh.read(want)
        while True:
            i = buf.find(b"\n" + _HEADER, 1)
            if i >= 0:
                self.known[k + 1] = start + i + 1
                return buf[: i + 1]
            more = self._fh.read(want)
            if not more:
                return buf
            buf += more

    def _find(self, pos: int) -> tuple[int | None, int | None]:
        """(offset, timestep) of the first frame header starting at or after ``pos``."""
        fh = self._fh
        window = int(self.avg) + 4096 if hasattr(self, "avg") else 1 << 16
        start = max(0, pos - 1)
        while start < self.size:
            fh.seek(start)
            buf = fh.read(window + 64)
            if not buf:
                break
            i = buf.find(_HEADER, pos - start if pos > start else 0)
            while i >= 0:
                if start + i == 0 or buf[i - 1] == 0x0A:
                    line_end = buf.find(b"\n", i + len(_HEADER) + 1)
                    if line_end < 0:
                        fh.seek(start + i)
                        buf = fh.read(256)
                        i, line_end = 0, buf.find(b"\n", len(_HEADER) + 1)
                    try:
                        return start + i, int(buf[i + len(_HEADER) + 1:line_end])
                    except ValueError:
                        return None, None
                i = buf.find(_HEADER, i + 1)
            start += window
            pos = start
            window *= 2
        return None, None

    def _find_last(self) -> tuple[int, int]:
        window = 1 << 16
        while True:
            start = max(0, self.size - window)
            self._fh.seek(start)
            buf = self._fh.read(self.size - start)
            i = buf.rfind(_HEADER)
            while i >= 0 and not (start + i == 0 or buf[i - 1] == 0x0A):
                i = buf.rfind(_HEADER, 0, i)
            if i >= 0:
                off, ts = self._find(start + i)
                if off is None:
                    raise _NonUniform
                return off, ts
            if start == 0:
                raise _NonUniform
            window *= 4

    def __getitem__(self, k: int) -> int:
        k = int(k)
        if k in self.known:
            return self.known[k]
        if k == self.n_last + 1:
            return self.end
        if k < 0 or k > self.n_last:
            raise IndexError(k)
        guess = self.known[0] + k * self.avg
        for _ in range(40):
            off, ts = self._find(max(0, int(guess - 0.5 * self.avg)))
            j = self.n_last + 1 if off is None else self.index_of(ts)
            if j == k:
                self.known[k] = off
                return off
            if off is not None and 0 < k - j <= 2:  # just before: walk forward
                for _ in range(k - j):
                    off, ts = self._find(off + 1)
                if off is not None and self.index_of(ts) == k:
                    self.known[k] = off
                    return off
            guess = (off if off is not None else self.size) + (k - j) * self.avg
        raise _NonUniform


SPARSE_MIN_BYTES = 64 << 20


def _open_lammps(path: Path, type_map: Sequence[str] | None) -> Trajectory:
    size = path.stat().st_size
    sparse = None
    if size >= SPARSE_MIN_BYTES:
        try:
            sparse = _SparseIndex(path, size)
        except _NonUniform:
            sparse = None
    offsets = _scan_offsets(path) if sparse is None else np.array([sparse[0], sparse[1]], np.int64)
    if len(offsets) < 2:
        raise InputFileError(path, "no 'ITEM: TIMESTEP' found: not a LAMMPS text dump (binary dumps "
                             "are not supported; use 'dump custom ... id type xu yu zu')")
    with open(path, "rb") as fh:
        raw = fh.read(int(offsets[1] - offsets[0]))
    _timestep, natoms, _cell, columns, body = _lammps_header(raw, path, 0)
    plan = _column_plan(columns, path)
    tokens = raw[body:].split()
    if len(tokens) != natoms * plan["ncols"]:
        raise InputFileError(path, f"frame 0: expected {natoms} atom lines of {plan['ncols']} columns")
    table = np.array(tokens).reshape(natoms, plan["ncols"])
    order = np.argsort(table[:, plan["id"]].astype(np.int64)) if plan["id"] is not None else slice(None)
    if plan["element"] is not None:
        symbols = [s.decode() for s in table[order, plan["element"]]]
    elif plan["type"] is not None:
        types = table[order, plan["type"]].astype(int)
        if not type_map:
            raise UserError(f"{path}: the dump has atom types but no 'element' column; give the "
                            "element of each type (e.g. --type-map Na Y Zr Cl, type 1 first)")
        if types.max() > len(type_map) or types.min() < 1:
            raise UserError(f"{path}: atom types {types.min()}..{types.max()} but the type map "
                            f"{list(type_map)} has {len(type_map)} entries")
        symbols = [type_map[t - 1] for t in types]
    else:
        raise InputFileError(path, "the dump has neither 'element' nor 'type' columns", field="ITEM: ATOMS")
    # a last frame that does not parse is an unfinished write (run still going or killed): drop it
    truncated = False
    if sparse is not None:
        with open(path, "rb") as fh:
            fh.seek(sparse.known[sparse.n_last])
            last = fh.read(size - sparse.known[sparse.n_last])
        try:
            _parse_lammps_frame(last, sparse.n_last, path, plan, natoms, plan["unwrapped"])
            n_frames = sparse.n_last + 1
        except InputFileError:
            sparse.end = sparse.known[sparse.n_last]
            n_frames = sparse.n_last
            truncated = True
        return Trajectory(path=path, format="lammps-dump", symbols=symbols, n_frames=n_frames,
                          unwrapped=plan["unwrapped"], truncated=truncated, _offsets=sparse,
                          _columns=plan, _type_map=type_map)
    if len(offsets) > 2:
        with open(path, "rb") as fh:
            fh.seek(int(offsets[-2]))
            last = fh.read(int(offsets[-1] - offsets[-2]))
        try:
            _parse_lammps_frame(last, len(offsets) - 2, path, plan, natoms, plan["unwrapped"])
        except InputFileError:
            offsets = offsets[:-1]
            truncated = True
    return Trajectory(path=path, format="lammps-dump", symbols=symbols, n_frames=len(offsets) - 1,
                      unwrapped=plan["unwrapped"], truncated=truncated, _offsets=offsets,
                      _columns=plan, _type_map=type_map)


def _open_xyz(path: Path) -> Trajectory:
    from ase.io import read

    try:
        first = read(str(path), index=0, format="extxyz")
    except Exception as exc:  # noqa: BLE001  # ASE raises many types for unreadable files; re-raised
        raise InputFileError(path, f"cannot read as extended XYZ ({type(exc).__name__}: {exc})") from None
    natoms = len(first)
    nlines = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            nlines += chunk.count(b"\n")
    n_frames = nlines // (natoms + 2)
    truncated = nlines % (natoms + 2) != 0
    return Trajectory(path=path, format="extxyz", symbols=first.get_chemical_symbols(),
                      n_frames=n_frames, unwrapped=False, truncated=truncated)


def iter_unwrapped(traj: Trajectory, start: int = 0, stop: int | None = None, stride: int = 1,
                   max_jump_fraction: float = 0.5) -> Iterator[Frame]:
    """Frames with continuous (unwrapped) positions, ``start:stop:stride``.

    Wrapped coordinates are unwrapped by the minimum image between consecutive
    frames, which reads every frame between the ones returned.  A displacement
    between consecutive frames read larger than ``max_jump_fraction`` of the cell
    width (or, for wrapped input, larger than 0.4 of it, where the minimum image
    becomes ambiguous) raises :class:`UserError`: the dump interval is too long to
    follow the atoms.
    """
    stop = traj.n_frames if stop is None else min(stop, traj.n_frames)
    if traj.unwrapped:
        prev: Frame | None = None
        for frame in traj.frames(start, stop, stride):
            if prev is not None:
                _check_jumps(traj, prev, frame, frame.positions - prev.positions, max_jump_fraction)
            prev = frame
            yield frame
        return
    prev = None
    current = None
    for frame in traj.frames(start, stop, 1):
        if prev is None:
            current = frame.positions.copy()
        else:
            inv = np.linalg.inv(frame.cell)
            dfrac = (frame.positions - prev.positions) @ inv
            dfrac -= np.round(dfrac)
            step = dfrac @ frame.cell
            _check_jumps(traj, prev, frame, step, min(0.4, max_jump_fraction), wrapped=True)
            current = current + step
        prev = frame
        if (frame.index - start) % stride == 0:
            yield Frame(index=frame.index, timestep=frame.timestep, cell=frame.cell,
                        positions=current.copy(), unwrapped=True)


def cell_widths(cell: np.ndarray) -> np.ndarray:
    """Perpendicular widths (Å) of a cell: the distances between opposite faces."""
    volume = abs(np.linalg.det(cell))
    return volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)


def _check_jumps(traj: Trajectory, prev: Frame, frame: Frame, step: np.ndarray, fraction: float,
                 wrapped: bool = False) -> None:
    frac = np.abs(step @ np.linalg.inv(frame.cell))
    worst = np.unravel_index(np.argmax(frac), frac.shape)
    if frac[worst] > fraction:
        i, axis = int(worst[0]), "abc"[worst[1]]
        dist = float(np.linalg.norm(step[i]))
        what = ("wrapped coordinates cannot be unwrapped reliably" if wrapped else
                "unwrapped coordinates jumped by more than half a cell")
        raise UserError(
            f"{traj.path}: atom {i} ({traj.symbols[i]}) moved {dist:.2f} Å ({frac[worst]:.2f} of the "
            f"cell along {axis}) between frames {prev.index} and {frame.index}: {what}; the dump "
            "interval is too long (dump more often, write 'xu yu zu', or read more frames with a "
            "larger --max-frames)")


def frame_to_atoms(traj: Trajectory, frame: Frame):
    """An ASE ``Atoms`` (periodic) for one frame."""
    from ase import Atoms

    return Atoms(traj.symbols, positions=frame.positions, cell=frame.cell, pbc=True)


def _fixed_width(values: np.ndarray, width: int, decimals: int) -> np.ndarray:
    """ASCII bytes (n, width) of ``values`` right-aligned with ``decimals`` decimals (vectorised)."""
    values = np.asarray(values, float)
    scaled = np.round(np.abs(values) * 10**decimals).astype(np.int64)
    out = np.full((len(values), width), ord(" "), np.uint8)
    ndig_int = np.maximum(1, np.floor(np.log10(np.maximum(scaled // 10**decimals, 1))).astype(int) + 1)
    col = width - 1
    rest = scaled.copy()
    for _ in range(decimals):
        out[:, col] = ord("0") + rest % 10
        rest //= 10
        col -= 1
    if decimals:
        out[:, col] = ord(".")
        col -= 1
    need = width - decimals - (1 if decimals else 0) - 1  # room for the sign
    if np.any(ndig_int > need):
        raise ValueError(f"value too large for width {width}")
    for p in range(need):
        show = p < ndig_int
        out[show, col] = ord("0") + rest[show] % 10
        rest //= 10
        col -= 1
    neg = values < 0
    if neg.any():
        sign_col = width - decimals - (1 if decimals else 0) - 1 - ndig_int[neg]
        out[np.flatnonzero(neg), sign_col] = ord("-")
    return out


def write_lammps_dump(path: str | os.PathLike, symbols: Sequence[str], cells: np.ndarray,
                      positions: np.ndarray, timesteps: Sequence[int] | None = None,
                      type_map: Sequence[str] | None = None, mode: str = "w") -> None:
    """Write frames as a LAMMPS text dump ``id type xu yu zu`` (4 decimals, Å).

    ``cells`` (n_frames, 3, 3) or (3, 3); ``positions`` (n_frames, N, 3) unwrapped Å.
    Lower-triangular cells are written as restricted triclinic boxes.  Used for tests
    and benchmarks (vectorised formatting: ~10^6 atom lines per second).
    """
    positions = np.asarray(positions, float)
    n_frames, natoms, _ = positions.shape
    cells = np.broadcast_to(np.asarray(cells, float), (n_frames, 3, 3))
    type_map = list(type_map) if type_map else sorted(set(symbols), key=list(symbols).index)
    types = np.array([type_map.index(s) + 1 for s in symbols])
    ids = _fixed_width(np.arange(1, natoms + 1), 6, 0)
    tcol = _fixed_width(types, 3, 0)
    timesteps = np.arange(n_frames) if timesteps is None else np.asarray(timesteps)
    with open(path, mode + "b") as fh:
        for k in range(n_frames):
            c = cells[k]
            tri = abs(c[1, 0]) > 1e-12 or abs(c[2, 0]) > 1e-12 or abs(c[2, 1]) > 1e-12
            if tri:
                xy, xz, yz = c[1, 0], c[2, 0], c[2, 1]
                bounds = (f"ITEM: BOX BOUNDS xy xz yz pp pp pp\n"
                          f"{min(0.0, xy, xz, xy + xz):.10g} {c[0, 0] + max(0.0, xy, xz, xy + xz):.10g} {xy:.10g}\n"
                          f"{min(0.0, yz):.10g} {c[1, 1] + max(0.0, yz):.10g} {xz:.10g}\n"
                          f"0 {c[2, 2]:.10g} {yz:.10g}\n")
            else:
                bounds = (f"ITEM: BOX BOUNDS pp pp pp\n0 {c[0, 0]:.10g}\n0 {c[1, 1]:.10g}\n"
                          f"0 {c[2, 2]:.10g}\n")
            head = (f"ITEM: TIMESTEP\n{int(timesteps[k])}\nITEM: NUMBER OF ATOMS\n{natoms}\n"
                    f"{bounds}ITEM: ATOMS id type xu yu zu\n")
            xyz = _fixed_width(positions[k].ravel(), 12, 4).reshape(natoms, 36)
            body = np.concatenate([ids, tcol, xyz, np.full((natoms, 1), 10, np.uint8)], axis=1)
            fh.write(head.encode())
            fh.write(body.tobytes())
