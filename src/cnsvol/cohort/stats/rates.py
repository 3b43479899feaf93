"""Response rates with exact intervals, and their comparison between arms.

Response rate (:func:`binomial_rate`)
    events / n with the exact Clopper-Pearson interval at level ``1 - alpha``:
    ``statsmodels.stats.proportion.proportion_confint(method="beta")``. Rates use subjects with
    ``status == "ok"`` and a defined flag; ``n == 0`` gives ``rate`` and limits ``None``.

Arm comparison (:func:`compare_arms`)
    A table arm -> [events, non_events] (arms sorted as strings). Two arms: Fisher's exact test,
    ``scipy.stats.fisher_exact`` (two-sided p; ``odds_ratio`` is the sample odds ratio
    ``(a*d)/(b*c)`` of the first arm vs the second, ``None`` when a cell of 0 makes it 0/0 or
    infinite). More than two arms: Pearson's chi-square test of independence,
    ``scipy.stats.chi2_contingency`` (no continuity correction, which only applies to 2x2),
    ``odds_ratio`` ``None``; when nobody (or everybody) responded the chi-square statistic is 0/0
    and ``p_value`` is ``None``. The key ``test`` says which test ran.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.proportion import proportion_confint

from .checks import check_alpha, finite, flag_column, text_column
from .types import ArmTest, Rate, RateSet

__all__ = ["binomial_rate", "compare_arms", "rates_by_arm"]


def binomial_rate(events: int, n: int, alpha: float = 0.05) -> Rate:
    """Rate events/n with its exact (Clopper-Pearson) ``1 - alpha`` interval."""
    alpha = check_alpha(alpha)
    events, n = int(events), int(n)
    if n < 0 or not 0 <= events <= n:
        raise ValueError(f"need 0 <= events <= n, got events={events}, n={n}")
    rate = ci_low = ci_high = None
    if n > 0:
        low, high = proportion_confint(events, n, alpha=alpha, method="beta")
        rate, ci_low, ci_high = events / n, finite(low), finite(high)
    return Rate(n, events, rate, ci_low, ci_high, "clopper-pearson", alpha)


def compare_arms(df: pd.DataFrame, outcome_col: str, arm_col: str) -> ArmTest | None:
    """Test whether ``outcome_col`` (a boolean flag) differs between the arms of ``arm_col``.

    Rows with a missing outcome or arm are dropped. ``None`` when fewer than two arms remain.
    Two arms: Fisher's exact test; more: chi-square (see the module docstring).
    """
    outcome = flag_column(df, outcome_col)
    arm = text_column(df, arm_col)
    keep = outcome.notna().to_numpy() & arm.notna().to_numpy()
    outcome, arm = outcome[keep].astype(bool), arm[keep]
    arms = sorted(set(arm.tolist()))
    if len(arms) < 2:
        return None
    table = {a: [int(outcome[arm == a].sum()), int((~outcome[arm == a]).sum())] for a in arms}
    matrix = np.array([table[a] for a in arms], dtype=np.int64)
    if len(arms) == 2:
        result = sps.fisher_exact(matrix)
        return ArmTest("fisher_exact", finite(result.pvalue), table, finite(result.statistic))
    if matrix.sum(axis=0).min() == 0:  # nobody (or everybody) responded: statistic is 0/0
        p_value = None
    else:
        p_value = finite(sps.chi2_contingency(matrix).pvalue)
    return ArmTest("chi2", p_value, table, None)


def rates_by_arm(ok: pd.DataFrame, flag: str, alpha: float) -> RateSet:
    """The rate of ``flag`` over all rows with the flag defined, and per arm."""
    values = flag_column(ok, flag)
    arm = text_column(ok, "arm")
    defined = values.notna().to_numpy()
    overall = binomial_rate(int(values[defined].astype(bool).sum()), int(defined.sum()), alpha)
    by_arm = {}
    for name in sorted(set(arm.dropna().tolist())):
        in_arm = defined & (arm == name).to_numpy()
        by_arm[name] = binomial_rate(int(values[in_arm].astype(bool).sum()), int(in_arm.sum()),
                                     alpha)
    return RateSet(overall, by_arm)
