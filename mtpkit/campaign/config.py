"""Campaign configuration: one TOML file plus a size preset (``tiny``, ``default``, ``paper``).

Precedence, lowest first::

    built-in defaults  <  built-in --scale preset  <  top-level TOML tables
                       <  TOML [scales.<scale>.<table>] tables

so the example file sets what holds at every scale (species, labeller, cutoff) in
its top-level tables, and anything scale-specific under ``[scales.<name>.*]``.

Tables and keys (units: K, fs, Å, GPa):

``[campaign]``  ``name``, ``species`` (symbol of MTP type 0, 1, ...), ``seed``,
    ``workers`` (local processes for labelling and MD; 1 runs in this process),
    ``scheduler`` (``dask.distributed`` address, "" for local).
``[structures]``  ``names`` (representatives, ``[]`` = all 8 of
    :func:`mtpkit.structures.representatives.representative_structures`),
    ``size`` (of the production and fidelity MD: ``"box"``: 296-atom 2×2×2 MD box;
    ``"cell"``: its 37-atom ordering cell), ``learn_size`` (of the relaxation, starting set
    and active-learning explorations; ``""``: the same as ``size``; ``"cell"`` with ``size =
    "box"``: learn on the cells and tile the relaxed cell into the MD box).
``[labeller]``  ``kind`` (see :mod:`mtpkit.active_learning.labellers`), ``parameters``,
    ``calculator`` (for kind ``ase``), ``stress``.
``[relax]``  relaxation of every structure with the labeller before the starting set and
    production start from it: ``steps`` (FIRE steps at most; 0: no relaxation), ``fmax``
    (eV/Å), ``cell`` (relax the cell too, FrechetCellFilter), ``pressure`` (GPa).
``[starting_set]``  ``per_structure`` (labelled copies of each relaxed structure), ``rattle``
    (Å, largest Gaussian σ of the displacements; copy k of n gets σ = rattle·k/(n−1)),
    ``strain`` (max |ε| per strain component), ``md_temperatures`` (labeller Langevin MD
    of each relaxed structure at these K; ``[]``: none), ``md_steps`` (steps per
    temperature), ``md_every`` (keep every this many steps as a labelled snapshot),
    ``md_timestep`` (fs), ``relax_path`` (add the labelled frames along the relaxation).
``[potential]``  ``level``, ``radial_basis_size``, ``max_dist`` (cutoff Å), ``min_dist``
    (Å, template value; training resets it from the data), ``training`` (a table of
    :class:`mtpkit.potentials.train_config.TrainConfig` fields).
``[active_learning]``  ``temperatures`` (exploration ladder), ``steps``, ``timestep``,
    ``pressure``, ``grade_every``, ``gamma_select``, ``gamma_break``, ``gamma_stop``,
    ``labels_per_iteration``, ``candidates_per_run``, ``max_iterations``,
    ``runs_per_structure`` (exploration runs per structure and iteration, different seeds),
    ``md_size_rung`` (end the ladder with a rung at the highest production temperature in
    the production-MD structures, when ``learn_size`` makes them larger).
``[production]``  ``temperatures``, ``replicas``, ``steps``, ``timestep``, ``pressure``,
    ``barostat``, ``dump_every``, ``thermo_every``, ``restart_every``.
``[analysis]``  ``breakpoint_K`` (two Arrhenius regimes split there; 0: one regime),
    ``extrapolate_T_K``, ``max_frames``, ``o_oct_frames``, ``framework_msd_max_A2`` (a run
    whose host species (all but Na) move more than this mean squared displacement, Å², is
    reported as not solid: see :mod:`mtpkit.analysis.framework`).
``[fidelity]``  ``enabled``, ``structure`` ("" = first), ``temperature`` (0 = highest
    production temperature), ``steps``, ``dump_every``.
``[report]``  ``title``.
"""

from __future__ import annotations

import copy
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtpkit.errors import InputFileError

SCALES = ("tiny", "default", "paper")

