"""Fixture masks written as DICOM (SEG with highdicom, RTSTRUCT with pydicom) over synthetic
oblique, anisotropic series read back as the NIfTI path reads the same voxels; and the geometry
a DICOM series or SEG must have to be read at all."""

from __future__ import annotations

import numpy as np
import pytest

import cnsvol
from cnsvol.errors import MaskError
from fixtures.make_dicom import LPS, circle_contour, write_rtstruct, write_seg, write_series
from fixtures.make_fixtures import Ellipsoid, render, save_nifti

pytest.importorskip("highdicom")

SHAPE = (48, 40, 14)
SPACING = (0.9, 1.2, 3.0)


def _oblique_affine() -> np.ndarray:
    """RAS affine rotated 20 degrees about an oblique axis, 0.9 x 1.2 x 3.0 mm voxels."""
    axis = np.array([1.0, 2.0, 3.0]) / np.sqrt(14.0)
    t = np.radians(20.0)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rot = np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k
    a = np.eye(4)
    a[:3, :3] = rot @ np.diag(SPACING)
    a[:3, 3] = rot @ (-(np.array(SHAPE) - 1) / 2 * np.array(SPACING)) + [4.0, -7.0, 12.0]
    return a


AFFINE = _oblique_affine()
LESIONS = [Ellipsoid((4, -7, 12), (7, 6, 9), label=1), Ellipsoid((16, 3, 8), (4, 4, 6), label=2),
           Ellipsoid((-10, -14, 16), (3, 3, 5), label=3)]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("dicom")
    labels = render(LESIONS, SHAPE, AFFINE)
    image = (np.arange(np.prod(SHAPE)).reshape(SHAPE) % 97).astype(np.int16) + 100 * labels
    series = write_series(root / "image", image, AFFINE)
    save_nifti(root / "labels.nii.gz", labels, AFFINE)
    write_seg(root / "seg" / "labels.dcm", series, labels,
              names={1: "GTV big", 2: "GTV small", 3: "oedema"})
    return root, labels, series


def test_the_series_reads_with_the_affine_it_was_written_with(written):
    root, labels, _ = written
    data, affine = cnsvol.read_image(root / "image")
    assert data.shape == SHAPE
    assert affine == pytest.approx(AFFINE, abs=1e-5)
    assert (data == ((np.arange(np.prod(SHAPE)).reshape(SHAPE) % 97) + 100 * labels)).all()


def test_a_seg_over_an_oblique_anisotropic_series_reads_as_the_nifti_does(written):
    root, labels, _ = written
    nifti = cnsvol.measure(root / "labels.nii.gz")
    seg = cnsvol.measure(root / "seg")  # the folder holding the SEG
    assert seg.mask.source_format == "dicom-seg"
    assert seg.mask.affine == pytest.approx(AFFINE, abs=1e-5)
    assert (seg.mask.data == labels).all()
    assert [les.lesion_id for les in seg.lesions] == [les.lesion_id for les in nifti.lesions]
    for a, b in zip(seg.lesions, nifti.lesions, strict=True):
        assert a.voxel_count == b.voxel_count
        # DICOM decimal strings: positions written to 6 decimals, direction cosines to 8
        assert a.volume_mm3 == pytest.approx(b.volume_mm3, rel=1e-6)
        assert a.centroid_ras_mm == pytest.approx(b.centroid_ras_mm, abs=1e-4)
        assert a.longest_diameter_mm == pytest.approx(b.longest_diameter_mm, abs=1e-4)
    assert [les.segment for les in seg.lesions] == ["1 GTV big", "2 GTV small", "3 oedema"]
    assert [s.voxel_count for s in seg.mask.segments] == [int((labels == n).sum()) for n in (1, 2, 3)]


def test_segments_chosen_by_pattern_make_the_lesion_region(written):
    root, labels, _ = written
    gtv = cnsvol.read_mask(root / "seg" / "labels.dcm", segments="gtv*")
    assert [s.name for s in gtv.segments] == ["GTV big", "GTV small"]
    assert (gtv.data > 0).sum() == int(np.isin(labels, (1, 2)).sum())


def test_a_fractional_seg_is_thresholded_like_a_probability_map(written, tmp_path):
    root, labels, series = written
    prob = np.where(labels == 1, 0.8, np.where(labels == 2, 0.4, 0.0)).astype(np.float32)
    path = write_seg(tmp_path / "prob.dcm", series, labels, fractional=True,
                     layers={1: prob})
    default = cnsvol.read_mask(path)
    assert (default.data > 0).sum() == int((labels == 1).sum())  # 0.4 < 0.5
    assert default.storage == "float-thresholded" and default.threshold == 0.5
    low = cnsvol.read_mask(path, threshold=0.3)
    assert (low.data > 0).sum() == int(np.isin(labels, (1, 2)).sum())


