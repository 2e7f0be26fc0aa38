"""The one configuration schema: presets, precedence, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtpkit.config import SCALES, build_config, load_config
from mtpkit.errors import InputFileError, UserError


def test_example_resolves_at_every_scale():
    sizes = {}
    for scale in SCALES:
        cfg = load_config("examples/nyzc75-chgnet.toml", scale)
        assert cfg.species == ["Na", "Y", "Zr", "Cl"]
        sizes[scale] = (len(cfg.structures.names) or 8, cfg.production.replicas,
                        cfg.production.steps * cfg.production.timestep)
    assert sizes["tiny"][0] == 1 and sizes["paper"][0] == 8
    assert sizes["paper"][1] == 5 and sizes["paper"][2] >= 2_000_000  # ≥ 2 ns in fs
    assert sizes["tiny"][2] < sizes["default"][2] < sizes["paper"][2]
    tiny = load_config("examples/nyzc75-chgnet.toml", "tiny")
    # the tiny campaign relaxes its structure and seeds the starting set with labeller MD
    assert tiny.relax.steps > 0 and tiny.relax.cell
    assert tiny.starting_set.md_temperatures and tiny.starting_set.md_steps > 0
    assert len(tiny.production.temperatures) >= 2
    paper = load_config("examples/nyzc75-chgnet.toml", "paper")
    assert paper.structures.size == "box"
    assert paper.active_learning.temperatures == [300.0, 600.0, 900.0, 1200.0]
    assert min(paper.production.temperatures) == 350 and max(paper.production.temperatures) == 700


def test_main_job_starts_from_the_shipped_pbe_potential():
    """README's main job (examples/nyzc75.toml): at every scale the shipped PBE potential (taken as it
    is), its GPAW training set and annealed minima from the package's data folder, GPAW at the PBE
    campaign's settings for anything new and no labeller work before learning; tiny caps the labels."""
    import mtpkit
    from mtpkit.config.load import package_data

    data = Path(mtpkit.__file__).resolve().parent / "data" / "nyzc75-pbe"
    assert package_data("nyzc75-pbe/pot.almtp") == data / "pot.almtp"  # a real path, also when editable
    for scale in SCALES:
        cfg = load_config("examples/nyzc75.toml", scale)
        assert cfg.labeller.kind == "gpaw" and cfg.labeller.parameters["xc"] == "PBE"
        assert cfg.potential.initial == data / "pot.almtp" and cfg.potential.initial.is_file()
        assert cfg.potential.refit_initial is False
        assert cfg.starting_set.initial_training == data / "training.extxyz"
        assert cfg.starting_set.per_structure == 0 and not cfg.starting_set.md_temperatures
        assert cfg.relax.steps == 0 and not cfg.fidelity.enabled
        assert cfg.structures.files and all(Path(f).parent == data / "structures" and Path(f).is_file()
                                            for f in cfg.structures.files)
        assert cfg.species == ["Na", "Y", "Zr", "Cl"]
    tiny = load_config("examples/nyzc75.toml", "tiny")
    assert len(tiny.structures.files) == 1 and 0 < tiny.active_learning.max_labels <= 2
    assert len(tiny.production.temperatures) >= 2
    paper = load_config("examples/nyzc75.toml", "paper")
    assert len(paper.structures.files) == 4 and paper.production.replicas == 5


def test_precedence_scale_tables_override_top_level():
    doc = {"production": {"replicas": 3}, "scales": {"tiny": {"production": {"replicas": 2}}}}
    assert build_config(doc, "tiny").production.replicas == 2
    assert build_config(doc, "default").production.replicas == 3
    # a scale preset value survives when the file does not set it
    assert build_config({}, "tiny").structures.size == "cell"


