"""CSV writing: formula neutralisation, quoting, no NaN, atomic replacement."""

from __future__ import annotations

import csv
import math

import pytest

from cnsvol.cohort.tabular import read_table, show_undecodable, undecodable_bytes
from cnsvol.csvformat import safe_cell, write_csv


def test_formula_cells_are_neutralised_but_numbers_are_not():
    assert safe_cell("=cmd|' /C calc'!A0") == "'=cmd|' /C calc'!A0"
    assert safe_cell("+SUM(A1)") == "'+SUM(A1)" and safe_cell("@x") == "'@x"
    assert safe_cell("-12.5") == "-12.5" and safe_cell(-12.5) == "-12.5"
    assert safe_cell(None) == "" and safe_cell("plain") == "plain"
    with pytest.raises(ValueError):
        safe_cell(math.inf)


def test_write_csv_round_trips_hostile_text(tmp_path):
    rows = [{"id": 'a,"b"\nc', "v": 1.5}, {"id": "<script>", "v": None}, {"id": "=1+1", "v": float("nan")}]
    path = tmp_path / "t.csv"
    write_csv(path, rows, ["id", "v"])
    back = list(csv.DictReader(path.open(newline="")))
    assert back[0] == {"id": 'a,"b"\nc', "v": "1.5"}
    assert back[1] == {"id": "<script>", "v": ""}
    assert back[2] == {"id": "'=1+1", "v": ""}
    assert not list(tmp_path.glob(".t.csv.*"))  # no temporary file left behind


@pytest.mark.parametrize("text", ["-1_000", "-\u0661\u0662", "- 1", "+1e", "-inf", "-nan",
                                  "=1", "+A1", "@x", "-1+1", "\t1", "\r1"])
def test_text_that_only_float_would_call_a_number_is_guarded(text):
    """A spreadsheet reads ASCII decimal numbers only; Python's float also accepts 1_000,
    other scripts' digits and inf/nan, none of which may pass unguarded."""
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("text", ["-12", "+3.5", "-.5", "-1e-05", "-2E+3", "12."])
def test_numbers_are_left_alone(text):
    assert safe_cell(text) == text


def test_cells_are_stripped_whatever_the_pandas_string_type(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("subject_id,v\n  A  ,\t1 \n")
    frame = read_table(path, "table", ValueError)
    assert frame.to_dict("records") == [{"subject_id": "A", "v": "1"}]


def test_non_utf8_message_names_the_byte_and_the_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"\xef\xbb\xbfsubject_id,v\nA,1\nM\xfcller,2\n")
    with pytest.raises(ValueError, match=r"t\.csv: table is not valid UTF-8 \(byte 0xfc at "
                       r"offset 21 \(line 3\)\)\. Fix: save it as UTF-8 CSV"):
        read_table(path, "table", ValueError)


def test_undecodable_bytes_can_be_kept_for_the_rows_to_be_set_aside(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"subject_id,v\nA,1\nM\xfcller,caf\xe9\n")
    frame = read_table(path, "table", ValueError, undecodable="mark")
    ids, values = list(frame["subject_id"]), list(frame["v"])
    assert ids[0] == "A" and undecodable_bytes(ids[0]) == b""
    assert undecodable_bytes(ids[1]) == b"\xfc" and show_undecodable(ids[1]) == "M\\xfcller"
    assert show_undecodable(values[1]) == "caf\\xe9"


@pytest.mark.parametrize("raw, words", [
    (b"subj\xe9ct_id,v\nA,1\n", ["header row", "0xe9", "line 1", "subj\\\\xe9ct_id"]),
    ("subject_id,v\nA,1\n".encode("utf-16"), ["NUL byte", "line 1", "UTF-16"]),
    (b"subject_id,v\nA\x00,1\n", ["NUL byte", "line 2"]),
])
def test_a_table_whose_header_or_bytes_cannot_be_trusted_is_refused(tmp_path, raw, words):
    path = tmp_path / "t.csv"
    path.write_bytes(raw)
    with pytest.raises(ValueError) as info:
        read_table(path, "table", ValueError, undecodable="mark")
    for word in ["t.csv", "Fix: save it as UTF-8", *words]:
        assert word in str(info.value), (word, str(info.value))


def test_a_lone_carriage_return_is_quoted_and_reads_back(tmp_path):
    """The standard writer with \\n line ends leaves a lone \\r bare, and readers then split the
    row there; cnsvol quotes it."""
    path = tmp_path / "t.csv"
    write_csv(path, [{"id": "'\r", "v": 1}, {"id": "a\rb", "v": 2}, {"id": "\rx", "v": 3}],
              ["id", "v"])
    back = list(csv.DictReader(path.open(newline="")))
    # a leading \r is guarded; so is "'\r" (a quote before it), which reads back as written
    assert [r["id"] for r in back] == ["''\r", "a\rb", "'\rx"]
    from cnsvol.csvformat import unguard
    assert [unguard(r["id"]) for r in back] == ["'\r", "a\rb", "\rx"]
    assert [r["v"] for r in back] == ["1", "2", "3"]
