"""Imaging reconciled with the PFS record: for each evaluated subject with PFS data, the first
imaging progression cnsvol found (``progression_days``) against the PFS time and event.

Kinds (one per subject, the first that applies, in this order; ``tolerance_days``, default 14,
absorbs the usual gap between a scan and the date entered for it):

* ``event_before_response_scan``: a responder (objective response or the >=20% flag) whose PFS
  event is recorded more than the tolerance before the scan that showed the response;
* ``pfs_event_before_imaging_progression``: the PFS event is more than the tolerance before the
  first imaging progression;
* ``imaging_progression_long_before_pfs_event``: the first imaging progression is more than the
  tolerance before the PFS event;
* ``censored_after_imaging_progression``: imaging shows progression, but the record is censored
  at or after it, or less than the tolerance before it: the record misses a progression, a
  disagreement about the event itself that no date gap excuses;
* ``imaging_progression_after_censoring``: imaging shows progression after the record was
  censored (the follow-up outlived the record);
* ``clinical_progression_no_imaging_pd``: a PFS event without any imaging progression, which is
  legitimate (clinical progression, death): a note, not an error (``severity`` ``"note"``).

Every other kind has ``severity`` ``"discrepancy"``.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from .checks import flag_column, number_column, ok_mask, text_column

__all__ = ["DEFAULT_TOLERANCE_DAYS", "RECONCILIATION_COLUMNS", "reconcile"]

DEFAULT_TOLERANCE_DAYS = 14.0
RECONCILIATION_COLUMNS = ("subject_id", "kind", "severity", "imaging_progression_days",
                          "pfs_days", "pfs_event", "message")


def reconcile(subjects: pd.DataFrame, tolerance_days: float = DEFAULT_TOLERANCE_DAYS,
              ) -> list[dict[str, Any]]:
    """One entry per subject whose imaging and PFS record disagree (or, as a note, whose PFS
    event has no imaging progression), sorted by subject id; see the module docstring."""
    if not (isinstance(tolerance_days, (int, float)) and math.isfinite(tolerance_days)
            and tolerance_days >= 0):
        raise ValueError(f"tolerance_days must be a number >= 0, got {tolerance_days!r}")
    if not len(subjects):
        return []
    df = subjects.assign(subject_id=text_column(subjects, "subject_id"))
    ok = ok_mask(df).to_numpy()
    has = flag_column(df, "has_pfs").fillna(True).astype(bool).to_numpy()
    pfs_days, event = number_column(df, "pfs_days"), flag_column(df, "pfs_event")
    keep = ok & has & pfs_days.notna().to_numpy() & event.notna().to_numpy()
    pd_days = number_column(df, "progression_days")
    response = _response_days(df)
    out = []
    for i in [int(k) for k in keep.nonzero()[0]]:
        entry = _entry(str(df["subject_id"].iloc[i]), _value(pd_days.iloc[i]),
                       float(pfs_days.iloc[i]), bool(event.iloc[i]), _value(response[i]),
                       float(tolerance_days))
        if entry is not None:
            out.append(entry)
    return sorted(out, key=lambda e: e["subject_id"])


def _value(x: Any) -> float | None:
    return None if x is None or pd.isna(x) else float(x)


def _response_days(df: pd.DataFrame) -> list[float | None]:
    """Per subject, the day of the scan that first showed a response (objective response or
    the >=20% reduction), or None."""
    objective = number_column(df, "time_to_response_days")
    reduction = number_column(df, "time_to_responder_20pct_days")
    out = []
    for a, b in zip(objective, reduction):
        days = [float(v) for v in (a, b) if not pd.isna(v)]
        out.append(min(days) if days else None)
    return out


def _entry(sid: str, imaging: float | None, pfs: float, event: bool, response: float | None,
           tol: float) -> dict[str, Any] | None:
    kind, message = _classify(imaging, pfs, event, response, tol)
    if kind is None:
        return None
    return {"subject_id": sid, "kind": kind,
            "severity": "note" if kind == "clinical_progression_no_imaging_pd" else "discrepancy",
            "imaging_progression_days": imaging, "pfs_days": pfs, "pfs_event": event,
            "message": message}


def _classify(imaging: float | None, pfs: float, event: bool, response: float | None,
              tol: float) -> tuple[str | None, str]:
    if event and response is not None and pfs < response - tol:
        return ("event_before_response_scan",
                f"PFS event at day {pfs:g}, {response - pfs:g} days before the scan that showed "
                f"the response (day {response:g})")
    if event and imaging is not None and pfs < imaging - tol:
        return ("pfs_event_before_imaging_progression",
                f"PFS event at day {pfs:g}, {imaging - pfs:g} days before the first imaging "
                f"progression (day {imaging:g})")
    if event and imaging is not None and pfs > imaging + tol:
        return ("imaging_progression_long_before_pfs_event",
                f"imaging progression at day {imaging:g}, {pfs - imaging:g} days before the PFS "
                f"event (day {pfs:g})")
    if not event and imaging is not None and pfs >= imaging - tol:
        return ("censored_after_imaging_progression",
                f"censored at day {pfs:g} although imaging shows progression at day "
                f"{imaging:g}")
    if not event and imaging is not None:
        return ("imaging_progression_after_censoring",
                f"imaging progression at day {imaging:g}, {imaging - pfs:g} days after the "
                f"record was censored (day {pfs:g})")
    if event and imaging is None:
        return ("clinical_progression_no_imaging_pd",
                f"clinical progression (no imaging PD): PFS event at day {pfs:g} without an "
                "imaging progression on the scans evaluated")
    return None, ""
