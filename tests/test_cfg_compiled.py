"""The compiled ``mtpkit evaluate`` path and its .cfg reader against the Python ones.

``mtpkit evaluate`` runs end to end in C++ (``mtpkit._core.evaluate_cfg_file``) unless
``--report`` is given or the inputs need the Python readers. It must write the same
bytes, print the same lines and raise the same errors as the Python path
(:func:`mtpkit.commands.evaluate.run_reference`), and its reader
(``mtpkit._core.parse_cfg_file``) must read what
:func:`mtpkit.potentials.cfg.read_cfg_reference` reads, bit for bit, and word its
errors the same (file, line, field).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
from dataclasses import replace

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from test_cfg_fast import MALFORMED, _malformed_text, nacl_images, outcome

from mtpkit import _core
from mtpkit.cli import main
from mtpkit.commands import evaluate
from mtpkit.errors import InputFileError, UserError
from mtpkit.potentials import core
from mtpkit.potentials.cfg import read_cfg, read_cfg_reference, write_cfg
from mtpkit.potentials.labels import Predictions, extract_labels
from mtpkit.potentials.metrics import error_metrics
from mtpkit.potentials.metrics_text import metrics_from_sums
from mtpkit.potentials.mtp_io import MVSSection, read_mtp, write_mtp
from mtpkit.potentials.templates import make_template

SPECIES = ["Na", "Cl"]


def make_potential(path, level: int = 6, species_count: int = 2):
    """A trained-looking MTP with seeded random coefficients (min_dist 2 Å, cutoff 5 Å)."""
    t = make_template(level, species_count)
    rng = np.random.default_rng(level)
    s, r, b = species_count, t.radial_funcs_count, t.radial_basis_size
    mtp = replace(t, min_dist=2.0, max_dist=5.0, radial_coeffs=rng.uniform(-0.02, 0.02, (s, s, r, b)),
                  species_coeffs=rng.normal(size=s), moment_coeffs=rng.normal(size=t.alpha_scalar_moments) * 0.05,
                  trained=True)
    write_mtp(path, mtp)
    return read_mtp(path)


def labelled(atoms: Atoms, rng, stress: bool = True) -> Atoms:
    n = len(atoms)
    results = {"energy": -3.3 * n + rng.normal(), "forces": rng.normal(scale=0.1, size=(n, 3))}
    if stress:
        results["stress"] = rng.normal(size=6) * 1e-3
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def cluster(rng) -> Atoms:
    from ase.build import bulk

    a = bulk("NaCl", "rocksalt", a=5.64, cubic=True) * (2, 2, 1)
    a.pbc = False
    a.cell = np.zeros((3, 3))
    a.positions += rng.normal(scale=0.05, size=a.positions.shape)
    return labelled(a, rng, stress=False)


DIRECT = """BEGIN_CFG\r
 Size\r
    4\r
 SuperCell\r
     5.600000  0.100000  0.000000\r
    -0.200000  5.700000  0.050000\r
     0.000000  0.300000  5.650000\r
\r
 Atomic_data:  type id direct_z direct_y direct_x fz fy fx\r
   0  1  0.01  0.02  0.03   0.1  -0.2   0.3\r
   1  2  0.51  0.02  0.03   1_0.5   +.25  -1e-2\r
\r
   0  3  0.01  0.52  0.53   0.0  -0.0   5.\r
   1  4  0.51  0.52  0.53   0.5   0.25  -0.125\r
 Energy\r
   -12.5 extra words are ignored\r
 PlusStress  xy xz yz zz yy xx\r
   0.1 0.2 0.3 4 5 6\r
 Feature   EFS_by\tinput\r
