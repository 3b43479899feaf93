"""cnsvol.stats against independent computations.

Every golden value names the code or the derivation that produced it. The implementations under
test are statsmodels (Clopper-Pearson, SurvfuncRight, survdiff, PHReg) and scipy (Fisher,
chi-square, log-log band); the references are other implementations (scipy.stats.binomtest,
scipy.stats.hypergeom, scipy.stats.ecdf, scipy.stats.logrank, a numpy Newton-Raphson on the
Efron partial likelihood, ``efron_newton`` of tests/test_cox_efron.py, itself checked against
lifelines there) or hand arithmetic with exact fractions.
"""

from __future__ import annotations

import json
import math
import warnings
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from test_cox_efron import efron_newton  # pytest puts tests/ on sys.path (as for helpers)

from cnsvol.cohort import stats as _stats
from cnsvol.cohort.stats import hazards


class _AsDicts:
    """cnsvol.cohort.stats with each typed result as its JSON dict (the cohort.json shapes), so
    that the tests check the shapes a reader of cohort.json sees."""

    TYPED = {"binomial_rate", "compare_arms", "kaplan_meier", "logrank", "cox", "pfs_analysis",
             "cohort_statistics"}

    def __getattr__(self, name):
        fn = getattr(_stats, name)
        if name not in self.TYPED:
            return fn

        def as_dict(*args, **kwargs):
            result = fn(*args, **kwargs)
            return None if result is None else result.to_dict()

        return as_dict


stats = _AsDicts()

# --------------------------------------------------------------------------- helpers

RATE_KEYS = {"n", "events", "rate", "ci_low", "ci_high", "method", "alpha"}
TEST_KEYS = {"test", "p_value", "table", "odds_ratio"}
KM_KEYS = {"n", "events", "median_days", "median_ci_low", "median_ci_high", "survival_at", "curve"}
CURVE_KEYS = {"time", "survival", "at_risk", "events", "censored"}
SURV_AT_KEYS = {"days", "survival", "ci_low", "ci_high"}
ANALYSIS_KEYS = {"label", "time_origin", "groups", "logrank", "cox_responder",
                 "cox_percent_change"}
COX_KEYS = {"hr", "ci_low", "ci_high", "p_value", "n", "events", "unit"}
COHORT_KEYS = {"criteria", "n_subjects", "n_failed", "n_evaluable", "ids_without_pfs",
               "ids_without_masks", "failed_ids", "rates", "arm_comparison", "pfs", "pfs_table",
               "pfs_imaging_discrepancies", "pfs_tolerance_days"}

# Freireich et al. (1963) 6-MP arm, the Kaplan-Meier example of Kleinbaum & Klein and of
# Collett: 21 remission times in weeks, 9 relapses (event) and 12 censored ("+").
GEHAN_TIME = [6, 6, 6, 6, 7, 9, 10, 10, 11, 13, 16, 17, 19, 20, 22, 23, 25, 32, 32, 34, 35]
GEHAN_EVENT = [1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]


def seeded_survival(seed: int, n: int = 80):
    """Integer days in 1..60 (many ties, events and censorings at the same day), ~70% events."""
    rng = np.random.default_rng(seed)
    time = rng.integers(1, 61, n).astype(float)
    event = rng.random(n) < 0.7
    return time, event


def median_r_convention(times, surv, tol=math.sqrt(np.finfo(float).eps)):
    """R survival's print.survfit rule, written independently of cnsvol.stats._median."""
    for i, s in enumerate(surv):
        if s < 0.5 + tol:
            if abs(s - 0.5) < tol:
                later = [t for t, s2 in zip(times, surv) if s2 < s - tol]
                return (times[i] + later[0]) / 2 if later else times[i]
            return times[i]
    return None


def assert_no_nan(obj):
    """json.dumps(allow_nan=False) fails on NaN/inf anywhere; also only plain Python types."""
    json.dumps(obj, allow_nan=False)

    def walk(o):
        if isinstance(o, dict):
            assert all(isinstance(k, str) for k in o)
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
        else:
            assert o is None or type(o) in (bool, int, float, str), (o, type(o))

    walk(obj)


# --------------------------------------------------------------------------- rates


def test_clopper_pearson_10_of_50():
    """10/50: [0.1003, 0.3372] (Clopper-Pearson, e.g. Lin 2009's 20% of 50), and identical to
    ``scipy.stats.binomtest(10, 50).proportion_ci(confidence_level=0.95, method="exact")``."""
    rate = stats.binomial_rate(10, 50)
    assert set(rate) == RATE_KEYS
    assert rate["rate"] == 0.2 and rate["n"] == 50 and rate["events"] == 10
    assert (round(rate["ci_low"], 4), round(rate["ci_high"], 4)) == (0.1003, 0.3372)
    ref = sps.binomtest(10, 50).proportion_ci(confidence_level=0.95, method="exact")
    assert rate["ci_low"] == pytest.approx(ref.low, abs=1e-12)
    assert rate["ci_high"] == pytest.approx(ref.high, abs=1e-12)
    assert rate["method"] == "clopper-pearson" and rate["alpha"] == 0.05


