"""Campaign description: one TOML file, validated before any work starts.

Schema (units: K, GPa, fs, Å; every key optional unless marked required)::

    [campaign]
    name = "nyzc75"              # label in reports
    folder = "campaign"          # state folder, relative to the TOML file
    max_iterations = 20          # active-learning iterations after the starting fit
    seed = 1

    [potential]
    species = ["Na", "Y", "Zr", "Cl"]    # required: symbol of MLIP type 0, 1, ...
    level = 8                    # template level (ignored with `initial`)
    initial = ""                 # optional .mtp to start from (template or trained)
    min_dist = 2.0               # Å, radial basis of a new template
    max_dist = 5.0               # Å, cutoff of a new template
    radial_basis_size = 8

    [structures]
    files = ["a.cif"]            # required: ASE-readable starting structures
    supercell = [1, 1, 1]
    initial_training = ""        # optional labelled .cfg/.extxyz to start from
    rattled_per_structure = 4    # rattled copies labelled to start (with the originals)
    rattle = 0.05                # Å, standard deviation of the rattle

    [labeller]
    kind = "chgnet"              # chgnet | sevennet | gpaw | emt | lj | morse | ase
    calculator = ""              # kind = "ase": "package.module:Class"
    parameters = {}              # calculator keyword arguments
    stress = true
    retries = 1                  # extra attempts for a failed label before quarantine
    workers = 1                  # local worker processes (1: in this process)
    scheduler = ""               # dask.distributed scheduler address

    [exploration]
    engine = "auto"              # auto (lammps when the plugin is built and basis = "all") | ase | lammps
    ensemble = "nvt"             # nvt | npt
    temperatures = [300.0]       # K, one run per structure and temperature (and pressure)
    pressures = [0.0]            # GPa (npt)
    steps = 1000                 # MD steps per run
    timestep = 1.0               # fs
    grade_every = 10             # steps between grade checks
    friction = 0.02              # 1/fs, Langevin (ase engine)
    max_candidates_per_run = 50

    [selection]
    mode = "neighborhood"        # neighborhood | configuration
    basis = "all"                # all (MLIP-3) | linear
    gamma_select = 2.0           # candidates: grade above this
    gamma_break = 10.0           # a run stops when a grade exceeds this
    max_labels_per_iteration = 20
    dedup_distance = 0.01        # Å, configurations closer than this (max atomic shift) are duplicates

    [training]                   # any field of mtpkit.potentials.train_config.TrainConfig
    max_iter = 200

    [stopping]
    gamma_max = 5.0              # done when every run reaches `steps` with max grade below this

    [validation]
    heldout = ""                 # optional labelled file: energy/force errors in each report
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtpkit.active_learning.labellers import KINDS, LabellerSpec
from mtpkit.errors import InputFileError, UserError


@dataclass
class CampaignSection:
    name: str = "campaign"
    folder: str = "campaign"
    max_iterations: int = 20
    seed: int = 1


@dataclass
class PotentialSection:
    species: list = field(default_factory=list)
    level: int = 8
    initial: str = ""
    min_dist: float = 2.0
    max_dist: float = 5.0
    radial_basis_size: int = 8


@dataclass
class StructuresSection:
    files: list = field(default_factory=list)
    supercell: list = field(default_factory=lambda: [1, 1, 1])
    initial_training: str = ""
    rattled_per_structure: int = 4
    rattle: float = 0.05


@dataclass
class LabellerSection:
    kind: str = "chgnet"
    calculator: str = ""
    parameters: dict = field(default_factory=dict)
    stress: bool = True
    retries: int = 1
    workers: int = 1
    scheduler: str = ""

    def spec(self) -> LabellerSpec:
        return LabellerSpec(kind=self.kind, parameters=dict(self.parameters), calculator=self.calculator,
                            stress=self.stress)


@dataclass
class ExplorationSection:
    engine: str = "auto"
    ensemble: str = "nvt"
    temperatures: list = field(default_factory=lambda: [300.0])
    pressures: list = field(default_factory=lambda: [0.0])
    steps: int = 1000
    timestep: float = 1.0
    grade_every: int = 10
    friction: float = 0.02
    max_candidates_per_run: int = 50


@dataclass
class SelectionSection:
    mode: str = "neighborhood"
    basis: str = "all"
    gamma_select: float = 2.0
    gamma_break: float = 10.0
    max_labels_per_iteration: int = 20
    dedup_distance: float = 0.01


@dataclass
class StoppingSection:
    gamma_max: float = 5.0


@dataclass
class ValidationSection:
    heldout: str = ""


_SECTIONS = {
    "campaign": CampaignSection,
    "potential": PotentialSection,
    "structures": StructuresSection,
    "labeller": LabellerSection,
    "exploration": ExplorationSection,
    "selection": SelectionSection,
    "stopping": StoppingSection,
    "validation": ValidationSection,
}


@dataclass
class Campaign:
    """A validated campaign; paths are absolute."""

    path: Path
    campaign: CampaignSection
    potential: PotentialSection
    structures: StructuresSection
    labeller: LabellerSection
    exploration: ExplorationSection
    selection: SelectionSection
    stopping: StoppingSection
    validation: ValidationSection
    training: dict = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return Path(self.campaign.folder)

    @property
    def species(self) -> list[str]:
        return list(self.potential.species)

    def to_dict(self) -> dict:
        out = {name: dataclasses.asdict(getattr(self, name)) for name in _SECTIONS}
        out["training"] = dict(self.training)
        return out


def _check_type(path: str, key: str, value: Any, default: Any) -> Any:
    """Coerce ``value`` to the type of ``default`` or raise naming ``key``."""
    where = f"{path}: {key}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UserError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{where}: expected an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise UserError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise UserError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(default, list):
        if not isinstance(value, list):
            raise UserError(f"{where}: expected a list, got {value!r}")
        return value
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise UserError(f"{where}: expected a table, got {value!r}")
        return value
    return value


def load_campaign(path: str | os.PathLike, check_imports: bool = True) -> Campaign:
    """Read and validate a campaign TOML; every problem names its key.

    Checks types, ranges, unknown keys and sections, that structure files
    exist and hold only the potential's species, and (``check_imports``) that
    the labeller can be imported.
    """
    p = Path(path).resolve()
    try:
        raw = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise InputFileError(p, "campaign file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputFileError(p, f"not valid TOML: {exc}") from None
    known = set(_SECTIONS) | {"training"}
    for key in raw:
        if key not in known:
            raise UserError(f"{p}: unknown section [{key}]; known sections: {', '.join(sorted(known))}")
    sections: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        table = raw.get(name, {})
        if not isinstance(table, dict):
            raise UserError(f"{p}: [{name}] must be a table")
        defaults = cls()
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in table.items():
            if key not in names:
                raise UserError(f"{p}: unknown key {name}.{key}; known keys of [{name}]: "
                                f"{', '.join(sorted(names))}")
            kwargs[key] = _check_type(str(p), f"{name}.{key}", value, getattr(defaults, key))
        sections[name] = cls(**kwargs)
    training = raw.get("training", {})
    if not isinstance(training, dict):
        raise UserError(f"{p}: [training] must be a table")
    from mtpkit.potentials.train_config import TrainConfig

    tc_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for key in training:
        if key not in tc_fields:
            raise UserError(f"{p}: unknown key training.{key}; known keys of [training]: "
                            f"{', '.join(sorted(tc_fields))}")
    try:
        TrainConfig(**training)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{p}: [training]: {exc}") from None
    camp = Campaign(path=p, training=dict(training), **sections)
    _validate(camp, check_imports)
    return camp


def _resolve(base: Path, name: str) -> Path:
    q = Path(name).expanduser()
    return q if q.is_absolute() else (base / q)


def _validate(c: Campaign, check_imports: bool) -> None:
    p = c.path
    base = p.parent

    def err(key, msg):
        return UserError(f"{p}: {key}: {msg}")

    c.campaign.folder = str(_resolve(base, c.campaign.folder))
    if c.campaign.max_iterations < 0:
        raise err("campaign.max_iterations", "must be >= 0 (0: only the starting fit)")
    # potential
    sp = c.potential.species
    if not sp or not all(isinstance(s, str) for s in sp):
        raise err("potential.species", "give the chemical symbols of the MLIP types, e.g. [\"Na\", \"Cl\"]")
    from ase.data import atomic_numbers

    for s in sp:
        if s not in atomic_numbers:
            raise err("potential.species", f"{s!r} is not a chemical symbol")
    if len(set(sp)) != len(sp):
        raise err("potential.species", "a symbol is repeated")
    if c.potential.initial:
        ini = _resolve(base, c.potential.initial)
        if not ini.exists():
            raise err("potential.initial", f"file not found: {ini}")
        c.potential.initial = str(ini)
        from mtpkit.potentials.mtp_io import read_mtp

        n = read_mtp(ini).species_count
        if n != len(sp):
            raise err("potential.species", f"{len(sp)} species given but {ini.name} has species_count = {n}")
    else:
        if not 2 <= c.potential.level <= 28:
            raise err("potential.level", f"must be between 2 and 28, got {c.potential.level}")
        if not 0 <= c.potential.min_dist < c.potential.max_dist:
            raise err("potential.min_dist", "need 0 <= min_dist < max_dist")
        if c.potential.radial_basis_size < 2:
            raise err("potential.radial_basis_size", "must be >= 2")
    # structures
    if not c.structures.files:
        raise err("structures.files", "give at least one starting structure")
    files = []
    for f in c.structures.files:
        if not isinstance(f, str):
            raise err("structures.files", f"expected file names, got {f!r}")
        q = _resolve(base, f)
        if not q.exists():
            raise err("structures.files", f"file not found: {q}")
        files.append(str(q))
    c.structures.files = files
    sc = c.structures.supercell
    if len(sc) != 3 or not all(isinstance(x, int) and x >= 1 for x in sc):
        raise err("structures.supercell", "three positive integers")
    if c.structures.rattled_per_structure < 0:
        raise err("structures.rattled_per_structure", "must be >= 0")
    if c.structures.rattle < 0:
        raise err("structures.rattle", "must be >= 0 Å")
    if c.structures.initial_training:
        q = _resolve(base, c.structures.initial_training)
        if not q.exists():
            raise err("structures.initial_training", f"file not found: {q}")
        c.structures.initial_training = str(q)
    from mtpkit.active_learning.loop import (
        read_structures,  # species check needs the reader
    )

    for f, atoms in zip(files, read_structures(files, (1, 1, 1))):
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(sp))
        if unknown:
            raise err("structures.files", f"{f} contains {', '.join(unknown)}, not in potential.species "
                                          f"{', '.join(sp)}")
    # labeller
    lab = c.labeller
    if lab.kind not in KINDS:
        raise err("labeller.kind", f"unknown labeller {lab.kind!r}; choose one of {', '.join(KINDS)}")
    if lab.retries < 0:
        raise err("labeller.retries", "must be >= 0")
    if lab.workers < 1:
        raise err("labeller.workers", "must be >= 1")
    if check_imports:
        try:
            lab.spec().check("labeller")
        except UserError as exc:
            raise UserError(f"{p}: {exc}") from None
    # exploration
    ex = c.exploration
    if ex.engine not in ("auto", "ase", "lammps"):
        raise err("exploration.engine", f"one of auto, ase, lammps; got {ex.engine!r}")
    if ex.ensemble not in ("nvt", "npt"):
        raise err("exploration.ensemble", f"one of nvt, npt; got {ex.ensemble!r}")
    if not ex.temperatures:
        raise err("exploration.temperatures", "the list is empty; give at least one temperature in K")
    for t in ex.temperatures:
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0:
            raise err("exploration.temperatures", f"temperatures must be > 0 K, got {t!r}")
    if not ex.pressures:
        raise err("exploration.pressures", "the list is empty")
    for pr in ex.pressures:
        if isinstance(pr, bool) or not isinstance(pr, (int, float)) or not math.isfinite(pr):
            raise err("exploration.pressures", f"pressures must be numbers in GPa, got {pr!r}")
    if ex.steps < 1:
        raise err("exploration.steps", "must be >= 1")
    if not ex.timestep > 0:
        raise err("exploration.timestep", "must be > 0 fs")
    if ex.grade_every < 1:
        raise err("exploration.grade_every", "must be >= 1")
    if not ex.friction > 0:
        raise err("exploration.friction", "must be > 0 (1/fs)")
    if ex.max_candidates_per_run < 1:
        raise err("exploration.max_candidates_per_run", "must be >= 1")
    # selection
    s = c.selection
    if s.mode not in ("neighborhood", "configuration"):
        raise err("selection.mode", f"neighborhood or configuration, got {s.mode!r}")
    if s.basis not in ("all", "linear"):
        raise err("selection.basis", f"all or linear, got {s.basis!r}")
    if not 1.0 < s.gamma_select <= s.gamma_break:
        raise err("selection.gamma_select", "need 1 < gamma_select <= gamma_break")
    if s.max_labels_per_iteration < 1:
        raise err("selection.max_labels_per_iteration", "must be >= 1")
    if s.dedup_distance < 0:
        raise err("selection.dedup_distance", "must be >= 0 Å")
    if not c.stopping.gamma_max > 1.0:
        raise err("stopping.gamma_max", "must be > 1")
    if c.validation.heldout:
        q = _resolve(base, c.validation.heldout)
        if not q.exists():
            raise err("validation.heldout", f"file not found: {q}")
        c.validation.heldout = str(q)
