"""Registration for lesion matching, on synthetic heads whose follow-up is the same voxels with
a header moved by a known rigid transform (fixtures/make_registration.py): which follow-ups
auto registers, chained frames, failure and its propagation, the batch outputs (.tfm files,
columns, resume, --register none), the QC overlay and the command line."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import cnsvol
from cnsvol.tracking.align import align_series, in_frame, unreliable
from fixtures.make_registration import head, rigid, write_visit

SHAPE, SPACING = (56, 60, 48), (2.5, 2.5, 2.5)
LESIONS = [((-20.0, 15.0, 10.0), 9.0), ((18.0, 20.0, -12.0), 6.0), ((2.0, -28.0, -5.0), 7.0)]
MOVE = rigid((2.0, -1.0, 1.0), 7.0, (22.0, -14.0, 9.0))
MOVE_2 = rigid((0.0, 1.0, 1.0), -5.0, (-9.0, 11.0, 6.0)) @ MOVE


@pytest.fixture(scope="module")
def visits(tmp_path_factory):
    """Baseline, the follow-up moved by MOVE (and a third visit by MOVE_2), a noise image."""
    root = tmp_path_factory.mktemp("reg")
    img, labels, affine = head(SHAPE, SPACING, 3, LESIONS)
    out = {"root": root}
    out["base"] = write_visit(root, "base", img, labels, affine)
    out["moved"] = write_visit(root, "moved", img, labels, MOVE @ affine)
    out["moved2"] = write_visit(root, "moved2", img, labels, MOVE_2 @ affine)
    out["nudged"] = write_visit(root, "nudged", img, labels,
                                rigid((0, 0, 1), 0.0, (0.4, 0.0, 0.0)) @ affine)
    noise = np.random.default_rng(0).normal(500, 200, SHAPE).astype(np.int16)
    out["noise"] = write_visit(root, "noise", noise, labels, MOVE @ affine)
    return out


def _statuses(series, t: int) -> list[str]:
    label = series.timepoints[t].timepoint
    return sorted(str(r.status) for r in series.tracks if r.timepoint == label)


def test_world_matching_fails_on_the_moved_visit_and_registration_restores_it(visits):
    """The move is large enough that scanner coordinates see three resolved and three new
    lesions; rigid registration matches each to itself with 0% change."""
    (bi, bm), (mi, mm) = visits["base"], visits["moved"]
    none = cnsvol.compare(bm, mm, baseline_image=bi, followup_image=mi, register="none")
    assert _statuses(none.series, 1) == ["new"] * 3 + ["resolved"] * 3
    reg = cnsvol.compare(bm, mm, baseline_image=bi, followup_image=mi)  # auto
    assert _statuses(reg.series, 1) == ["matched"] * 3
    assert all(abs(r.percent_change_vs_baseline) < 1e-4 for r in reg.series.tracks)
    r = reg.series.registrations[1]
    assert r.reliable and r.applied and r.rotation_deg == pytest.approx(7.0, abs=0.3)
    truth = np.linalg.inv(MOVE)  # follow-up world -> baseline world
    assert np.abs(r.matrix_ras - truth).max() < 0.5
    assert reg.series.timepoints[1].registration == "registered"


def test_auto_leaves_the_same_image_and_small_misalignments_alone(visits):
    """The same image file at both timepoints: not registered (None). A 0.4 mm shift:
    registered, found below the 2 mm tolerance, recorded as 'aligned' and not applied."""
    (bi, bm), (ni, nm) = visits["base"], visits["nudged"]
    same = cnsvol.compare(bm, bm, baseline_image=bi, followup_image=bi)
    assert same.series.registrations == (None, None)
    assert same.series.timepoints[1].registration == ""
    nudged = cnsvol.compare(bm, nm, baseline_image=bi, followup_image=ni)
    r = nudged.series.registrations[1]
    assert r is not None and r.reliable and not r.applied and r.misalignment_before_mm < 2.0
    assert nudged.series.timepoints[1].registration == "aligned"
    assert [t.registration_rotation_deg for t in nudged.series.tracks] == [None] * 6
    assert _statuses(nudged.series, 1) == ["matched"] * 3


@pytest.mark.slow
def test_chained_registration_composes_into_the_baseline_world(visits):
    """register_to='previous': visit 3 is registered to visit 2 (MOVE_2 @ inv(MOVE)) and its
    frame composes with visit 2's into the baseline world: inv(MOVE_2)."""
    (bi, bm), (mi, mm), (m2i, m2m) = visits["base"], visits["moved"], visits["moved2"]
    s = cnsvol.evaluate_series([bm, mm, m2m], [0, 56, 112], images=[bi, mi, m2i],
                               register="rigid", register_to="previous")
    r2 = s.registrations[2]
    assert np.abs(r2.matrix_ras - MOVE @ np.linalg.inv(MOVE_2)).max() < 0.5
    assert np.abs(r2.frame - np.linalg.inv(MOVE_2)).max() < 0.5
    assert _statuses(s, 1) == ["matched"] * 3 and _statuses(s, 2) == ["matched"] * 3