#: Built-in defaults (the "default" scale is this plus SCALE_PRESETS["default"]).
DEFAULTS: dict[str, dict[str, Any]] = {
    "campaign": {"name": "nyzc75", "species": ["Na", "Y", "Zr", "Cl"], "seed": 2022, "workers": 1,
                 "scheduler": ""},
    "structures": {"names": [], "size": "box", "learn_size": ""},
    "labeller": {"kind": "chgnet", "parameters": {}, "calculator": "", "stress": True},
    "relax": {"steps": 200, "fmax": 0.05, "cell": True, "pressure": 0.0},
    "starting_set": {"per_structure": 12, "rattle": 0.15, "strain": 0.03, "md_temperatures": [],
                     "md_steps": 0, "md_every": 10, "md_timestep": 2.0, "relax_path": True},
    "potential": {"level": 10, "radial_basis_size": 8, "max_dist": 5.0, "min_dist": 1.5,
                  "training": {}},
    "active_learning": {"temperatures": [300.0, 600.0, 900.0, 1200.0], "steps": 5000,
                        "timestep": 2.0, "pressure": 0.0, "grade_every": 1, "gamma_select": 2.0,
                        "gamma_break": 10.0, "gamma_stop": 5.0, "labels_per_iteration": 10,
                        "candidates_per_run": 100, "max_iterations": 12, "runs_per_structure": 2,
                        "md_size_rung": False},
    "production": {"temperatures": [450.0, 500.0, 550.0, 600.0, 650.0, 700.0], "replicas": 2,
                   "steps": 25000, "timestep": 2.0, "pressure": 0.0, "barostat": "tri",
                   "dump_every": 10, "thermo_every": 100, "restart_every": 5000},
    "analysis": {"breakpoint_K": 500.0, "extrapolate_T_K": 293.0, "max_frames": 20000,
                 "o_oct_frames": 200, "framework_msd_max_A2": 2.0},
    "fidelity": {"enabled": True, "structure": "", "temperature": 0.0, "steps": 1000,
                 "dump_every": 5},
    "report": {"title": "NYZC75 MTP campaign"},
}

#: Size presets; anything not named keeps DEFAULTS.
SCALE_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {
        "structures": {"names": ["mixed-TM_oct50"], "size": "cell"},
        "relax": {"steps": 60},
        "starting_set": {"per_structure": 12, "rattle": 0.15, "strain": 0.03,
                         "md_temperatures": [400.0, 700.0], "md_steps": 120, "md_every": 6},
        "potential": {"level": 8, "training": {"max_iter": 200}},
        "active_learning": {"temperatures": [500.0, 800.0], "steps": 10000, "grade_every": 5,
                            "max_iterations": 14,
                            "labels_per_iteration": 8, "candidates_per_run": 20,
                            "runs_per_structure": 4},
        "production": {"temperatures": [500.0, 600.0, 700.0], "replicas": 1, "steps": 20000,
                       "restart_every": 5000},
        "fidelity": {"steps": 250},
        "analysis": {"o_oct_frames": 100},
    },
    "default": {
        # learn on the 37-atom ordering cells (labels and fits 8x cheaper), run production
        # MD in the 296-atom boxes tiled from the relaxed cells, as the study did with DFT
        "structures": {"names": ["layered-TM_oct50", "mixed-TM_oct50"], "size": "box",
                       "learn_size": "cell"},
        "starting_set": {"md_temperatures": [400.0, 700.0], "md_steps": 150, "md_every": 10},
        "potential": {"training": {"max_iter": 300}},
        # as the tiny preset: a ladder just above the production range (<= 700 K), explorations
        # as long as a good part of a production run, graded every 5 steps; enough iterations
        # to become reliable at 800 K too (at 12 a run stopped reliable at 500 K only, and the
        # 550-700 K production runs then extrapolated)
        # md_size_rung stays off here: measured, it doubled the run (AL 50 min instead of 15) and
        # cut the production runs that leave the trained region only from 12 to 9 of 24
        "active_learning": {"temperatures": [500.0, 800.0], "steps": 10000, "grade_every": 5,
                            "max_iterations": 30, "md_size_rung": False},
        "fidelity": {"steps": 500},
    },
    "paper": {
        "structures": {"names": [], "size": "box", "learn_size": "cell"},
        "starting_set": {"per_structure": 20, "md_temperatures": [300.0, 600.0, 900.0],
                         "md_steps": 500, "md_every": 25},
        "potential": {"level": 16, "training": {"max_iter": 1000}},
        "active_learning": {"temperatures": [300.0, 600.0, 900.0, 1200.0], "steps": 50000,
                            "labels_per_iteration": 20, "candidates_per_run": 200,
                            "max_iterations": 60, "md_size_rung": True},
        "production": {"temperatures": [350.0, 400.0, 450.0, 500.0, 550.0, 600.0, 650.0, 700.0],
                       "replicas": 5, "steps": 1000000, "dump_every": 250,
                       "restart_every": 50000},
        "fidelity": {"steps": 2500},
    },
}

