"""DICOM SEG, RTSTRUCT and DICOM image series (issue 14) against the published reference values.

Written from the specification (issue 14) and ../shared/realdata/README.md, section "DICOM
segmentations (dicom/)", with dicom/reference_values.json; not from the implementation.

Independent oracles used here, none of them cnsvol:

* SimpleITK on the source NRRDs (ITK world is LPS: RAS = diag(-1, -1, 1) @ LPS), for the dcmqi
  SEGs, which the README states are identical to their NRRD voxel for voxel;
* nibabel on MIRP's NIfTI masks (nibabel's affine is RAS already), for the STS_002 RTSTRUCTs;
* a direct pydicom decode of the SEG frames (ImagePositionPatient + column index x row
  direction x column spacing + row index x column direction x row spacing), for the small SEGs
  without a source label map;
* pydicom on the image slices' own tags (positions, orientation, pixel spacing), for the image
  series geometry.

Voxel sets are always compared in world space (RAS mm, voxel centres), never in array order:
highdicom returns the dcmqi volumes with the slice axis pointing to -z while the NRRDs run +z.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

import cnsvol
from cnsvol import CnsvolError, MaskError, read_image, read_mask

pytestmark = pytest.mark.realdata

CLI = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "cnsvol"

LIVER_VOXEL_MM3 = 0.656986439209  # 0.810547 x 0.810547 x 1.0
WORLD_TOL_MM = 1e-3  # voxel centres agree to this in world space
CENTROID_TOL_MM = 1e-3


# --------------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture(scope="session")
def dicom_dir(realdata) -> Path:
    path = realdata / "dicom"
    if not path.is_dir():
        pytest.skip(f"DICOM real-data folder not found: {path}")
    return path


@pytest.fixture(scope="session")
def refvals(dicom_dir) -> dict:
    return json.loads((dicom_dir / "reference_values.json").read_text())


@pytest.fixture(scope="session")
def dcmqi(dicom_dir) -> Path:
    return dicom_dir / "dcmqi"


@pytest.fixture(scope="session")
def sts(dicom_dir) -> Path:
    return dicom_dir / "mirp_sts" / "STS_002"


def mask_world(mask, select=None) -> np.ndarray:
    """World (RAS mm) centres of the mask's voxels where ``select(data)`` (default data > 0)."""
    data = np.asarray(mask.data)
    assert data.ndim == 3, f"mask data must be 3-D [i, j, k], got shape {data.shape}"
    on = data > 0 if select is None else select(data)
    idx = np.argwhere(on).astype(np.float64)
    aff = np.asarray(mask.affine, dtype=np.float64)
    return idx @ aff[:3, :3].T + aff[:3, 3]


def sitk_ras_affine(img: sitk.Image) -> np.ndarray:
    """RAS affine of a SimpleITK image for the [i, j, k] index (x fastest)."""
    direction = np.array(img.GetDirection(), dtype=np.float64).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction @ np.diag(img.GetSpacing())
    lps[:3, 3] = img.GetOrigin()
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def sitk_world(path: Path, select) -> tuple[np.ndarray, np.ndarray]:
    """(world RAS centres of voxels where select(array), RAS affine) of a file read by SimpleITK."""
    img = sitk.ReadImage(str(path))
    arr = sitk.GetArrayFromImage(img)  # [k, j, i]
    idx = np.argwhere(select(arr))[:, ::-1].astype(np.float64)  # -> [i, j, k]
    aff = sitk_ras_affine(img)
    return idx @ aff[:3, :3].T + aff[:3, 3], aff


def nifti_world(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj)
    idx = np.argwhere(data > 0).astype(np.float64)
    aff = np.asarray(img.affine, dtype=np.float64)
    return idx @ aff[:3, :3].T + aff[:3, 3], aff


def grid_indices(points: np.ndarray, ref_affine: np.ndarray, what: str) -> set:
    """Integer indices of world points on the reference grid; every point must sit on a voxel
    centre of that grid to within WORLD_TOL_MM."""
    if len(points) == 0:
        return set()
    inv = np.linalg.inv(ref_affine)
    idx = np.rint(points @ inv[:3, :3].T + inv[:3, 3])
    back = idx @ ref_affine[:3, :3].T + ref_affine[:3, 3]
    err = float(np.abs(back - points).max())
    assert err < WORLD_TOL_MM, (
        f"{what}: voxel centres lie up to {err:.4g} mm off the reference grid's voxel centres"
    )
    return set(map(tuple, idx.astype(np.int64).tolist()))


def assert_same_world_voxels(ours: np.ndarray, theirs: np.ndarray, ref_affine, what: str):
    a = grid_indices(ours, ref_affine, f"{what} (cnsvol)")
    b = grid_indices(theirs, ref_affine, f"{what} (reference)")
    assert len(a) == len(ours), f"{what}: cnsvol has duplicate voxel centres"
    only_ours, only_theirs = len(a - b), len(b - a)
    assert only_ours == 0 and only_theirs == 0, (
        f"{what}: {len(a & b)} voxels in both, {only_ours} only in cnsvol's mask, "
        f"{only_theirs} only in the reference"
    )


