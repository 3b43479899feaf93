"""DICOM SEG masks against the reference values of ../shared/realdata/dicom (its README: counts,
volumes and RAS centroids computed with highdicom, a manual pydicom decode and SimpleITK on the
source NRRDs)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import cnsvol
from cnsvol.errors import MaskError

pytestmark = pytest.mark.realdata
pytest.importorskip("highdicom")


def _centroid(mask, label=None):
    sel = mask.data > 0 if label is None else mask.data == label
    idx = np.argwhere(sel).astype(np.float64)
    return mask.affine[:3, :3] @ idx.mean(axis=0) + mask.affine[:3, 3]


def test_dcmqi_liver_seg_matches_its_source_nrrd(realdata):
    folder = realdata / "dicom" / "dcmqi"
    seg = cnsvol.read_mask(folder / "liver.dcm")
    assert seg.source_format == "dicom-seg"
    assert int(np.count_nonzero(seg.data)) == 107098
    voxel = abs(np.linalg.det(seg.affine[:3, :3]))
    assert voxel * 107098 == pytest.approx(70361.93366640549, rel=1e-9)
    assert _centroid(seg) == pytest.approx([74.0571, 33.2620, -127.6995], abs=1e-4)
    nrrd = cnsvol.read_mask(folder / "liver_seg.nrrd")
    # the same voxels in world space: every SEG voxel centre is an NRRD foreground voxel
    world = seg.affine[:3, :3] @ np.argwhere(seg.data > 0).T + seg.affine[:3, 3:4]
    ijk = np.rint(np.linalg.inv(nrrd.affine)[:3, :3] @ world
                  + np.linalg.inv(nrrd.affine)[:3, 3:4]).astype(int)
    assert nrrd.data[tuple(ijk)].all() and int(np.count_nonzero(nrrd.data)) == 107098


def test_slice_spacing_comes_from_frame_positions_not_slice_thickness(realdata):
    seg = cnsvol.read_mask(realdata / "dicom" / "dcmqi" / "liver.dcm")
    spacing = np.linalg.norm(seg.affine[:3, :3], axis=0)
    assert sorted(spacing) == pytest.approx([0.810547, 0.810547, 1.0], abs=1e-6)


@pytest.mark.parametrize("number, count, centroid", [
    (1, 9602, (75.1194, 45.9222, -127.6900)), (2, 11888, (11.7116, 22.1172, -127.6900)),
    (3, 10743, (27.3963, 28.0944, -126.7227)), (4, 6693, (-28.5729, -60.8724, -128.6900)),
    (5, 4713, (99.4197, -69.8231, -128.6900))])
def test_each_segment_of_the_overlapping_seg_can_be_read_on_its_own(realdata, number, count,
                                                                  centroid):
    mask = cnsvol.read_mask(realdata / "dicom" / "dcmqi" / "partial_overlaps.dcm",
                            labels=[number])
    assert int(np.count_nonzero(mask.data)) == count
    assert _centroid(mask) == pytest.approx(centroid, abs=1e-4)


def test_overlapping_segments_are_each_measured_on_their_own_voxels(realdata):
    """README: overlaps 1&2 3017, 1&3 95, 2&3 50, all three 28; union 40505 of 43639."""
    mask = cnsvol.read_mask(realdata / "dicom" / "dcmqi" / "partial_overlaps.dcm")
    counts = {s.number: s.voxel_count for s in mask.segments}
    assert counts == {1: 9602, 2: 11888, 3: 10743, 4: 6693, 5: 4713}
    assert {s.number: s.name for s in mask.segments} == {
        1: "GREEN", 2: "ORANGE", 3: "PURPLE", 4: "LIGHT_BLUE", 5: "DARK_BLUE"}
    assert mask.segments[1].volume_mm3 == pytest.approx(7810.254789316592, rel=1e-12)
    assert mask.segments[2].centroid_ras_mm == pytest.approx((27.3963, 28.0944, -126.7227),
                                                             abs=1e-4)
    assert int(np.count_nonzero(mask.data)) == 40505  # the union is the lesion region
    # voxels in two or three segments: 3017 + 95 + 50 - 2 * 28
    assert mask.overlap_voxels == 3017 + 95 + 50 - 2 * 28
    assert any("voxels lie in more than one selected segment" in n for n in mask.notes)
    # a shared voxel carries the lower number: segment 2 gives up the 3017 it shares with 1
    assert int(np.count_nonzero(mask.data == 2)) == 11888 - 3017
    four_five = cnsvol.read_mask(realdata / "dicom" / "dcmqi" / "partial_overlaps.dcm",
                                 labels=[4, 5])  # these two do not overlap
    assert four_five.overlap_voxels == 0
    assert int(np.count_nonzero(four_five.data == 4)) == 6693
    assert int(np.count_nonzero(four_five.data == 5)) == 4713


def test_segments_are_chosen_by_name_pattern_number_or_property(realdata):
    path = realdata / "dicom" / "dcmqi" / "partial_overlaps.dcm"
    blues = cnsvol.read_mask(path, segments="*blue")
    assert [s.number for s in blues.segments] == [4, 5]
    assert [s.number for s in cnsvol.read_mask(path, segments="2,purple").segments] == [2, 3]
    edema = cnsvol.read_mask(path, segments="edema")  # the coded property of segment 4
    assert [(s.number, s.property) for s in edema.segments] == [(4, "Edema")]
    with pytest.raises(MaskError, match=r"no segment matches GTV\*.*1 GREEN"):
        cnsvol.read_mask(path, segments="GTV*")
    with pytest.raises(MaskError, match="DICOM SEG and RTSTRUCT masks only"):
        cnsvol.read_mask(realdata / "dicom" / "dcmqi" / "liver_seg.nrrd", segments="1")


@pytest.mark.parametrize("rel, voxels, mm3, centroid", [
    ("dcmqi/23x38x3/seg/label.seg", 322, 394.45, (-55.6584, -12.0710, -175.2500)),
    ("dcmqi/sr-example/seg.dcm", 795, 33582.411607140835, (11.7295, 224.8788, -97.0215)),
    ("mirp_ibsi_digital_phantom/dicom/mask/mask.dcm", 74, 74.0, (-1.9459, -1.5676, -1.4459)),
])
def test_bit_packed_pet_and_coronal_segs(realdata, rel, voxels, mm3, centroid):
    mask = cnsvol.read_mask(realdata / "dicom" / rel, allow_large_lesions=True)
    assert int(np.count_nonzero(mask.data)) == voxels
    assert voxels * abs(np.linalg.det(mask.affine[:3, :3])) == pytest.approx(mm3, rel=1e-6)
    assert _centroid(mask) == pytest.approx(centroid, abs=1e-4)


def test_a_seg_is_recognised_by_content_and_a_dicom_image_is_refused(realdata, tmp_path):
    renamed = tmp_path / "mask_without_suffix"
    shutil.copyfile(realdata / "dicom" / "dcmqi" / "liver.dcm", renamed)
    assert int(np.count_nonzero(cnsvol.read_mask(renamed).data)) == 107098
    with pytest.raises(MaskError, match="not a Segmentation"):
        cnsvol.read_mask(realdata / "dicom" / "dcmqi" / "ct-3slice" / "01.dcm")
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes((realdata / "dicom" / "dcmqi" / "liver.dcm").read_bytes()[:4000])
    with pytest.raises(MaskError, match=str(truncated.name)):
        cnsvol.read_mask(truncated)


def test_volumes_csv_per_segment_gives_each_roi_its_voxel_and_planar_volume(realdata, capsys):
    """README reference values of the STS_002 MR GTV: 17,090 voxel centres x 3.1184689 mm3 =
    53,294.63 mm3, planar 53,267.61 mm3."""
    import csv
    import io

    from cnsvol_cli.main import main

    rs = realdata / "dicom" / "mirp_sts" / "STS_002" / "MR_T1" / "dicom" / "mask" / "RS.dcm"
    assert main(["volumes", str(rs), "--format", "csv", "--per", "segment"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["segment_name"], int(r["voxel_count"])) for r in rows] == [("GTV_Mass_MR_T1",
                                                                           17090)]
    assert float(rows[0]["volume_mm3"]) == pytest.approx(53294.63, abs=0.01)
    assert float(rows[0]["planar_volume_mm3"]) == pytest.approx(53267.61, abs=0.01)
    nifti = realdata / "dicom" / "mirp_sts" / "STS_002" / "MR_T1" / "nifti" / "mask" / "mask.nii.gz"
    assert main(["volumes", str(nifti), "--format", "csv", "--per", "segment"]) == 0
    out = capsys.readouterr()
    assert out.out.strip().count("\n") == 0 and "no segments" in out.err


def test_an_mr_structure_set_rasterised_onto_the_pet_series_is_flagged(realdata):
    """STS_002: the MR GTV's structure set references MR Image Storage slices; given the PET
    series of the same session (same frame of reference), the voxel count changes (coarse
    grid) and the notes say the images are of another kind."""
    sts = realdata / "dicom" / "mirp_sts" / "STS_002"
    rs = sts / "MR_T1" / "dicom" / "mask" / "RS.dcm"
    right = cnsvol.read_mask(rs)
    assert not any("WARNING" in n for n in right.notes)
    wrong = cnsvol.read_mask(rs, reference=sts / "PET" / "dicom" / "image")
    assert any("WARNING: the contours were drawn on MR Image Storage images, but rasterised "
               "onto a Positron Emission Tomography Image Storage series (PT)" in n
               for n in wrong.notes)
