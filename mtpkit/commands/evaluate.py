"""``mtpkit evaluate POT CFG --output OUT.cfg``: the potential's energies, forces
and stresses for every configuration (as ``mlp calculate_efs``), and error
metrics against the labels in CFG.

Two paths give the same output file, lines and errors:

* compiled (the default): one call into the C++ core reads the potential and
  the .cfg, evaluates, writes OUT.cfg atomically and returns the error sums
  (``mtpkit._core.evaluate_cfg_file``, src/evaluate_cfg.cpp); this module only
  parses arguments and prints, and the process imports neither NumPy nor ASE;
* Python (:func:`run_reference`): the readable reference, through ASE and
  NumPy; it serves ``--report`` (plots) and every input the compiled path
  leaves to the Python readers (a potential file they word errors or
  warnings about, an untrained template, non-ASCII .cfg text).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mtpkit.commands import UserError
from mtpkit.commands._species import parse_species

if TYPE_CHECKING:  # the CLI imports this module to build its parser: keep NumPy/ASE out of that
    import numpy as np
    from ase import Atoms


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="energies, forces and stresses of a potential on a .cfg (mlp calculate_efs)",
        description="Write the potential's energy, forces and stress (PlusStress) for every "
                    "configuration of CFG to OUT.cfg (Feature EFS_by mtpkit) and print error "
                    "metrics against CFG's own labels.")
    p.add_argument("potential", help="trained potential (.mtp or .almtp)")
    p.add_argument("configurations", help="configurations to evaluate (.cfg)")
    p.add_argument("--output", "-o", required=True, help="output .cfg")
    p.add_argument("--species", help="comma-separated chemical symbols of MLIP types 0,1,...")
    p.add_argument("--report", help="also write PREFIX.json/.md/.png (metrics and parity plot)")
    p.set_defaults(func=run)


def evaluate_images(mtp, images: Sequence[Atoms], types_list: Sequence[np.ndarray],
                    source: str | os.PathLike | None = None) -> list[Atoms]:
    """Copies of ``images`` carrying the MTP's energy (eV), forces (eV/Å) and,
    for 3D cells, stress (eV/Å^3) as calculator results, with
    ``info["EFS_by"] = "mtpkit"``."""
    from ase.calculators.singlepoint import SinglePointCalculator

    from mtpkit.potentials import core
    from mtpkit.potentials.labels import config_name

    model = core.CompiledMTP(mtp)
    out = []
    short: list[str] = []
    for k, (atoms, types) in enumerate(zip(images, types_list, strict=True)):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", core.ShortDistanceWarning)
                efs = core.evaluate(model, atoms, types)
        except (ValueError, FloatingPointError) as exc:
            raise UserError(f"{config_name(source, k)}: {exc}") from None
        for w in caught:
            if issubclass(w.category, core.ShortDistanceWarning):
                short.append(f"{config_name(source, k)}: {w.message}")
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        new = atoms.copy()
        new.calc = None
        # like `mlp calculate_efs`: energy, forces, stress (no site energies)
        results = {"energy": efs.energy, "free_energy": efs.energy, "forces": efs.forces}
        if efs.volume:
            results["stress"] = efs.stress
        new.calc = SinglePointCalculator(new, **results)
        new.info["EFS_by"] = "mtpkit"
        out.append(new)
    if short:
        print(f"warning: {len(short)} of {len(out)} configurations have atoms closer than min_dist "
              f"= {mtp.min_dist:.4f} A (extrapolation); first: {short[0]}", file=sys.stderr)
    return out


def _has_labels(atoms: Atoms) -> bool:
    res = getattr(atoms.calc, "results", None) or {}
    return res.get("energy") is not None and res.get("forces") is not None


def run(args: argparse.Namespace) -> int:
    if not args.report:
        status = run_compiled(args)
        if status is not None:
            return status
    return run_reference(args)


def run_compiled(args: argparse.Namespace) -> int | None:
    """The command through the compiled core; ``None`` when the Python path must run
    instead (decided before anything is written or printed)."""
    evaluated = _evaluate_compiled(args)
    if evaluated is None:
        return None
    min_dist, report = evaluated
    _print_report(args, min_dist, report)
    return 0


def _evaluate_compiled(args: argparse.Namespace) -> tuple[float, dict] | None:
    """(min_dist in Å, report of ``_core.evaluate_cfg_file``), with run_reference's checks
    and messages, in its order; ``None`` for inputs only the Python readers read."""
    from mtpkit import _core

    species = parse_species(args.species)
    model, _reason = _core.load_potential_for_evaluation(args.potential)
    if model is None:  # the Python reader reads it, or words the problem
        return None
    if species is not None and len(species) > model.species_count:
        raise UserError(f"--species gives {len(species)} symbols but {args.potential} has "
                        f"species_count = {model.species_count}")
    if species is not None and len(set(species)) != len(species):
        raise UserError(f"species {species} contains duplicates")  # as cfg.species_numbers
    try:
        report = _core.evaluate_cfg_file(model, args.configurations, args.output,
                                         -1 if species is None else len(species))
    except _core.NeedsReference:  # text only the Python .cfg reader reads (nothing written yet)
        return None
    return model.min_dist, report


def _print_report(args: argparse.Namespace, min_dist: float, report: dict) -> None:
    """What run_reference prints (and raises) after evaluating, from the compiled report."""
    if report["n_short"]:
        print(f"warning: {report['n_short']} of {report['n_configs']} configurations have atoms closer "
              f"than min_dist = {min_dist:.4f} A (extrapolation); first: {report['first_short']}",
              file=sys.stderr)
    if report["write_error"]:
        raise UserError(report["write_error"])
    print(f"wrote {report['n_configs']} configurations with mtpkit energies, forces and stresses to "
          f"{args.output}")
    labelled = report["n_labelled"]
    if not labelled:
        print(f"{args.configurations} has no energy/force labels: no error metrics")
        return
    if labelled < report["n_configs"]:
        print(f"{report['n_configs'] - labelled} configurations without energy/force labels are left "
              "out of the metrics")
    empty = report["labelled_without_atoms"]
    if empty is not None:  # labels.extract_labels, which numbers the labelled configurations
        raise UserError(f"{args.configurations}, configuration {empty + 1} (index {empty}): "
                        "configuration has no atoms")
    from mtpkit.potentials.metrics_text import format_metrics, metrics_from_sums

    metrics = metrics_from_sums(report)
    print(f"errors against {args.configurations} ({metrics['n_configs']} configurations, "
          f"{metrics['n_atoms']} atoms, {metrics['n_stress_configs']} with stress): "
          + format_metrics(metrics))


def run_reference(args: argparse.Namespace) -> int:
    """The command through ASE and NumPy (the reference; ``--report`` needs it)."""
    import numpy as np

    from mtpkit.potentials.cfg import read_cfg, write_cfg
    from mtpkit.potentials.labels import Predictions, config_name, extract_labels
    from mtpkit.potentials.metrics import error_metrics, format_metrics, write_metrics
    from mtpkit.potentials.mtp_io import read_mtp
    from mtpkit.potentials.species import atom_types

    species = parse_species(args.species)
    mtp = read_mtp(args.potential)
    if not mtp.trained:
        raise UserError(f"{args.potential}: an untrained template has no coefficients to evaluate")
    if species is not None and len(species) > mtp.species_count:
        raise UserError(f"--species gives {len(species)} symbols but {args.potential} has "
                        f"species_count = {mtp.species_count}")
    images = read_cfg(args.configurations, species)
    types = [atom_types(atoms, species, mtp.species_count, label=config_name(args.configurations, k))
             for k, atoms in enumerate(images)]
    computed = evaluate_images(mtp, images, types, args.configurations)
    n = write_cfg(args.output, computed, species)
    print(f"wrote {n} configurations with mtpkit energies, forces and stresses to {args.output}")

    labelled = [k for k, atoms in enumerate(images) if _has_labels(atoms)]
    if not labelled:
        print(f"{args.configurations} has no energy/force labels: no error metrics")
        return 0
    if len(labelled) < len(images):
        print(f"{len(images) - len(labelled)} configurations without energy/force labels are left "
              "out of the metrics")
    labels = extract_labels([images[k] for k in labelled], args.configurations)
    pred = Predictions(
        energy=np.array([computed[k].calc.results["energy"] for k in labelled]),
        forces=[computed[k].calc.results["forces"] for k in labelled],
        virial=[(-computed[k].get_volume() * _full(computed[k].calc.results["stress"]))
                if "stress" in computed[k].calc.results else np.zeros((3, 3)) for k in labelled],
    )
    metrics = error_metrics(pred, labels)
    print(f"errors against {args.configurations} ({metrics['n_configs']} configurations, "
          f"{metrics['n_atoms']} atoms, {metrics['n_stress_configs']} with stress): "
          + format_metrics(metrics))
    if args.report:
        paths = write_metrics(args.report, {"data": (pred, labels)},
                             extra={"potential": args.potential, "configurations": args.configurations},
                             title=f"MTP errors on {os.path.basename(args.configurations)}")
        print(f"report {paths['md']}, {paths['json']}, {paths['png']}")
    return 0


def _full(voigt: np.ndarray) -> np.ndarray:
    from mtpkit.potentials.labels import voigt_to_full

    return voigt_to_full(voigt)
