"""The command line as documented: exit codes 0 ok / 1 input error / 2 usage / 3 run finished with
failed subjects, enum values printed as the same plain strings, and ``cnsvol report DIR``
rebuilding the report from a results folder.

In-process through the console entry point named in pyproject.toml (``main(argv)``).
Hand-derived numbers: voxels of 1.0 x 0.5 x 1.5 mm (0.75 mm3); a 12 x 20 x 4 voxel box is
720 mm3, its half 360 mm3: -50%, PR.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from helpers import nifti_bytes, write_nifti, box, cli_main, grid_affine

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "fixtures" / "demo"
EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


def run(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = cli_main()(list(argv))
    except SystemExit as exc:  # argparse exits on usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def files(tmp_path):
    aff = grid_affine()
    full = write_nifti(tmp_path / "full.nii.gz", box(2, 14, 2, 22, 2, 6), aff)
    half = write_nifti(tmp_path / "half.nii.gz", box(2, 8, 2, 22, 2, 6), aff)
    raw = gzip.compress(nifti_bytes(box(2, 14, 2, 22, 2, 6), aff), mtime=0)
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(raw[: len(raw) // 2])
    return {"full": full, "half": half, "corrupt": corrupt, "dir": tmp_path}


def manifest(folder: Path, subjects: dict[str, tuple[str, str]]) -> Path:
    lines = ["subject_id,timepoint,days_from_baseline,mask_path"]
    for sid, (first, second) in subjects.items():
        lines += [f"{sid},baseline,0,{first}.nii.gz", f"{sid},week8,56,{second}.nii.gz"]
    path = folder / "manifest.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- exit codes

def test_usage_errors_exit_2(capsys, files):
    code, _, _ = run(capsys, "run", str(manifest(files["dir"], {"A": ("full", "half")})))
    assert code == EXIT_USAGE  # --out is required
    code, _, _ = run(capsys, "no-such-command")
    assert code == EXIT_USAGE


def test_missing_manifest_exits_1_naming_the_file(capsys, tmp_path):
    missing = tmp_path / "nowhere.csv"
    code, _, err = run(capsys, "run", str(missing), "--out", str(tmp_path / "out"), "--quiet")
    assert code == EXIT_INPUT
    assert "nowhere.csv" in err
    assert not (tmp_path / "out" / "subjects.csv").exists()


def test_invalid_criteria_file_stops_the_run_before_any_work(capsys, files):
    bad = files["dir"] / "bad.toml"
    bad.write_text('extends = "lin2009"\nno_such_field = 3\n', encoding="utf-8")
    out = files["dir"] / "out"
    code, _, err = run(capsys, "run", str(manifest(files["dir"], {"A": ("full", "half")})),
                       "--out", str(out), "--criteria", str(bad), "--no-qc", "--quiet")
    assert code == EXIT_INPUT
    assert "bad.toml" in err and "no_such_field" in err
    assert not (out / "subjects.csv").exists()


@pytest.mark.slow
def test_run_exit_0_when_every_subject_succeeds_and_3_when_one_fails(capsys, files):
    ok = manifest(files["dir"], {"A": ("full", "half"), "B": ("full", "full")})
    code, _, err = run(capsys, "run", str(ok), "--out", str(files["dir"] / "ok"), "--jobs", "1",
                       "--no-qc", "--quiet")
    assert code == EXIT_OK, err
    partial = manifest(files["dir"], {"A": ("full", "half"), "B": ("full", "corrupt")})
    code, out, err = run(capsys, "run", str(partial), "--out", str(files["dir"] / "partial"),
                         "--jobs", "1", "--no-qc", "--quiet")
    assert code == EXIT_PARTIAL
    assert "B" in out + err and "corrupt.nii.gz" in out + err


@pytest.mark.slow
def test_demo_cohort_exits_3_with_s07_failed(capsys, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = run(capsys, "run", str(DEMO / "manifest.csv"), "--out", str(out),
                               "--pfs", str(DEMO / "pfs.csv"), "--jobs", "1", "--no-qc", "--quiet")
    assert code == EXIT_PARTIAL
    assert "S07" in stdout + stderr
    cohort = json.loads((out / "cohort.json").read_text(encoding="utf-8"))
    assert cohort["failed_ids"] == ["S07"] and cohort["n_subjects"] == 30
    assert cohort["ids_without_pfs"] == ["S30"]


@pytest.mark.slow
def test_report_rebuilds_the_report_from_a_results_folder(capsys, files):
    out = files["dir"] / "out"
    ok = manifest(files["dir"], {"A": ("full", "half"), "B": ("full", "full")})
    code, _, err = run(capsys, "run", str(ok), "--out", str(out), "--jobs", "1", "--no-qc",
                       "--quiet")
    assert code == EXIT_OK, err
    (out / "report.html").unlink()
    code, _, err = run(capsys, "report", str(out))
    assert code == EXIT_OK, err
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "A" in html and "PR" in html


def test_report_on_a_folder_without_results_exits_1(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, "report", str(empty))
    assert code == EXIT_INPUT
    assert "empty" in err


# --------------------------------------------------------------------------- strings unchanged

def test_compare_json_prints_plain_category_and_status_strings(capsys, files):
    code, out, err = run(capsys, "compare", str(files["full"]), str(files["half"]),
                         "--format", "json", "--criteria", "tbcrc022")
    assert code == EXIT_OK, err
    doc = json.loads(out)
    assert doc["category"] == "PR" and doc["reason_code"] == "partial_response"
    assert doc["percent_change"] == pytest.approx(-50.0)
    assert doc["baseline"]["total_volume_mm3"] == pytest.approx(720.0)
    assert [t["status"] for t in doc["tracks"]] == ["matched"]
    assert "Category." not in out and "TrackStatus." not in out and "ReasonCode." not in out


def test_track_json_prints_plain_strings(capsys, files):
    code, out, err = run(capsys, "track", str(files["full"]), str(files["half"]),
                         "--days", "0,56", "--format", "json")
    assert code == EXIT_OK, err
    doc = json.loads(out)
    assert doc["timepoints"][1]["category"] == "PR"
    assert doc["subject"]["best_response"] == "PR"
    assert {t["status"] for t in doc["tracks"]} == {"baseline", "matched"}
    assert "Category." not in out and "TrackStatus." not in out
