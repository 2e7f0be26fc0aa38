"""Arrhenius fits of ln D (or ln σT) vs 1/T: one or two regimes, extrapolation with errors.

Model per regime: ln y = ln A − Ea/(k_B T), fitted by weighted least squares
(:func:`mtpkit.analysis.linefit.weighted_line_fit`) with weights 1/s² where s = y_err/y
(the error of ln y).  With errors given, the parameter covariance is (XᵀWX)⁻¹ scaled by
the Birge ratio max(1, χ²/(n−2)): the errors of y (e.g. D_err from
:mod:`mtpkit.analysis.transport`) set the error of Ea, enlarged when the points scatter
about the line more than those errors allow.  Without errors it is scaled by χ²/(n−2)
(the scatter alone).  A regime of 2 points has no scatter to judge: its covariance is
unscaled.  Ea in eV, T in K, k_B from :mod:`scipy.constants`.

Two regimes are independent lines below and above a breakpoint.

* **given breakpoint** (a temperature; points with T < T_b are the low-T regime): both
  lines are fitted as asked (≥ 2 points each); the F-test below is reported for
  information, with its exact F(2, n−4) p-value.
* **searched breakpoint**: every split with at least ``min_points`` (≥ 3) temperatures
  per regime is fitted; the best split has the smallest weighted residual RSS₂.  Whether
  the second line is needed is decided by the F statistic
  F = [(RSS₁ − RSS₂)/2] / [RSS₂/(n − 4)] of the best split against one line (RSS₁).
  Taking the best of several splits inflates F, so its null distribution (one line plus
  Gaussian noise with the given *relative* errors) is sampled by Monte Carlo: it is
  pivotal, i.e. independent of the line and of the noise scale, and depends only on the
  temperatures, the relative weights and ``min_points``.  Two regimes are preferred when
  p < ``alpha`` (default 0.01: the false-positive rate on a straight line with noise).
  ΔBIC = BIC₁ − BIC₂ = n ln(RSS₁/RSS₂) − 3 ln n (Gaussian likelihood with a fitted noise
  scale; 3 more parameters: a second intercept and slope and the breakpoint) is reported
  too; positive favours two regimes.
* **breakpoint uncertainty**: the splits whose two-regime fit is within ΔBIC < 2 of the
  best one (same parameter count, so n ln(RSS₂(k)/RSS₂,best) < 2) are all compatible with
  the data; ``breakpoint_range_K`` runs from the highest temperature below the lowest such
  split to the lowest temperature above the highest one (the data cannot place a
  breakpoint more finely than between two neighbouring temperatures).

The reported breakpoint is the crossing of the two lines when it lies between the
neighbouring data temperatures, else their midpoint in 1/T.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import constants, stats

from mtpkit.analysis.linefit import weighted_line_fit
from mtpkit.errors import UserError

__all__ = ["ALPHA", "K_B_EV", "MIN_POINTS", "ArrheniusFit", "RegimeFit", "extrapolate", "fit_arrhenius",
           "fit_regime"]

K_B_EV = constants.k / constants.e  # Boltzmann constant, eV/K
#: Fewest temperatures per regime when the breakpoint is searched.
MIN_POINTS = 3
#: Significance level of the two-regime F-test (false-positive rate on a straight line).
ALPHA = 0.01
#: Monte Carlo samples of the null distribution of the searched-split F statistic.
N_NULL = 4000
_NULL_SEED = 20240601


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
        """ln y at T (K) on this line."""
        return self.ln_prefactor - self.Ea_eV / (K_B_EV * np.asarray(T, float))

    def ln_y_err(self, T: float | np.ndarray) -> np.ndarray:
        """Standard error of ln y at T (K) from the (intercept, slope) covariance."""
        x = 1.0 / np.asarray(T, float)
        c = np.asarray(self.cov)
        return np.sqrt(np.maximum(c[0, 0] + 2 * x * c[0, 1] + x * x * c[1, 1], 0.0))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ArrheniusFit:
    """Result of :func:`fit_arrhenius` (``quantity``: "D" (cm²/s) or "sigmaT" (S K/cm)).

    ``selection`` (two-regime fits): the F-test of two regimes against one —
    ``{"criterion", "F", "p_value", "p_value_method", "alpha", "delta_bic",
    "preferred_regimes", "min_points", "splits_tested"}`` (``F``/``p_value`` None when the
    residual has no degrees of freedom); ``breakpoint_range_K``: (low, high) K, the
    breakpoints the data allow (searched breakpoint only).
    """

    quantity: str
    regimes: list[RegimeFit]
    breakpoint_K: float | None
    breakpoint_given: bool
    total_chi2: float
    breakpoint_range_K: tuple[float, float] | None = None
    selection: dict | None = None

    @property
    def preferred_regimes(self) -> int:
        """1 or 2: what the F-test prefers (the fitted count when there was no test)."""
        if self.selection and self.selection.get("preferred_regimes"):
            return int(self.selection["preferred_regimes"])
        return len(self.regimes)

    def regime_for(self, T: float) -> RegimeFit:
        """The regime whose temperature range holds T (the nearest one outside the data)."""
        if len(self.regimes) == 1 or self.breakpoint_K is None:
            return self.regimes[0]
        return self.regimes[0] if T < self.breakpoint_K else self.regimes[1]

    def to_dict(self) -> dict:
        return {"quantity": self.quantity, "regimes": [r.to_dict() for r in self.regimes],
                "breakpoint_K": self.breakpoint_K, "breakpoint_given": self.breakpoint_given,
                "total_chi2": self.total_chi2,
                "breakpoint_range_K": None if self.breakpoint_range_K is None else list(self.breakpoint_range_K),
                "selection": self.selection}


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
    """Weighted fit of ln y vs 1/T for one regime (needs ≥ 2 points); T in K, y_err as y."""
    T, ly, s = _ln_data(T, y, y_err)
    if len(T) < 2:
        raise UserError(f"an Arrhenius regime needs at least 2 temperatures, got {len(T)}")
    line = weighted_line_fit(1.0 / T, ly, 1.0 / s**2)
    cov = line.cov("reduced_chi2" if y_err is None else "birge")
    return RegimeFit(T_min_K=float(T.min()), T_max_K=float(T.max()), n_points=len(T),
                     Ea_eV=float(-line.slope * K_B_EV), Ea_err_eV=float(math.sqrt(cov[1, 1]) * K_B_EV),
                     ln_prefactor=float(line.intercept), ln_prefactor_err=float(math.sqrt(cov[0, 0])),
                     cov=cov.tolist(), chi2=float(line.chi2))


def _rss(X: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """Residual sum of squares of the least-squares fit of each column of Z on X (whitened)."""
    q, _ = np.linalg.qr(X)
    r = Z - q @ (q.T @ Z)
    return np.sum(r * r, axis=0)


def _split_rss(X: np.ndarray, Z: np.ndarray, k: int) -> np.ndarray:
    return _rss(X[:k], Z[:k]) + _rss(X[k:], Z[k:])


def _f_stat(rss1, rss2, n: int):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(rss2 > 0, ((rss1 - rss2) / 2.0) / (np.maximum(rss2, 0.0) / (n - 4)), np.inf)


def _crossing(f1: RegimeFit, f2: RegimeFit, t_lo: float, t_hi: float) -> float:
    """Crossing of two lines if it lies in [t_lo, t_hi] (K), else the midpoint in 1/T."""
    bp = 2.0 / (1.0 / t_lo + 1.0 / t_hi)
    dslope = (-f1.Ea_eV + f2.Ea_eV) / K_B_EV
    if abs(dslope) > 0:
        x = (f2.ln_prefactor - f1.ln_prefactor) / dslope
        if x > 0 and t_lo <= 1.0 / x <= t_hi:
            bp = 1.0 / x
    return float(bp)


def fit_arrhenius(T: Sequence[float], y: Sequence[float], y_err: Sequence[float] | None = None,
                  regimes: int | str = 1, breakpoint_K: float | None = None, min_points: int = MIN_POINTS,
                  quantity: str = "D", alpha: float = ALPHA) -> ArrheniusFit:
    """One- or two-regime Arrhenius fit of ``y`` (D in cm²/s or σT in S K/cm) vs T (K).

    ``regimes``: 1; 2 (two lines: split at ``breakpoint_K`` when given, else at the best
    split with ≥ ``min_points`` temperatures per regime; ``selection`` says whether the
    data need the second line, see the module docstring); or ``"auto"`` (the two-regime
    fit when its F-test p-value is below ``alpha``, else one line carrying the test in
    ``selection``; one line when there are fewer than 2·``min_points`` temperatures).
    ``breakpoint_K`` implies two regimes.
    """
    T = np.asarray(T, float)
    y = np.asarray(y, float)
    order = np.argsort(T)
    T, y = T[order], y[order]
    err = None if y_err is None else np.asarray(y_err, float)[order]
    if not 0 < alpha < 1:
        raise UserError(f"alpha must lie between 0 and 1, got {alpha}")
    if regimes == "auto":
        if breakpoint_K is None and len(T) < 2 * min_points:
            one = fit_arrhenius(T, y, err, regimes=1, quantity=quantity)
            one.selection = {"criterion": "F-test", "preferred_regimes": 1, "min_points": min_points,
                             "alpha": alpha, "reason": f"{len(T)} temperatures, fewer than the "
                                                       f"{2 * min_points} a two-regime search needs"}
            return one
        two = fit_arrhenius(T, y, err, regimes=2, breakpoint_K=breakpoint_K, min_points=min_points,
                            quantity=quantity, alpha=alpha)
        if two.preferred_regimes == 2:
            return two
        one = fit_arrhenius(T, y, err, regimes=1, quantity=quantity)
        one.selection = two.selection
        return one
    if breakpoint_K is not None:
        regimes = 2
    if regimes == 1:
        fit = fit_regime(T, y, err)
        return ArrheniusFit(quantity, [fit], None, False, fit.chi2)
    if regimes != 2:
        raise UserError(f"regimes must be 1, 2 or 'auto', got {regimes!r}")

    def sub(m):
        return None if err is None else err[m]

    _, ly, s = _ln_data(T, y, err)
    X = np.column_stack([1.0 / s, 1.0 / (T * s)])  # whitened design: rows / s
    z = ly / s
    n = len(T)
    rss1 = float(_rss(X, z[:, None])[0])
    if breakpoint_K is not None:
        low = T < breakpoint_K
        if low.sum() < 2 or (~low).sum() < 2:
            raise UserError(f"breakpoint {breakpoint_K:g} K leaves {int(low.sum())} temperatures below "
                            f"and {int((~low).sum())} above; each regime needs at least 2")
        f1, f2 = fit_regime(T[low], y[low], sub(low)), fit_regime(T[~low], y[~low], sub(~low))
        rss2 = float(_split_rss(X, z[:, None], int(low.sum()))[0])
        F = p = None
        if n > 4:
            F = float(_f_stat(rss1, rss2, n))
            p = float(stats.f.sf(F, 2, n - 4)) if math.isfinite(F) else 0.0
        sel = {"criterion": "F-test", "F": F, "p_value": p, "p_value_method": f"F(2, {n - 4}) distribution",
               "alpha": alpha, "delta_bic": _delta_bic(rss1, rss2, n),
               "preferred_regimes": None if p is None else (2 if p < alpha else 1), "min_points": 2,
               "splits_tested": 1}
        return ArrheniusFit(quantity, [f1, f2], float(breakpoint_K), True, f1.chi2 + f2.chi2, None, sel)
    if min_points < 3:
        raise UserError(f"a searched breakpoint needs at least 3 temperatures per regime, got min_points={min_points}")
    if n < 2 * min_points:
        raise UserError(f"a two-regime fit with a searched breakpoint needs at least {2 * min_points} "
                        f"temperatures ({min_points} per regime), got {n}; give the breakpoint or fit one regime")
    ks = np.arange(min_points, n - min_points + 1)
    rss2 = np.array([float(_split_rss(X, z[:, None], int(k))[0]) for k in ks])
    i_best = int(np.argmin(rss2))
    k = int(ks[i_best])
    F = float(_f_stat(rss1, rss2[i_best], n))
    # null distribution of the best-split F: one line plus unit Gaussian noise (pivotal)
    noise = np.random.default_rng(_NULL_SEED).standard_normal((n, N_NULL))
    null_rss2 = np.min([_split_rss(X, noise, int(kk)) for kk in ks], axis=0)
    null_F = _f_stat(_rss(X, noise), null_rss2, n)
    p = float((1 + np.count_nonzero(null_F >= F)) / (N_NULL + 1))
    # breakpoints the data allow: splits within ΔBIC < 2 of the best
    floor = np.finfo(float).tiny
    ok = ks[n * np.log(np.maximum(rss2, floor) / max(rss2[i_best], floor)) < 2.0]
    bp_range = (float(T[ok.min() - 1]), float(T[ok.max()]))
    low = np.arange(n) < k
    f1, f2 = fit_regime(T[low], y[low], sub(low)), fit_regime(T[~low], y[~low], sub(~low))
    sel = {"criterion": "F-test", "F": F, "p_value": p,
           "p_value_method": f"Monte Carlo null over the {len(ks)} split{'s' * (len(ks) > 1)} searched "
                             f"({N_NULL} samples)",
           "alpha": alpha, "delta_bic": _delta_bic(rss1, rss2[i_best], n),
           "preferred_regimes": 2 if p < alpha else 1, "min_points": min_points, "splits_tested": len(ks)}
    return ArrheniusFit(quantity, [f1, f2], _crossing(f1, f2, T[k - 1], T[k]), False, f1.chi2 + f2.chi2,
                        bp_range, sel)


def _delta_bic(rss1: float, rss2: float, n: int) -> float:
    """BIC(one line) − BIC(two lines): positive favours two regimes."""
    floor = np.finfo(float).tiny
    return float(n * math.log(max(rss1, floor) / max(rss2, floor)) - 3.0 * math.log(n))


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
