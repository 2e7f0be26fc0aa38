"""The fast .cfg reader and writer against the readable reference ones, on the same files.

``read_cfg`` (whole file, NumPy tables: :mod:`mtpkit.potentials.cfg_fast`) must
give exactly what ``read_cfg_reference`` (line by line) gives: the same Atoms bit
for bit, and for malformed files the same exception type with the same message
(file, line, field). The writer's NumPy/%-template rows must equal the
row-by-row reference formatting.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mtpkit.errors import InputFileError
from mtpkit.potentials import cfg_fast
from mtpkit.potentials.cfg import (
    _atom_rows,
    _atom_rows_reference,
    read_cfg,
    read_cfg_reference,
    read_cfg_text,
    read_cfg_text_reference,
    write_cfg,
)

SPECIES = ["Na", "Cl"]


def assert_same_atoms(fast: list[Atoms], ref: list[Atoms]) -> None:
    """Same configurations, bit for bit (signs of zeros included)."""
    assert len(fast) == len(ref)
    for a, b in zip(fast, ref):
        assert np.array_equal(a.numbers, b.numbers)
        assert np.array_equal(a.positions, b.positions)
        assert np.array_equal(np.signbit(a.positions), np.signbit(b.positions))
        assert np.array_equal(a.cell.array, b.cell.array)
        assert np.array_equal(a.pbc, b.pbc)
        assert a.info == b.info
        assert sorted(a.arrays) == sorted(b.arrays)
        for key in a.arrays:
            assert a.arrays[key].dtype == b.arrays[key].dtype, key
            assert np.array_equal(a.arrays[key], b.arrays[key]), key
        assert (a.calc is None) == (b.calc is None)
        if a.calc is not None:
            assert sorted(a.calc.results) == sorted(b.calc.results)
            for key, value in a.calc.results.items():
                other = b.calc.results[key]
                assert np.array_equal(value, other), key
                assert np.array_equal(np.signbit(value), np.signbit(other)), key


def outcome(read, *args):
    """('ok', atoms) or ('error', type, message, line, field)."""
    try:
        return ("ok", read(*args))
    except Exception as exc:  # noqa: BLE001 - the point is to compare whatever is raised
        return ("error", type(exc), str(exc), getattr(exc, "line", None), getattr(exc, "field", None))


def assert_same_outcome(path, species=None) -> tuple:
    fast = outcome(read_cfg, path, species)
    ref = outcome(read_cfg_reference, path, species)
    assert fast[0] == ref[0], (fast, ref)
    if fast[0] == "ok":
        assert_same_atoms(fast[1], ref[1])
    else:
        assert fast[1:] == ref[1:]
    return fast


def count_fallbacks(monkeypatch) -> dict[str, int]:
    """Counts configurations the fast path handed to the reference parser."""
    counts = {"fast": 0, "reference": 0}
    fast_one = cfg_fast._fast_one

    def wrapped(*args):
        atoms = fast_one(*args)
        counts["fast" if atoms is not None else "reference"] += 1
        return atoms

    monkeypatch.setattr(cfg_fast, "_fast_one", wrapped)
    return counts


def nacl_images(n_configs: int = 3, reps: int = 4, seed: int = 0) -> list[Atoms]:
    """Labelled rock-salt cells (8 reps^3 atoms): energies, forces, stresses, a feature."""
    from ase.build import bulk

    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_configs):
        a = bulk("NaCl", "rocksalt", a=5.64, cubic=True) * (reps, reps, reps)
        a.positions += rng.normal(scale=0.1, size=a.positions.shape)
        a.positions[0] = [-1e-9, 0.0, -0.0]  # prints as -0.000000: read back as -0.0
        n = len(a)
        a.calc = SinglePointCalculator(a, energy=-3.3 * n + rng.normal(), forces=rng.normal(size=(n, 3)),
                                       stress=rng.normal(size=6) * 1e-3)
        a.info["EFS_by"] = "test"
        a.info["index"] = k
        out.append(a)
    return out


@pytest.fixture
def big_cfg(tmp_path):
    """A .cfg of 3 x 512-atom labelled cells in MLIP's layout (the fixed-width fast path)."""
    path = tmp_path / "big.cfg"
    write_cfg(path, nacl_images(), SPECIES)
    return path


