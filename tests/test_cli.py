"""The command line, in-process through ``main(argv)`` and once as a real subprocess."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cnsvol_cli.main import EXIT_INPUT_ERROR, EXIT_OK, EXIT_USAGE, main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BASE = str(FIXTURES / "pair" / "baseline.nii.gz")
FOLLOW = str(FIXTURES / "pair" / "followup.nii.gz")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_volumes_json_shape(capsys):
    code, out, err = run(capsys, "volumes", BASE, "--format", "json")
    assert code == EXIT_OK, err
    doc = json.loads(out)
    assert doc["path"] == BASE and doc["lesion_count"] == 3
    lesion = doc["lesions"][0]
    assert set(lesion) >= {
        "lesion_id", "voxel_count", "volume_mm3", "centroid_ras_mm", "longest_diameter_mm",
        "measurable",
    }
    # 1.0 x 1.0 x 1.5 mm voxels
    assert doc["total_volume_mm3"] == pytest.approx(1.5 * sum(x["voxel_count"] for x in doc["lesions"]))


def test_volumes_several_files_give_a_list(capsys):
    code, out, _ = run(capsys, "volumes", BASE, FOLLOW, "--format", "json")
    assert code == EXIT_OK
    docs = json.loads(out)
    assert [d["path"] for d in docs] == [BASE, FOLLOW]


def test_volumes_csv_and_table(capsys):
    code, out, _ = run(capsys, "volumes", BASE, "--format", "csv", "--min-volume-mm3", "200")
    assert code == EXIT_OK
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 2 and all(float(r["volume_mm3"]) >= 200 for r in rows)
    code, out, _ = run(capsys, "volumes", BASE)
    assert code == EXIT_OK and "3 lesion(s)" in out and "measurable" in out


def test_compare_json_shape(capsys):
    code, out, err = run(capsys, "compare", BASE, FOLLOW, "--format", "json", "--criteria", "tbcrc022")
    assert code == EXIT_OK, err
    doc = json.loads(out)
    assert set(doc) >= {
        "baseline", "followup", "absolute_change_mm3", "percent_change", "responder_20pct",
        "category", "reason", "criteria", "same_grid",
    }
    assert doc["criteria"] == "tbcrc022" and doc["same_grid"] is True
    b, f = doc["baseline"]["target_volume_mm3"], doc["followup"]["target_volume_mm3"]
    assert doc["percent_change"] == pytest.approx((f - b) / b * 100)
    b, f = doc["baseline"]["total_volume_mm3"], doc["followup"]["total_volume_mm3"]
    assert doc["total_percent_change"] == pytest.approx((f - b) / b * 100)
    # the 7 mm lesion is not measurable, so the target sum leaves it out
    assert doc["baseline"]["target_volume_mm3"] < doc["baseline"]["total_volume_mm3"]
    assert [t["status"] for t in doc["tracks"]] == ["matched"] * 3


def test_compare_table_is_readable(capsys):
    code, out, _ = run(capsys, "compare", BASE, FOLLOW)
    assert code == EXIT_OK
    assert ">=20% reduction" in out and "category" in out and "lin2009" in out


def test_errors_go_to_stderr_without_traceback(capsys, tmp_path):
    missing = str(tmp_path / "missing.nii.gz")
    code, out, err = run(capsys, "volumes", missing)
    assert code == EXIT_INPUT_ERROR and out == ""
    assert "missing.nii.gz" in err and "file not found" in err and "Traceback" not in err
    code, _, err = run(capsys, "--debug", "volumes", missing)
    assert code == EXIT_INPUT_ERROR and "Traceback" in err


def test_bad_criteria_and_bad_usage(capsys):
    code, _, err = run(capsys, "compare", BASE, FOLLOW, "--criteria", "recist")
    assert code == EXIT_INPUT_ERROR and "unknown criteria" in err
    code, _, err = run(capsys, "volumes", BASE, "--connectivity", "8")
    assert code == EXIT_USAGE and "invalid choice" in err
    code, _, err = run(capsys, "compare", BASE)
    assert code == EXIT_USAGE


def test_help_explains_units_and_defaults(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == EXIT_OK and "mm3" in out and "RAS+" in out
    for sub in ("volumes", "compare", "track"):
        code, out, _ = run(capsys, sub, "--help")
        assert code == EXIT_OK
        assert "default" in out and "mm3" in out


@pytest.mark.slow
@pytest.mark.slow
def test_real_subprocess():
    proc = subprocess.run(
        [sys.executable, "-m", "cnsvol_cli", "compare", BASE, FOLLOW, "--format", "json"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["responder_20pct"] is True
    proc = subprocess.run(
        [sys.executable, "-m", "cnsvol_cli", "volumes", "/nonexistent.nii"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 1 and "file not found" in proc.stderr


def test_track_json_shape_and_subject(capsys):
    code, out, err = run(
        capsys, "track", BASE, FOLLOW, BASE, "--days", "0,56,112", "--format", "json",
    )
    assert code == EXIT_OK, err
    doc = json.loads(out)
    assert [t["timepoint"] for t in doc["timepoints"]] == ["T0", "T1", "T2"]
    for t in doc["timepoints"]:
        assert set(t) >= {
            "timepoint", "days_from_baseline", "total_volume_mm3", "percent_change_vs_baseline",
            "percent_change_vs_nadir", "new_lesions", "category", "reason",
        }
    assert set(doc["subject"]) >= {
        "best_response", "best_percent_change", "responder_20pct", "objective_response",
        "time_to_response_days", "progression_days",
    }
    # T2 returns to the baseline volume: +86% vs the nadir at T1 -> PD under lin2009
    assert doc["timepoints"][2]["category"] == "PD"
    assert doc["subject"]["progression_days"] == 112
    assert doc["subject"]["responder_20pct"] is True
    assert {r["track_id"] for r in doc["tracks"]} == {1, 2, 3}


def test_track_clinical_options_and_csv(capsys):
    code, out, err = run(
        capsys, "track", BASE, FOLLOW, "--days", "0,56", "--format", "csv",
        "--steroid-dose-mg", "4,8", "--neuro-status", "stable,stable",
    )
    assert code == EXIT_OK, err
    tp_part, tr_part = out.split("\n\n", 1)
    rows = list(csv.DictReader(io.StringIO(tp_part)))
    assert "steroid dose increased" in rows[1]["reason"]
    assert "volumetric-only" not in rows[1]["reason"]
    assert list(csv.DictReader(io.StringIO(tr_part)))[0]["status"] == "baseline"


def test_track_argument_errors(capsys):
    code, _, err = run(capsys, "track", BASE, FOLLOW, "--days", "0")
    assert code == EXIT_INPUT_ERROR and "--days has 1 values for 2 masks" in err
    code, _, err = run(capsys, "track", BASE, FOLLOW, "--days", "0,x")
    assert code == EXIT_USAGE and "not a number" in err
    code, _, err = run(capsys, "track", BASE, FOLLOW, "--days", "0,56", "--neuro-status", "ok,bad")
    assert code == EXIT_INPUT_ERROR and "neuro_status" in err
    code, out, _ = run(capsys, "track", BASE, FOLLOW, "--days", "0,56")
    assert code == EXIT_OK and "best overall response" in out


def _write(path, data, spacing=(1.0, 1.0, 1.0)):
    import nibabel as nib
    import numpy as np

    nib.save(nib.Nifti1Image(data, np.diag([*spacing, 1.0])), str(path))
    return str(path)


def test_compare_speck_radiotherapy_window_and_compartments(capsys, tmp_path):
    import numpy as np

    cube = np.zeros((40, 40, 40), np.uint8)
    cube[10:20, 10:20, 10:20] = 1
    speck = cube.copy()
    speck[35, 35, 35] = 1
    grown = np.zeros_like(cube)
    grown[10:24, 10:20, 10:20] = 1  # +40%
    a, b, c = (_write(tmp_path / f"{n}.nii.gz", d) for n, d in
               (("cube", cube), ("speck", speck), ("grown", grown)))
    code, out, err = run(capsys, "compare", a, b, "--format", "json")
    doc = json.loads(out)
    assert code == EXIT_OK and doc["category"] == "SD"
    assert (doc["new_lesions"], doc["equivocal_new_lesions"]) == (1, 1)
    assert doc["nontarget_progression"] is False
    # 70 days after radiotherapy: rano2-vol waits for the next scan; 90 days: PD
    code, out, err = run(capsys, "compare", a, c, "--criteria", "rano2-vol", "--days", "56",
                         "--radiotherapy-end-days", "-14", "--format", "json")
    doc = json.loads(out)
    assert (doc["category"], doc["reason_code"]) == ("SD", "progression_unconfirmed")
    code, out, err = run(capsys, "compare", a, c, "--criteria", "rano2-vol", "--days", "56",
                         "--radiotherapy-end-days", "-34")
    assert "category          PD" in out
    # compartments: the table prints them, the JSON carries them per side
    glioma = np.zeros((30, 30, 12), np.uint8)
    glioma[5:25, 5:25, 2:10] = 2
    glioma[10:20, 10:20, 4:8] = 4
    glioma[13:17, 13:17, 5:7] = 1
    g = _write(tmp_path / "g.nii.gz", glioma)
    code, out, err = run(capsys, "compare", g, g, "--compartments", "brats2021",
                         "--criteria", "rano2-vol", "--format", "json")
    side = json.loads(out)["baseline"]
    assert side["compartment_volumes_mm3"] == {
        "enhancing": 400.0 - 32.0, "nonenhancing": 32.0, "edema": 3200.0 - 400.0}
    assert side["target_volume_mm3"] == 368.0


def test_help_starts_without_numpy():
    """`cnsvol --help` (and every subcommand's parser) is built without importing numpy, so the
    command answers at once."""
    code = ("import sys\nfrom cnsvol_cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "for sub in ('volumes', 'compare', 'track', 'run'):\n"
            "    try:\n        main([sub, '--help'])\n    except SystemExit:\n        pass\n"
            "print('numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_track_and_compare_report_compartments_per_lesion_and_timepoint(capsys, tmp_path):
    import numpy as np

    glioma = np.zeros((30, 30, 12), np.uint8)
    glioma[5:25, 5:25, 2:10] = 2  # oedema 20 x 20 x 8 = 3200 voxels (1 mm3)
    glioma[10:20, 10:20, 4:8] = 4  # enhancing 400 - necrosis 32
    glioma[13:17, 13:17, 5:7] = 1
    g = _write(tmp_path / "g.nii.gz", glioma)
    want = {"enhancing": 368.0, "nonenhancing": 32.0, "edema": 2800.0}
    code, out, err = run(capsys, "track", g, g, "--days", "0,56", "--compartments", "brats2021",
                         "--criteria", "rano2-vol", "--format", "json")
    doc = json.loads(out)
    assert code == EXIT_OK and doc["timepoints"][1]["compartment_volumes_mm3"] == want
    assert [les["compartment_volumes_mm3"] for les in doc["lesions"]] == [want, want]
    code, out, err = run(capsys, "track", g, g, "--days", "0,56", "--compartments", "brats2021",
                         "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out.split("\n\n")[0])))
    assert [float(r["edema_volume_mm3"]) for r in rows] == [2800.0, 2800.0]
    code, out, err = run(capsys, "compare", g, g, "--compartments", "brats2021", "--format", "json")
    side = json.loads(out)["followup"]
    assert side["lesions"][0]["compartment_volumes_mm3"] == want  # whole tumour: one lesion


def test_radiotherapy_end_days_must_be_able_to_act(capsys):
    code, out, err = run(capsys, "compare", BASE, FOLLOW, "--criteria", "rano2-vol",
                         "--radiotherapy-end-days", "-10")
    assert code == EXIT_INPUT_ERROR and "needs --days" in err
    code, out, err = run(capsys, "compare", BASE, FOLLOW, "--days", "56",
                         "--radiotherapy-end-days", "-10")
    assert code == EXIT_INPUT_ERROR and "lin2009 have no radiotherapy rule" in err


def test_volumes_prints_every_good_file_and_reports_each_bad_one(capsys, tmp_path):
    missing = str(tmp_path / "missing.nii.gz")
    code, out, err = run(capsys, "volumes", BASE, missing, FOLLOW, "--format", "csv")
    assert code == EXIT_INPUT_ERROR
    paths = {row["path"] for row in csv.DictReader(io.StringIO(out))}
    assert paths == {BASE, FOLLOW}
    assert f"{missing}: file not found" in err


def test_piping_into_head_prints_no_traceback():
    cmd = (f"{sys.executable} -m cnsvol_cli volumes {BASE} {FOLLOW} {BASE} {FOLLOW} | head -1")
    out = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    assert out.stdout.strip() == BASE
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr


def test_compare_prints_target_and_total_and_takes_csv(capsys):
    code, out, err = run(capsys, "compare", BASE, FOLLOW)
    assert code == EXIT_OK
    assert "target sum " in out and "(what the criteria evaluate)" in out
    assert "total " in out and "(every lesion)" in out
    code, out, err = run(capsys, "compare", BASE, FOLLOW, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == EXIT_OK and [r["timepoint"] for r in rows] == ["baseline", "followup"]


def test_no_double_percent_in_any_help_and_debug_after_the_command(capsys):
    for sub in ("volumes", "compare", "track", "run", "report", "manifest"):
        run(capsys, sub, "--help")  # argparse exits 0
    code, out, err = run(capsys, "--help")
    assert "%%" not in out
    for sub in ("compare", "track"):
        main([sub, "--help"])
        assert "%%" not in capsys.readouterr().out
    code, out, err = run(capsys, "volumes", "/nonexistent.nii.gz", "--debug")
    assert code == EXIT_INPUT_ERROR and "Traceback" in err
