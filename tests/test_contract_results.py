"""One declared schema for the four tables, ``cnsvol.read_results`` and
``cnsvol.build_frames`` built from typed ``SubjectResult`` values, and the store keeping
versioned ``SubjectResult`` JSON.

Written from the documented API alone, not from the implementation.

Hand-derived numbers (synthetic cohort below): voxels of 1.0 x 0.5 x 1.5 mm (0.75 mm3), so
that mm3 never equals the voxel count; a 12 x 20 x 4 voxel box is 960 voxels = 720 mm3, its
half (6 x 20 x 4) 480 voxels = 360 mm3, a -50% change: PR under lin2009 (thresholds inclusive).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import (CONTRACT_FULL, CONTRACT_HALF, grid_affine, write_contract_masks, write_nifti, run_cli, CONTRACT_SHAPE as SHAPE)

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "fixtures" / "demo"
TABLES = ("subjects", "timepoints", "tracks", "lesions")

# column order as documented in docs/outputs.md
DOCUMENTED_COLUMNS = {
    "subjects": [
        "subject_id", "status", "error", "n_timepoints", "arm", "best_response",
        "best_percent_change", "responder_20pct", "objective_response", "time_to_response_days",
        "time_to_responder_20pct_days", "progression_days", "first_followup_days",
        "progression_reason", "best_change_within_measurement_error",
        "baseline_total_volume_mm3", "baseline_target_volume_mm3", "new_lesions",
        "equivocal_new_lesions", "has_pfs",
        "pfs_days", "pfs_event",
    ],
    "timepoints": [
        "subject_id", "timepoint", "days_from_baseline", "path", "lesion_count",
        "total_volume_mm3", "segments", "planar_volume_mm3", "mask_notes",
        "target_volume_mm3", "percent_change_vs_baseline",
        "percent_change_vs_nadir", "new_lesions", "equivocal_new_lesions",
        "nontarget_progression", "post_progression", "category",
        "confirmed", "confirmed_category", "within_measurement_error",
        "min_detectable_change_mm3", "volumetric_only", "resampled_for_matching",
        "registration", "registration_detail", "enhancing_volume_mm3", "nonenhancing_volume_mm3", "edema_volume_mm3", "cavity_volume_mm3", "reason_code", "reason",
    ],
    "tracks": [
        "subject_id", "track_id", "timepoint", "days_from_baseline", "lesion_ids", "status",
        "volume_mm3", "percent_change_vs_baseline", "within_measurement_error", "is_target",
        "registration_rotation_deg", "registration_translation_x_mm",
        "registration_translation_y_mm", "registration_translation_z_mm",
    ],
    "lesions": [
        "subject_id", "timepoint", "lesion_id", "voxel_count", "volume_mm3",
        "centroid_ras_x_mm", "centroid_ras_y_mm", "centroid_ras_z_mm", "longest_diameter_mm",
        "max_diameter_3d_mm", "perpendicular_diameter_mm", "axial_slice_count", "measurable",
        "min_detectable_change_mm3", "enhancing_volume_mm3", "nonenhancing_volume_mm3", "edema_volume_mm3", "cavity_volume_mm3", "segment",
        "bbox_i_start", "bbox_i_stop", "bbox_j_start", "bbox_j_stop", "bbox_k_start", "bbox_k_stop",
    ],
}

BOOLEAN_COLUMNS = {
    "subjects": ["responder_20pct", "objective_response", "has_pfs", "pfs_event",
                 "best_change_within_measurement_error"],
    "timepoints": ["within_measurement_error", "volumetric_only", "resampled_for_matching",
                   "nontarget_progression", "post_progression"],
    "tracks": ["within_measurement_error", "is_target"],
    "lesions": ["measurable"],
}
INTEGER_COLUMNS = {
    "subjects": ["n_timepoints", "new_lesions", "equivocal_new_lesions"],
    "timepoints": ["lesion_count", "new_lesions", "equivocal_new_lesions"],
    "tracks": ["track_id"],
    "lesions": ["lesion_id", "voxel_count", "axial_slice_count", "bbox_i_start", "bbox_i_stop", "bbox_j_start",
                "bbox_j_stop", "bbox_k_start", "bbox_k_stop"],
}


# --------------------------------------------------------------------------- helpers


FULL = CONTRACT_FULL
HALF = CONTRACT_HALF

SYNTHETIC = {  # subject: (baseline file, week8 file)
    "A01": ("full", "half"),     # -50%: PR
    "A02": ("full", "empty"),    # all gone: CR
    "A03": ("empty", "full"),    # empty baseline, lesion later: PD / new_disease
    "A04": ("full", "corrupt"),  # unreadable follow-up: failed
}


def write_synthetic_cohort(folder: Path) -> tuple[Path, Path]:
    """Four subjects over five small files, a PFS table with one id without masks (Z99)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_contract_masks(folder)
    aff = grid_affine()
    rng = np.random.default_rng(20240610)
    write_nifti(folder / "image.nii.gz", rng.normal(100, 10, SHAPE).astype(np.float32), aff)
    lines = ["subject_id,timepoint,days_from_baseline,mask_path,image_path"]
    for sid, (first, second) in SYNTHETIC.items():
        lines.append(f"{sid},baseline,0,{first}.nii.gz,image.nii.gz")
        lines.append(f"{sid},week8,56,{second}.nii.gz,image.nii.gz")
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    pfs = folder / "pfs.csv"
    pfs.write_text(
        "subject_id,pfs_days,pfs_event,arm\nA01,300,0,X\nA02,200,1,Y\nA03,50,1,X\n"
        "A04,100,1,Y\nZ99,80,0,Y\n",
        encoding="utf-8",
    )
    return manifest, pfs


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def csv_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as fh:
        return next(csv.reader(fh))


