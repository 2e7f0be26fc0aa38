"""MLIP .mtp / .almtp reading and writing."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from mtpkit.errors import InputFileError
from mtpkit.potentials.mtp_io import MVSSection, format_mtp, read_mtp, write_mtp


def _mlip_written_pots(root: Path) -> list[Path]:
    """pot.mtp files written by MLIP's `mlp train` (those next to a motep.toml were written by motep)."""
    pots = sorted(root.glob("fitting/**/pot.mtp"))
    return [p for p in pots if not (p.parent / "motep.toml").exists()]


def test_rewrite_mlip_trained_is_byte_identical(motep_data, tmp_path):
    pots = _mlip_written_pots(motep_data)
    assert len(pots) >= 30
    for pot in pots:
        mtp = read_mtp(pot)
        assert mtp.trained
        out = tmp_path / "pot.mtp"
        write_mtp(out, mtp)
        assert out.read_bytes() == pot.read_bytes(), pot


def test_read_trained_values(motep_data):
    mtp = read_mtp(motep_data / "fitting/crystals/multi/10/pot.mtp")
    assert mtp.species_count == 3
    assert mtp.radial_coeffs.shape == (3, 3, 3, 8)
    assert mtp.scaling == pytest.approx(1.938066994678150e-01, rel=0, abs=0)
    assert mtp.radial_coeffs[0, 0, 0, 0] == 2.748681003193165e-01
    assert mtp.radial_coeffs[0, 1, 2, 7] == -1.731612649309214e-02
    assert (mtp.min_dist, mtp.max_dist) == (0.5, 5.0)
    assert mtp.alpha_moment_mapping.size == mtp.moment_coeffs.size == 16


def test_templates_read_untrained_and_round_trip(motep_data, tmp_path):
    templates = sorted(motep_data.glob("fitting/crystals/*/*/initial.mtp"))
    assert templates
    for tpl in templates:
        mtp = read_mtp(tpl)
        assert not mtp.trained
        # MLIP's default initial coefficients: finite and non-zero
        assert np.all(np.isfinite(mtp.get_params())) and np.all(mtp.get_params() != 0)
        a = tmp_path / "a.mtp"
        b = tmp_path / "b.mtp"
        write_mtp(a, mtp)
        write_mtp(b, read_mtp(a))
        assert a.read_bytes() == b.read_bytes()
        again = read_mtp(a)
        np.testing.assert_array_equal(again.alpha_index_times, mtp.alpha_index_times)
        assert (again.min_dist, again.max_dist) == (mtp.min_dist, mtp.max_dist)
    # most MLIP templates are reproduced exactly (16 and 20 carry a stray tab in MLIP's own files)
    same = [t for t in templates if format_mtp(read_mtp(t)) == t.read_text()]
    assert len(same) >= len(templates) - 4


def test_trained_round_trip_after_with_params(motep_data, tmp_path):
    tpl = read_mtp(motep_data / "fitting/crystals/multi/06/initial.mtp")
    rng = np.random.default_rng(0)
    trained = tpl.with_params(rng.normal(size=tpl.n_params))
    assert trained.trained
    a, b = tmp_path / "a.mtp", tmp_path / "b.mtp"
    write_mtp(a, trained)
    back = read_mtp(a)
    # %.15e keeps 16 significant digits (MLIP's precision): equal to ~1e-15 relative
    np.testing.assert_allclose(back.get_params(), trained.get_params(), rtol=1e-15, atol=0)
    write_mtp(b, back)
    assert a.read_bytes() == b.read_bytes()


def _fake_active_set(n: int, rng) -> MVSSection:
    cfg_text = (
        "BEGIN_CFG\n Size\n    1\n Supercell\n         5.000000      0.000000      0.000000\n"
        "         0.000000      5.000000      0.000000\n         0.000000      0.000000      5.000000\n"
        " AtomData:  id type       cartes_x      cartes_y      cartes_z\n"
        "             1    0       0.000000      0.000000      0.000000\n"
        " Feature   selected_eqn_inds\t0\nEND_CFG\n\n"
    )
    links = np.full((n, 2), -1)
    links[0] = (0, 0)
    return MVSSection(1.0, 0.0, 0.0, 1.0, 2, A=rng.normal(size=(n, n)), invA=rng.normal(size=(n, n)),
                     links=links, selected_cfgs=cfg_text)


def _mlip3_almtp_bytes(mtp_text: str, aset: MVSSection) -> bytes:
    """An .almtp laid out as MLIP-3's CfgSelection::Save writes it (built independently here)."""
    head = (mtp_text + "\n#MVS_v1.1\n"
            f"energy_weight {aset.energy_weight:.16e}\nforce_weight {aset.force_weight:.16e}\n"
            f"stress_weight {aset.stress_weight:.16e}\nsite_en_weight {aset.site_en_weight:.16e}\n"
            f"weight_scaling {aset.weight_scaling}\n#")
    body = aset.A.astype("<f8").tobytes() + aset.invA.astype("<f8").tobytes()
    links = "".join(f"{c} {e}\n" for c, e in aset.links)
    return head.encode() + body + b"\n#\n" + links.encode() + b"#\n" + aset.selected_cfgs.encode()