@pytest.mark.parametrize("events,n,alpha", [(0, 12, 0.05), (12, 12, 0.05), (7, 31, 0.1)])
def test_clopper_pearson_edges_match_binomtest(events, n, alpha):
    """0/n has lower limit 0 and n/n upper limit 1 (one-sided exact bounds), as binomtest."""
    rate = stats.binomial_rate(events, n, alpha=alpha)
    ref = sps.binomtest(events, n).proportion_ci(confidence_level=1 - alpha, method="exact")
    assert rate["ci_low"] == pytest.approx(ref.low, abs=1e-12)
    assert rate["ci_high"] == pytest.approx(ref.high, abs=1e-12)


def test_rate_of_zero_subjects_is_null():
    rate = stats.binomial_rate(0, 0)
    assert rate["rate"] is None and rate["ci_low"] is None and rate["ci_high"] is None
    assert_no_nan(rate)
    with pytest.raises(ValueError):
        stats.binomial_rate(5, 3)


# --------------------------------------------------------------------------- arm comparison


def arm_frame(counts: dict[str, tuple[int, int]]) -> pd.DataFrame:
    rows = []
    for arm, (events, n) in counts.items():
        rows += [{"arm": arm, "resp": True}] * events
        rows += [{"arm": arm, "resp": False}] * (n - events)
    return pd.DataFrame(rows).astype({"resp": "boolean"})


