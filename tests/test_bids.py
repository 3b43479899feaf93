"""`cnsvol manifest`: a cohort manifest from a BIDS derivatives tree."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from cnsvol import BidsError, bids_manifest, write_manifest
from cnsvol.cohort.bids import natural_key, parse_bids_name
from cnsvol.cohort.manifest import read_manifest
from cnsvol_cli.main import main
from helpers import write_nifti

AFFINE = np.diag([1.0, 1.0, 1.0, 1.0])


def mask(path: Path, side: int = 3) -> Path:
    """A 16^3 mask (1 mm voxels) holding one side x side x 2 lesion: 2 side^2 mm3."""
    data = np.zeros((16, 16, 16), dtype=np.uint8)
    data[1:1 + side, 1:1 + side, 1:3] = 1
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_nifti(path, data, AFFINE)


def sessions_tsv(root: Path, sub: str, rows: list[tuple[str, str]], header="session_id\tacq_time"):
    path = root / f"sub-{sub}" / f"sub-{sub}_sessions.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(f"{a}\t{b}\n" for a, b in rows), encoding="utf-8")
    return path


def session_mask(root: Path, sub: str, ses: str, entities: str = "", suffix="mask", side=3,
                 ext=".nii.gz") -> Path:
    name = f"sub-{sub}_ses-{ses}{entities}_{suffix}{ext}"
    return mask(root / f"sub-{sub}" / f"ses-{ses}" / "anat" / name, side)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def cli(tmp_path, *argv: str) -> int:
    return main(["manifest", *argv])


def collect(root, **kw):
    notes: list[str] = []
    rows = bids_manifest(root, on_warning=notes.append, **kw)
    return rows, notes


# -- names and ordering ----------------------------------------------------------------------


def test_bids_names_are_parsed_into_entities_suffix_and_extension():
    assert parse_bids_name("sub-01_ses-02_desc-tumor_label-ET_mask.nii.gz") == (
        {"sub": "01", "ses": "02", "desc": "tumor", "label": "ET"}, "mask", ".nii.gz",
    )
    assert parse_bids_name("sub-7_dseg.nii") == ({"sub": "7"}, "dseg", ".nii")
    assert parse_bids_name("brain_mask.nii.gz") is None  # no sub- entity
    assert parse_bids_name("sub-01_mask.json") is None
    assert sorted(["10", "2", "1", "b", "a2", "a10"], key=natural_key) == [
        "1", "2", "10", "a2", "a10", "b",
    ]


# -- dates -----------------------------------------------------------------------------------


def test_sessions_are_dated_from_sessions_tsv_and_ordered_by_date(tmp_path):
    root = tmp_path / "derivatives"
    # labels deliberately out of date order: "post" is after "pre", "10" after "2"
    for ses in ("pre", "post"):
        session_mask(root, "A", ses)
    sessions_tsv(root, "A", [("ses-post", "2021-03-02T09:15:00"), ("ses-pre", "2021-01-05")])
    for ses in ("2", "10"):
        session_mask(root, "B", ses)
    sessions_tsv(root, "B", [("ses-2", "2020-06-01T23:59:59.5Z"), ("ses-10", "2020-08-26")])
    rows, notes = collect(root)
    assert [(r["subject_id"], r["timepoint"], r["scan_date"]) for r in rows] == [
        ("A", "pre", "2021-01-05"), ("A", "post", "2021-03-02"),
        ("B", "2", "2020-06-01"), ("B", "10", "2020-08-26"),
    ]
    assert all(r["days_from_baseline"] == "" for r in rows)
    assert notes == []
    out = tmp_path / "m.csv"
    write_manifest(rows, out)
    plans = read_manifest(out)
    assert [[(s.timepoint, s.days_from_baseline) for s in p.scans] for p in plans] == [
        [("pre", 0.0), ("post", 56.0)], [("2", 0.0), ("10", 86.0)],
    ]


def test_sessions_tsv_is_also_looked_up_in_the_raw_tree(tmp_path):
    root, raw = tmp_path / "deriv", tmp_path / "raw"
    for ses in ("01", "02"):
        session_mask(root, "01", ses)
    sessions_tsv(raw, "01", [("ses-01", "2022-02-01"), ("ses-02", "2022-02-15")])
    rows, _ = collect(root, raw=raw)
    assert [r["scan_date"] for r in rows] == ["2022-02-01", "2022-02-15"]


def test_undated_sessions_are_refused_unless_allowed_then_in_natural_order(tmp_path):
    root = tmp_path / "d"
    for ses in ("10", "2", "1"):
        session_mask(root, "07", ses)
    session_mask(root, "08", "1")
    session_mask(root, "08", "2")
    sessions_tsv(root, "08", [("ses-1", "2020-01-01"), ("ses-2", "n/a")])
    with pytest.raises(BidsError) as info:
        bids_manifest(root)
    msg = str(info.value)
    assert "2 subject(s) have sessions without a date" in msg
    assert "subject 07: no acq_time for session(s) ses-1, ses-2, ses-10" in msg
    assert "subject 08: no acq_time for session(s) ses-2" in msg
    assert "--allow-undated" in msg and "acq_time" in msg

    rows, notes = collect(root, allow_undated=True)
    assert [(r["subject_id"], r["timepoint"], r["scan_date"]) for r in rows] == [
        ("07", "1", ""), ("07", "2", ""), ("07", "10", ""),
        ("08", "1", "2020-01-01"), ("08", "2", ""),
    ]
    assert any("kept with undated sessions" in n and "subject 07" in n for n in notes)
    out = tmp_path / "m.csv"
    assert cli(tmp_path, "--bids", str(root), "--out", str(out), "--allow-undated") == 0
    text = out.read_text()
    assert text.splitlines()[0] == (
        "subject_id,timepoint,scan_date,days_from_baseline,mask_path,image_path"
    )
    with pytest.raises(Exception, match="neither days_from_baseline nor scan_date"):
        read_manifest(out)  # the date cells are to be filled by hand


def test_malformed_and_duplicate_dates_are_listed_together(tmp_path):
    root = tmp_path / "d"
    for sub in ("01", "02", "03"):
        for ses in ("a", "b"):
            session_mask(root, sub, ses)
    tsv1 = sessions_tsv(root, "01", [("ses-a", "05/01/2020"), ("ses-b", "2020-02-30")])
    sessions_tsv(root, "02", [("ses-a", "2020-01-01T08:00"), ("ses-b", "2020-01-01T17:00")])
    sessions_tsv(root, "03", [("ses-a", "2020-01-01"), ("ses-b", "2020-03-01")])
    with pytest.raises(BidsError) as info:
        bids_manifest(root)
    msg = str(info.value)
    assert f"{tsv1} row 2: acq_time '05/01/2020' of ses-a is not an ISO date" in msg
    assert f"{tsv1} row 3: acq_time '2020-02-30' of ses-b" in msg
    assert "YYYY-MM-DD" in msg
    assert "subject 02: sessions ses-a, ses-b have the same date 2020-01-01" in msg
    assert "subject 03" not in msg


def test_unreadable_sessions_tsv_and_missing_column_name_the_file(tmp_path):
    root = tmp_path / "d"
    for sub in ("01", "02"):
        for ses in ("1", "2"):
            session_mask(root, sub, ses)
    bad = root / "sub-01" / "sub-01_sessions.tsv"
    bad.write_bytes(b"session_id\tacq_time\nses-1\t2020-01-01\xff\xfe\n")
    nocol = sessions_tsv(root, "02", [("ses-1", "2020-01-01")], header="id\tacq_time")
    with pytest.raises(BidsError) as info:
        bids_manifest(root)
    msg = str(info.value)
    assert f"{bad}: " in msg and "not valid UTF-8" in msg and "Fix:" in msg
    assert f"{nocol}: no session_id column (columns: id, acq_time)" in msg


# -- selection and ambiguity -----------------------------------------------------------------


def test_desc_and_label_select_one_mask_per_session(tmp_path):
    root = tmp_path / "d"
    for ses in ("01", "02"):
        session_mask(root, "01", ses, "_desc-tumor", side=3)
        session_mask(root, "01", ses, "_desc-edema", side=5)
        session_mask(root, "02", ses, "_label-ET", suffix="dseg", side=2)
        session_mask(root, "02", ses, "_label-WT", suffix="dseg", side=4)
    sessions_tsv(root, "01", [("ses-01", "2020-01-01"), ("ses-02", "2020-02-26")])
    sessions_tsv(root, "02", [("ses-01", "2020-01-01"), ("ses-02", "2020-02-26")])

    # desc-tumor removes every mask of subject 02 (no desc entity): reported, not silent
    rows, notes = collect(root, desc="desc-tumor")
    assert [Path(r["mask_path"]).name for r in rows] == [
        "sub-01_ses-01_desc-tumor_mask.nii.gz", "sub-01_ses-02_desc-tumor_mask.nii.gz",
    ]
    assert len(notes) == 1 and "2 session(s) have masks but none matching desc-tumor" in notes[0]
    assert "sub-02/ses-01" in notes[0]

    rows, _ = collect(root, label="ET", suffix="dseg")
    assert [(r["subject_id"], Path(r["mask_path"]).name) for r in rows] == [
        ("02", "sub-02_ses-01_label-ET_dseg.nii.gz"), ("02", "sub-02_ses-02_label-ET_dseg.nii.gz"),
    ]
    assert rows[0]["entities"] == {"sub": "02", "ses": "01", "label": "ET", "suffix": "dseg"}

    with pytest.raises(BidsError, match=r"no mask matches desc-necrosis; masks found: "):
        bids_manifest(root, desc="necrosis")


def test_ambiguous_sessions_are_all_reported_with_the_option_that_resolves_them(tmp_path, capsys):
    root = tmp_path / "d"
    session_mask(root, "01", "1", "_desc-tumor")
    session_mask(root, "01", "1", "_desc-edema")
    session_mask(root, "01", "2", "_desc-tumor")
    session_mask(root, "02", "1", "_label-ET")
    session_mask(root, "02", "1", "_label-TC")
    session_mask(root, "02", "2", "_run-1")
    session_mask(root, "02", "2", "_run-2")
    out = tmp_path / "m.csv"
    assert cli(tmp_path, "--bids", str(root), "--out", str(out)) == 1
    assert not out.exists()
    err = capsys.readouterr().err
    assert err.startswith("cnsvol manifest: error: 3 session(s) have more than one candidate")
    assert ("subject 01, session 1: sub-01/ses-1/anat/sub-01_ses-1_desc-edema_mask.nii.gz, "
            "sub-01/ses-1/anat/sub-01_ses-1_desc-tumor_mask.nii.gz") in err
    assert "subject 02, session 1: " in err and "subject 02, session 2: " in err
    assert "subject 01, session 2" not in err
    assert "--desc VALUE (values found: edema, tumor)" in err
    assert "--label VALUE (values found: ET, TC)" in err
    assert "--entity run=VALUE (values found: 1, 2)" in err


def test_the_same_mask_twice_is_ambiguous_too(tmp_path):
    root = tmp_path / "d"
    session_mask(root, "01", "1")
    session_mask(root, "01", "1", ext=".nii")
    with pytest.raises(BidsError, match="remove the extra copy"):
        bids_manifest(root)


# -- layouts ---------------------------------------------------------------------------------


def test_subjects_without_sessions_give_one_timepoint_and_a_warning(tmp_path):
    root = tmp_path / "d"
    for sub in ("10", "2"):
        mask(root / f"sub-{sub}" / "anat" / f"sub-{sub}_desc-tumor_mask.nii")
    rows, notes = collect(root)
    assert [(r["subject_id"], r["timepoint"], r["days_from_baseline"]) for r in rows] == [
        ("2", "baseline", 0), ("10", "baseline", 0),
    ]
    assert len(notes) == 1
    assert "2 subject(s) have a single timepoint" in notes[0] and "2 (sub-2/anat)" in notes[0]
    out = tmp_path / "m.csv"
    write_manifest(rows, out)
    plans = read_manifest(out)
    assert [(p.subject_id, len(p.scans), p.scans[0].days_from_baseline) for p in plans] == [
        ("10", 1, 0.0), ("2", 1, 0.0),
    ]


def test_misnamed_files_and_flat_masks_beside_sessions_are_reported(tmp_path):
    root = tmp_path / "d"
    session_mask(root, "01", "1")
    session_mask(root, "01", "2")
    sessions_tsv(root, "01", [("ses-1", "2020-01-01"), ("ses-2", "2020-02-01")])
    mask(root / "sub-01" / "ses-2" / "anat" / "sub-02_ses-2_mask.nii.gz")  # wrong subject
    mask(root / "sub-01" / "anat" / "sub-01_mask.nii.gz")
    rows, notes = collect(root)
    assert len(rows) == 2
    assert any("sub-01/ses-2/anat/sub-02_ses-2_mask.nii.gz" in n for n in notes)
    assert any("sub-01/anat/sub-01_mask.nii.gz" in n and "skipped" in n for n in notes)


# -- errors about the folder -----------------------------------------------------------------


def test_missing_folder_and_no_masks_are_clear_errors(tmp_path, capsys):
    assert cli(tmp_path, "--bids", str(tmp_path / "nope"), "--out", str(tmp_path / "m.csv")) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'nope'}: BIDS derivatives folder not found" in err

    pipeline = tmp_path / "derivatives" / "seg"
    mask(pipeline / "sub-01" / "ses-1" / "anat" / "sub-01_ses-1_T1w.nii.gz")
    with pytest.raises(BidsError) as info:
        bids_manifest(tmp_path / "derivatives")
    msg = str(info.value)
    assert "no masks found" in msg and "sub-*/ses-*/anat/*_{mask,dseg}.nii[.gz]" in msg
    assert f"give the pipeline folder that holds sub-*/, e.g. {pipeline}" in msg
    with pytest.raises(BidsError) as info:
        bids_manifest(pipeline)
    assert "1 sub-* folder(s) found, holding NIfTI files with suffix(es) _T1w (1)" in str(
        info.value
    )
    with pytest.raises(BidsError, match="give the dataset folder that holds the sub-"):
        bids_manifest(pipeline / "sub-01")


# -- writing ---------------------------------------------------------------------------------


def test_paths_are_relative_to_the_manifest_and_raw_images_are_matched(tmp_path, capsys):
    root, raw = tmp_path / "bids" / "derivatives" / "seg", tmp_path / "bids"
    for ses in ("1", "2"):
        session_mask(root, "01", ses)
        anat = raw / "sub-01" / f"ses-{ses}" / "anat"
        mask(anat / f"sub-01_ses-{ses}_FLAIR.nii.gz")
        if ses == "1":
            mask(anat / f"sub-01_ses-{ses}_T1w.nii.gz")
    sessions_tsv(raw, "01", [("ses-1", "2020-01-01"), ("ses-2", "2020-01-29")])
    out = tmp_path / "results" / "cohort" / "manifest.csv"
    assert cli(tmp_path, "--bids", str(root), "--raw", str(raw), "--out", str(out)) == 0
    rows = read_rows(out)
    assert [(r["mask_path"], r["image_path"]) for r in rows] == [
        ("../../bids/derivatives/seg/sub-01/ses-1/anat/sub-01_ses-1_mask.nii.gz",
         "../../bids/sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz"),
        ("../../bids/derivatives/seg/sub-01/ses-2/anat/sub-01_ses-2_mask.nii.gz",
         "../../bids/sub-01/ses-2/anat/sub-01_ses-2_FLAIR.nii.gz"),
    ]
    plan = read_manifest(out)[0]
    flair = raw / "sub-01" / "ses-2" / "anat" / "sub-01_ses-2_FLAIR.nii.gz"
    assert plan.scans[1].image_path.resolve() == flair.resolve()
    assert [s.days_from_baseline for s in plan.scans] == [0.0, 28.0]

    # an existing manifest is kept unless --force
    capsys.readouterr()
    out.write_text("hand-edited\n")
    assert cli(tmp_path, "--bids", str(root), "--raw", str(raw), "--out", str(out)) == 1
    assert f"{out}: already exists" in capsys.readouterr().err
    assert out.read_text() == "hand-edited\n"
    assert cli(tmp_path, "--bids", str(root), "--raw", str(raw), "--out", str(out), "--force",
               "--image-suffix", "FLAIR") == 0
    assert [Path(r["image_path"]).name for r in read_rows(out)] == [
        "sub-01_ses-1_FLAIR.nii.gz", "sub-01_ses-2_FLAIR.nii.gz",
    ]


def test_a_formula_like_label_is_neutralised(tmp_path):
    rows = [{"subject_id": "=1+2", "timepoint": "a", "scan_date": "2020-01-01",
             "days_from_baseline": "", "mask_path": tmp_path / "x.nii", "image_path": None}]
    write_manifest(rows, tmp_path / "m.csv")
    assert read_rows(tmp_path / "m.csv")[0]["subject_id"] == "'=1+2"


# -- end to end ------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_written_manifest_runs(tmp_path, capsys):
    from cnsvol.batch.run import RunConfig, run_cohort
    from cnsvol.response.criteria import get_criteria

    root = tmp_path / "d"
    # subject 01 shrinks from 2 x 12^2 = 288 to 2 x 6^2 = 72 mm3 (-75%); 02 grows 200 -> 288
    session_mask(root, "01", "1", "_desc-tumor", side=12)
    session_mask(root, "01", "2", "_desc-tumor", side=6)
    session_mask(root, "01", "2", "_desc-edema", side=14)
    sessions_tsv(root, "01", [("ses-1", "2020-01-01"), ("ses-2", "2020-02-26")])
    session_mask(root, "02", "a", "_desc-tumor", side=10)
    session_mask(root, "02", "b", "_desc-tumor", side=12)
    sessions_tsv(root, "02", [("ses-a", "2020-05-01"), ("ses-b", "2020-06-26")])
    out = tmp_path / "manifest.csv"
    assert cli(tmp_path, "--bids", str(root), "--out", str(out), "--desc", "tumor") == 0
    assert f"wrote {out}: 2 subject(s), 4 scan(s), 4 dated" in capsys.readouterr().out

    plans = read_manifest(out)
    summary = run_cohort(plans, tmp_path / "results", RunConfig(get_criteria("lin2009"), qc=False),
                         jobs=1)
    assert summary.n_failed == 0
    subjects = {r["subject_id"]: r for r in read_rows(tmp_path / "results" / "subjects.csv")}
    assert float(subjects["01"]["best_percent_change"]) == pytest.approx(-75.0)
    assert subjects["01"]["responder_20pct"] == "True"
    assert float(subjects["02"]["baseline_total_volume_mm3"]) == pytest.approx(200.0)
    assert subjects["02"]["responder_20pct"] == "False"
    timepoints = read_rows(tmp_path / "results" / "timepoints.csv")
    assert [(t["subject_id"], t["timepoint"], float(t["days_from_baseline"])) for t in timepoints] == [
        ("01", "1", 0.0), ("01", "2", 56.0), ("02", "a", 0.0), ("02", "b", 56.0),
    ]
