"""The declared output schema: the rows the typed results give match it, its CSV form reads back
exactly (dtypes and values), and docs/outputs.md is written from it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cnsvol
from cnsvol.lesions import LESION_COLUMNS
from cnsvol.response.results import TIMEPOINT_COLUMNS, TRACK_COLUMNS
from cnsvol.results import read_table, render_rows, write_table

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = cnsvol.SCHEMAS


def box_series():
    """A 16x12x4-voxel box (12.8 x 13.2 x 6 mm: measurable) on a 0.8 x 1.1 x 1.5 mm grid, then
    half of it (PR under lin2009)."""
    affine = np.diag([0.8, 1.1, 1.5, 1.0])
    a = np.zeros((20, 16, 8), np.uint8)
    a[2:18, 2:14, 2:6] = 1
    b = np.zeros_like(a)
    b[2:10, 2:14, 2:6] = 1
    return cnsvol.evaluate_series([cnsvol.mask_from_array(a, affine),
                                   cnsvol.mask_from_array(b, affine)], [0, 56])


def test_docs_outputs_md_is_written_from_the_schema():
    check = subprocess.run([sys.executable, str(ROOT / "tools" / "outputs_doc.py"), "--check"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    text = (ROOT / "docs" / "outputs.md").read_text(encoding="utf-8")
    for table in SCHEMAS.values():
        for col in table.columns:
            assert f"| `{col.name}` | {col.dtype} | {col.unit or ''} |" in text, col.name


def test_rows_of_typed_results_have_exactly_the_declared_columns():
    series = box_series()
    result = cnsvol.SubjectResult.from_series("S1", series)
    lesion = series.lesion_sets[0].lesions[0]
    assert list(lesion.to_row()) == [c.name for c in LESION_COLUMNS]
    assert set(series.timepoints[1].to_row()) == {c.name for c in TIMEPOINT_COLUMNS}
    assert list(series.tracks[0].to_row()) == [c.name for c in TRACK_COLUMNS]
    for name, rows in (("timepoints", result.timepoint_rows()), ("tracks", result.track_rows()),
                       ("lesions", result.lesion_rows())):
        assert set(rows[0]) == set(SCHEMAS[name].names), name
    subject = result.subject_row()
    pfs_and_arm = {"arm", "has_pfs", "pfs_days", "pfs_event"}
    assert set(subject) == set(SCHEMAS["subjects"].names) - pfs_and_arm


def test_hand_derived_values_through_the_tables(tmp_path):
    """Voxel 0.8 x 1.1 x 1.5 = 1.32 mm3; the box 16x12x4 = 768 voxels = 1013.76 mm3, half
    506.88 mm3, -50% (PR under lin2009, >= 20% reduction)."""
    result = cnsvol.SubjectResult.from_series("S1", box_series())
    frames = cnsvol.build_frames([result])
    tp = frames["timepoints"]
    assert tp["total_volume_mm3"].tolist() == pytest.approx([1013.76, 506.88])
    assert tp["percent_change_vs_baseline"].tolist() == pytest.approx([0.0, -50.0])
    assert tp["category"].tolist()[1] == "PR" and pd.isna(tp["category"].tolist()[0])
    subjects = frames["subjects"]
    assert subjects["responder_20pct"].tolist() == [True]
    assert subjects["has_pfs"].tolist() == [False] and pd.isna(subjects["pfs_days"][0])
    lesions = frames["lesions"]
    assert lesions["voxel_count"].tolist() == [768, 384]
    for name, table in SCHEMAS.items():
        assert dict(frames[name].dtypes.astype(str)) == table.dtypes, name
        write_table(tmp_path / table.filename, table, frames[name])
        back = read_table(tmp_path / table.filename, table)
        pd.testing.assert_frame_equal(back, frames[name])


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(
    _text, st.none() | st.floats(allow_nan=False, allow_infinity=False),
    st.none() | st.integers(-2**40, 2**40), st.none() | st.booleans()), max_size=6))
def test_any_value_reads_back_exactly(tmp_path_factory, rows):
    """Floats to the last bit, integers, booleans, missing values, and text (formula-like, with
    quotes, commas and newlines): written by the schema's writer, read back equal."""
    table = SCHEMAS["lesions"]
    records = [{"subject_id": sid or None, "volume_mm3": vol, "voxel_count": count,
                "measurable": flag} for sid, vol, count, flag in rows]
    path = tmp_path_factory.mktemp("t") / "lesions.csv"
    write_table(path, table, records)
    back = read_table(path, table)
    assert len(back) == len(records)
    for rec, got in zip(records, back.to_dict("records")):
        for key, want in rec.items():
            value = got[key]
            if want is None:
                assert pd.isna(value), (key, value)
            else:
                assert value == want and not pd.isna(value), (key, value, want)


def test_floats_are_written_by_repr_and_rows_render_alike():
    table = SCHEMAS["lesions"]
    row = {"subject_id": "=1+2", "volume_mm3": 0.1 + 0.2, "voxel_count": 7, "measurable": False}
    text = render_rows(table, [row])
    cells = text.rstrip("\n").split(",")
    assert cells[0] == "'=1+2" and "0.30000000000000004" in cells and "7" in cells
    assert "False" in cells
    assert render_rows(table, [row, row]) == text * 2  # pieces concatenate
    with pytest.raises(ValueError, match="non-finite"):
        render_rows(table, [{"volume_mm3": float("inf")}])


def test_a_table_that_is_not_of_its_schema_is_refused_with_the_file(tmp_path):
    table = SCHEMAS["tracks"]
    path = tmp_path / "tracks.csv"
    path.write_text("subject_id,track_id\nS1,1\n", encoding="utf-8")
    with pytest.raises(cnsvol.ResultsError, match="tracks.csv.*not those of the tracks table"):
        read_table(path, table)
    write_table(path, table, [{"subject_id": "S1", "track_id": 1, "status": "new"}])
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text(lines[0] + "\n" + lines[1].replace("S1,1,", "S1,one,") + "\n",
                    encoding="utf-8")
    with pytest.raises(cnsvol.ResultsError, match=r"row 2, column track_id: 'one'"):
        read_table(path, table)


@pytest.mark.parametrize("value", ["'=", "''=x", "'-1", "'+", "'@a", "'", "'a", "=", "-1"])
def test_text_that_already_looks_guarded_reads_back_exactly(tmp_path, value):
    """A text starting with quotes before a formula character gets one more quote when written,
    so that reading removes exactly one (found by the property test above: "'=" read as "=")."""
    table = SCHEMAS["lesions"]
    write_table(tmp_path / "t.csv", table, [{"subject_id": value}])
    assert read_table(tmp_path / "t.csv", table)["subject_id"][0] == value
