"""Arrhenius fits: known Ea (one and two regimes), breakpoint search, extrapolation errors."""

from __future__ import annotations

import numpy as np
import pytest

from mtpkit.analysis.arrhenius import ALPHA, K_B_EV, extrapolate, fit_arrhenius, fit_regime
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


# --- one or two regimes: F-test with the breakpoint search in its null distribution ---------------

CAMPAIGN_TEMPS = np.arange(400.0, 751.0, 50.0)  # 8 temperatures, the campaign's largest sweeps


def _line(T, rng, rel=0.05):
    return _d(T, 0.30, np.log(1e-3)) * np.exp(rng.normal(0, rel, len(T)))


def _kink(T, rng, tb=575.0, rel=0.05):
    lnA_hi = np.log(1e-2) - 0.45 / (K_B_EV * tb) + 0.20 / (K_B_EV * tb)  # continuous at tb
    y = np.where(T < tb, _d(T, 0.45, np.log(1e-2)), _d(T, 0.20, lnA_hi))
    return y * np.exp(rng.normal(0, rel, len(T)))


def test_straight_line_with_noise_is_one_regime_over_200_seeds():
    p = []
    for seed in range(200):
        y = _line(CAMPAIGN_TEMPS, np.random.default_rng(seed))
        fit = fit_arrhenius(CAMPAIGN_TEMPS, y, 0.05 * y, regimes=2)
        assert min(r.n_points for r in fit.regimes) >= 3  # no 2-point regime with χ² = 0
        p.append(fit.selection["p_value"])
    p = np.array(p)
    # at the default false-positive level α = 0.01, ≥ 95 % of straight lines stay one regime
    assert np.mean(p >= ALPHA) >= 0.95
    # and the test is calibrated although the best of 3 splits is taken: at α = 0.05 about 5 % come out as two
    # (binomial sd over 200 seeds 1.5 %)
    assert 0.015 <= np.mean(p < 0.05) <= 0.09
    # "auto" returns the one line, carrying the test
    y = _line(CAMPAIGN_TEMPS, np.random.default_rng(int(np.argmax(p))))
    auto = fit_arrhenius(CAMPAIGN_TEMPS, y, 0.05 * y, regimes="auto")
    assert len(auto.regimes) == 1 and auto.selection["preferred_regimes"] == 1
    assert auto.regimes[0].Ea_eV == pytest.approx(fit_arrhenius(CAMPAIGN_TEMPS, y, 0.05 * y).regimes[0].Ea_eV)


def test_f_test_does_not_depend_on_the_error_scale():
    y = _line(CAMPAIGN_TEMPS, np.random.default_rng(5))
    a = fit_arrhenius(CAMPAIGN_TEMPS, y, 0.05 * y, regimes=2).selection
    b = fit_arrhenius(CAMPAIGN_TEMPS, y, 0.005 * y, regimes=2).selection  # errors 10x too small
    assert a["p_value"] == b["p_value"] and a["F"] == pytest.approx(b["F"])


def test_clear_kink_is_two_regimes_with_breakpoint_range():
    tb = 575.0
    two = covered = 0
    for seed in range(50):
        y = _kink(CAMPAIGN_TEMPS, np.random.default_rng(1000 + seed))
        fit = fit_arrhenius(CAMPAIGN_TEMPS, y, 0.05 * y, regimes="auto")
        if len(fit.regimes) == 2:
            two += 1
            lo, hi = fit.breakpoint_range_K
            covered += lo <= tb <= hi
            assert lo <= fit.breakpoint_K <= hi
            assert fit.selection["p_value"] < ALPHA and fit.selection["delta_bic"] > 0
    assert two >= 45 and covered >= 0.9 * two
    # a noise-free kink: one split only, the crossing of the lines at the true breakpoint
    y = _kink(CAMPAIGN_TEMPS, np.random.default_rng(0), rel=0.0)
    fit = fit_arrhenius(CAMPAIGN_TEMPS, y, 0.05 * y, regimes="auto")
    assert fit.breakpoint_range_K == (550.0, 600.0) and fit.breakpoint_K == pytest.approx(tb, rel=1e-6)
    assert [r.Ea_eV for r in fit.regimes] == pytest.approx([0.45, 0.20], rel=1e-6)


