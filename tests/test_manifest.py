"""Manifest validation: every problem at once, paths relative to the manifest, ordering."""

from __future__ import annotations

import pytest

from cnsvol.errors import ManifestError
from cnsvol.manifest import read_manifest

HEADER = "subject_id,timepoint,days_from_baseline,mask_path\n"


def touch(folder, *names):
    for n in names:
        p = folder / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def test_paths_are_relative_to_the_manifest_and_order_is_canonical(tmp_path, monkeypatch):
    touch(tmp_path, "m/b0.nii", "m/b1.nii", "m/a0.nii", "m/a1.nii")
    man = tmp_path / "manifest.csv"
    man.write_text(HEADER + "B,wk8,56,m/b1.nii\nA,base,0,m/a0.nii\nB,base,0,m/b0.nii\n"
                   "A,wk8,56,m/a1.nii\n")
    monkeypatch.chdir("/")
    plans = read_manifest(man)
    assert [p.subject_id for p in plans] == ["A", "B"]
    assert [s.timepoint for s in plans[1].scans] == ["base", "wk8"]
    assert plans[0].scans[0].mask_path == tmp_path / "m" / "a0.nii"


def test_scan_dates_give_days_from_the_earliest_scan(tmp_path):
    touch(tmp_path, "a.nii", "b.nii")
    man = tmp_path / "m.tsv"
    man.write_text("subject_id\ttimepoint\tscan_date\tmask_path\nX\tb\t2024-03-01\tb.nii\n"
                   "X\ta\t2024-01-05\ta.nii\n")
    plans = read_manifest(man)
    assert [s.days_from_baseline for s in plans[0].scans] == [0.0, 56.0]


def test_all_problems_are_listed_together(tmp_path):
    touch(tmp_path, "a0.nii")
    man = tmp_path / "manifest.csv"
    man.write_text(
        "subject_id,timepoint,days_from_baseline,mask_path,neuro_status,steroid_dose_mg\n"
        "A,base,0,a0.nii,fine,4\n"
        "A,base,0,a0.nii,,\n"
        "B,wk8,56,b1.nii,,-2\n"
        "C,base,,c0.nii,,\n"
    )
    with pytest.raises(ManifestError) as info:
        read_manifest(man)
    msg = str(info.value)
    for part in ("duplicate subject 'A' timepoint 'base'", "neuro_status 'fine'",
                 "steroid_dose_mg '-2'", "subject 'B' has no baseline",
                 "neither days_from_baseline nor scan_date", "missing file(s)", "b1.nii",
                 "c0.nii", "--skip-missing"):
        assert part in msg, part


def test_unknown_and_missing_columns(tmp_path):
    man = tmp_path / "manifest.csv"
    man.write_text("subject,timepoint,mask_path,colour\nA,b,x.nii,red\n")
    with pytest.raises(ManifestError) as info:
        read_manifest(man)
    msg = str(info.value)
    assert "unknown column(s) 'subject', 'colour'" in msg
    assert "missing column(s) subject_id, days_from_baseline or scan_date" in msg


def test_skip_missing_keeps_the_subject_as_a_failure(tmp_path):
    touch(tmp_path, "a0.nii", "a1.nii")
    man = tmp_path / "manifest.csv"
    man.write_text(HEADER + "A,b,0,a0.nii\nA,f,56,a1.nii\nB,b,0,gone.nii\nB,f,56,gone2.nii\n")
    plans = read_manifest(man, skip_missing=True)
    assert plans[0].error is None
    assert "gone.nii" in plans[1].error and "gone2.nii" in plans[1].error


def test_days_and_date_must_agree(tmp_path):
    touch(tmp_path, "a.nii", "b.nii")
    man = tmp_path / "manifest.csv"
    man.write_text("subject_id,timepoint,days_from_baseline,scan_date,mask_path\n"
                   "A,b,0,2024-01-01,a.nii\nA,f,50,2024-02-26,b.nii\n")
    with pytest.raises(ManifestError, match="disagrees with scan_date"):
        read_manifest(man)