# --------------------------------------------------------------------------- well-formed files


def test_mlip_files_same_as_reference(motep_data, monkeypatch):
    counts = count_fallbacks(monkeypatch)
    files = [*sorted(motep_data.glob("original/*/*/training.cfg")), motep_data / "original/mag/mag.cfg",
             motep_data / "fitting/crystals/multi/10/out.cfg"]
    for f in files:
        assert_same_outcome(f)
    assert counts["reference"] == 0 and counts["fast"] > 3000


def test_large_tables_take_the_fixed_width_path(big_cfg, monkeypatch):
    calls = []
    table = cfg_fast._fixed_width_table
    monkeypatch.setattr(cfg_fast, "_fixed_width_table", lambda *a: calls.append(1) or table(*a))
    counts = count_fallbacks(monkeypatch)
    a = assert_same_outcome(big_cfg, SPECIES)[1][0]
    assert len(calls) == 3 and counts == {"fast": 3, "reference": 0}
    assert a.positions[0, 0] == 0.0 and np.signbit(a.positions[0, 0])
    assert a.get_chemical_symbols()[:2] == ["Na", "Cl"]
    assert_same_outcome(big_cfg)  # without species


def test_other_layouts_same_as_reference(big_cfg, tmp_path, monkeypatch):
    """Tabs, ragged spacing, CRLF, blank lines, exponents, nan, site energies, charges,
    grades, direct coordinates, non-periodic cells, repeated features, lossless floats."""
    text = big_cfg.read_text()
    rng = np.random.default_rng(1)
    variants = {
        "crlf": text.replace("\n", "\r\n"),
        "cr": text.replace("\n", "\r"),
        "tabs": text.replace("    ", "\t"),
        "ragged": "\n".join(" ".join(line.split()) if line[:5].strip().isdigit() else line
                            for line in text.split("\n")),
        "blank lines": text.replace(" Energy", "\n\n Energy").replace("BEGIN_CFG\n", "\nBEGIN_CFG\n\n"),
        "blank line in a table": text.replace("\n           100 ", "\n\n           100 ", 1),
        "exponent": text.replace(" 0.0", " 0.0e+00", 3),
        "plus sign": text.replace("   0.", "  +0.", 5),
        "no trailing newline": text.rstrip("\n"),
        "Atomic_data and SuperCell": text.replace("AtomData:", "Atomic_data:").replace("Supercell", "SuperCell"),
        "PlusStress reordered": text.replace("PlusStress:  xx          yy", "PlusStress:  yy          xx"),
        "long numbers": text.replace("-0.000000", "-0.00000000000000000001", 1),
        "leading zeros": text.replace("     0.", "    00.", 4),
        "integer coordinates": text.replace("     0.000000", "            0", 2),
    }
    # a two-row supercell (slab) and one non-periodic configuration
    first = text.split("END_CFG")[0] + "END_CFG\n"
    rows = first.split(" Supercell\n")[1].split("\n")[:3]
    variants["two-row Supercell"] = first.replace("\n".join(rows) + "\n", "\n".join(rows[:2]) + "\n")
    variants["non-periodic"] = first.replace(" Supercell\n" + "\n".join(rows) + "\n", "")
    for name, body in variants.items():
        assert body != text, name
        path = tmp_path / f"{name.replace(' ', '_')}.cfg"
        path.write_bytes(body.encode())
        assert_same_outcome(path, SPECIES)
        assert_same_outcome(path)
    # every optional column, direct coordinates, lossless floats, a multi-line feature
    images = nacl_images(2, 3, seed=2)
    for a in images:
        n = len(a)
        a.calc.results["energies"] = rng.normal(size=n) - 3.3
        a.arrays["charges"] = rng.normal(size=n)
        a.arrays["nbh_grades"] = rng.random(n) * 3
        a.info["note"] = "two\nlines"
    write_cfg(tmp_path / "all.cfg", images, SPECIES)
    write_cfg(tmp_path / "lossless.cfg", images, SPECIES, lossless=True)
    for name in ("all.cfg", "lossless.cfg"):
        assert_same_outcome(tmp_path / name, SPECIES)
    direct = (tmp_path / "all.cfg").read_text().replace("cartes_x      cartes_y      cartes_z",
                                                        "direct_x      direct_y      direct_z")
    (tmp_path / "direct.cfg").write_text(direct)
    assert_same_outcome(tmp_path / "direct.cfg", SPECIES)


