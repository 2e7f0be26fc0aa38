"""The one configuration schema of ``mtpkit run`` and ``mtpkit learn`` (pydantic v2 models).

A campaign file is TOML with the tables below; ``mtpkit learn`` reads the same file
and runs the stages up to active learning, so a learn-only file is this schema with
only the tables it needs. Every key has a default; units: K, fs, Å, GPa, eV.

``[campaign]``        name, species (symbol of MTP type 0, 1, ...), seed, workers (local
                      processes for labelling and MD), scheduler (dask address, "" = local)
``[structures]``      where the structures come from: ``names`` (NYZC75 study structures,
                      [] = all 8) or ``files`` (any ASE-readable files, relative to the TOML
                      file), ``supercell``; ``size`` / ``learn_size`` (NYZC75: "box" = 296-atom
                      MD box, "cell" = 37-atom ordering cell); for files: ``md_supercell``
                      (production box) and ``reference`` (the study structure each file is a
                      state of, which production and analysis need)
``[labeller]``        kind, parameters, calculator, stress, retries, store (a label store to
                      reuse and extend), and for kind vasp/qe the batch job settings
``[relax]``           labeller relaxation (and optional anneal-and-quench) of every structure
``[starting_set]``    labelled strained/rattled copies, labeller-MD snapshots, relaxation path
                      frames, initial_training (a labelled file)
``[potential]``       template (level, radial_basis_size, min_dist, max_dist) or ``initial``
                      (.mtp/.almtp warm start), training (a TrainConfig)
``[active_learning]`` exploration schedule, MD, grades, candidates, selection, stopping
``[production]``, ``[analysis]``, ``[fidelity]``, ``[report]``  the later stages of ``run``
                      (production ``engine = "torch-sim"`` with ``device`` runs the replicas as
                      batches on the MTP's torch-sim model, :mod:`mtpkit.md.batched`)

The scale presets (``tiny``, ``default``, ``paper``) are data: ``scales.toml`` beside this
module. Cross-field contradictions (γ_stop < γ_select, γ_select > γ_break, ...) are
refused here, before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_serializer, field_validator, model_validator

from mtpkit.potentials.train_config import TrainConfig

PositiveInt = Annotated[int, Field(strict=True, ge=1)]
NonNegInt = Annotated[int, Field(strict=True, ge=0)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Number = Annotated[float, Field(allow_inf_nan=False)]
Temperatures = Annotated[list[PositiveFloat], Field(min_length=1)]


def supercell_matrix(value: Any) -> list[list[int]]:
    """An integer 3x3 matrix with a positive determinant (a right-handed supercell, box = S @ cell),
    from [n1, n2, n3] (diagonal) or three rows of three integers; ValueError otherwise."""
    def ints(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if isinstance(value, list | tuple) and len(value) == 3 and all(ints(n) for n in value):
        m = [[n if i == j else 0 for j in range(3)] for i, n in enumerate(value)]
    elif (isinstance(value, list | tuple) and len(value) == 3
          and all(isinstance(r, list | tuple) and len(r) == 3 and all(ints(n) for n in r) for r in value)):
        m = [list(r) for r in value]
    else:
        raise ValueError(f"give [n1, n2, n3] or three rows of three integers, got {value!r}")
    det = (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
           + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))
    if det < 1:
        raise ValueError(f"determinant {det}: a supercell needs a positive one (a right-handed box)")
    return m

#: labeller kinds the schema accepts (in-process ASE calculators and batch DFT job folders)
LABELLER_KINDS = ("chgnet", "sevennet", "gpaw", "emt", "lj", "morse", "ase", "vasp", "qe")


class Section(BaseModel):
    """A TOML table: unknown keys are errors, values are checked on assignment too.

    Checks across keys raise ``ValueError("<dotted key>: <message>")``; the loader turns
    the key into the error's location.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CampaignCfg(Section):
    name: str = "nyzc75"
    species: list[str] = Field(default_factory=lambda: ["Na", "Y", "Zr", "Cl"], min_length=1)
    seed: Annotated[int, Field(strict=True)] = 2022
    workers: PositiveInt = 1
    scheduler: str = ""

    @field_validator("species")
    @classmethod
    def _elements(cls, v: list[str]) -> list[str]:
        from ase.data import atomic_numbers

        for s in v:
            if s not in atomic_numbers:
                raise ValueError(f"{s!r} is not an element symbol")
        if len(set(v)) != len(v):
            raise ValueError(f"species must be distinct, got {v}")
        return v