@pytest.mark.parametrize("doc, field", [
    ({"campain": {}}, "campain"),
    ({"production": {"replica": 2}}, "production.replica"),
    ({"production": {"replicas": 0}}, "production.replicas"),
    ({"production": {"temperatures": []}}, "production.temperatures"),
    ({"active_learning": {"temperatures": [300, -5]}}, "active_learning.temperatures"),
    ({"structures": {"names": ["mixed-TM_oct60"]}}, "structures.names"),
    ({"structures": {"size": "huge"}}, "structures.size"),
    ({"campaign": {"species": ["Na", "Xx"]}}, "campaign.species"),
    ({"active_learning": {"gamma_select": 20.0}}, "active_learning.gamma_select"),
    ({"potential": {"training": {"max_iterations": 5}}}, "potential.training.max_iterations"),
    ({"potential": {"training": {"max_iter": 2.5}}}, "potential.training.max_iter"),
    ({"labeller": {"kind": "vasp-magic"}}, "labeller.kind"),
    ({"active_learning": {"gamma_stop": 1.5}}, "active_learning.gamma_stop"),
    ({"active_learning": {"schedule": "random"}}, "active_learning.schedule"),
    ({"labeller": {"kind": "vasp"}}, "labeller.batch.job_template"),
    ({"scales": {"huge": {}}}, "scales.huge"),
    ({"relax": {"steps": -1}}, "relax.steps"),
    ({"relax": {"fmax": 0.0}}, "relax.fmax"),
    ({"relax": {"cell": "yes"}}, "relax.cell"),
    ({"relax": {"pressure": "high"}}, "relax.pressure"),
    ({"starting_set": {"md_temperatures": [400.0, -5.0]}}, "starting_set.md_temperatures"),
    ({"starting_set": {"md_every": 0}}, "starting_set.md_every"),
    ({"starting_set": {"md_steps": 2.5}}, "starting_set.md_steps"),
    ({"scales": {"tiny": {"production": {"stepz": 5}}}}, "production.stepz"),
    ({"analysis": {"framework_msd_max_A2": 0.0}}, "analysis.framework_msd_max_A2"),
    ({"structures": {"md_supercell": [2, 2, 2]}}, "structures.md_supercell"),  # names, not files
    ({"structures": {"files": ["a.cif"], "names": [], "md_supercell": [2, 0, 2]}}, "structures.md_supercell"),
    ({"structures": {"files": ["a.cif"], "names": [], "md_supercell": {"b": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}}},
     "structures.md_supercell"),
    ({"structures": {"files": ["a.cif"], "names": [], "md_supercell": {"a": [[0, 1, 0], [1, 0, 0], [0, 0, 1]]}}},
     "structures.md_supercell.a"),
    ({"structures": {"files": ["a.cif"], "names": [], "md_supercell": [2, 2]}}, "structures.md_supercell"),
    ({"active_learning": {"md_size_labels": "tile", "mode": "configuration"}}, "active_learning.md_size_labels"),
    ({"active_learning": {"md_size_labels": "slab"}}, "active_learning.md_size_labels"),
])
def test_bad_config_names_the_key(doc, field):
    with pytest.raises(InputFileError) as err:
        build_config(doc, "tiny", source="campaign.toml")
    assert f"field '{field}'" in str(err.value)
    assert "campaign.toml" in str(err.value)


