"""Reference labels, model predictions, error metrics and the training report.

Units: energies in eV (metrics in meV/atom), forces in eV/Å, virials in eV,
stresses in GPa. Stress metrics use the six independent components
(xx, yy, zz, yz, xz, xy) of ``sigma = -virial / volume`` per configuration.

The report of a fit is written as three files sharing a prefix:
``PREFIX.json`` (all metrics), ``PREFIX.md`` (a table) and ``PREFIX.png``
(parity plots of energies, forces and stresses).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from ase import Atoms
from ase.units import GPa

from mtpkit.errors import UserError
from mtpkit.io_utils import atomic_open, atomic_write_json, atomic_write_text

#: One eV/Å^3 in GPa.
EV_PER_A3_IN_GPA = 1.0 / GPa

_VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def voigt_to_full(s: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """ASE Voigt order (xx, yy, zz, yz, xz, xy) to a symmetric 3x3 matrix."""
    s = np.asarray(s, dtype=np.float64).reshape(-1)
    if s.size == 9:
        return s.reshape(3, 3).copy()
    out = np.empty((3, 3))
    for k, (i, j) in enumerate(_VOIGT):
        out[i, j] = out[j, i] = s[k]
    return out


def full_to_voigt(m: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """A 3x3 matrix to ASE Voigt order (xx, yy, zz, yz, xz, xy), symmetrising."""
    m = np.asarray(m, dtype=np.float64)
    m = 0.5 * (m + m.T)
    return np.array([m[i, j] for i, j in _VOIGT])


@dataclass
class Labels:
    """Reference energies, forces and virials of a list of configurations.

    Attributes
    ----------
    energy:
        Total energies in eV, shape ``(n_configs,)``.
    forces:
        One ``(n_atoms, 3)`` array per configuration, eV/Å (all NaN when the
        configuration has no force labels, see ``has_forces``).
    virial:
        One 3x3 virial per configuration in eV (``-volume * stress``); zeros
        where ``has_stress`` is false.
    has_stress:
        Whether the configuration carries a stress label (and a 3D cell).
    natoms:
        Atoms per configuration.
    volume:
        Cell volume in Å^3 (``nan`` for cells that are not 3D).
    names:
        ``"<source>, configuration <k>"`` (1-based) for messages.
    """

    energy: npt.NDArray[np.float64]
    forces: list[npt.NDArray[np.float64]]
    virial: list[npt.NDArray[np.float64]]
    has_stress: npt.NDArray[np.bool_]
    natoms: npt.NDArray[np.int64]
    volume: npt.NDArray[np.float64]
    names: list[str]

    def __len__(self) -> int:
        return int(self.energy.size)

    @property
    def has_forces(self) -> npt.NDArray[np.bool_]:
        """Whether the configuration carries force labels (absent ones are NaN)."""
        return np.array([bool(np.all(np.isfinite(f))) for f in self.forces], dtype=bool)

    def subset(self, idx: Sequence[int]) -> Labels:
        """The labels of configurations ``idx`` (in that order)."""
        idx = list(idx)
        return Labels(
            energy=self.energy[idx],
            forces=[self.forces[i] for i in idx],
            virial=[self.virial[i] for i in idx],
            has_stress=self.has_stress[idx],
            natoms=self.natoms[idx],
            volume=self.volume[idx],
            names=[self.names[i] for i in idx],
        )


def config_name(source: str | os.PathLike | None, index: int) -> str:
    """How messages name configuration ``index`` (0-based) of ``source``."""
    where = os.fspath(source) if source is not None else "<images>"
    return f"{where}, configuration {index + 1} (index {index})"


def _result(atoms: Atoms, key: str):
    calc = atoms.calc
    if calc is None:
        return None
    results = getattr(calc, "results", {})
    return results.get(key)


def extract_labels(images: Sequence[Atoms], source: str | os.PathLike | None = None,
                   require_forces: bool = True) -> Labels:
    """Read energy, force and stress labels from ``atoms.calc.results``.

    Raises :class:`~mtpkit.errors.UserError` naming the configuration (source
    and 1-based number) for a missing energy, missing forces (when
    ``require_forces``) or any NaN/inf label. A missing stress, or a cell that
    is not 3D, only marks ``has_stress`` false.
    """
    n = len(images)
    energy = np.empty(n)
    forces: list[np.ndarray] = []
    virial: list[np.ndarray] = []
    has_stress = np.zeros(n, dtype=bool)
    natoms = np.empty(n, dtype=np.int64)
    volume = np.full(n, np.nan)
    names = []
    for k, atoms in enumerate(images):
        name = config_name(source, k)
        names.append(name)
        natoms[k] = len(atoms)
        if len(atoms) == 0:
            raise UserError(f"{name}: configuration has no atoms")
        e = _result(atoms, "energy")
        if e is None:
            raise UserError(f"{name}: no energy label")
        e = float(np.asarray(e).reshape(()))
        if not math.isfinite(e):
            raise UserError(f"{name}: energy label is {e}")
        energy[k] = e
        f = _result(atoms, "forces")
        if f is None:
            if require_forces:
                raise UserError(f"{name}: no force labels")
            f = np.full((len(atoms), 3), np.nan)
        else:
            f = np.array(f, dtype=np.float64).reshape(len(atoms), 3)
            bad = ~np.isfinite(f)
            if bad.any():
                atom = int(np.argwhere(bad)[0][0])
                raise UserError(f"{name}: force label of atom {atom + 1} is not finite ({f[atom]})")
        forces.append(f)
        s = _result(atoms, "stress")
        periodic3d = atoms.cell.rank == 3
        if periodic3d:
            volume[k] = atoms.get_volume()
        if s is not None and periodic3d:
            s = np.asarray(s, dtype=np.float64)
            if not np.all(np.isfinite(s)):
                raise UserError(f"{name}: stress label is not finite ({s.ravel()})")
            virial.append(-volume[k] * voigt_to_full(s))
            has_stress[k] = True
        else:
            virial.append(np.zeros((3, 3)))
    return Labels(energy, forces, virial, has_stress, natoms, volume, names)


@dataclass
class Predictions:
    """Model energies (eV), forces (eV/Å) and virials (eV) per configuration."""

    energy: npt.NDArray[np.float64]
    forces: list[npt.NDArray[np.float64]]
    virial: list[npt.NDArray[np.float64]]


def predict(mtp, images: Sequence[Atoms], types_list: Sequence[npt.ArrayLike],
            evaluate: Callable | None = None) -> Predictions:
    """Evaluate ``mtp`` on every configuration with the compiled core."""
    if evaluate is None:
        from mtpkit.potentials.core import evaluate
    energy = np.empty(len(images))
    forces, virial = [], []
    for k, (atoms, types) in enumerate(zip(images, types_list, strict=True)):
        efs = evaluate(mtp, atoms, np.asarray(types))
        energy[k] = efs.energy
        forces.append(np.asarray(efs.forces, dtype=np.float64))
        virial.append(np.asarray(efs.virial, dtype=np.float64).reshape(3, 3))
    return Predictions(energy, forces, virial)


def _stress_voigt_gpa(virial: np.ndarray, volume: float) -> np.ndarray:
    return full_to_voigt(-np.asarray(virial) / volume) * EV_PER_A3_IN_GPA


def paired_values(pred: Predictions, labels: Labels) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(reference, predicted) arrays: energy per atom (eV/atom), force components (eV/Å),
    stress components (GPa, only configurations with stress labels)."""
    e_ref = labels.energy / labels.natoms
    e_pred = pred.energy / labels.natoms
    f_ref = np.concatenate([f.ravel() for f in labels.forces]) if len(labels) else np.empty(0)
    f_pred = np.concatenate([f.ravel() for f in pred.forces]) if len(labels) else np.empty(0)
    keep = np.isfinite(f_ref)
    s_ref, s_pred = [], []
    for k in np.flatnonzero(labels.has_stress):
        s_ref.append(_stress_voigt_gpa(labels.virial[k], labels.volume[k]))
        s_pred.append(_stress_voigt_gpa(pred.virial[k], labels.volume[k]))
    return {
        "energy": (e_ref, e_pred),
        "forces": (f_ref[keep], f_pred[keep]),
        "stress": (np.concatenate(s_ref) if s_ref else np.empty(0),
                   np.concatenate(s_pred) if s_pred else np.empty(0)),
    }


