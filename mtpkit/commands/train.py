"""``mtpkit train``: fit an MTP to a labelled ``.cfg`` training set.

Settings come from flags, a TOML file (``--config``; keys as in
:mod:`mtpkit.potentials.train_config`) and the defaults, in that order of
precedence. ``--init 16`` starts from a level-16 template; ``--init 16.almtp``
from an untrained template file (MLIP-3's ``MTP_templates``, which ship with
``species_count = 1``, are set up for the species of the fit, from
``--species`` or else the types in the training set, as ``mlp train`` does);
``--init pot.mtp`` is a warm start from an existing potential.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
from typing import Any

from mtpkit.commands import UserError
from mtpkit.commands._species import parse_species
from mtpkit.errors import InputFileError

# flag -> (TOML key, type, help)
_SETTINGS: tuple[tuple[str, str, type, str], ...] = (
    ("--energy-weight", "energy_weight", float, "weight of energy errors (default 1)"),
    ("--force-weight", "force_weight", float, "weight of force errors (default 0.01)"),
    ("--stress-weight", "stress_weight", float, "weight of stress (virial) errors (default 0.001)"),
    ("--weighting", "weighting", str, "vibrations (default), molecules or structures, as MLIP"),
    ("--method", "method", str, "varpro (default) or joint L-BFGS"),
    ("--max-iter", "max_iter", int, "maximum L-BFGS iterations (default 1000)"),
    ("--seed", "seed", int, "seed of the initial radial coefficients and the split (default 0)"),
    ("--valid-fraction", "valid_fraction", float,
     "fraction of --train held out for validation when --valid is absent (default 0)"),
    ("--valid-every", "valid_every", int, "iterations between validation checks (default 10)"),
    ("--patience", "patience", int,
     "early stopping after this many validation checks without improvement (default 10, 0: off)"),
    ("--print-every", "print_every", int, "iterations between progress lines (default 10)"),
    ("--checkpoint-every", "checkpoint_every", int, "iterations between checkpoints (default 50)"),
    ("--min-dist", "min_dist", str, "'data' (default: smallest distance in --train), 'keep' or Å"),
    ("--init-params", "init_params", str, "auto (default), random or keep"),
    ("--ridge", "ridge", float, "relative ridge of the linear least squares (default 1e-10)"),
)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="fit an MTP to energies, forces and stresses of a .cfg training set",
        description="Fit a Moment Tensor Potential (linear least squares + L-BFGS) to the labels of "
                    "a .cfg file, writing the potential, a checkpoint while it runs, and a report "
                    "(JSON, Markdown, parity plot PNG).")
    p.add_argument("--init", help="template level (e.g. 16), an untrained template file (e.g. MLIP-3's "
                                  "MTP_templates/16.almtp), or a trained .mtp/.almtp to warm-start from")
    p.add_argument("--train", help="training configurations (.cfg)")
    p.add_argument("--valid", help="validation configurations (.cfg)")
    p.add_argument("--species", help="comma-separated chemical symbols of MLIP types 0,1,... "
                                     "(e.g. Na,Y,Zr,Cl)")
    p.add_argument("--output", "-o", help="trained potential to write (.mtp or .almtp)")
    p.add_argument("--config", help="TOML file with settings (flags win)")
    p.add_argument("--report", help="report prefix (default: OUTPUT without suffix + '_report')")
    p.add_argument("--checkpoint", help="checkpoint .mtp (default: OUTPUT stem + '.checkpoint.mtp')")
    p.add_argument("--resume", action="store_true",
                   help="start from the checkpoint when it exists (a warm start)")
    p.add_argument("--max-dist", type=float, help="cutoff in Å of a template --init LEVEL (default 5)")
    p.add_argument("--radial-basis-size", type=int,
                   help="Chebyshev functions of a template --init LEVEL (default 8)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    for flag, key, typ, text in _SETTINGS:
        p.add_argument(flag, dest=key, type=typ, default=None, help=text)
    p.set_defaults(func=run)


def parse_init(value: Any, base: Path | None = None) -> int | str:
    """``16`` or ``"16"`` -> template level 16; anything else is a path."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    path = Path(text)
    if base is not None and not path.is_absolute():
        path = base / path
    if not path.exists():
        raise InputFileError(path, "initial potential not found (give a template level or a .mtp path)")
    return os.fspath(path)


