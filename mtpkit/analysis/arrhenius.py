"""Arrhenius fits of ln D (or ln σT) vs 1/T: one or two regimes, extrapolation with errors.

Model per regime: ln y = ln A − Ea/(k_B T), fitted by weighted least squares
with weights 1/s² where s = y_err/y (the error of ln y).  The parameter
covariance is (XᵀWX)⁻¹ scaled by the reduced χ² when a regime has more points
than parameters (so the scatter about the line is reflected, as in
``scipy.optimize.curve_fit``), unscaled otherwise.  Ea in eV, T in K.

Two regimes: independent lines below and above a breakpoint.  The breakpoint is
given (a temperature; points with T < T_b are the low-T regime) or found by
trying every split with at least ``min_points`` per regime and keeping the one
with the smallest total weighted residual.  The reported breakpoint is the
crossing of the two lines when it lies between the neighbouring data
temperatures, else their midpoint in 1/T.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from mtpkit.errors import UserError

__all__ = ["K_B_EV", "ArrheniusFit", "RegimeFit", "extrapolate", "fit_arrhenius", "fit_regime"]

K_B_EV = 8.617333262e-5  # Boltzmann constant, eV/K


@dataclass
class RegimeFit:
    """One Arrhenius line: ln y = intercept + slope/T (slope = −Ea/k_B)."""

    T_min_K: float
    T_max_K: float
    n_points: int
    Ea_eV: float
    Ea_err_eV: float
    ln_prefactor: float
    ln_prefactor_err: float
    cov: list[list[float]]  # covariance of (intercept, slope)
    chi2: float

    def ln_y(self, T: float | np.ndarray) -> np.ndarray:
        return self.ln_prefactor - self.Ea_eV / (K_B_EV * np.asarray(T, float))

    def ln_y_err(self, T: float | np.ndarray) -> np.ndarray:
        x = 1.0 / np.asarray(T, float)
        c = np.asarray(self.cov)
        return np.sqrt(np.maximum(c[0, 0] + 2 * x * c[0, 1] + x * x * c[1, 1], 0.0))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ArrheniusFit:
    """Result of :func:`fit_arrhenius` (``quantity``: "D" (cm²/s) or "sigmaT" (S K/cm))."""

    quantity: str
    regimes: list[RegimeFit]
    breakpoint_K: float | None
    breakpoint_given: bool
    total_chi2: float

    def regime_for(self, T: float) -> RegimeFit:
        """The regime whose temperature range holds T (the nearest one outside the data)."""
        if len(self.regimes) == 1 or self.breakpoint_K is None:
            return self.regimes[0]
        return self.regimes[0] if T < self.breakpoint_K else self.regimes[1]

    def to_dict(self) -> dict:
        return {"quantity": self.quantity, "regimes": [r.to_dict() for r in self.regimes],
                "breakpoint_K": self.breakpoint_K, "breakpoint_given": self.breakpoint_given,
                "total_chi2": self.total_chi2}


def _ln_data(T, y, y_err):
    T = np.asarray(T, float)
    y = np.asarray(y, float)
    if T.shape != y.shape or T.ndim != 1:
        raise UserError("Arrhenius fit: temperatures and values must be 1-D and of equal length")
    if np.any(T <= 0):
        raise UserError(f"Arrhenius fit: temperatures must be positive, got {T.tolist()}")
    if np.any(y <= 0):
        bad = T[y <= 0].tolist()
        raise UserError(f"Arrhenius fit: non-positive values at T = {bad} K cannot be logged; "
                        "leave those temperatures out (no diffusion seen)")
    if y_err is None:
        s = np.ones_like(y)
    else:
        y_err = np.asarray(y_err, float)
        s = y_err / y
        if np.any(s <= 0) or not np.all(np.isfinite(s)):
            s = np.where((s > 0) & np.isfinite(s), s, np.nanmedian(s[s > 0]) if np.any(s > 0) else 1.0)
    return T, np.log(y), s


def fit_regime(T: Sequence[float], y: Sequence[float], y_err: Sequence[float] | None = None) -> RegimeFit:
    """Weighted fit of ln y vs 1/T for one regime (needs ≥ 2 points)."""
    T, ly, s = _ln_data(T, y, y_err)
    if len(T) < 2:
        raise UserError(f"an Arrhenius regime needs at least 2 temperatures, got {len(T)}")
    X = np.column_stack([np.ones_like(T), 1.0 / T])
    w = 1.0 / s**2
    XtWX = X.T @ (X * w[:, None])
    beta = np.linalg.solve(XtWX, X.T @ (w * ly))
    resid = ly - X @ beta
    chi2 = float(np.sum(w * resid**2))
    cov = np.linalg.inv(XtWX)
    dof = len(T) - 2
    if dof > 0:
        cov = cov * (chi2 / dof)
    return RegimeFit(T_min_K=float(T.min()), T_max_K=float(T.max()), n_points=len(T),
                     Ea_eV=float(-beta[1] * K_B_EV), Ea_err_eV=float(math.sqrt(cov[1, 1]) * K_B_EV),
                     ln_prefactor=float(beta[0]), ln_prefactor_err=float(math.sqrt(cov[0, 0])),
                     cov=cov.tolist(), chi2=chi2)


def fit_arrhenius(T: Sequence[float], y: Sequence[float], y_err: Sequence[float] | None = None,
                  regimes: int = 1, breakpoint_K: float | None = None, min_points: int = 2,
                  quantity: str = "D") -> ArrheniusFit:
    """One- or two-regime Arrhenius fit of ``y`` (D or σT) vs T.

    ``regimes=2`` without ``breakpoint_K`` searches the split minimising the total
    weighted residual (χ²) with at least ``min_points`` temperatures per regime.
    """
    T = np.asarray(T, float)
    y = np.asarray(y, float)
    order = np.argsort(T)
    T, y = T[order], y[order]
    err = None if y_err is None else np.asarray(y_err, float)[order]
    if breakpoint_K is not None:
        regimes = 2
    if regimes == 1:
        fit = fit_regime(T, y, err)
        return ArrheniusFit(quantity, [fit], None, False, fit.chi2)
    if regimes != 2:
        raise UserError(f"regimes must be 1 or 2, got {regimes}")

    def sub(m):
        return None if err is None else err[m]

    if breakpoint_K is not None:
        low = T < breakpoint_K
        if low.sum() < 2 or (~low).sum() < 2:
            raise UserError(f"breakpoint {breakpoint_K:g} K leaves {int(low.sum())} temperatures below "
                            f"and {int((~low).sum())} above; each regime needs at least 2")
        f1, f2 = fit_regime(T[low], y[low], sub(low)), fit_regime(T[~low], y[~low], sub(~low))
        return ArrheniusFit(quantity, [f1, f2], float(breakpoint_K), True, f1.chi2 + f2.chi2)
    if len(T) < 2 * min_points:
        raise UserError(f"a two-regime fit needs at least {2 * min_points} temperatures, got {len(T)}")
    best = None
    for k in range(min_points, len(T) - min_points + 1):
        low = np.arange(len(T)) < k
        f1, f2 = fit_regime(T[low], y[low], sub(low)), fit_regime(T[~low], y[~low], sub(~low))
        total = f1.chi2 + f2.chi2
        if best is None or total < best[0]:
            best = (total, k, f1, f2)
    total, k, f1, f2 = best
    # crossing of the two lines, if it falls between the neighbouring temperatures
    dslope = (-f1.Ea_eV + f2.Ea_eV) / K_B_EV
    t_lo, t_hi = T[k - 1], T[k]
    bp = 2.0 / (1.0 / t_lo + 1.0 / t_hi)
    if abs(dslope) > 0:
        x = (f2.ln_prefactor - f1.ln_prefactor) / dslope
        if x > 0 and t_lo <= 1.0 / x <= t_hi:
            bp = 1.0 / x
    return ArrheniusFit(quantity, [f1, f2], float(bp), False, float(total))


def extrapolate(fit: ArrheniusFit, T: float, conversion: float | None = None) -> dict:
    """y(T) from the regime that covers T (the low-T one below the data), with its error.

    Returns ``{"T_K", "value", "err", "ln_err", "regime"}``: for quantity "D", value
    is D (cm²/s) times ``conversion`` when given (σ/D at T, S/cm per cm²/s); for
    "sigmaT" the value is σ = (σT)/T (S/cm).  The error propagates the intercept/slope
    covariance: δ ln y = sqrt(var a + 2 cov_ab/T + var b/T²); value_err = value·δ ln y.
    """
    reg = fit.regime_for(T)
    ln_y = float(reg.ln_y(T))
    ln_err = float(reg.ln_y_err(T))
    value = math.exp(ln_y)
    if fit.quantity == "sigmaT":
        value /= T
    elif conversion is not None:
        value *= conversion
    return {"T_K": float(T), "value": value, "err": value * ln_err, "ln_err": ln_err,
            "regime": fit.regimes.index(reg)}