def test_overlapping_segments_are_each_counted_and_the_union_is_the_region(written, tmp_path):
    root, labels, series = written
    a = labels == 1
    b = np.roll(a, 3, axis=0)  # overlaps a
    path = write_seg(tmp_path / "overlap.dcm", series, labels, layers={1: a, 2: b})
    mask = cnsvol.read_mask(path)
    assert [s.voxel_count for s in mask.segments] == [int(a.sum()), int(b.sum())]
    assert mask.overlap_voxels == int((a & b).sum()) > 0
    assert (mask.data > 0).sum() == int((a | b).sum())
    with pytest.raises(MaskError, match="one label per voxel"):
        cnsvol.measure(path, cnsvol.MeasureOptions(instance_labels=True))


def _discs(series_affine_lps: np.ndarray, centre_ijk, radius_mm: float, ks) -> list[np.ndarray]:
    """Circles on slices ``ks`` (in the slices' plane), centred over voxel ``centre_ijk``."""
    u = series_affine_lps[:3, 0] / np.linalg.norm(series_affine_lps[:3, 0])
    v = series_affine_lps[:3, 1] / np.linalg.norm(series_affine_lps[:3, 1])
    out = []
    for k in ks:
        c = series_affine_lps @ np.array([centre_ijk[0], centre_ijk[1], k, 1.0])
        out.append(circle_contour(c[:3], radius_mm, 180, u, v))
    return out


def _inside(affine_lps, centre_ijk, radius, ks, hole=None) -> np.ndarray:
    """Voxel centres within ``radius`` mm (in plane) of the disc centre, on slices ``ks``."""
    ii, jj = np.meshgrid(np.arange(SHAPE[0]), np.arange(SHAPE[1]), indexing="ij")
    d = np.hypot((ii - centre_ijk[0]) * SPACING[0], (jj - centre_ijk[1]) * SPACING[1])
    out = np.zeros(SHAPE, bool)
    for k in ks:
        out[:, :, k] = (d < radius) & (True if hole is None else ~(d < hole))
    return out


def test_an_rtstruct_on_the_oblique_series_gives_the_voxel_centres_inside(written, tmp_path):
    root, _, series = written
    lps = LPS @ AFFINE
    ks = range(3, 9)
    outer = _discs(lps, (20.3, 18.6), 9.1, ks)
    hole = _discs(lps, (20.3, 18.6), 3.3, [5])
    path = write_rtstruct(root / "rs" / "RS.dcm", series,
                          {"GTV_1": outer + hole, "CTV": _discs(lps, (35.2, 10.1), 4.2, [2])})
    # "GTV*" would take the CTV too: its RT ROI interpreted type (the coded property) is GTV
    assert len(cnsvol.read_mask(path, segments="GTV*").segments) == 2
    mask = cnsvol.read_mask(path, segments="GTV_*")  # series found beside it
    expected = _inside(lps, (20.3, 18.6), 9.1, ks)
    expected[:, :, 5] &= ~_inside(lps, (20.3, 18.6), 3.3, [5])[:, :, 5]  # even-odd hole
    assert mask.source_format == "dicom-rtstruct"
    assert int((mask.data > 0).sum()) == int(expected.sum())
    assert ((mask.data > 0) == expected).all()
    roi = mask.segments[0]
    # planar: 6 circles minus one hole (polygons of 180 points), x 3 mm
    area = 0.5 * 180 * np.sin(2 * np.pi / 180)
    planar = (6 * 9.1**2 - 3.3**2) * area * 3.0
    assert roi.planar_volume_mm3 == pytest.approx(planar, rel=1e-3)
    assert roi.volume_mm3 == pytest.approx(expected.sum() * np.prod(SPACING), rel=1e-6)
    fill = cnsvol.read_mask(path, segments="GTV_*", rasterisation="fill", reference=root / "image")
    assert (fill.data > 0).sum() > (mask.data > 0).sum()  # boundary voxels included