class StructuresCfg(Section):
    names: list[str] = Field(default_factory=list)
    files: list[Path] = Field(default_factory=list)
    supercell: tuple[PositiveInt, PositiveInt, PositiveInt] = (1, 1, 1)
    size: Literal["box", "cell"] = "box"
    learn_size: Literal["", "box", "cell"] = ""
    # files only: production MD runs in each file's structure repeated along its cell vectors
    # (learning stays in the file's cell): [n1, n2, n3] for every file, or a table of integer
    # 3x3 matrices S (box = S @ cell) keyed by file stem, one per file; unset: MD in the file's cell
    md_supercell: Any = None
    # files only: the NYZC75 study structure each file is a state of (file stem -> name, e.g. an
    # annealed minimum of "layered-TM_oct25"), so that production, SRO, O_oct and the report know its
    # TM class, octahedral occupancy and Na reference sites; every file needs one to go past learning
    reference: dict[str, str] = Field(default_factory=dict)

    @field_validator("md_supercell", mode="before")
    @classmethod
    def _matrices(cls, v: Any) -> list[list[int]] | dict[str, list[list[int]]] | None:
        if v is None:
            return None
        if isinstance(v, dict):
            out = {}
            for stem, m in v.items():
                try:
                    out[str(stem)] = supercell_matrix(m)
                except ValueError as exc:
                    raise ValueError(f"{stem}: {exc}") from None
            return out
        return supercell_matrix(v)

    @field_validator("names")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        for n in v:
            _study_name(n)
        return v

    @field_validator("reference")
    @classmethod
    def _known_reference(cls, v: dict[str, str]) -> dict[str, str]:
        for stem, n in v.items():
            try:
                _study_name(n)
            except ValueError as exc:
                raise ValueError(f"{stem}: {exc}") from None
        return v

    @model_validator(mode="after")
    def _consistent(self) -> StructuresCfg:
        if self.learn_size == "box" and self.size == "cell":
            raise ValueError("learn_size: 'box' needs size = 'box' (production MD cannot run in a smaller "
                             "cell than the one the potential was learned in)")
        if self.files and self.names:
            raise ValueError("files: give either names (study structures) or files, not both")
        if self.md_supercell is not None and not self.files:
            raise ValueError("md_supercell: applies to files; the study structures (names) take their "
                             "production box from size / learn_size")
        if self.reference and not self.files:
            raise ValueError("reference: applies to files (the study structures of names carry their own)")
        unknown = set(self.reference) - {Path(f).stem for f in self.files}
        if unknown:
            raise ValueError(f"reference: {', '.join(sorted(unknown))} is not the stem of a file in files")
        if isinstance(self.md_supercell, dict):
            stems = {Path(f).stem for f in self.files}
            if set(self.md_supercell) != stems:
                raise ValueError(f"md_supercell: give one matrix per file stem ({', '.join(sorted(stems))}); got "
                                 f"{', '.join(sorted(self.md_supercell))}")
        return self

    def md_supercell_of(self, stem: str) -> list[list[int]] | None:
        """The integer matrix S (production box = S @ cell) of the file named ``stem``, or None."""
        if self.md_supercell is None:
            return None
        if isinstance(self.md_supercell, dict):
            return [list(row) for row in self.md_supercell[stem]]
        return [list(row) for row in self.md_supercell]


def _study_name(name: str) -> str:
    """``name`` if it names one of the 8 NYZC75 study structures; ValueError otherwise."""
    from mtpkit.structures.representatives import OCT_OCCUPANCIES, TM_CLASSES

    known = [f"{tm}_oct{occ}" for tm in TM_CLASSES for occ in OCT_OCCUPANCIES]
    if name not in known:
        raise ValueError(f"unknown structure {name!r}; choose from {', '.join(known)}")
    return name