def test_a_failed_registration_makes_this_and_every_later_correspondence_unregistered(visits):
    """The second visit's image is noise: its registration is unreliable; it and the third
    visit (registered fine, but its tracks pass through the second) are unregistered, with the
    category from the total volume and new lesions not counted."""
    (bi, bm), (mi, mm), (ni, _) = visits["base"], visits["moved"], visits["noise"]
    s = cnsvol.evaluate_series([bm, mm, mm], [0, 56, 112], timepoints=["T0", "T1", "T2"],
                               images=[bi, ni, mi], register="rigid")
    assert not s.registrations[1].reliable and s.registrations[2].reliable
    assert _statuses(s, 1) == ["unregistered"] * 3 == _statuses(s, 2)
    t1, t2 = s.timepoints[1], s.timepoints[2]
    assert (t1.registration, t2.registration) == ("failed", "unregistered")
    assert "after the failed registration at T1" in t2.reason
    for tp in (t1, t2):
        assert tp.new_lesions is None and tp.target_volume_mm3 is None
        assert tp.percent_change_vs_baseline == pytest.approx(0.0, abs=1e-4)  # same voxels
        assert tp.category == cnsvol.Category.SD and "total volume" in tp.reason
    assert all(r.percent_change_vs_baseline is None for r in s.tracks if r.timepoint != "T0")
    assert unreliable(s.registrations, ["T0", "T1", "T2"]) == {
        1: f"registration failed: {s.registrations[1].reason}",
        2: "after the failed registration at T1"}


def test_auto_registers_visits_on_one_grid_whose_head_moved_inside_it(visits, tmp_path):
    """Two visits of one protocol share a voxel grid, but the head sits elsewhere in it: a
    shared grid is not an alignment, and auto registers them (here the voxels are shifted by
    8 voxels = 20 mm, beyond the lesions' radii)."""
    img, labels, affine = head(SHAPE, SPACING, 3, LESIONS)
    shifted = [np.roll(a, 8, axis=0) for a in (img, labels)]
    bi, bm = write_visit(tmp_path, "b", img, labels, affine)
    fi, fm = write_visit(tmp_path, "f", *shifted, affine)
    s = cnsvol.compare(bm, fm, baseline_image=bi, followup_image=fi)
    assert _statuses(s.series, 1) == ["matched"] * 3
    assert s.series.registrations[1].used
    assert abs(s.series.registrations[1].translation_mm[0] + 20.0) < 0.5


def test_an_image_that_cannot_be_read_is_an_error_naming_it(visits, tmp_path):
    (bi, bm), (_, mm) = visits["base"], visits["moved"]
    with pytest.raises(cnsvol.MaskError, match="missing.nii.gz: file not found"):
        cnsvol.compare(bm, mm, baseline_image=bi, followup_image=tmp_path / "missing.nii.gz")


def test_a_follow_up_without_its_image_is_matched_in_scanner_coordinates_and_says_so(visits):
    (bi, bm), (_, mm) = visits["base"], visits["moved"]
    s = cnsvol.compare(bm, mm, baseline_image=bi, register="rigid")
    tp = s.series.timepoints[1]
    assert tp.registration == "no image" and "no image for this scan" in tp.registration_detail
    assert "not registered: no image for this scan" in tp.reason
    assert "give this scan's image too" in tp.reason  # the lesions miss each other


def test_in_frame_moves_the_affine_and_centroids_only(visits):
    (_, bm) = visits["base"]
    ls = cnsvol.measure(bm)
    moved = in_frame(ls, MOVE)
    assert np.allclose(moved.mask.affine, MOVE @ ls.mask.affine)
    for a, b in zip(ls.lesions, moved.lesions):
        assert np.allclose(b.centroid_ras_mm, MOVE[:3, :3] @ a.centroid_ras_mm + MOVE[:3, 3])
        assert (a.volume_mm3, a.voxel_count, a.lesion_id) == (b.volume_mm3, b.voxel_count,
                                                              b.lesion_id)
    assert in_frame(ls, None) is ls


def test_masks_alone_on_moved_scans_get_a_hint_to_give_the_images(visits):
    (_, bm), (_, mm) = visits["base"], visits["moved"]
    reason = cnsvol.compare(bm, mm).series.timepoints[1].reason
    assert "may not be co-registered" in reason and "image_path" in reason