def test_fisher_two_arms_against_hypergeometric_by_hand():
    """14/40 vs 18/40 (45% vs 35% style trial). Reference 1: scipy.stats.fisher_exact(
    [[14, 26], [18, 22]]). Reference 2, by hand: with margins fixed (32 responders among 80,
    40 in arm A), X = responders in A ~ hypergeom(M=80, n=32, N=40); the two-sided p is the sum
    of P(X=k) over k with P(X=k) <= P(X=14) (relative tolerance 1e-7 for ties in float)."""
    df = arm_frame({"B": (18, 40), "A": (14, 40)})
    df.loc[len(df)] = {"arm": None, "resp": True}  # no arm: dropped
    df.loc[len(df)] = {"arm": "A", "resp": pd.NA}  # no outcome: dropped
    result = stats.compare_arms(df, "resp", "arm")
    assert set(result) == TEST_KEYS
    assert result["test"] == "fisher_exact"
    assert result["table"] == {"A": [14, 26], "B": [18, 22]}
    assert list(result["table"]) == ["A", "B"]
    ref = sps.fisher_exact([[14, 26], [18, 22]])
    assert result["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)
    hyper = sps.hypergeom(80, 32, 40)
    p_obs = hyper.pmf(14)
    by_hand = sum(hyper.pmf(k) for k in range(0, 33) if hyper.pmf(k) <= p_obs * (1 + 1e-7))
    assert result["p_value"] == pytest.approx(by_hand, rel=1e-9)
    assert 0.3 < by_hand < 0.7  # not significant, as expected for 35% vs 45% with 40 per arm
    assert result["odds_ratio"] == pytest.approx((14 * 22) / (26 * 18), rel=1e-12)


def test_chi2_for_three_arms():
    """Three arms: scipy.stats.chi2_contingency([[5, 15], [9, 11], [14, 6]]).pvalue."""
    df = arm_frame({"A": (5, 20), "B": (9, 20), "C": (14, 20)})
    result = stats.compare_arms(df, "resp", "arm")
    assert result["test"] == "chi2" and result["odds_ratio"] is None
    ref = sps.chi2_contingency([[5, 15], [9, 11], [14, 6]])
    assert result["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)
    assert result["p_value"] < 0.05


def test_flags_are_typed_and_missing_values_dropped():
    """A flag column is boolean: bool, pandas boolean, or Python bools with None / NaN / pd.NA
    for missing; text is refused with the column's name (no parsing of "True" strings)."""
    df = pd.DataFrame({"arm": ["A", "A", "A", "B", "B", "B", "B", "B"],
                       "resp": pd.Series([True, None, np.nan, pd.NA, False, np.True_, False,
                                          True], dtype=object)})
    assert stats.compare_arms(df, "resp", "arm")["table"] == {"A": [1, 0], "B": [2, 2]}
    typed = df.assign(resp=df["resp"].astype("boolean"))
    assert stats.compare_arms(typed, "resp", "arm")["table"] == {"A": [1, 0], "B": [2, 2]}
    for text in ("True", "yes please"):
        with pytest.raises(ValueError, match="'resp'.*boolean"):
            stats.compare_arms(df.assign(resp=text), "resp", "arm")


def test_arm_comparison_degenerate_cases():
    assert stats.compare_arms(arm_frame({"A": (3, 10)}), "resp", "arm") is None
    no_responders = stats.compare_arms(arm_frame({"A": (0, 5), "B": (0, 6), "C": (0, 4)}),
                                       "resp", "arm")
    assert no_responders["p_value"] is None and no_responders["table"]["B"] == [0, 6]
    zero_or = stats.compare_arms(arm_frame({"A": (0, 5), "B": (4, 6)}), "resp", "arm")
    assert zero_or["odds_ratio"] == 0.0  # (0 * 2) / (5 * 4)
    infinite_or = stats.compare_arms(arm_frame({"A": (5, 5), "B": (4, 6)}), "resp", "arm")
    assert infinite_or["odds_ratio"] is None  # (5 * 2) / (0 * 4) = inf -> null
    assert infinite_or["p_value"] == pytest.approx(sps.fisher_exact([[5, 0], [4, 2]]).pvalue)
    assert_no_nan(infinite_or)


# --------------------------------------------------------------------------- Kaplan-Meier


def test_km_textbook_product_limit_by_hand():
    """6-MP arm of Freireich (1963). Product-limit steps (n at risk, d events):

    t=6:  n=21, d=3  S = 18/21                       = 0.857143
    t=7:  n=17, d=1  S = 18/21 * 16/17               = 0.806723  (6+ censored)
    t=10: n=15, d=1  S = ... * 14/15                 = 0.752941  (9+ censored)
    t=13: n=12, d=1  S = ... * 11/12                 = 0.690196  (10+, 11+ censored)
    t=16: n=11, d=1  S = ... * 10/11                 = 0.627451
    t=22: n=7,  d=1  S = ... * 6/7                   = 0.537815  (17+, 19+, 20+ censored)
    t=23: n=6,  d=1  S = ... * 5/6                   = 0.448179
    Median: first t with S(t) <= 0.5, i.e. 23 weeks (the textbook value). Beyond 35 (last
    observation, censored) the estimate is undefined.
    """
    steps = [(6, 21, 3), (7, 17, 1), (10, 15, 1), (13, 12, 1), (16, 11, 1), (22, 7, 1),
             (23, 6, 1)]
    s, expected = Fraction(1), {}
    for t, n, d in steps:
        s *= Fraction(n - d, n)
        expected[t] = float(s)
    km = stats.kaplan_meier(GEHAN_TIME, GEHAN_EVENT,
                            survival_times_days=np.array([5, 10, 23, 35, 36]))
    curve = km["curve"]
    assert km["n"] == 21 and km["events"] == 9
    assert curve["time"][0] == 0 and curve["survival"][0] == 1.0 and curve["at_risk"][0] == 21
    for t, n, d in steps:
        i = curve["time"].index(float(t))
        assert curve["survival"][i] == pytest.approx(expected[t], abs=1e-12)
        assert (curve["at_risk"][i], curve["events"][i]) == (n, d)
    i6 = curve["time"].index(6.0)
    assert curve["censored"][i6] == 1
    assert curve["time"] == [0.0] + sorted(set(map(float, GEHAN_TIME)))
    assert sum(curve["events"]) == 9 and sum(curve["censored"]) == 12
    assert km["median_days"] == 23.0
    by_day = {row["days"]: row for row in km["survival_at"]}
    assert by_day[5]["survival"] == 1.0 and by_day[5]["ci_low"] is None  # no event yet
    assert by_day[10]["survival"] == pytest.approx(expected[10], abs=1e-12)
    assert by_day[35]["survival"] == pytest.approx(expected[23], abs=1e-12)
    assert by_day[36] == {"days": 36, "survival": None, "ci_low": None, "ci_high": None}
    assert_no_nan(km)


def test_km_curve_and_median_against_scipy_ecdf():
    """Seeded data with ties and censoring. Reference: scipy.stats.ecdf(
    CensoredData.right_censored(time, ~event)).sf.evaluate(t) at every curve time; numbers at
    risk counted directly (sum(time >= t)); median by the R rule applied to scipy's curve."""
    for seed in (1, 2, 3):
        time, event = seeded_survival(seed)
        km = stats.kaplan_meier(time, event)
        ref = sps.ecdf(sps.CensoredData.right_censored(time, ~event)).sf
        t = np.array(km["curve"]["time"][1:])
        np.testing.assert_allclose(km["curve"]["survival"][1:], ref.evaluate(t), atol=1e-12)
        assert km["curve"]["at_risk"][1:] == [int((time >= u).sum()) for u in t]
        assert km["curve"]["events"][1:] == [int((event & (time == u)).sum()) for u in t]
        assert km["curve"]["censored"][1:] == [int((~event & (time == u)).sum()) for u in t]
        assert km["median_days"] == median_r_convention(list(ref.quantiles),
                                                        list(ref.probabilities))
        assert km["median_days"] is not None


def test_km_survival_at_ci_greenwood_log_log_by_hand():
    """Pointwise 95% limits at day d: Greenwood V = sum over event times t_i <= d of
    d_i / (n_i (n_i - d_i)) (variance of log S), then the log-log interval
    S ** exp(+/- z sqrt(V) / log S), z = Phi^-1(0.975). Counted here from the raw data."""
    time, event = seeded_survival(4)
    days = (10, 25, 40)
    km = stats.kaplan_meier(time, event, survival_times_days=days)
    z = sps.norm.ppf(0.975)
    for row, day in zip(km["survival_at"], days):
        s, v = 1.0, 0.0
        for u in np.unique(time[event & (time <= day)]):
            n, d = (time >= u).sum(), (event & (time == u)).sum()
            s *= 1 - d / n
            v += d / (n * (n - d))
        assert row["survival"] == pytest.approx(s, rel=1e-12)
        assert row["ci_low"] == pytest.approx(s ** math.exp(-z * math.sqrt(v) / math.log(s)),
                                              rel=1e-9)
        assert row["ci_high"] == pytest.approx(s ** math.exp(z * math.sqrt(v) / math.log(s)),
                                               rel=1e-9)
    narrower = stats.kaplan_meier(time, event, survival_times_days=days, alpha=0.2)
    for wide, narrow in zip(km["survival_at"], narrower["survival_at"]):
        assert wide["ci_low"] < narrow["ci_low"] < narrow["ci_high"] < wide["ci_high"]


@pytest.mark.filterwarnings("ignore:The confidence interval is undefined:RuntimeWarning")
@pytest.mark.parametrize("alpha", [0.05, 0.2])
def test_km_median_ci_against_scipy_log_log_band(alpha):
    """Brookmeyer-Crowley with the log-log transform: the median CI is the set of times where
    0.5 lies inside the pointwise log-log band. From scipy's band (independent of statsmodels):
    lower = first event time with band low < 0.5, upper = first event time with band high < 0.5
    (None when the band never drops below 0.5). Same at 80% (alpha = 0.2)."""
    for seed in (5, 6, 7):
        time, event = seeded_survival(seed)
        km = stats.kaplan_meier(time, event, alpha=alpha)
        ref = sps.ecdf(sps.CensoredData.right_censored(time, ~event)).sf
        band = ref.confidence_interval(1 - alpha, method="log-log")
        event_times = np.unique(time[event])
        low = np.nan_to_num(band.low.evaluate(event_times), nan=0.0)
        high = np.nan_to_num(band.high.evaluate(event_times), nan=0.0)
        assert km["median_ci_low"] == event_times[np.flatnonzero(low < 0.5)[0]]
        upper = np.flatnonzero(high < 0.5)
        assert km["median_ci_high"] == (event_times[upper[0]] if upper.size else None)
        assert km["median_ci_low"] <= km["median_days"]


@pytest.mark.parametrize("n", [10, 12, 20, 41])
def test_km_median_without_censoring_is_sample_median(n):
    """Without censoring the KM median is numpy.median: n=10 -> 5.5, n=12 -> 6.5 (statsmodels'
    own SurvfuncRight.quantile gives 6 for both: S = 0.5 is 0.4999... in float for n=12)."""
    time = np.arange(1, n + 1, dtype=float)
    km = stats.kaplan_meier(time, np.ones(n, dtype=bool))
    assert km["median_days"] == np.median(time)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 500), min_size=1, max_size=30, unique=True))