_TEMPERATURE_LISTS = ("active_learning.temperatures", "production.temperatures")
_POSITIVE_INTS = ("starting_set.per_structure", "potential.level", "potential.radial_basis_size",
                  "active_learning.steps", "active_learning.grade_every",
                  "active_learning.labels_per_iteration", "active_learning.candidates_per_run",
                  "active_learning.max_iterations", "active_learning.runs_per_structure",
                  "production.replicas", "production.steps",
                  "production.dump_every", "production.thermo_every", "production.restart_every",
                  "analysis.max_frames", "analysis.o_oct_frames", "fidelity.steps",
                  "fidelity.dump_every", "campaign.workers", "starting_set.md_every")
_POSITIVE_FLOATS = ("relax.fmax", "starting_set.md_timestep", "potential.max_dist", "potential.min_dist",
                    "active_learning.timestep",
                    "production.timestep", "active_learning.gamma_select",
                    "active_learning.gamma_break", "active_learning.gamma_stop",
                    "analysis.extrapolate_T_K", "analysis.framework_msd_max_A2")
_NONNEG_INTS = ("relax.steps", "starting_set.md_steps")
_NONNEG_FLOATS = ("starting_set.rattle", "starting_set.strain", "analysis.breakpoint_K",
                  "fidelity.temperature")
_FREE_TABLES = ("labeller.parameters", "potential.training")


@dataclass
class CampaignConfig:
    """A resolved campaign configuration: ``values[table][key]``, the scale and the source."""

    values: dict[str, dict[str, Any]]
    scale: str
    source: Path | None = None

    def __getitem__(self, table: str) -> dict[str, Any]:
        return self.values[table]

    @property
    def species(self) -> list[str]:
        return list(self.values["campaign"]["species"])

    def to_dict(self) -> dict:
        return {"scale": self.scale, "source": None if self.source is None else str(self.source),
                **copy.deepcopy(self.values)}


def _merge(base: dict, over: dict, where: str, path: Path | None) -> None:
    """Merge ``over`` into ``base`` in place; unknown tables/keys raise naming the key."""
    for key, value in over.items():
        name = f"{where}.{key}" if where else key
        if key not in base:
            known = ", ".join(sorted(base))
            raise InputFileError(path, f"unknown {'key' if where else 'table'} (known: {known})",
                                 field=name)
        if name in _FREE_TABLES:
            if not isinstance(value, dict):
                raise InputFileError(path, "must be a table", field=name)
            base[key] = {**base[key], **value}
        elif isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise InputFileError(path, "must be a table", field=name)
            _merge(base[key], value, name, path)
        else:
            base[key] = value


def _get(values: dict, dotted: str) -> Any:
    table, key = dotted.split(".")
    return values[table][key]