def test_a_contour_off_every_slice_is_refused_naming_the_roi(written, tmp_path):
    _, _, series = written
    lps = LPS @ AFFINE
    centre = lps @ np.array([20, 18, 4.5, 1.0])  # half way between slices 4 and 5
    normal = lps[:3, 2] / 3.0
    u, v = lps[:3, 0] / 0.9, lps[:3, 1] / 1.2
    path = write_rtstruct(tmp_path / "RS.dcm", series,
                          {"GTV_off": [circle_contour(centre[:3], 5.0, 32, u, v)],
                           "GTV_far": [circle_contour(centre[:3] + 100 * normal, 5.0, 32, u, v)]})
    with pytest.raises(MaskError, match=r"ROI 'GTV_off'.*lies off every slice.*1\.500 mm away"):
        cnsvol.read_mask(path, segments="GTV_off", reference=written[0] / "image")
    with pytest.raises(MaskError, match=r"ROI 'GTV_far'.*lies off every slice"):
        cnsvol.read_mask(path, segments="GTV_far", reference=written[0] / "image")


def test_an_rtstruct_without_its_series_says_where_it_looked(written, tmp_path):
    _, _, series = written
    path = write_rtstruct(tmp_path / "alone" / "RS.dcm", series,
                          {"GTV": _discs(LPS @ AFFINE, (20, 18), 5.0, [4])})
    with pytest.raises(MaskError, match="is not beside it.*give the folder of the image series"):
        cnsvol.read_mask(path)


def test_unequally_spaced_or_mixed_orientation_series_are_refused(tmp_path):
    affine = np.diag([1.0, 1.0, 3.0, 1.0])
    vol = np.zeros((8, 8, 4), np.int16)
    pos = [[-0.0, -0.0, 3.0 * k + (1.5 if k == 3 else 0.0)] for k in range(4)]
    uneven = write_series(tmp_path / "uneven", vol, affine, name="uneven", positions=pos)
    with pytest.raises(MaskError, match=r"not equally spaced \(gaps from 3\.0000 to 4\.5000"):
        cnsvol.read_image(tmp_path / "uneven")
    labels = np.zeros((8, 8, 4), np.uint8)
    labels[2:5, 2:5, 1:3] = 1
    seg = write_seg(tmp_path / "uneven_seg.dcm", uneven, labels, name="uneven-seg")
    with pytest.raises(MaskError, match="do not form one regular 3D grid"):
        cnsvol.read_mask(seg)
    write_series(tmp_path / "mixed", vol, affine, name="mixed",
                 orientations={2: [1, 0, 0, 0, 0, -1]})
    with pytest.raises(MaskError, match=r"2 orientations .*IM0002\.dcm"):
        cnsvol.read_image(tmp_path / "mixed")


def test_slice_spacing_comes_from_positions_when_slice_thickness_disagrees(tmp_path):
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    write_series(tmp_path / "s", np.zeros((6, 6, 5), np.int16), affine, slice_thickness=2.5)
    _, got = cnsvol.read_image(tmp_path / "s")
    assert np.linalg.norm(got[:3, 2]) == pytest.approx(2.0)


def test_an_image_series_folder_given_as_a_mask_is_named_as_such(written, tmp_path):
    root, _, series = written
    with pytest.raises(MaskError, match=r"folder of 14 DICOM file\(s\) of modality MR.*swapped"):
        cnsvol.read_mask(root / "image")
    path = write_rtstruct(tmp_path / "RS.dcm", series,
                          {"GTV": _discs(LPS @ AFFINE, (20, 18), 5.0, [4])})
    with pytest.raises(MaskError, match=r"no-such-series: not found"):
        cnsvol.read_mask(path, reference=tmp_path / "no-such-series")


def _manifest(path, rows):
    path.write_text("subject_id,timepoint,days_from_baseline,mask_path\n"
                    + "".join(f"S{i // 2},{'baseline' if i % 2 == 0 else 'week8'},"
                              f"{0 if i % 2 == 0 else 56},{m}\n" for i, m in enumerate(rows)))
    return path


