"""Kaplan-Meier estimates and the log-rank test.

Kaplan-Meier (:func:`kaplan_meier`)
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

Log-rank (:func:`logrank`)
    ``statsmodels.duration.survfunc.survdiff`` (chi-square with groups - 1 degrees of freedom).
    ``None`` when fewer than two groups have subjects, when there is no event, or when the
    variance is singular (the groups never share a risk set at an event time).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as sps
from statsmodels.duration.survfunc import SurvfuncRight, survdiff

from .checks import check_alpha, event_array, finite, plain_number, time_array
from .types import Curve, KaplanMeier, LogRank, SurvivalAt

__all__ = ["kaplan_meier", "logrank"]

_MEDIAN_TOLERANCE = math.sqrt(np.finfo(float).eps)  # as R survival's print.survfit


def kaplan_meier(
    time_days: Sequence[float] | np.ndarray,
    event: Sequence[bool] | np.ndarray,
    survival_times_days: Sequence[float] = (90, 180, 365),
    alpha: float = 0.05,
) -> KaplanMeier:
    """Kaplan-Meier estimate of one group (see the module docstring)."""
    alpha = check_alpha(alpha)
    times = time_array(time_days)
    events = event_array(event)
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
    median = _median(surv_times, surv_prob)
    median_low = median_high = None
    if median is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            low, high = fit.quantile_ci(0.5, alpha=alpha, method="cloglog")
        median_low, median_high = finite(low), finite(high)
    return KaplanMeier(
        n, int(events.sum()), median, median_low, median_high,
        _survival_at(times, events, surv_times, surv_prob, survival_times_days, alpha),
        _curve(times, events, surv_times, surv_prob),
    )


def _curve(times: np.ndarray, events: np.ndarray, surv_times: np.ndarray,
           surv_prob: np.ndarray) -> Curve:
    """Every distinct observed time, with the counts for a numbers-at-risk table."""
    n = int(times.size)
    distinct, inverse = np.unique(times, return_inverse=True)
    count = np.bincount(inverse, minlength=distinct.size)
    n_events = np.bincount(inverse, weights=events.astype("float64"),
                           minlength=distinct.size).astype(np.int64)
    at_risk = n - np.concatenate(([0], np.cumsum(count)[:-1]))
    survival = _step(surv_times, surv_prob, distinct, 1.0)
    return Curve(
        time=[0.0, *(float(t) for t in distinct)],
        survival=[1.0, *(float(s) for s in survival)],
        at_risk=[n, *(int(r) for r in at_risk)],
        events=[0, *(int(d) for d in n_events)],
        censored=[0, *(int(c - d) for c, d in zip(count, n_events))],
    )


def _survival_at(times: np.ndarray, events: np.ndarray, surv_times: np.ndarray,
                 surv_prob: np.ndarray, survival_times_days: Sequence[Any],
                 alpha: float) -> list[SurvivalAt]:
    days = np.asarray([float(d) for d in survival_times_days], dtype="float64")
    s_at = _step(surv_times, surv_prob, days, 1.0)
    band = sps.ecdf(sps.CensoredData.right_censored(times, ~events)).sf
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The confidence interval is undefined",
                                category=RuntimeWarning)
        interval = band.confidence_interval(1.0 - alpha, method="log-log")
        lows, highs = interval.low.evaluate(days), interval.high.evaluate(days)
    last = float(times.max())
    out = []
    for given, s, lo, hi in zip(survival_times_days, s_at, lows, highs):
        day = plain_number(given)
        if day > last:
            out.append(SurvivalAt(day, None, None, None))
        elif s >= 1.0 or s <= 0.0:  # log-log interval undefined at 0 and 1
            out.append(SurvivalAt(day, float(s), None, None))
        else:
            out.append(SurvivalAt(day, float(s), finite(lo), finite(hi)))
    return out


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


def _empty_km(survival_times_days: Sequence[float]) -> KaplanMeier:
    return KaplanMeier(
        0, 0, None, None, None,
        [SurvivalAt(plain_number(d), None, None, None) for d in survival_times_days],
        Curve([0.0], [1.0], [0], [0], [0]),
    )


def logrank(
    time: Sequence[float] | np.ndarray,
    event: Sequence[bool] | np.ndarray,
    group: Sequence[Any] | np.ndarray,
) -> LogRank | None:
    """Log-rank test across the groups of ``group`` (statsmodels ``survdiff``).

    ``None`` when fewer than two groups have subjects, no event occurred, or the variance is
    singular.
    """
    times = time_array(time, "time")
    events = event_array(event)
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
    statistic, p_value = finite(statistic), finite(p_value)
    if statistic is None or p_value is None:
        return None
    return LogRank(statistic, p_value, n_groups - 1)
