"""Cox proportional hazards with one covariate.

One covariate, Efron's handling of tied event times (Efron, JASA 1977):
``statsmodels.duration.hazard_regression.PHReg(..., ties="efron")``, the default of R's
``survival::coxph`` and of lifelines. Visit-based PFS times are heavily tied (progression is
only seen at a scan: days 56, 112, 168, ...). Breslow's approximation lets every event of a
tied day see the whole risk set and tends to pull the log HR towards 0 when ties are many
(Hertz-Picciotto & Rockhill, Biometrics 1997); Efron's removes the tied events from the risk
set a fraction at a time and is close to the exact partial likelihood. Without ties the two
are the same. ``hr`` is exp(beta), ``ci_low``/``ci_high`` the Wald limits
exp(beta -/+ z * se) with se from the observed information, ``p_value`` the Wald p. ``None``
when not estimable: no event, a constant covariate, or *monotone likelihood* (every event
happens to the subject with the largest, or every one to the subject with the smallest,
covariate in its risk set, e.g. all progressions among non-responders; the partial
likelihood then increases forever and the maximiser would return an arbitrary huge HR,
Heinze & Schemper, Biometrics 2001). This condition is checked before fitting, and any
``ConvergenceWarning``, ``HessianInversionWarning`` or numerical ``RuntimeWarning`` from the
fit, a linear-algebra error, or a non-finite result also gives ``None``: no garbage HR. For
the depth of response the covariate is ``best_percent_change / 10`` (HR per +10 percentage
points; > 1 means a smaller shrinkage, or growth, goes with a higher hazard of progression).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from statsmodels.duration.hazard_regression import PHReg
from statsmodels.tools.sm_exceptions import ConvergenceWarning, HessianInversionWarning

from .checks import check_alpha, event_array, finite, time_array
from .types import Cox

__all__ = ["UNIT_PER_10_POINTS", "UNIT_RESPONDER", "cox"]

UNIT_RESPONDER = "responder vs non-responder"
UNIT_PER_10_POINTS = "per +10 percentage points"


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
    """Cox model with one covariate (statsmodels ``PHReg``, Efron ties).

    ``hr`` is the hazard ratio per unit of ``covariate`` (scale it first: the per-10-points HR
    takes ``best_percent_change / 10``); ``unit`` is stored as given. ``None`` when not
    estimable (no event, constant covariate, monotone likelihood, or the fit warns or fails).
    """
    alpha = check_alpha(alpha)
    times = time_array(time, "time")
    events = event_array(event)
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
            model = PHReg(times, x[:, None], status=events.astype("float64"), ties="efron")
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
        values = [finite(np.exp(beta)), finite(np.exp(low)), finite(np.exp(high)),
                  finite(p_value)]
    if any(v is None for v in values):
        return None
    hr, ci_low, ci_high, p = (float(v) for v in values)  # type: ignore[arg-type]
    return Cox(hr, ci_low, ci_high, p, int(times.size), int(events.sum()), unit)
