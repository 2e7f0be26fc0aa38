"""Error metrics as text, and from the error sums of the compiled ``mtpkit evaluate``.

Pure Python (no NumPy): the compiled path of ``mtpkit evaluate`` prints its metrics
through this module without importing NumPy. :mod:`mtpkit.potentials.metrics`
computes the same metrics from arrays.

Units: energies in meV/atom, forces in eV/Å, stresses in GPa.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


def format_metrics(m: Mapping[str, float]) -> str:
    """One line: energy RMSE/MAE, force RMSE/MAE, stress RMSE."""
    return (f"E RMSE {m['energy_rmse_mev_per_atom']:.3f} meV/atom (MAE {m['energy_mae_mev_per_atom']:.3f}), "
            f"F RMSE {m['force_rmse']:.4f} eV/A (MAE {m['force_mae']:.4f}), "
            f"S RMSE {m['stress_rmse_gpa']:.4f} GPa")


def _stats(sums: tuple[int, float, float, float]) -> tuple[float, float, float]:
    """(RMSE, MAE, max |d|) from (count, sum of d^2, sum of |d|, max |d|); NaN for no values."""
    count, sum_sq, sum_abs, max_abs = sums
    if not count:
        return math.nan, math.nan, math.nan
    return math.sqrt(sum_sq / count), sum_abs / count, max_abs


def metrics_from_sums(report: Mapping) -> dict[str, float]:
    """:func:`mtpkit.potentials.metrics.error_metrics`' dict from the report of
    ``mtpkit._core.evaluate_cfg_file`` (its ``energy``, ``forces`` and ``stress``
    sums are in NumPy's summation order, so the values are the same to the bit)."""
    e_rmse, e_mae, e_max = _stats(report["energy"])
    f_rmse, f_mae, f_max = _stats(report["forces"])
    s_rmse, s_mae, _ = _stats(report["stress"])
    return {
        "n_configs": report["n_labelled"],
        "n_atoms": report["n_labelled_atoms"],
        "n_stress_configs": report["n_stress"],
        "energy_rmse_mev_per_atom": e_rmse,
        "energy_mae_mev_per_atom": e_mae,
        "energy_max_mev_per_atom": e_max,
        "force_rmse": f_rmse,
        "force_mae": f_mae,
        "force_max": f_max,
        "stress_rmse_gpa": s_rmse,
        "stress_mae_gpa": s_mae,
    }