def _rmse(d: np.ndarray) -> float:
    return float(np.sqrt(np.mean(d**2))) if d.size else float("nan")


def _mae(d: np.ndarray) -> float:
    return float(np.mean(np.abs(d))) if d.size else float("nan")


def _maxabs(d: np.ndarray) -> float:
    return float(np.max(np.abs(d))) if d.size else float("nan")


def error_metrics(pred: Predictions, labels: Labels) -> dict[str, float]:
    """Error metrics of ``pred`` against ``labels``.

    Keys: ``n_configs``, ``n_atoms``, ``n_stress_configs``,
    ``energy_rmse_mev_per_atom``, ``energy_mae_mev_per_atom``,
    ``energy_max_mev_per_atom`` (per-atom energy errors, meV/atom),
    ``force_rmse``, ``force_mae``, ``force_max`` (force components, eV/Å),
    ``stress_rmse_gpa``, ``stress_mae_gpa`` (six stress components per
    configuration with a stress label, GPa; ``nan`` when none has one).
    """
    pv = paired_values(pred, labels)
    de = (pv["energy"][1] - pv["energy"][0]) * 1000.0
    df = pv["forces"][1] - pv["forces"][0]
    ds = pv["stress"][1] - pv["stress"][0]
    return {
        "n_configs": len(labels),
        "n_atoms": int(labels.natoms.sum()),
        "n_stress_configs": int(labels.has_stress.sum()),
        "energy_rmse_mev_per_atom": _rmse(de),
        "energy_mae_mev_per_atom": _mae(de),
        "energy_max_mev_per_atom": _maxabs(de),
        "force_rmse": _rmse(df),
        "force_mae": _mae(df),
        "force_max": _maxabs(df),
        "stress_rmse_gpa": _rmse(ds),
        "stress_mae_gpa": _mae(ds),
    }


