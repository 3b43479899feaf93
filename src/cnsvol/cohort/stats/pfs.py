"""Progression-free survival by response: the naive analysis from baseline and the landmark
analysis.

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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from .checks import flag_column, number_column, ok_mask, text_column
from .hazards import UNIT_PER_10_POINTS, UNIT_RESPONDER, cox
from .survival import kaplan_meier, logrank
from .types import PfsAnalysis

__all__ = [
    "NAIVE_LABEL",
    "RESPONSE_TIME_COLUMNS",
    "default_landmark_days",
    "landmark_frame",
    "landmark_label",
    "pfs_analysis",
]

NAIVE_LABEL = "naive: responders vs non-responders from baseline (guarantee-time biased)"
RESPONSE_TIME_COLUMNS = {
    "responder_20pct": "time_to_responder_20pct_days",
    "objective_response": "time_to_response_days",
}


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
) -> PfsAnalysis:
    """PFS of responders (``group_col`` True) vs non-responders (False).

    Rows with a missing group, time or event are dropped; ``cox_percent_change`` also drops
    rows without ``percent_col`` and is ``None`` when ``percent_col`` is ``None``.
    """
    group = flag_column(df, group_col)
    times = number_column(df, time_col)
    events = flag_column(df, event_col)
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
        pct = number_column(df, percent_col)[keep].to_numpy(dtype="float64")
        has = np.isfinite(pct)
        cox_percent = cox(t[has], e[has], pct[has] / 10.0, UNIT_PER_10_POINTS, alpha)
    return PfsAnalysis(
        label=label, time_origin=time_origin, groups=groups, logrank=logrank(t, e, labels),
        cox_responder=cox(t, e, g.astype("float64"), UNIT_RESPONDER, alpha),
        cox_percent_change=cox_percent,
    )


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
    times = number_column(df, time_col)
    events = flag_column(df, event_col)
    response_day = number_column(df, response_time_col)
    responded = response_day.notna() & (response_day <= landmark)
    if responder_col is not None:
        flag = flag_column(df, responder_col)
        unknown = (flag.fillna(False) & response_day.isna()).to_numpy()
        if unknown.any():
            ids = text_column(df, "subject_id")[unknown].tolist()
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
    days = number_column(df, "first_followup_days")[ok_mask(df)].dropna()
    return float(np.median(days.to_numpy())) if len(days) else None


def landmark_label(landmark_days: float) -> str:
    """The label of the landmark analysis, e.g. ``landmark at day 56: ...``."""
    return (f"landmark at day {float(landmark_days):g}: subjects progression-free at "
            f"{float(landmark_days):g}, classified by response up to {float(landmark_days):g}")