def test_a_segment_selection_no_mask_of_the_cohort_can_answer_is_refused_before_the_run(
        written, tmp_path):
    """--segments on NIfTI masks, or naming no segment of the DICOM masks, stops the run at
    the start with one message (not one failure per subject)."""
    from cnsvol.batch import RunConfig, run_cohort
    from cnsvol.errors import ManifestError

    root, _, _ = written
    nifti = _manifest(tmp_path / "nifti.csv", [root / "labels.nii.gz"] * 4)
    with pytest.raises(ManifestError, match=r"none of the 4 masks .* is a DICOM SEG or RTSTRUCT"):
        run_cohort(nifti, tmp_path / "out1",
                   RunConfig(options=cnsvol.MeasureOptions(segments="GTV*")), jobs=1)
    dicom = _manifest(tmp_path / "dicom.csv", [root / "seg" / "labels.dcm"] * 2)
    with pytest.raises(ManifestError, match=r"no segment of the 2 DICOM masks .* matches "
                       r"\(segments found: 1 GTV big \(Neoplasm\); 2 GTV small"):
        run_cohort(dicom, tmp_path / "out2",
                   RunConfig(options=cnsvol.MeasureOptions(segments="ET*")), jobs=1)
    assert not (tmp_path / "out1").exists() and not (tmp_path / "out2").exists()
    summary = run_cohort(dicom, tmp_path / "out3",
                         RunConfig(options=cnsvol.MeasureOptions(segments="gtv*")), jobs=1)
    assert (summary.n_subjects, summary.n_failed) == (1, 0)


def test_a_follow_up_without_the_named_segment_fails_its_subject_saying_how_to_record_a_cr(
        written, tmp_path):
    """ROI names are typed per scan: a follow-up with no segment matching is refused (never
    read as a resolved lesion); the message says an empty segment records a resolution."""
    root, labels, series = written
    write_seg(tmp_path / "fu.dcm", series, labels, names={1: "Met A", 2: "Met B", 3: "oedema"})
    with pytest.raises(MaskError, match=r"no segment matches GTV\*.*1 Met A.*empty segment"):
        cnsvol.compare(root / "seg" / "labels.dcm", tmp_path / "fu.dcm",
                       options=cnsvol.MeasureOptions(segments="GTV*"))
    write_seg(tmp_path / "cr.dcm", series, labels, names={1: "GTV big"},
              layers={1: np.zeros_like(labels, dtype=bool)})
    result = cnsvol.compare(root / "seg" / "labels.dcm", tmp_path / "cr.dcm",
                            options=cnsvol.MeasureOptions(segments="GTV*"))
    assert result.followup.lesion_count == 0 and result.followup.total_volume_mm3 == 0.0
    assert result.percent_change == -100.0


def test_rtstruct_only_options_on_other_masks_are_stated_not_ignored(written, capsys):
    """--rasterisation and --image only concern RTSTRUCT contours: on voxel masks the rule is
    a note on the mask and --image a warning of ``volumes``."""
    from cnsvol_cli.main import main

    root, _, _ = written
    for path in (root / "labels.nii.gz", root / "seg" / "labels.dcm"):
        notes = cnsvol.read_mask(path, rasterisation="fill").notes
        assert any("rasterisation 'fill' not used" in n for n in notes)
        assert not any("rasterisation" in n for n in cnsvol.read_mask(path).notes)
    assert main(["volumes", str(root / "labels.nii.gz"), "--image", str(root / "image")]) == 0
    assert "--image not used" in capsys.readouterr().err


def test_an_rtstruct_rasterised_onto_another_series_of_its_frame_says_so(written, tmp_path):
    """A second series in the same frame of reference (another sequence of the session) is
    a valid grid, but not the one the structure set names: the mask's notes say which."""
    import pydicom

    root, _, series = written
    image = np.zeros(SHAPE, dtype=np.int16)
    write_series(tmp_path / "other", image, AFFINE, name="other")
    for f in sorted((tmp_path / "other").iterdir()):
        ds = pydicom.dcmread(f)
        ds.FrameOfReferenceUID = series[0].FrameOfReferenceUID
        ds.save_as(f)
    path = write_rtstruct(tmp_path / "RS.dcm", series,
                          {"GTV": _discs(LPS @ AFFINE, (20, 18), 5.0, [4, 5])})
    own = cnsvol.read_mask(path, reference=root / "image")
    other = cnsvol.read_mask(path, reference=tmp_path / "other")
    assert not any("the structure set names series" in n for n in own.notes)
    assert any(f"the structure set names series {series[0].SeriesInstanceUID}; rasterised" in n
               for n in other.notes)
    assert not any("WARNING" in n for n in own.notes + other.notes)  # MR on MR
    assert np.array_equal(own.data, other.data)  # same grid here: same voxels