def test_read_cfg_text_same_as_reference(big_cfg):
    text = big_cfg.read_text()
    assert_same_atoms(read_cfg_text(text, SPECIES), read_cfg_text_reference(text, SPECIES))
    odd = text.replace(" Energy", "\f Energy", 1)  # str.splitlines() breaks lines at form feeds
    assert outcome(read_cfg_text, odd)[1:] == outcome(read_cfg_text_reference, odd)[1:]


# --------------------------------------------------------------------------- malformed files


MALFORMED = [
    ("nan in a table", None, None, None),
    ("inf energy", None, None, None),
    ("letter in a number", None, None, None),
    ("two points", None, None, None),
    ("sign inside a number", None, None, None),
    ("double sign", None, None, None),
    ("missing column", None, None, None),
    ("extra column", None, None, None),
    ("type beyond species", "\n            10    1 ", "\n            10    7 ", 1),
    ("negative type", "\n            10    1 ", "\n            10   -1 ", 1),
    ("non-integer type", "\n            10    1 ", "\n            10  1.5 ", 1),
    ("Size not a number", " Size\n    512", " Size\n    51x", 1),
    ("negative Size", " Size\n    512", " Size\n    -12", 1),
    ("Size larger than the table", " Size\n    512", " Size\n    513", 1),
    ("Size smaller than the table", " Size\n    512", " Size\n    511", 1),
    ("unknown block", " Energy", " Energie", 1),
    ("bad PlusStress header", "PlusStress:  xx", "PlusStress:  xy", 1),
    ("short PlusStress", None, None, None),
    ("Supercell row of 2", None, None, None),
    ("non-finite cell", None, None, None),
    ("no type column", "id type", "id kind", 1),
    ("duplicate column", "cartes_z", "cartes_y", 1),
    ("AtomData before Size", None, None, None),
    ("no END_CFG", None, None, None),
    ("garbage between configurations", "END_CFG\n\nBEGIN_CFG", "END_CFG\n\ngarbage\nBEGIN_CFG", 1),
    ("BOM", None, None, None),
    ("NUL byte in a table", None, None, None),
    ("unicode digit", None, None, None),
    ("Feature without key", None, None, None),
    ("direct without a full cell", None, None, None),
    ("truncated in a table", None, None, None),
]


_IN_A_NUMBER = {
    "nan in a table": lambda x: "nan".rjust(len(x)),
    "letter in a number": lambda x: x[:-3] + "x" + x[-2:],
    "two points": lambda x: x[:-3] + "." + x[-2:],
    "sign inside a number": lambda x: x[:-3] + "-" + x[-2:],
    "double sign": lambda x: "--" + x.lstrip("-")[1:],
    "NUL byte in a table": lambda x: x[:-3] + "\x00" + x[-2:],
    "unicode digit": lambda x: x[:-3] + "\u0663" + x[-2:],
}