def test_km_median_property_uncensored(days):
    time = np.array(days, dtype=float)
    assert stats.kaplan_meier(time, [True] * len(days))["median_days"] == np.median(time)


def test_km_median_not_reached_and_edge_cases():
    """Median not reached: median and CI null. No event: flat curve at 1. n = 0: empty KM."""
    km = stats.kaplan_meier([10, 20, 30, 40], [True, False, False, False])
    assert km["median_days"] is None
    assert km["median_ci_low"] is None and km["median_ci_high"] is None
    flat = stats.kaplan_meier([5, 8], [False, False], survival_times_days=(6, 9))
    assert flat["curve"]["survival"] == [1.0, 1.0, 1.0]
    assert flat["survival_at"][0]["survival"] == 1.0 and flat["survival_at"][1]["survival"] is None
    empty = stats.kaplan_meier([], [])
    assert empty["n"] == 0 and empty["curve"]["at_risk"] == [0]
    all_events = stats.kaplan_meier([1, 2, 3, 4], [True] * 4, survival_times_days=(4,))
    assert all_events["survival_at"][0]["survival"] == 0.0
    assert all_events["survival_at"][0]["ci_low"] is None
    for result in (km, flat, empty, all_events):
        assert set(result) == KM_KEYS and set(result["curve"]) == CURVE_KEYS
        assert_no_nan(result)
    with pytest.raises(ValueError):
        stats.kaplan_meier([-1, 2], [True, True])


# --------------------------------------------------------------------------- log-rank


