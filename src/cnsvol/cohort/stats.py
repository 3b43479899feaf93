"""Cohort statistics: response rates, arm comparison, Kaplan-Meier, log-rank, landmark and Cox.

Every function here is pure: table or arrays in, plain ``dict``/``list`` of Python ``int``,
``float``, ``bool``, ``str`` and ``None`` out, in the shapes of ``docs/outputs.md`` (``RATE``,
``TEST``, ``KM``, ``ANALYSIS``, ``COX``). No I/O, no printing, no plotting. A number that does not
exist (a rate of 0 subjects, a median that is not reached, a limit at infinity, a hazard ratio
that cannot be estimated) is ``None``, never ``NaN`` or ``inf``, so that
``json.dumps(result, allow_nan=False)`` always succeeds.

Definitions, and which library computes what
--------------------------------------------
Response rate (``binomial_rate``)
    events / n with the exact Clopper-Pearson interval at level ``1 - alpha``:
    ``statsmodels.stats.proportion.proportion_confint(method="beta")``. Rates use subjects with
    ``status == "ok"`` and a defined flag; ``n == 0`` gives ``rate`` and limits ``None``.

Arm comparison (``compare_arms``)
    A table arm -> [events, non_events] (arms sorted as strings). Two arms: Fisher's exact test,
    ``scipy.stats.fisher_exact`` (two-sided p; ``odds_ratio`` is the sample odds ratio
    ``(a*d)/(b*c)`` of the first arm vs the second, ``None`` when a cell of 0 makes it 0/0 or
    infinite). More than two arms: Pearson's chi-square test of independence,
    ``scipy.stats.chi2_contingency`` (no continuity correction, which only applies to 2x2),
    ``odds_ratio`` ``None``; when nobody (or everybody) responded the chi-square statistic is 0/0
    and ``p_value`` is ``None``. The key ``test`` says which test ran.

Kaplan-Meier (``kaplan_meier``)
    Product-limit estimate S(t) = prod over event times t_i <= t of (1 - d_i / n_i):
    ``statsmodels.duration.survfunc.SurvfuncRight``. Pointwise limits for ``survival_at`` are the
    Greenwood variance with the log-log transform, computed by ``scipy.stats.ecdf(...).sf
    .confidence_interval(method="log-log")`` (statsmodels has no pointwise interval; its
    ``simultaneous_cb`` is a simultaneous band). Where S(t) is 1 (no event yet) or 0 the log-log
    interval is undefined (Greenwood variance 0, or log 0) and both limits are ``None``. For a
    day later than the last observation ``survival``, ``ci_low`` and ``ci_high`` are ``None``
    (the estimate is not defined there).

    Median: the R ``survival`` / SAS LIFETEST convention. The median is the first time t with
    S(t) <= 0.5; when S(t) is exactly 0.5 (within sqrt(machine epsilon)) over a stretch, it is the
    midpoint between t and the next event time (if the curve never drops below 0.5 it is t).
    Without censoring this equals the sample median (``numpy.median``). It is read off the
    statsmodels curve here rather than taken from ``SurvfuncRight.quantile``, which applies a
    strict ``S < 0.5`` to floating-point products: for 10 and for 12 uncensored subjects it
    returns the 6th time (sample medians 5.5 and 6.5), because the exact 0.5 plateau comes out
    as 0.5 for n = 10 and as 0.49999999999999994 for n = 12. The median's confidence interval is
    ``SurvfuncRight.quantile_ci(0.5, method="cloglog")``: Brookmeyer-Crowley, inverting the
    log-log Z test (SAS's default); its upper limit is ``None`` when not reached. When the median
    itself is not reached, median and both limits are ``None``.

    ``curve`` holds the step function and the numbers at risk: ``time`` starts at 0 with
    ``survival`` 1.0 and then lists every distinct observed time (events and censorings);
    ``at_risk`` is the number with time >= t, ``events``/``censored`` the counts at t. (If some
    times are 0, a second row at time 0 carries them: the curve drops at 0.)

Log-rank (``logrank``)
    ``statsmodels.duration.survfunc.survdiff`` (chi-square with groups - 1 degrees of freedom).
    ``None`` when fewer than two groups have subjects, when there is no event, or when the
    variance is singular (the groups never share a risk set at an event time).

Cox proportional hazards (``cox``)
    One covariate, Breslow ties: ``statsmodels.duration.hazard_regression.PHReg``. ``hr`` is
    exp(beta), ``ci_low``/``ci_high`` the Wald limits exp(beta -/+ z * se), ``p_value`` the Wald
    p. ``None`` when not estimable: no event, a constant covariate, or *monotone likelihood*
    (every event happens to the subject with the largest, or every one to the subject with the
    smallest, covariate in its risk set, e.g. all progressions among non-responders; the partial
    likelihood then increases forever and the maximiser would return an arbitrary huge HR,
    Heinze & Schemper, Biometrics 2001). This condition is checked before fitting, and any
    ``ConvergenceWarning``, ``HessianInversionWarning`` or numerical ``RuntimeWarning`` from the
    fit, a linear-algebra error, or a non-finite result also gives ``None``: no garbage HR. For
    the depth of response the covariate is ``best_percent_change / 10`` (HR per +10 percentage
    points; > 1 means a smaller shrinkage, or growth, goes with a higher hazard of progression).

Landmark analysis and guarantee-time bias
-----------------------------------------
Comparing PFS of responders vs non-responders from baseline (``naive``) is biased in favour of
responders: to be counted as a responder a subject must live progression-free until the scan that
shows the response, so responders are guaranteed some progression-free time that non-responders
are not (guarantee-time, or immortal-time, bias; Anderson, Cain & Gelber, J Clin Oncol 1983). The
landmark analysis fixes a day L (by default the median day of the first follow-up scan, so that
most subjects have had a chance to respond), keeps only subjects still progression-free and under
follow-up at L (``pfs_days > L``: those who progressed or were censored on or before L are
excluded and counted in ``n_excluded``), classifies them by the response reached up to L
(``time_to_responder_20pct_days <= L``, or ``time_to_response_days`` for
``objective_response``; a later response counts as non-response), and restarts the clock at L
(``pfs_days - L``). In the landmark analysis ``cox_percent_change`` is ``None``:
``best_percent_change`` is taken over the whole follow-up, so it would re-introduce the same bias
(longer PFS means more scans and a deeper best change), and the per-subject change up to L is not
a column of ``subjects.csv``.

Input normalisation
-------------------
``subjects`` has the columns of ``subjects.csv``. Booleans may be ``bool``, ``0``/``1``, or the
strings ``True``/``False`` (any case, also ``yes``/``no``, ``1``/``0``); missing is ``None``,
``NaN``, ``pd.NA`` or an empty string. A value that is none of these raises ``ValueError``
naming the column and the value. Numbers may arrive as strings; empty is missing. A status other
than ``ok`` counts as failed. Rows are sorted by ``subject_id`` first, so no result depends on the
order of the rows.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, Literal, TypedDict

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.duration.hazard_regression import PHReg
from statsmodels.duration.survfunc import SurvfuncRight, survdiff
from statsmodels.stats.proportion import proportion_confint
from statsmodels.tools.sm_exceptions import ConvergenceWarning, HessianInversionWarning

__all__ = [
    "NAIVE_LABEL",
    "RESPONSE_TIME_COLUMNS",
    "UNIT_PER_10_POINTS",
    "UNIT_RESPONDER",
    "binomial_rate",
    "cohort_statistics",
    "compare_arms",
    "cox",
    "default_landmark_days",
    "kaplan_meier",
    "landmark_frame",
    "landmark_label",
    "logrank",
    "pfs_analysis",
]

NAIVE_LABEL = "naive: responders vs non-responders from baseline (guarantee-time biased)"
RESPONSE_TIME_COLUMNS = {
    "responder_20pct": "time_to_responder_20pct_days",
    "objective_response": "time_to_response_days",
}
UNIT_RESPONDER = "responder vs non-responder"
UNIT_PER_10_POINTS = "per +10 percentage points"
_RATE_FLAGS = ("responder_20pct", "objective_response")
_MEDIAN_TOLERANCE = math.sqrt(np.finfo(float).eps)  # as R survival's print.survfit
_TRUE = frozenset({"true", "t", "yes", "y", "1", "1.0"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "0.0"})


class Rate(TypedDict):
    n: int
    events: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    method: str
    alpha: float


class ArmTest(TypedDict):
    test: Literal["fisher_exact", "chi2"]
    p_value: float | None
    table: dict[str, list[int]]
    odds_ratio: float | None


class SurvivalAt(TypedDict):
    days: float
    survival: float | None
    ci_low: float | None
    ci_high: float | None


class Curve(TypedDict):
    time: list[float]
    survival: list[float]
    at_risk: list[int]
    events: list[int]
    censored: list[int]


class KM(TypedDict):
    n: int
    events: int
    median_days: float | None
    median_ci_low: float | None
    median_ci_high: float | None
    survival_at: list[SurvivalAt]
    curve: Curve


class LogRank(TypedDict):
    statistic: float
    p_value: float
    df: int


class Cox(TypedDict):
    hr: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    events: int
    unit: str


class Analysis(TypedDict):
    label: str
    time_origin: str
    groups: dict[str, KM]
    logrank: LogRank | None
    cox_responder: Cox | None
    cox_percent_change: Cox | None


# --------------------------------------------------------------------------- normalisation


def _finite(value: Any) -> float | None:
    """A Python float, or None for None/NaN/inf/pd.NA."""
    if value is None or value is pd.NA:
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def _plain_number(value: Any) -> int | float:
    """A day as given, as a Python int (integral input type) or float (JSON-serialisable)."""
    return int(value) if isinstance(value, (int, np.integer)) else float(value)


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    if isinstance(value, (float, np.floating)):
        return bool(np.isnan(value))
    return False


def _to_bool(value: Any, column: str) -> bool | None:
    if _is_missing(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer, float, np.floating)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueError(
        f"column {column!r}: {value!r} is not a boolean; use True/False (or leave the cell "
        "empty when not applicable)"
    )


def _bool_column(df: pd.DataFrame, column: str) -> pd.Series:
    """Column as a nullable boolean Series; an absent column is all missing."""
    if column not in df.columns:
        return pd.Series(pd.NA, index=df.index, dtype="boolean")
    values = [_to_bool(v, column) for v in df[column].tolist()]
    return pd.Series(pd.array(values, dtype="boolean"), index=df.index)


def _numeric_column(df: pd.DataFrame, column: str) -> pd.Series:
    """Column as float64 with NaN for missing; an absent column is all missing."""
    if column not in df.columns:
        return pd.Series(np.nan, index=df.index, dtype="float64")
    out = []
    for value in df[column].tolist():
        if _is_missing(value):
            out.append(np.nan)
            continue
        try:
            number = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise ValueError(
                f"column {column!r}: {value!r} is not a number; write a number or leave the "
                "cell empty"
            ) from None
        if not math.isfinite(number):
            raise ValueError(f"column {column!r}: {value!r} is not a finite number")
        out.append(number)
    return pd.Series(np.asarray(out, dtype="float64"), index=df.index)


def _text_column(df: pd.DataFrame, column: str) -> pd.Series:
    """Column as stripped strings (object dtype) with None for missing."""
    if column not in df.columns:
        return pd.Series([None] * len(df), index=df.index, dtype="object")
    values = [None if _is_missing(v) else str(v).strip() for v in df[column].tolist()]
    return pd.Series(values, index=df.index, dtype="object")


def _ok_mask(df: pd.DataFrame) -> pd.Series:
    status = _text_column(df, "status")
    return status.map(lambda s: s is not None and s.lower() == "ok").astype(bool)


def _event_array(event: Iterable[Any]) -> np.ndarray:
    flags = [_to_bool(v, "event") for v in event]
    if any(f is None for f in flags):
        raise ValueError("event: missing values; drop subjects without an event flag first")
    return np.asarray(flags, dtype=bool)


def _time_array(time_days: Iterable[Any], name: str = "time_days") -> np.ndarray:
    times = np.asarray(list(time_days), dtype="float64")
    if times.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence, got shape {times.shape}")
    if not np.all(np.isfinite(times)):
        raise ValueError(f"{name}: missing or infinite values; drop those subjects first")
    if np.any(times < 0):
        raise ValueError(f"{name}: negative times ({times.min()}); times are days from origin")
    return times


def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return alpha


# --------------------------------------------------------------------------- rates and tests


def binomial_rate(events: int, n: int, alpha: float = 0.05) -> Rate:
    """Rate events/n with its exact (Clopper-Pearson) ``1 - alpha`` interval: a ``RATE`` dict."""
    alpha = _check_alpha(alpha)
    events, n = int(events), int(n)
    if n < 0 or not 0 <= events <= n:
        raise ValueError(f"need 0 <= events <= n, got events={events}, n={n}")
    rate = ci_low = ci_high = None
    if n > 0:
        low, high = proportion_confint(events, n, alpha=alpha, method="beta")
        rate, ci_low, ci_high = events / n, _finite(low), _finite(high)
    return {"n": n, "events": events, "rate": rate, "ci_low": ci_low, "ci_high": ci_high,
            "method": "clopper-pearson", "alpha": alpha}


def compare_arms(df: pd.DataFrame, outcome_col: str, arm_col: str) -> ArmTest | None:
    """Test whether ``outcome_col`` (a boolean flag) differs between the arms of ``arm_col``.

    Rows with a missing outcome or arm are dropped. ``None`` when fewer than two arms remain.
    Two arms: Fisher's exact test; more: chi-square (see the module docstring).
    """
    outcome = _bool_column(df, outcome_col)
    arm = _text_column(df, arm_col)
    keep = outcome.notna().to_numpy() & arm.notna().to_numpy()
    outcome, arm = outcome[keep].astype(bool), arm[keep]
    arms = sorted(set(arm.tolist()))
    if len(arms) < 2:
        return None
    table = {a: [int(outcome[arm == a].sum()), int((~outcome[arm == a]).sum())] for a in arms}
    matrix = np.array([table[a] for a in arms], dtype=np.int64)
    if len(arms) == 2:
        result = sps.fisher_exact(matrix)
        return {"test": "fisher_exact", "p_value": _finite(result.pvalue), "table": table,
                "odds_ratio": _finite(result.statistic)}
    if matrix.sum(axis=0).min() == 0:  # nobody (or everybody) responded: statistic is 0/0
        p_value = None
    else:
        p_value = _finite(sps.chi2_contingency(matrix).pvalue)
    return {"test": "chi2", "p_value": p_value, "table": table, "odds_ratio": None}


# --------------------------------------------------------------------------- survival


def _median(surv_times: np.ndarray, surv_prob: np.ndarray) -> float | None:
    """Median survival time, R survival / SAS convention (see the module docstring)."""
    below = np.flatnonzero(surv_prob < 0.5 + _MEDIAN_TOLERANCE)
    if below.size == 0:
        return None
    first = below[0]
    if abs(surv_prob[first] - 0.5) < _MEDIAN_TOLERANCE:
        lower = np.flatnonzero(surv_prob < surv_prob[first] - _MEDIAN_TOLERANCE)
        if lower.size:
            return float((surv_times[first] + surv_times[lower[0]]) / 2.0)
    return float(surv_times[first])


def _step(times: np.ndarray, values: np.ndarray, at: np.ndarray, before: float) -> np.ndarray:
    """Right-continuous step function through (times, values), ``before`` left of times[0]."""
    if times.size == 0:
        return np.full(at.shape, before, dtype="float64")
    index = np.searchsorted(times, at, side="right") - 1
    return np.where(index >= 0, values[np.clip(index, 0, None)], before)


def _empty_km(survival_times_days: Sequence[float]) -> KM:
    return {"n": 0, "events": 0, "median_days": None, "median_ci_low": None,
            "median_ci_high": None,
            "survival_at": [{"days": _plain_number(d), "survival": None, "ci_low": None,
                             "ci_high": None} for d in survival_times_days],
            "curve": {"time": [0.0], "survival": [1.0], "at_risk": [0], "events": [0],
                      "censored": [0]}}


def kaplan_meier(
    time_days: Sequence[float] | np.ndarray,
    event: Sequence[bool] | np.ndarray,
    survival_times_days: Sequence[float] = (90, 180, 365),
    alpha: float = 0.05,
) -> KM:
    """Kaplan-Meier estimate of one group: a ``KM`` dict (see the module docstring)."""
    alpha = _check_alpha(alpha)
    times = _time_array(time_days)
    events = _event_array(event)
    if times.shape != events.shape:
        raise ValueError(f"time_days has {times.size} values but event has {events.size}")
    for day in survival_times_days:
        if not (math.isfinite(float(day)) and float(day) >= 0):
            raise ValueError(f"survival_times_days: {day!r} is not a day >= 0")
    n = int(times.size)
    if n == 0:
        return _empty_km(survival_times_days)

    fit = SurvfuncRight(times, events.astype("float64"))
    surv_times = np.asarray(fit.surv_times, dtype="float64")
    surv_prob = np.asarray(fit.surv_prob, dtype="float64")

    # Curve: every distinct observed time, with the counts for a numbers-at-risk table.
    distinct, inverse = np.unique(times, return_inverse=True)
    count = np.bincount(inverse, minlength=distinct.size)
    n_events = np.bincount(inverse, weights=events.astype("float64"),
                           minlength=distinct.size).astype(np.int64)
    at_risk = n - np.concatenate(([0], np.cumsum(count)[:-1]))
    survival = _step(surv_times, surv_prob, distinct, 1.0)
    curve: Curve = {
        "time": [0.0, *(float(t) for t in distinct)],
        "survival": [1.0, *(float(s) for s in survival)],
        "at_risk": [n, *(int(r) for r in at_risk)],
        "events": [0, *(int(d) for d in n_events)],
        "censored": [0, *(int(c - d) for c, d in zip(count, n_events))],
    }

    median = _median(surv_times, surv_prob)
    median_low = median_high = None
    if median is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            low, high = fit.quantile_ci(0.5, alpha=alpha, method="cloglog")
        median_low, median_high = _finite(low), _finite(high)

    days = np.asarray([float(d) for d in survival_times_days], dtype="float64")
    s_at = _step(surv_times, surv_prob, days, 1.0)
    band = sps.ecdf(sps.CensoredData.right_censored(times, ~events)).sf
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The confidence interval is undefined",
                                category=RuntimeWarning)
        interval = band.confidence_interval(1.0 - alpha, method="log-log")
        lows, highs = interval.low.evaluate(days), interval.high.evaluate(days)
    last = float(times.max())
    survival_at: list[SurvivalAt] = []
    for given, s, lo, hi in zip(survival_times_days, s_at, lows, highs):
        day = _plain_number(given)
        if day > last:
            survival_at.append({"days": day, "survival": None, "ci_low": None, "ci_high": None})
        elif s >= 1.0 or s <= 0.0:  # log-log interval undefined at 0 and 1
            survival_at.append({"days": day, "survival": float(s), "ci_low": None,
                                "ci_high": None})
        else:
            survival_at.append({"days": day, "survival": float(s), "ci_low": _finite(lo),
                                "ci_high": _finite(hi)})

    return {"n": n, "events": int(events.sum()), "median_days": median,
            "median_ci_low": median_low, "median_ci_high": median_high,
            "survival_at": survival_at, "curve": curve}


def logrank(
    time: Sequence[float] | np.ndarray,
    event: Sequence[bool] | np.ndarray,
    group: Sequence[Any] | np.ndarray,
) -> LogRank | None:
    """Log-rank test across the groups of ``group`` (statsmodels ``survdiff``).

    ``None`` when fewer than two groups have subjects, no event occurred, or the variance is
    singular.
    """
    times = _time_array(time, "time")
    events = _event_array(event)
    labels = np.asarray([str(g) for g in group], dtype=object)
    if not times.shape == events.shape == labels.shape:
        raise ValueError("time, event and group must have the same length")
    n_groups = len(set(labels.tolist()))
    if n_groups < 2 or not events.any():
        return None
    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            statistic, p_value = survdiff(times, events.astype("float64"), labels)
    except np.linalg.LinAlgError:
        return None
    statistic, p_value = _finite(statistic), _finite(p_value)
    if statistic is None or p_value is None:
        return None
    return {"statistic": statistic, "p_value": p_value, "df": n_groups - 1}


def _monotone_likelihood(times: np.ndarray, events: np.ndarray, x: np.ndarray) -> bool:
    """True when the Cox partial likelihood has no finite maximum (one covariate).

    That happens exactly when every event is at the largest covariate value of its risk set
    (beta -> +inf) or every event is at the smallest (beta -> -inf).
    """
    all_max = all_min = True
    for i in np.flatnonzero(events):
        at_risk = x[times >= times[i]]
        all_max &= bool(x[i] >= at_risk.max())
        all_min &= bool(x[i] <= at_risk.min())
        if not (all_max or all_min):
            return False
    return True


_FIT_WARNINGS = (ConvergenceWarning, HessianInversionWarning, RuntimeWarning)


def cox(
    time: Sequence[float] | np.ndarray,
    event: Sequence[bool] | np.ndarray,
    covariate: Sequence[float] | np.ndarray,
    unit: str,
    alpha: float = 0.05,
) -> Cox | None:
    """Cox model with one covariate (statsmodels ``PHReg``, Breslow ties): a ``COX`` dict.

    ``hr`` is the hazard ratio per unit of ``covariate`` (scale it first: the per-10-points HR
    takes ``best_percent_change / 10``); ``unit`` is stored as given. ``None`` when not
    estimable (no event, constant covariate, monotone likelihood, or the fit warns or fails).
    """
    alpha = _check_alpha(alpha)
    times = _time_array(time, "time")
    events = _event_array(event)
    x = np.asarray(list(covariate), dtype="float64")
    if not times.shape == events.shape == x.shape:
        raise ValueError("time, event and covariate must have the same length")
    if not np.all(np.isfinite(x)):
        raise ValueError("covariate: missing or infinite values; drop those subjects first")
    if not events.any() or np.unique(x).size < 2 or _monotone_likelihood(times, events, x):
        return None
    order = np.lexsort((x, ~events, times))  # same answer, to the last bit, for any row order
    times, events, x = times[order], events[order], x[order]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = PHReg(times, x[:, None], status=events.astype("float64"), ties="breslow")
            result = model.fit()
            beta = float(np.asarray(result.params)[0])
            low, high = (float(v) for v in np.asarray(result.conf_int(alpha=alpha))[0])
            p_value = float(np.asarray(result.pvalues)[0])
    except (np.linalg.LinAlgError, ValueError, IndexError, ZeroDivisionError,
            FloatingPointError):
        return None
    if any(issubclass(w.category, _FIT_WARNINGS) for w in caught):
        return None
    with np.errstate(over="ignore"):
        values = [_finite(np.exp(beta)), _finite(np.exp(low)), _finite(np.exp(high)),
                  _finite(p_value)]
    if any(v is None for v in values):
        return None
    hr, ci_low, ci_high, p = (float(v) for v in values)  # type: ignore[arg-type]
    return {"hr": hr, "ci_low": ci_low, "ci_high": ci_high, "p_value": p,
            "n": int(times.size), "events": int(events.sum()), "unit": unit}


# --------------------------------------------------------------------------- PFS analyses


def pfs_analysis(
    df: pd.DataFrame,
    group_col: str,
    time_col: str = "pfs_days",
    event_col: str = "pfs_event",
    percent_col: str | None = "best_percent_change",
    survival_times_days: Sequence[float] = (90, 180, 365),
    label: str = NAIVE_LABEL,
    time_origin: Literal["baseline", "landmark"] = "baseline",
    alpha: float = 0.05,
) -> Analysis:
    """PFS of responders (``group_col`` True) vs non-responders (False): an ``ANALYSIS`` dict.

    Rows with a missing group, time or event are dropped; ``cox_percent_change`` also drops
    rows without ``percent_col`` and is ``None`` when ``percent_col`` is ``None``.
    """
    group = _bool_column(df, group_col)
    times = _numeric_column(df, time_col)
    events = _bool_column(df, event_col)
    keep = (group.notna() & times.notna() & events.notna()).to_numpy()
    g = group[keep].to_numpy(dtype=bool)
    t = times[keep].to_numpy(dtype="float64")
    e = events[keep].to_numpy(dtype=bool)

    groups = {
        "responder": kaplan_meier(t[g], e[g], survival_times_days, alpha),
        "non_responder": kaplan_meier(t[~g], e[~g], survival_times_days, alpha),
    }
    labels = np.where(g, "responder", "non_responder")
    cox_percent = None
    if percent_col is not None:
        pct = _numeric_column(df, percent_col)[keep].to_numpy(dtype="float64")
        has = np.isfinite(pct)
        cox_percent = cox(t[has], e[has], pct[has] / 10.0, UNIT_PER_10_POINTS, alpha)
    return {
        "label": label,
        "time_origin": time_origin,
        "groups": groups,
        "logrank": logrank(t, e, labels),
        "cox_responder": cox(t, e, g.astype("float64"), UNIT_RESPONDER, alpha),
        "cox_percent_change": cox_percent,
    }


def landmark_frame(
    df: pd.DataFrame,
    landmark_days: float,
    response_time_col: str = "time_to_responder_20pct_days",
    *,
    responder_col: str | None = None,
    time_col: str = "pfs_days",
    event_col: str = "pfs_event",
) -> tuple[pd.DataFrame, int]:
    """Subjects at risk at the landmark, classified by response up to it, PFS restarted.

    Rows without PFS time or event are ignored. Of the others, those with ``time_col <=
    landmark_days`` (progressed or censored on or before the landmark) are excluded and
    counted in ``n_excluded``. The rest are returned (index reset) with ``time_col`` replaced by
    ``time_col - landmark_days``, ``event_col`` as bool, and a bool column
    ``responder_at_landmark``: ``response_time_col <= landmark_days``. When ``responder_col``
    is given the flag must also be True, and a True flag without a response day is an error
    (the subject cannot be classified).
    """
    landmark = float(landmark_days)
    if not (math.isfinite(landmark) and landmark >= 0):
        raise ValueError(f"landmark_days must be a day >= 0, got {landmark_days!r}")
    if response_time_col not in df.columns:
        raise ValueError(
            f"column {response_time_col!r} (day of response) is missing; the landmark analysis "
            "needs it to classify subjects at the landmark"
        )
    times = _numeric_column(df, time_col)
    events = _bool_column(df, event_col)
    response_day = _numeric_column(df, response_time_col)
    responded = response_day.notna() & (response_day <= landmark)
    if responder_col is not None:
        flag = _bool_column(df, responder_col)
        unknown = (flag.fillna(False) & response_day.isna()).to_numpy()
        if unknown.any():
            ids = _text_column(df, "subject_id")[unknown].tolist()
            raise ValueError(
                f"{responder_col} is True but {response_time_col} is empty for subject(s) "
                f"{ids}; give the day of response"
            )
        responded &= flag.fillna(False).astype(bool)
    has_pfs = (times.notna() & events.notna()).to_numpy()
    at_risk = has_pfs & (times > landmark).to_numpy()
    out = df.loc[at_risk].copy()
    out[time_col] = times[at_risk] - landmark
    out[event_col] = events[at_risk].astype(bool)
    out["responder_at_landmark"] = responded[at_risk].astype(bool)
    return out.reset_index(drop=True), int(has_pfs.sum() - at_risk.sum())


def default_landmark_days(df: pd.DataFrame) -> float | None:
    """Median ``first_followup_days`` over subjects with status ok (None when there is none)."""
    days = _numeric_column(df, "first_followup_days")[_ok_mask(df)].dropna()
    return float(np.median(days.to_numpy())) if len(days) else None


def landmark_label(landmark_days: float) -> str:
    """The label of the landmark analysis, e.g. ``landmark at day 56: ...``."""
    return (f"landmark at day {float(landmark_days):g}: subjects progression-free at "
            f"{float(landmark_days):g}, classified by response up to {float(landmark_days):g}")


# --------------------------------------------------------------------------- cohort


def _rates(ok: pd.DataFrame, flag: str, alpha: float) -> dict[str, Any]:
    values = _bool_column(ok, flag)
    arm = _text_column(ok, "arm")
    defined = values.notna().to_numpy()
    overall = binomial_rate(int(values[defined].astype(bool).sum()), int(defined.sum()), alpha)
    by_arm = {}
    for name in sorted(set(arm.dropna().tolist())):
        in_arm = defined & (arm == name).to_numpy()
        by_arm[name] = binomial_rate(int(values[in_arm].astype(bool).sum()), int(in_arm.sum()),
                                     alpha)
    return {"overall": overall, "by_arm": by_arm}


def cohort_statistics(
    subjects: pd.DataFrame,
    *,
    criteria_name: str,
    landmark_days: float | None = None,
    survival_times_days: Sequence[float] = (90, 180, 365),
    responder_col: str = "responder_20pct",
    alpha: float = 0.05,
    ids_without_pfs: Iterable[str] = (),
    ids_without_masks: Iterable[str] = (),
) -> dict[str, Any]:
    """The ``cohort.json`` dict of ``docs/outputs.md`` from a ``subjects.csv`` table.

    The PFS population is: status ok, a defined ``responder_col``, and PFS data (``has_pfs``
    not False, ``pfs_days`` and ``pfs_event`` given); ``pfs`` is ``None`` when no subject at
    all has PFS data. ``landmark_days=None`` uses :func:`default_landmark_days`; ``landmark``
    is ``None`` when that is ``None`` too.
    """
    alpha = _check_alpha(alpha)
    if "subject_id" not in subjects.columns or "status" not in subjects.columns:
        raise ValueError("subjects needs the columns 'subject_id' and 'status' (subjects.csv)")
    if responder_col not in RESPONSE_TIME_COLUMNS:
        raise ValueError(f"responder_col must be one of {sorted(RESPONSE_TIME_COLUMNS)}, "
                         f"got {responder_col!r}")
    df = subjects.copy()
    df["subject_id"] = _text_column(df, "subject_id")
    if df["subject_id"].isna().any():
        raise ValueError("subjects: some rows have no subject_id; every row needs one")
    df = df.sort_values("subject_id", kind="stable").reset_index(drop=True)
    ok_mask = _ok_mask(df).to_numpy()
    ok = df.loc[ok_mask]

    rates = {flag: _rates(ok, flag, alpha) for flag in _RATE_FLAGS}
    comparisons = {flag: compare_arms(ok, flag, "arm") for flag in _RATE_FLAGS}
    arm_comparison = comparisons if any(c is not None for c in comparisons.values()) else None

    has_pfs_flag = _bool_column(df, "has_pfs").fillna(True).astype(bool).to_numpy()
    pfs_defined = (has_pfs_flag & _numeric_column(df, "pfs_days").notna().to_numpy()
                   & _bool_column(df, "pfs_event").notna().to_numpy())
    pfs = None
    if pfs_defined.any():
        population = df.loc[ok_mask & pfs_defined
                            & _bool_column(df, responder_col).notna().to_numpy()]
        pfs = {
            "responder_col": responder_col,
            "n": int(len(population)),
            "events": int(_bool_column(population, "pfs_event").astype(bool).sum()),
            "naive": pfs_analysis(population, responder_col,
                                  survival_times_days=survival_times_days, label=NAIVE_LABEL,
                                  time_origin="baseline", alpha=alpha),
            "landmark": None,
        }
        source = "--landmark-days"
        if landmark_days is None:
            landmark_days, source = default_landmark_days(df), "median first follow-up day"
        if landmark_days is not None:
            frame, n_excluded = landmark_frame(population, landmark_days,
                                               RESPONSE_TIME_COLUMNS[responder_col],
                                               responder_col=responder_col)
            landmark = pfs_analysis(frame, "responder_at_landmark", percent_col=None,
                                    survival_times_days=survival_times_days,
                                    label=landmark_label(landmark_days),
                                    time_origin="landmark", alpha=alpha)
            pfs["landmark"] = {**landmark, "landmark_days": float(landmark_days),
                               "landmark_source": source, "n_excluded": n_excluded}

    return {
        "criteria": criteria_name,
        "n_subjects": int(len(df)),
        "n_failed": int((~ok_mask).sum()),
        "n_evaluable": int((ok_mask & _bool_column(df, "responder_20pct").notna()
                            .to_numpy()).sum()),
        "ids_without_pfs": [str(i) for i in ids_without_pfs],
        "ids_without_masks": [str(i) for i in ids_without_masks],
        "failed_ids": [str(i) for i in df.loc[~ok_mask, "subject_id"].tolist()],
        "rates": rates,
        "arm_comparison": arm_comparison,
        "pfs": pfs,
    }