def seg_world_pydicom(path: Path) -> dict[int, np.ndarray]:
    """Independent decode of a DICOM SEG: segment number -> world RAS centres of its voxels."""
    ds = pydicom.dcmread(str(path))
    frames = ds.pixel_array
    if frames.ndim == 2:
        frames = frames[None]
    shared = ds.SharedFunctionalGroupsSequence[0]
    out: dict[int, list] = {}
    for f, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
        pm = fg.PixelMeasuresSequence[0] if "PixelMeasuresSequence" in fg else shared.PixelMeasuresSequence[0]
        po = (fg.PlaneOrientationSequence[0] if "PlaneOrientationSequence" in fg
              else shared.PlaneOrientationSequence[0])
        iop = np.array(po.ImageOrientationPatient, dtype=np.float64)
        row_sp, col_sp = (float(v) for v in pm.PixelSpacing)
        ipp = np.array(fg.PlanePositionSequence[0].ImagePositionPatient, dtype=np.float64)
        seg = int(fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        rc = np.argwhere(frames[f] > 0).astype(np.float64)
        lps = ipp + np.outer(rc[:, 1] * col_sp, iop[:3]) + np.outer(rc[:, 0] * row_sp, iop[3:])
        out.setdefault(seg, []).append(lps * np.array([-1.0, -1.0, 1.0]))
    return {s: np.unique(np.concatenate(v), axis=0) for s, v in out.items()}


def series_corners_ras(folder: Path) -> np.ndarray:
    """World RAS centres of the 8 corner voxels of an image series, from the slices' own tags."""
    slices = [pydicom.dcmread(str(p), stop_before_pixels=True) for p in sorted(folder.iterdir())
              if p.is_file()]
    iop = np.array(slices[0].ImageOrientationPatient, dtype=np.float64)
    normal = np.cross(iop[:3], iop[3:])
    slices.sort(key=lambda d: float(np.dot(normal, np.array(d.ImagePositionPatient, float))))
    rows, cols = int(slices[0].Rows), int(slices[0].Columns)
    row_sp, col_sp = (float(v) for v in slices[0].PixelSpacing)
    corners = []
    for d in (slices[0], slices[-1]):
        ipp = np.array(d.ImagePositionPatient, dtype=np.float64)
        for r in (0, rows - 1):
            for c in (0, cols - 1):
                corners.append(ipp + c * col_sp * iop[:3] + r * row_sp * iop[3:])
    return np.array(corners) * np.array([-1.0, -1.0, 1.0])


def grid_corners_ras(shape, affine) -> np.ndarray:
    aff = np.asarray(affine, dtype=np.float64)
    pts = []
    for i in (0, shape[0] - 1):
        for j in (0, shape[1] - 1):
            for k in (0, shape[2] - 1):
                pts.append(aff[:3, :3] @ np.array([i, j, k], float) + aff[:3, 3])
    return np.array(pts)


def assert_same_point_set(a: np.ndarray, b: np.ndarray, tol: float, what: str):
    a = np.unique(np.round(a, 6), axis=0)
    b = np.unique(np.round(b, 6), axis=0)
    assert a.shape == b.shape, f"{what}: {len(a)} distinct points vs {len(b)}"
    d = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
    assert float(d.min(axis=1).max()) < tol and float(d.min(axis=0).max()) < tol, (
        f"{what}: point sets differ by up to {max(d.min(axis=1).max(), d.min(axis=0).max()):.4g} mm"
    )


def by_number(mask) -> dict:
    segs = {int(s.number): s for s in mask.segments}
    assert len(segs) == len(mask.segments), "duplicate segment numbers"
    return segs


def check_segment(seg, *, name, voxels, volume, centroid, voxel_mm3=None):
    assert seg.name == name
    assert int(seg.voxel_count) == voxels
    assert float(seg.volume_mm3) == pytest.approx(volume, rel=1e-6)
    assert tuple(seg.centroid_ras_mm) == pytest.approx(tuple(centroid), abs=CENTROID_TOL_MM)
    if voxel_mm3 is not None:
        assert float(seg.volume_mm3) == pytest.approx(seg.voxel_count * voxel_mm3, rel=1e-9)


def run_cli(*args, timeout=300):
    assert CLI.exists(), f"{CLI} not found"
    return subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, check=False)