def evaluate_all(manifest: Path):
    import cnsvol

    config = cnsvol.RunConfig(criteria="lin2009", qc=False)
    return [cnsvol.evaluate_subject(plan, config) for plan in cnsvol.read_manifest(manifest)]


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("synthetic").resolve()
    manifest, pfs = write_synthetic_cohort(base / "cohort")
    out = base / "out"
    code = run_cli(["run", str(manifest), "--out", str(out), "--pfs", str(pfs),
                    "--jobs", "1", "--no-qc", "--quiet"])
    return code, manifest, pfs, out


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo").resolve() / "out"
    code = run_cli(["run", str(DEMO / "manifest.csv"), "--out", str(out), "--pfs",
                    str(DEMO / "pfs.csv"), "--jobs", "1", "--no-qc", "--quiet"])
    return code, out


# --------------------------------------------------------------------------- the schema

def test_schemas_declare_the_four_tables_in_documented_order():
    from cnsvol import SCHEMAS

    assert set(SCHEMAS) == set(TABLES)
    for table in TABLES:
        names = [col.name for col in SCHEMAS[table].columns]
        assert names == DOCUMENTED_COLUMNS[table], table
        assert list(SCHEMAS[table].dtypes) == names, table
        assert SCHEMAS[table].dtypes == {col.name: col.dtype for col in SCHEMAS[table].columns}


def test_schema_dtypes_are_pandas_dtypes_of_the_right_kind():
    from cnsvol import SCHEMAS

    for table in TABLES:
        dtypes = SCHEMAS[table].dtypes
        for name, dtype in dtypes.items():
            assert isinstance(dtype, str), (table, name, dtype)
            pd.api.types.pandas_dtype(dtype)  # a dtype pandas understands
        for name in BOOLEAN_COLUMNS[table]:
            assert pd.api.types.is_bool_dtype(pd.api.types.pandas_dtype(dtypes[name])), (table, name)
        for name in INTEGER_COLUMNS[table]:
            assert pd.api.types.is_integer_dtype(pd.api.types.pandas_dtype(dtypes[name])), (table, name)
        for name in dtypes:
            if name.endswith(("_mm3", "_mm")) or name.startswith(("percent_change", "best_percent")):
                assert pd.api.types.is_float_dtype(pd.api.types.pandas_dtype(dtypes[name])), (table, name)
        assert pd.api.types.is_string_dtype(pd.api.types.pandas_dtype(dtypes["subject_id"]))


def test_schema_units_match_the_unit_in_each_column_name():
    from cnsvol import SCHEMAS

    suffix_unit = {"_mm3": "mm3", "_days": "days", "_mm": "mm"}
    checked = 0
    for table in TABLES:
        for col in SCHEMAS[table].columns:
            assert col.unit is None or isinstance(col.unit, str)
            assert isinstance(col.description, str) and col.description.strip(), (table, col.name)
            for suffix, unit in suffix_unit.items():
                if col.name.endswith(suffix):
                    assert col.unit == unit, (table, col.name, col.unit)
                    checked += 1
                    break
            if col.unit in ("mm3", "mm", "days"):
                # the unit is spelled in the name (days_from_baseline: "days" is a word of it)
                assert col.unit in col.name.split("_"), (table, col.name, col.unit)
    # e.g. volume_mm3, centroid_ras_x_mm, pfs_days ...: the check above really ran
    assert checked == 31


