"""Labellers: ASE calculators, CHGNet/SevenNet/GPAW when installed, batch job folders, Dask."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from ase.build import bulk

from mtpkit.active_learning.labellers import (
    BatchLabeller,
    LabellerSpec,
    check_label,
    label_one,
)
from mtpkit.errors import UserError


def nacl():
    return bulk("NaCl", "rocksalt", a=5.64)


def test_emt_label_and_failure_reason():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.05, seed=1)
    out, reason = label_one(LabellerSpec("emt"), atoms)
    assert reason is None
    assert np.isfinite(out.get_potential_energy()) and out.get_forces().shape == (4, 3)
    assert out.get_stress().shape == (6,)
    np.testing.assert_array_equal(out.positions, atoms.positions)
    out, reason = label_one(LabellerSpec("emt"), nacl())  # EMT has no Na
    assert out is None and "Na" in reason


def test_check_label_rejects_nan_and_bad_shapes():
    assert check_label(float("nan"), np.zeros((2, 3)), None, 2).startswith("energy")
    assert "NaN" in check_label(1.0, np.array([[np.nan, 0, 0], [0, 0, 0]]), None, 2)
    assert "shape" in check_label(1.0, np.zeros((3, 3)), None, 2)
    assert check_label(1.0, np.zeros((2, 3)), np.zeros(6), 2) is None


def test_spec_check_names_the_problem():
    with pytest.raises(UserError, match=r"labeller.kind"):
        LabellerSpec("nonsense").check()
    with pytest.raises(UserError, match=r"labeller.calculator"):
        LabellerSpec("ase", calculator="ase.calculators.emt:NoSuch").check()
    LabellerSpec("ase", calculator="ase.calculators.emt:EMT").check()


@pytest.mark.skipif(importlib.util.find_spec("chgnet") is None, reason="chgnet not installed (mtpkit[chgnet])")
def test_chgnet_labels_nacl_offline():
    spec = LabellerSpec("chgnet")
    spec.check()
    out, reason = label_one(spec, nacl())
    assert reason is None
    e = out.get_potential_energy()
    assert -8.0 < e < -6.0  # eV for Na+Cl, CHGNet 0.3.0 gives about -7.33
    assert np.abs(out.get_forces()).max() < 1e-3  # symmetric rock salt
    assert abs(out.get_stress()[0]) < 0.05  # eV/Å^3


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("sevenn") is None, reason="sevenn not installed")
def test_sevennet0_labels_nacl():
    out, reason = label_one(LabellerSpec("sevennet"), nacl())
    assert reason is None and -8.0 < out.get_potential_energy() < -6.0


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("gpaw") is None, reason="gpaw not installed")
def test_gpaw_labels_nacl():
    out, reason = label_one(LabellerSpec("gpaw", parameters={"mode_ecut": 300, "kpts": [2, 2, 2]}), nacl())
    assert reason is None
    assert -8.0 < out.get_potential_energy() < -5.0
    assert np.abs(out.get_forces()).max() < 1e-3


@pytest.mark.skipif(importlib.util.find_spec("gpaw") is None, reason="gpaw not installed")
def test_gpaw_label_with_kpoint_density_and_pulay_correction():
    """A real (small) GPAW label in the default suite: k-points given as a density, forces summing to
    zero, and the stress differing from the uncorrected one by exactly the Pulay correction."""
    from mtpkit.active_learning.dft_gpaw import pulay_stress

    atoms = bulk("NaCl", "rocksalt", a=5.64)
    atoms.positions[1] += [0.05, -0.03, 0.02]
    params = {"mode_ecut": 250, "kpts": {"density": 1.0}}
    corrected, reason = label_one(LabellerSpec("gpaw", parameters=params), atoms)
    assert reason is None
    assert -8.0 < corrected.get_potential_energy() < -5.0
    forces = corrected.get_forces()
    assert np.abs(forces.sum(axis=0)).max() < 1e-3 < np.abs(forces).max()
    raw, _ = label_one(LabellerSpec("gpaw", parameters={**params, "pulay": None}), atoms)
    expected = pulay_stress(atoms, params)[0]
    assert expected[0] < 0 and np.allclose(corrected.get_stress() - raw.get_stress(), expected, atol=1e-9)
    assert np.allclose(corrected.get_forces(), raw.get_forces(), atol=1e-9)


def test_batch_labeller_folders_and_ingestion(tmp_path):
    atoms = nacl()
    vasp = BatchLabeller("vasp", "#!/bin/sh\n#SBATCH -J {name}\ncd {folder}\nmpirun vasp_std\n",
                         submit_command="sh -c 'echo submitted'", input_parameters={"encut": 520, "kpts": [3, 3, 3],
                                                                                    "lwave": False})
    d = vasp.prepare(atoms, tmp_path / "job1", "job1")
    assert (d / "POSCAR").exists() and "ENCUT = 520" in (d / "INCAR").read_text()
    assert "LWAVE = .FALSE." in (d / "INCAR").read_text()
    assert "#SBATCH -J job1" in (d / "job.sh").read_text() and (d / "KPOINTS").exists()
    assert vasp.submit(d).strip() == "submitted"
    assert vasp.ingest(atoms, d) == (None, "pending")
    (d / "OUTCAR").write_text("... aborting loop EDIFF was not reached (unconverged)\n")
    out, reason = vasp.ingest(atoms, d)
    assert out is None and "did not converge" in reason
    qe = BatchLabeller("qe", "pw.x < pw.in > pw.out\n", input_parameters={
        "input_data": {"control": {"tprnfor": True, "tstress": True}, "system": {"ecutwfc": 40}},
        "pseudopotentials": {"Na": "Na.upf", "Cl": "Cl.upf"}, "kpts": (2, 2, 2)})
    d2 = qe.prepare(atoms, tmp_path / "job2", "job2")
    assert "ecutwfc" in (d2 / "pw.in").read_text()
    assert qe.ingest(atoms, d2) == (None, "pending")
    (d2 / "pw.out").write_text("     convergence NOT achieved after 100 iterations: stopping\n")
    assert "did not converge" in qe.ingest(atoms, d2)[1]
    with pytest.raises(UserError):
        BatchLabeller("cp2k", "")


def test_labelling_through_a_dask_local_cluster(tmp_path):
    """The label queue with a real dask LocalCluster as its scheduler."""
    distributed = pytest.importorskip("distributed")
    from ase.build import bulk

    from mtpkit.active_learning.label_queue import label_pending
    from mtpkit.active_learning.store import LabelStore

    store = LabelStore(tmp_path / "l.db")
    for i in range(5):
        a = bulk("Cu", "fcc", a=3.6, cubic=True)
        a.rattle(0.05, seed=i)
        store.request(a, LabellerSpec("emt"), source=f"cu{i}")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        counts = label_pending(store, scheduler=cluster.scheduler_address)
    assert counts == {"pending": 0, "ok": 5, "quarantined": 0}
