"""Manifest validation: every problem at once, paths relative to the manifest, ordering."""

from __future__ import annotations

import os

import pytest

from cnsvol.errors import ManifestError
from cnsvol.cohort.manifest import read_manifest

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


# --------------------------------------------------------------------------------------------
# what a problem costs: one subject, or the whole manifest


def test_a_problem_confined_to_one_subject_costs_that_subject_only(tmp_path):
    touch(tmp_path, "a0.nii", "a1.nii", "b0.nii", "b1.nii", "c0.nii", "c1.nii", "d0.nii")
    man = tmp_path / "manifest.csv"
    man.write_bytes(
        (HEADER + "A,b,0,a0.nii\nA,f,56,a1.nii\n"
         "B,b,0,b0.nii\nB,f,56,b1.nii\nB,b,0,b0.nii\n"       # duplicate row
         "C,b,0,c0.nii\nC,f,-3,c1.nii\n"                     # negative day
         "D,b,0,d0.nii\nD,f,56,\n").encode()                 # empty mask_path
        + b"M\xfcller,b,0,a0.nii\nM\xfcller,f,56,a1.nii\n"   # Latin-1 id
        + b"E,b,0,a0.nii\nE,f,56,caf\xe9.nii\n"               # Latin-1 path (never "missing")
    )
    plans = {p.subject_id: p for p in read_manifest(man)}
    assert sorted(plans) == ["A", "B", "C", "D", "E", "M\\xfcller"]
    assert plans["A"].error is None and len(plans["A"].scans) == 2
    expected = {
        "B": ["rows 4 and 6: duplicate subject 'B' timepoint 'b'",
              "keep one row per subject and timepoint"],
        "C": ["row 8: days_from_baseline '-3' is negative"],
        "D": ["row 10: empty mask_path"],
        "E": ["row 14: mask_path holds byte(s) that are not UTF-8 (0xe9)", "caf\\xe9.nii",
              "save the manifest as UTF-8"],
        "M\\xfcller": ["row 11: subject_id holds byte(s) that are not UTF-8 (0xfc)",
                       "row 12: subject_id"],
    }
    for sid, words in expected.items():
        error = plans[sid].error
        assert error is not None and error.startswith(f"manifest {man}: "), sid
        assert error.endswith("Fix these rows of the manifest and rerun"), sid
        for word in words:
            assert word in error, (sid, word, error)
    assert "same day" not in plans["B"].error  # the duplicate is said once


def test_a_symlink_loop_or_a_folder_is_not_a_missing_file(tmp_path):
    """They exist: the mask reader fails the subject with the precise reason, and the run is
    not stopped as it is for files that are not there."""
    touch(tmp_path, "a0.nii", "b0.nii")
    os.symlink(tmp_path / "loop2.nii", tmp_path / "loop1.nii")
    os.symlink(tmp_path / "loop1.nii", tmp_path / "loop2.nii")
    (tmp_path / "dir.nii").mkdir()
    os.symlink(tmp_path / "nothing.nii", tmp_path / "dangling.nii")
    man = tmp_path / "manifest.csv"
    man.write_text(HEADER + "A,b,0,a0.nii\nA,f,56,loop1.nii\nB,b,0,b0.nii\nB,f,56,dir.nii\n")
    plans = read_manifest(man)
    assert [p.error for p in plans] == [None, None]
    man.write_text(HEADER + "A,b,0,a0.nii\nA,f,56,dangling.nii\n")
    with pytest.raises(ManifestError, match="1 missing file.*dangling.nii"):
        read_manifest(man)


def test_when_no_subject_can_run_the_manifest_is_refused_with_every_problem(tmp_path):
    touch(tmp_path, "a0.nii", "b0.nii")
    man = tmp_path / "manifest.csv"
    man.write_text(HEADER + "A,b,0,a0.nii\nA,b,0,a0.nii\nB,f,56,b0.nii\n")
    with pytest.raises(ManifestError) as info:
        read_manifest(man)
    msg = str(info.value)
    for part in (str(man), "no subject can be run", "duplicate subject 'A' timepoint 'b'",
                 "subject 'B' has no baseline", "Fix these rows"):
        assert part in msg, part


@pytest.mark.parametrize("raw, words", [
    (b"subject_id,timepoint,days_from_baseline\nA,b,0\n",
     ["missing column(s) mask_path", "Fix the header row"]),
    (HEADER.encode() + b"A,b,0,a0.nii\n,f,56,a1.nii\n",
     ["row 3: empty subject_id", "belongs to no subject"]),
    (b"subject_id,timepoint,days_from_baseline,mask_path,r\xe9f\nA,b,0,a0.nii,\n",
     ["header row", "not valid UTF-8", "0xe9", "line 1", "Fix: save it as UTF-8"]),
    (HEADER.encode("utf-16") + "A,b,0,a0.nii\n".encode("utf-16"),
     ["NUL byte", "Fix: save it as UTF-8"]),
])
def test_problems_of_the_whole_file_refuse_it(tmp_path, raw, words):
    touch(tmp_path, "a0.nii", "a1.nii")
    man = tmp_path / "manifest.csv"
    man.write_bytes(raw)
    with pytest.raises(ManifestError) as info:
        read_manifest(man)
    for word in [str(man), *words]:
        assert word in str(info.value), (word, str(info.value))


def test_radiotherapy_end_days_is_one_number_per_subject(tmp_path):
    touch(tmp_path, "a0.nii", "a1.nii", "b0.nii", "b1.nii", "c0.nii", "c1.nii")
    man = tmp_path / "manifest.csv"
    man.write_text("subject_id,timepoint,days_from_baseline,mask_path,radiotherapy_end_days\n"
                   "A,base,0,a0.nii,-14\nA,wk8,56,a1.nii,\n"  # on one row: the subject's
                   "B,base,0,b0.nii,-14\nB,wk8,56,b1.nii,-10\n"  # two values: B fails
                   "C,base,0,c0.nii,\nC,wk8,56,c1.nii,soon\n")  # not a number: C fails
    plans = {p.subject_id: p for p in read_manifest(man)}
    assert plans["A"].radiotherapy_end_days == -14.0 and plans["A"].error is None
    assert "different radiotherapy_end_days: -14 (row 4), -10 (row 5)" in plans["B"].error
    assert "radiotherapy_end_days 'soon' is not a number" in plans["C"].error
