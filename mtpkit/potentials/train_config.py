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

An unknown key or a value of the wrong type is an error naming the file and key
(validated by the pydantic model :class:`TrainFile`).
"""

from __future__ import annotations

import math
import os
import tomllib
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mtpkit.errors import InputFileError, UserError, input_error_from_validation, validation_problem

WEIGHTINGS = ("vibrations", "molecules", "structures")

_Weight = Annotated[float, Field(ge=0, allow_inf_nan=False)]
_Count = Annotated[int, Field(ge=0)]
_Positive = Annotated[int, Field(ge=1)]


class _TrainFields(BaseModel):
    """The fields of :class:`TrainConfig` and their one-field checks (strict: ``1.0`` is
    no integer, ``true`` no number, ``"1"`` neither)."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)

    energy_weight: _Weight = 1.0
    force_weight: _Weight = 0.01
    stress_weight: _Weight = 0.001
    weighting: Literal["vibrations", "molecules", "structures"] = "vibrations"
    method: Literal["varpro", "joint"] = "varpro"
    max_iter: _Count = 1000
    seed: _Count = 0
    init_radial_scale: _Weight = 0.1
    init_params: Literal["auto", "random", "keep"] = "auto"
    linear_fit: bool = True
    ridge: _Weight = 1e-10
    min_dist: Literal["data", "keep"] | float = "data"
    valid_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.0
    valid_every: _Positive = 10
    patience: _Count = 10
    print_every: _Count = 10
    checkpoint: str | None = None
    checkpoint_every: _Positive = 50
    ftol: _Weight = 1e-12
    gtol: _Weight = 1e-10
    lbfgs_memory: _Positive = 20

    @field_validator("min_dist", mode="before")
    @classmethod
    def _min_dist(cls, v: Any) -> Any:
        if isinstance(v, str) and v not in ("data", "keep"):
            try:
                v = float(v)
            except ValueError:
                raise ValueError("must be 'data', 'keep' or a distance in Å") from None
        if isinstance(v, str):
            return v
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValueError("must be 'data', 'keep' or a distance >= 0 in Å")
        return float(v)

    @field_validator("checkpoint", mode="before")
    @classmethod
    def _path(cls, v: Any) -> Any:
        return os.fspath(v) if isinstance(v, os.PathLike) else v


class TrainConfig(_TrainFields):
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

    def __init__(self, **settings: Any) -> None:
        unknown = set(settings) - set(TrainConfig.model_fields)
        if unknown:
            raise UserError(f"unknown training setting(s): {', '.join(sorted(unknown))}")
        try:
            super().__init__(**settings)
        except ValidationError as exc:
            field, msg = validation_problem(exc)
            raise UserError(f"{field}: {msg}" if field else msg) from None

    # This __init__ only validates, as BaseModel's does: as a table of a larger model
    # ([potential.training] of a campaign file) pydantic skips it and reports the
    # error under the table's dotted key.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @model_validator(mode="after")
    def _some_weight(self) -> TrainConfig:
        if self.energy_weight == self.force_weight == self.stress_weight == 0:
            raise ValueError("energy_weight: energy_weight, force_weight and stress_weight are all 0")
        return self

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated; the settings given explicitly stay so)."""
        return TrainConfig(**{**self.model_dump(exclude_unset=True), **changes})


_Path = Annotated[str, Field(min_length=1)]


class TrainFile(_TrainFields):
    """A training TOML file: the :class:`TrainConfig` fields plus the ``mtpkit train``
    options (see the module docstring). Only one-key checks: the flags of the command
    line may still override a value before :class:`TrainConfig` checks across keys."""

    init: int | str | None = None
    train: _Path | None = None
    valid: _Path | None = None
    species: list[str] | None = None
    output: _Path | None = None
    report: _Path | None = None
    max_dist: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    radial_basis_size: Annotated[int, Field(ge=2)] | None = None

    @field_validator("init", mode="before")
    @classmethod
    def _init(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, str)):
            raise ValueError("must be a template level (integer) or a path")
        return v

    @field_validator("species", mode="before")
    @classmethod
    def _species(cls, v: Any) -> Any:
        return [s.strip() for s in v.split(",") if s.strip()] if isinstance(v, str) else v


#: Keys of the TOML file that are not :class:`TrainConfig` fields (``mtpkit train`` options).
FILE_KEYS = tuple(k for k in TrainFile.model_fields if k not in _TrainFields.model_fields)


def config_keys() -> tuple[str, ...]:
    """Every key a training TOML file may hold."""
    return tuple(TrainFile.model_fields)


def read_train_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training TOML file into a flat dict of the keys it sets, checked by
    :class:`TrainFile` (numbers of float settings come back as floats, a comma-separated
    ``species`` string as a list).

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
    for key, value in data.items():
        if key not in TrainFile.model_fields:
            what = ("unknown table (settings are flat key = value pairs)" if isinstance(value, dict)
                    else f"unknown key; allowed: {', '.join(sorted(config_keys()))}")
            raise InputFileError(path, what, field=key)
    try:
        return TrainFile.model_validate(data).model_dump(exclude_unset=True)
    except ValidationError as exc:
        raise input_error_from_validation(path, exc) from None


def config_from_mapping(values: dict[str, Any], source: str | os.PathLike | None = None) -> TrainConfig:
    """A :class:`TrainConfig` from the :class:`TrainConfig` keys of ``values``
    (other keys are ignored); errors name ``source`` when given."""
    kwargs = {k: v for k, v in values.items() if k in TrainConfig.model_fields}
    try:
        return TrainConfig(**kwargs)
    except UserError as exc:
        if source is not None:
            raise InputFileError(source, str(exc)) from None
        raise