def test_almtp_active_set_round_trip(motep_data, tmp_path):
    pot = motep_data / "fitting/crystals/multi/04/pot.mtp"
    mtp = read_mtp(pot)
    aset = _fake_active_set(mtp.n_params, np.random.default_rng(1))
    # MLIP-3 omits scaling = 1; this potential has scaling != 1 so the line stays
    raw = _mlip3_almtp_bytes(pot.read_text(), aset)
    src = tmp_path / "in.almtp"
    src.write_bytes(raw)
    got = read_mtp(src)
    assert isinstance(got.active_set, MVSSection)
    np.testing.assert_array_equal(got.active_set.A, aset.A)
    np.testing.assert_array_equal(got.active_set.invA, aset.invA)
    np.testing.assert_array_equal(got.active_set.links, aset.links)
    assert got.active_set.weight_scaling == 2
    assert got.active_set.selected_cfgs == aset.selected_cfgs
    np.testing.assert_array_equal(got.get_params(), mtp.get_params())
    out = tmp_path / "out.almtp"
    write_mtp(out, got)
    assert out.read_bytes() == raw


def test_almtp_scaling_one_omitted(motep_data, tmp_path):
    mtp = read_mtp(motep_data / "fitting/crystals/multi/02/pot.mtp")
    mtp.scaling = 1.0
    write_mtp(tmp_path / "p.almtp", mtp)
    assert "scaling" not in (tmp_path / "p.almtp").read_text()
    write_mtp(tmp_path / "p.mtp", mtp)
    assert "scaling = 1.000000000000000e+00" in (tmp_path / "p.mtp").read_text()


def test_almtp_unparseable_section_warns(motep_data, tmp_path):
    pot = motep_data / "fitting/crystals/multi/02/pot.mtp"
    bad = tmp_path / "bad.almtp"
    bad.write_bytes(pot.read_bytes() + b"\n#MVS_v1.1\nenergy_weight x\n")
    with pytest.warns(UserWarning, match="active-set"):
        mtp = read_mtp(bad)
    assert mtp.active_set is None


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        ("radial_basis_type = RBChebyshev", "radial_basis_type = RBShapeev", "radial_basis_type", "unknown"),
        ("species_count = 3", "species_count = three", "species_count", "malformed integer"),
        ("\tmax_dist = 5.000000000000000e+00", "\tmax_dist = 5.0.0", "max_dist", "malformed number"),
        ("alpha_scalar_moments = 9", "alpha_scalar_moments = 10", "alpha_moment_mapping", "10"),
        ("alpha_index_basic_count = 11", "alpha_index_basic_count = 10", "alpha_index_basic", "10"),
        ("version = 1.1.0\n", "", "version", "missing"),
    ],
)
def test_bad_mtp_names_file_line_field(motep_data, tmp_path, old, new, field, message):
    text = (motep_data / "fitting/crystals/multi/08/pot.mtp").read_text()
    assert old in text
    bad = tmp_path / "bad.mtp"
    bad.write_text(text.replace(old, new, 1))
    with pytest.raises(InputFileError) as info:
        read_mtp(bad)
    err = info.value
    assert err.path == str(bad) and err.field == field and err.line is not None
    assert message in str(err) and str(bad) in str(err)


def test_bad_radial_coeffs_line(motep_data, tmp_path):
    lines = (motep_data / "fitting/crystals/multi/04/pot.mtp").read_text().split("\n")
    idx = next(i for i, ln in enumerate(lines) if ln.startswith("\t\t\t{"))
    lines[idx] = lines[idx].replace("{", "{1.0, ", 1)  # one value too many
    bad = tmp_path / "bad.mtp"
    bad.write_text("\n".join(lines))
    with pytest.raises(InputFileError, match="radial_basis_size") as info:
        read_mtp(bad)
    assert info.value.line == idx + 1 and info.value.field == "radial_coeffs"


def test_not_an_mtp(tmp_path):
    p = tmp_path / "x.mtp"
    p.write_text("hello\n")
    with pytest.raises(InputFileError, match="line 1"):
        read_mtp(p)
    with pytest.raises(InputFileError, match="cannot read"):
        read_mtp(tmp_path / "missing.mtp")


def test_unknown_key_warns(motep_data, tmp_path):
    text = (motep_data / "fitting/crystals/multi/02/pot.mtp").read_text()
    p = tmp_path / "x.mtp"
    p.write_text(text.replace("species_count", "foo = 1\nspecies_count", 1))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        read_mtp(p)
    assert any("foo" in str(w.message) for w in rec)


def test_load_potential_save_and_calculator(motep_data, tmp_path):
    import mtpkit
    from mtpkit.errors import UserError
    from mtpkit.potentials.cfg import read_cfg
    from mtpkit.potentials.reference import calculate

    d = motep_data / "fitting/crystals/multi/10"
    pot = mtpkit.load_potential(d / "pot.mtp", species=["Cu", "Ag", "Au"])
    assert pot.species == ["Cu", "Ag", "Au"] and pot.active_set is None
    pot.save(tmp_path / "copy.mtp")
    assert (tmp_path / "copy.mtp").read_bytes() == (d / "pot.mtp").read_bytes()
    with pytest.raises(UserError, match="species_count = 3"):
        pot.calculator(species=["Na", "Cl"])
    with pytest.raises(UserError, match=r".mtp or .almtp"):
        pot.save(tmp_path / "x.txt")
    with pytest.raises(InputFileError, match=r".mtp or .almtp"):
        mtpkit.load_potential(d / "out.cfg")
    pytest.importorskip("mtpkit._core")
    atoms = read_cfg(d / "out.cfg", species=pot.species)[5]
    ref = calculate(pot.mtp, atoms)
    atoms.calc = pot.calculator()
    assert atoms.get_potential_energy() == pytest.approx(ref["energy"], abs=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), ref["forces"], atol=1e-10)