def test_logrank_against_scipy():
    """Two groups of seeded data: scipy.stats.logrank(x, y) gives z with z**2 = chi-square and
    the same two-sided p."""
    time, event = seeded_survival(8, n=90)
    rng = np.random.default_rng(9)
    group = rng.random(90) < 0.5
    time = np.where(group, time * 1.6, time).round()  # group True lives longer
    result = stats.logrank(time, event, np.where(group, "responder", "non_responder"))
    ref = sps.logrank(sps.CensoredData.right_censored(time[group], ~event[group]),
                      sps.CensoredData.right_censored(time[~group], ~event[~group]))
    assert result["df"] == 1
    assert result["statistic"] == pytest.approx(ref.statistic**2, rel=1e-9)
    assert result["p_value"] == pytest.approx(ref.pvalue, rel=1e-7)
    assert result["p_value"] < 0.05
    assert stats.logrank(time, event, ["a"] * 90) is None
    assert stats.logrank([1, 2, 3], [False] * 3, ["a", "b", "a"]) is None


# --------------------------------------------------------------------------- Cox


def cox_data(seed: int, n: int = 70):
    rng = np.random.default_rng(seed)
    responder = rng.random(n) < 0.4
    pct = np.where(responder, rng.uniform(-90, -20, n), rng.uniform(-19, 80, n))
    hazard = np.exp(0.012 * pct)
    time = np.ceil(rng.exponential(200 / hazard)).clip(1, 720)
    event = (rng.random(n) < 0.8) & (time < 720)
    return time, event, responder, pct


def test_cox_binary_covariate_against_newton_raphson():
    """HR responder vs non-responder = exp(beta) from efron_newton(); 95% CI exp(beta +/-
    1.959964 se) and Wald p = 2 (1 - Phi(|beta| / se)), all to 1e-6."""
    time, event, responder, _ = cox_data(10)
    beta, se = efron_newton(time, event, responder.astype(float))
    result = stats.cox(time, event, responder.astype(float), stats.UNIT_RESPONDER)
    z = sps.norm.ppf(0.975)
    assert set(result) == COX_KEYS
    assert result["hr"] == pytest.approx(math.exp(beta), rel=1e-6)
    assert result["ci_low"] == pytest.approx(math.exp(beta - z * se), rel=1e-6)
    assert result["ci_high"] == pytest.approx(math.exp(beta + z * se), rel=1e-6)
    assert result["p_value"] == pytest.approx(2 * sps.norm.sf(abs(beta) / se), rel=1e-6)
    assert result["n"] == 70 and result["events"] == int(event.sum())
    assert result["unit"] == "responder vs non-responder"
    assert result["hr"] < 1  # responders progress later in this simulation


def test_cox_per_10_points_against_newton_raphson():
    """Fit on the raw percent change by Newton-Raphson: HR per +10 points = exp(10 beta_raw);
    pfs_analysis scales the covariate by 1/10 and must agree."""
    time, event, responder, pct = cox_data(11)
    beta_raw, se_raw = efron_newton(time, event, pct)
    df = pd.DataFrame({"r": responder, "pfs_days": time, "pfs_event": event,
                       "best_percent_change": pct})
    result = stats.pfs_analysis(df, "r")["cox_percent_change"]
    assert result["unit"] == "per +10 percentage points"
    assert result["hr"] == pytest.approx(math.exp(10 * beta_raw), rel=1e-6)
    assert result["ci_high"] == pytest.approx(math.exp(10 * (beta_raw + 1.959963984540054
                                                             * se_raw)), rel=1e-6)
    assert result["p_value"] == pytest.approx(2 * sps.norm.sf(abs(beta_raw) / se_raw), rel=1e-6)
    assert result["hr"] > 1


def test_cox_not_estimable_returns_none():
    """No event; constant covariate; separation (every progression among non-responders: the
    partial likelihood has no maximum, the optimiser would return HR ~ e^-26). One progression
    among responders makes the MLE finite again, and it then matches Newton-Raphson."""
    time = np.arange(1, 21, dtype=float)
    responder = np.array([1.0, 0.0] * 10)
    assert stats.cox(time, np.zeros(20, bool), responder, "u") is None
    assert stats.cox(time, np.ones(20, bool), np.ones(20), "u") is None
    separated = responder == 0
    assert stats.cox(time, separated, responder, "u") is None
    assert stats.cox(time, separated, -responder, "u") is None
    nearly = separated.copy()
    nearly[4] = True  # subject 5 (a responder) progresses at day 5
    beta, _ = efron_newton(time, nearly, responder)
    assert stats.cox(time, nearly, responder, "u")["hr"] == pytest.approx(math.exp(beta),
                                                                          rel=1e-6)