class BatchCfg(Section):
    """VASP / Quantum ESPRESSO job folders (``labeller.kind = "vasp" | "qe"``)."""

    job_template: str = ""
    submit_command: str = "sbatch job.sh"
    input_parameters: dict[str, Any] = Field(default_factory=dict)
    poll_seconds: PositiveFloat = 60.0
    timeout_hours: PositiveFloat = 48.0


class LabellerCfg(Section):
    kind: str = "chgnet"
    parameters: dict[str, Any] = Field(default_factory=dict)
    calculator: str = ""
    stress: StrictBool = True
    retries: NonNegInt = 1
    store: Path | None = None
    batch: BatchCfg = Field(default_factory=BatchCfg)

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in LABELLER_KINDS:
            raise ValueError(f"unknown labeller {v!r}; choose one of {', '.join(LABELLER_KINDS)}")
        return v

    @model_validator(mode="after")
    def _batch(self) -> LabellerCfg:
        if self.kind in ("vasp", "qe") and not self.batch.job_template:
            raise ValueError(f"batch.job_template: kind = {self.kind!r} needs the job script text")
        if self.kind == "ase" and ":" not in self.calculator:
            raise ValueError("calculator: kind = 'ase' needs 'package.module:Class'")
        return self


class RelaxCfg(Section):
    steps: NonNegInt = 200
    fmax: PositiveFloat = 0.05
    cell: StrictBool = True
    pressure: Number = 0.0
    anneal_temperature: NonNegFloat = 0.0
    anneal_steps: NonNegInt = 1500
    anneal_seeds: NonNegInt = 2


class StartingSetCfg(Section):
    per_structure: NonNegInt = 12
    rattle: NonNegFloat = 0.15
    strain: NonNegFloat = 0.03
    md_temperatures: list[PositiveFloat] = Field(default_factory=list)
    md_steps: NonNegInt = 0
    md_every: PositiveInt = 10
    md_timestep: PositiveFloat = 2.0
    relax_path: StrictBool = True
    initial_training: Path | None = None


class PotentialCfg(Section):
    level: PositiveInt = 10
    radial_basis_size: PositiveInt = 8
    max_dist: PositiveFloat = 5.0
    min_dist: PositiveFloat = 1.5
    initial: Path | None = None
    # false: the first potential of active learning is ``initial`` as it is (a trained potential, e.g. the
    # shipped PBE one, with the training set it came with), graded and refitted only once labels are added
    refit_initial: StrictBool = True
    training: TrainConfig = Field(default_factory=TrainConfig)

    @field_serializer("training")
    def _given_training(self, training: TrainConfig) -> dict[str, Any]:
        # only the settings given: the fit supplies its own seed and print_every where unset
        return training.model_dump(mode="json", exclude_unset=True)

    @model_validator(mode="after")
    def _dists(self) -> PotentialCfg:
        if self.min_dist >= self.max_dist:
            raise ValueError("min_dist: must be below max_dist")
        if not self.refit_initial and self.initial is None:
            raise ValueError("refit_initial: false takes potential.initial as it is, and none is given")
        return self