def test_too_few_temperatures_for_a_searched_breakpoint():
    T = np.array([400.0, 450.0, 500.0, 550.0, 600.0])
    y = _line(T, np.random.default_rng(0))
    with pytest.raises(UserError, match="at least 6 temperatures"):
        fit_arrhenius(T, y, 0.05 * y, regimes=2)
    with pytest.raises(UserError, match="3 temperatures per regime"):
        fit_arrhenius(np.arange(400.0, 751.0, 50.0), _line(CAMPAIGN_TEMPS, np.random.default_rng(0)),
                      regimes=2, min_points=2)
    auto = fit_arrhenius(T, y, 0.05 * y, regimes="auto")
    assert len(auto.regimes) == 1 and "fewer than the 6" in auto.selection["reason"]
    # a given breakpoint is the user's choice (2 points a side allowed); the exact F-test is reported
    given = fit_arrhenius(T, y, 0.05 * y, breakpoint_K=475.0)
    assert given.breakpoint_given and 0 < given.selection["p_value"] <= 1  # F(2, 1)
    six = np.append(T, 650.0)
    y6 = _kink(six, np.random.default_rng(3), tb=525.0, rel=0.01)
    g = fit_arrhenius(six, y6, 0.01 * y6, breakpoint_K=525.0)
    assert g.selection["p_value"] < 0.01 and g.selection["splits_tested"] == 1


def test_ea_error_follows_the_given_errors_unless_the_scatter_is_larger():
    T = CAMPAIGN_TEMPS
    exact = _d(T, 0.30, np.log(1e-3))
    tiny = exact * np.exp(np.random.default_rng(4).normal(0, 1e-4, len(T)))  # scatter far below the errors
    e1 = fit_arrhenius(T, tiny, 0.05 * tiny).regimes[0].Ea_err_eV
    e2 = fit_arrhenius(T, tiny, 0.10 * tiny).regimes[0].Ea_err_eV
    assert e2 == pytest.approx(2 * e1, rel=1e-9)  # Birge ratio < 1: the errors set Ea_err
    noisy = exact * np.exp(np.random.default_rng(4).normal(0, 0.2, len(T)))  # scatter 20x the stated errors
    r = fit_arrhenius(T, noisy, 0.01 * noisy).regimes[0]
    assert r.Ea_err_eV > 5 * fit_arrhenius(T, tiny, 0.01 * tiny).regimes[0].Ea_err_eV
    assert r.Ea_err_eV == pytest.approx(fit_arrhenius(T, noisy).regimes[0].Ea_err_eV, rel=1e-9)


def test_boltzmann_constant_from_scipy():
    from scipy import constants

    assert K_B_EV == constants.physical_constants["Boltzmann constant in eV/K"][0]
    assert K_B_EV == pytest.approx(8.617333262e-5, rel=1e-10)


def test_analysis_selects_regimes_by_the_test():
    from types import SimpleNamespace

    from mtpkit.analysis.analyze import select_arrhenius

    def results(y):
        return [SimpleNamespace(temperature_K=t, D=v, D_err=0.05 * v) for t, v in zip(CAMPAIGN_TEMPS, y)]

    line = results(_line(CAMPAIGN_TEMPS, np.random.default_rng(0)))
    kink = results(_kink(CAMPAIGN_TEMPS, np.random.default_rng(1)))
    notes: list[str] = []
    arr, fit = select_arrhenius(line, 2, None, "D", notes, "")
    assert arr["selected"] == "one_regime" and len(fit.regimes) == 1 and "do not need" in notes[-1]
    assert arr["selection"]["p_value"] >= ALPHA and arr["two_regimes"]["breakpoint_range_K"] is not None
    arr, fit = select_arrhenius(kink, 2, None, "D", notes, "")
    assert arr["selected"] == "two_regimes" and len(fit.regimes) == 2
    arr, fit = select_arrhenius(kink, 1, None, "D", notes, "")  # one regime asked for: kept, with a note
    assert arr["selected"] == "one_regime" and "favour two" in notes[-1]
    arr, fit = select_arrhenius(line, 1, 575.0, "D", notes, "")  # the user's breakpoint is kept
    assert arr["selected"] == "two_regimes" and fit.breakpoint_given and "one line fits" in notes[-1]