def species_count(species: list[str] | None, train_images: list, valid_images: list | None,
                  source: str) -> int:
    """Species of a fit (:func:`mtpkit.potentials.training.count_species` over the
    training and validation configurations)."""
    from mtpkit.potentials.training import count_species

    return count_species(species, [*train_images, *(valid_images or [])], source)


def _template_for_data(init: str, species: list[str] | None, train_images: list, valid_images: list | None,
                       source: str) -> Any:
    """``init`` (a path), or its untrained template set up for the species of the fit when it
    has fewer (MLIP-3's ``MTP_templates/*.almtp`` ship with ``species_count = 1``; ``mlp
    train`` takes the count from the training set)."""
    from mtpkit.potentials.mtp_io import read_mtp
    from mtpkit.potentials.templates import for_species

    mtp = read_mtp(init)
    if mtp.trained:
        return init
    needed = species_count(species, train_images, valid_images, source)
    if mtp.species_count >= needed:
        return init
    print(f"init: {init} is an untrained template for {mtp.species_count} species; set up for the "
          f"{needed} species of the fit ({','.join(species) if species else 'types in ' + source}), as mlp train does")
    return for_species(mtp, needed)


def _merged(args: argparse.Namespace) -> tuple[dict[str, Any], Path | None]:
    from mtpkit.potentials.train_config import read_train_toml

    values: dict[str, Any] = {}
    base = None
    if args.config:
        values.update(read_train_toml(args.config))
        base = Path(args.config).resolve().parent
        for key in ("train", "valid", "output", "report", "checkpoint"):
            if key in values and not Path(values[key]).is_absolute():
                values[key] = os.fspath(base / values[key])
    for key in ("init", "train", "valid", "species", "output", "report", "checkpoint", "max_dist",
                "radial_basis_size"):
        v = getattr(args, key)
        if v is not None:
            values[key] = v
    for _flag, key, _typ, _text in _SETTINGS:
        v = getattr(args, key)
        if v is not None:
            values[key] = v
    if "min_dist" in values and isinstance(values["min_dist"], str):
        with contextlib.suppress(ValueError):
            values["min_dist"] = float(values["min_dist"])
    return values, (base if args.init is None else None)


def run(args: argparse.Namespace) -> int:
    from mtpkit.potentials.cfg import read_cfg
    from mtpkit.potentials.mtp_io import write_mtp
    from mtpkit.potentials.train_config import config_from_mapping
    from mtpkit.potentials.training import train

    values, init_base = _merged(args)
    for key in ("init", "train", "output"):
        if key not in values:
            raise UserError(f"--{key} is required (as a flag or in the --config file)")
    cfg = config_from_mapping(values, args.config)
    species = parse_species(values.get("species"))
    output = Path(values["output"])
    checkpoint = Path(values["checkpoint"]) if values.get("checkpoint") else \
        output.with_name(output.stem + ".checkpoint.mtp")
    report = values.get("report") or os.fspath(output.with_name(output.stem + "_report"))
    init: Any = parse_init(values["init"], init_base)
    train_images = read_cfg(values["train"], species)
    valid_images = read_cfg(values["valid"], species) if values.get("valid") else None
    if args.resume and checkpoint.exists():
        print(f"resuming from the checkpoint {checkpoint}")
        init = os.fspath(checkpoint)
    elif isinstance(init, int):
        from mtpkit.potentials.templates import make_template

        if values.get("max_dist", 5.0) <= 1.0:
            raise UserError(f"--max-dist {values['max_dist']} Å must exceed the template's min_dist 1 Å")
        init = make_template(init, species_count(species, train_images, valid_images, values["train"]),
                             radial_basis_size=values.get("radial_basis_size", 8),
                             max_dist=values.get("max_dist", 5.0))
    elif "max_dist" in values or "radial_basis_size" in values:
        raise UserError("--max-dist/--radial-basis-size only apply to a template (--init LEVEL)")
    else:
        init = _template_for_data(init, species, train_images, valid_images, values["train"])
    cfg = cfg.replace(checkpoint=os.fspath(checkpoint))

    log = None if args.quiet else (lambda msg: print(msg, flush=True))
    result = train(train_images, init, species=species, valid=valid_images, config=cfg,
                   source=values["train"], valid_source=values.get("valid"), log=log)
    write_mtp(output, result.mtp)
    paths = result.write_metrics(report)
    if checkpoint.exists() and checkpoint.resolve() != output.resolve():
        checkpoint.unlink()
    print(f"wrote {output}; report {paths['md']}, {paths['json']}, {paths['png']}")
    return 0