END_CFG\r
"""

FEATURES = """BEGIN_CFG
 Size
    3
 Supercell
    6.0 0.0 0.0
    0.0 6.0 0.0
    0.0 0.0 6.0
 AtomData:  id type cartes_x cartes_y cartes_z fx fy fz charge nbh_grades site_en ghost magmom
    1 0 0.0 0.0 0.0  0.1 0.2 0.3  0.5 1.25 -1.0 true 0.1
    2 1 2.9 0.1 0.0  0.0 0.0 0.0  -0.5 2.5 -2.0 False 0.2
    3 0 0.0 3.0 3.1  0.0 0.0 -0.1  0.25 0.123456789 -3.0 TRUE 0.3
 Energy
    -10.0
 Feature   count\t0012
 Feature   fraction\t0.25
 Feature   small\t1.2345678e-7
 Feature   big 1e20
 Feature   words\thello world
 Feature   multi\tfirst line
 Feature   multi\tsecond line
 Feature   EFS_by\tVASP
 Feature   not_finite\tinf
 Feature   padded key\tvalue
 Feature   underscored\t1_000
END_CFG

"""

SLAB_AND_UNLABELLED = """BEGIN_CFG
 Size
    2
 Supercell
    5.0 0.0 0.0
    0.0 5.5 0.0
 AtomData:  id type cartes_x cartes_y cartes_z fx fy fz
    1 0 0.0 0.0 0.0  0.1 0.0 0.0
    2 1 2.6 0.1 0.2  -0.1 0.0 0.0
 Energy
    -5.0
 PlusStress:  xx yy zz yz xz xy
    1 2 3 4 5 6
END_CFG

BEGIN_CFG
 Size
    2
 AtomData:  id type cartes_x cartes_y cartes_z
    1 0 0.0 0.0 0.0
    2 1 2.6 0.1 0.2
 Energy
    -5.0
END_CFG

BEGIN_CFG
 Size
    2
 AtomData:  id type cartes_x cartes_y cartes_z fx fy fz
    1 1 0.0 0.0 0.0  0.1 0.0 0.0
    2 0 0.0 0.0 2.7  -0.1 0.0 0.0
END_CFG
"""

SHORT = """BEGIN_CFG
 Size
    3
 AtomData:  id type cartes_x cartes_y cartes_z fx fy fz
    1 0 0.0 0.0 0.0  0 0 0
    2 1 1.5 0.0 0.0  0 0 0
    3 1 0.0 2.8 0.0  0 0 0
 Energy
    -1.0