def numbers_in(doc):
    """Every number in a parsed JSON document."""
    if isinstance(doc, bool):
        return
    if isinstance(doc, (int, float)):
        yield doc
    elif isinstance(doc, dict):
        for v in doc.values():
            yield from numbers_in(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from numbers_in(v)


def error_text(excinfo) -> str:
    return str(excinfo.value)


# --------------------------------------------------------------------------------------------
# the reference values themselves (README vs reference_values.json)


def test_readme_and_json_reference_values_agree(refvals):
    seg = refvals["SEG"]
    liver = seg["dcmqi/liver.dcm"]
    assert liver["voxel_mm3"] == pytest.approx(LIVER_VOXEL_MM3, rel=1e-12)
    assert liver["segments"]["1"]["voxels"] == 107098
    assert liver["segments"]["1"]["volume_mm3"] == pytest.approx(107098 * LIVER_VOXEL_MM3, rel=1e-12)
    po = seg["dcmqi/partial_overlaps.dcm"]["segments"]
    counts = {int(k): v["voxels"] for k, v in po.items()}
    assert counts == {1: 9602, 2: 11888, 3: 10743, 4: 6693, 5: 4713}
    assert sum(counts.values()) == 43639
    # inclusion-exclusion with the stated overlaps (4 and 5 overlap nothing) gives the union
    assert counts[1] + counts[2] + counts[3] - 3017 - 95 - 50 + 28 + counts[4] + counts[5] == 40505
    assert 40505 * LIVER_VOXEL_MM3 == pytest.approx(26611.24, abs=0.005)
    assert seg["dcmqi/23x38x3/seg/label.seg"]["segments"]["1"]["voxels"] == 322
    assert 322 * 0.7 * 0.7 * 2.5 == pytest.approx(394.45, rel=1e-12)
    assert seg["dcmqi/sr-example/seg.dcm"]["segments"]["1"]["volume_mm3"] == pytest.approx(
        795 * 3.537818 * 3.537818 * 3.375, rel=1e-12)
    assert seg["mirp_ibsi_digital_phantom/dicom/mask/mask.dcm"]["segments"]["1"]["voxels"] == 74
    mr = refvals["RTSTRUCT"]["mirp_sts/STS_002/MR_T1"]
    roi = mr["rois"]["GTV_Mass_MR_T1"]
    assert roi["voxel_centre_rule"]["voxels"] == 17090 == mr["nifti_mask"]["voxels"]
    assert roi["voxel_centre_rule"]["volume_mm3"] == pytest.approx(17090 * mr["voxel_mm3"], rel=1e-12)
    assert roi["fillpoly_rule"]["volume_mm3"] == pytest.approx(18236 * mr["voxel_mm3"], rel=1e-12)
    assert roi["planar_volume_mm3"] == pytest.approx(
        roi["planar_area_sum_mm2"] * mr["image_grid"]["slice_spacing_mean"], rel=1e-9)
    pet = refvals["RTSTRUCT"]["mirp_sts/STS_002/PET"]
    roi = pet["rois"]["GTV_Mass_PET"]
    assert roi["voxel_centre_rule"]["voxels"] == 555 == pet["nifti_mask"]["voxels"]
    assert roi["fillpoly_rule"]["voxels"] == 754
    assert roi["fillpoly_rule"]["volume_mm3"] == pytest.approx(754 * pet["voxel_mm3"], rel=1e-12)


# --------------------------------------------------------------------------------------------
# DICOM SEG: dcmqi liver


def test_liver_seg_count_volume_centroid(dcmqi):
    m = read_mask(dcmqi / "liver.dcm")
    assert isinstance(m, cnsvol.Mask)
    aff = np.asarray(m.affine)
    assert aff.shape == (4, 4) and aff.dtype == np.float64
    assert float(m.voxel_volume_mm3) == pytest.approx(LIVER_VOXEL_MM3, rel=1e-6)
    assert int((np.asarray(m.data) > 0).sum()) == 107098
    assert isinstance(m.notes, tuple) and all(isinstance(n, str) for n in m.notes)
    (seg,) = m.segments
    assert int(seg.number) == 1
    check_segment(seg, name="Liver", voxels=107098, volume=70361.93366640549,
                  centroid=(74.0571, 33.2620, -127.6995), voxel_mm3=LIVER_VOXEL_MM3)
    assert seg.planar_volume_mm3 is None
    # the label value of a voxel is its SegmentNumber
    assert set(np.unique(np.asarray(m.data)).tolist()) == {0, 1}


def test_liver_seg_equals_source_nrrd_in_world_space(dcmqi):
    m = read_mask(dcmqi / "liver.dcm")
    theirs, ref_aff = sitk_world(dcmqi / "liver_seg.nrrd", lambda a: a > 0)
    assert len(theirs) == 107098
    ours = mask_world(m)
    assert_same_world_voxels(ours, theirs, ref_aff, "liver.dcm vs liver_seg.nrrd")
    assert tuple(ours.mean(axis=0)) == pytest.approx((74.0571, 33.2620, -127.6995), abs=CENTROID_TOL_MM)


def test_liver_seg_slice_spacing_from_positions(dcmqi):
    m = read_mask(dcmqi / "liver.dcm")
    aff = np.asarray(m.affine, dtype=np.float64)
    assert abs(np.linalg.det(aff[:3, :3])) == pytest.approx(LIVER_VOXEL_MM3, rel=1e-6)
    assert sorted(np.linalg.norm(aff[:3, :3], axis=0)) == pytest.approx([0.810547, 0.810547, 1.0], rel=1e-6)
    zs = np.unique(np.round(mask_world(m)[:, 2], 3))
    assert zs.tolist() == pytest.approx([-128.690002, -127.690002, -126.690002], abs=WORLD_TOL_MM)


# --------------------------------------------------------------------------------------------
# DICOM SEG: five overlapping segments


PARTIAL = {  # number: (label, voxels, volume mm3, centroid RAS)
    1: ("GREEN", 9602, 6308.383789284818, (75.1194, 45.9222, -127.6900)),
    2: ("ORANGE", 11888, 7810.254789316592, (11.7116, 22.1172, -127.6900)),
    3: ("PURPLE", 10743, 7058.005316422287, (27.3963, 28.0944, -126.7227)),
    4: ("LIGHT_BLUE", 6693, 4397.210237625837, (-28.5729, -60.8724, -128.6900)),
    5: ("DARK_BLUE", 4713, 3096.377087992017, (99.4197, -69.8231, -128.6900)),
}
# which NRRD holds which segment (seg-example_partial_overlaps.json; label value = segment number)
PARTIAL_NRRD = {1: "partial_overlaps-1.nrrd", 4: "partial_overlaps-1.nrrd",
                5: "partial_overlaps-1.nrrd", 2: "partial_overlaps-2.nrrd",
                3: "partial_overlaps-3.nrrd"}


@pytest.fixture(scope="module")
def partial(dcmqi):
    return read_mask(dcmqi / "partial_overlaps.dcm")


def test_partial_overlaps_each_segment(partial):
    segs = by_number(partial)
    assert sorted(segs) == [1, 2, 3, 4, 5]
    for number, (name, voxels, volume, centroid) in PARTIAL.items():
        check_segment(segs[number], name=name, voxels=voxels, volume=volume, centroid=centroid,
                      voxel_mm3=LIVER_VOXEL_MM3)
        assert segs[number].planar_volume_mm3 is None
    # each segment keeps its full count: the sum is 43639, not the union's 40505
    assert sum(int(s.voxel_count) for s in partial.segments) == 43639


def test_partial_overlaps_union_is_the_lesion_region(partial):
    assert int((np.asarray(partial.data) > 0).sum()) == 40505
    assert 40505 * float(partial.voxel_volume_mm3) == pytest.approx(26611.235720160545, rel=1e-6)
    labels = set(np.unique(np.asarray(partial.data)).tolist()) - {0}
    assert labels <= {1, 2, 3, 4, 5} and {4, 5} <= labels


def test_partial_overlaps_overlap_is_not_collapsed_silently(partial):
    # voxels in more than one segment: 3017 + 95 + 50 - 2 x 28 (the triple overlap) = 3106
    text = " ".join(partial.notes)
    assert re.search(r"(?<!\d)3[,\s_.']?106(?!\d)", text), (
        f"no note states the 3106 voxels shared by overlapping segments; notes: {partial.notes!r}")


def test_partial_overlaps_equal_the_nrrds_in_world_space(dcmqi, partial):
    per_seg = {}
    ref_aff = None
    for number, fname in PARTIAL_NRRD.items():
        pts, aff = sitk_world(dcmqi / fname, lambda a, n=number: a == n)
        assert len(pts) == PARTIAL[number][1], f"NRRD oracle for segment {number}"
        ref_aff = aff if ref_aff is None else ref_aff
        np.testing.assert_allclose(aff, ref_aff, rtol=0, atol=1e-4)
        per_seg[number] = grid_indices(pts, ref_aff, f"{fname} label {number}")
    union = set().union(*per_seg.values())
    assert len(union) == 40505
    union_world = np.array(sorted(union), dtype=np.float64) @ ref_aff[:3, :3].T + ref_aff[:3, 3]
    ours = mask_world(partial)
    assert_same_world_voxels(ours, union_world, ref_aff, "partial_overlaps.dcm union vs the NRRDs")
    # where a voxel belongs to one segment only, its label is that segment's number; where
    # segments overlap, it is one of theirs
    data = np.asarray(partial.data)
    idx = np.argwhere(data > 0)
    keys = grid_indices(mask_world(partial), ref_aff, "partial_overlaps.dcm")
    assert len(keys) == len(idx)
    aff = np.asarray(partial.affine, dtype=np.float64)
    inv = np.linalg.inv(ref_aff)
    ref_idx = np.rint((idx @ aff[:3, :3].T + aff[:3, 3]) @ inv[:3, :3].T + inv[:3, 3]).astype(np.int64)
    wrong = 0
    for (i, j, k), key in zip(idx, map(tuple, ref_idx.tolist())):
        members = {n for n, s in per_seg.items() if key in s}
        if int(data[i, j, k]) not in members:
            wrong += 1
    assert wrong == 0, f"{wrong} voxels carry a label that is not one of their segments' numbers"


@pytest.mark.parametrize("spec, numbers, union", [
    ("1,2", {1, 2}, 9602 + 11888 - 3017),
    ("1,3", {1, 3}, 9602 + 10743 - 95),
    ("2,3", {2, 3}, 11888 + 10743 - 50),
    ("1,2,3", {1, 2, 3}, 9602 + 11888 + 10743 - 3017 - 95 - 50 + 28),
    ("GREEN,ORANGE", {1, 2}, 9602 + 11888 - 3017),
    ("orange, purple", {2, 3}, 11888 + 10743 - 50),
    ("*BLUE", {4, 5}, 6693 + 4713),
    ("1,PURPLE", {1, 3}, 9602 + 10743 - 95),
    ("artery", {2}, 11888),  # coded property type meaning of ORANGE
    ("Edema", {4}, 6693),  # of LIGHT_BLUE
    ("VEIN", {5}, 4713),  # of DARK_BLUE
])
def test_partial_overlaps_selection_and_stated_overlaps(dcmqi, spec, numbers, union):
    m = read_mask(dcmqi / "partial_overlaps.dcm", segments=spec)
    segs = by_number(m)
    assert set(segs) == numbers
    for n in numbers:
        assert int(segs[n].voxel_count) == PARTIAL[n][1]
        assert segs[n].name == PARTIAL[n][0]
    data = np.asarray(m.data)
    assert int((data > 0).sum()) == union
    assert set(np.unique(data).tolist()) - {0} <= numbers


def assert_selection_not_silent(path, spec):
    """A selection matching nothing is refused naming the file and the selection, or says
    so in a note over an empty mask; never a silent empty result."""
    try:
        m = read_mask(path, segments=spec)
    except MaskError as exc:
        msg = str(exc)
        assert spec.lower() in msg.lower(), msg
        assert path.name in msg, msg
    else:
        text = " ".join(m.notes)
        assert spec.lower() in text.lower(), (
            f"selection {spec!r} matched nothing, and no note says so: notes {m.notes!r}")
        assert len(m.segments) == 0 and int((np.asarray(m.data) > 0).sum()) == 0


@pytest.mark.parametrize("spec", ["NOSUCH*", "99"])
def test_seg_selection_matching_nothing_is_not_silent(dcmqi, spec):
    assert_selection_not_silent(dcmqi / "partial_overlaps.dcm", spec)


# --------------------------------------------------------------------------------------------
# DICOM SEG: bit-packed frames, SR example, IBSI phantom


def test_bitpacked_23x38x3_seg(dcmqi):
    path = dcmqi / "23x38x3" / "seg" / "label.seg"
    m = read_mask(path)
    assert float(m.voxel_volume_mm3) == pytest.approx(1.225, rel=1e-6)
    (seg,) = m.segments
    check_segment(seg, name="Liver", voxels=322, volume=394.45,
                  centroid=(-55.6584, -12.0710, -175.2500), voxel_mm3=1.225)
    theirs, ref_aff = sitk_world(dcmqi / "23x38x3" / "nrrd" / "label.nrrd", lambda a: a > 0)
    assert len(theirs) == 322
    assert_same_world_voxels(mask_world(m), theirs, ref_aff, "label.seg vs label.nrrd")


def test_bitpacked_seg_folder_holding_one_seg(dcmqi):
    m = read_mask(dcmqi / "23x38x3" / "seg")
    assert int((np.asarray(m.data) > 0).sum()) == 322


def _sr_volume_ml(sr_path: Path) -> float:
    ds = pydicom.dcmread(str(sr_path))
    found = []

    def walk(items):
        for it in items:
            if (it.get("ValueType") == "NUM" and "ConceptNameCodeSequence" in it
                    and it.ConceptNameCodeSequence[0].CodeMeaning == "Volume"):
                mv = it.MeasuredValueSequence[0]
                assert mv.MeasurementUnitsCodeSequence[0].CodeValue == "ml"
                found.append(float(mv.NumericValue))
            if "ContentSequence" in it:
                walk(it.ContentSequence)

    walk(ds.ContentSequence)
    assert len(found) == 1, found
    return found[0]


def test_sr_example_seg_volume_matches_the_sr(dcmqi):
    folder = dcmqi / "sr-example"
    sr_ml = _sr_volume_ml(folder / "sr.dcm")
    assert sr_ml == pytest.approx(33.5824, abs=1e-9)
    m = read_mask(folder / "seg.dcm")
    (seg,) = m.segments
    check_segment(seg, name="Neoplasm, Primary", voxels=795, volume=33582.411607140835,
                  centroid=(11.7295, 224.8788, -97.0215), voxel_mm3=42.242027178793506)
    # the SR's value is given to 4 decimals in ml
    assert float(seg.volume_mm3) == pytest.approx(sr_ml * 1000.0, abs=0.05)
    oracle = seg_world_pydicom(folder / "seg.dcm")
    assert len(oracle[1]) == 795
    assert_same_world_voxels(mask_world(m), oracle[1], np.asarray(m.affine, float),
                             "sr-example seg.dcm vs a direct pydicom decode")


def test_sr_example_folder_reads_its_one_seg(dcmqi):
    # the folder holds seg.dcm and the SR document; exactly one of them is a segmentation
    m = read_mask(dcmqi / "sr-example")
    assert int((np.asarray(m.data) > 0).sum()) == 795


def test_sr_document_is_not_a_mask(dcmqi):
    path = dcmqi / "sr-example" / "sr.dcm"
    with pytest.raises(MaskError) as exc:
        read_mask(path)
    assert "sr.dcm" in error_text(exc)


def test_ibsi_phantom_seg_coronal_1mm(dicom_dir):
    path = dicom_dir / "mirp_ibsi_digital_phantom" / "dicom" / "mask" / "mask.dcm"
    m = read_mask(path)
    # geometry from the file: 1.0 mm voxels, not the NIfTI phantom's 2 mm (592 mm3)
    assert float(m.voxel_volume_mm3) == pytest.approx(1.0, rel=1e-6)
    (seg,) = m.segments
    check_segment(seg, name="ROI", voxels=74, volume=74.0,
                  centroid=(-1.9459, -1.5676, -1.4459), voxel_mm3=1.0)
    assert float(seg.volume_mm3) != pytest.approx(592.0, rel=0.01)
    aff = np.asarray(m.affine, dtype=np.float64)
    assert sorted(np.linalg.norm(aff[:3, :3], axis=0)) == pytest.approx([1.0, 1.0, 1.0], rel=1e-6)
    ours = mask_world(m)
    # coronal: IOP (1,0,0 / 0,0,-1), the 4 frames are stacked along y
    assert np.unique(np.round(ours[:, 1], 3)).size == 4
    oracle = seg_world_pydicom(path)
    assert len(oracle[1]) == 74
    assert_same_world_voxels(ours, oracle[1], aff, "phantom mask.dcm vs a direct pydicom decode")


# --------------------------------------------------------------------------------------------
# RTSTRUCT: STS_002 MR and PET


RT = {
    "MR_T1": {
        "roi": "GTV_Mass_MR_T1", "voxel_mm3": 3.1184689059895887,
        "centre": (17090, 53294.63360336207, (-81.176, -129.269, -551.591)),
        "fill": (18236, 56868.39896962614, (-81.218, -129.235, -551.606)),
        "planar": 53267.61437579223, "fill_extra": 1146,
        "image_spacing": (0.976562, 0.976562, 3.269955), "image_shape": (115, 90, 35),
    },
    "PET": {
        "roi": "GTV_Mass_PET", "voxel_mm3": 97.796630859375,
        "centre": (555, 54277.130126953125, (-81.287, -129.462, -551.483)),
        "fill": (754, 73738.65966796875, (-81.146, -129.480, -551.607)),
        "planar": 53172.868792514884, "fill_extra": 199,
        "image_spacing": (5.46875, 5.46875, 3.27), "image_shape": (30, 27, 48),
    },
}


def rs_path(sts: Path, series: str) -> Path:
    return sts / series / "dicom" / "mask" / "RS.dcm"


def image_dir(sts: Path, series: str) -> Path:
    return sts / series / "dicom" / "image"


@pytest.fixture(scope="module")
def rt_centre(sts):
    return {s: read_mask(rs_path(sts, s)) for s in RT}


@pytest.mark.parametrize("series", sorted(RT))
def test_rtstruct_voxel_centre_rule(rt_centre, series):
    ref = RT[series]
    m = rt_centre[series]
    voxels, volume, centroid = ref["centre"]
    assert float(m.voxel_volume_mm3) == pytest.approx(ref["voxel_mm3"], rel=1e-6)
    (seg,) = m.segments
    assert int(seg.number) == 1
    check_segment(seg, name=ref["roi"], voxels=voxels, volume=volume, centroid=centroid,
                  voxel_mm3=ref["voxel_mm3"])
    assert int((np.asarray(m.data) > 0).sum()) == voxels
    assert set(np.unique(np.asarray(m.data)).tolist()) == {0, 1}


@pytest.mark.parametrize("series", sorted(RT))
def test_rtstruct_planar_volume(rt_centre, series):
    (seg,) = rt_centre[series].segments
    assert seg.planar_volume_mm3 is not None
    assert float(seg.planar_volume_mm3) == pytest.approx(RT[series]["planar"], rel=1e-5)


@pytest.mark.parametrize("series", sorted(RT))
def test_rtstruct_fill_rule(sts, series):
    ref = RT[series]
    m = read_mask(rs_path(sts, series), rasterisation="fill")
    voxels, volume, centroid = ref["fill"]
    (seg,) = m.segments
    check_segment(seg, name=ref["roi"], voxels=voxels, volume=volume, centroid=centroid,
                  voxel_mm3=ref["voxel_mm3"])
    # the planar volume does not depend on the rasterisation rule
    assert float(seg.planar_volume_mm3) == pytest.approx(ref["planar"], rel=1e-5)
    # the fillPoly mask holds every voxel of MIRP's (voxel-centre) mask, plus fill_extra
    nifti = sts / series / "nifti" / "mask" / "mask.nii.gz"
    theirs, ref_aff = nifti_world(nifti)
    a = grid_indices(mask_world(m), ref_aff, f"{series} fill rule")
    b = grid_indices(theirs, ref_aff, f"{series} MIRP mask")
    assert len(b - a) == 0 and len(a - b) == ref["fill_extra"]


@pytest.mark.parametrize("series", sorted(RT))
def test_rtstruct_equals_mirp_nifti_in_world_space(rt_centre, sts, series):
    nifti = sts / series / "nifti" / "mask" / "mask.nii.gz"
    theirs, ref_aff = nifti_world(nifti)
    assert len(theirs) == RT[series]["centre"][0]
    ours = mask_world(rt_centre[series])
    assert_same_world_voxels(ours, theirs, ref_aff, f"{series} RS.dcm vs MIRP's mask.nii.gz")
    assert tuple(ours.mean(axis=0)) == pytest.approx(tuple(theirs.mean(axis=0)), abs=1e-3)


@pytest.mark.parametrize("series", sorted(RT))
def test_rtstruct_reference_beside_equals_explicit(rt_centre, sts, series):
    beside = rt_centre[series]
    explicit = read_mask(rs_path(sts, series), reference=image_dir(sts, series))
    np.testing.assert_array_equal(np.asarray(explicit.data), np.asarray(beside.data))
    np.testing.assert_allclose(np.asarray(explicit.affine), np.asarray(beside.affine), rtol=0, atol=1e-9)
    assert [(s.number, s.name, s.voxel_count) for s in explicit.segments] == \
        [(s.number, s.name, s.voxel_count) for s in beside.segments]


@pytest.mark.parametrize("series", sorted(RT))
def test_rtstruct_lies_on_the_image_series_grid(rt_centre, sts, series):
    m = rt_centre[series]
    data, aff = read_image(image_dir(sts, series))
    data = np.asarray(data)
    assert data.ndim == 3
    assert sorted(data.shape) == sorted(RT[series]["image_shape"])
    assert np.asarray(m.data).shape == data.shape
    np.testing.assert_allclose(np.asarray(m.affine), np.asarray(aff), rtol=0, atol=WORLD_TOL_MM)
    aff = np.asarray(aff, dtype=np.float64)
    assert sorted(np.linalg.norm(aff[:3, :3], axis=0)) == pytest.approx(
        sorted(RT[series]["image_spacing"]), rel=1e-6)
    assert_same_point_set(grid_corners_ras(data.shape, aff), series_corners_ras(image_dir(sts, series)),
                          WORLD_TOL_MM, f"{series} image grid corners")


@pytest.mark.parametrize("series", sorted(RT))
def test_rtstruct_folder_holding_it(sts, series):
    m = read_mask(sts / series / "dicom" / "mask")
    assert int((np.asarray(m.data) > 0).sum()) == RT[series]["centre"][0]


@pytest.mark.parametrize("spec", ["GTV*", "gtv_mass*", "1", "*Mass*"])
def test_rtstruct_selection(sts, spec):
    m = read_mask(rs_path(sts, "MR_T1"), segments=spec)
    (seg,) = m.segments
    assert seg.name == "GTV_Mass_MR_T1" and int(seg.number) == 1
    assert int(seg.voxel_count) == 17090


@pytest.mark.parametrize("spec", ["CTV*", "2"])
def test_rtstruct_selection_matching_nothing_is_not_silent(sts, spec):
    assert_selection_not_silent(rs_path(sts, "MR_T1"), spec)


def test_rtstruct_without_its_image_series_is_a_clear_error(sts, tmp_path):
    lonely = tmp_path / "lonely" / "RS.dcm"
    lonely.parent.mkdir()
    shutil.copyfile(rs_path(sts, "MR_T1"), lonely)
    with pytest.raises(MaskError) as exc:
        read_mask(lonely)
    msg = error_text(exc)
    assert "RS.dcm" in msg
    assert "reference" in msg.lower() or "image" in msg.lower(), msg


# --------------------------------------------------------------------------------------------
# detection by content, hostile files


@pytest.mark.parametrize("name", ["liver.nii.gz", "liver", "liver.nrrd"])
def test_seg_under_a_misleading_name(dcmqi, tmp_path, name):
    target = tmp_path / name
    shutil.copyfile(dcmqi / "liver.dcm", target)
    m = read_mask(target)
    (seg,) = m.segments
    assert seg.name == "Liver" and int(seg.voxel_count) == 107098
    assert float(seg.volume_mm3) == pytest.approx(70361.93366640549, rel=1e-6)


@pytest.mark.parametrize("name", ["contours", "contours.nii.gz"])
def test_rtstruct_under_a_misleading_name(sts, tmp_path, name):
    target = tmp_path / name
    shutil.copyfile(rs_path(sts, "PET"), target)
    m = read_mask(target, reference=image_dir(sts, "PET"))
    (seg,) = m.segments
    assert seg.name == "GTV_Mass_PET" and int(seg.voxel_count) == 555


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.02])
def test_truncated_seg_is_a_mask_error_naming_the_file(dcmqi, tmp_path, fraction):
    raw = (dcmqi / "liver.dcm").read_bytes()
    target = tmp_path / "cut_liver.dcm"  # no problem word in the file name
    target.write_bytes(raw[: int(len(raw) * fraction)])
    with pytest.raises(MaskError) as exc:
        read_mask(target)
    assert isinstance(exc.value, CnsvolError)
    msg = error_text(exc)
    assert "cut_liver.dcm" in msg
    # the problem named is the truncation, not a symptom of it (e.g. a frame-grid complaint)
    problem = msg.replace(str(target), "").replace(target.name, "").lower()
    assert any(w in problem for w in ("truncat", "incomplete", "ends early", "shorter than",
                                      "ends before", "cut short", "missing bytes")), msg


