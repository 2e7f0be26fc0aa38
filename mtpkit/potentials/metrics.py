"""Error metrics of MTP predictions against reference labels, and their files.

Units: energies in eV (metrics in meV/atom), forces in eV/Å, virials in eV,
stresses in GPa. Stress metrics use the six independent components
(xx, yy, zz, yz, xz, xy) of ``sigma = -virial / volume`` per configuration.

:func:`write_metrics` writes three files sharing a prefix: ``PREFIX.json`` (all
metrics), ``PREFIX.md`` (a table) and ``PREFIX.png`` (parity plots of energies,
forces and stresses).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from mtpkit.io_utils import atomic_open, atomic_write_json, atomic_write_text
from mtpkit.potentials.labels import EV_PER_A3_IN_GPA, Labels, Predictions, full_to_voigt
from mtpkit.potentials.metrics_text import centered
from mtpkit.potentials.metrics_text import format_metrics as format_metrics  # NumPy-free, re-exported


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
    ``energy_mean_error_mev_per_atom`` and ``energy_rmse_centered_mev_per_atom`` (the mean
    per-atom error, and the RMSE after removing it: a constant offset between two codes'
    energy zeros does not count),
    ``force_rmse``, ``force_mae``, ``force_max`` (force components, eV/Å),
    ``stress_rmse_gpa``, ``stress_mae_gpa`` (six stress components per
    configuration with a stress label, GPa; ``nan`` when none has one).
    """
    pv = paired_values(pred, labels)
    de = (pv["energy"][1] - pv["energy"][0]) * 1000.0
    df = pv["forces"][1] - pv["forces"][0]
    ds = pv["stress"][1] - pv["stress"][0]
    e_mean, e_centered = centered(de.size, float(np.sum(de)), float(np.sum(de * de)))
    return {
        "n_configs": len(labels),
        "n_atoms": int(labels.natoms.sum()),
        "n_stress_configs": int(labels.has_stress.sum()),
        "energy_rmse_mev_per_atom": _rmse(de),
        "energy_mae_mev_per_atom": _mae(de),
        "energy_max_mev_per_atom": _maxabs(de),
        "energy_mean_error_mev_per_atom": e_mean,
        "energy_rmse_centered_mev_per_atom": e_centered,
        "force_rmse": _rmse(df),
        "force_mae": _mae(df),
        "force_max": _maxabs(df),
        "stress_rmse_gpa": _rmse(ds),
        "stress_mae_gpa": _mae(ds),
    }


_ROWS = (
    ("configurations", "n_configs", "{:d}"),
    ("atoms", "n_atoms", "{:d}"),
    ("configurations with stress", "n_stress_configs", "{:d}"),
    ("energy RMSE (meV/atom)", "energy_rmse_mev_per_atom", "{:.4f}"),
    ("energy MAE (meV/atom)", "energy_mae_mev_per_atom", "{:.4f}"),
    ("energy max error (meV/atom)", "energy_max_mev_per_atom", "{:.4f}"),
    ("energy mean error (meV/atom)", "energy_mean_error_mev_per_atom", "{:.4f}"),
    ("energy RMSE, mean error removed (meV/atom)", "energy_rmse_centered_mev_per_atom", "{:.4f}"),
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


def write_metrics(prefix: str | os.PathLike, data: Mapping[str, tuple[Predictions, Labels]],
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