def test_cox_silent_monotone_likelihood_returns_none():
    """Every progression (days 5, 9, 12) is the subject with the most negative percent change
    in its risk set: day 5 (-77 among -77, 20, 0, 11, -74, -20, 103, -24), day 9 (-74 among
    -74, -20, 103, -24), day 12 (-24, alone). The partial likelihood increases forever as
    beta -> -inf, so there is no HR. On the raw percentages statsmodels 0.15 PHReg returns
    beta = -7.03 (HR 9e-4) with se 0.08 and p = 0 *without* any warning; only the explicit
    monotone-likelihood check catches it (on percent / 10 the fit at least warns)."""
    time = np.arange(1, 13, dtype=float)
    event = np.array([0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1], dtype=bool)
    pct = np.array([11, -84, 4, -31, -77, 20, 0, 11, -74, -20, 103, -24], dtype=float)
    assert stats.cox(time, event, pct, "per percentage point") is None
    assert stats.cox(time, event, pct / 10, stats.UNIT_PER_10_POINTS) is None
    df = pd.DataFrame({"r": pct <= -20, "pfs_days": time, "pfs_event": event,
                       "best_percent_change": pct})
    assert stats.pfs_analysis(df, "r")["cox_percent_change"] is None


def test_cox_fit_warning_gives_none(monkeypatch):
    """Policy: a ConvergenceWarning from the fit means no HR, even when the data pass the
    pre-checks (here a well-posed data set; the fit is made to warn)."""
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    class WarningPHReg(hazards.PHReg):
        def fit(self, *args, **kwargs):
            warnings.warn("did not converge", ConvergenceWarning)
            return super().fit(*args, **kwargs)

    time, event, responder, _ = cox_data(13)
    assert stats.cox(time, event, responder.astype(float), "u") is not None
    monkeypatch.setattr(hazards, "PHReg", WarningPHReg)
    assert stats.cox(time, event, responder.astype(float), "u") is None


def test_cox_alpha_sets_the_interval_level():
    """alpha = 0.1: 90% Wald limits exp(beta -/+ 1.644854 se) from efron_newton()."""
    time, event, responder, _ = cox_data(12)
    beta, se = efron_newton(time, event, responder.astype(float))
    result = stats.cox(time, event, responder.astype(float), "u", alpha=0.1)
    z = sps.norm.ppf(0.95)
    assert result["ci_low"] == pytest.approx(math.exp(beta - z * se), rel=1e-6)
    assert result["ci_high"] == pytest.approx(math.exp(beta + z * se), rel=1e-6)


# --------------------------------------------------------------------------- landmark


def test_landmark_frame_by_hand():
    """Landmark day 56:
    s1 progresses at day 30          -> excluded (before the landmark)
    s2 responds day 40, censored 200 -> responder at landmark, time 200 - 56 = 144
    s3 responds day 84, progresses 150 -> non-responder at landmark (response after), time 94
    s4 censored at day 56            -> excluded (no follow-up after the landmark)
    s5 never responds, progresses 100 -> non-responder, time 44
    s6 no PFS data                   -> ignored, not counted as excluded
    """
    df = pd.DataFrame({
        "subject_id": ["s1", "s2", "s3", "s4", "s5", "s6"],
        "pfs_days": [30, 200, 150, 56, 100, None],
        "pfs_event": pd.array([True, False, True, False, True, None], dtype="boolean"),
        "time_to_responder_20pct_days": [None, 40, 84, None, None, 20],
    })
    frame, n_excluded = stats.landmark_frame(df, 56)
    assert n_excluded == 2
    assert frame["subject_id"].tolist() == ["s2", "s3", "s5"]
    assert frame["pfs_days"].tolist() == [144.0, 94.0, 44.0]
    assert frame["pfs_event"].tolist() == [False, True, True]
    assert frame["responder_at_landmark"].tolist() == [True, False, False]
    assert frame["responder_at_landmark"].dtype == bool
    frame84, n84 = stats.landmark_frame(df, 84)  # response on the landmark day counts
    assert frame84["responder_at_landmark"].tolist() == [True, True, False] and n84 == 2


def test_landmark_frame_flag_without_day_is_an_error():
    df = pd.DataFrame({"subject_id": ["a"], "pfs_days": [90], "pfs_event": [True],
                       "responder_20pct": [True], "time_to_responder_20pct_days": [None]})
    with pytest.raises(ValueError, match="subject"):
        stats.landmark_frame(df, 30, responder_col="responder_20pct")


def test_default_landmark_days():
    df = pd.DataFrame({"status": ["ok", "ok", "failed", "ok", "ok"],
                       "first_followup_days": [50, 62, 10, None, 56]})
    assert stats.default_landmark_days(df) == 56.0
    assert stats.default_landmark_days(df.assign(status="failed")) is None


# --------------------------------------------------------------------------- cohort


