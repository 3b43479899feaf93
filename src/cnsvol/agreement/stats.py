"""Agreement statistics between two sources (a reference and a test) measuring the same items.

* :func:`bland_altman`: bias (mean of test - reference), 95% limits of agreement (bias -/+ 1.96
  SD) with their confidence intervals by Bland & Altman 1999 (Stat Methods Med Res 8:135):
  bias -/+ t(0.975, n-1) SD/sqrt(n), limits -/+ t(0.975, n-1) SD sqrt(3/n).
* :func:`icc`: intraclass correlation of two raters, two-way model, single measures, absolute
  agreement ICC(A,1) and consistency ICC(C,1), with the F-based 95% intervals of McGraw & Wong
  1996 (Psychol Methods 1:30; Shrout & Fleiss ICC(2,1) and ICC(3,1)).
* :func:`kappa`: Cohen's kappa, unweighted or linearly weighted, on the categories in a fixed
  order, with statsmodels' asymptotic standard error and interval (clipped to [-1, 1], the
  range of kappa), and the confusion matrix.
* :func:`mcnemar`: McNemar's test on paired yes/no calls (exact binomial when the discordant
  pairs are fewer than 25, else chi-square with continuity correction), via statsmodels.
* :func:`paired_rate_difference`: the difference of two paired proportions (test - reference)
  with Newcombe's 1998 hybrid score interval (method 10, Stat Med 17:2635).

Each returns a JSON-ready dict; with too few items (n < 2, or no variance) the values are
``None``, never an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["CATEGORIES", "bland_altman", "icc", "kappa", "mcnemar", "paired_rate_difference"]

CATEGORIES = ("CR", "PR", "SD", "PD")


def _finite(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def _pairs(a: Sequence[Any], b: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """The pairs where both values are known, as float arrays."""
    x = np.asarray([np.nan if v is None else float(v) for v in a], dtype=np.float64)
    y = np.asarray([np.nan if v is None else float(v) for v in b], dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired values of different lengths: {len(x)} and {len(y)}")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def bland_altman(reference: Sequence[Any], test: Sequence[Any]) -> dict[str, Any]:
    """Bland-Altman agreement of paired values (pairs with a missing value are left out)."""
    from scipy.stats import t as student

    a, b = _pairs(reference, test)
    n = len(a)
    out: dict[str, Any] = {"n": n, "bias": None, "sd": None, "loa_lower": None,
                           "loa_upper": None, "bias_ci": None, "loa_lower_ci": None,
                           "loa_upper_ci": None}
    if n == 0:
        return out
    d = b - a
    bias = float(d.mean())
    out["bias"] = bias
    if n < 2:
        return out
    sd = float(d.std(ddof=1))
    q = float(student.ppf(0.975, n - 1))
    lo, hi = bias - 1.96 * sd, bias + 1.96 * sd
    se_bias, se_loa = sd / math.sqrt(n), sd * math.sqrt(3.0 / n)
    out.update(sd=sd, loa_lower=lo, loa_upper=hi,
               bias_ci=[bias - q * se_bias, bias + q * se_bias],
               loa_lower_ci=[lo - q * se_loa, lo + q * se_loa],
               loa_upper_ci=[hi - q * se_loa, hi + q * se_loa])
    return out


def icc(reference: Sequence[Any], test: Sequence[Any], alpha: float = 0.05) -> dict[str, Any]:
    """ICC(A,1) and ICC(C,1) of two raters (McGraw & Wong 1996), with their intervals."""
    from scipy.stats import f as fisher

    a, b = _pairs(reference, test)
    n, k = len(a), 2
    out: dict[str, Any] = {"n": n, "icc_a1": None, "icc_a1_ci": None, "icc_c1": None,
                           "icc_c1_ci": None}
    if n < 2:
        return out
    y = np.column_stack([a, b])
    grand = y.mean()
    ss_rows = k * float(((y.mean(axis=1) - grand) ** 2).sum())
    ss_cols = n * float(((y.mean(axis=0) - grand) ** 2).sum())
    ss_err = float(((y - grand) ** 2).sum()) - ss_rows - ss_cols
    msr, msc = ss_rows / (n - 1), ss_cols / (k - 1)
    mse = ss_err / ((n - 1) * (k - 1))
    denom_c = msr + (k - 1) * mse
    denom_a = msr + (k - 1) * mse + k * (msc - mse) / n
    if denom_c <= 0 or mse < 0:
        return out
    out["icc_c1"] = (msr - mse) / denom_c
    out["icc_a1"] = (msr - mse) / denom_a if denom_a > 0 else None
    df1, df2 = n - 1, (n - 1) * (k - 1)
    if mse == 0:  # the two raters agree exactly on every item
        out.update(icc_a1_ci=[1.0, 1.0], icc_c1_ci=[1.0, 1.0])
    else:
        f_obs = msr / mse
        fl = f_obs / fisher.ppf(1 - alpha / 2, df1, df2)
        fu = f_obs * fisher.ppf(1 - alpha / 2, df2, df1)
        out["icc_c1_ci"] = [(fl - 1) / (fl + k - 1), (fu - 1) / (fu + k - 1)]
        out["icc_a1_ci"] = _icc_a1_ci(msr, msc, mse, n, k, alpha, out["icc_a1"])
    return out


def _icc_a1_ci(msr: float, msc: float, mse: float, n: int, k: int, alpha: float,
               rho: float | None) -> list[float] | None:
    """McGraw & Wong 1996, case 2A: the interval of ICC(A,1) with Satterthwaite's degrees of
    freedom for the denominator."""
    from scipy.stats import f as fisher

    if rho is None:
        return None
    a = k * rho / (n * (1 - rho)) if rho < 1 else math.inf
    b = 1 + k * rho * (n - 1) / (n * (1 - rho)) if rho < 1 else math.inf
    if not (math.isfinite(a) and math.isfinite(b)):
        return [1.0, 1.0]
    v_num = (a * msc + b * mse) ** 2
    v_den = (a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / ((n - 1) * (k - 1))
    v = v_num / v_den if v_den > 0 else math.inf
    f_hi = fisher.ppf(1 - alpha / 2, n - 1, v)
    f_lo = fisher.ppf(1 - alpha / 2, v, n - 1)
    lower = n * (msr - f_hi * mse) / (f_hi * (k * msc + (k * n - k - n) * mse) + n * msr)
    upper = n * (f_lo * msr - mse) / (k * msc + (k * n - k - n) * mse + n * f_lo * msr)
    return [float(lower), float(upper)]


def kappa(reference: Sequence[Any], test: Sequence[Any], *, weights: str | None = None,
          categories: Sequence[str] = CATEGORIES) -> dict[str, Any]:
    """Cohen's kappa (``weights=None``) or linearly weighted kappa (``"linear"``) of paired
    categories (pairs where either is outside ``categories``, e.g. NE, are left out)."""
    from statsmodels.stats.inter_rater import cohens_kappa

    cats = list(categories)
    pairs = [(cats.index(str(r)), cats.index(str(t))) for r, t in zip(reference, test)
             if str(r) in cats and str(t) in cats]
    table = np.zeros((len(cats), len(cats)), dtype=np.int64)
    for i, j in pairs:
        table[i, j] += 1
    n = int(table.sum())
    out: dict[str, Any] = {"n": n, "weights": weights or "none", "categories": cats,
                           "confusion": table.tolist(), "kappa": None, "se": None, "ci": None,
                           "observed_agreement": (float(np.trace(table)) / n) if n else None}
    if n == 0:
        return out
    rows, cols = table.sum(axis=1), table.sum(axis=0)
    if np.count_nonzero(rows) == 1 and np.array_equal(rows, cols):  # one category, all agree
        out.update(kappa=1.0, se=0.0, ci=[1.0, 1.0])
        return out
    import warnings

    with warnings.catch_warnings():  # a degenerate table (one follow-up): nan, said as None
        warnings.simplefilter("ignore", RuntimeWarning)
        res = cohens_kappa(table, wt=weights) if weights else cohens_kappa(table)
    low, high = _finite(res.kappa_low), _finite(res.kappa_upp)
    out.update(kappa=_finite(res.kappa), se=_finite(res.std_kappa),  # kappa lies in [-1, 1]
               ci=[None if low is None else max(-1.0, low), None if high is None else min(1.0, high)])
    return out


def _flags(values: Sequence[Any]) -> list[bool | None]:
    out: list[bool | None] = []
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        else:
            out.append(bool(v))
    return out


def mcnemar(reference: Sequence[Any], test: Sequence[Any]) -> dict[str, Any]:
    """McNemar's test of paired yes/no calls (pairs with an unknown call are left out)."""
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    pairs = [(r, t) for r, t in zip(_flags(reference), _flags(test))
             if r is not None and t is not None]
    a = sum(r and t for r, t in pairs)
    b = sum(r and not t for r, t in pairs)
    c = sum((not r) and t for r, t in pairs)
    d = len(pairs) - a - b - c
    exact = (b + c) < 25
    out: dict[str, Any] = {"n": len(pairs), "both_yes": a, "b": b, "c": c, "both_no": d,
                           "exact": exact, "statistic": None, "p_value": None,
                           "agreement": ((a + d) / len(pairs)) if pairs else None}
    if not pairs:
        return out
    if b + c == 0:
        out.update(statistic=0.0, p_value=1.0)
        return out
    res = sm_mcnemar(np.array([[a, b], [c, d]]), exact=exact, correction=True)
    out.update(statistic=_finite(res.statistic), p_value=_finite(res.pvalue))
    return out


