"""``mtpkit train --init TEMPLATE.almtp`` with MLIP-3's untrained templates, which ship with
``species_count = 1``: the template is set up for the species of the fit (from ``--species``
or the types in the training set), as ``mlp train`` does."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from labelled_data import PairMorse

from mtpkit.cli import main
from mtpkit.errors import UserError
from mtpkit.potentials.cfg import write_cfg
from mtpkit.potentials.mtp_io import format_mtp, read_mtp
from mtpkit.potentials.potential import load_potential
from mtpkit.potentials.templates import for_species, make_template


def nacl_set(count: int, seed: int):
    """64-atom rock-salt NaCl cells, strained and rattled, labelled by a pair potential."""
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        a = bulk("NaCl", "rocksalt", a=5.64, cubic=True) * (2, 2, 2)
        a.set_cell(a.cell.array @ (np.eye(3) + rng.uniform(-0.02, 0.02, (3, 3))), scale_atoms=True)
        a.positions += rng.normal(scale=0.08, size=a.positions.shape)
        a.calc = PairMorse()
        labels = {"energy": a.get_potential_energy(), "forces": a.get_forces(), "stress": a.get_stress()}
        a.calc = SinglePointCalculator(a, **labels)
        out.append(a)
    return out


def mlip3_style_template(level: int) -> str:
    """An untrained template written the way MLIP-3 ships ``MTP_templates/NN.almtp``:
    ``species_count = 1``, ``min_dist = 2``, an empty ``potential_tag``, CRLF line ends."""
    t = replace(make_template(level, 1), min_dist=2.0)
    text = format_mtp(t)
    assert "species_count = 1\n" in text and "potential_tag = \n" in text and "radial_coeffs" not in text
    return text.replace("\n", "\r\n")


def mlip3_reading_order(text: str) -> dict[str, object]:
    """Read a trained potential in the order MLIP-3's ``MLMTPR::Load`` reads it (whitespace-
    separated tokens, ``key = value``; optional ``potential_name``, ``scaling``), returning
    the counts it checks. Raises AssertionError where MLIP-3 would stop with an error."""
    lines = text.splitlines()
    tokens = text.split()
    pos = 0

    def take(expected: str | None = None) -> str:
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        assert expected is None or tok == expected, (expected, tok)
        return tok

    def value(key: str) -> str:
        take(key)
        take("=")
        return take()

    take("MTP")
    assert value("version") == "1.1.0"
    if tokens[pos] == "potential_name":
        value("potential_name")
    if tokens[pos] == "scaling":
        float(value("scaling"))
    species = int(value("species_count"))
    take("potential_tag")  # the rest of its line is the tag (empty here)
    tag_line = next(ln for ln in lines if ln.startswith("potential_tag"))
    pos += len(tag_line.split()) - 1
    assert value("radial_basis_type") == "RBChebyshev"
    float(value("min_dist"))
    float(value("max_dist"))
    size = int(value("radial_basis_size"))
    funcs = int(value("radial_funcs_count"))
    take("radial_coeffs")
    for a in range(species):
        for b in range(species):
            take(f"{a}-{b}")
            for _ in range(funcs):
                row = []
                while not row or not row[-1].endswith("}"):
                    row.append(take())
                assert len(" ".join(row).strip("{}").split(",")) == size
    moments = int(value("alpha_moments_count"))
    basic = int(value("alpha_index_basic_count"))
    assert value("alpha_index_basic").startswith("{{")
    while not tokens[pos - 1].endswith("}}"):
        pos += 1
    times = int(value("alpha_index_times_count"))
    take("alpha_index_times")
    take("=")
    while not tokens[pos - 1].endswith("}}"):
        pos += 1
    scalar = int(value("alpha_scalar_moments"))
    take("alpha_moment_mapping")
    take("=")
    while not tokens[pos - 1].endswith("}"):
        pos += 1
    take("species_coeffs")
    take("=")
    coeffs = []
    while not coeffs or not coeffs[-1].endswith("}"):
        coeffs.append(take())
    assert len(" ".join(coeffs).strip("{}").split(",")) == species
    take("moment_coeffs")
    take("=")
    coeffs = []
    while not coeffs or not coeffs[-1].endswith("}"):
        coeffs.append(take())
    assert len(" ".join(coeffs).strip("{}").split(",")) == scalar
    return {"species_count": species, "radial_funcs_count": funcs, "alpha_moments_count": moments,
            "alpha_index_basic_count": basic, "alpha_index_times_count": times}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tmpl")
    write_cfg(d / "train.cfg", nacl_set(6, seed=0), ["Na", "Cl"])
    (d / "tmpl.almtp").write_bytes(mlip3_style_template(8).encode())
    return d


def test_mlip3_template_with_species(files, tmp_path, capsys):
    out = tmp_path / "out.almtp"
    rc = main(["train", "--init", str(files / "tmpl.almtp"), "--train", str(files / "train.cfg"),
               "--species", "Na,Cl", "--max-iter", "5", "--output", str(out)])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert "untrained template for 1 species; set up for the 2 species of the fit (Na,Cl)" in printed.out
    mtp = read_mtp(out)
    assert mtp.trained and mtp.species_count == 2 and mtp.radial_coeffs.shape[:2] == (2, 2)
    template = read_mtp(files / "tmpl.almtp")
    assert np.array_equal(mtp.alpha_index_times, template.alpha_index_times)
    assert 2.0 < mtp.min_dist < 2.82  # the smallest distance in the data, as MLIP sets it
    counts = mlip3_reading_order(out.read_text())
    assert counts["species_count"] == 2 and counts["alpha_moments_count"] == template.alpha_moments_count
    pot = load_potential(out, species=["Na", "Cl"])
    atoms = nacl_set(1, seed=5)[0]
    atoms.calc = pot.calculator()
    assert np.isfinite(atoms.get_potential_energy())


def test_mlip3_template_with_species_from_the_data(files, tmp_path, capsys):
    out = tmp_path / "out.mtp"
    assert main(["train", "--init", str(files / "tmpl.almtp"), "--train", str(files / "train.cfg"),
                 "--max-iter", "2", "--print-every", "0", "--output", str(out)]) == 0
    assert "set up for the 2 species of the fit (types in" in capsys.readouterr().out
    assert read_mtp(out).species_count == 2
    # a template level without --species counts the types of the data too
    assert main(["train", "--init", "6", "--train", str(files / "train.cfg"), "--max-iter", "2",
                 "--print-every", "0", "--output", str(tmp_path / "six.mtp")]) == 0
    assert read_mtp(tmp_path / "six.mtp").species_count == 2


def test_trained_potentials_and_larger_templates_are_not_changed(files, tmp_path, capsys):
    big = tmp_path / "three.mtp"
    (big).write_text(format_mtp(make_template(6, 3)))
    assert main(["train", "--init", str(big), "--train", str(files / "train.cfg"), "--species", "Na,Cl",
                 "--max-iter", "2", "--print-every", "0", "--output", str(tmp_path / "o.mtp")]) == 0
    assert "set up for" not in capsys.readouterr().out
    assert read_mtp(tmp_path / "o.mtp").species_count == 3
    trained = read_mtp(tmp_path / "o.mtp")
    with pytest.raises(ValueError, match="untrained"):
        for_species(trained, 4)
    one = replace(trained, species_count=1, radial_coeffs=trained.radial_coeffs[:1, :1].copy(),
                  species_coeffs=trained.species_coeffs[:1].copy())
    (tmp_path / "one.mtp").write_text(format_mtp(one))
    assert main(["train", "--init", str(tmp_path / "one.mtp"), "--train", str(files / "train.cfg"),
                 "--species", "Na,Cl", "--max-iter", "1", "--output", str(tmp_path / "x.mtp")]) == 2
    assert "2 species given" in capsys.readouterr().err  # a trained one-species potential stays an error


def test_python_api_takes_a_one_species_template(files, tmp_path):
    """``train(images, "08.almtp", species=...)`` sets the template up like the CLI (and ``mlp train``) does."""
    from mtpkit.potentials.training import train

    images = nacl_set(4, seed=11)
    result = train(images, files / "tmpl.almtp", species=["Na", "Cl"], max_iter=3, log=None)
    assert result.mtp.species_count == 2 and result.mtp.trained
    # without species or MLIP types there is nothing to count the species from: a clear error
    with pytest.raises(UserError, match="carry no MLIP types; give the species"):
        train(images, files / "tmpl.almtp", max_iter=1, log=None)