def _malformed_text(name: str, text: str) -> str:
    for case, old, new, count in MALFORMED:
        if case == name and old is not None:
            assert old in text, name
            return text.replace(old, new, count)
    first, rest = text.split("END_CFG\n", 1)
    row_300 = "\n           300 "
    if name in _IN_A_NUMBER:  # damage the last number of atom 300's row, keeping its width
        k = text.index(row_300) + 1
        end = text.index("\n", k)
        number = text[text.rindex(" ", k, end) + 1:end]
        return text[:end - len(number)] + _IN_A_NUMBER[name](number) + text[end:]
    if name == "inf energy":
        head, tail = first.split(" Energy\n")
        return head + " Energy\n    inf\n" + tail.split("\n", 1)[1] + "END_CFG\n" + rest
    if name in ("missing column", "extra column"):
        lines = text.split("\n")
        k = next(i for i, line in enumerate(lines) if line.startswith("           300 "))
        lines[k] = lines[k].rsplit(" ", 1)[0] if name == "missing column" else lines[k] + "    1.000000"
        return "\n".join(lines)
    if name == "short PlusStress":
        head, tail = first.split(" PlusStress:")
        header, values, after = tail.split("\n", 2)
        return head + " PlusStress:" + header + "\n" + values.rsplit(" ", 1)[0] + "\n" + after + "END_CFG\n" + rest
    if name == "Supercell row of 2":
        head, tail = first.split(" Supercell\n")
        row, after = tail.split("\n", 1)
        return head + " Supercell\n" + row.rsplit(" ", 1)[0] + "\n" + after + "END_CFG\n" + rest
    if name == "non-finite cell":
        head, tail = first.split(" Supercell\n")
        return head + " Supercell\n    nan " + tail.split(None, 1)[1] + "END_CFG\n" + rest
    if name == "AtomData before Size":
        head, tail = first.split(" Size\n")
        size, after = tail.split("\n", 1)
        return head + after.replace(" Energy", " Size\n" + size + "\n Energy") + "END_CFG\n" + rest
    if name == "no END_CFG":
        return first
    if name == "BOM":
        return "\ufeff" + text
    if name == "Feature without key":
        return text.replace(" Feature   EFS_by\ttest", " Feature   ", 1)
    if name == "direct without a full cell":
        head, tail = first.split(" Supercell\n")
        after = tail.split("\n", 3)[3]
        return head + after.replace("cartes_x      cartes_y      cartes_z", "direct_x direct_y direct_z") + "END_CFG\n"
    if name == "truncated in a table":
        return text[: text.index("           300 ")]
    raise AssertionError(name)


@pytest.mark.parametrize("name", [case for case, *_ in MALFORMED])
@pytest.mark.parametrize("path_kind", ["fixed-width", "split"])
def test_malformed_same_error_as_reference(big_cfg, tmp_path, monkeypatch, name, path_kind):
    if path_kind == "split":  # every table through the split-and-convert path
        monkeypatch.setattr(cfg_fast, "FIXED_WIDTH_MIN_VALUES", 10**12)
    text = big_cfg.read_text()
    bad = _malformed_text(name, text)
    assert bad != text
    path = tmp_path / "bad.cfg"
    path.write_bytes(bad.encode("utf-8"))
    result = assert_same_outcome(path, SPECIES)
    if name != "unicode digit":  # float() reads Arabic-Indic digits, so both readers accept it
        assert result[0] == "error", name
        assert result[1] is InputFileError, result
        assert str(path) in result[2]


def test_random_damage_same_outcome(big_cfg, tmp_path):
    """Single-byte damage anywhere (digits, blanks, newlines, letters): the same outcome."""
    data = bytearray(big_cfg.read_bytes())
    rng = np.random.default_rng(7)
    path = tmp_path / "damaged.cfg"
    errors = 0
    for _ in range(150):
        damaged = bytearray(data)
        for _ in range(int(rng.integers(1, 3))):
            damaged[int(rng.integers(len(damaged)))] = int(rng.choice(list(b"0123456789 .-+\nxe\t")))
        path.write_bytes(bytes(damaged))
        errors += assert_same_outcome(path, SPECIES)[0] == "error"
    assert errors > 10


