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


def _stats(sums: tuple[int, float, float, float, float]) -> tuple[float, float, float]:
    """(RMSE, MAE, max |d|) from (count, sum of d^2, sum of |d|, max |d|, sum of d); NaN for no values."""
    count, sum_sq, sum_abs, max_abs, _ = sums
    if not count:
        return math.nan, math.nan, math.nan
    return math.sqrt(sum_sq / count), sum_abs / count, max_abs


def centered(count: int, sum_d: float, sum_sq: float) -> tuple[float, float]:
    """(mean of d, RMSE of d minus its mean) from the count, sum and sum of squares of the
    differences d; NaN for none. The one formula both evaluation paths use (same bits)."""
    if not count:
        return math.nan, math.nan
    mean = sum_d / count
    return mean, math.sqrt(max(sum_sq / count - mean * mean, 0.0))


def metrics_from_sums(report: Mapping) -> dict[str, float]:
    """:func:`mtpkit.potentials.metrics.error_metrics`' dict from the report of
    ``mtpkit._core.evaluate_cfg_file`` (its ``energy``, ``forces`` and ``stress``
    sums are in NumPy's summation order, so the values are the same to the bit)."""
    e_rmse, e_mae, e_max = _stats(report["energy"])
    f_rmse, f_mae, f_max = _stats(report["forces"])
    s_rmse, s_mae, _ = _stats(report["stress"])
    count, sum_sq, _, _, sum_d = report["energy"]
    e_mean, e_centered = centered(count, sum_d, sum_sq)
    return {
        "n_configs": report["n_labelled"],
        "n_atoms": report["n_labelled_atoms"],
        "n_stress_configs": report["n_stress"],
        "energy_rmse_mev_per_atom": e_rmse,
        "energy_mae_mev_per_atom": e_mae,
        "energy_max_mev_per_atom": e_max,
        "energy_mean_error_mev_per_atom": e_mean,
        "energy_rmse_centered_mev_per_atom": e_centered,
        "force_rmse": f_rmse,
        "force_mae": f_mae,
        "force_max": f_max,
        "stress_rmse_gpa": s_rmse,
        "stress_mae_gpa": s_mae,
    }