def test_days_from_baseline_is_in_days():
    from cnsvol import SCHEMAS

    for table in ("timepoints", "tracks"):
        col = next(c for c in SCHEMAS[table].columns if c.name == "days_from_baseline")
        assert col.unit == "days"


def test_every_schema_column_is_documented_in_outputs_md():
    from cnsvol import SCHEMAS

    doc = (ROOT / "docs" / "outputs.md").read_text(encoding="utf-8")
    missing = [(t, c.name) for t in TABLES for c in SCHEMAS[t].columns if c.name not in doc]
    assert not missing


# --------------------------------------------------------------------------- a run's tables

@pytest.mark.slow
def test_csv_headers_follow_the_schema(synthetic_run):
    from cnsvol import SCHEMAS

    _, _, _, out = synthetic_run
    for table in TABLES:
        assert csv_header(out / f"{table}.csv") == [c.name for c in SCHEMAS[table].columns]


@pytest.mark.slow
def test_read_results_returns_typed_frames_with_schema_dtypes(synthetic_run):
    import cnsvol

    _, _, _, out = synthetic_run
    results = cnsvol.read_results(out)
    assert isinstance(results, cnsvol.RunResults)
    for table in TABLES:
        frame = getattr(results, table)
        assert isinstance(frame, pd.DataFrame), table
        assert list(frame.columns) == DOCUMENTED_COLUMNS[table], table
        got = {name: str(dtype) for name, dtype in frame.dtypes.items()}
        want = {name: str(pd.api.types.pandas_dtype(d)) for name, d in cnsvol.SCHEMAS[table].dtypes.items()}
        assert got == want, table
    assert len(results.subjects) == 4
    assert len(results.timepoints) == 6  # 3 ok subjects x 2 (the failed one has none)
    assert len(results.lesions) == 4     # full, half, full, full (empty masks have none)


@pytest.mark.slow
def test_read_results_hand_derived_values(synthetic_run):
    import cnsvol

    code, _, _, out = synthetic_run
    assert code == 3  # A04 failed
    res = cnsvol.read_results(out)
    subj = res.subjects.set_index("subject_id")
    assert list(subj.index) == ["A01", "A02", "A03", "A04"]
    assert list(subj["status"]) == ["ok", "ok", "ok", "failed"]
    a01 = subj.loc["A01"]
    assert a01["best_response"] == "PR"
    assert a01["best_percent_change"] == pytest.approx(-50.0)
    assert bool(a01["responder_20pct"]) is True and bool(a01["objective_response"]) is True
    assert a01["baseline_total_volume_mm3"] == pytest.approx(720.0)
    assert a01["time_to_response_days"] == pytest.approx(56.0)
    assert a01["arm"] == "X" and a01["pfs_days"] == pytest.approx(300.0)
    assert bool(a01["pfs_event"]) is False and bool(a01["has_pfs"]) is True
    assert pd.isna(a01["progression_days"])
    assert subj.loc["A02", "best_response"] == "CR"
    assert subj.loc["A02", "best_percent_change"] == pytest.approx(-100.0)
    assert subj.loc["A03", "best_response"] == "PD"
    assert subj.loc["A03", "progression_days"] == pytest.approx(56.0)
    assert subj.loc["A03", "new_lesions"] == 1
    assert "corrupt.nii.gz" in subj.loc["A04", "error"]

    tp = res.timepoints.set_index(["subject_id", "timepoint"])
    assert tp.loc[("A01", "week8"), "category"] == "PR"
    assert tp.loc[("A01", "week8"), "reason_code"] == "partial_response"
    assert tp.loc[("A01", "week8"), "total_volume_mm3"] == pytest.approx(360.0)
    assert tp.loc[("A01", "baseline"), "reason_code"] == "baseline"
    assert pd.isna(tp.loc[("A01", "baseline"), "category"])
    assert tp.loc[("A02", "week8"), "reason_code"] == "complete_response"
    assert tp.loc[("A03", "week8"), "category"] == "PD"
    assert tp.loc[("A03", "week8"), "reason_code"] == "new_disease"

    tracks = res.tracks.set_index(["subject_id", "timepoint"])
    assert tracks.loc[("A01", "baseline"), "status"] == "baseline"
    assert tracks.loc[("A01", "week8"), "status"] == "matched"
    assert tracks.loc[("A01", "week8"), "volume_mm3"] == pytest.approx(360.0)
    assert tracks.loc[("A02", "week8"), "status"] == "resolved"
    assert tracks.loc[("A03", "week8"), "status"] == "new"

    les = res.lesions.set_index(["subject_id", "timepoint"]).loc[("A01", "baseline")]
    assert les["lesion_id"] == 1 and les["voxel_count"] == 960
    assert les["volume_mm3"] == pytest.approx(720.0)  # 960 x 0.75
    # mean voxel centre through the affine: i 2..13 -> 7.5, j 2..21 -> 11.5, k 2..5 -> 3.5
    assert (les["centroid_ras_x_mm"], les["centroid_ras_y_mm"], les["centroid_ras_z_mm"]) == \
        pytest.approx((-10 + 7.5 * 1.0, 5 + 11.5 * 0.5, 3 + 3.5 * 1.5))
    # edge to edge: 12 mm x 10 mm in plane, 6 mm high
    assert les["longest_diameter_mm"] == pytest.approx(math.hypot(12.0, 10.0))
    assert les["max_diameter_3d_mm"] == pytest.approx(math.sqrt(144 + 100 + 36))
    assert bool(les["measurable"]) is True
    # half-voxel shell: 2 (12*20 + 12*4 + 20*4) = 736 faces x 0.75 / 2
    assert les["min_detectable_change_mm3"] == pytest.approx(276.0)


