"""The library is the product: ``cnsvol.run_cohort`` called from a study
script records its full provenance itself, the same as ``cnsvol run`` for the same manifest,
PFS table and criteria: the same top-level keys of provenance.json and the same ``inputs``
mapping (every input file -> its SHA-256), checked here with hashlib.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from helpers import nifti_bytes, write_nifti, box, grid_affine, run_cli, CONTRACT_SHAPE as SHAPE

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def write_cohort(folder: Path) -> dict[str, object]:
    """Three subjects with masks and MRI images (one image per subject), one corrupt mask."""
    folder.mkdir(parents=True, exist_ok=True)
    aff = grid_affine()
    full, half = box(2, 14, 2, 22, 2, 6), box(2, 8, 2, 22, 2, 6)
    masks = {
        "full": write_nifti(folder / "full.nii.gz", full, aff),
        "half": write_nifti(folder / "half.nii.gz", half, aff),
        "empty": write_nifti(folder / "empty.nii.gz", np.zeros(SHAPE, np.uint8), aff),
    }
    raw = gzip.compress(nifti_bytes(full, aff), mtime=0)
    masks["corrupt"] = folder / "corrupt.nii.gz"
    masks["corrupt"].write_bytes(raw[: len(raw) // 2])
    rng = np.random.default_rng(1234)
    images = {}
    for sid in ("B01", "B02", "B03"):
        images[sid] = write_nifti(folder / f"{sid}_t1c.nii.gz",
                                  rng.normal(100, 10, SHAPE).astype(np.float32), aff)
    plan = {"B01": ("full", "half"), "B02": ("full", "empty"), "B03": ("full", "corrupt")}
    lines = ["subject_id,timepoint,days_from_baseline,mask_path,image_path"]
    for sid, (first, second) in plan.items():
        lines += [f"{sid},baseline,0,{first}.nii.gz,{sid}_t1c.nii.gz",
                  f"{sid},week8,56,{second}.nii.gz,{sid}_t1c.nii.gz"]
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    pfs = folder / "pfs.csv"
    pfs.write_text("subject_id,pfs_days,pfs_event,arm\nB01,300,0,X\nB02,120,1,Y\nB03,90,1,X\n",
                   encoding="utf-8")
    inputs = [manifest, pfs, *masks.values(), *images.values()]
    return {"manifest": manifest, "pfs": pfs, "inputs": inputs}


def provenance(out: Path) -> dict:
    return json.loads((out / "provenance.json").read_text(encoding="utf-8"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same cohort run by the CLI and by `run_cohort` (path and Manifest object)."""
    import cnsvol

    base = tmp_path_factory.mktemp("prov").resolve()
    cohort = write_cohort(base / "cohort")
    manifest, pfs = cohort["manifest"], cohort["pfs"]
    cli_out, lib_out, obj_out = base / "cli", base / "lib", base / "obj"
    code = run_cli(["run", str(manifest), "--out", str(cli_out), "--pfs", str(pfs),
                    "--criteria", "tbcrc022", "--jobs", "1", "--quiet"])
    assert code == 3, "B03 has a corrupt mask"
    summary = cnsvol.run_cohort(str(manifest), lib_out, cnsvol.RunConfig("tbcrc022"),
                                pfs=str(pfs), jobs=1)
    assert summary.n_failed == 1
    cnsvol.run_cohort(cnsvol.read_manifest(manifest), obj_out, cnsvol.RunConfig("tbcrc022"),
                      pfs=cnsvol.read_pfs(pfs), jobs=1)
    return cohort, cli_out, lib_out, obj_out


def test_library_provenance_has_the_cli_top_level_keys(runs):
    _, cli_out, lib_out, obj_out = runs
    cli_keys = set(provenance(cli_out))
    assert set(provenance(lib_out)) == cli_keys
    assert set(provenance(obj_out)) == cli_keys
    # the ones docs/outputs.md names
    assert {"inputs", "criteria", "executor", "subject_seconds",
            "subjects_from_earlier_run"} <= cli_keys


def test_library_provenance_hashes_the_same_inputs_as_the_cli(runs):
    _, cli_out, lib_out, obj_out = runs
    cli_inputs = provenance(cli_out)["inputs"]
    assert provenance(lib_out)["inputs"] == cli_inputs
    assert provenance(obj_out)["inputs"] == cli_inputs


def test_inputs_are_every_input_file_with_its_sha256(runs):
    cohort, _, lib_out, _ = runs
    inputs = provenance(lib_out)["inputs"]
    resolved = {Path(key).resolve(): value for key, value in inputs.items()}
    expected = {Path(p).resolve() for p in cohort["inputs"]}
    assert set(resolved) == expected  # manifest, PFS table, 4 masks, 3 images
    for path in (cohort["manifest"], cohort["pfs"], cohort["inputs"][2], cohort["inputs"][-1]):
        assert resolved[Path(path).resolve()] == sha256(Path(path)), path.name
    assert all(len(v) == 64 and int(v, 16) >= 0 for v in resolved.values())


def test_library_provenance_records_criteria_and_subject_errors(runs):
    import cnsvol

    _, cli_out, lib_out, _ = runs
    lib, cli = provenance(lib_out), provenance(cli_out)
    assert lib["criteria"] == cli["criteria"]
    assert lib["criteria"]["name"] == "tbcrc022"
    assert lib["criteria"] == json.loads(json.dumps(cnsvol.get_criteria("tbcrc022").to_dict()))
    assert set(lib["subject_errors"]) == {"B03"}
    assert "corrupt.nii.gz" in lib["subject_errors"]["B03"]
    assert lib["subject_errors"] == cli["subject_errors"]
    assert set(lib["subject_seconds"]) == {"B01", "B02", "B03"}
    assert lib["subjects_from_earlier_run"] == []


def test_library_and_cli_write_the_same_tables(runs):
    _, cli_out, lib_out, obj_out = runs
    for name in ("subjects.csv", "timepoints.csv", "tracks.csv", "lesions.csv", "cohort.json"):
        assert (lib_out / name).read_bytes() == (cli_out / name).read_bytes(), name
        assert (obj_out / name).read_bytes() == (cli_out / name).read_bytes(), name


def test_library_rerun_records_subjects_from_the_earlier_run(runs, tmp_path):
    """A second run_cohort of the same call on the same folder reuses the stored results and
    says so in its provenance."""
    import cnsvol

    cohort, _, _, _ = runs
    out = tmp_path / "again"
    config = cnsvol.RunConfig("tbcrc022", qc=False)
    for _ in range(2):
        cnsvol.run_cohort(str(cohort["manifest"]), out, config, pfs=str(cohort["pfs"]), jobs=1)
    prov = provenance(out)
    assert sorted(prov["subjects_from_earlier_run"]) == ["B01", "B02", "B03"]
    assert prov["subject_seconds"] == {}
    assert set(prov["subject_errors"]) == {"B03"}