class ActiveLearningCfg(Section):
    """Exploration, candidates, selection and stopping of the one active-learning engine."""

    # exploration
    temperatures: Temperatures = Field(default_factory=lambda: [300.0, 600.0, 900.0, 1200.0])
    schedule: Literal["ladder", "all"] = "ladder"
    steps: PositiveInt = 5000
    timestep: PositiveFloat = 2.0
    ensemble: Literal["npt", "nvt"] = "npt"
    pressure: Number = 0.0
    barostat: Literal["iso", "aniso", "tri"] = "tri"
    engine: Literal["auto", "lammps", "ase"] = "auto"
    friction: PositiveFloat = 0.02
    runs_per_structure: PositiveInt = 2
    md_size_rung: StrictBool = False
    # what the production-size rung labels: the selected box frames ("box"), or cells of the
    # learning structure's size cut from them around their most extrapolating atom ("tile",
    # mtpkit.active_learning.cut; measured to teach seam artefacts in 37-atom NYZC75 cells, see its
    # docstring), or nothing ("none":
    # the rung only checks that the potential stays reliable in the boxes, and stops if it does not)
    md_size_labels: Literal["box", "tile", "none"] = "box"
    # MD steps of each run of the production-size rung (0: ``steps``); give the production length
    # there, so that "reliable" means production-length box runs stayed below gamma_stop
    md_size_steps: NonNegInt = 0
    # grades and candidates
    grade_every: PositiveInt = 1
    gamma_select: PositiveFloat = 2.0
    gamma_break: PositiveFloat = 10.0
    candidates_per_run: PositiveInt = 100
    candidate_policy: Literal["top", "even"] = "even"
    dedup_distance: NonNegFloat = 0.01
    # selection
    mode: Literal["neighborhood", "configuration"] = "neighborhood"
    basis: Literal["all", "linear"] = "all"
    labels_per_iteration: PositiveInt = 10
    # stopping
    gamma_stop: PositiveFloat = 5.0
    max_iterations: PositiveInt = 12
    max_labels: NonNegInt = 0
    # validation
    heldout: Path | None = None
    # probes: frames drawn at random from each iteration's exploration trajectories (every dumped
    # frame but a run's first equally likely), whatever their grade, labelled beside the selection
    # (store subset "probe") and trained on from then on. The exploring potential's errors on them
    # are the iteration's measured accuracy on the states its MD visits, which a low grade does not
    # promise. With a threshold above 0, a rung counts as reliable only when this iteration's probes
    # are within it too (meV/atom for the energy RMSE, eV/Å for the force RMSE, both uncentred).
    probes_per_iteration: NonNegInt = 0
    probe_energy_rmse: NonNegFloat = 0.0
    probe_force_rmse: NonNegFloat = 0.0

    @model_validator(mode="after")
    def _gammas(self) -> ActiveLearningCfg:
        if not 1.0 <= self.gamma_select:
            raise ValueError("gamma_select: must be >= 1 (a grade below 1 is inside the active set)")
        if self.gamma_select > self.gamma_break:
            raise ValueError(f"gamma_select: {self.gamma_select:g} must not exceed gamma_break "
                             f"({self.gamma_break:g})")
        if self.gamma_stop < self.gamma_select:
            raise ValueError(f"gamma_stop: {self.gamma_stop:g} is below gamma_select ({self.gamma_select:g}): "
                             "runs would count as reliable while saving candidates")
        if self.gamma_stop > self.gamma_break:
            raise ValueError(f"gamma_stop: {self.gamma_stop:g} must not exceed gamma_break "
                             f"({self.gamma_break:g})")
        if (self.probe_energy_rmse or self.probe_force_rmse) and not self.probes_per_iteration:
            raise ValueError("probe_energy_rmse / probe_force_rmse: set probes_per_iteration, the frames "
                             "whose errors they bound")
        if self.md_size_labels == "tile" and self.mode != "neighborhood":
            raise ValueError("md_size_labels: 'tile' cuts around the atom with the highest neighbourhood "
                             "grade and needs mode = 'neighborhood'")
        return self