def test_compare_and_track_take_the_image_series_an_rtstruct_was_drawn_on(
        written, tmp_path, capsys):
    """An RTSTRUCT whose series is not beside it: compare --baseline-image/--followup-image
    and track --images name it ('-' for a mask that needs none)."""
    import json

    from cnsvol_cli.main import main

    root, _, series = written
    away = tmp_path / "elsewhere" / "nested"
    rs = write_rtstruct(away / "RS.dcm", series,
                        {"GTV": _discs(LPS @ AFFINE, (20, 18), 5.0, [4, 5, 6])})
    assert main(["compare", str(rs), str(rs), "--format", "json"]) == 1
    assert "is not beside it" in capsys.readouterr().err
    image = str(root / "image")
    assert main(["compare", str(rs), str(rs), "--baseline-image", image,
                 "--followup-image", image, "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["baseline"]["lesion_count"] == 1 and d["percent_change"] == 0.0
    assert main(["track", str(rs), str(root / "seg" / "labels.dcm"), "--days", "0,56",
                 "--images", image, "-", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["timepoints"][1]["total_volume_mm3"] > 0
    assert main(["track", str(rs), str(rs), "--days", "0,56", "--images", image]) == 1
    assert "--images has 1 values for 2 masks" in capsys.readouterr().err


def test_organs_at_risk_and_the_body_outline_are_not_lesions_unless_chosen(written, tmp_path):
    """A structure set holds a GTV, an organ at risk and the body outline: by default only
    the GTV is measured (the others named in the notes); --roi measures what it names; with no
    GTV-typed ROI, untyped ROIs count and known non-lesion types never."""
    _, _, series = written
    gtv = _discs(LPS @ AFFINE, (20, 18), 5.0, [4, 5])
    organ = _discs(LPS @ AFFINE, (30, 12), 4.0, [6])
    body = _discs(LPS @ AFFINE, (24, 20), 15.0, [2, 3, 4, 5, 6, 7])
    rois = {"GTV": gtv, "Brainstem": organ, "External": body}
    path = write_rtstruct(tmp_path / "a" / "RS.dcm", series, rois,
                          interpreted={"Brainstem": "ORGAN", "External": "EXTERNAL"})
    default = cnsvol.read_mask(path, reference=written[0] / "image")
    assert [s.name for s in default.segments] == ["GTV"]
    assert any("ROIs left out" in n and "2 Brainstem (ORGAN); 3 External (EXTERNAL)" in n
               for n in default.notes)
    chosen = cnsvol.read_mask(path, reference=written[0] / "image", segments="brain*")
    assert [s.name for s in chosen.segments] == ["Brainstem"]
    untyped = write_rtstruct(tmp_path / "b" / "RS.dcm", series, rois,
                             interpreted={"GTV": "", "Brainstem": "", "External": "EXTERNAL"})
    assert [s.name for s in cnsvol.read_mask(untyped, reference=written[0] / "image").segments
            ] == ["GTV", "Brainstem"]
    organs = write_rtstruct(tmp_path / "c" / "RS.dcm", series, {"Brainstem": organ},
                            interpreted="ORGAN")
    with pytest.raises(MaskError, match=r"none of its ROIs is a lesion.*1 Brainstem \(ORGAN\)"):
        cnsvol.read_mask(organs, reference=written[0] / "image")


def test_a_seg_without_its_empty_frames_is_drawn_over_its_image_series(written, tmp_path):
    """highdicom and dcmqi leave empty frames out: the SEG's grid is then a block of the
    series' slices, and the QC picture shows the image under it (no resampling: same voxels)."""
    from cnsvol.report.qc import qc_picture

    root, labels, series = written
    seg = write_seg(tmp_path / "seg.dcm", series, labels, omit_empty_frames=True, name="omit")
    mask = cnsvol.read_mask(seg)
    assert mask.shape[2] < SHAPE[2]  # only the frames with lesion voxels
    assert int(np.count_nonzero(mask.data)) == int(np.count_nonzero(labels))
    series_result = cnsvol.evaluate_series([seg, seg], [0, 56])
    notes: list[str] = []
    qc_picture(series_result, [root / "image", root / "image"], tmp_path / "qc", notes=notes)
    assert notes == [] and (tmp_path / "qc.png").exists()
    other = np.zeros(SHAPE, dtype=np.int16)
    write_series(tmp_path / "shifted", other, AFFINE @ np.diag([1.0, 1.0, 1.0, 1.0]) + np.array(
        [[0, 0, 0, 0.3], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]), name="shifted")
    qc_picture(series_result, [tmp_path / "shifted", None], tmp_path / "qc2", notes=notes)
    assert notes and "image grid \u2260 mask grid (48x40x14 vs " in notes[0]