def paired_rate_difference(reference: Sequence[Any], test: Sequence[Any],
                           alpha: float = 0.05) -> dict[str, Any]:
    """Test rate - reference rate of paired yes/no calls, with Newcombe's method 10 interval."""
    from statsmodels.stats.proportion import proportion_confint

    m = mcnemar(reference, test)
    n = m["n"]
    out: dict[str, Any] = {"n": n, "difference": None, "ci": None, "method": "newcombe-10"}
    if not n:
        return out
    a, b, c, d = m["both_yes"], m["b"], m["c"], m["both_no"]
    p1, p2 = (a + b) / n, (a + c) / n  # reference, test
    l1, u1 = proportion_confint(a + b, n, alpha=alpha, method="wilson")
    l2, u2 = proportion_confint(a + c, n, alpha=alpha, method="wilson")
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    # Newcombe's continuity-corrected phi: AD - BC reduced by n/2 when above it, 0 between 0
    # and n/2, unchanged when negative
    num = a * d - b * c
    num = num - n / 2 if num > n / 2 else (0.0 if num >= 0 else num)
    phi = num / math.sqrt(margins) if margins > 0 else 0.0
    theta = p1 - p2  # Newcombe's orientation; reported as test - reference
    lower = theta - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2)
                                  + (u2 - p2) ** 2))
    upper = theta + math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1)
                                  + (u1 - p1) ** 2))
    out.update(difference=p2 - p1, ci=[-upper, -lower], reference_rate=p1, test_rate=p2)
    return out
