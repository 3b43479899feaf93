"""cnsvol's Cox model uses Efron's handling of tied event times, checked against lifelines.

Reference values (``LIFELINES``) are lifelines 0.30.3 ``CoxPHFitter`` (Efron ties, the default
of lifelines and of R's ``survival::coxph``) on the data sets ``DATA``, printed by
``tests/data/make_cox_reference.py`` (run in a separate venv: lifelines needs pandas < 3) and
pasted here. cnsvol (statsmodels ``PHReg(..., ties="efron")``) must reproduce coef, HR, se,
the 95% limits and the Wald p to 1e-6 (relative).

A second, in-test reference is :func:`efron_newton`: Newton-Raphson on the Efron log partial
likelihood written out in numpy. It must agree with lifelines (so the in-test formula is
right) and with cnsvol. Finally the data are the kind visit-based PFS gives (progression only
seen at the scans of days 56, 112, 168, ...), on which Breslow's approximation gives a visibly
different answer: the tests would fail if cnsvol went back to ``ties="breslow"``.
"""

from __future__ import annotations

import math
import runpy
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from cnsvol.cohort.stats import UNIT_RESPONDER, cox

SCRIPT = Path(__file__).parent / "data" / "make_cox_reference.py"
Z975 = sps.norm.ppf(0.975)

# (time in days, event 1 = progression / 0 = censored, responder 1 / 0): the data sets of
# tests/data/make_cox_reference.py, read from the script (lifelines is imported only when the
# script runs as a program)
DATA = runpy.run_path(str(SCRIPT), run_name="reference")["DATA"]

# Output of tests/data/make_cox_reference.py (lifelines 0.30.3, pandas 2.3.3, numpy 2.4.6,
# scipy 1.17.1, Python 3.11.7), pasted unchanged.
LIFELINES = {
    'visits_24': {  # default options within 1.5e-06 (relative)
        'coef': -0.5668390677134089,
        'hr': 0.5673158545184517,
        'se': 0.5199043837796692,
        'ci_low': 0.20477715593464813,
        'ci_high': 1.5716952280102685,
        'p': 0.2755917569036125,
        'loglik': -40.64621029699397,
        'n': 24,
        'events': 16,
    },
    'three_visits_40': {  # default options within 5.6e-06 (relative)
        'coef': -0.7621790424262339,
        'hr': 0.4666484715110296,
        'se': 0.3971132715416522,
        'ci_low': 0.21427249080439634,
        'ci_high': 1.0162797620267936,
        'p': 0.05494652443021478,
        'loglik': -84.91915180334732,
        'n': 40,
        'events': 28,
    },
    'small_12': {  # default options within 3.4e-08 (relative)
        'coef': -0.6849293604998168,
        'hr': 0.5041258395144093,
        'se': 0.6791074930226414,
        'ci_low': 0.1331930647789447,
        'ci_high': 1.9080787913987778,
        'p': 0.31317954709265655,
        'loglik': -15.891749012394163,
        'n': 12,
        'events': 9,
    },
}