def format_metrics(m: Mapping[str, float]) -> str:
    """One line: energy RMSE/MAE, force RMSE/MAE, stress RMSE."""
    return (f"E RMSE {m['energy_rmse_mev_per_atom']:.3f} meV/atom (MAE {m['energy_mae_mev_per_atom']:.3f}), "
            f"F RMSE {m['force_rmse']:.4f} eV/A (MAE {m['force_mae']:.4f}), "
            f"S RMSE {m['stress_rmse_gpa']:.4f} GPa")


_ROWS = (
    ("configurations", "n_configs", "{:d}"),
    ("atoms", "n_atoms", "{:d}"),
    ("configurations with stress", "n_stress_configs", "{:d}"),
    ("energy RMSE (meV/atom)", "energy_rmse_mev_per_atom", "{:.4f}"),
    ("energy MAE (meV/atom)", "energy_mae_mev_per_atom", "{:.4f}"),
    ("energy max error (meV/atom)", "energy_max_mev_per_atom", "{:.4f}"),
    ("force RMSE (eV/Å)", "force_rmse", "{:.5f}"),
    ("force MAE (eV/Å)", "force_mae", "{:.5f}"),
    ("force max error (eV/Å)", "force_max", "{:.5f}"),
    ("stress RMSE (GPa)", "stress_rmse_gpa", "{:.5f}"),
    ("stress MAE (GPa)", "stress_mae_gpa", "{:.5f}"),
)


def metrics_markdown(metrics: Mapping[str, Mapping[str, float]], title: str = "MTP errors") -> str:
    """A Markdown table with one column per data set (e.g. ``train``, ``validation``)."""
    sets = list(metrics)
    lines = [f"# {title}", "", "| quantity | " + " | ".join(sets) + " |",
             "|---|" + "---:|" * len(sets)]
    for label, key, fmt in _ROWS:
        cells = []
        for s in sets:
            v = metrics[s].get(key)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                cells.append("n/a")
            else:
                cells.append(fmt.format(v))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parity_plot(path: str | os.PathLike,
                data: Mapping[str, tuple[Predictions, Labels]]) -> None:
    """Parity plots (energy per atom, force components, stress components) as a PNG.

    ``data`` maps a set name (``train``, ``validation``) to (predictions, labels).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("energy", "energy (eV/atom)"), ("forces", "force component (eV/Å)"),
              ("stress", "stress component (GPa)"))
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.5))
    for ax, (key, label) in zip(axes, panels):
        lo, hi = math.inf, -math.inf
        for name, (pred, labels) in data.items():
            ref, val = paired_values(pred, labels)[key]
            if ref.size == 0:
                continue
            d = val - ref
            ax.scatter(ref, val, s=6, alpha=0.6, label=f"{name} (RMSE {_rmse(d):.3g})")
            lo, hi = min(lo, ref.min(), val.min()), max(hi, ref.max(), val.max())
        if math.isfinite(lo):
            pad = 0.05 * (hi - lo or 1.0)
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=0.8)
            ax.legend(fontsize=8, loc="upper left")
        else:
            ax.text(0.5, 0.5, "no labels", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(f"reference {label}")
        ax.set_ylabel(f"MTP {label}")
        ax.set_title(key)
    fig.tight_layout()
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)


def write_report(prefix: str | os.PathLike, data: Mapping[str, tuple[Predictions, Labels]],
                 extra: Mapping | None = None, title: str = "MTP errors") -> dict[str, Path]:
    """Write ``PREFIX.json``, ``PREFIX.md`` and ``PREFIX.png``; returns their paths.

    ``extra`` (e.g. the training settings and history summary) goes into the
    JSON under ``"info"``.
    """
    prefix = Path(prefix)
    metrics = {name: error_metrics(p, lab) for name, (p, lab) in data.items()}
    paths = {"json": prefix.with_name(prefix.name + ".json"),
             "md": prefix.with_name(prefix.name + ".md"),
             "png": prefix.with_name(prefix.name + ".png")}
    atomic_write_json(paths["json"], {"metrics": metrics, "info": dict(extra or {})})
    atomic_write_text(paths["md"], metrics_markdown(metrics, title))
    parity_plot(paths["png"], data)
    return paths
