"""Generated MTP templates against MLIP's own (untrained_mtps, as shipped in motep's sdist)."""

from __future__ import annotations

import numpy as np
import pytest

from mtpkit.potentials.mtp_io import read_mtp, write_mtp
from mtpkit.potentials.reference import calculate
from mtpkit.potentials.templates import make_template


def _features(mtp, u, f) -> np.ndarray:
    """Scalar basis functions on neighbourhoods given by unit vectors u and radial-function values f."""
    M = np.zeros((u.shape[0], mtp.alpha_moments_count))
    for a, (mu, px, py, pz) in enumerate(mtp.alpha_index_basic):
        M[:, a] = np.einsum("sn,sn->s", f[:, :, mu], u[:, :, 0] ** px * u[:, :, 1] ** py * u[:, :, 2] ** pz)
    for i, j, mult, k in mtp.alpha_index_times:
        M[:, k] += mult * M[:, i] * M[:, j]
    return M[:, mtp.alpha_moment_mapping]


def _rank(X: np.ndarray) -> int:
    X = X / np.linalg.norm(X, axis=0)
    s = np.linalg.svd(X, compute_uv=False)
    return int((s > s[0] * 1e-9).sum())


@pytest.mark.parametrize("level", [2, 4, 6, 8, 10, 12, 14, 16,
                                   *(pytest.param(lv, marks=pytest.mark.slow) for lv in (18, 20, 22, 24))])
def test_same_function_space_as_mlip(motep_data, level):
    folder = motep_data / f"fitting/crystals/cubic/{level:02d}"
    mlip = read_mtp(folder / "initial.mtp" if (folder / "initial.mtp").exists() else folder / "pot.mtp")
    ours = make_template(level, species_count=1)
    assert ours.radial_funcs_count == mlip.radial_funcs_count
    rng = np.random.default_rng(level)
    n = 3 * max(mlip.alpha_scalar_moments, ours.alpha_scalar_moments) + 20
    u = rng.normal(size=(n, 14, 3))
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    f = rng.normal(size=(n, 14, ours.radial_funcs_count))  # radial functions are arbitrary
    A, B = _features(ours, u, f), _features(mlip, u, f)
    rank_ours, rank_mlip = _rank(A), _rank(B)
    assert rank_ours == ours.alpha_scalar_moments  # no redundant basis function
    assert rank_ours == rank_mlip == _rank(np.hstack([A, B]))


@pytest.mark.slow
def test_level_26_contains_mlip_span(motep_data):
    """MLIP's level-26 file also leaves out M_{6,0} and M_{0,11}.M_{0,11}; ours spans a superset."""
    mlip = read_mtp(motep_data / "fitting/crystals/cubic/26/pot.mtp")
    ours = make_template(26, species_count=1)
    rng = np.random.default_rng(26)
    n = 2 * ours.alpha_scalar_moments + 50
    u = rng.normal(size=(n, 14, 3))
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    f = rng.normal(size=(n, 14, ours.radial_funcs_count))
    A, B = _features(ours, u, f), _features(mlip, u, f)
    assert _rank(np.hstack([A, B])) == _rank(A) == ours.alpha_scalar_moments > _rank(B)


def test_template_is_a_valid_untrained_mtp(tmp_path):
    mtp = make_template(12, species_count=4, radial_basis_size=6, min_dist=1.5, max_dist=5.5)
    assert not mtp.trained and mtp.species_count == 4 and mtp.radial_coeffs.shape == (4, 4, 3, 6)
    # every times row reads moments that are final by the time it runs
    times = mtp.alpha_index_times
    last_write = {}
    for row, (i, j, _, k) in enumerate(times):
        assert last_write.get(i, -1) < row and last_write.get(j, -1) < row and i < k and j < k
        last_write[k] = row
    write_mtp(tmp_path / "t.mtp", mtp)
    back = read_mtp(tmp_path / "t.mtp")
    np.testing.assert_array_equal(back.alpha_index_times, mtp.alpha_index_times)
    assert (back.min_dist, back.max_dist) == (1.5, 5.5)


def test_template_energy_is_rotation_invariant():
    mtp = make_template(14, species_count=2).with_params(
        np.random.default_rng(0).normal(scale=0.1, size=make_template(14, 2).n_params))
    from ase import Atoms

    rng = np.random.default_rng(1)
    atoms = Atoms(numbers=[0, 1, 0, 1, 1], positions=rng.uniform(0, 3.5, (5, 3)))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rotated = atoms.copy()
    rotated.positions = atoms.positions @ q.T
    types = [0, 1, 0, 1, 1]
    assert calculate(mtp, rotated, types)["energy"] == pytest.approx(calculate(mtp, atoms, types)["energy"],
                                                                     rel=1e-11)


def test_bad_arguments():
    with pytest.raises(ValueError):
        make_template(1, 1)
    with pytest.raises(ValueError):
        make_template(8, 0)