@pytest.mark.slow
def test_read_results_cohort_criteria_and_provenance(synthetic_run):
    import cnsvol

    _, _, _, out = synthetic_run
    res = cnsvol.read_results(out)
    cohort_json = json.loads((out / "cohort.json").read_text(encoding="utf-8"))
    assert isinstance(res.cohort, cnsvol.CohortSummary)
    assert res.cohort.to_dict() == cohort_json
    assert cohort_json["failed_ids"] == ["A04"] and cohort_json["ids_without_masks"] == ["Z99"]
    assert isinstance(res.criteria, cnsvol.Criteria)
    assert res.criteria.name == "lin2009"
    assert res.provenance == json.loads((out / "provenance.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_read_results_criteria_follow_the_run(tmp_path):
    """Criteria come back as the ones the run used, not a default (here tbcrc022)."""
    import cnsvol

    manifest, _ = write_synthetic_cohort(tmp_path / "cohort")
    out = tmp_path / "out"
    code = run_cli(["run", str(manifest), "--out", str(out), "--criteria", "tbcrc022",
                    "--jobs", "1", "--no-qc", "--quiet"])
    assert code == 3
    res = cnsvol.read_results(out)
    assert res.criteria.name == "tbcrc022"
    assert res.criteria == cnsvol.get_criteria("tbcrc022")


@pytest.mark.slow
def test_frames_agree_with_the_csv_files(synthetic_run):
    """Cell by cell, typed frame vs the CSV text the run wrote (empty cell = missing)."""
    import cnsvol

    _, _, _, out = synthetic_run
    res = cnsvol.read_results(out)
    for table in TABLES:
        frame = getattr(res, table)
        rows = csv_rows(out / f"{table}.csv")
        assert len(rows) == len(frame), table
        for i, row in enumerate(rows):
            for name in DOCUMENTED_COLUMNS[table]:
                cell, value = row[name], frame[name].iloc[i]
                if pd.isna(value):
                    assert cell == "", (table, i, name, cell)
                elif pd.api.types.is_bool_dtype(frame[name].dtype):
                    assert cell == str(bool(value)), (table, i, name, cell)
                elif pd.api.types.is_integer_dtype(frame[name].dtype):
                    assert int(cell) == int(value), (table, i, name, cell)
                elif pd.api.types.is_float_dtype(frame[name].dtype):
                    assert float(cell) == float(value), (table, i, name, cell)
                else:
                    assert cell == str(value), (table, i, name, cell)


@pytest.mark.slow
def test_read_results_equals_build_frames_of_the_same_subjects(synthetic_run):
    import cnsvol

    _, manifest, pfs, out = synthetic_run
    built = cnsvol.build_frames(evaluate_all(manifest), pfs=cnsvol.read_pfs(pfs))
    assert set(built) == set(TABLES)
    res = cnsvol.read_results(out)
    for table in TABLES:
        pd.testing.assert_frame_equal(getattr(res, table), built[table], check_dtype=True)


@pytest.mark.slow
def test_build_frames_without_pfs_keeps_the_schema(synthetic_run):
    import cnsvol

    _, manifest, _, _ = synthetic_run
    built = cnsvol.build_frames(evaluate_all(manifest))
    for table in TABLES:
        assert list(built[table].columns) == DOCUMENTED_COLUMNS[table]
        got = {n: str(d) for n, d in built[table].dtypes.items()}
        want = {n: str(pd.api.types.pandas_dtype(d)) for n, d in cnsvol.SCHEMAS[table].dtypes.items()}
        assert got == want, table
    subj = built["subjects"].set_index("subject_id")
    assert not subj["has_pfs"].fillna(False).astype(bool).any()
    assert subj["pfs_days"].isna().all()


@pytest.mark.slow
def test_demo_round_trip_run_read_results_build_frames(demo_run):
    """The demo cohort: run -> read_results -> the same frames as build_frames of the same
    subjects evaluated one by one (dtypes included)."""
    import cnsvol

    code, out = demo_run
    assert code == 3  # S07 has a corrupt mask
    manifest = DEMO / "manifest.csv"
    built = cnsvol.build_frames(evaluate_all(manifest), pfs=cnsvol.read_pfs(DEMO / "pfs.csv"))
    res = cnsvol.read_results(out)
    for table in TABLES:
        pd.testing.assert_frame_equal(getattr(res, table), built[table], check_dtype=True)
    subj = res.subjects.set_index("subject_id")
    assert list(subj.index[subj["status"] == "failed"]) == ["S07"]
    assert len(subj) == 30 and not bool(subj.loc["S30", "has_pfs"])


@pytest.mark.slow
def test_store_keeps_versioned_subject_results_the_tables_are_built_from(demo_run):
    """`.cnsvol/subjects/*.json` are SubjectResult serialisations; the tables are built from them."""
    import cnsvol

    _, out = demo_run
    files = sorted((out / ".cnsvol" / "subjects").glob("*.json"))
    assert len(files) == 30
    stored = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        doc = json.loads(text)
        assert any("version" in key for key in doc), path.name
        stored.append(cnsvol.SubjectResult.from_json(text))
    stored.sort(key=lambda r: r.subject_id)
    assert [r.subject_id for r in stored] == [f"S{i:02d}" for i in range(1, 31)]
    built = cnsvol.build_frames(stored, pfs=cnsvol.read_pfs(DEMO / "pfs.csv"))
    res = cnsvol.read_results(out)
    for table in TABLES:
        pd.testing.assert_frame_equal(getattr(res, table), built[table], check_dtype=True)


@pytest.mark.slow
def test_enum_values_are_plain_strings_in_every_output(synthetic_run):
    """StrEnums leave their value, never `Category.PR`, in CSV and JSON outputs."""
    _, _, _, out = synthetic_run
    for path in [*out.glob("*.csv"), *out.glob("*.json"), *(out / ".cnsvol").rglob("*.json")]:
        text = path.read_text(encoding="utf-8")
        for enum_name in ("Category.", "TrackStatus.", "ReasonCode.", "SubjectStatus."):
            assert enum_name not in text, (path.name, enum_name)
    subjects = {r["subject_id"]: r for r in csv_rows(out / "subjects.csv")}
    assert subjects["A01"]["best_response"] == "PR" and subjects["A01"]["status"] == "ok"
    assert subjects["A04"]["status"] == "failed"
    tracks = csv_rows(out / "tracks.csv")
    assert {t["status"] for t in tracks} == {"baseline", "matched", "resolved", "new"}


# SHA-256 of the demo cohort's tables, with the demo folder's absolute path replaced by
# "<DEMO>". Produced with:
#   cnsvol run fixtures/demo/manifest.csv --out OUT --pfs fixtures/demo/pfs.csv --jobs 1 \
#       --no-qc --quiet        (same bytes with --jobs 2 and with QC pictures)
#   hashlib.sha256(OUT/name bytes .replace(b"<abs path of fixtures/demo>", b"<DEMO>"))
# tracks.csv was byte-identical to the last commit before the redesign (ea4baa5) until it gained
# the registration columns (below). The other
# tables changed with the response rules of the criteria issue, and were checked value by value
# against ea4baa5's output: lesions.csv and timepoints.csv only gained columns (perpendicular
# diameter, slice count, non-target / post-progression flags, compartment volumes); every old
# cell is equal except the categories the new rules change: S10 and S25 week8 PD -> SD (a single
# 12 mm3 voxel is now an equivocal new lesion), S05 week24 SD -> PD post_progression, and the
# reason/reason_code of every timepoint after a first PD (post_progression); subjects.csv: S10
# and S25 best response PD -> SD, progression_days 56 -> empty, a new equivocal_new_lesions
# column (1 for S10 and S25, else 0) and progression_reason (the first PD's findings); cohort.json: the naive Cox fit's
# p and upper limit in the last binary digit (Efron ties; the demo's PFS times are untied).
# Then the demo's PFS table was made to follow its imaging (fixtures/make_fixtures.py
# _pfs_rows): subjects.csv changed in pfs_days only (26 rows; every other cell equal), and
# cohort.json in its PFS numbers and the new reconciliation (two deliberate discrepancies);
# then subjects.csv gained best_change_within_measurement_error (every other cell equal);
# then timepoints.csv gained segments and planar_volume_mm3, lesions.csv segment (DICOM
# masks only: empty in the demo; every other cell equal); then timepoints.csv gained mask_notes
# (empty in the demo: its NIfTI masks need no note; every other cell equal); then timepoints.csv
# gained registration and registration_detail, tracks.csv registration_rotation_deg and
# registration_translation_{x,y,z}_mm (the demo's scans of a subject share a grid: no
# registration, all empty; every other cell of both equal, checked with pandas); then auto
# registered every follow-up with an image (S01 and S21: 'aligned', 0.03-0.09 mm, scanner
# coordinates kept; every other cell equal); registration_detail then changed with the
# optimiser's settings and auto's early stop at the 4 mm level (every other cell equal).
DEMO_SHA256 = {
    "subjects.csv": "57ed70e55c41eb0ce019f0d0536e78c191de2325fa0c1b722fc7af506e9ea05f",
    "timepoints.csv": "581b6d5893ed6f2fe084a74433a1e3d03a23985cc6e5b637105c580e7ba63812",
    "tracks.csv": "55307332a64409ce3d702a382e409d67d378fd4a03ac5e2c7428cc1eb6c52b82",
    "lesions.csv": "08188f5ff8efde873518346d66f96cc6ee798f0a3b890baa367b35f993e41406",
}
# cohort.json by value: its floats to 12 significant digits (the Cox fit's last binary digits
# depend on the BLAS threading of the process), as canonical JSON
COHORT_SHA256 = "ea68bf1db7d5a16b857ad4abccc2912cbbb5860cbe56887866443325065ece01"


def canonical(value):
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


@pytest.mark.slow
def test_demo_tables_are_byte_identical_to_the_checked_outputs(demo_run):
    import hashlib

    _, out = demo_run
    changed = {}
    for name, digest in DEMO_SHA256.items():
        data = (out / name).read_bytes().replace(str(DEMO).encode("utf-8"), b"<DEMO>")
        if hashlib.sha256(data).hexdigest() != digest:
            changed[name] = hashlib.sha256(data).hexdigest()
    cohort = json.loads((out / "cohort.json").read_text("utf-8").replace(str(DEMO), "<DEMO>"))
    text = json.dumps(canonical(cohort), sort_keys=True)
    if hashlib.sha256(text.encode("utf-8")).hexdigest() != COHORT_SHA256:
        changed["cohort.json"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert not changed, f"outputs changed bytes: {sorted(changed)}"


@pytest.mark.slow
def test_demo_categories_the_criteria_rules_changed(demo_run):
    _, out = demo_run
    tp = pd.read_csv(out / "timepoints.csv", dtype={"subject_id": str})
    at = tp.set_index(["subject_id", "timepoint"])
    for sid in ("S10", "S25"):  # one 12 mm3 voxel at week8: equivocal, not progression
        row = at.loc[(sid, "week8")]
        assert (row["category"], row["equivocal_new_lesions"]) == ("SD", 1)
    row = at.loc[("S05", "week24")]
    assert (row["category"], row["reason_code"]) == ("PD", "post_progression")
    assert "this scan alone: SD" in row["reason"]
    # after the first PD of a subject, every timepoint is PD post_progression
    for sid, rows in tp.groupby("subject_id"):
        cats = list(rows["category"].fillna(""))
        if "PD" in cats:
            first = cats.index("PD")
            assert set(rows["reason_code"].iloc[first + 1:]) <= {"post_progression"}, sid
