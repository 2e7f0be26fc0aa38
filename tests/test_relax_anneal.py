"""The relax stage's anneal-and-quench search: never above the plain relaxation, recorded per candidate."""

from __future__ import annotations

import json

import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import write

from mtpkit.campaign.orchestrator import run_campaign
from mtpkit.campaign.relax_stage import anneal_quench
from mtpkit.config import build_config


def test_anneal_quench_keeps_the_lowest_minimum():
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.2, seed=3)
    best, cands = anneal_quench(atoms, EMT(), temperature_K=600.0, steps=30, timestep_fs=2.0, seeds=[11, 12],
                                fmax=0.02, quench_steps=400)
    assert [c["seed"] for c in cands] == [None, 11, 12]
    best.calc = EMT()
    e = best.get_potential_energy() / len(best)
    assert e == min(c["energy_per_atom_eV"] for c in cands)
    assert e <= cands[0]["energy_per_atom_eV"]  # the plain relaxation is a candidate
    assert np.abs(best.get_forces()).max() < 0.05


def test_relax_stage_records_the_anneal(tmp_path):
    write(tmp_path / "cu.cif", bulk("Cu", "fcc", a=3.7, cubic=True))
    doc = {"campaign": {"species": ["Cu"], "seed": 5},
           "structures": {"files": [str(tmp_path / "cu.cif")], "supercell": [2, 1, 1]},
           "labeller": {"kind": "emt"},
           "relax": {"steps": 200, "fmax": 0.02, "anneal_temperature": 500.0, "anneal_steps": 40, "anneal_seeds": 2}}
    cfg = build_config(doc, "tiny", tmp_path / "c.toml")
    run_campaign(cfg, tmp_path / "run", stop_after="relax", echo=False)
    info = json.loads((tmp_path / "run" / "01_relax" / "relax.json").read_text())["structures"]["cu"]
    cands = info["anneal"]["candidates"]
    assert len(cands) == 3 and info["anneal"]["gain_meV_per_atom"] >= 0
    assert info["after"]["energy_eV"] / 8 == min(c["energy_per_atom_eV"] for c in cands)


def test_relax_steps_zero_uses_the_structures_as_given(tmp_path):
    """Structures relaxed elsewhere (annealed minima for a DFT campaign) cost no labeller call."""
    from ase.io import read

    from mtpkit.campaign.report import _relaxation

    atoms = bulk("Cu", "fcc", a=3.7, cubic=True)
    atoms.rattle(0.05, seed=1)
    write(tmp_path / "cu.extxyz", atoms)
    doc = {"campaign": {"species": ["Cu"], "seed": 5},
           "structures": {"files": [str(tmp_path / "cu.extxyz")]},
           "labeller": {"kind": "ase", "calculator": "no_such_module:Nothing"},  # would fail if called
           "relax": {"steps": 0}}
    cfg = build_config(doc, "tiny", tmp_path / "c.toml")
    run_campaign(cfg, tmp_path / "run", stop_after="relax", echo=False)
    info = json.loads((tmp_path / "run" / "01_relax" / "relax.json").read_text())["structures"]["cu"]
    assert info["as_given"] and info["steps"] == 0
    assert np.allclose(read(tmp_path / "run" / "01_relax" / "cu.extxyz").positions, atoms.positions)
    blocks = _relaxation({"structures": {"cu": info}})
    assert len(blocks) == 1 and "Used as given" in blocks[0][1]
