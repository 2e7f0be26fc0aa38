"""``mtpkit evaluate POT CFG --output OUT.cfg``: the potential's energies, forces
and stresses for every configuration (as ``mlp calculate_efs``), and error
metrics against the labels in CFG."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mtpkit.commands import UserError

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
    import numpy as np

    from mtpkit.commands.train import parse_species
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