def test_mask_error_is_a_cnsvol_error():
    assert issubclass(MaskError, CnsvolError)


@pytest.mark.parametrize("rel", [
    "dcmqi/ct-3slice/01.dcm",
    "dcmqi/ct-3slice",
    "mirp_ibsi_digital_phantom/dicom/image/phantom.dcm",
    "mirp_sts/STS_002/MR_T1/dicom/image/000000.dcm",
])
def test_image_given_as_a_mask_is_refused(dicom_dir, rel):
    path = dicom_dir / rel
    with pytest.raises(MaskError) as exc:
        read_mask(path)
    assert path.name in error_text(exc)


def test_folder_with_two_segs_is_refused(dcmqi):
    with pytest.raises(MaskError) as exc:
        read_mask(dcmqi)
    assert "dcmqi" in error_text(exc)


# --------------------------------------------------------------------------------------------
# DICOM image series


def test_ct_series_slice_spacing_from_positions_not_slice_thickness(dcmqi):
    folder = dcmqi / "ct-3slice"
    assert float(pydicom.dcmread(str(folder / "01.dcm"), stop_before_pixels=True).SliceThickness) == 1.25
    data, aff = read_image(folder)
    data = np.asarray(data)
    aff = np.asarray(aff, dtype=np.float64)
    assert data.ndim == 3 and sorted(data.shape) == [3, 512, 512]
    assert aff.shape == (4, 4)
    assert sorted(np.linalg.norm(aff[:3, :3], axis=0)) == pytest.approx([0.810547, 0.810547, 1.0], rel=1e-6)
    voxel = abs(np.linalg.det(aff[:3, :3]))
    assert voxel == pytest.approx(LIVER_VOXEL_MM3, rel=1e-6)
    assert 107098 * voxel == pytest.approx(70361.93366640549, rel=1e-6)  # not 87952.42
    assert_same_point_set(grid_corners_ras(data.shape, aff), series_corners_ras(folder),
                          WORLD_TOL_MM, "ct-3slice grid corners")


