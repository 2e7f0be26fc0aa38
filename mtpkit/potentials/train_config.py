"""Settings of an MTP fit (:class:`TrainConfig`) and their TOML file form.

A TOML file holds flat ``key = value`` pairs: every field of
:class:`TrainConfig` plus the file options of ``mtpkit train`` (``init``,
``train``, ``valid``, ``species``, ``output``, ``report``, and for a template
``max_dist``, ``radial_basis_size``). Example::

    init = 16                       # level-16 template, or a path to a .mtp
    train = "train.cfg"
    species = ["Na", "Y", "Zr", "Cl"]
    output = "pot.mtp"
    max_dist = 5.0                  # cutoff (Å) and radial basis size of a template
    radial_basis_size = 8
    energy_weight = 1.0
    force_weight = 0.01
    stress_weight = 0.001
    max_iter = 2000
    seed = 1

An unknown key or a value of the wrong type is an error naming the file and key.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, fields
from typing import Any

from mtpkit.errors import InputFileError, UserError

WEIGHTINGS = ("vibrations", "molecules", "structures")


@dataclass
class TrainConfig:
    """How to fit an MTP (see :func:`mtpkit.potentials.training.train`).

    Attributes
    ----------
    energy_weight, force_weight, stress_weight:
        ``w_E``, ``w_F``, ``w_S`` of the loss (MLIP's defaults 1, 0.01, 0.001).
    weighting:
        How configurations of different sizes ``N`` weigh against each other,
        as MLIP's ``--weighting``: ``"vibrations"`` (MLIP's default; energy and
        virial terms divided by ``N``), ``"molecules"`` (force term divided by
        ``N``), ``"structures"`` (energy and virial by ``N^2``, forces by ``N``).
    method:
        ``"varpro"`` (default): L-BFGS over the radial coefficients while the
        species and moment coefficients, on which the loss is quadratic, are
        re-solved by linear least squares at every evaluation (variable
        projection; the gradient is the loss gradient at the linear optimum).
        ``"joint"``: one linear least-squares solve, then L-BFGS over all
        parameters together (MLIP's scheme).
    max_iter:
        Maximum L-BFGS iterations.
    seed:
        Seed of the random initial radial coefficients and of the random
        train/validation split.
    init_radial_scale:
        Fresh radial coefficients are drawn uniformly from
        ``[-init_radial_scale, init_radial_scale]``.
    init_params:
        ``"auto"`` (random radial coefficients when the initial potential is
        an untrained template, ``mtp.trained`` false; otherwise warm start),
        ``"random"`` (always redraw), ``"keep"`` (always warm start).
    linear_fit:
        With ``method = "joint"``: fit species and moment coefficients by
        linear least squares before L-BFGS (for a warm start the result is kept
        only if it lowers the loss). ``"varpro"`` always solves them.
    ridge:
        Ridge term of the linear least squares, relative to the mean diagonal
        of the normal matrix.
    min_dist:
        ``"data"``: set min_dist to the smallest interatomic distance in the
        training set (as MLIP does; for a warm start only lowered, never
        raised); ``"keep"``: leave it; or a number in Å.
    valid_fraction:
        Fraction of the training configurations held out for validation when
        no validation set is given (0 disables).
    valid_every:
        Evaluate the validation loss every this many iterations.
    patience:
        Early stopping: stop after this many validation checks without a new
        best validation loss (0 disables); the best-validation parameters are
        returned.
    print_every:
        Print a progress line every this many iterations (0: only start/end).
    checkpoint:
        Path of a ``.mtp`` file rewritten atomically with the current
        parameters every ``checkpoint_every`` iterations (``None``: none).
        Resume by using it as the initial potential.
    checkpoint_every:
        Iterations between checkpoints.
    ftol, gtol:
        L-BFGS-B stopping tolerances (loss decrease, largest gradient
        component), applied to the loss divided by its value after the
        initial linear fit.
    lbfgs_memory:
        Number of L-BFGS correction pairs.
    """

    energy_weight: float = 1.0
    force_weight: float = 0.01
    stress_weight: float = 0.001
    weighting: str = "vibrations"
    method: str = "varpro"
    max_iter: int = 1000
    seed: int = 0
    init_radial_scale: float = 0.1
    init_params: str = "auto"
    linear_fit: bool = True
    ridge: float = 1e-10
    min_dist: str | float = "data"
    valid_fraction: float = 0.0
    valid_every: int = 10
    patience: int = 10
    print_every: int = 10
    checkpoint: str | None = None
    checkpoint_every: int = 50
    ftol: float = 1e-12
    gtol: float = 1e-10
    lbfgs_memory: int = 20

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`UserError` naming the first invalid setting."""
        for name in ("energy_weight", "force_weight", "stress_weight", "init_radial_scale",
                     "ridge", "ftol", "gtol"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
                raise UserError(f"{name} must be a finite number >= 0, got {v!r}")
        if self.energy_weight == self.force_weight == self.stress_weight == 0:
            raise UserError("energy_weight, force_weight and stress_weight are all 0")
        for name in ("max_iter", "seed", "valid_every", "patience", "print_every",
                     "checkpoint_every", "lbfgs_memory"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise UserError(f"{name} must be an integer >= 0, got {v!r}")
        for name in ("valid_every", "checkpoint_every", "lbfgs_memory"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.weighting not in WEIGHTINGS:
            raise UserError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {self.weighting!r}")
        if self.method not in ("varpro", "joint"):
            raise UserError(f"method must be varpro or joint, got {self.method!r}")
        if self.init_params not in ("auto", "random", "keep"):
            raise UserError(f"init_params must be auto, random or keep, got {self.init_params!r}")
        if not isinstance(self.linear_fit, bool):
            raise UserError(f"linear_fit must be true or false, got {self.linear_fit!r}")
        md = self.min_dist
        if isinstance(md, str) and md not in ("data", "keep"):
            try:
                self.min_dist = float(md)
            except ValueError:
                raise UserError(f"min_dist must be 'data', 'keep' or a distance in Å, got {md!r}") from None
        if not isinstance(self.min_dist, str) and not (
                isinstance(self.min_dist, (int, float)) and math.isfinite(self.min_dist)
                and self.min_dist >= 0):
            raise UserError(f"min_dist must be 'data', 'keep' or a distance >= 0 in Å, got {md!r}")
        if not isinstance(self.valid_fraction, (int, float)) or not 0 <= self.valid_fraction < 1:
            raise UserError(f"valid_fraction must be in [0, 1), got {self.valid_fraction!r}")
        if self.checkpoint is not None and not isinstance(self.checkpoint, (str, os.PathLike)):
            raise UserError(f"checkpoint must be a path, got {self.checkpoint!r}")

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise UserError(f"unknown training setting(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)


#: Keys of the TOML file that are not :class:`TrainConfig` fields (``mtpkit train`` options).
FILE_KEYS = ("init", "train", "valid", "species", "output", "report", "max_dist", "radial_basis_size")


def config_keys() -> tuple[str, ...]:
    """Every key a training TOML file may hold."""
    return tuple(f.name for f in fields(TrainConfig)) + FILE_KEYS


def _expected_type(name: str):
    hints = {f.name: f.type for f in fields(TrainConfig)}
    return hints.get(name)


def read_train_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training TOML file into a flat dict, checking keys and value types.

    Raises :class:`~mtpkit.errors.InputFileError` naming the file and key for a
    syntax error, an unknown key (also inside a table) or a wrongly typed value.
    """
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise InputFileError(path, "file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputFileError(path, f"not valid TOML: {exc}") from None
    allowed = set(config_keys())
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in allowed:
            if isinstance(value, dict):
                raise InputFileError(path, "unknown table (settings are flat key = value pairs)",
                                     field=key)
            raise InputFileError(path, f"unknown key; allowed: {', '.join(sorted(allowed))}",
                                 field=key)
        out[key] = _check_value(path, key, value)
    return out


def _check_value(path, key: str, value: Any) -> Any:
    def bad(what: str) -> InputFileError:
        return InputFileError(path, f"expected {what}, got {value!r}", field=key)

    if key == "init":
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise bad("a template level (integer) or a path")
        return value
    if key in ("train", "valid", "output", "report", "checkpoint"):
        if not isinstance(value, str):
            raise bad("a path string")
        return value
    if key == "max_dist":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise bad("a cutoff in Å > 0")
        return float(value)
    if key == "radial_basis_size":
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise bad("an integer >= 2")
        return value
    if key == "species":
        if isinstance(value, str):
            value = [s.strip() for s in value.split(",") if s.strip()]
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise bad("a list of chemical symbols")
        return value
    typ = _expected_type(key)
    if typ in ("float",):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)
    if typ in ("int",):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if typ in ("bool",):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if typ in ("str",):
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if key == "min_dist":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise bad("'data', 'keep' or a distance in Å")
        return value
    return value


def config_from_mapping(values: dict[str, Any], source: str | os.PathLike | None = None) -> TrainConfig:
    """A :class:`TrainConfig` from the :class:`TrainConfig` keys of ``values``
    (other keys are ignored); errors name ``source`` when given."""
    names = {f.name for f in fields(TrainConfig)}
    kwargs = {k: v for k, v in values.items() if k in names}
    try:
        return TrainConfig(**kwargs)
    except UserError as exc:
        if source is not None:
            raise InputFileError(source, str(exc)) from None
        raise