def test_unreadable_and_undecodable_files(tmp_path):
    missing = tmp_path / "missing.cfg"
    assert outcome(read_cfg, missing)[1:] == outcome(read_cfg_reference, missing)[1:]
    assert outcome(read_cfg, tmp_path)[1:] == outcome(read_cfg_reference, tmp_path)[1:]  # a folder
    bad = tmp_path / "latin1.cfg"
    bad.write_bytes(b"BEGIN_CFG\n Size\n    1\n Feature   name\tcaf\xe9\nEND_CFG\n")
    fast, ref = outcome(read_cfg, bad), outcome(read_cfg_reference, bad)
    assert fast[0] == ref[0] == "error" and fast[1] is ref[1] is UnicodeDecodeError
    empty = tmp_path / "empty.cfg"
    empty.write_text("\n\n")
    assert read_cfg(empty) == read_cfg_reference(empty) == []


# --------------------------------------------------------------------------- writing


def test_rows_formatting_same_as_reference():
    rng = np.random.default_rng(5)
    n = 3000
    x = rng.normal(size=(n, 3)) * 10.0 ** rng.uniform(-8, 3, size=(n, 3))
    edge = [0.0, -0.0, -1e-9, 5e-7, -5e-7, 0.0078125, 3 / 128, -5 / 128, 9.9999995, 0.9999995, 1234.5678905,
            2.5e-6, 0.5, 1.5, -999.9999996, 123456.1234565]
    x.ravel()[: len(edge)] = edge
    x[::13] = np.round(x[::13], 7)
    x[::17] = rng.integers(-10**7, 10**7, size=x[::17].shape) / 256
    types = rng.integers(0, 4, size=n)
    site = rng.normal(size=n) * 10.0 ** rng.uniform(-3, 2, size=n)
    site[::11] = rng.integers(-10**6, 10**6, size=site[::11].shape) / 2**20
    charges, grades = rng.normal(size=n), rng.random(n) * 10.0 ** rng.uniform(0, 4, size=n)
    for args in [(None, None, None, None), (site, x[::-1], charges, grades), (None, -x, None, grades)]:
        for lossless in (False, True):
            assert _atom_rows(types, x, *args, lossless) == _atom_rows_reference(types, x, *args, lossless)
    # values too wide for their columns, and non-finite ones, take the %-template
    wide = x.copy()
    wide[5, 1] = 1.5e7
    wide[7, 0] = -123456789.25
    odd_site = site.copy()
    odd_site[3] = np.nan
    assert cfg_fast.format_rows([("  ", wide[:, 1], 13, 6)]) is None
    assert _atom_rows(types, wide, odd_site, None, None, None, False) == \
        _atom_rows_reference(types, wide, odd_site, None, None, None, False)


def test_write_uses_numpy_rows_and_reads_back(tmp_path, monkeypatch):
    images = nacl_images(2, 3)
    calls = []
    rows = cfg_fast.format_rows
    monkeypatch.setattr(cfg_fast, "format_rows", lambda fields: calls.append(1) or rows(fields))
    write_cfg(tmp_path / "a.cfg", images, SPECIES)
    assert len(calls) == 2
    back = read_cfg(tmp_path / "a.cfg", SPECIES)
    for a, b in zip(images, back):
        np.testing.assert_allclose(b.positions, a.positions, atol=5e-7)
        np.testing.assert_allclose(b.get_forces(), a.get_forces(), atol=5e-7)
    write_cfg(tmp_path / "b.cfg", back, SPECIES)
    assert (tmp_path / "b.cfg").read_bytes() == (tmp_path / "a.cfg").read_bytes()
