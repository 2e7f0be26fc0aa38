"""MaxVol active set and D-optimal selection on plain matrices."""

from __future__ import annotations

import numpy as np
import pytest

from mtpkit.active_learning.active_set import ActiveSet, load_npz, save_npz
from mtpkit.active_learning.selection import block_grades, build_active_set, select_add


def _blocks(rng, count, rows, n, scale=1.0):
    return [rng.normal(size=(rows, n)) * scale for _ in range(count)]


def test_build_active_set_grades_training_rows_at_most_threshold():
    rng = np.random.default_rng(0)
    n = 12
    blocks = _blocks(rng, 40, 4, n)
    aset = build_active_set(blocks, configurations=list(range(40)), mode="neighborhood")
    assert aset.filled == n
    assert block_grades(aset, blocks).max() <= aset.threshold + 1e-9
    # inverse kept by Sherman-Morrison agrees with a fresh inverse
    assert np.allclose(aset.inv_A @ aset.A, np.eye(n), atol=1e-8)
    # every active row is the row its source says
    for r in range(n):
        c, e = aset.sources[r]
        assert np.array_equal(aset.A[r], blocks[aset.configurations[c]][e])


def test_rows_outside_the_span_grade_high():
    rng = np.random.default_rng(1)
    n = 10
    blocks = _blocks(rng, 30, 3, n)
    aset = build_active_set(blocks, mode="neighborhood")
    far = rng.normal(size=(5, n)) * 50.0
    assert aset.grades(far).min() > 10.0


def test_maxvol_maximises_volume_against_random_subsets():
    """Greedy MaxVol picks n rows with larger |det| than random n-row choices."""
    rng = np.random.default_rng(2)
    n = 8
    rows = rng.normal(size=(200, n)) * rng.uniform(0.1, 3.0, size=(200, 1))
    aset = build_active_set([r[None, :] for r in rows], mode="configuration")
    best = aset.log_abs_det()
    randoms = [np.linalg.slogdet(rows[rng.choice(200, n, replace=False)])[1] for _ in range(200)]
    assert best > max(randoms)


def test_select_add_respects_cap_and_beats_random_subsets():
    rng = np.random.default_rng(3)
    n = 15
    train = _blocks(rng, 10, 2, n)
    aset = build_active_set(train, configurations=[f"t{k}" for k in range(10)], mode="neighborhood")
    pool = [rng.normal(size=(2, n)) * rng.uniform(0.2, 4.0) for _ in range(60)]
    k = 5
    before = (list(aset.configurations), aset.A.copy())
    sel = select_add(aset, pool, configurations=[f"p{i}" for i in range(60)], limit=k)
    assert 0 < len(sel.selected) <= k
    assert sel.log_det_gain > 0
    # the input active set is untouched
    assert aset.configurations == before[0] and np.array_equal(aset.A, before[1])
    # chosen configurations are in the new set's configurations
    assert {f"p{i}" for i in sel.selected} <= set(sel.active_set.configurations)
    # D-optimality: the same procedure restricted to random k-subsets gains less volume
    gains = []
    for _ in range(30):
        subset = rng.choice(60, k, replace=False)
        gains.append(select_add(aset, [pool[i] for i in subset]).log_det_gain)
    assert sel.log_det_gain > max(gains)


def test_select_add_without_cap_covers_the_pool():
    rng = np.random.default_rng(4)
    n = 6
    aset = build_active_set(_blocks(rng, 5, 2, n), mode="neighborhood")
    pool = _blocks(rng, 20, 2, n, scale=3.0)
    sel = select_add(aset, pool)
    assert block_grades(sel.active_set, pool).max() <= aset.threshold + 1e-9
    assert select_add(aset, pool, limit=0).selected.size == 0


def test_rejects_mismatched_rows():
    aset = ActiveSet.empty(4)
    with pytest.raises(ValueError):
        aset.grades(np.ones((2, 5)))
    with pytest.raises(ValueError):
        ActiveSet.empty(3, mode="bogus")


def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    aset = build_active_set(_blocks(rng, 8, 3, 5), mode="neighborhood", basis="linear")
    save_npz(tmp_path / "as.npz", aset)
    back = load_npz(tmp_path / "as.npz")
    assert back.mode == "neighborhood" and back.basis == "linear"
    assert np.array_equal(back.A, aset.A) and np.array_equal(back.inv_A, aset.inv_A)
    assert np.array_equal(back.sources, aset.sources)
