"""The cohort numbers of a run (``cohort.json``): rates, arm comparison, PFS analyses.

``subjects`` is the subjects table with its declared dtypes (``subjects.csv`` as
:func:`cnsvol.read_results` gives it, or :func:`cnsvol.build_frames`): flags boolean, days
float. A status other than ``ok`` counts as failed. Rows are sorted by ``subject_id`` first, so
no result depends on the order of the rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import pandas as pd

from .checks import check_alpha, flag_column, number_column, ok_mask, text_column
from .pfs import (
    NAIVE_LABEL, RESPONSE_TIME_COLUMNS, default_landmark_days, landmark_frame, landmark_label,
    pfs_analysis,
)
from .rates import compare_arms, rates_by_arm
from .reconcile import DEFAULT_TOLERANCE_DAYS, reconcile
from .types import CohortSummary, PfsAnalysis, PfsSummary

__all__ = ["RATE_FLAGS", "cohort_statistics"]

RATE_FLAGS = ("responder_20pct", "objective_response")


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
    pfs_table: dict[str, Any] | None = None,
    pfs_tolerance_days: float = DEFAULT_TOLERANCE_DAYS,
) -> CohortSummary:
    """The cohort summary of ``docs/outputs.md`` from a subjects table.

    The PFS population is: status ok, a defined ``responder_col``, and PFS data (``has_pfs``
    not False, ``pfs_days`` and ``pfs_event`` given); ``pfs`` is ``None`` when no subject at
    all has PFS data. ``landmark_days=None`` uses :func:`default_landmark_days`; ``landmark``
    is ``None`` when that is ``None`` too. ``pfs_table`` (the PFS table's path and notes) is
    recorded as given. ``pfs_imaging_discrepancies`` reconciles the imaging with the PFS
    record (:func:`~cnsvol.cohort.stats.reconcile.reconcile`, ``pfs_tolerance_days``).
    """
    alpha = check_alpha(alpha)
    if "subject_id" not in subjects.columns or "status" not in subjects.columns:
        raise ValueError("subjects needs the columns 'subject_id' and 'status' (subjects.csv)")
    if responder_col not in RESPONSE_TIME_COLUMNS:
        raise ValueError(f"responder_col must be one of {sorted(RESPONSE_TIME_COLUMNS)}, "
                         f"got {responder_col!r}")
    df = subjects.copy()
    df["subject_id"] = text_column(df, "subject_id")
    if df["subject_id"].isna().any():
        raise ValueError("subjects: some rows have no subject_id; every row needs one")
    df = df.sort_values("subject_id", kind="stable").reset_index(drop=True)
    ok = ok_mask(df).to_numpy()
    comparisons = {flag: compare_arms(df.loc[ok], flag, "arm") for flag in RATE_FLAGS}
    pfs = _pfs(df, ok, responder_col, landmark_days, survival_times_days, alpha)
    return CohortSummary(
        criteria=criteria_name,
        n_subjects=int(len(df)),
        n_failed=int((~ok).sum()),
        n_evaluable=int((ok & flag_column(df, "responder_20pct").notna().to_numpy()).sum()),
        ids_without_pfs=[str(i) for i in ids_without_pfs],
        ids_without_masks=[str(i) for i in ids_without_masks],
        failed_ids=[str(i) for i in df.loc[~ok, "subject_id"].tolist()],
        rates={flag: rates_by_arm(df.loc[ok], flag, alpha) for flag in RATE_FLAGS},
        arm_comparison=(comparisons if any(c is not None for c in comparisons.values())
                        else None),
        pfs=pfs,
        pfs_table=pfs_table,
        pfs_imaging_discrepancies=(None if pfs is None
                                   else reconcile(df, tolerance_days=pfs_tolerance_days)),
        pfs_tolerance_days=None if pfs is None else float(pfs_tolerance_days),
    )


def _pfs(df: pd.DataFrame, ok, responder_col: str, landmark_days: float | None,
         survival_times_days: Sequence[float], alpha: float) -> PfsSummary | None:
    has_pfs_flag = flag_column(df, "has_pfs").fillna(True).astype(bool).to_numpy()
    pfs_defined = (has_pfs_flag & number_column(df, "pfs_days").notna().to_numpy()
                   & flag_column(df, "pfs_event").notna().to_numpy())
    if not pfs_defined.any():
        return None
    population = df.loc[ok & pfs_defined & flag_column(df, responder_col).notna().to_numpy()]
    naive = pfs_analysis(population, responder_col, survival_times_days=survival_times_days,
                         label=NAIVE_LABEL, time_origin="baseline", alpha=alpha)
    source = "--landmark-days"
    if landmark_days is None:
        landmark_days, source = default_landmark_days(df), "median first follow-up day"
    landmark: PfsAnalysis | None = None
    if landmark_days is not None:
        frame, n_excluded = landmark_frame(population, landmark_days,
                                           RESPONSE_TIME_COLUMNS[responder_col],
                                           responder_col=responder_col)
        analysis = pfs_analysis(frame, "responder_at_landmark", percent_col=None,
                                survival_times_days=survival_times_days,
                                label=landmark_label(landmark_days), time_origin="landmark",
                                alpha=alpha)
        landmark = replace(analysis, landmark_days=float(landmark_days), landmark_source=source,
                           n_excluded=n_excluded)
    return PfsSummary(
        responder_col=responder_col, n=int(len(population)),
        events=int(flag_column(population, "pfs_event").astype(bool).sum()),
        naive=naive, landmark=landmark,
    )
