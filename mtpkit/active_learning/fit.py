"""Fit an MTP on labelled configurations and attach the active set that grades it.

Writes, in the given folder: ``pot.mtp`` (the potential without active set),
``active_set.npz`` (the MaxVol state in any mode/basis), ``pot.almtp`` (potential
+ active set in MLIP-3's format, when the basis is over all parameters: what the
LAMMPS plugin reads), ``train.log`` and the training report (``train.json``,
``train.md``, ``train.png``: errors and parity plot).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ase import Atoms

if TYPE_CHECKING:
    from mtpkit.potentials.train_config import TrainConfig

POTENTIAL = "pot.mtp"
ALMTP = "pot.almtp"
ACTIVE_SET = "active_set.npz"


@dataclass(frozen=True)
class Template:
    """A fresh MTP: level, radial basis size, radial range (Å)."""

    level: int
    radial_basis_size: int
    min_dist: float
    max_dist: float


def fit_potential(images: list[Atoms], init: Any, species: list[str], *, template: Template,
                  training: TrainConfig, seed: int, folder: Path, mode: str = "neighborhood",
                  basis: str = "all") -> dict:
    """Fit from ``init`` (an MTP: warm start) or from ``template`` (``init is None``).

    ``training`` is the ``[potential.training]`` table; where it leaves them unset, the fit
    uses ``seed`` and no progress lines.

    Returns the metrics dict (``train``, ``validation``, ``iterations``, ``stop_reason``,
    ``n_params``, ``fit_wall_s`` s, ``n_train``, ``active_set_filled``) also written as
    ``fit.json`` by the caller.
    """
    from mtpkit.active_learning.selection import active_set_for
    from mtpkit.potentials.templates import make_template
    from mtpkit.potentials.train_config import TrainConfig
    from mtpkit.potentials.training import train

    if init is None:
        init = make_template(template.level, len(species), radial_basis_size=template.radial_basis_size,
                             min_dist=template.min_dist, max_dist=template.max_dist)
    else:
        init = init.copy()
        init.active_set = None
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    config = TrainConfig(**{"seed": seed, "print_every": 0, **training.model_dump(exclude_unset=True)})
    with open(folder / "train.log", "w") as log:
        result = train(images, init, species=species, config=config,
                       log=lambda m: print(m, file=log, flush=True))
    result.write_metrics(folder / "train")
    mtp = result.mtp
    mtp.active_set = None
    aset = active_set_for(mtp, species, train_images=images, mode=mode, basis=basis)
    _write_fitted(folder, mtp, aset, species, basis)
    return {"train": result.train_metrics, "validation": result.valid_metrics,
            "iterations": result.iterations, "stop_reason": result.stop_reason,
            "n_params": mtp.n_params, "fit_wall_s": time.perf_counter() - t0, "n_train": len(images),
            "active_set_filled": int(aset.filled), "active_set_size": int(aset.size)}


def _write_fitted(folder: Path, mtp: Any, aset: Any, species: list[str], basis: str) -> None:
    """``pot.mtp`` (``mtp``, no active set), ``active_set.npz`` and, over all parameters, ``pot.almtp``
    (the two together in MLIP-3's format, what the LAMMPS plugin reads)."""
    from mtpkit.active_learning.active_set import save_npz, to_mlip
    from mtpkit.potentials.mtp_io import write_mtp

    write_mtp(folder / POTENTIAL, mtp)
    save_npz(folder / ACTIVE_SET, aset)
    if basis == "all":
        with_as = mtp.copy()
        with_as.active_set = to_mlip(aset, species)
        write_mtp(folder / ALMTP, with_as)


def adopt_potential(mtp: Any, images: list[Atoms], species: list[str], *, folder: Path,
                    mode: str = "neighborhood", basis: str = "all") -> dict:
    """Write ``mtp`` (a trained potential, e.g. a shipped one) to ``folder`` as :func:`fit_potential`
    would have, without training: its own active set when it carries one in ``mode``, else one built
    from ``images``; the metrics are its errors on ``images`` (same keys as a fit's)."""
    from mtpkit.active_learning.selection import active_set_for
    from mtpkit.potentials.labels import extract_labels, predict
    from mtpkit.potentials.metrics import error_metrics, write_metrics
    from mtpkit.potentials.species import atom_types

    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    bare = mtp.copy()
    bare.active_set = None
    aset = None
    if getattr(mtp, "active_set", None) is not None and basis == "all":
        stored = active_set_for(mtp, species, source="potential.initial")
        aset = stored if stored.mode == mode else None
    if aset is None:
        aset = active_set_for(bare, species, train_images=images, mode=mode, basis=basis)
    _write_fitted(folder, bare, aset, species, basis)
    types = [atom_types(a, species, bare.species_count, "training configuration") for a in images]
    pred, labels = predict(bare, images, types), extract_labels(images)
    write_metrics(folder / "train", {"train": (pred, labels)}, extra={"adopted": True},
                  title="MTP errors (potential.initial as it is)")
    return {"train": error_metrics(pred, labels), "validation": None, "iterations": 0,
            "stop_reason": "potential.initial taken as it is (potential.refit_initial = false)",
            "n_params": bare.n_params, "fit_wall_s": time.perf_counter() - t0, "n_train": len(images),
            "active_set_filled": int(aset.filled), "active_set_size": int(aset.size)}


def load_fitted(folder: Path, species: list[str]):
    """(MTP, ActiveSet) of a folder written by :func:`fit_potential`."""
    from mtpkit.active_learning.active_set import load_npz
    from mtpkit.potentials.mtp_io import read_mtp

    return read_mtp(folder / POTENTIAL), load_npz(folder / ACTIVE_SET)