def arrays(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = np.asarray(DATA[name], dtype=float)
    return a[:, 0], a[:, 1].astype(bool), a[:, 2]


def partial_likelihood(time, event, x, beta: float, ties: str = "efron"):
    """(log partial likelihood, score, information) of a one-covariate Cox model at ``beta``.

    At each distinct event time t with d tied events D and risk set R = {j: t_j >= t}, with
    w_j = exp(beta x_j), S_k = sum_R w x^k and T_k = sum_D w x^k:

        Efron:    l += sum_D beta x - sum_{m=0}^{d-1} log(S_0 - (m/d) T_0)
        Breslow:  l += sum_D beta x - d log(S_0)           (m/d replaced by 0)

    score and information by differentiating: with s_k = S_k - (m/d) T_k the m-th term gives
    -s_1/s_0 and s_2/s_0 - (s_1/s_0)^2.
    """
    time, x = np.asarray(time, dtype=float), np.asarray(x, dtype=float)
    event = np.asarray(event, dtype=bool)
    w = np.exp(beta * x)
    loglik = score = info = 0.0
    for t in np.unique(time[event]):
        risk, dead = time >= t, (time == t) & event
        d = int(dead.sum())
        big = [(w[risk] * x[risk] ** k).sum() for k in range(3)]
        tied = [(w[dead] * x[dead] ** k).sum() for k in range(3)]
        loglik += beta * x[dead].sum()
        score += x[dead].sum()
        for m in range(d):
            frac = m / d if ties == "efron" else 0.0
            s0, s1, s2 = (b - frac * c for b, c in zip(big, tied))
            loglik -= math.log(s0)
            score -= s1 / s0
            info += s2 / s0 - (s1 / s0) ** 2
    return loglik, score, info


def efron_newton(time, event, x, ties: str = "efron") -> tuple[float, float]:
    """Independent Cox fit: Newton-Raphson from beta = 0 on :func:`partial_likelihood` (Efron
    ties by default; ``ties="breslow"`` for the comparison). Returns (beta, se) with
    se = information(beta)^-1/2."""
    beta = 0.0
    for _ in range(100):
        _, score, info = partial_likelihood(time, event, x, beta, ties)
        step = score / info
        beta += step
        if abs(step) < 1e-14:
            break
    else:  # pragma: no cover
        raise AssertionError("Newton-Raphson did not converge")
    _, _, info = partial_likelihood(time, event, x, beta, ties)
    return beta, 1.0 / math.sqrt(info)


def cnsvol_fit(name: str) -> dict:
    time, event, x = arrays(name)
    result = cox(time, event, x, UNIT_RESPONDER)
    assert result is not None
    d = result.to_dict()
    d["coef"] = math.log(d["hr"])
    d["se"] = (math.log(d["ci_high"]) - math.log(d["ci_low"])) / (2 * Z975)
    return d


def test_every_data_set_has_reference_values():
    assert set(LIFELINES) == set(DATA) and len(DATA) == 3


@pytest.mark.parametrize("name", sorted(DATA))
def test_cox_reproduces_lifelines_efron(name):
    """coef, HR, se, 95% CI and Wald p as lifelines CoxPHFitter, to 1e-6 (relative)."""
    ref, got = LIFELINES[name], cnsvol_fit(name)
    assert got["n"] == ref["n"] and got["events"] == ref["events"]
    assert got["unit"] == UNIT_RESPONDER
    assert got["coef"] == pytest.approx(ref["coef"], rel=1e-6)
    assert got["hr"] == pytest.approx(ref["hr"], rel=1e-6)
    assert got["se"] == pytest.approx(ref["se"], rel=1e-6)
    assert got["ci_low"] == pytest.approx(ref["ci_low"], rel=1e-6)
    assert got["ci_high"] == pytest.approx(ref["ci_high"], rel=1e-6)
    assert got["p_value"] == pytest.approx(ref["p"], rel=1e-6)


@pytest.mark.parametrize("name", sorted(DATA))
def test_numpy_efron_newton_matches_lifelines_and_cnsvol(name):
    """The in-test Efron fit agrees with lifelines (coef, se and the maximised log partial
    likelihood, to 1e-10) and with cnsvol (1e-6)."""
    time, event, x = arrays(name)
    beta, se = efron_newton(time, event, x)
    loglik = partial_likelihood(time, event, x, beta)[0]
    ref = LIFELINES[name]
    assert beta == pytest.approx(ref["coef"], rel=1e-10)
    assert se == pytest.approx(ref["se"], rel=1e-10)
    assert loglik == pytest.approx(ref["loglik"], rel=1e-10)
    got = cnsvol_fit(name)
    assert got["coef"] == pytest.approx(beta, rel=1e-6)
    assert got["se"] == pytest.approx(se, rel=1e-6)
    assert got["p_value"] == pytest.approx(2 * sps.norm.sf(abs(beta) / se), rel=1e-6)


def test_partial_likelihood_at_zero_by_hand():
    """At beta = 0 every weight is 1: Efron's term for d tied events among n at risk is
    -log(n (n - 1) ... (n - d + 1)), Breslow's -d log n. small_12: events at day 30 (1 of 12
    at risk), 56 (2 of 11), 84 (1 of 8), 112 (3 of 7), 168 (2 of 3)."""
    time, event, x = arrays("small_12")
    efron = 12 * (11 * 10) * 8 * (7 * 6 * 5) * (3 * 2)  # exact integers
    breslow = 12 * 11**2 * 8 * 7**3 * 3**2
    assert partial_likelihood(time, event, x, 0.0)[0] == pytest.approx(
        -math.log(efron), rel=1e-14)
    assert partial_likelihood(time, event, x, 0.0, "breslow")[0] == pytest.approx(
        -math.log(breslow), rel=1e-14)


@pytest.mark.parametrize("name", ["visits_24", "three_visits_40"])
def test_breslow_and_efron_differ_on_visit_data(name):
    """On visit-day ties the Breslow estimate is visibly closer to 0 (HR closer to 1) and its
    p-value larger; cnsvol must give the Efron answer, not the Breslow one."""
    time, event, x = arrays(name)
    b_efron, _ = efron_newton(time, event, x)
    b_breslow, se_breslow = efron_newton(time, event, x, ties="breslow")
    assert abs(b_efron - b_breslow) > 0.05
    assert abs(b_breslow) < abs(b_efron)
    p_breslow = 2 * sps.norm.sf(abs(b_breslow) / se_breslow)
    got = cnsvol_fit(name)
    assert abs(got["coef"] - b_breslow) > 0.05  # would fail under ties="breslow"
    assert got["coef"] == pytest.approx(b_efron, rel=1e-6)
    assert p_breslow - got["p_value"] > 0.02


def test_without_ties_efron_is_breslow():
    """Distinct times: nothing is tied, so both tie methods give the same fit."""
    time = np.arange(1.0, 13.0)
    event = np.array([1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 0], dtype=bool)
    x = np.array([0, 1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 0], dtype=float)
    b_efron, se_efron = efron_newton(time, event, x)
    b_breslow, se_breslow = efron_newton(time, event, x, ties="breslow")
    assert b_efron == pytest.approx(b_breslow, rel=1e-12)
    assert se_efron == pytest.approx(se_breslow, rel=1e-12)
    assert math.log(cox(time, event, x, UNIT_RESPONDER).hr) == pytest.approx(b_efron, rel=1e-6)
