"""Imaging reconciled with the PFS record: each kind, the tolerance at its boundary, one entry
per subject, and the subjects left out (failed, without PFS)."""

from __future__ import annotations

import pandas as pd
import pytest

from cnsvol.cohort.stats.reconcile import reconcile


def subjects(*rows):
    cols = ["subject_id", "status", "has_pfs", "pfs_days", "pfs_event", "progression_days",
            "time_to_response_days", "time_to_responder_20pct_days"]
    return pd.DataFrame([dict(zip(cols, r)) for r in rows], columns=cols)


def kinds(df, tol=14.0):
    return {e["subject_id"]: e["kind"] for e in reconcile(df, tolerance_days=tol)}


def test_each_kind_by_hand():
    df = subjects(
        ("EARLY", "ok", True, 60, True, 112, None, None),      # event 52 d before imaging PD
        ("LATE", "ok", True, 300, True, 56, None, None),       # imaging PD 244 d before event
        ("CENS", "ok", True, 200, False, 56, None, None),      # censored after imaging PD
        ("AFTER", "ok", True, 30, False, 112, None, None),     # imaging PD 82 d after censoring
        ("RESP", "ok", True, 30, True, None, 56, 56),          # event before the response scan
        ("CLIN", "ok", True, 150, True, None, None, None),     # event, no imaging PD: a note
        ("SAME", "ok", True, 112, True, 112, None, None),      # consistent
        ("NEAR", "ok", True, 98, True, 112, None, None),       # exactly 14 days: consistent
        ("SD", "ok", True, 200, False, None, None, None),      # consistent
        ("FAIL", "failed", True, 10, True, None, None, None),  # not evaluated: left out
        ("NOPFS", "ok", False, None, None, 56, None, None),    # no PFS: left out
    )
    assert kinds(df) == {
        "EARLY": "pfs_event_before_imaging_progression",
        "LATE": "imaging_progression_long_before_pfs_event",
        "CENS": "censored_after_imaging_progression",
        "AFTER": "imaging_progression_after_censoring",
        "RESP": "event_before_response_scan",
        "CLIN": "clinical_progression_no_imaging_pd",
    }
    by_id = {e["subject_id"]: e for e in reconcile(df)}
    assert by_id["CLIN"]["severity"] == "note" and by_id["EARLY"]["severity"] == "discrepancy"
    assert by_id["EARLY"]["message"] == ("PFS event at day 60, 52 days before the first imaging "
                                         "progression (day 112)")
    assert by_id["CLIN"]["message"].startswith("clinical progression (no imaging PD)")
    assert (by_id["LATE"]["imaging_progression_days"], by_id["LATE"]["pfs_days"],
            by_id["LATE"]["pfs_event"]) == (56.0, 300.0, True)


def test_the_tolerance_at_its_boundary():
    df = subjects(("A", "ok", True, 97, True, 112, None, None),  # 15 days early
                  ("B", "ok", True, 126, True, 112, None, None))  # 14 days late
    assert kinds(df) == {"A": "pfs_event_before_imaging_progression"}
    assert kinds(df, tol=15) == {}
    assert kinds(df, tol=13) == {"A": "pfs_event_before_imaging_progression",
                                 "B": "imaging_progression_long_before_pfs_event"}
    with pytest.raises(ValueError, match="tolerance_days must be a number >= 0"):
        reconcile(df, tolerance_days=-1)


def test_an_empty_table_has_nothing_to_reconcile():
    assert reconcile(subjects()) == []
