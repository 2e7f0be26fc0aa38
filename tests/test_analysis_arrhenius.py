"""Arrhenius fits: known Ea (one and two regimes), breakpoint search, extrapolation errors."""

from __future__ import annotations

import numpy as np
import pytest

from mtpkit.analysis.arrhenius import K_B_EV, extrapolate, fit_arrhenius, fit_regime
from mtpkit.errors import UserError

TEMPS = np.arange(350.0, 701.0, 25.0)


def _d(T, ea, lnA):
    return np.exp(lnA - ea / (K_B_EV * T))


def test_one_regime_recovers_ea_within_error():
    rng = np.random.default_rng(1)
    true = _d(TEMPS, 0.30, np.log(1e-3))
    rel = 0.05
    hits = 0
    for _trial in range(40):
        y = true * np.exp(rng.normal(0, rel, len(TEMPS)))
        fit = fit_arrhenius(TEMPS, y, rel * y)
        r = fit.regimes[0]
        hits += abs(r.Ea_eV - 0.30) < r.Ea_err_eV
        assert abs(r.Ea_eV - 0.30) < 5 * r.Ea_err_eV
    # a 1-sigma interval holds the true value in roughly 68 % of the trials
    assert 18 <= hits <= 38


def test_two_regimes_find_planted_breakpoint_and_both_eas():
    rng = np.random.default_rng(2)
    tb = 500.0
    ea_lo, ea_hi = 0.40, 0.20
    lnA_lo = np.log(1e-2)
    lnA_hi = lnA_lo - ea_lo / (K_B_EV * tb) + ea_hi / (K_B_EV * tb)  # continuous at tb
    y = np.where(TEMPS < tb, _d(TEMPS, ea_lo, lnA_lo), _d(TEMPS, ea_hi, lnA_hi))
    y = y * np.exp(rng.normal(0, 0.02, len(TEMPS)))
    fit = fit_arrhenius(TEMPS, y, 0.02 * y, regimes=2)
    lo, hi = fit.regimes
    assert lo.T_max_K < tb <= hi.T_min_K
    assert abs(fit.breakpoint_K - tb) < 25.0
    assert abs(lo.Ea_eV - ea_lo) < 3 * lo.Ea_err_eV + 0.01
    assert abs(hi.Ea_eV - ea_hi) < 3 * hi.Ea_err_eV + 0.01
    single = fit_arrhenius(TEMPS, y, 0.02 * y)
    assert fit.total_chi2 < 0.1 * single.total_chi2
    given = fit_arrhenius(TEMPS, y, 0.02 * y, breakpoint_K=510.0)
    assert given.breakpoint_given and given.regimes[0].T_max_K == 500.0


def test_extrapolation_error_propagation_matches_monte_carlo():
    rng = np.random.default_rng(3)
    T = np.array([400.0, 450.0, 500.0, 550.0, 600.0])
    y = _d(T, 0.35, np.log(5e-3)) * np.exp(rng.normal(0, 0.05, len(T)))
    fit = fit_arrhenius(T, y, 0.05 * y)
    ext = extrapolate(fit, 293.0, conversion=2.0)
    r = fit.regimes[0]
    samples = rng.multivariate_normal([r.ln_prefactor, -r.Ea_eV / K_B_EV], r.cov, 20000)
    ln_vals = samples[:, 0] + samples[:, 1] / 293.0
    assert ext["ln_err"] == pytest.approx(np.std(ln_vals), rel=0.05)
    assert ext["value"] == pytest.approx(2.0 * np.exp(r.ln_y(293.0)))
    # sigma*T mode divides by T
    fit_st = fit_arrhenius(T, y * T, 0.05 * y * T, quantity="sigmaT")
    assert extrapolate(fit_st, 293.0)["value"] == pytest.approx(np.exp(fit_st.regimes[0].ln_y(293.0)) / 293.0)


def test_arrhenius_bad_input():
    with pytest.raises(UserError, match="non-positive"):
        fit_regime([400, 500], [1e-6, 0.0])
    with pytest.raises(UserError, match="at least 2"):
        fit_regime([400], [1e-6])
    with pytest.raises(UserError, match="each regime needs"):
        fit_arrhenius([400, 500, 600], [1e-7, 1e-6, 1e-5], breakpoint_K=450)