def test_align_series_without_images_or_with_none_registers_nothing(visits):
    sets = [cnsvol.measure(visits["base"][1]), cnsvol.measure(visits["moved"][1])]
    assert align_series(None, sets) == (None, None)
    assert align_series([visits["base"][0], visits["moved"][0]], sets, mode="none") == (None, None)
    none, only = align_series([visits["base"][0], None], sets, mode="rigid")
    assert none is None and only.skipped and not only.used
    with pytest.raises(ValueError, match="register must be one of"):
        align_series(None, sets, mode="bspline")


@pytest.mark.slow
def test_a_cohort_run_writes_transforms_columns_and_resumes(visits, tmp_path):
    """run: the moved subject's .tfm maps baseline points to follow-up points (ITK convention,
    LPS); tracks.csv carries the rotation; a second run reuses the stored results and keeps the
    transforms; --register none gives the tables of a run without images."""
    import SimpleITK as sitk

    from cnsvol_cli.main import main

    (bi, bm), (mi, mm) = visits["base"], visits["moved"]
    manifest = tmp_path / "m.csv"
    manifest.write_text("subject_id,timepoint,days_from_baseline,mask_path,image_path\n"
                        f"P1,base,0,{bm},{bi}\nP1,fu,56,{mm},{mi}\n"
                        f"P2,base,0,{bm},\nP2,fu,56,{mm},\n")
    out = tmp_path / "out"
    assert main(["run", str(manifest), "--out", str(out), "--jobs", "1", "--quiet"]) == 0
    tfms = sorted((out / "transforms").iterdir())
    assert [p.name.split("--")[0] for p in tfms] == ["P1_fu"]
    tx = sitk.ReadTransform(str(tfms[0]))
    p_ras = np.array([-20.0, 15.0, 10.0])
    lps = np.array([-1.0, -1.0, 1.0])
    got = np.asarray(tx.TransformPoint(tuple(p_ras * lps))) * lps
    assert np.linalg.norm(got - (MOVE[:3, :3] @ p_ras + MOVE[:3, 3])) < 0.5
    tracks = list(csv.DictReader((out / "tracks.csv").open()))
    fu = [r for r in tracks if r["subject_id"] == "P1" and r["timepoint"] == "fu"]
    assert [r["status"] for r in fu] == ["matched"] * 3
    assert all(float(r["registration_rotation_deg"]) == pytest.approx(7.0, abs=0.3) for r in fu)
    p2 = [r for r in tracks if r["subject_id"] == "P2" and r["timepoint"] == "fu"]
    assert sorted(r["status"] for r in p2) == ["new"] * 3 + ["resolved"] * 3
    before = tfms[0].read_bytes()
    assert main(["run", str(manifest), "--out", str(out), "--jobs", "1", "--quiet"]) == 0
    assert "2 subject(s): 2 from earlier runs" in (out / "run.log").read_text()
    assert tfms[0].read_bytes() == before
    plain = tmp_path / "plain.csv"
    plain.write_text("subject_id,timepoint,days_from_baseline,mask_path\n"
                     f"P1,base,0,{bm}\nP1,fu,56,{mm}\n")
    out_none, out_plain = tmp_path / "none", tmp_path / "plain"
    assert main(["run", str(manifest), "--out", str(out_none), "--register", "none",
                 "--jobs", "1", "--quiet", "--no-qc"]) == 0
    assert main(["run", str(plain), "--out", str(out_plain), "--jobs", "1", "--quiet",
                 "--no-qc"]) == 0
    assert not (out_none / "transforms").exists()
    rows_none = [r for r in csv.DictReader((out_none / "tracks.csv").open())
                 if r["subject_id"] == "P1"]
    assert rows_none == list(csv.DictReader((out_plain / "tracks.csv").open()))


@pytest.mark.slow
def test_registration_is_the_same_to_the_bit_on_every_run(visits):
    (bi, _), (mi, _) = visits["base"], visits["moved"]
    a, b = cnsvol.register(bi, mi), cnsvol.register(bi, mi)
    assert np.array_equal(a.matrix_ras, b.matrix_ras)
    assert (a.similarity_after, a.misalignment_after_mm, a.iterations) == (
        b.similarity_after, b.misalignment_after_mm, b.iterations)


