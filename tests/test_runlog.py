"""run.log: one line per subject whatever its id and error hold."""

from __future__ import annotations

from cnsvol import SubjectResult
from cnsvol.batch.runlog import RunLog


def test_an_id_with_a_newline_cannot_forge_a_line(tmp_path):
    log = RunLog(tmp_path / "run.log")
    forged = "S1\n2026-01-01T00:00:00+00:00\tS2\tok\t0.1s"
    log.subject(SubjectResult.failed(forged, 2, "MaskError: bad\tfile\nsecond line"), 0.5)
    log.close()
    lines = (tmp_path / "run.log").read_text("utf-8").splitlines()
    assert len(lines) == 3  # run started, the subject, run ended
    fields = lines[1].split("\t")
    assert fields[1] == "S1\\n2026-01-01T00:00:00+00:00\\tS2\\tok\\t0.1s"
    assert fields[2:] == ["failed", "0.500s", "MaskError: bad\\tfile\\nsecond line"]


def test_qc_pictures_of_subjects_no_longer_in_the_run_are_removed(tmp_path):
    import numpy as np
    import nibabel as nib

    from cnsvol_cli.main import main

    data = np.zeros((30, 30, 10), np.uint8)
    data[5:17, 5:17, 2:5] = 1
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "m.nii.gz"))
    rows = "".join(f"{s},{t},{d},m.nii.gz\n" for s in ("A", "B") for t, d in (("b", 0), ("w", 56)))
    man = tmp_path / "manifest.csv"
    man.write_text("subject_id,timepoint,days_from_baseline,mask_path\n" + rows)
    out = tmp_path / "out"
    assert main(["run", str(man), "--out", str(out), "--jobs", "1", "--quiet"]) == 0
    qc = out / "figures" / "qc"
    assert sorted(p.name for p in qc.glob("*.png")) == ["A.png", "B.png"]
    man.write_text("subject_id,timepoint,days_from_baseline,mask_path\n"
                   + "".join(r + "\n" for r in rows.splitlines() if r.startswith("A")))
    assert main(["run", str(man), "--out", str(out), "--jobs", "1", "--quiet"]) == 0
    assert sorted(p.name for p in qc.glob("*.png")) == ["A.png"]  # B withdrawn: gone
    assert main(["run", str(man), "--out", str(out), "--jobs", "1", "--quiet", "--no-qc"]) == 0
    assert list(qc.glob("*.png")) == []  # a run without QC leaves no picture of another run
