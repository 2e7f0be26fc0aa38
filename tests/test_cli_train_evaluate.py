"""``mtpkit train`` and ``mtpkit evaluate``: round trip, TOML settings,
MLIP calc-efs reproduction and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from labelled_data import SPECIES, make_configurations

from mtpkit.cli import main
from mtpkit.potentials import core
from mtpkit.potentials.cfg import read_cfg, write_cfg
from mtpkit.potentials.mtp_io import read_mtp


@pytest.fixture(scope="module")
def cfg_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    write_cfg(d / "train.cfg", make_configurations(8, seed=0), SPECIES)
    write_cfg(d / "valid.cfg", make_configurations(4, seed=1), SPECIES)
    return d


def test_train_then_evaluate_round_trip(cfg_files, tmp_path, capsys):
    pot = tmp_path / "pot.mtp"
    rc = main(["train", "--init", "8", "--train", str(cfg_files / "train.cfg"),
               "--valid", str(cfg_files / "valid.cfg"), "--species", ",".join(SPECIES),
               "--output", str(pot), "--max-iter", "80", "--seed", "3", "--print-every", "20"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "min_dist: 1 -> " in out and "iter    20" in out
    mtp = read_mtp(pot)
    assert mtp.trained and mtp.species_count == 4
    report = json.loads((tmp_path / "pot_report.json").read_text())
    assert report["info"]["settings"]["seed"] == 3
    assert report["metrics"]["validation"]["force_rmse"] < 0.02
    assert (tmp_path / "pot_report.png").exists() and (tmp_path / "pot_report.md").exists()
    assert not (tmp_path / "pot.checkpoint.mtp").exists()  # removed once the output is written

    out_cfg = tmp_path / "out.cfg"
    rc = main(["evaluate", str(pot), str(cfg_files / "valid.cfg"), "--output", str(out_cfg),
               "--species", ",".join(SPECIES)])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "errors against" in printed and "F RMSE" in printed
    rmse = float(printed.split("F RMSE ")[1].split()[0])
    assert rmse == pytest.approx(report["metrics"]["validation"]["force_rmse"], abs=1e-4)
    computed = read_cfg(out_cfg, SPECIES)
    source = read_cfg(cfg_files / "valid.cfg", SPECIES)
    assert len(computed) == len(source)
    for new, old in zip(computed, source):
        assert new.info["EFS_by"] == "mtpkit"
        efs = core.evaluate(mtp, old, new.arrays["mtp_type"])
        assert new.calc.results["energy"] == pytest.approx(efs.energy, abs=1e-9)
        np.testing.assert_allclose(new.calc.results["forces"], efs.forces, atol=1e-6)
        np.testing.assert_allclose(new.calc.results["stress"], efs.stress, atol=1e-5 / old.get_volume())


def test_train_from_toml_flags_win_and_warm_start(cfg_files, tmp_path, capsys):
    toml = tmp_path / "train.toml"
    toml.write_text(
        f'init = 6\ntrain = "{cfg_files / "train.cfg"}"\nspecies = "Na,Y,Zr,Cl"\n'
        'output = "first.mtp"\nmax_iter = 10\nforce_weight = 0.02\nprint_every = 0\n'
        'max_dist = 4.5\nradial_basis_size = 6\n')
    assert main(["train", "--config", str(toml), "--max-iter", "12"]) == 0
    capsys.readouterr()
    first = tmp_path / "first.mtp"  # relative to the TOML file
    settings = json.loads((tmp_path / "first_report.json").read_text())["info"]["settings"]
    assert settings["max_iter"] == 12 and settings["force_weight"] == 0.02
    mtp = read_mtp(first)
    assert mtp.max_dist == 4.5 and mtp.radial_basis_size == 6
    # warm start from the written potential
    assert main(["train", "--init", str(first), "--train", str(cfg_files / "train.cfg"),
                 "--species", ",".join(SPECIES), "--output", str(tmp_path / "second.mtp"),
                 "--max-iter", "3", "--print-every", "0"]) == 0
    assert "init: warm start" in capsys.readouterr().out


def test_evaluate_reproduces_mlip_calc_efs(motep_data, tmp_path, capsys):
    """MLIP-2's `mlp calc-efs` output for its own trained potential (motep's sdist)."""
    base = motep_data / "fitting" / "crystals" / "multi" / "06"
    subset = tmp_path / "in.cfg"
    write_cfg(subset, read_cfg(motep_data / "original" / "crystals" / "multi" / "training.cfg")[:5])
    out = tmp_path / "out.cfg"
    assert main(["evaluate", str(base / "pot.mtp"), str(subset), "--output", str(out)]) == 0
    assert "errors against" in capsys.readouterr().out
    ours = read_cfg(out)
    mlip = read_cfg(base / "out.cfg")[:5]
    for a, b in zip(ours, mlip):
        assert a.calc.results["energy"] == pytest.approx(b.calc.results["energy"], abs=2e-12)
        np.testing.assert_allclose(a.calc.results["forces"], b.calc.results["forces"], atol=1.01e-6)
        virial_ours = -a.get_volume() * a.calc.results["stress"]
        virial_mlip = -b.get_volume() * b.calc.results["stress"]
        np.testing.assert_allclose(virial_ours, virial_mlip, atol=1.01e-5)


def test_bad_input_errors(cfg_files, tmp_path, capsys):
    toml = tmp_path / "t.toml"
    toml.write_text("init = 8\nmax_iters = 5\n")
    assert main(["train", "--config", str(toml)]) == 2
    assert "field 'max_iters': unknown key" in capsys.readouterr().err

    common = ["--train", str(cfg_files / "train.cfg"), "--species", ",".join(SPECIES),
              "--output", str(tmp_path / "p.mtp")]
    assert main(["train", "--init", str(tmp_path / "missing.mtp"), *common]) == 2
    assert "missing.mtp: initial potential not found" in capsys.readouterr().err

    assert main(["train", "--init", "8", "--train", str(cfg_files / "train.cfg"),
                 "--species", "Na,Y,Zr", "--output", str(tmp_path / "p.mtp")]) == 2
    assert "field 'type': type 3 of atom 14 is beyond the 3 species given" in capsys.readouterr().err

    assert main(["train", "--init", "8", *common, "--weighting", "atoms"]) == 2
    assert "weighting: Input should be 'vibrations', 'molecules' or 'structures'" in capsys.readouterr().err

    assert main(["train", "--train", str(cfg_files / "train.cfg")]) == 2
    assert "--init is required" in capsys.readouterr().err

    text = (cfg_files / "valid.cfg").read_text()
    start = text.index(" Energy\n") + len(" Energy\n")
    end = text.index("\n", start)
    bad = tmp_path / "bad.cfg"
    bad.write_text(text[:start] + "          nan" + text[end:])
    assert main(["train", "--init", "8", "--train", str(bad), "--species", ",".join(SPECIES),
                 "--output", str(tmp_path / "p.mtp")]) == 2
    err = capsys.readouterr().err
    assert "bad.cfg" in err and "Energy" in err

    template = tmp_path / "t.mtp"
    from mtpkit.potentials.mtp_io import write_mtp
    from mtpkit.potentials.templates import make_template

    write_mtp(template, make_template(6, 4))
    assert main(["evaluate", str(template), str(cfg_files / "valid.cfg"), "--output",
                 str(tmp_path / "o.cfg"), "--species", ",".join(SPECIES)]) == 2
    assert "untrained template" in capsys.readouterr().err