def test_compare_prints_and_writes_the_registration(visits, capsys):
    from cnsvol_cli.main import main

    (bi, bm), (mi, mm) = visits["base"], visits["moved"]
    assert main(["compare", str(bm), str(mm), "--baseline-image", str(bi),
                 "--followup-image", str(mi)]) == 0
    out = capsys.readouterr().out
    assert "registration      registered: rigid registration: rotation 7." in out
    assert main(["compare", str(bm), str(mm), "--baseline-image", str(bi),
                 "--followup-image", str(visits["noise"][0])]) == 0
    out = capsys.readouterr().out
    assert "target sum        not evaluated: the lesion correspondence is unregistered" in out
    assert "registration      failed: rigid registration failed" in out
    assert main(["compare", str(bm), str(mm), "--baseline-image", str(bi),
                 "--followup-image", str(mi), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["registration"]["reliable"] and doc["registration"]["rotation_deg"] == \
        pytest.approx(7.0, abs=0.3)


def test_the_qc_picture_draws_the_registered_follow_up_on_the_baseline(visits, tmp_path):
    """One more column per registered follow-up; the follow-up's lesion voxels mapped through
    the registration land on the baseline's lesions."""
    from cnsvol.report import qc

    (bi, bm), (mi, mm) = visits["base"], visits["moved"]
    s = cnsvol.compare(bm, mm, baseline_image=bi, followup_image=mi).series
    plain = cnsvol.compare(bm, bm).series
    [with_reg] = qc.qc_picture(s, [bi, mi], tmp_path / "reg")
    [without] = qc.qc_picture(plain, [bi, bi], tmp_path / "plain")
    from PIL import Image

    assert Image.open(with_reg).size[0] > Image.open(without).size[0]
    mapped = qc._mapped(s.lesion_sets[1], s.lesion_sets[0], s.registrations[1].frame)
    base = s.lesion_sets[0].label_image > 0
    assert (mapped & base).sum() / base.sum() > 0.9
    assert qc._registered_title(s, 1).startswith("followup (white) on baseline\nregistered: 7.")


@pytest.mark.slow
def test_registration_around_the_lesions_recovers_the_move(visits):
    """register_mask='lesions': the metric within 20 mm of the baseline's lesions (a region
    that covers them all and not the whole head) still recovers the move."""
    from cnsvol.tracking.align import lesion_region

    (bi, bm), (mi, mm) = visits["base"], visits["moved"]
    ls = cnsvol.measure(bm)
    region, affine = lesion_region(ls)
    on = np.argwhere(region > 0) @ affine[:3, :3].T + affine[:3, 3]
    for les in ls.lesions:
        assert np.linalg.norm(on - np.asarray(les.centroid_ras_mm), axis=1).min() < 2.5
    assert 0.05 < region.mean() < 0.9
    s = cnsvol.compare(bm, mm, baseline_image=bi, followup_image=mi,
                       options=cnsvol.MeasureOptions(register_mask="lesions"))
    assert _statuses(s.series, 1) == ["matched"] * 3
    assert np.abs(s.series.registrations[1].matrix_ras - np.linalg.inv(MOVE)).max() < 0.5


@pytest.mark.slow
@pytest.mark.realdata
def test_the_sts_mr_series_and_its_rtstruct_moved_by_a_known_transform(realdata, tmp_path):
    """STS_002: the DICOM MR series (fixed, read as a series) and a copy of it and of its
    RTSTRUCT mask with the header moved by 6 degrees and 15 mm: registered, the GTV centroid
    comes back within 0.1 mm and the GTV matches itself with 0% change. The PET of the same
    session as the moving image (another modality, 5.5 mm voxels, a cropped field of view):
    reliable and within 5 mm, not better: mutual information across PET and MR on a cropped
    grid is coarse (documented in the README)."""
    import nibabel as nib

    sts = realdata / "dicom" / "mirp_sts" / "STS_002"
    pytest.importorskip("highdicom")
    mr, rs = sts / "MR_T1" / "dicom" / "image", sts / "MR_T1" / "dicom" / "mask" / "RS.dcm"
    mask = cnsvol.read_mask(rs)
    c = np.array(cnsvol.measure(mask).lesions[0].centroid_ras_mm)
    move = rigid((1, 2, 2), 6.0, (12.0, -8.0, 5.0), about=c)
    for name, (data, affine) in (("mr", cnsvol.read_image(mr)),
                                 ("pet", cnsvol.read_image(sts / "PET" / "dicom" / "image"))):
        nib.save(nib.Nifti1Image(np.asarray(data, np.float32), move @ affine),
                 tmp_path / f"{name}.nii.gz")
    nib.save(nib.Nifti1Image(mask.data.astype(np.uint8), move @ mask.affine),
             tmp_path / "mask.nii.gz")
    moved_c = move[:3, :3] @ c + move[:3, 3]
    s = cnsvol.compare(rs, tmp_path / "mask.nii.gz", baseline_image=mr,
                       followup_image=tmp_path / "mr.nii.gz", register="rigid")
    reg = s.series.registrations[1]
    assert reg.reliable and reg.rotation_deg == pytest.approx(6.0, abs=0.2)
    assert np.linalg.norm(reg.map_points(moved_c)[0] - c) < 0.1
    assert _statuses(s.series, 1) == ["matched"] and abs(s.percent_change) < 1e-4
    pet = cnsvol.register(mr, tmp_path / "pet.nii.gz", points=[c])
    assert pet.reliable and np.linalg.norm(pet.map_points(moved_c)[0] - c) < 5.0
