"""CSV writing: formula neutralisation, quoting, no NaN, atomic replacement."""

from __future__ import annotations

import csv
import math

import pytest

from cnsvol.tables import safe_cell, write_csv


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
