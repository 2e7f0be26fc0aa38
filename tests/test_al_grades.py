"""Grades from a real MTP: MLIP reproduction, training vs extrapolated configurations, .almtp round trip, CLI."""

from __future__ import annotations

import numpy as np
import pytest

from mtpkit.active_learning.active_set import from_mlip, to_mlip
from mtpkit.active_learning.grades import grade_images, row_blocks
from mtpkit.active_learning.selection import build_active_set
from mtpkit.cli import main
from mtpkit.potentials.cfg import read_cfg
from mtpkit.potentials.mtp_io import read_mtp, write_mtp


@pytest.fixture(scope="module")
def mlip_case(motep_data):
    d = motep_data / "fitting" / "crystals" / "multi" / "10"
    return d, read_mtp(d / "pot.mtp"), read_cfg(d / "out.cfg")


@pytest.mark.slow  # one MaxVol over 27027 x 235 rows: 15-90 s depending on machine load
def test_reproduces_mlip_neighbourhood_grades(mlip_case):
    """MLIP's out.cfg holds nbh_grades/MV_grade of its training set against the
    neighbourhood-mode active set built from that set (all parameters, MaxVol
    from 1e-6*I at threshold 1.001); we rebuild it and must agree to print precision."""
    _, mtp, images = mlip_case
    blocks = row_blocks(mtp, images, "neighborhood", "all")
    aset = build_active_set(blocks, images, mode="neighborhood", basis="all")
    g = grade_images(mtp, aset, images)
    ref_cfg = np.array([a.info["MV_grade"] for a in images])
    ref_atom = np.concatenate([a.arrays["nbh_grades"] for a in images])
    np.testing.assert_allclose(g.config, ref_cfg, atol=1.5e-6)  # MLIP prints 6 decimals
    np.testing.assert_allclose(np.concatenate(g.per_atom), ref_atom, atol=1e-5)  # 5 decimals


@pytest.mark.parametrize("mode", ["configuration", "neighborhood"])
@pytest.mark.parametrize("basis", ["all", "linear"])
def test_training_grades_at_most_one_and_extrapolation_high(mlip_case, mode, basis):
    _, mtp, images = mlip_case
    train = images[:40]
    aset = build_active_set(row_blocks(mtp, train, mode, basis), train, mode=mode, basis=basis)
    g = grade_images(mtp, aset, train).config
    assert g.max() <= aset.threshold + 1e-6
    strained = train[3].copy()
    strained.set_cell(strained.cell * 1.15, scale_atoms=True)
    shaken = train[7].copy()
    shaken.positions += np.random.default_rng(0).normal(scale=0.4, size=shaken.positions.shape)
    assert grade_images(mtp, aset, [strained, shaken]).config.min() > 100.0


def test_almtp_round_trip_keeps_grades(mlip_case, tmp_path):
    _, mtp, images = mlip_case
    train = images[:50]
    aset = build_active_set(row_blocks(mtp, train, "neighborhood"), train, mode="neighborhood")
    out = mtp.copy()
    out.active_set = to_mlip(aset)
    write_mtp(tmp_path / "p.almtp", out)
    back = read_mtp(tmp_path / "p.almtp")
    aset2 = from_mlip(back.active_set)
    assert aset2.mode == "neighborhood"
    np.testing.assert_array_equal(aset2.A, aset.A)
    np.testing.assert_array_equal(aset2.inv_A, aset.inv_A)
    np.testing.assert_array_equal(aset2.sources, aset.sources)
    assert len(aset2.configurations) == len(aset.configurations)
    for a, b in zip(aset.configurations, aset2.configurations):
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-12)
    test = images[200:230]
    np.testing.assert_array_equal(grade_images(mtp, aset, test).config, grade_images(back, aset2, test).config)
    # MLIP stores A^-1 transposed
    np.testing.assert_allclose(back.active_set.A @ back.active_set.invA.T, np.eye(aset.size), atol=1e-6)


def test_cli_grade_and_select(mlip_case, tmp_path, capsys):
    d, _, images = mlip_case
    from mtpkit.potentials.cfg import write_cfg

    write_cfg(tmp_path / "train.cfg", images[:40])
    write_cfg(tmp_path / "pool.cfg", images[500:560])
    assert main(["grade", str(d / "pot.mtp"), str(tmp_path / "pool.cfg"), "--train", str(tmp_path / "train.cfg"),
                 "-o", str(tmp_path / "graded.cfg")]) == 0
    graded = read_cfg(tmp_path / "graded.cfg")
    assert len(graded) == 60
    assert all("MV_grade" in a.info and "nbh_grades" in a.arrays for a in graded)
    assert all(abs(a.info["MV_grade"] - a.arrays["nbh_grades"].max()) < 1e-5 for a in graded)
    assert main(["select", str(d / "pot.mtp"), str(tmp_path / "pool.cfg"), "--train", str(tmp_path / "train.cfg"),
                 "-o", str(tmp_path / "sel.cfg"), "--limit", "4", "--save-to", str(tmp_path / "new.almtp")]) == 0
    sel = read_cfg(tmp_path / "sel.cfg")
    assert 0 < len(sel) <= 4
    # the new potential carries the updated active set: the selected configurations now grade <= 1
    assert main(["grade", str(tmp_path / "new.almtp"), str(tmp_path / "sel.cfg"), "-o", str(tmp_path / "g2.cfg")]) == 0
    assert max(a.info["MV_grade"] for a in read_cfg(tmp_path / "g2.cfg")) <= 1.001 + 1e-6
    # a potential without an active set and no --train is a clear error
    assert main(["grade", str(d / "pot.mtp"), str(tmp_path / "pool.cfg"), "-o", str(tmp_path / "x.cfg")]) == 2
    assert "carries no active set" in capsys.readouterr().err


def test_selection_from_real_rows_beats_random_subsets(mlip_case):
    """D-optimality with a real MTP's rows: the capped selection gains more log|det| than
    the same procedure restricted to random subsets of the same size."""
    _, mtp, images = mlip_case
    train, pool = images[:20], images[300:380]
    aset = build_active_set(row_blocks(mtp, train, "neighborhood"), train, mode="neighborhood")
    pool_rows = row_blocks(mtp, pool, "neighborhood")
    from mtpkit.active_learning.selection import select_add

    k = 5
    sel = select_add(aset, pool_rows, pool, limit=k)
    assert len(sel.selected) == k
    rng = np.random.default_rng(0)
    gains = [select_add(aset, [pool_rows[i] for i in rng.choice(len(pool), k, replace=False)]).log_det_gain
             for _ in range(15)]
    assert sel.log_det_gain > max(gains)
