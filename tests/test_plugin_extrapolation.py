"""Extrapolation control inside pair_style mtp with an .almtp active set."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from _md_support import MOTEP_FIT, cu_with_active_set, lammps_with_plugin
from ase.io import read

from mtpkit.md.engines import Extrapolation, PluginEngine
from mtpkit.md.run import MDSettings, run_md


@pytest.fixture(scope="module")
def almtp(tmp_path_factory, motep_data):
    """Cu level-16 MTP + a neighbourhood active set (all coefficients) from 12 configurations."""
    from mtpkit.potentials.mtp_io import write_mtp

    mtp, aset, images = cu_with_active_set(12)
    path = tmp_path_factory.mktemp("al") / "cu.almtp"
    write_mtp(path, mtp)
    return mtp, aset, path, images


def test_plugin_grades_match_python(almtp, tmp_path):
    from mtpkit.potentials import core

    mtp, aset, path, images = almtp
    atoms = images[0].copy()
    atoms.set_chemical_symbols(["Cu"] * len(atoms))
    atoms.rattle(0.15, seed=2)  # leave the span of the active set
    save = tmp_path / "sel.extxyz"
    lmp, latoms = lammps_with_plugin(
        path, atoms, ["Cu"], workdir=tmp_path,
        extra_style=f"extrapolation_control every 1 select_threshold 1.0 break_threshold 1e9 save {save}")
    # the per-atom grades on 2 OpenMP threads are the same numbers
    lmp2, _ = lammps_with_plugin(path, atoms, ["Cu"], workdir=tmp_path, threads=2,
                                 extra_style="extrapolation_control every 1 break_threshold 1e9")
    assert lmp2.extract_pair("max_gamma") == lmp.extract_pair("max_gamma")
    lmp2.close()
    rows = core.energy_param_grads(mtp, latoms, np.zeros(len(atoms), np.int32), per_atom=True)
    ref = np.abs(rows @ aset.inv_A).max(axis=1)
    assert ref.max() > 1.0
    assert lmp.extract_pair("max_gamma") == pytest.approx(ref.max(), rel=1e-8)
    saved = read(save, index=":")
    assert len(saved) == 1
    np.testing.assert_allclose(saved[0].arrays["gamma"], ref, rtol=1e-8)
    np.testing.assert_allclose(saved[0].positions, latoms.positions, atol=1e-12)
    assert saved[0].info["max_gamma"] == pytest.approx(ref.max(), rel=1e-12)
    lmp.close()


def test_run_saves_and_breaks_cleanly(almtp, tmp_path):
    _mtp, _aset, path, _images = almtp
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    extra = Extrapolation(every=5, select_threshold=1.5, break_threshold=3.0)
    settings = MDSettings(ensemble="nvt", temperature=2500.0, steps=3000, timestep=1.0,
                          thermo_every=5, dump_every=50, restart_every=500, seed=1)
    res = run_md(atoms, PluginEngine(path, extrapolation=extra), ["Cu"], settings, tmp_path)
    assert res.status == "extrapolation_break", res.message
    assert 0 < res.steps_done < 3000
    saved = read(tmp_path / "extrapolative.extxyz", index=":")
    assert saved and all(s.info["max_gamma"] > 1.5 for s in saved)
    assert saved[-1].info["max_gamma"] > 3.0 and saved[-1].info["step"] == res.steps_done
    thermo = np.loadtxt(tmp_path / "thermo.dat")
    assert thermo[-1, 0] <= res.steps_done
    assert np.all(thermo[:, -1][:-1] <= 3.0)  # max_gamma column: only the last crosses break


def test_extrapolation_needs_active_set(tmp_path, motep_data):
    from _md_support import nyzc_cell  # noqa: F401

    pot = MOTEP_FIT / "crystals" / "cubic" / "16" / "pot.mtp"
    from ase.build import bulk

    with pytest.raises(Exception, match="needs a potential with an active set"):
        lammps_with_plugin(pot, bulk("Cu", "fcc", a=3.61, cubic=True), ["Cu"], workdir=tmp_path,
                           extra_style="extrapolation_control")


@pytest.mark.parametrize("threads", [1, 2])
def test_plugin_configuration_grade_matches_python(almtp, tmp_path, threads):
    """Configuration mode (site_en_weight 0, energy_weight > 0): one grade from the summed rows."""
    from mtpkit.active_learning.active_set import ActiveSet as ALSet
    from mtpkit.active_learning.grades import config_row
    from mtpkit.potentials.mtp_io import MVSSection, write_mtp

    mtp, _, _, images = almtp
    mtp = copy.deepcopy(mtp)  # the fixture's potential keeps its neighbourhood active set
    aset = ALSet.empty(mtp.n_params, mode="configuration", basis="all")
    for k, atoms in enumerate(images):
        res = aset.maxvol(config_row(mtp, atoms, np.zeros(len(atoms), np.int32))[None, :])
        aset.commit_sources({int(c): (k, int(c)) for c in res.entered})
    aset.refresh_inverse()
    mtp.active_set = MVSSection(energy_weight=1.0, force_weight=0.0, stress_weight=0.0, site_en_weight=0.0,
                               weight_scaling=2, A=aset.A, invA=aset.inv_A.T.copy(), links=aset.sources)
    path = tmp_path / "conf.almtp"
    write_mtp(path, mtp)
    atoms = images[0].copy()
    atoms.set_chemical_symbols(["Cu"] * len(atoms))
    atoms.rattle(0.1, seed=3)
    lmp, latoms = lammps_with_plugin(path, atoms, ["Cu"], workdir=tmp_path, threads=threads,
                                     extra_style="extrapolation_control every 1 break_threshold 1e30")
    ref = np.abs(config_row(mtp, latoms, np.zeros(len(atoms), np.int32)) @ aset.inv_A).max()
    assert ref > 1e-3
    assert lmp.extract_pair("max_gamma") == pytest.approx(ref, rel=1e-8)
    lmp.close()


def test_plugin_grades_with_linear_basis_active_set(almtp, tmp_path):
    """An active set over the linear basis (species one-hot | B_k, MLIP's smaller form):
    the plugin grades each atom from its basis row instead of dE_i/dθ."""
    from mtpkit.active_learning.active_set import ActiveSet as ALSet
    from mtpkit.potentials import core
    from mtpkit.potentials.mtp_io import MVSSection, format_mtp

    mtp, _, _, images = almtp
    n_linear = mtp.species_count + mtp.alpha_scalar_moments
    assert n_linear != mtp.n_params
    aset = ALSet.empty(n_linear, mode="neighborhood", basis="linear")
    for k, atoms in enumerate(images):
        res = aset.maxvol(core.site_basis(mtp, atoms, np.zeros(len(atoms), np.int32)))
        aset.commit_sources({int(c): (k, int(c)) for c in res.entered})
    aset.refresh_inverse()
    mlip = MVSSection(energy_weight=0.0, force_weight=0.0, stress_weight=0.0, site_en_weight=1.0,
                     weight_scaling=2, A=aset.A, invA=aset.inv_A.T.copy(), links=aset.sources)
    path = tmp_path / "linear.almtp"  # write_mtp stores only all-coefficient active sets
    mtp = copy.deepcopy(mtp)
    mtp.active_set = None
    path.write_bytes(format_mtp(mtp, scaling_line=False).encode().rstrip(b"\n") + b"\n" + mlip.to_bytes())
    atoms = images[0].copy()
    atoms.set_chemical_symbols(["Cu"] * len(atoms))
    atoms.rattle(0.15, seed=4)
    lmp, latoms = lammps_with_plugin(path, atoms, ["Cu"], workdir=tmp_path,
                                     extra_style="extrapolation_control every 1 break_threshold 1e9")
    rows = core.site_basis(mtp, latoms, np.zeros(len(atoms), np.int32))
    ref = np.abs(rows @ aset.inv_A).max(axis=1)
    assert ref.max() > 1.0 + 1e-6  # outside the span: a real grade, not the active set's own 1
    assert lmp.extract_pair("max_gamma") == pytest.approx(ref.max(), rel=1e-8)
    lmp.close()