def _validate(values: dict, path: Path | None) -> None:
    def bad(key: str, msg: str) -> InputFileError:
        return InputFileError(path, msg, field=key)

    def is_num(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    for key in _POSITIVE_INTS:
        v = _get(values, key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise bad(key, f"must be a positive integer, got {v!r}")
    for key in _POSITIVE_FLOATS:
        v = _get(values, key)
        if not is_num(v) or v <= 0:
            raise bad(key, f"must be a positive number, got {v!r}")
    for key in _NONNEG_INTS:
        v = _get(values, key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise bad(key, f"must be an integer >= 0, got {v!r}")
    for key in _NONNEG_FLOATS:
        v = _get(values, key)
        if not is_num(v) or v < 0:
            raise bad(key, f"must be a number >= 0, got {v!r}")
    for key in _TEMPERATURE_LISTS:
        v = _get(values, key)
        if not isinstance(v, list) or not v or not all(is_num(t) and t > 0 for t in v):
            raise bad(key, f"must be a non-empty list of positive temperatures (K), got {v!r}")
    md_t = values["starting_set"]["md_temperatures"]
    if not isinstance(md_t, list) or not all(is_num(t) and t > 0 for t in md_t):
        raise bad("starting_set.md_temperatures", f"must be a list of positive temperatures (K), got {md_t!r}")
    for key in ("relax.cell", "starting_set.relax_path", "active_learning.md_size_rung"):
        if not isinstance(_get(values, key), bool):
            raise bad(key, "must be true or false")
    if not is_num(values["relax"]["pressure"]):
        raise bad("relax.pressure", "must be a number (GPa)")
    species = values["campaign"]["species"]
    if not (isinstance(species, list) and species and all(isinstance(s, str) for s in species)
            and len(set(species)) == len(species)):
        raise bad("campaign.species", f"must be a list of distinct element symbols, got {species!r}")
    from ase.data import atomic_numbers

    for s in species:
        if s not in atomic_numbers:
            raise bad("campaign.species", f"{s!r} is not an element symbol")
    if not isinstance(values["campaign"]["seed"], int):
        raise bad("campaign.seed", "must be an integer")
    if not isinstance(values["campaign"]["scheduler"], str):
        raise bad("campaign.scheduler", "must be a string (a dask scheduler address or \"\")")
    st = values["structures"]
    if st["size"] not in ("box", "cell"):
        raise bad("structures.size", f"must be 'box' or 'cell', got {st['size']!r}")
    if st["learn_size"] not in ("", "box", "cell"):
        raise bad("structures.learn_size", f"must be 'box', 'cell' or '' (= size), got {st['learn_size']!r}")
    if st["learn_size"] == "box" and st["size"] == "cell":
        raise bad("structures.learn_size", "'box' needs size = 'box' (production MD cannot run in a "
                  "smaller cell than the one the potential was learned in)")
    if not isinstance(st["names"], list) or not all(isinstance(n, str) for n in st["names"]):
        raise bad("structures.names", "must be a list of representative names")
    from mtpkit.structures.representatives import OCT_OCCUPANCIES, TM_CLASSES

    known = [f"{tm}_oct{occ}" for tm in TM_CLASSES for occ in OCT_OCCUPANCIES]
    for n in st["names"]:
        if n not in known:
            raise bad("structures.names", f"unknown structure {n!r}; choose from {', '.join(known)}")
    al = values["active_learning"]
    if not 1.0 <= al["gamma_select"] <= al["gamma_break"]:
        raise bad("active_learning.gamma_select",
                  "must satisfy 1 <= gamma_select <= gamma_break")
    if not al["gamma_stop"] <= al["gamma_break"]:
        raise bad("active_learning.gamma_stop", "must be <= gamma_break")
    if values["potential"]["min_dist"] >= values["potential"]["max_dist"]:
        raise bad("potential.min_dist", "must be below potential.max_dist")
    pr = values["production"]
    if pr["barostat"] not in ("iso", "aniso", "tri"):
        raise bad("production.barostat", f"must be iso, aniso or tri, got {pr['barostat']!r}")
    for key in ("active_learning.pressure", "production.pressure"):
        if not is_num(_get(values, key)):
            raise bad(key, "must be a number (GPa)")
    if not isinstance(values["fidelity"]["enabled"], bool):
        raise bad("fidelity.enabled", "must be true or false")
    if values["fidelity"]["structure"] and st["names"] and values["fidelity"]["structure"] not in st["names"]:
        raise bad("fidelity.structure", f"{values['fidelity']['structure']!r} is not one of "
                  "structures.names")
    from mtpkit.errors import UserError
    from mtpkit.potentials.train_config import TrainConfig

    try:
        TrainConfig(**values["potential"]["training"])
    except TypeError as exc:
        raise bad("potential.training", f"unknown training setting ({exc})") from None
    except UserError as exc:
        raise bad("potential.training", str(exc)) from None
    from mtpkit.active_learning.labellers import LabellerSpec

    lab = values["labeller"]
    if not isinstance(lab["kind"], str):
        raise bad("labeller.kind", "must be a string")
    try:
        LabellerSpec(lab["kind"], dict(lab["parameters"]), lab["calculator"], bool(lab["stress"])).check()
    except UserError as exc:
        raise bad("labeller", str(exc)) from None


def build_config(overrides: dict | None = None, scale: str = "default",
                 source: str | os.PathLike | None = None) -> CampaignConfig:
    """Resolve defaults, the ``scale`` preset and ``overrides`` (a parsed TOML document).

    Raises :class:`~mtpkit.errors.InputFileError` naming the first bad key.
    """
    path = None if source is None else Path(source)
    if scale not in SCALES:
        raise InputFileError(path, f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}",
                             field="scale")
    values = copy.deepcopy(DEFAULTS)
    _merge(values, copy.deepcopy(SCALE_PRESETS[scale]), "", None)
    doc = copy.deepcopy(overrides or {})
    scales = doc.pop("scales", {})
    if not isinstance(scales, dict):
        raise InputFileError(path, "must be a table of scale tables", field="scales")
    for name in scales:
        if name not in SCALES:
            raise InputFileError(path, f"unknown scale (known: {', '.join(SCALES)})",
                                 field=f"scales.{name}")
    _merge(values, doc, "", path)
    if scale in scales:
        _merge(values, scales[scale], "", path)
    _validate(values, path)
    return CampaignConfig(values, scale, path)


def load_config(path: str | os.PathLike, scale: str = "default") -> CampaignConfig:
    """Read a campaign TOML file and resolve it at ``scale``."""
    path = Path(path).resolve()
    if not path.is_file():
        raise InputFileError(path, "campaign file not found")
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InputFileError(path, f"invalid TOML: {exc}") from None
    return build_config(doc, scale, path)