def cohort_frame() -> pd.DataFrame:
    """13 subjects: s12 and s13 failed (s12 would be a responder: must not count), arms A/B, one
    subject without PFS (s11), one with an undefined flag (s10); the dtypes of subjects.csv."""
    rows = [
        # id, status, arm, r20, objective, best%, t_r20, first_fu, has_pfs, pfs_days, pfs_event
        ("s01", "ok", "A", True, True, -60.0, 50, 50, True, 400, False),
        ("s02", "ok", "A", True, False, -25.0, 100, 56, True, 300, True),
        ("s03", "ok", "A", False, False, 10.0, None, 56, True, 120, True),
        ("s04", "ok", "B", False, False, 45.0, None, 63, True, 40, True),
        ("s05", "ok", "B", True, True, -70.0, 56, 56, True, 500, False),
        ("s06", "ok", "B", False, False, -5.0, None, 49, True, 400, True),
        ("s07", "ok", "A", False, False, 30.0, None, 56, True, 90, True),
        ("s08", "ok", "B", True, False, -30.0, 112, 60, True, 350, True),
        ("s09", "ok", None, False, False, 5.0, None, 56, True, 60, True),
        ("s10", "ok", "A", None, None, None, None, 56, True, 150, False),
        ("s11", "ok", "B", False, False, 12.0, None, 58, False, None, None),
        ("s12", "failed", "A", True, True, -80.0, 30, None, True, 600, False),
        ("s13", "failed", None, None, None, None, None, None, None, None, None),
    ]
    cols = ["subject_id", "status", "arm", "responder_20pct", "objective_response",
            "best_percent_change", "time_to_responder_20pct_days", "first_followup_days",
            "has_pfs", "pfs_days", "pfs_event"]
    dtypes = {"subject_id": "string", "status": "string", "arm": "string",
              "responder_20pct": "boolean", "objective_response": "boolean",
              "best_percent_change": "float64", "time_to_responder_20pct_days": "float64",
              "first_followup_days": "float64", "has_pfs": "boolean", "pfs_days": "float64",
              "pfs_event": "boolean"}
    df = pd.DataFrame(rows, columns=cols).astype(dtypes)
    df["time_to_response_days"] = df["time_to_responder_20pct_days"].where(
        df["objective_response"].fillna(False).astype(bool))
    return df


def test_cohort_statistics_structure_and_numbers():
    """By hand: ok subjects s01-s11 (11), responder_20pct defined for 10 (s10 empty):
    responders s01 s02 s05 s08 -> 4/10; by arm A: s01 s02 s03 s07 (s10 undefined) -> 2/4;
    B: s04 s05 s06 s08 s11 -> 2/5; s09 has no arm. Objective response: s01 s05 -> 2/10.
    PFS population: ok, flag defined, PFS data -> s01-s09 (9), events s02 s03 s04 s06 s07 s08
    s09 = 7. Landmark = median first follow-up of ok subjects (50 56 56 63 56 49 56 60 56 56
    58) = 56: excluded s04 (PFS 40 <= 56); 8 at risk; responders at 56: s01 (day 50) and
    s05 (day 56); s02 (day 100) and s08 (day 112) respond later -> non-responders (6).
    """
    df = cohort_frame()
    result = stats.cohort_statistics(df, criteria_name="lin2009", ids_without_pfs=["s11"],
                                     ids_without_masks=["x99", "x98"])
    assert_no_nan(result)
    assert set(result) == COHORT_KEYS
    assert result["criteria"] == "lin2009"
    assert (result["n_subjects"], result["n_failed"], result["n_evaluable"]) == (13, 2, 10)
    assert result["failed_ids"] == ["s12", "s13"]
    assert result["ids_without_pfs"] == ["s11"] and result["ids_without_masks"] == ["x99", "x98"]

    rates = result["rates"]
    assert set(rates) == {"responder_20pct", "objective_response"}
    assert rates["responder_20pct"]["overall"] == stats.binomial_rate(4, 10)
    assert rates["responder_20pct"]["by_arm"] == {"A": stats.binomial_rate(2, 4),
                                                  "B": stats.binomial_rate(2, 5)}
    assert rates["objective_response"]["overall"] == stats.binomial_rate(2, 10)
    for flag in rates.values():
        assert set(flag) == {"overall", "by_arm"}
        assert all(set(r) == RATE_KEYS for r in [flag["overall"], *flag["by_arm"].values()])

    comparison = result["arm_comparison"]
    assert set(comparison) == {"responder_20pct", "objective_response"}
    assert comparison["responder_20pct"]["table"] == {"A": [2, 2], "B": [2, 3]}
    assert comparison["responder_20pct"]["p_value"] == pytest.approx(
        sps.fisher_exact([[2, 2], [2, 3]]).pvalue)
    assert all(set(t) == TEST_KEYS for t in comparison.values())

    pfs = result["pfs"]
    assert set(pfs) == {"responder_col", "n", "events", "naive", "landmark"}
    assert (pfs["responder_col"], pfs["n"], pfs["events"]) == ("responder_20pct", 9, 7)
    naive, landmark = pfs["naive"], pfs["landmark"]
    assert set(naive) == ANALYSIS_KEYS
    assert set(landmark) == ANALYSIS_KEYS | {"landmark_days", "landmark_source", "n_excluded"}
    assert naive["label"] == ("naive: responders vs non-responders from baseline "
                              "(guarantee-time biased)")
    assert naive["time_origin"] == "baseline" and landmark["time_origin"] == "landmark"
    assert landmark["label"] == ("landmark at day 56: subjects progression-free at 56, "
                                 "classified by response up to 56")
    assert landmark["landmark_days"] == 56.0
    assert landmark["landmark_source"] == "median first follow-up day"
    assert landmark["n_excluded"] == 1
    assert naive["groups"]["responder"]["n"] == 4 and naive["groups"]["non_responder"]["n"] == 5
    assert landmark["groups"]["responder"]["n"] == 2
    assert landmark["groups"]["non_responder"]["n"] == 6
    assert pfs["n"] == (landmark["n_excluded"] + landmark["groups"]["responder"]["n"]
                        + landmark["groups"]["non_responder"]["n"])
    # landmark times restart: s01 400 - 56 = 344, s05 500 - 56 = 444 (both censored)
    assert landmark["groups"]["responder"]["curve"]["time"] == [0.0, 344.0, 444.0]
    assert landmark["cox_percent_change"] is None  # best % change is not landmark-safe
    assert naive["cox_percent_change"] is not None
    for analysis in (naive, landmark):
        assert set(analysis["groups"]) == {"responder", "non_responder"}
        for km in analysis["groups"].values():
            assert set(km) == KM_KEYS and set(km["curve"]) == CURVE_KEYS
            assert [r["days"] for r in km["survival_at"]] == [90, 180, 365]
            assert all(set(r) == SURV_AT_KEYS for r in km["survival_at"])
        assert set(analysis["logrank"]) == {"statistic", "p_value", "df"}
    assert set(naive["cox_responder"]) == COX_KEYS
    assert naive["cox_responder"]["n"] == 9 and naive["cox_responder"]["events"] == 7
    # At the landmark both responders (s01, s05) are censored: no event in one group is
    # monotone likelihood, so no hazard ratio rather than a meaningless HR near 0.
    assert landmark["cox_responder"] is None