class ProductionCfg(Section):
    temperatures: Temperatures = Field(default_factory=lambda: [450.0, 500.0, 550.0, 600.0, 650.0, 700.0])
    replicas: PositiveInt = 2
    # names of the campaign's structures to run (empty: all); learning still covers all of them, and
    # a structure's seeds do not depend on which others are chosen
    structures: list[str] = Field(default_factory=list)
    steps: PositiveInt = 25000
    timestep: PositiveFloat = 2.0
    pressure: Number = 0.0
    barostat: Literal["iso", "aniso", "tri"] = "tri"
    dump_every: PositiveInt = 10
    thermo_every: PositiveInt = 100
    restart_every: PositiveInt = 5000
    engine: Literal["plugin", "torch-sim"] = "plugin"
    device: str = "cpu"
    dtype: Literal["float64", "float32"] = "float64"
    batch_size: PositiveInt | None = None

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not (v in ("cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit())):
            raise ValueError(f"must be 'cpu', 'cuda' or 'cuda:N', got {v!r}")
        return v


class AnalysisCfg(Section):
    breakpoint_K: NonNegFloat = 500.0
    extrapolate_T_K: PositiveFloat = 293.0
    max_frames: PositiveInt = 20000
    o_oct_frames: PositiveInt = 200
    framework_msd_max_A2: PositiveFloat = 2.0


class FidelityCfg(Section):
    enabled: StrictBool = True
    structure: str = ""
    temperature: NonNegFloat = 0.0
    steps: PositiveInt = 1000
    dump_every: PositiveInt = 5


class ReportCfg(Section):
    title: str = "NYZC75 MTP campaign"


class PipelineConfig(Section):
    """The whole campaign: every table, the scale it was resolved at and its source file."""

    campaign: CampaignCfg = Field(default_factory=CampaignCfg)
    structures: StructuresCfg = Field(default_factory=StructuresCfg)
    labeller: LabellerCfg = Field(default_factory=LabellerCfg)
    relax: RelaxCfg = Field(default_factory=RelaxCfg)
    starting_set: StartingSetCfg = Field(default_factory=StartingSetCfg)
    potential: PotentialCfg = Field(default_factory=PotentialCfg)
    active_learning: ActiveLearningCfg = Field(default_factory=ActiveLearningCfg)
    production: ProductionCfg = Field(default_factory=ProductionCfg)
    analysis: AnalysisCfg = Field(default_factory=AnalysisCfg)
    fidelity: FidelityCfg = Field(default_factory=FidelityCfg)
    report: ReportCfg = Field(default_factory=ReportCfg)
    scale: str = "default"
    source: Path | None = None

    @property
    def species(self) -> list[str]:
        return list(self.campaign.species)

    @model_validator(mode="after")
    def _across_tables(self) -> PipelineConfig:
        st, fid = self.structures, self.fidelity
        if fid.structure and st.names and fid.structure not in st.names:
            raise ValueError(f"fidelity.structure: {fid.structure!r} is not one of structures.names")
        known = list(st.names) or [Path(f).stem for f in st.files]
        unknown = [n for n in self.production.structures if known and n not in known]
        if unknown:
            raise ValueError(f"production.structures: {', '.join(map(repr, unknown))} not among the campaign's "
                             f"structures ({', '.join(known)})")
        if st.files and (st.size != "box" or st.learn_size):
            raise ValueError("structures.size: size and learn_size apply to the study structures (names), not to files")
        return self

    def to_dict(self) -> dict:
        """Plain data (JSON/TOML-safe: paths as strings, no None values)."""
        return _plain(self.model_dump(mode="json"))


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- mtpkit sweep files


class SweepPotentialCfg(Section):
    """``[potential]`` of a sweep file: the potential, its species and the MD engine."""

    file: Path
    species: list[str] = Field(min_length=1)
    engine: Literal["plugin", "external", "torch-sim"] = "plugin"
    extrapolation: dict[str, Any] | None = None
    device: str | None = None
    dtype: Literal["float64", "float32"] | None = None
    batch_size: PositiveInt | None = None

    @field_validator("device")
    @classmethod
    def _device(cls, v: str | None) -> str | None:
        if v is not None and not (v in ("cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit())):
            raise ValueError(f"must be 'cpu', 'cuda' or 'cuda:N', got {v!r}")
        return v

    @model_validator(mode="after")
    def _engine_options(self) -> SweepPotentialCfg:
        if self.engine != "torch-sim":
            for key in ("device", "dtype", "batch_size"):
                if getattr(self, key) is not None:
                    raise ValueError(f"{key}: only for engine = 'torch-sim' (engine is {self.engine!r})")
        if self.extrapolation is not None and self.engine == "external":
            raise ValueError("extrapolation: extrapolation control needs engine 'plugin' or 'torch-sim'")
        return self


class SweepRunsCfg(Section):
    """``[sweep]`` of a sweep file: structures (files or globs) × temperatures (K) × replicas."""

    structures: list[str] = Field(min_length=1)
    temperatures: Temperatures
    replicas: PositiveInt = 1
    seed: NonNegInt = 1000
    output: str = "runs"
    workers: PositiveInt = 1
    scheduler: str | None = None

    @field_validator("structures", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class SweepFile(Section):
    """A sweep file (``mtpkit sweep FILE``); ``[md]`` holds :class:`mtpkit.md.run.MDSettings` fields,
    checked by the MD layer that owns them."""

    potential: SweepPotentialCfg
    md: dict[str, Any]
    sweep: SweepRunsCfg
