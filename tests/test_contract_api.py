"""The documented library API: root exports, StrEnums carried by results,
``RunConfig`` accepting a preset name / TOML path / ``Criteria``, ``read_manifest`` ->
``Manifest`` of ``SubjectPlan``, ``evaluate_subject`` -> a frozen, JSON-round-tripping
``SubjectResult`` (never raising for bad data), ``run_cohort`` accepting every documented form of
its inputs, and short one-line reprs.

Written from the documented API alone, not from the implementation.

Hand-derived numbers: voxels of 1.0 x 0.5 x 1.5 mm (0.75 mm3); a 12 x 20 x 4 voxel box is
720 mm3, its half 360 mm3: -50%, PR under lin2009 and tbcrc022 (inclusive thresholds).
"""

from __future__ import annotations

import dataclasses
import enum
import json
from pathlib import Path

import numpy as np
import pytest

from helpers import (CONTRACT_FULL, CONTRACT_HALF, grid_affine, write_contract_masks)

ROOT = Path(__file__).resolve().parents[1]


FULL = CONTRACT_FULL
HALF = CONTRACT_HALF
SYNTHETIC = {"A01": ("full", "half"), "A02": ("full", "empty"), "A03": ("empty", "full"),
             "A04": ("full", "corrupt")}


def write_synthetic_cohort(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    write_contract_masks(folder)
    lines = ["subject_id,timepoint,days_from_baseline,mask_path"]
    for sid, (first, second) in SYNTHETIC.items():
        lines += [f"{sid},baseline,0,{first}.nii.gz", f"{sid},week8,56,{second}.nii.gz"]
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    pfs = folder / "pfs.csv"
    pfs.write_text("subject_id,pfs_days,pfs_event,arm\nA01,300,0,X\nA02,200,1,Y\nA03,50,1,X\n"
                   "A04,100,1,Y\n", encoding="utf-8")
    return manifest, pfs


@pytest.fixture
def cohort(tmp_path):
    return write_synthetic_cohort(tmp_path.resolve() / "cohort")


def results_by_id(manifest: Path, criteria="lin2009"):
    import cnsvol

    config = cnsvol.RunConfig(criteria=criteria, qc=False)
    results = [cnsvol.evaluate_subject(plan, config) for plan in cnsvol.read_manifest(manifest)]
    return {r.subject_id: r for r in results}


# --------------------------------------------------------------------------- exports

ROOT_NAMES = [
    "read_results", "RunResults", "SCHEMAS", "SubjectResult", "SubjectSummary", "TimepointResult",
    "TrackRow", "SubjectStatus", "Category", "TrackStatus", "ReasonCode", "evaluate_subject",
    "read_manifest", "Manifest", "SubjectPlan", "build_frames", "RunConfig", "run_cohort",
    "read_pfs", "PfsTable", "CohortSummary", "Criteria", "CriteriaError", "CnsvolError",
    "FolderLockedError", "kaplan_meier", "logrank", "cox", "binomial_rate", "compare_arms",
    "cohort_statistics", "bids_manifest", "BidsError",
    # documented in the README, kept
    "read_mask", "mask_from_array", "find_lesions", "compare", "match", "evaluate_series",
    "get_criteria", "MeasureOptions", "MaskError",
]


@pytest.mark.parametrize("name", ROOT_NAMES)
def test_exported_at_the_root(name):
    import cnsvol

    assert hasattr(cnsvol, name), f"cnsvol.{name} is not exported"


@pytest.mark.parametrize("name", ["kaplan_meier", "logrank", "cox", "binomial_rate", "compare_arms",
                                  "cohort_statistics", "bids_manifest", "read_results",
                                  "build_frames", "evaluate_subject", "run_cohort"])
def test_exported_functions_are_callable(name):
    import cnsvol

    assert callable(getattr(cnsvol, name))


def test_error_hierarchy():
    import cnsvol

    for name in ("CriteriaError", "BidsError", "FolderLockedError", "MaskError"):
        assert issubclass(getattr(cnsvol, name), cnsvol.CnsvolError), name
    assert issubclass(cnsvol.MaskError, ValueError)


# --------------------------------------------------------------------------- enums

ENUMS = {
    "Category": {"CR", "PR", "SD", "PD", "NE"},
    "TrackStatus": {"baseline", "matched", "split", "merged", "complex", "new", "resolved",
                    "unregistered"},
    "ReasonCode": {"baseline", "stable_disease", "partial_response", "complete_response",
                   "progression", "response_blocked", "new_disease", "no_baseline_disease",
                   "no_measurable_disease", "post_progression", "progression_unconfirmed"},
    "SubjectStatus": {"ok", "failed"},
}


@pytest.mark.parametrize("name", sorted(ENUMS))
def test_enums_are_strenums_with_the_output_strings(name):
    import cnsvol

    cls = getattr(cnsvol, name)
    assert issubclass(cls, enum.StrEnum)
    assert {member.value for member in cls} == ENUMS[name]
    for member in cls:
        assert str(member) == member.value and f"{member}" == member.value
        assert json.dumps(member) == json.dumps(member.value)


def test_compare_result_carries_enums_equal_to_plain_strings():
    import cnsvol

    before = cnsvol.mask_from_array(FULL, grid_affine())
    after = cnsvol.mask_from_array(HALF, grid_affine())
    result = cnsvol.compare(before, after, criteria="lin2009")
    assert result.percent_change == pytest.approx(-50.0)
    assert isinstance(result.category, cnsvol.Category)
    assert result.category == "PR" and result.category is cnsvol.Category("PR")
    assert isinstance(result.reason_code, cnsvol.ReasonCode)
    assert result.reason_code == "partial_response"
    assert isinstance(result.tracks[0].status, cnsvol.TrackStatus)
    assert result.tracks[0].status == "matched"
    doc = json.loads(json.dumps(result.to_dict()))
    assert doc["category"] == "PR" and doc["reason_code"] == "partial_response"
    assert doc["tracks"][0]["status"] == "matched"


def test_subject_result_carries_enums(cohort):
    import cnsvol

    manifest, _ = cohort
    res = results_by_id(manifest)
    a01 = res["A01"]
    assert isinstance(a01.status, cnsvol.SubjectStatus) and a01.status == "ok"
    assert isinstance(res["A04"].status, cnsvol.SubjectStatus) and res["A04"].status == "failed"
    assert isinstance(a01.summary, cnsvol.SubjectSummary)
    assert isinstance(a01.summary.best_response, cnsvol.Category)
    assert a01.summary.best_response == "PR"
    last = a01.timepoints[-1]
    assert isinstance(last, cnsvol.TimepointResult)
    assert isinstance(last.category, cnsvol.Category) and last.category == "PR"
    assert isinstance(last.reason_code, cnsvol.ReasonCode) and last.reason_code == "partial_response"
    assert all(isinstance(t, cnsvol.TrackRow) for t in a01.tracks)
    assert [t.status for t in a01.tracks] == ["baseline", "matched"]
    assert all(isinstance(t.status, cnsvol.TrackStatus) for t in a01.tracks)
    assert res["A03"].summary.best_response == cnsvol.Category.PD


# --------------------------------------------------------------------------- RunConfig

def test_run_config_accepts_a_preset_name():
    import cnsvol

    config = cnsvol.RunConfig("tbcrc022")
    assert isinstance(config.criteria, cnsvol.Criteria)
    assert config.criteria.name == "tbcrc022"
    assert cnsvol.RunConfig(criteria="rano-bm-vol").criteria == cnsvol.get_criteria("rano-bm-vol")


def test_run_config_defaults():
    import cnsvol

    config = cnsvol.RunConfig("lin2009")
    assert config.options == cnsvol.MeasureOptions()
    assert config.qc is True


@pytest.mark.parametrize("as_str", [False, True])
def test_run_config_accepts_a_toml_path(tmp_path, as_str):
    import cnsvol

    path = tmp_path / "mine.toml"
    path.write_text('extends = "lin2009"\nresponse_decrease_pct = 30\n', encoding="utf-8")
    config = cnsvol.RunConfig(str(path) if as_str else path)
    assert isinstance(config.criteria, cnsvol.Criteria)
    assert config.criteria.response_decrease_pct == 30
    lin = cnsvol.get_criteria("lin2009")
    assert config.criteria.progression_increase_pct == lin.progression_increase_pct  # inherited


def test_run_config_accepts_a_criteria_object():
    import cnsvol

    crit = cnsvol.get_criteria("rano-bm-vol")
    assert cnsvol.RunConfig(crit).criteria == crit


def test_run_config_unknown_name_raises_criteria_error():
    import cnsvol

    with pytest.raises(cnsvol.CriteriaError):
        cnsvol.RunConfig("no-such-criteria")


# --------------------------------------------------------------------------- manifest, plans, results

def test_read_manifest_returns_a_manifest_of_subject_plans(cohort):
    import cnsvol

    manifest_path, _ = cohort
    manifest = cnsvol.read_manifest(manifest_path)
    assert isinstance(manifest, cnsvol.Manifest)
    assert Path(manifest.path).resolve() == manifest_path
    plans = list(manifest)
    assert plans == list(manifest.plans) and len(plans) == 4
    assert all(isinstance(p, cnsvol.SubjectPlan) for p in plans)
    config = cnsvol.RunConfig("lin2009", qc=False)
    assert [cnsvol.evaluate_subject(p, config).subject_id for p in plans] == sorted(SYNTHETIC)


def test_evaluate_subject_gives_a_frozen_typed_result(cohort):
    import cnsvol

    manifest, _ = cohort
    a01 = results_by_id(manifest)["A01"]
    assert isinstance(a01, cnsvol.SubjectResult)
    assert dataclasses.is_dataclass(a01)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a01.subject_id = "X"  # type: ignore[misc]
    assert a01.subject_id == "A01" and a01.status == "ok" and a01.error == ""
    for field in ("timepoints", "tracks", "lesions"):
        assert isinstance(getattr(a01, field), tuple), field
    assert len(a01.timepoints) == 2 and len(a01.tracks) == 2 and len(a01.lesions) == 2
    assert a01.summary.best_percent_change == pytest.approx(-50.0)
    assert a01.summary.responder_20pct == True  # noqa: E712  (True or numpy's True)


def test_evaluate_subject_never_raises_for_bad_data(cohort):
    import cnsvol

    manifest, _ = cohort
    config = cnsvol.RunConfig("lin2009", qc=False)
    plans = list(cnsvol.read_manifest(manifest))
    a04 = cnsvol.evaluate_subject(plans[3], config)
    assert a04.subject_id == "A04" and a04.status == cnsvol.SubjectStatus("failed")
    assert "corrupt.nii.gz" in a04.error
    # a file that disappears after the manifest was checked: a failed result, not an exception
    (manifest.parent / "half.nii.gz").unlink()
    a01 = cnsvol.evaluate_subject(plans[0], config)
    assert a01.subject_id == "A01" and a01.status == "failed" and "half.nii.gz" in a01.error


def test_subject_result_json_round_trips_and_is_versioned(cohort):
    import cnsvol

    manifest, _ = cohort
    for sid, result in results_by_id(manifest).items():
        text = result.to_json()
        assert isinstance(text, str)
        doc = json.loads(text)
        assert any("version" in key for key in doc), sid
        back = cnsvol.SubjectResult.from_json(text)
        assert back == result, sid
        assert isinstance(back.status, cnsvol.SubjectStatus)
        assert back.to_json() == text


# --------------------------------------------------------------------------- reprs

def _big_mask():
    import cnsvol

    data = np.zeros((200, 200, 150), np.uint8)
    for n in range(7):  # seven separate cubes
        i = 10 + 25 * n
        data[i:i + 8, 50:58, 60:66] = 1
    aff = np.diag([0.9, 0.8, 1.2, 1.0])
    return cnsvol.mask_from_array(data, aff)


def _is_short(text: str, limit: int = 500) -> bool:
    return "\n" not in text and len(text) <= limit


def test_mask_repr_is_one_short_line_with_its_shape():
    mask = _big_mask()
    for text in (repr(mask), str(mask)):
        assert _is_short(text), text[:300]
    assert all(str(n) in repr(mask) for n in (200, 150))


def test_lesion_set_repr_is_one_short_line_with_its_count():
    import re

    import cnsvol

    lesions = cnsvol.find_lesions(_big_mask())
    assert len(lesions.to_frame()) == 7
    text = repr(lesions)
    assert _is_short(text), text[:300]
    assert re.search(r"\b7\b", text), text


def test_compare_and_subject_result_reprs_are_short(cohort):
    import cnsvol

    result = cnsvol.compare(cnsvol.mask_from_array(FULL, grid_affine()),
                            cnsvol.mask_from_array(HALF, grid_affine()))
    assert _is_short(repr(result)), repr(result)[:300]
    assert "PR" in repr(result)
    manifest, _ = cohort
    a01 = results_by_id(manifest)["A01"]
    assert _is_short(repr(a01)), repr(a01)[:300]
    assert "A01" in repr(a01)


# --------------------------------------------------------------------------- run_cohort inputs

def _outputs(out: Path) -> dict[str, bytes]:
    names = ("subjects.csv", "timepoints.csv", "tracks.csv", "lesions.csv", "cohort.json")
    return {name: (out / name).read_bytes() for name in names}


@pytest.mark.slow
def test_run_cohort_accepts_a_path_a_manifest_or_plans_and_a_pfs_path_or_table(cohort, tmp_path):
    import cnsvol

    manifest_path, pfs_path = cohort
    manifest = cnsvol.read_manifest(manifest_path)
    table = cnsvol.read_pfs(pfs_path)
    assert isinstance(table, cnsvol.PfsTable)
    config = cnsvol.RunConfig("lin2009", qc=False)
    runs = {
        "path": (manifest_path, pfs_path),
        "manifest": (manifest, table),
        "plans": (list(manifest.plans), str(pfs_path)),
    }
    outputs = {}
    for label, (man, pfs) in runs.items():
        out = tmp_path / label
        summary = cnsvol.run_cohort(man, out, config, pfs=pfs, jobs=1)
        assert summary.n_failed == 1, label
        outputs[label] = _outputs(out)
    assert outputs["manifest"] == outputs["path"]
    assert outputs["plans"] == outputs["path"]
    doc = json.loads(outputs["path"]["cohort.json"])
    assert doc["failed_ids"] == ["A04"] and doc["criteria"] == "lin2009"


@pytest.mark.slow
def test_run_cohort_with_a_preset_name_in_run_config(cohort, tmp_path):
    """`RunConfig("tbcrc022")`: a preset name is a criteria, inside a whole run too."""
    import cnsvol

    manifest_path, pfs_path = cohort
    out = tmp_path / "out"
    summary = cnsvol.run_cohort(manifest_path, out, cnsvol.RunConfig("tbcrc022", qc=False),
                                pfs=pfs_path, jobs=1)
    assert summary.n_failed == 1
    assert json.loads((out / "cohort.json").read_text())["criteria"] == "tbcrc022"
    assert cnsvol.read_results(out).criteria.name == "tbcrc022"