def test_liver_seg_lies_on_the_ct_grid(dcmqi):
    m = read_mask(dcmqi / "liver.dcm")
    _, aff = read_image(dcmqi / "ct-3slice")
    grid_indices(mask_world(m), np.asarray(aff, dtype=np.float64), "liver.dcm on the CT grid")


# --------------------------------------------------------------------------------------------
# command line


def test_cli_volumes_seg_csv_names_the_segment(dcmqi):
    proc = run_cli("volumes", dcmqi / "liver.dcm", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert "Liver" in proc.stdout


def test_cli_volumes_partial_overlaps_json(dcmqi):
    proc = run_cli("volumes", dcmqi / "partial_overlaps.dcm", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    for name, *_ in PARTIAL.values():
        assert name in proc.stdout, f"segment {name} not named in the JSON output"
    assert doc["total_volume_mm3"] == pytest.approx(26611.235720160545, rel=1e-6)


def test_cli_volumes_segments_selection(dcmqi):
    proc = run_cli("volumes", dcmqi / "partial_overlaps.dcm", "--segments", "ORANGE,PURPLE",
                   "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["total_volume_mm3"] == pytest.approx((11888 + 10743 - 50) * LIVER_VOXEL_MM3, rel=1e-6)
    assert "ORANGE" in proc.stdout and "PURPLE" in proc.stdout


def test_cli_volumes_rtstruct_roi_json(sts):
    proc = run_cli("volumes", rs_path(sts, "MR_T1"), "--roi", "GTV*", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert "GTV_Mass_MR_T1" in proc.stdout
    assert doc["total_volume_mm3"] == pytest.approx(53294.63360336207, rel=1e-6)
    # the planar volume is reported beside the voxel volume
    assert any(isinstance(v, float) and v == pytest.approx(53267.61437579223, rel=1e-5)
               for v in numbers_in(doc)), "planar volume 53267.61 mm3 not in the JSON output"


def test_cli_volumes_rtstruct_explicit_image(sts, tmp_path):
    # the RTSTRUCT alone in a folder: its image series only through --image
    target = tmp_path / "RS.dcm"
    shutil.copyfile(rs_path(sts, "MR_T1"), target)
    proc = run_cli("volumes", target, "--roi", "GTV*", "--image", image_dir(sts, "MR_T1"),
                   "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert "GTV_Mass_MR_T1" in proc.stdout
    assert doc["total_volume_mm3"] == pytest.approx(53294.63360336207, rel=1e-6)


def test_cli_volumes_rtstruct_fill_csv(sts):
    proc = run_cli("volumes", rs_path(sts, "PET"), "--rasterisation", "fill", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert "GTV_Mass_PET" in proc.stdout
    assert "754" in proc.stdout


def test_cli_volumes_rtstruct_fill_json(sts):
    proc = run_cli("volumes", rs_path(sts, "PET"), "--rasterisation", "fill", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["total_volume_mm3"] == pytest.approx(73738.65966796875, rel=1e-6)


def test_cli_volumes_image_slice_as_mask_fails(dcmqi):
    path = dcmqi / "ct-3slice" / "01.dcm"
    proc = run_cli("volumes", path)
    assert proc.returncode != 0
    assert "01.dcm" in proc.stderr
    assert "Traceback" not in proc.stderr