END_CFG
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A potential and .cfg files of every kind the command meets."""
    d = tmp_path_factory.mktemp("compiled")
    make_potential(d / "pot.mtp")
    rng = np.random.default_rng(3)
    write_cfg(d / "periodic.cfg", nacl_images(3, 2, seed=1), SPECIES)
    no_stress = [labelled(a, rng, stress=False) for a in nacl_images(2, 2, seed=2)]
    write_cfg(d / "no_stress.cfg", no_stress, SPECIES)
    write_cfg(d / "cluster.cfg", [cluster(rng), cluster(rng)], SPECIES)
    (d / "direct.cfg").write_bytes(DIRECT.encode())
    (d / "features.cfg").write_text(FEATURES)
    (d / "mixed.cfg").write_text(SLAB_AND_UNLABELLED)
    (d / "unlabelled.cfg").write_text(SLAB_AND_UNLABELLED.split("END_CFG")[1].lstrip() + "END_CFG\n")
    (d / "short.cfg").write_text(SHORT + "\n" + SHORT)
    return d


def run_path(run, pot, cfg, out, species=None):
    """(status, error, stdout, stderr, output bytes) of one path of the command."""
    if out.exists():
        out.unlink()
    args = argparse.Namespace(potential=str(pot), configurations=str(cfg), output=str(out), species=species,
                              report=None)
    stdout, stderr = io.StringIO(), io.StringIO()
    status, error = None, None
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            status = run(args)
        except UserError as exc:
            status, error = "error", (type(exc), str(exc))
    return status, error, stdout.getvalue(), stderr.getvalue(), out.read_bytes() if out.exists() else None


def assert_paths_agree(pot, cfg, out, species=None):
    compiled = run_path(evaluate.run_compiled, pot, cfg, out, species)
    assert compiled[0] is not None, "the compiled path left this input to the Python path"
    reference = run_path(evaluate.run_reference, pot, cfg, out, species)
    assert compiled[:4] == reference[:4]
    assert compiled[4] == reference[4], "output files differ"
    return compiled


# --------------------------------------------------------------------------- evaluate: both paths


@pytest.mark.parametrize("name", ["periodic", "no_stress", "cluster", "direct", "features", "mixed",
                                  "unlabelled", "short"])
@pytest.mark.parametrize("species", [None, "Na,Cl"])
def test_compiled_evaluate_same_as_python(files, tmp_path, name, species):
    status, error, stdout, stderr, data = assert_paths_agree(files / "pot.mtp", files / f"{name}.cfg",
                                                             tmp_path / "out.cfg", species)
    assert status == 0 and error is None and data
    assert stdout.startswith("wrote ")
    expected = {"periodic": "3 with stress", "no_stress": "0 with stress", "cluster": "0 with stress",
                "direct": "1 with stress", "features": "0 with stress",
                "mixed": "2 configurations without energy/force labels are left out",
                "unlabelled": "has no energy/force labels", "short": "0 with stress"}[name]
    assert expected in stdout
    assert ("warning: 2 of 2 configurations have atoms closer than min_dist" in stderr) == (name == "short")


def test_output_content(files, tmp_path):
    """What the output holds: forces, energy, PlusStress only for 3D cells, input
    features and columns that go back, EFS_by mtpkit; no site energies."""
    out = tmp_path / "out.cfg"
    assert_paths_agree(files / "pot.mtp", files / "features.cfg", out)
    text = out.read_text()
    assert "charge       nbh_grades" in text and "site_en" not in text and "magmom" not in text
    assert " Feature   EFS_by\tmtpkit\n" in text and "VASP" not in text
    assert " Feature   count\t12\n" in text and " Feature   fraction\t0.250000\n" in text
    assert " Feature   small\t1.2345678e-07\n" in text and " Feature   big\t100000000000000000000.000000\n" in text
    assert " Feature   multi\tfirst line\n Feature   multi\tsecond line\n" in text
    assert " Feature   not_finite\tinf\n" in text and "padded" not in text
    assert_paths_agree(files / "pot.mtp", files / "mixed.cfg", out)
    first = out.read_text().split("END_CFG")[0]
    cell_rows = first.split(" Supercell\n")[1].split(" AtomData")[0].splitlines()
    assert "PlusStress" not in first and len(cell_rows) == 3  # a 2D cell: all three rows written


def test_metrics_equal_the_numpy_ones_to_the_bit(files, tmp_path):
    cfg = files / "periodic.cfg"
    model, reason = _core.load_potential_for_evaluation(str(files / "pot.mtp"))
    assert reason == ""
    report = _core.evaluate_cfg_file(model, str(cfg), str(tmp_path / "out.cfg"), 2)
    images = read_cfg(cfg, SPECIES)
    computed = evaluate.evaluate_images(read_mtp(files / "pot.mtp"), images,
                                        [a.arrays["mtp_type"] for a in images], cfg)
    pred = Predictions(
        energy=np.array([c.calc.results["energy"] for c in computed]),
        forces=[c.calc.results["forces"] for c in computed],
        virial=[-c.get_volume() * evaluate._full(c.calc.results["stress"]) for c in computed])
    expected = error_metrics(pred, extract_labels(images, cfg))
    got = metrics_from_sums(report)
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        assert value == got[key] or (math.isnan(value) and math.isnan(got[key])), key


def test_energy_offset_is_reported_apart_from_the_centered_rmse(files):
    """A constant per-atom shift of every predicted energy (two codes' energy zeros) moves the mean
    error by exactly that shift and leaves the RMSE about the mean as it was."""
    cfg = files / "periodic.cfg"
    images = read_cfg(cfg, SPECIES)
    computed = evaluate.evaluate_images(read_mtp(files / "pot.mtp"), images,
                                        [a.arrays["mtp_type"] for a in images], cfg)
    natoms = np.array([len(c) for c in computed])
    labels = extract_labels(images, cfg)

    def metrics(shift_ev_per_atom: float) -> dict:
        return error_metrics(Predictions(
            energy=np.array([c.calc.results["energy"] for c in computed]) + shift_ev_per_atom * natoms,
            forces=[c.calc.results["forces"] for c in computed],
            virial=[-c.get_volume() * evaluate._full(c.calc.results["stress"]) for c in computed]), labels)

    base, shifted = metrics(0.0), metrics(0.25)
    assert shifted["energy_mean_error_mev_per_atom"] == pytest.approx(base["energy_mean_error_mev_per_atom"] + 250.0)
    assert shifted["energy_rmse_centered_mev_per_atom"] == pytest.approx(base["energy_rmse_centered_mev_per_atom"],
                                                                         abs=1e-6)
    for m in (base, shifted):  # RMSE² = mean error² + centered RMSE²
        assert m["energy_rmse_mev_per_atom"] ** 2 == pytest.approx(
            m["energy_mean_error_mev_per_atom"] ** 2 + m["energy_rmse_centered_mev_per_atom"] ** 2, rel=1e-9)


def test_output_does_not_depend_on_threads(files, tmp_path):
    before = core.max_threads()
    outputs = []
    try:
        for threads in (1, 2):
            core.set_num_threads(threads)
            out = tmp_path / f"out{threads}.cfg"
            assert run_path(evaluate.run_compiled, files / "pot.mtp", files / "periodic.cfg", out)[0] == 0
            outputs.append(out.read_bytes())
    finally:
        core.set_num_threads(before)
    assert outputs[0] == outputs[1]


def test_user_errors_same_as_python(files, tmp_path):
    pot, out = files / "pot.mtp", tmp_path / "out.cfg"
    three = tmp_path / "three.mtp"
    make_potential(three, species_count=3)
    wide = tmp_path / "wide.cfg"
    wide.write_text(SHORT.replace("    3 1 0.0 2.8", "    3 2 0.0 2.8"))
    empty = tmp_path / "empty.cfg"  # unlabelled, labelled, labelled without atoms
    no_atoms = "BEGIN_CFG\n Size\n 0\n AtomData: id type cartes_x cartes_y cartes_z fx fy fz\n Energy\n 0.0\nEND_CFG\n"
    empty.write_text(SHORT.replace(" Energy\n    -1.0\n", "") + SHORT + no_atoms)
    for cfg, species, potential, text in [
        (wide, None, pot, "type 2 is outside 0..1 (the potential has species_count = 2)"),
        (files / "periodic.cfg", "Na,Cl,K", pot, "--species gives 3 symbols but"),
        (files / "periodic.cfg", "Na,Na", three, "species ['Na', 'Na'] contains duplicates"),
        (files / "periodic.cfg", "Na,Xx", pot, "--species: unknown chemical symbol 'Xx'"),
        (files / "periodic.cfg", " , ", pot, "--species: give comma-separated"),
        (wide, "Na,Cl", pot, "field 'type': type 2 of atom 3 is beyond the 2 species given"),
        (tmp_path / "missing.cfg", None, pot, "missing.cfg: cannot read: No such file or directory"),
        (empty, None, pot, "empty.cfg, configuration 2 (index 1): configuration has no atoms"),
    ]:
        compiled = run_path(evaluate.run_compiled, potential, cfg, out, species)
        reference = run_path(evaluate.run_reference, potential, cfg, out, species)
        assert compiled == reference
        assert compiled[0] == "error" and text in compiled[1][1], compiled


def test_error_in_the_third_configuration_writes_nothing(files, tmp_path):
    """Evaluation errors come before writing; writes are atomic (temporary file, rename)."""
    pot = files / "pot.mtp"
    configs = (files / "periodic.cfg").read_text().split("END_CFG\n")
    lines = configs[2].split("\n")
    k = next(i for i, line in enumerate(lines) if line.startswith("             2 "))
    lines[k] = lines[k - 1][:13] + "2" + lines[k - 1][14:]  # atom 2 on top of atom 1
    malformed = configs[2].replace("\n             5 ", "\n             x ", 1)
    for name, third, error in [
        ("coincide", "\n".join(lines), r"configuration 3 \(index 2\): atoms \d and \d coincide \(distance 0\)"),
        ("malformed", malformed, "malformed.cfg, line 1[0-9]{2}, field 'id': malformed number 'x'"),
    ]:
        cfg = tmp_path / f"{name}.cfg"
        cfg.write_text("END_CFG\n".join([*configs[:2], third, *configs[3:]]))
        out_dir = tmp_path / name
        out_dir.mkdir()
        out = out_dir / "out.cfg"
        assert main(["evaluate", str(pot), str(cfg), "--output", str(out)]) == 2
        assert os.listdir(out_dir) == []
        out.write_text("old")  # an existing output is left as it was
        args = argparse.Namespace(potential=str(pot), configurations=str(cfg), output=str(out), species=None,
                                  report=None)
        with pytest.raises(UserError, match=error):
            evaluate.run_compiled(args)
        assert out.read_text() == "old" and os.listdir(out_dir) == ["out.cfg"]
    # the rename fails (the output is a folder): the temporary file goes
    target = tmp_path / "folder.cfg"
    target.mkdir()
    with pytest.raises(OSError):
        evaluate.run_compiled(argparse.Namespace(potential=str(pot), configurations=str(files / "periodic.cfg"),
                                                 output=str(target), species=None, report=None))
    assert sorted(os.listdir(tmp_path)) == sorted(["coincide", "coincide.cfg", "folder.cfg", "malformed",
                                                   "malformed.cfg"])


def test_cli_runs_the_compiled_path(files, tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(evaluate, "run_reference", lambda args: calls.append(args) or 0)
    out = tmp_path / "out.cfg"
    assert main(["evaluate", str(files / "pot.mtp"), str(files / "periodic.cfg"), "-o", str(out),
                 "--species", "Na,Cl"]) == 0
    assert calls == [] and "errors against" in capsys.readouterr().out
    assert main(["evaluate", str(files / "pot.mtp"), str(files / "periodic.cfg"), "-o", str(out),
                 "--report", str(tmp_path / "rep")]) == 0
    assert len(calls) == 1  # --report draws plots: the Python path


def test_non_ascii_cfg_goes_the_python_way(files, tmp_path, capsys):
    cfg = tmp_path / "accent.cfg"
    cfg.write_text(SHORT.replace("END_CFG", " Feature   place\tZ\u00fcrich\nEND_CFG"), encoding="utf-8")
    out = tmp_path / "out.cfg"
    assert run_path(evaluate.run_compiled, files / "pot.mtp", cfg, out)[0] is None
    assert not out.exists()
    assert main(["evaluate", str(files / "pot.mtp"), str(cfg), "-o", str(out)]) == 0
    assert "Feature   place\tZ\u00fcrich" in out.read_text(encoding="utf-8")
    capsys.readouterr()


# --------------------------------------------------------------------------- potential files


def test_potential_files_the_python_reader_must_read(files, tmp_path, capsys):
    pot = files / "pot.mtp"
    text = pot.read_text()
    model, reason = _core.load_potential_for_evaluation(str(pot))
    assert reason == "" and model.species_count == 2 and model.min_dist == 2.0
    # an .almtp with MLIP-3's active-set section reads the same way
    mtp = read_mtp(pot)
    n = mtp.n_params
    mtp.active_set = MVSSection(1.0, 0.01, 0.0, 0.0, 2, np.eye(n), np.eye(n), np.full((n, 2), -1), "")
    write_mtp(tmp_path / "pot.almtp", mtp)
    model, reason = _core.load_potential_for_evaluation(str(tmp_path / "pot.almtp"))
    assert reason == "", reason
    template = tmp_path / "template.mtp"
    write_mtp(template, make_template(6, 2))
    cases = {
        "unknown key": text.replace("species_count", "colour = red\nspecies_count"),
        "duplicate key": text.replace("species_count = 2", "species_count = 2\nspecies_count = 2"),
        "version": text.replace("version = 1.1.0", "version = 1.2.0"),
        "count": text.replace("alpha_scalar_moments = ", "alpha_scalar_moments = 1"),
        "underscore": text.replace("max_dist = ", "max_dist = 0_"),
        "braces": text.replace("species_coeffs = {", "species_coeffs = {{"),
        "range": text.replace("min_dist = 2", "min_dist = 7"),
    }
    for name, bad in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.mtp"
        path.write_text(bad)
        assert _core.load_potential_for_evaluation(str(path))[0] is None, name
    assert _core.load_potential_for_evaluation(str(template))[0] is None
    assert _core.load_potential_for_evaluation(str(tmp_path / "none.mtp"))[0] is None
    # evaluate hands them to the Python reader: its result, warning or error
    out = tmp_path / "out.cfg"
    args = ["evaluate", str(tmp_path / "unknown_key.mtp"), str(files / "periodic.cfg"), "-o", str(out)]
    with pytest.warns(UserWarning, match="ignoring unknown keys colour"):
        assert main(args) == 0
    assert "errors against" in capsys.readouterr().out
    assert main(["evaluate", str(template), str(files / "periodic.cfg"), "-o", str(out)]) == 2
    assert "an untrained template has no coefficients to evaluate" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "version.mtp"), str(files / "periodic.cfg"), "-o", str(out)]) == 2
    assert "field 'version': unsupported version '1.2.0'" in capsys.readouterr().err


def test_species_symbols_are_ase_ones():
    from ase.data import chemical_symbols

    from mtpkit.commands._species import CHEMICAL_SYMBOLS

    assert list(CHEMICAL_SYMBOLS) == chemical_symbols


# --------------------------------------------------------------------------- the compiled reader


def compiled_outcome(path, species_count: int = -1):
    try:
        return ("ok", _core.parse_cfg_file(str(path), species_count))
    except Exception as exc:  # noqa: BLE001 - the point is to compare whatever is raised
        return ("error", type(exc), str(exc), getattr(exc, "line", None), getattr(exc, "field", None))


KNOWN = {"id", "type", "site_en", "cartes_x", "cartes_y", "cartes_z", "direct_x", "direct_y", "direct_z",
         "fx", "fy", "fz"}


def assert_same_configurations(configs: list[dict], images: list[Atoms]) -> None:
    """The compiled reader's configurations hold the reference's Atoms, bit for bit."""
    assert len(configs) == len(images)
    for c, a in zip(configs, images):
        assert np.array_equal(c["positions"], a.positions)
        assert np.array_equal(np.signbit(c["positions"]), np.signbit(a.positions))
        assert np.array_equal(c["cell"], a.cell.array) and c["pbc"] == tuple(a.pbc)
        assert np.array_equal(c["types"], a.arrays["mtp_type"])
        res = dict(a.calc.results) if a.calc is not None else {}
        assert c["energy"] == res.pop("energy", None)
        res.pop("free_energy", None)
        cols = c["columns"]
        if {"fx", "fy", "fz"} <= cols.keys():
            assert np.array_equal(np.column_stack([cols[k] for k in ("fx", "fy", "fz")]), res.pop("forces"))
        if "site_en" in cols:
            assert np.array_equal(cols["site_en"], res.pop("energies"))
        if c["virial"] is not None:
            assert np.array_equal(c["virial"], res.pop("virial"))
        assert c["has_stress"] == ("stress" in res)
        if c["has_stress"]:
            assert np.array_equal(-np.array(c["virial"]) / c["volume"], res.pop("stress"))
        assert res == {}
        assert c["features"] == a.info
        assert [type(v) for v in c["features"].values()] == [type(v) for v in a.info.values()]
        extra = {("charges" if k == "charge" else k): v for k, v in cols.items() if k not in KNOWN}
        assert sorted(extra) == sorted(set(a.arrays) - {"numbers", "positions", "mtp_type"})
        for key, value in extra.items():
            assert np.array_equal(value, a.arrays[key]), key


def assert_same_reading(path, species=None):
    """Both readers give the same configurations, or the same exception and message."""
    compiled = compiled_outcome(path, -1 if species is None else len(species))
    reference = outcome(read_cfg_reference, path, species)
    assert compiled[0] == reference[0], (compiled, reference)
    if compiled[0] == "ok":
        assert_same_configurations(compiled[1], reference[1])
    else:
        assert compiled[1:] == reference[1:]
    return compiled


@pytest.mark.parametrize("name", ["periodic", "no_stress", "cluster", "direct", "features", "mixed", "short"])
def test_reader_same_as_reference(files, name):
    for species in (None, SPECIES, ["Cl"]):
        assert_same_reading(files / f"{name}.cfg", species)


@pytest.mark.parametrize("name", [case for case, *_ in MALFORMED])
def test_reader_malformed_same_error_as_reference(tmp_path, name):
    path = tmp_path / "big.cfg"
    write_cfg(path, nacl_images(), SPECIES)
    bad = _malformed_text(name, path.read_text())
    path.write_bytes(bad.encode("utf-8"))
    if not bad.isascii():  # the compiled reader leaves non-ASCII text to the Python reader
        assert compiled_outcome(path, 2)[1] is _core.NeedsReference
        return
    result = assert_same_reading(path, SPECIES)
    assert result[0] == "error" and result[1] is InputFileError, result
    assert str(path) in result[2]


SMALL = """BEGIN_CFG
 Size
    2
 Supercell
    5.0 0.0 0.0
    0.0 5.0 0.0
    0.0 0.0 5.0
 AtomData:  id type cartes_x cartes_y cartes_z fx fy fz
    1 0 0.0 0.0 0.0  0.1 0.0 0.0
    2 1 2.5 0.0 0.0  -0.1 0.0 0.0
 Energy
    -5.0
 PlusStress:  xx yy zz yz xz xy
    1 2 3 4 5 6
 Feature   tag\tvalue
END_CFG
"""

SMALL_DAMAGE = [
    ("quote in a number", "2.5 0.0 0.0", "2'5 0.0 0.0"),
    ("quotes in a number", "2.5 0.0 0.0", "2'\"5 0.0 0.0"),
    ("backslash and tab", "-5.0", "-5\\0\x01"),
    ("underscores and signs", "2.5 0.0 0.0", "2_5.0_0 +.0 0.e0"),
    ("bad underscore", "2.5 0.0 0.0", "2__5 0.0 0.0"),
    ("nan energy", "-5.0", "NaN"),
    ("infinite force", "-0.1 0.0", "-Infinity 0.0"),
    ("hex", "-0.1 0.0", "0x1 0.0"),
    ("bad number then bad row", "    2 1 2.5 0.0 0.0  -0.1 0.0 0.0", "    2 1 2.5 0.0 0.0  -0.1 x 0.0\n    3"),
    ("Size too large", " Size\n    2", " Size\n    3"),
    ("Size huge", " Size\n    2", " Size\n    99999999999999999999999"),
    ("Size negative huge", " Size\n    2", " Size\n    -99999999999999999999999"),
    ("Size with sign", " Size\n    2", " Size\n    +0_2"),
    ("Size float", " Size\n    2", " Size\n    2.0"),
    ("no Size", " Size\n    2\n", ""),
    ("no AtomData", " AtomData:  id type cartes_x cartes_y cartes_z fx fy fz\n    1 0 0.0 0.0 0.0  0.1 0.0 0.0\n"
     "    2 1 2.5 0.0 0.0  -0.1 0.0 0.0\n", ""),
    ("Supercell with a word", "0.0 5.0 0.0", "0.0 five 0.0"),
    ("Supercell of one row", "    0.0 5.0 0.0\n    0.0 0.0 5.0\n", ""),
    ("non-integer type", "    2 1 2.5", "    2 1.5 2.5"),
    ("huge type", "    2 1 2.5", "    2 1e300 2.5"),
    ("float type", "    2 1 2.5", "    2 1.0 2.5"),
    ("type too large", "    2 1 2.5", "    2 119 2.5"),
    ("type largest", "    2 1 2.5", "    2 118 2.5"),
    ("PlusStress of 7", "1 2 3 4 5 6", "1 2 3 4 5 6 7"),
    ("PlusStress repeated key", "xx yy zz yz xz xy", "xx xx zz yz xz xy"),
    ("PlusStress nan", "1 2 3 4 5 6", "1 2 3 nan 5 6"),
    ("Feature without value", "tag\tvalue", "tag"),
    ("Feature with blanks", "tag\tvalue", "   tag   value  with  blanks "),
    ("no coordinates", "cartes_x cartes_y cartes_z", "a b c"),
    ("direct coordinates", "cartes_x cartes_y cartes_z", "direct_x direct_y direct_z"),
    ("ghost column", "fx fy fz", "fx fy ghost"),
    ("empty file", SMALL, ""),
    ("blank lines only", SMALL, "\n  \n\t\n"),
    ("garbage first", "BEGIN_CFG", "BEGIN_CFG2"),
    ("long garbage first", "BEGIN_CFG", "x" * 60),
    ("unknown block", " Energy\n", " Energie\n"),
    ("END_CFG with words", "END_CFG", "END_CFG and more"),
    ("no newline at the end", "END_CFG\n", "END_CFG"),
    ("vertical tab blank", " Energy\n", "\v Energy\x1c\n"),
    ("lone carriage returns", "\n", "\r"),
    ("zero atoms", " Size\n    2", " Size\n    0"),
    ("zero atoms no table", " Size\n    2\n Supercell", " Size\n    0\n Supercell"),
]


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")  # the reference, huge type
@pytest.mark.parametrize("name,old,new", SMALL_DAMAGE, ids=[case[0] for case in SMALL_DAMAGE])
def test_reader_edge_cases_same_as_reference(tmp_path, name, old, new):
    text = SMALL.replace(old, new)
    if name == "zero atoms no table":
        text = text.split(" AtomData:")[0] + " Energy\n    -5.0\nEND_CFG\n"
    assert text != SMALL or name == "empty file"
    path = tmp_path / "small.cfg"
    path.write_bytes(text.encode())
    for species in (None, SPECIES, ["Na"]):
        assert_same_reading(path, species)


def test_reader_random_damage_same_outcome(tmp_path):
    """Single-byte damage anywhere: the same configurations or the same error."""
    path = tmp_path / "damaged.cfg"
    write_cfg(path, nacl_images(2, 1), SPECIES)
    data = path.read_bytes()
    rng = np.random.default_rng(11)
    errors = 0
    for _ in range(300):
        damaged = bytearray(data)
        for _ in range(int(rng.integers(1, 3))):
            damaged[int(rng.integers(len(damaged)))] = int(rng.choice(list(b"0123456789 .-+_\nxeE\tn'")))
        path.write_bytes(bytes(damaged))
        errors += assert_same_reading(path, SPECIES)[0] == "error"
    assert errors > 50


def test_reader_unreadable_files(tmp_path):
    assert_same_reading(tmp_path / "missing.cfg")
    assert_same_reading(tmp_path)  # a folder
    latin1 = tmp_path / "latin1.cfg"
    latin1.write_bytes(b"BEGIN_CFG\n Size\n    1\n Feature   name\tcaf\xe9\nEND_CFG\n")
    assert compiled_outcome(latin1)[1] is _core.NeedsReference
