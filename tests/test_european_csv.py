"""Tables written by a European spreadsheet: semicolons between cells, decimal commas."""

from __future__ import annotations

import pytest

from cnsvol import read_manifest, read_pfs
from cnsvol.errors import ClinicalError, ManifestError
from cnsvol_cli.main import main


def test_a_semicolon_pfs_table_is_read_and_decimal_commas_need_the_option(tmp_path):
    path = tmp_path / "pfs.csv"
    path.write_text("subject_id;pfs_days;pfs_event;arm\nS1;409,5;1;A\nS2;120;0;B\n")
    table = read_pfs(path, decimal=",")
    assert table.frame["pfs_days"].tolist() == [409.5, 120.0]
    assert table.frame["arm"].tolist() == ["A", "B"]
    plain = read_pfs(path)  # the delimiter is detected; 409,5 without --decimal is set aside
    assert plain.frame["subject_id"].tolist() == ["S2"]
    assert "non-numeric pfs_days (a decimal comma? give --decimal ,): S1='409,5'" in \
        " ".join(plain.notes)


def test_a_header_with_two_delimiters_is_refused_naming_the_options(tmp_path):
    path = tmp_path / "pfs.csv"
    path.write_text("subject_id,pfs_days;pfs_event\nS1,409;1\n")
    with pytest.raises(ClinicalError, match=r"holds commas and semicolons.*--delimiter.*"
                                            r"--decimal ,"):
        read_pfs(path)
    with pytest.raises(ClinicalError, match=r"missing column\(s\) subject_id, pfs_days \(found: "
                                            r"subject_id,pfs_days, pfs_event\)"):
        read_pfs(path, delimiter=";")  # given: used as is
    # a comma-separated table with a decimal comma in a quoted cell is read too (the manifest
    # and the PFS table share --decimal: a comma manifest must not be refused for it)
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('subject_id,pfs_days,pfs_event\nS1,"409,5",1\n')
    assert read_pfs(quoted, decimal=",").frame["pfs_days"].tolist() == [409.5]
    wrong = tmp_path / "comma.csv"
    wrong.write_text("subject_id,pfs_days,pfs_event\nS1,409,1\n")
    with pytest.raises(ClinicalError, match=r"with --delimiter ';' the PFS table has one column, "
                                            r"'subject_id,pfs_days,pfs_event', that holds commas"):
        read_pfs(wrong, delimiter=";")


def test_a_semicolon_manifest_with_decimal_days(tmp_path):
    for name in ("a.nii.gz", "b.nii.gz"):
        (tmp_path / name).write_bytes(b"x")
    path = tmp_path / "manifest.csv"
    path.write_text("subject_id;timepoint;days_from_baseline;mask_path;steroid_dose_mg\n"
                    "S1;base;0;a.nii.gz;4,5\nS1;wk8;56,5;b.nii.gz;2\n")
    plan = read_manifest(path, decimal=",")[0]
    assert [s.days_from_baseline for s in plan.scans] == [0.0, 56.5]
    assert plan.scans[0].clinical.steroid_dose_mg == 4.5
    with pytest.raises(ManifestError, match=r"days_from_baseline '56,5' is not a number \(a "
                                            r"decimal comma\? give --decimal ,\)"):
        read_manifest(path)


def test_the_run_command_takes_delimiter_and_decimal(tmp_path, capsys):
    bad = tmp_path / "m.csv"
    bad.write_text("subject_id,timepoint;days_from_baseline,mask_path\n")
    code = main(["run", str(bad), "--out", str(tmp_path / "o"), "--decimal", ","])
    err = capsys.readouterr().err
    assert code == 1 and "cannot tell the manifest's delimiter" in err
    assert main(["run", str(bad), "--out", str(tmp_path / "o"), "--delimiter", "|"]) == 2
    assert "must be ',', ';' or tab" in capsys.readouterr().err
    with pytest.raises(ManifestError):  # given ';': read, then refused for its columns
        read_manifest(bad, delimiter=";")
