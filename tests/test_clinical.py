"""PFS tables: formats, column names, event codes, units, every error at once, the join."""

from __future__ import annotations

import pandas as pd
import pytest

from cnsvol.cohort import join_ids, parse_event, read_pfs
from cnsvol.errors import ClinicalError


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_with_defaults_and_word_events(tmp_path):
    p = write(tmp_path, "pfs.csv", "subject_id,pfs_days,pfs_event,arm\n007,120,progressed,A\n"
              "008,300.5,censored,B\n009,45,1,A\n010,60,False,B\n")
    t = read_pfs(p)
    f = t.frame
    assert list(f["subject_id"]) == ["007", "008", "009", "010"]  # ids stay text: 007 not 7
    assert list(f["pfs_event"]) == [True, False, True, False]
    assert list(f["pfs_days"]) == [120.0, 300.5, 45.0, 60.0]
    assert list(f["arm"]) == ["A", "B", "A", "B"]


@pytest.mark.parametrize("unit, factor", [("days", 1.0), ("weeks", 7.0), ("months", 30.4375)])
def test_time_units_convert_to_days(tmp_path, unit, factor):
    p = write(tmp_path, "pfs.tsv", "pid\tt\tev\n1\t2\t1\n")
    t = read_pfs(p, id_col="pid", time_col="t", event_col="ev", arm_col=None, time_unit=unit)
    assert t.frame["pfs_days"].iloc[0] == pytest.approx(2 * factor)


def test_excel_and_parquet(tmp_path):
    frame = pd.DataFrame({"subject_id": ["a", "b"], "pfs_days": [10, 20], "pfs_event": [1, 0]})
    xlsx = tmp_path / "pfs.xlsx"
    frame.to_excel(xlsx, index=False)
    assert list(read_pfs(xlsx).frame["pfs_event"]) == [True, False]
    pq = tmp_path / "pfs.parquet"
    frame.to_parquet(pq)
    assert list(read_pfs(pq).frame["pfs_days"]) == [10.0, 20.0]


def test_every_problem_is_reported_at_once(tmp_path):
    p = write(tmp_path, "bad.csv", "subject_id,pfs_days,pfs_event\na,10,1\na,20,0\nb,,1\n"
              "c,-5,1\nd,abc,0\ne,30,maybe\n")
    with pytest.raises(ClinicalError) as info:
        read_pfs(p)
    msg = str(info.value)
    for part in ("bad.csv", "duplicate subject id(s) a", "missing pfs_days for b",
                 "negative pfs_days: c=-5", "non-numeric pfs_days: d='abc'", "'maybe'"):
        assert part in msg


def test_missing_columns_name_the_options(tmp_path):
    p = write(tmp_path, "pfs.csv", "id,time,event\n1,2,1\n")
    with pytest.raises(ClinicalError, match="missing column.*subject_id.*--id-col"):
        read_pfs(p)


def test_missing_arm_column_is_a_note_not_an_error(tmp_path):
    p = write(tmp_path, "pfs.csv", "subject_id,pfs_days,pfs_event\n1,2,1\n")
    t = read_pfs(p)
    assert t.frame["arm"].isna().all() and "no 'arm' column" in t.notes[0]


def test_non_utf8_is_a_clear_error(tmp_path):
    p = tmp_path / "pfs.csv"
    p.write_bytes("subject_id,pfs_days,pfs_event\nM\xfcller,2,1\n".encode("latin-1"))
    with pytest.raises(ClinicalError, match="not valid UTF-8"):
        read_pfs(p)


def test_parse_event_vocabulary():
    assert parse_event("Progressed") is True and parse_event(" censored ") is False
    assert parse_event("1.0") is True and parse_event("0") is False
    assert parse_event("unknown") is None


def test_join_reports_both_directions():
    assert join_ids(["a", "b", "c"], ["b", "c", "d"]) == (["a"], ["d"])


def test_rows_with_problems_set_their_ids_aside_and_the_rest_is_used(tmp_path):
    """A duplicated id (every row of it), a negative, missing or non-numeric time, an unknown
    event code or an empty id cost that row's subject its PFS, listed with the rows; the other
    subjects keep theirs, exactly."""
    p = write(tmp_path, "pfs.csv", "subject_id,pfs_days,pfs_event,arm\nA,100,1,x\nDUP,50,1,x\n"
              "B,200,0,y\nDUP,80,0,x\nNEG,-30,1,y\n,10,1,x\nCODE,20,maybe,x\nNOTIME,,1,x\n"
              " C ,7 ,censored,\n")
    t = read_pfs(p)
    f = t.frame
    assert list(f["subject_id"]) == ["A", "B", "C"]  # spaces around cells are not part of ids
    assert list(f["pfs_days"]) == [100.0, 200.0, 7.0]
    assert list(f["pfs_event"]) == [True, False, False]
    assert t.set_aside == {
        "CODE": "unknown pfs_event code 'maybe' (row 8)",
        "DUP": "duplicate subject id on rows 3, 5",
        "NEG": "negative pfs_days: NEG=-30 (row 6)",
        "NOTIME": "missing pfs_days for NOTIME (row 9)",
    }
    note = t.notes[-1]
    for part in ("pfs.csv", "4 subject id(s) set aside, analysed without PFS",
                 "empty subject id on row(s) 7", "duplicate subject id(s) DUP (rows 3, 5)",
                 "negative pfs_days: NEG=-30 (row 6)", "'maybe' on row(s) 8",
                 "Fix these rows of pfs.csv"):
        assert part in note, part
    # what is used does not depend on the rows set aside
    clean = write(tmp_path, "clean.csv", "subject_id,pfs_days,pfs_event,arm\nA,100,1,x\n"
                  "B,200,0,y\nC,7,censored,\n")
    pd.testing.assert_frame_equal(read_pfs(clean).frame, f)
    assert read_pfs(clean).set_aside == {} and read_pfs(clean).notes == ()


def test_a_table_without_a_single_usable_row_is_refused(tmp_path):
    p = write(tmp_path, "pfs.csv", "subject_id,pfs_days,pfs_event\na,-1,1\nb,2,perhaps\n")
    with pytest.raises(ClinicalError, match="pfs.csv: no usable row: negative pfs_days: a=-1"):
        read_pfs(p)