def test_bad_files(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[campaign\nname = 1\n")
    with pytest.raises(InputFileError, match="invalid TOML"):
        load_config(bad)
    with pytest.raises(UserError, match="scale"):
        load_config("examples/nyzc75-chgnet.toml", "huge")


def test_cli_reports_bad_key_in_one_line(tmp_path, capsys):
    from mtpkit.cli import main

    bad = tmp_path / "c.toml"
    bad.write_text("[production]\nreplicas = 'five'\n")
    assert main(["run", str(bad), "--scale", "tiny", "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "production.replicas" in err[0]
    assert not (tmp_path / "out").exists()


def test_learn_only_file_with_structure_files(tmp_path):
    """A learn-only file is the same schema with the tables it needs; its structure files replace
    the preset's study structures, and relative paths are taken from the file's folder."""
    f = tmp_path / "learn.toml"
    f.write_text('[campaign]\nspecies = ["Cu"]\n[structures]\nfiles = ["cu.cif"]\n'
                 '[active_learning]\nheldout = "held.extxyz"\n')
    cfg = load_config(f, "tiny")
    assert cfg.structures.files == [tmp_path / "cu.cif"] and cfg.structures.names == []
    assert cfg.active_learning.heldout == tmp_path / "held.extxyz"
    assert cfg.active_learning.temperatures == [500.0, 800.0]  # the rest of the preset still applies


def test_production_engine_torch_sim_reaches_the_sweep(tmp_path):
    """production.engine = "torch-sim" with a device: the production sweep's runs are batched runs."""
    from mtpkit.campaign.production import production_runs
    from mtpkit.potentials.mtp_io import write_mtp
    from mtpkit.potentials.templates import make_template

    cfg = build_config({"production": {"engine": "torch-sim", "device": "cuda:1", "batch_size": 8}}, "tiny")
    write_mtp(tmp_path / "t.mtp", make_template(2, 4, 4, 1.5, 5.0))
    (tmp_path / "s").mkdir()
    runs = production_runs(cfg, tmp_path / "p", tmp_path / "t.mtp", tmp_path / "s", ["mixed-TM_oct50"])
    assert runs and all(r.engine == "torch-sim" and r.device == "cuda:1" and r.batch_size == 8 for r in runs)
    with pytest.raises(InputFileError, match=r"production\.device"):
        build_config({"production": {"engine": "torch-sim", "device": "tpu"}}, "tiny")
    plain = production_runs(build_config({}, "tiny"), tmp_path / "p", tmp_path / "t.mtp", tmp_path / "s",
                            ["mixed-TM_oct50"])
    assert all(r.engine == "plugin" for r in plain)


def test_package_paths_name_the_package_data_folder(tmp_path, monkeypatch):
    """``package:REL`` resolves inside mtpkit's data folder wherever mtpkit is installed; a missing
    file is an error naming the key and the folder looked in."""
    import mtpkit.config.load as load

    with pytest.raises(InputFileError, match=r"potential\.initial.*no-such-folder/pot\.almtp.*package data"):
        build_config({"potential": {"initial": "package:no-such-folder/pot.almtp"}}, "tiny")
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "pot.almtp").write_text("x")
    (tmp_path / "set" / "train.extxyz").write_text("x")
    monkeypatch.setattr(load, "package_data", lambda rel: tmp_path / rel)
    cfg = build_config({"potential": {"initial": "package:set/pot.almtp"},
                        "starting_set": {"initial_training": "package:set/train.extxyz"}}, "tiny")
    assert cfg.potential.initial == tmp_path / "set" / "pot.almtp"
    assert cfg.starting_set.initial_training == tmp_path / "set" / "train.extxyz"


def test_production_structures_chooses_runs_without_changing_their_seeds(tmp_path):
    """production.structures runs some of the learnt structures; each run's seed is the one it has
    when all are run, and a name that is not a campaign structure is refused, naming the key."""
    from mtpkit.campaign.production import production_runs
    from mtpkit.potentials.mtp_io import write_mtp
    from mtpkit.potentials.templates import make_template

    write_mtp(tmp_path / "t.mtp", make_template(2, 4, 4, 1.5, 5.0))
    (tmp_path / "s").mkdir()
    names = ["layered-TM_oct25", "layered-TM_oct50", "mixed-TM_oct25"]

    def runs(**production):
        cfg = build_config({"structures": {"names": names}, "production": production}, "tiny")
        return {r.run_id: r.seed for r in production_runs(cfg, tmp_path / "p", tmp_path / "t.mtp",
                                                          tmp_path / "s", names)}

    everything = runs()
    chosen = runs(structures=["mixed-TM_oct25", "layered-TM_oct25"])
    assert {k.split("/")[0] for k in chosen} == {"mixed-TM_oct25", "layered-TM_oct25"}
    assert chosen == {k: v for k, v in everything.items() if k in chosen}
    with pytest.raises(InputFileError, match=r"production\.structures.*'mixed-TM_oct75'"):
        build_config({"structures": {"names": names}, "production": {"structures": ["mixed-TM_oct75"]}}, "tiny")