def test_cohort_statistics_does_not_depend_on_row_order():
    df = cohort_frame()
    a = stats.cohort_statistics(df, criteria_name="lin2009")
    assert a["failed_ids"] == ["s12", "s13"]
    for shuffled in (df.iloc[::-1], df.sample(frac=1.0, random_state=3)):
        b = stats.cohort_statistics(shuffled, criteria_name="lin2009")
        assert json.dumps(a, allow_nan=False) == json.dumps(b, allow_nan=False)


def test_cohort_statistics_options_and_missing_pfs():
    df = cohort_frame()
    explicit = stats.cohort_statistics(df, criteria_name="tbcrc022", landmark_days=90,
                                       responder_col="objective_response")
    landmark = explicit["pfs"]["landmark"]
    assert landmark["landmark_source"] == "--landmark-days" and landmark["landmark_days"] == 90.0
    assert explicit["pfs"]["responder_col"] == "objective_response"
    assert landmark["groups"]["responder"]["n"] == 2  # s01 (day 50), s05 (day 56)
    without_flag = stats.cohort_statistics(df.drop(columns=["has_pfs"]), criteria_name="x")
    assert without_flag["pfs"]["n"] == 9  # has_pfs absent: PFS data = pfs_days and pfs_event
    no_pfs = df.drop(columns=["has_pfs", "pfs_days", "pfs_event"])
    result = stats.cohort_statistics(no_pfs, criteria_name="lin2009")
    assert result["pfs"] is None
    empty_pfs = df.assign(has_pfs=pd.NA, pfs_days=np.nan, pfs_event=pd.NA)
    assert stats.cohort_statistics(empty_pfs, criteria_name="lin2009")["pfs"] is None
    one_arm = stats.cohort_statistics(df.assign(arm="A"), criteria_name="lin2009")
    assert one_arm["arm_comparison"] is None
    assert_no_nan(one_arm)
    with pytest.raises(ValueError, match="responder_20pct"):
        stats.cohort_statistics(df.assign(responder_20pct="maybe"), criteria_name="lin2009")


def test_typed_results_read_back_from_their_json_equal():
    """cohort.json is the JSON form of CohortSummary: reading it back gives an equal value."""
    result = _stats.cohort_statistics(cohort_frame(), criteria_name="lin2009",
                                      pfs_table={"path": "pfs.csv", "notes": ["n"]})
    text = json.dumps(result.to_dict(), allow_nan=False)
    back = _stats.CohortSummary.from_dict(json.loads(text))
    assert back == result
    assert back.pfs.landmark.groups["responder"].n == 2 and back.rates["responder_20pct"]\
        .overall.events == 4
    assert json.dumps(back.to_dict(), allow_nan=False) == text
