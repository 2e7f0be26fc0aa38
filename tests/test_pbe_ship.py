"""`benchmarks/nyzc75-pbe/pbe_labels.py ship`: the shipped PBE folder is assembled from a label store
and a learning folder, and every number of its README is the manifest's, which comes from them.

The ionic test labeller stands in for GPAW (the rows are stored under the production GPAW settings,
each with the setup estimate of the Pulay stress GPAW would record).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.io import read
from ase.units import GPa

from mtpkit import load_potential
from mtpkit.active_learning.fit import Template, fit_potential
from mtpkit.active_learning.store import LabelStore
from mtpkit.potentials.mtp_io import read_mtp
from mtpkit.potentials.train_config import TrainConfig

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from benchmark_scripts import load_script, rattled_cells  # noqa: E402


@pytest.fixture(scope="module")
def pbe_labels():
    return load_script("pbe_labels")


def _frames(n: int, seed: int) -> list:
    from ionic_calc import IonicNYZC

    out = rattled_cells(n, seed, 0.05, strain=0.01)
    for a in out:
        a.calc = IonicNYZC()
        a.get_potential_energy(), a.get_forces(), a.get_stress()
    return out


def test_ship_writes_the_folder_and_a_readme_of_the_manifests_numbers(pbe_labels, tmp_path, monkeypatch):
    P = pbe_labels
    store = LabelStore(tmp_path / "labels.db")
    spec = P.gpaw()
    train, held = _frames(6, 1), _frames(2, 2)
    pulay_GPa = -0.2
    for subset, frames in (("al", train), ("heldout", held)):
        for k, a in enumerate(frames):
            row = store.request(a, spec, source=f"{subset}:{k}", subset=subset)
            store.complete(row, a, wall_s=100.0 + k, code="gpaw 26.7.0", extra={"pulay_GPa": pulay_GPa})
    learn = tmp_path / "campaign" / "03_active_learning"
    metrics = fit_potential(train, read_mtp(HERE / "data" / "nyzc75_ionic_l08.mtp"), P.SPECIES,
                            template=Template(8, 8, 1.9, 5.0), training=TrainConfig(max_iter=5), seed=1,
                            folder=learn / "iter_000")
    assert metrics["n_train"] == 6
    (learn / "state.json").write_text(json.dumps({"final_potential": "iter_000", "finished": False}))

    out = tmp_path / "ship"
    argv = ["pbe_labels.py", "ship", "--store", str(store.path), "--campaign", str(tmp_path / "campaign"),
            "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit, match="has not finished"):
        P.main()
    monkeypatch.setattr(sys, "argv", [*argv, "--allow-unfinished"])
    P.main()

    manifest = json.loads((out / "manifest.json").read_text())
    assert load_potential(out / "pot.almtp", species=P.SPECIES).active_set is not None
    assert manifest["training"]["frames"] == 6 and manifest["training"]["by_subset"] == {"al": 6}
    assert manifest["heldout"]["frames"] == 2
    assert manifest["labelling_cost"]["labels"] == 8
    assert manifest["labelling_cost"]["core_hours"] == pytest.approx((6 * 100 + 15 + 2 * 100 + 1) / 3600)
    # the exported stress is re-corrected: the setup estimate out, the measured dE/d ecut in
    shipped = read(out / "training.extxyz", ":")
    for a, orig in zip(shipped, train):
        assert a.info["subset"] == "al" and a.info["settings_id"]
        shift = (np.asarray(a.get_stress()) - orig.get_stress())[:3] / GPa
        want = 2 / 3 * 400 * P.DEDECUT_400_PER_ATOM * len(a) / a.get_volume() / GPa - pulay_GPa
        assert shift == pytest.approx([want] * 3, abs=1e-9)
    # the README's numbers are the manifest's
    readme = (out / "README.md").read_text()
    e = manifest["heldout"]["errors"]
    assert f"| held-out | 2 | {e['energy_rmse_centered_mev_per_atom']:.2f} |" in readme
    assert f"{manifest['labelling_cost']['core_hours']:.1f} core-hours" in readme
    assert "production settings, 6 (al 6;" in readme and "finished: False" in readme
    assert "**Active learning has not finished**" in readme and "Rungs learned" in readme
    assert "the campaign's current potential (03_active_learning/iter_000/pot.almtp)" in readme
    # the campaign's starting minima travel with it, for the main job to start from
    assert manifest["structures"]["files"] == sorted(p.name for p in (out / "structures").iterdir())
    shipped_files = manifest["structures"]["files"]
    assert shipped_files and all(f.endswith("_annealed.extxyz") for f in shipped_files)
