"""Issue 12 contract: implausible inputs caught (an image given as a mask, labels that exist
nowhere, European CSVs, one bad file among good ones, CLI consistency) and the imaging / PFS
reconciliation. Written from the issue text and its interface spec only.

Synthetic masks are boxes on diagonal grids written by tests/helpers.write_nifti (units mm), so
every expected number is voxel count x voxel volume, derived by hand in the comments.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import cli_main, nifti_bytes, read_text_table, write_nifti

import cnsvol
from cnsvol import MaskError, MeasureOptions

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "fixtures" / "demo"
EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
PLAUSIBLE = re.compile(r"plausible|not a lesion mask", re.IGNORECASE)


def run(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = cli_main()([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr() if capsys is not None else ("", "")
    return code, out, err


def aff(spacing, origin=(-20.0, -15.0, 7.0)):
    a = np.diag([*spacing, 1.0])
    a[:3, 3] = origin
    return a


def save(path, data, spacing=(1.0, 1.0, 1.0), dtype=None):
    return write_nifti(Path(path), np.asarray(data), aff(spacing), dtype=dtype)


# small 1 mm grid (40 x 40 x 20 mm = 32 mL), lesions a few % of it
G = (40, 40, 20)
BASE = np.s_[5:15, 5:15, 5:15]     # 10 x 10 x 10 = 1000 mm3
GROWN = np.s_[5:15, 5:25, 5:15]    # 2000 mm3, contains BASE: +100% (PD under lin2009)
SHRUNK = np.s_[5:15, 5:15, 5:9]    # 400 mm3 inside BASE: -60% (PR under lin2009)


def grid(*regions, labels=None):
    data = np.zeros(G, np.uint8)
    for n, r in enumerate(regions):
        data[r] = 1 if labels is None else labels[n]
    return data


def subjects_of(out):
    return {r["subject_id"]: r for r in read_text_table(out / "subjects.csv").to_dict("records")}


def floats(text):
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", text.replace(",", ""))]


# -- 1. an intensity image is not a mask: real data ----------------------------------------------

REAL_MASKS = [
    *(f"pyradiomics/{n}_label.nrrd" for n in ("brain1", "brain2", "breast1", "lung1", "lung2")),
    "ibsi/digital_phantom/mask.nii.gz",   # 74 of 80 voxels: a tiny grid, not a head
    "ibsi/ct_phantom/mask.nii.gz",
    "deepmedic_brats2015/pat0001/OTMultiClass.nii.gz",
    "deepmedic_brats2015/pat0001/brainmask.nii.gz",  # 1,487,565 mm3 < 1.5 L, 16.7% of the FOV
    "nibabel/standard.nii.gz",
    "open_ms_data/patient02_raw/consensus_gt.nii.gz",
    "open_ms_data/patient02_resampled/consensus_gt.nii.gz", "dicom/dcmqi/liver_seg.nrrd",
    *(f"dicom/dcmqi/partial_overlaps-{n}.nrrd" for n in (1, 2, 3)),
    "dicom/dcmqi/23x38x3/nrrd/label.nrrd",
    *(f"dicom/mirp_sts/STS_002/{m}/nifti/mask/mask.nii.gz" for m in ("MR_T1", "PET")),
] + [
    f"audit_brats2024/{c}/{case}/{sub}{case}_{kind}.nii.gz"
    for c, cases in (("SSA", ("BraTS2024_SSA-00002-000", "BraTS2024_SSA-00230-000")),
                     ("PED", ("BraTS2024_PED-00001-000", "BraTS2024_PED-00266-000")))
    for case in cases
    for sub, kind in (("", "seg"), ("SegResNet/", "pred"), ("nnUnet/", "pred"))
]
# 3D intensity images: refused by the plausibility check, the fix named
REAL_IMAGES = ["pyradiomics/brain1_image.nrrd",   # int16, 2,413 distinct values, 6.1 L "lesion"
               "nibabel/anatomical.nii"]          # big-endian int16 MRI, 9,842 distinct values
# 4D images and DICOM image slices: refused already (4D / unsupported format); only exit 1
REAL_OTHER_IMAGES = [
    "nibabel/example4d.nii.gz", "nibabel/example_nifti2.nii.gz",
    "dicom/dcmqi/ct-3slice/01.dcm", "dicom/dcmqi/23x38x3/image/IMG0001.dcm",
    "dicom/mirp_ibsi_digital_phantom/dicom/image/phantom.dcm",
    *(f"dicom/mirp_sts/STS_002/{m}/dicom/image/000000.dcm" for m in ("MR_T1", "PET")),
]


@pytest.mark.realdata
@pytest.mark.parametrize("rel", REAL_MASKS)
def test_every_real_mask_passes_the_plausibility_check(capsys, realdata, rel):
    path = realdata / rel
    code, out, err = run(capsys, "volumes", path, "--format", "json")
    assert code == EXIT_OK, err
    assert json.loads(out)["total_volume_mm3"] > 0
    assert not PLAUSIBLE.search(err)


@pytest.mark.realdata
@pytest.mark.parametrize("rel", REAL_IMAGES + REAL_OTHER_IMAGES)
def test_every_real_image_is_refused_naming_the_file_and_the_overrides(capsys, realdata, rel):
    path = realdata / rel
    code, out, err = run(capsys, "volumes", path)
    assert code == EXIT_INPUT and out == ""   # no "lesion" of 6,136,838 mm3
    assert Path(rel).name in err and "Traceback" not in err
    if rel in REAL_IMAGES:
        assert PLAUSIBLE.search(err), err
        assert "--mask-kind" in err or "--allow-large-lesions" in err
        with pytest.raises(MaskError, match=PLAUSIBLE):
            cnsvol.read_mask(str(path))


def swapped_manifest(folder, rows):
    """rows: (sid, tp, days, mask, image)"""
    lines = ["subject_id,timepoint,days_from_baseline,mask_path,image_path"]
    lines += [f"{s},{t},{d},{m},{i}" for s, t, d, m, i in rows]
    path = folder / "manifest.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def assert_swapped_subject_fails(capsys, man, out, bad_sid, image_name):
    code, _, err = run(capsys, "run", man, "--out", out, "--jobs", "1", "--no-qc", "--quiet")
    assert code in (EXIT_INPUT, EXIT_PARTIAL), (code, err)   # never a garbage cohort with exit 0
    if code == EXIT_INPUT:
        assert image_name in err
        return
    subjects = subjects_of(out)
    assert subjects[bad_sid]["status"] == "failed"
    assert image_name in subjects[bad_sid]["error"]
    assert all(r["status"] == "ok" for s, r in subjects.items() if s != bad_sid)


@pytest.mark.slow
def test_swapped_image_and_mask_columns_in_the_demo_fail_the_subject(capsys, tmp_path):
    with (DEMO / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        demo = [r for r in csv.DictReader(fh) if r["subject_id"] in ("S01", "S21")]
    rows = []
    for r in demo:
        mask, img = DEMO / r["mask_path"], DEMO / r["image_path"]
        if r["subject_id"] == "S01":
            mask, img = img, mask   # swapped
        rows.append((r["subject_id"], r["timepoint"], r["days_from_baseline"], mask, img))
    man = swapped_manifest(tmp_path, rows)
    assert_swapped_subject_fails(capsys, man, tmp_path / "out", "S01", "_t1c.nii.gz")


@pytest.mark.realdata
@pytest.mark.slow
def test_swapped_real_image_and_label_fail_the_subject(capsys, tmp_path, realdata):
    img, lab = (realdata / f"pyradiomics/brain1_{n}.nrrd" for n in ("image", "label"))
    save(tmp_path / "a0.nii.gz", grid(BASE))
    save(tmp_path / "a1.nii.gz", grid(SHRUNK))
    man = swapped_manifest(tmp_path, [
        ("GOOD", "baseline", 0, "a0.nii.gz", ""), ("GOOD", "week8", 56, "a1.nii.gz", ""),
        ("SWAP", "baseline", 0, img, lab), ("SWAP", "week8", 56, img, lab),
    ])
    assert_swapped_subject_fails(capsys, man, tmp_path / "out", "SWAP", "brain1_image.nrrd")


# -- 1. synthetic cases --------------------------------------------------------------------------

def test_float_probability_map_in_0_1_passes(capsys, tmp_path):
    # a Gaussian blob: thousands of distinct non-integral values, all in [0, 1]
    i, j, k = np.indices(G, dtype=np.float64)
    r2 = (i - 20.3) ** 2 + (j - 19.7) ** 2 + (k - 10.1) ** 2
    prob = np.exp(-r2 / (2 * 4.0 ** 2)).astype(np.float32)
    prob[prob < 1e-3] = 0
    assert len(np.unique(prob)) > 256 and prob.max() <= 1 and not np.any(prob == 0.5)
    expected = float(np.count_nonzero(prob >= 0.5)) * 0.5   # 1 x 1 x 0.5 mm voxels
    path = save(tmp_path / "prob.nii.gz", prob, spacing=(1.0, 1.0, 0.5), dtype=np.float32)
    code, out, err = run(capsys, "volumes", path, "--format", "json")
    assert code == EXIT_OK, err
    assert json.loads(out)["total_volume_mm3"] == pytest.approx(expected)
    cnsvol.read_mask(str(path))
    cnsvol.read_mask(str(path), mask_kind="probability")


def test_fractional_map_outside_0_1_is_refused(capsys, tmp_path):
    data = np.zeros(G, np.float32)          # few distinct values, but 1.3 and 2.7: not labels,
    data[BASE] = 1.3                        # not a probability: an intensity-like float map
    data[20:30, 20:30, 5:15] = 2.7
    path = save(tmp_path / "floaty.nii.gz", data, dtype=np.float32)
    code, out, err = run(capsys, "volumes", path)
    assert code == EXIT_INPUT and out == ""
    assert "floaty.nii.gz" in err and PLAUSIBLE.search(err)
    with pytest.raises(MaskError, match=PLAUSIBLE):
        cnsvol.read_mask(str(path))


def instance_mask(path):
    """300 separate 2 x 2 x 2 mm cubes, labelled 1..300 (300 distinct non-zero values)."""
    data = np.zeros((40, 40, 12), np.uint16)
    for n, (a, b, c) in enumerate(itertools.product(range(10), range(10), range(3)), start=1):
        data[4 * a:4 * a + 2, 4 * b:4 * b + 2, 4 * c:4 * c + 2] = n
    assert len(np.unique(data)) == 301
    return save(path, data, dtype=np.uint16)


def test_300_distinct_labels_refused_unless_mask_kind_labels(capsys, tmp_path):
    path = instance_mask(tmp_path / "inst.nii.gz")
    code, out, err = run(capsys, "volumes", path)
    assert code == EXIT_INPUT and out == ""
    assert "inst.nii.gz" in err and PLAUSIBLE.search(err)
    assert "300" in err and "--mask-kind" in err   # the number found, the fix
    code, out, err = run(capsys, "volumes", path, "--mask-kind", "labels", "--format", "json")
    assert code == EXIT_OK, err
    doc = json.loads(out)
    assert doc["lesion_count"] == 300 and doc["total_volume_mm3"] == pytest.approx(2400.0)
    with pytest.raises(MaskError, match=PLAUSIBLE):
        cnsvol.read_mask(str(path))
    mask = cnsvol.read_mask(str(path), mask_kind="labels")
    assert len(cnsvol.find_lesions(mask).lesions) == 300
    r = cnsvol.compare(str(path), str(path), options=MeasureOptions(mask_kind="labels"))
    assert r.baseline.total_volume_mm3 == pytest.approx(2400.0)


def large_fov_mask(path):
    """2 mm voxels (8 mm3); grid 90 x 100 x 70 = 180 x 200 x 140 mm (5.04 L, head-sized);
    one block of 60 x 70 x 42 = 176,400 voxels = 1,411,200 mm3 (< 1.5 L) = 28% of the FOV."""
    data = np.zeros((90, 100, 70), np.uint8)
    data[15:75, 15:85, 14:56] = 1
    assert data.sum() / data.size == pytest.approx(0.28)
    return save(path, data, spacing=(2.0, 2.0, 2.0))


def large_volume_mask(path):
    """2 mm voxels; grid 120 x 120 x 78 = 240 x 240 x 156 mm (8.99 L); one block of
    60 x 70 x 48 = 201,600 voxels = 1,612,800 mm3 (> 1.5 L) = 17.9% of the FOV."""
    data = np.zeros((120, 120, 78), np.uint8)
    data[30:90, 25:95, 15:63] = 1
    return save(path, data, spacing=(2.0, 2.0, 2.0))


@pytest.mark.parametrize("maker, expected", [(large_fov_mask, 1_411_200.0),
                                             (large_volume_mask, 1_612_800.0)])
def test_large_foreground_refused_unless_allow_large_lesions(capsys, tmp_path, maker, expected):
    path = maker(tmp_path / "big.nii.gz")
    code, out, err = run(capsys, "volumes", path)
    assert code == EXIT_INPUT and out == ""
    assert "big.nii.gz" in err and PLAUSIBLE.search(err) and "--allow-large-lesions" in err
    code, out, err = run(capsys, "volumes", path, "--allow-large-lesions", "--format", "json")
    assert code == EXIT_OK, err
    assert json.loads(out)["total_volume_mm3"] == pytest.approx(expected)
    with pytest.raises(MaskError, match=PLAUSIBLE):
        cnsvol.read_mask(str(path))
    cnsvol.read_mask(str(path), allow_large_lesions=True)


def test_allow_large_lesions_on_compare_track_and_options(capsys, tmp_path):
    path = large_volume_mask(tmp_path / "big.nii.gz")
    code, _, err = run(capsys, "compare", path, path)
    assert code == EXIT_INPUT and "--allow-large-lesions" in err
    code, _, err = run(capsys, "compare", path, path, "--allow-large-lesions", "--format", "json")
    assert code == EXIT_OK, err
    code, _, err = run(capsys, "track", path, path, "--days", "0,56", "--allow-large-lesions")
    assert code == EXIT_OK, err
    r = cnsvol.compare(str(path), str(path), options=MeasureOptions(allow_large_lesions=True))
    assert r.baseline.total_volume_mm3 == pytest.approx(1_612_800.0)


# -- 2. labels that exist nowhere ----------------------------------------------------------------

def test_volumes_warns_when_the_labels_exist_nowhere(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # relative path: no digits of tmp_path in the messages
    save(tmp_path / "mask.nii.gz", grid(BASE, np.s_[20:25, 20:25, 5:10], labels=(2, 3)))
    code, out, err = run(capsys, "volumes", "mask.nii.gz", "--labels", "4", "--format", "json")
    assert code == EXIT_OK
    assert json.loads(out)["lesion_count"] == 0
    assert re.search(r"\b4\b", err), err                            # the labels asked for
    assert re.search(r"\b2\b", err) and re.search(r"\b3\b", err), err  # the labels present
    code, _, err = run(capsys, "volumes", "mask.nii.gz", "--labels", "brats-et")  # {4}
    assert code == EXIT_OK and "label" in err.lower()
    code, _, err = run(capsys, "volumes", "mask.nii.gz", "--labels", "2,3")
    assert code == EXIT_OK and err.strip() == ""                   # present: no warning


def label_cohort(folder, subjects):
    lines = ["subject_id,timepoint,days_from_baseline,mask_path"]
    for sid, (first, second) in subjects.items():
        for tp, d, data in (("baseline", 0, first), ("week", 56, second)):
            save(folder / f"{sid.lower()}_{tp}.nii.gz", data)
            lines.append(f"{sid},{tp},{d},{sid.lower()}_{tp}.nii.gz")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "manifest.csv"


OTHER = np.s_[20:30, 20:30, 5:15]


@pytest.mark.slow
def test_run_fails_a_subject_without_the_labels_and_a_vanishing_label_is_cr(capsys, tmp_path):
    man = label_cohort(tmp_path, {
        "AA": (grid(BASE, labels=(4,)), grid(SHRUNK, labels=(4,))),
        "BB": (grid(BASE, labels=(2,)), grid(BASE, labels=(2,))),          # never holds 4
        "CC": (grid(BASE, OTHER, labels=(4, 2)), grid(OTHER, labels=(2,))),  # 4 gone: CR
    })
    out = tmp_path / "out"
    code, _, err = run(capsys, "run", man, "--out", out, "--labels", "4", "--jobs", "1",
                            "--no-qc", "--quiet")
    assert code == EXIT_PARTIAL, err
    subjects = subjects_of(out)
    assert [subjects[s]["status"] for s in ("AA", "BB", "CC")] == ["ok", "failed", "ok"]
    error = subjects["BB"]["error"].replace(str(tmp_path), "")
    assert re.search(r"\b2\b", error), error                     # the labels found
    tps = read_text_table(out / "timepoints.csv")
    cc = tps[(tps.subject_id == "CC") & (tps.timepoint == "week")]
    assert list(cc.category) == ["CR"]


@pytest.mark.slow
def test_run_where_no_mask_holds_the_labels_is_refused_before_any_work(capsys, tmp_path):
    man = label_cohort(tmp_path, {
        "AA": (grid(BASE, labels=(2,)), grid(SHRUNK, labels=(2,))),
        "BB": (grid(BASE, OTHER, labels=(2, 3)), grid(OTHER, labels=(3,))),
    })
    out = tmp_path / "out"
    code, _, err = run(capsys, "run", man, "--out", out, "--labels", "brats-et", "--jobs", "1",
                       "--no-qc", "--quiet")
    assert code == EXIT_INPUT and not (out / "subjects.csv").exists()
    cleaned = err.replace(str(tmp_path), "")
    assert re.search(r"\b2\b", cleaned) and re.search(r"\b3\b", cleaned), err


# -- 3. European CSVs ----------------------------------------------------------------------------

def two_subject_cohort(folder, sep, day8, pfs_rows):
    save(folder / "a0.nii.gz", grid(BASE))
    save(folder / "a1.nii.gz", grid(SHRUNK))
    man = [sep.join(["subject_id", "timepoint", "days_from_baseline", "mask_path"])]
    for sid in ("AA", "BB"):
        man += [sep.join([sid, "baseline", "0", "a0.nii.gz"]),
                sep.join([sid, "week8", day8, "a1.nii.gz"])]
    (folder / "manifest.csv").write_text("\n".join(man) + "\n", encoding="utf-8")
    pfs = [sep.join(["subject_id", "pfs_days", "pfs_event"])] + [sep.join(r) for r in pfs_rows]
    (folder / "pfs.csv").write_text("\n".join(pfs) + "\n", encoding="utf-8")
    return folder / "manifest.csv", folder / "pfs.csv"


@pytest.mark.slow
@pytest.mark.parametrize("sep, decimal", [(";", ","), ("\t", ".")], ids=["semicolon", "tab"])
def test_semicolon_and_tab_csvs_with_decimal_comma(capsys, tmp_path, sep, decimal):
    man, pfs = two_subject_cohort(tmp_path, sep, f"56{decimal}5",
                                  [("AA", f"409{decimal}5", "0"), ("BB", "120", "1")])
    out = tmp_path / "out"
    extra = ["--decimal", ","] if decimal == "," else []
    code, _, err = run(capsys, "run", man, "--pfs", pfs, "--out", out, *extra, "--jobs", "1",
                       "--no-qc", "--quiet")
    assert code == EXIT_OK, err
    subjects = subjects_of(out)
    assert float(subjects["AA"]["pfs_days"]) == 409.5 and subjects["AA"]["pfs_event"] == "False"
    assert float(subjects["BB"]["pfs_days"]) == 120.0 and subjects["BB"]["pfs_event"] == "True"
    tps = read_text_table(out / "timepoints.csv")
    assert sorted({float(d) for d in tps.days_from_baseline}) == [0.0, 56.5]


@pytest.mark.slow
def test_decimal_comma_without_the_option_is_never_silent(capsys, tmp_path):
    man, pfs = two_subject_cohort(tmp_path, ";", "56",
                                  [("AA", "409,5", "0"), ("BB", "120", "1")])
    out = tmp_path / "out"
    code, _, err = run(capsys, "run", man, "--pfs", pfs, "--out", out, "--jobs", "1",
                       "--no-qc", "--quiet")
    assert "found: subject_id;" not in err        # the delimiter was detected
    if code == EXIT_INPUT:
        assert "--decimal" in err
        return
    subjects = subjects_of(out)
    cohort = json.loads((out / "cohort.json").read_text(encoding="utf-8"))
    read_right = subjects["AA"]["pfs_days"] != "" and float(subjects["AA"]["pfs_days"]) == 409.5
    assert read_right or "--decimal" in err + json.dumps(cohort.get("pfs_table")), err


# -- 4. one bad file among good ones; a pipe into head -------------------------------------------

@pytest.fixture
def three(tmp_path):
    save(tmp_path / "good_a.nii.gz", grid(BASE))
    save(tmp_path / "good_c.nii.gz", grid(GROWN))
    gz = gzip.compress(nifti_bytes(grid(BASE), aff((1.0, 1.0, 1.0))), mtime=0)
    (tmp_path / "bad_b.nii.gz").write_bytes(gz[: len(gz) // 2])
    return [tmp_path / n for n in ("good_a.nii.gz", "bad_b.nii.gz", "good_c.nii.gz")]


@pytest.mark.parametrize("fmt", ["table", "csv"])
def test_volumes_prints_every_good_file_and_exits_1(capsys, three, fmt):
    code, out, err = run(capsys, "volumes", *three, "--format", fmt)
    assert code == EXIT_INPUT
    assert "good_a.nii.gz" in out and "good_c.nii.gz" in out
    assert "bad_b.nii.gz" in err and "bad_b.nii.gz" not in out
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        vols = {Path(r["path"]).name: float(r["volume_mm3"]) for r in rows}
        assert vols == {"good_a.nii.gz": 1000.0, "good_c.nii.gz": 2000.0}


@pytest.mark.slow
def test_volumes_exit_code_in_a_subprocess(three):
    proc = subprocess.run([sys.executable, "-m", "cnsvol_cli", "volumes", *map(str, three)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert "good_a.nii.gz" in proc.stdout and "good_c.nii.gz" in proc.stdout
    assert "bad_b.nii.gz" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["table", "csv"])
def test_volumes_into_head_prints_no_traceback(tmp_path, fmt):
    # 4000 one-voxel lesions (stride 2): far more output than a pipe buffer holds
    data = np.zeros((40, 40, 20), np.uint8)
    data[::2, ::2, ::2] = 1
    path = save(tmp_path / "many.nii.gz", data)
    cmd = (f"'{sys.executable}' -m cnsvol_cli volumes --format {fmt} '{path}' '{path}' "
           f"2>'{tmp_path / 'err.txt'}' | head -1")
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, check=False)
    err = (tmp_path / "err.txt").read_text()
    assert len(proc.stdout.splitlines()) == 1
    assert "Traceback" not in err and "BrokenPipe" not in err, err


# -- 5. CLI consistency --------------------------------------------------------------------------

# baseline: a 20 x 20 x 10 mm target (4000 mm3, 28.3 mm axial) + a 2 x 2 x 2 mm non-target
# (8 mm3, 2.83 mm); follow-up: target 10 x 20 x 10 (2000 mm3), non-target 4 x 4 x 4 (64 mm3).
# target change -2000 mm3 = -50.0%; total 4008 -> 2064: -1944 mm3 = -48.503%
TGT0, TGT1 = np.s_[5:25, 5:25, 5:15], np.s_[5:15, 5:25, 5:15]
NT0, NT1 = np.s_[30:32, 30:32, 5:7], np.s_[30:34, 30:34, 5:9]


@pytest.fixture
def pair(tmp_path):
    return (save(tmp_path / "base.nii.gz", grid(TGT0, NT0)),
            save(tmp_path / "follow.nii.gz", grid(TGT1, NT1)))


def test_compare_table_prints_total_and_target_change(capsys, pair):
    code, out, err = run(capsys, "compare", *pair, "--format", "json")
    assert code == EXIT_OK, err
    doc = json.loads(out)
    assert doc["percent_change"] == pytest.approx(-50.0)
    assert doc["total_percent_change"] == pytest.approx(-1944 / 4008 * 100)
    code, out, err = run(capsys, "compare", *pair)
    assert code == EXIT_OK, err
    lines = [ln.lower() for ln in out.splitlines() if not ln.strip().lower().startswith("category")]
    assert any("total" in ln and "-48.5" in ln for ln in lines), out
    assert any("target" in ln and "-50.0" in ln for ln in lines), out


def test_compare_csv_one_row_per_timepoint(capsys, pair):
    code, out, err = run(capsys, "compare", *pair, "--format", "csv")
    assert code == EXIT_OK, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 2
    nums = [[n for k, v in r.items() if k and "path" not in k.lower() for n in floats(v or "")]
            for r in rows]
    for row, total, target in ((0, 4008.0, 4000.0), (1, 2064.0, 2000.0)):
        assert total in nums[row] and target in nums[row], rows[row]


@pytest.mark.parametrize("cmd", [[], *([c] for c in ("volumes", "compare", "track", "run",
                                                      "report", "manifest"))],
                         ids=lambda c: c[0] if c else "top")
def test_no_literal_double_percent_in_help(capsys, cmd):
    code, out, _ = run(capsys, *cmd, "--help")
    assert code == EXIT_OK and out
    assert "%%" not in out


def test_debug_after_the_subcommand(capsys, tmp_path):
    missing = tmp_path / "missing.nii.gz"
    code, _, err = run(capsys, "volumes", "--debug", missing)
    assert code == EXIT_INPUT and "Traceback" in err and "missing.nii.gz" in err
    code, _, err = run(capsys, "compare", missing, missing, "--debug")
    assert code == EXIT_INPUT and "Traceback" in err
    code, _, err = run(capsys, "volumes", missing)
    assert code == EXIT_INPUT and "Traceback" not in err


# -- reconciliation of imaging with the PFS record (lin2009; scans at days 0, 56, 112) -----------

KINDS = {"pfs_event_before_imaging_progression", "censored_after_imaging_progression",
         "imaging_progression_long_before_pfs_event", "event_before_response_scan",
         "clinical_progression_no_imaging_pd"}
KEYS = {"subject_id", "kind", "imaging_progression_days", "pfs_days", "pfs_event", "message"}
RECON = {
    #  id        masks at 0 / 56 / 112     pfs   event  imaging PD
    "PEARLY": ((BASE, BASE, GROWN), 60, 1),     # PD 112; event 52 days earlier (> 14)
    "PNEAR": ((BASE, BASE, GROWN), 100, 1),     # PD 112; event 12 days earlier (<= 14): fine
    "PCENS": ((BASE, GROWN, GROWN), 200, 0),    # PD 56; censored at 200
    "PLONG": ((BASE, GROWN, GROWN), 300, 1),    # PD 56; event 244 days later
    "PRESP": ((BASE, SHRUNK, SHRUNK), 30, 1),   # PR at 56; event at 30, before the response scan
    "PCLIN": ((BASE, BASE, BASE), 150, 1),      # SD throughout; event: clinical progression
    "OKPD": ((BASE, BASE, GROWN), 112, 1),      # consistent
    "OKSD": ((BASE, BASE, BASE), 200, 0),       # consistent
    "OKRESP": ((BASE, SHRUNK, SHRUNK), 250, 0),  # consistent
}
EXPECTED = {
    "PEARLY": ("pfs_event_before_imaging_progression", 112, 60, True),
    "PCENS": ("censored_after_imaging_progression", 56, 200, False),
    "PLONG": ("imaging_progression_long_before_pfs_event", 56, 300, True),
    "PRESP": ("event_before_response_scan", None, 30, True),
    "PCLIN": ("clinical_progression_no_imaging_pd", None, 150, True),
}


@pytest.fixture(scope="module")
def recon_cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recon")
    lines = ["subject_id,timepoint,days_from_baseline,mask_path"]
    pfs = ["subject_id,pfs_days,pfs_event"]
    for sid, (masks, days, event) in RECON.items():
        for k, (tp, d) in enumerate((("baseline", 0), ("week8", 56), ("week16", 112))):
            name = f"{sid.lower()}_{tp}.nii.gz"
            save(folder / name, grid(masks[k]))
            lines.append(f"{sid},{tp},{d},{name}")
        pfs.append(f"{sid},{days},{event}")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "pfs.csv").write_text("\n".join(pfs) + "\n", encoding="utf-8")
    return folder


def run_recon(folder, name, *extra):
    out = folder / name
    if not (out / "cohort.json").exists():   # one run per option set, shared by the tests
        code = run(None, "run", folder / "manifest.csv", "--pfs", folder / "pfs.csv", "--out",
                   out, "--jobs", "1", "--no-qc", "--quiet", *extra)[0]
        assert code == EXIT_OK
    return out, json.loads((out / "cohort.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_cohort_json_lists_each_discrepancy_kind(recon_cohort):
    out, cohort = run_recon(recon_cohort, "default")
    subjects = subjects_of(out)   # the cohort is as built: imaging PD days, the responders
    for sid, pd_day in (("PEARLY", 112), ("PCENS", 56), ("PLONG", 56), ("OKPD", 112)):
        assert float(subjects[sid]["progression_days"]) == pd_day
    assert all(subjects[s]["progression_days"] == "" for s in ("PRESP", "PCLIN", "OKSD", "OKRESP"))
    assert subjects["PRESP"]["best_response"] == "PR" == subjects["OKRESP"]["best_response"]
    entries = cohort["pfs_imaging_discrepancies"]
    assert isinstance(entries, list)
    for e in entries:
        assert set(e) >= KEYS and e["kind"] in KINDS and isinstance(e["message"], str)
    by_id = {e["subject_id"]: e for e in entries}
    assert len(by_id) == len(entries)                      # one object per subject
    assert set(by_id) == set(EXPECTED), by_id             # PNEAR within 14 days; OK* consistent
    for sid, (kind, pd_day, days, event) in EXPECTED.items():
        e = by_id[sid]
        assert e["kind"] == kind, e
        assert e["imaging_progression_days"] == (None if pd_day is None else pytest.approx(pd_day))
        assert e["pfs_days"] == pytest.approx(days) and bool(e["pfs_event"]) is event
    clin = by_id["PCLIN"]["message"]
    assert "clinical progression (no imaging PD)" in clin and "error" not in clin.lower()


@pytest.mark.slow
def test_pfs_reconciliation_csv_matches_cohort_json(recon_cohort):
    out, cohort = run_recon(recon_cohort, "default")
    table = read_text_table(out / "pfs_reconciliation.csv")
    assert set(KEYS) <= set(table.columns)
    listed = table[table.kind.isin(KINDS)]
    assert sorted(zip(listed.subject_id, listed.kind)) == sorted(
        (e["subject_id"], e["kind"]) for e in cohort["pfs_imaging_discrepancies"])
    row = listed[listed.subject_id == "PEARLY"].iloc[0]
    assert float(row.imaging_progression_days) == 112 and float(row.pfs_days) == 60
    row = listed[listed.subject_id == "PCLIN"].iloc[0]
    assert row.imaging_progression_days == ""
    assert "clinical progression (no imaging PD)" in row.message
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "clinical progression (no imaging PD)" in report
    assert "PEARLY" in report and re.search(r"reconcil|discrepanc", report, re.IGNORECASE)


@pytest.mark.slow
def test_pfs_tolerance_option(recon_cohort):
    _, cohort = run_recon(recon_cohort, "tol60", "--pfs-tolerance-days", "60")
    by_id = {e["subject_id"]: e["kind"] for e in cohort["pfs_imaging_discrepancies"]}
    assert "PEARLY" not in by_id                     # 52 days <= 60
    assert by_id["PCENS"] == "censored_after_imaging_progression"
    assert by_id["PLONG"] == "imaging_progression_long_before_pfs_event"   # 244 > 60
    _, cohort = run_recon(recon_cohort, "tol7", "--pfs-tolerance-days", "7")
    by_id = {e["subject_id"]: e["kind"] for e in cohort["pfs_imaging_discrepancies"]}
    assert by_id["PNEAR"] == "pfs_event_before_imaging_progression"       # 12 > 7
    assert by_id["PEARLY"] == "pfs_event_before_imaging_progression"


@pytest.mark.slow
def test_demo_pfs_table_has_exactly_two_deliberate_discrepancies(capsys, tmp_path):
    out = tmp_path / "out"
    code, _, err = run(capsys, "run", DEMO / "manifest.csv", "--pfs", DEMO / "pfs.csv",
                       "--out", out, "--jobs", "2", "--no-qc", "--quiet")
    assert code == EXIT_PARTIAL, err      # S07's corrupt mask
    cohort = json.loads((out / "cohort.json").read_text(encoding="utf-8"))
    real = [e for e in cohort["pfs_imaging_discrepancies"]
            if e["kind"] != "clinical_progression_no_imaging_pd"]
    assert len(real) == 2, real
    assert (out / "pfs_reconciliation.csv").is_file()
