"""The response rules of each preset that a reader checks first: non-target progression, the
new-lesion floor, RANO-BM and RANO 2.0 measurability, post-progression timepoints, RANO 2.0's
confirmation after radiotherapy, and tumour-compartment volumes (synthetic masks with
hand-derived numbers, and the AUDIT BraTS 2024 masks of ../shared/realdata)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from cnsvol import ClinicalStatus, MeasureOptions, compare, evaluate_series, mask_from_array
from cnsvol.errors import MaskError
from cnsvol.lesions import find_lesions
from cnsvol.pipeline import measure
from cnsvol.response.criteria import PRESETS

SPACING = (0.9, 0.9, 3.0)  # anisotropic, as clinical axial MRI
AFFINE = np.diag([*SPACING, 1.0])
SHAPE = (60, 60, 16)


def mask(*boxes, value=1, shape=SHAPE, affine=AFFINE):
    data = np.zeros(shape, np.uint8)
    for box in boxes:
        data[box] = value
    return mask_from_array(data, affine)


# targets: a 20 x 20 x 4-voxel block (18 x 18 mm, 4 slices), measurable under every preset
TARGET = np.s_[5:25, 5:25, 4:8]
SHRUNK = np.s_[5:15, 5:15, 4:8]  # a quarter of the volume: -75%, PR everywhere


def nontarget(n_inplane: int, n_slices: int = 2):
    return np.s_[40 : 40 + n_inplane, 40 : 40 + n_inplane, 4 : 4 + n_slices]


# --------------------------------------------------------------------------------------------
# non-target progression


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_a_growing_non_target_is_pd_although_the_targets_shrink(preset):
    # non-target 4 x 4 voxels (3.6 mm, corner diagonal 5.09 mm < 6 mm) on 2 slices grows to
    # 13 x 13 voxels (11.7 mm, diagonal 16.5 mm >= 10 mm): unequivocal progression
    base = mask(TARGET, nontarget(4))
    follow = mask(SHRUNK, nontarget(13))
    r = compare(base, follow, criteria=preset, days=56)
    assert r.baseline.by_id()[2].longest_diameter_mm == pytest.approx(math.hypot(3.6, 3.6))
    assert r.percent_change == pytest.approx(-75.0)
    assert (r.category, r.reason_code) == ("PD", "progression")
    assert "non-target progression" in r.reason
    assert r.series.timepoints[1].nontarget_progression is True


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_a_non_target_growing_less_than_the_rule_is_not_progression(preset):
    # 4 -> 7 voxels: 5.09 -> 8.91 mm, below 10 mm (it started below 6 mm)
    r = compare(mask(TARGET, nontarget(4)), mask(SHRUNK, nontarget(7)), criteria=preset,
                days=56)
    assert r.category != "PD"
    assert r.series.timepoints[1].nontarget_progression is False


def test_a_large_non_target_needs_5_mm_of_growth():
    # a non-target >= 6 mm: 6 x 6 voxels (diagonal 7.64 mm) on 1 slice (not measurable under
    # RANO-BM); 9 x 9 voxels: 11.46 mm, +3.8 mm -> not PD; 10 x 10: 12.73 mm, +5.09 -> PD
    crit = "rano-bm-vol"
    base = mask(TARGET, nontarget(6, 1))
    assert compare(base, mask(TARGET, nontarget(9, 1)), criteria=crit).category == "SD"
    r = compare(base, mask(TARGET, nontarget(10, 1)), criteria=crit)
    assert r.category == "PD" and "7.6 -> 12.7 mm" in r.reason


def test_the_non_target_rule_can_be_switched_off_in_a_criteria_file(tmp_path):
    path = tmp_path / "no_nontargets.toml"
    path.write_text('extends = "lin2009"\nnontarget_progression_growth_mm = "none"\n')
    r = compare(mask(TARGET, nontarget(4)), mask(SHRUNK, nontarget(13)), criteria=str(path))
    assert r.category == "PR"


def test_beyond_five_targets_the_sixth_lesion_is_a_non_target():
    # six measurable 12 x 12-voxel lesions; RANO-BM takes 5 targets, the sixth is a non-target
    # that grows by >= 5 mm while the targets stay the same
    spots = [np.s_[2 + 19 * a : 14 + 19 * a, 2 + 19 * b : 14 + 19 * b, 4:7]
             for a, b in itertools.product(range(3), range(2))]
    grown = list(spots)
    grown[5] = np.s_[40:58, 21:39, 4:7]  # 18 x 18 voxels: +6 voxels = +7.6 mm diagonal
    base, follow = mask(*spots), mask(*grown)
    rb = compare(base, follow, criteria="rano-bm-vol")
    assert len([les for les in rb.baseline.lesions if les.measurable]) == 6
    assert rb.category == "PD" and "non-target progression" in rb.reason
    # under lin2009 every measurable lesion is a target: the sum grew 2.25x / 6 -> +20.8%
    assert compare(base, follow).category == "SD"


# --------------------------------------------------------------------------------------------
# the new-lesion floor


def test_one_stray_voxel_is_an_equivocal_new_lesion_not_pd():
    cube = np.s_[10:20, 10:20, 10:20]
    base = np.zeros((40, 40, 40), np.uint8)
    base[cube] = 1
    follow = base.copy()
    follow[35, 35, 35] = 1
    r = compare(mask_from_array(base, np.eye(4)), mask_from_array(follow, np.eye(4)))
    tp = r.series.timepoints[1]
    assert (tp.new_lesions, tp.equivocal_new_lesions) == (1, 1)
    assert r.category == "SD"
    assert "equivocal new lesion(s) below 5 mm" in r.reason


# --------------------------------------------------------------------------------------------
# measurability


def test_rano_bm_measurability_needs_two_slices_and_a_5_mm_perpendicular():
    one_mm = np.eye(4)
    line = np.zeros((20, 20, 10), np.uint8)
    line[2:14, 5, 5] = 1  # 12 x 1 x 1 voxels on one slice
    plate = np.zeros((20, 20, 10), np.uint8)
    plate[2:17, 2:17, 5] = 1  # 15 x 15 voxels on one slice
    slab = np.zeros((20, 20, 10), np.uint8)
    slab[2:14, 2:6, 4:6] = 1  # 12 x 4 voxels on two slices: perpendicular < 5 mm
    for data, slices in ((line, 1), (plate, 1), (slab, 2)):
        m = mask_from_array(data, one_mm)
        rano, lin = measure(m, criteria="rano-bm-vol"), measure(m, criteria="lin2009")
        assert rano.lesions[0].axial_slice_count == slices
        assert rano.lesions[0].measurable is False
        assert lin.lesions[0].measurable is True  # lin2009: longest >= 10 mm only
    les = measure(mask_from_array(line, one_mm)).lesions[0]
    assert les.longest_diameter_mm == pytest.approx(math.hypot(12, 1))
    # across the diagonal d of an a x b rectangle (a >= b), the longest chord perpendicular to
    # it runs from one long side to the other: b / cos(angle) = b * d / a
    assert les.perpendicular_diameter_mm == pytest.approx(1 * math.hypot(12, 1) / 12)
    slab_les = measure(mask_from_array(slab, one_mm)).lesions[0]
    assert slab_les.perpendicular_diameter_mm == pytest.approx(4 * math.hypot(12, 4) / 12)


def ball(radius_vox: float, n: int = 15):
    c = (n - 1) / 2
    i, j, k = np.indices((n, n, n))
    return (((i - c) ** 2 + (j - c) ** 2 + (k - c) ** 2) <= radius_vox**2).astype(np.uint8)


def brute_force_axial(data: np.ndarray, corners: bool) -> float:
    """Largest distance between voxel corners (or centres) of one axial slice, any slice."""
    best = 0.0
    for k in range(data.shape[2]):
        ii, jj = np.nonzero(data[:, :, k])
        if not len(ii):
            continue
        if corners:
            pts = np.concatenate([np.c_[ii + a, jj + b] for a in (-0.5, 0.5) for b in (-0.5, 0.5)])
        else:
            pts = np.c_[ii, jj].astype(float)
        d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)).max()
        best = max(best, float(d))
    return best


def test_a_9_mm_ball_under_both_diameter_conventions():
    data = ball(4.5)  # voxel centres within 4.5 mm of the centre, 1 mm voxels
    m = mask_from_array(data, np.eye(4))
    corners = find_lesions(m).lesions[0]
    centres = find_lesions(m, diameter_convention="centres").lesions[0]
    assert corners.longest_diameter_mm == pytest.approx(brute_force_axial(data, True))
    assert centres.longest_diameter_mm == pytest.approx(brute_force_axial(data, False))
    assert corners.max_diameter_3d_mm == pytest.approx(10.3, abs=0.05)
    assert centres.max_diameter_3d_mm == pytest.approx(math.sqrt(80), abs=1e-9)  # 8.94
    assert corners.measurable and not centres.measurable  # the 10 mm rule
    opts = MeasureOptions(diameter_convention="centres")
    assert measure(m, opts).lesions[0].measurable is False


# --------------------------------------------------------------------------------------------
# post-progression, RANO 2.0


def test_timepoints_after_the_first_pd_say_post_progression():
    grown = np.s_[5:35, 5:25, 4:8]  # 1.5x the volume: +50% >= 40%
    res = evaluate_series([mask(TARGET), mask(grown), mask(TARGET), mask(SHRUNK)],
                          [0, 56, 112, 168])
    cats = [(t.category, t.reason_code, t.post_progression) for t in res.timepoints[1:]]
    assert cats == [("PD", "progression", False), ("PD", "post_progression", True),
                    ("PD", "post_progression", True)]
    assert "this scan alone: PR" in res.timepoints[3].reason
    assert res.subject.best_response == "PD" and res.subject.progression_days == 56


GROWN = np.s_[5:33, 5:25, 4:8]  # 28/20 = +40% exactly: PD under rano2-vol (inclusive)


def rano2(masks, days, radiotherapy_end_days=None, clinical=None):
    return evaluate_series(masks, days, criteria="rano2-vol", clinical=clinical,
                           radiotherapy_end_days=radiotherapy_end_days)


def test_rano2_pd_within_12_weeks_of_radiotherapy_needs_the_next_scan():
    # radiotherapy ended on day -14; day 56 is 70 days after it (<= 84): PD needs confirmation
    res = rano2([mask(TARGET), mask(GROWN)], [0, 56], radiotherapy_end_days=-14)
    t1 = res.timepoints[1]
    assert (t1.category, t1.reason_code) == ("SD", "progression_unconfirmed")
    assert "70 days after the end of radiotherapy" in t1.reason and "pending" in t1.reason
    assert res.subject.progression_days is None
    # the next scan is PD too: progression dated back to day 56
    res = rano2([mask(TARGET), mask(GROWN), mask(GROWN)], [0, 56, 112], -14)
    assert [t.category for t in res.timepoints[1:]] == ["PD", "PD"]
    assert res.subject.progression_days == 56
    # the next scan is back to baseline: pseudoprogression, never PD
    res = rano2([mask(TARGET), mask(GROWN), mask(TARGET)], [0, 56, 112], -14)
    assert [t.category for t in res.timepoints[1:]] == ["SD", "SD"]
    assert "possible pseudoprogression" in res.timepoints[1].reason
    # outside the window (day 56 = 85 days after radiotherapy): PD at once
    res = rano2([mask(TARGET), mask(GROWN)], [0, 56], radiotherapy_end_days=-29)
    assert res.timepoints[1].category == "PD"
    # without a radiotherapy date the rule cannot apply
    assert rano2([mask(TARGET), mask(GROWN)], [0, 56]).timepoints[1].category == "PD"


def test_rano2_partial_response_needs_confirmation_4_weeks_later():
    half = np.s_[5:15, 5:17, 4:8]  # 120/400 voxels: -70% >= 65%
    single = rano2([mask(TARGET), mask(half)], [0, 56])
    assert single.timepoints[1].category == "PR" and single.timepoints[1].confirmed is False
    assert single.subject.best_response == "SD"
    held = rano2([mask(TARGET), mask(half), mask(half)], [0, 56, 84])
    assert held.subject.best_response == "PR" and held.timepoints[1].confirmed is True
    early = rano2([mask(TARGET), mask(half), mask(half)], [0, 56, 83])  # 27 days: too soon
    assert early.subject.best_response == "SD"


def test_rano2_complete_response_needs_steroids_off():
    empty = mask()
    on = [ClinicalStatus(steroid_dose_mg=4), ClinicalStatus(steroid_dose_mg=2),
          ClinicalStatus(steroid_dose_mg=2)]
    off = [ClinicalStatus(steroid_dose_mg=4), ClinicalStatus(steroid_dose_mg=0),
           ClinicalStatus(steroid_dose_mg=0)]
    res = rano2([mask(TARGET), empty, empty], [0, 56, 112], clinical=on)
    assert res.timepoints[1].category == "PR" and "on steroids" in res.timepoints[1].reason
    res = rano2([mask(TARGET), empty, empty], [0, 56, 112], clinical=off)
    assert res.timepoints[1].category == "CR" and res.subject.best_response == "CR"


def test_rano2_measurable_needs_10_by_10_mm_on_two_slices():
    # 14 x 10 voxels = 12.6 x 9.0 mm: perpendicular to the diagonal d, b * d / a =
    # 9 * 15.48 / 12.6 = 11.06 mm >= 10; 14 x 5 voxels (12.6 x 4.5 mm): 4.78 mm < 10
    wide = measure(mask(np.s_[5:19, 5:15, 4:6]), criteria="rano2-vol").lesions[0]
    thin = measure(mask(np.s_[5:19, 5:10, 4:6]), criteria="rano2-vol").lesions[0]
    d = math.hypot(12.6, 9.0)
    assert wide.perpendicular_diameter_mm == pytest.approx(9.0 * d / 12.6)
    assert thin.perpendicular_diameter_mm == pytest.approx(4.5 * math.hypot(12.6, 4.5) / 12.6)
    assert wide.measurable and not thin.measurable


# --------------------------------------------------------------------------------------------
# compartments


def brats2021_mask():
    """Enhancing ring (4) around necrosis (1), in oedema (2); a separate oedema speck."""
    data = np.zeros(SHAPE, np.uint8)
    data[10:40, 10:40, 2:12] = 2
    data[15:35, 15:35, 4:10] = 4
    data[20:30, 20:30, 5:9] = 1
    data[50, 50, 14] = 2
    return data


def test_brats2021_compartment_volumes_sum_to_the_whole_tumour():
    data = brats2021_mask()
    vv = 0.9 * 0.9 * 3.0
    n4 = 20 * 20 * 6 - 10 * 10 * 4
    n1 = 10 * 10 * 4
    n2 = 30 * 30 * 10 - 20 * 20 * 6 + 1
    ls = measure(mask_from_array(data, AFFINE), MeasureOptions(compartments="brats2021"))
    assert ls.compartment_volumes_mm3 == pytest.approx(
        {"enhancing": n4 * vv, "nonenhancing": n1 * vv, "edema": n2 * vv})
    assert sum(ls.compartment_volumes_mm3.values()) == pytest.approx((data > 0).sum() * vv)
    # the lesions are the tumour core (enhancing + necrosis: one lesion here), never oedema;
    # the lesion carries the oedema of its whole-tumour component, the far speck is nobody's
    (big,) = ls.lesions
    assert big.volume_mm3 == pytest.approx((n4 + n1) * vv)
    assert big.compartment_volumes_mm3 == pytest.approx(
        {"enhancing": n4 * vv, "nonenhancing": n1 * vv, "edema": (n2 - 1) * vv})
    # with --labels, the labels chosen form the lesions (here the whole tumour, speck included)
    whole = measure(mask_from_array(data, AFFINE),
                    MeasureOptions(compartments="brats2021", labels="1,2,4"))
    assert whole.lesion_count == 2
    assert sum(whole.lesions[0].compartment_volumes_mm3.values()) == pytest.approx(
        whole.lesions[0].volume_mm3)
    # under rano2-vol the lesions are the enhancing components; the necrosis and oedema of the
    # same whole-tumour component are the lesion's, the distant speck is nobody's
    rano = measure(mask_from_array(data, AFFINE), MeasureOptions(compartments="brats2021"),
                   "rano2-vol")
    assert [les.volume_mm3 for les in rano.lesions] == pytest.approx([n4 * vv])
    assert rano.lesions[0].compartment_volumes_mm3 == pytest.approx(
        {"enhancing": n4 * vv, "nonenhancing": n1 * vv, "edema": (n2 - 1) * vv})


def test_the_same_tissue_under_the_brats2023_and_lumiere_conventions():
    data = brats2021_mask()
    b23 = np.select([data == 4, data == 1, data == 2], [3, 1, 2], 0).astype(np.uint8)
    lum = np.select([data == 4, data == 1, data == 2], [1, 2, 3], 0).astype(np.uint8)
    ref = measure(mask_from_array(data, AFFINE), MeasureOptions(compartments="brats2021"))
    for arr, name in ((b23, "brats2023"), (lum, "lumiere"), (lum, "audit")):
        ls = measure(mask_from_array(arr, AFFINE), MeasureOptions(compartments=name))
        got = {k: v for k, v in ls.compartment_volumes_mm3.items() if k != "cavity"}
        assert got == pytest.approx(ref.compartment_volumes_mm3), name
    cavity = b23.copy()
    cavity[45:50, 45:50, 2:4] = 4
    ls = measure(mask_from_array(cavity, AFFINE), MeasureOptions(compartments="brats2023"))
    assert ls.compartment_volumes_mm3["cavity"] == pytest.approx(50 * 0.9 * 0.9 * 3.0)


def test_a_label_outside_the_convention_is_refused_with_the_labels_found():
    with pytest.raises(MaskError, match=r"labels 4 are not in the lumiere .*labels present: "
                                        r"1, 2, 4"):
        measure(mask_from_array(brats2021_mask(), AFFINE), MeasureOptions(compartments="lumiere"))


def test_compartment_columns_in_the_series_tables():
    data = brats2021_mask()
    shrunk = np.where(data == 4, 0, data).astype(np.uint8)
    shrunk[15:25, 15:35, 4:10][data[15:25, 15:35, 4:10] == 4] = 4
    res = evaluate_series([mask_from_array(data, AFFINE), mask_from_array(shrunk, AFFINE)],
                          [0, 56], criteria="rano2-vol",
                          options=MeasureOptions(compartments="brats2021"))
    tp = res.timepoints_frame()
    assert list(tp["enhancing_volume_mm3"]) == pytest.approx(
        [v.compartment_volumes_mm3["enhancing"] for v in res.timepoints])
    assert tp["cavity_volume_mm3"].isna().all()  # brats2021 has no cavity label
    les = res.lesions_frame()
    assert {"enhancing_volume_mm3", "perpendicular_diameter_mm", "axial_slice_count"} <= set(les)
    # the response measure is the enhancing compartment
    assert res.timepoints[1].target_volume_mm3 == pytest.approx(
        res.timepoints[1].compartment_volumes_mm3["enhancing"])


AUDIT_COUNTS = {  # realdata README: voxel counts per label (1 mm voxels), labels 1 ENH 2 NEC 3 EDE
    "SSA/BraTS2024_SSA-00002-000/BraTS2024_SSA-00002-000_seg.nii.gz": (21524, 6603, 190334),
    "SSA/BraTS2024_SSA-00230-000/BraTS2024_SSA-00230-000_seg.nii.gz": (67956, 6032, 181796),
    "PED/BraTS2024_PED-00001-000/BraTS2024_PED-00001-000_seg.nii.gz": (6204, 87918, 34545),
}


@pytest.mark.parametrize("case", sorted(AUDIT_COUNTS))
def test_audit_brats2024_compartment_volumes_equal_the_reference_counts(realdata, case):
    path = realdata / "audit_brats2024" / case
    enh, nec, ede = AUDIT_COUNTS[case]
    ls = measure(path, MeasureOptions(compartments="audit"), "rano2-vol")
    assert ls.compartment_volumes_mm3 == {"enhancing": float(enh), "nonenhancing": float(nec),
                                          "edema": float(ede)}
    # the lesions are the enhancing components; their enhancing volumes add up to ENH
    assert sum(les.volume_mm3 for les in ls.lesions) == float(enh)
    assert sum(les.compartment_volumes_mm3["enhancing"] for les in ls.lesions) == float(enh)
    # no voxel is given to two lesions
    for name, total in (("nonenhancing", nec), ("edema", ede)):
        assert sum(les.compartment_volumes_mm3[name] for les in ls.lesions) <= total


def test_perpendicular_chord_equals_a_linear_programme_on_random_outlines():
    """Independent check: at abscissa x along the diameter, the chord of the convex hull is
    max - min of the across-coordinate over convex combinations of the points whose
    along-coordinate is x (two linear programmes); the longest chord is at a hull vertex."""
    from scipy.optimize import linprog
    from scipy.spatial import ConvexHull
    from scipy.spatial.distance import cdist

    from cnsvol.lesions.diameters import _perpendicular

    rng = np.random.default_rng(11)
    for _ in range(20):
        pts = rng.normal(size=(int(rng.integers(5, 40)), 2)) * rng.uniform(0.5, 5, size=2)
        hull = pts[ConvexHull(pts).vertices]
        d = cdist(hull, hull)
        a, b = np.unravel_index(np.argmax(d), d.shape)
        u = (hull[b] - hull[a]) / d[a, b]
        t, h = hull @ u, hull @ np.array([-u[1], u[0]])
        best = 0.0
        for x in t:
            eq = np.vstack([t, np.ones_like(t)])
            rhs = [x, 1.0]
            top = linprog(-h, A_eq=eq, b_eq=rhs, bounds=(0, None))
            bottom = linprog(h, A_eq=eq, b_eq=rhs, bounds=(0, None))
            best = max(best, -top.fun - bottom.fun)
        assert _perpendicular(pts) == pytest.approx(best, rel=1e-7, abs=1e-9)


def test_brats2015_multiclass_float_labels_from_realdata(realdata):
    """BRATS 2015 OTMultiClass (float32 labels 0-4, 1 mm voxels): 26371 necrosis, 53050 oedema,
    818 non-enhancing, 31485 enhancing voxels (counted with nibabel + numpy), 111724 in all as
    the realdata README lists; the 2021 convention has no label 3 and refuses the file."""
    path = realdata / "deepmedic_brats2015" / "pat0001" / "OTMultiClass.nii.gz"
    ls = measure(path, MeasureOptions(compartments="brats2015"))
    assert ls.compartment_volumes_mm3 == {"enhancing": 31485.0, "nonenhancing": 26371.0 + 818.0,
                                          "edema": 53050.0}
    assert sum(ls.compartment_volumes_mm3.values()) == 111724.0
    assert ls.total_volume_mm3 == 31485.0 + 26371.0 + 818.0  # the tumour core
    # every voxel of a whole-tumour component holding a core lesion is given to one lesion
    assigned = sum(sum(les.compartment_volumes_mm3.values()) for les in ls.lesions)
    assert 58674.0 <= assigned <= 111724.0
    with pytest.raises(MaskError, match="labels 3 are not in the brats2021"):
        measure(path, MeasureOptions(compartments="brats2021"))


def test_a_glioma_without_enhancing_tumour_has_no_rano2_lesion(realdata):
    """PED-00266 holds label 2 only (AUDIT numbering: necrosis, 21897 voxels): no enhancing
    lesion to measure under rano2-vol, and its compartments are still reported."""
    path = (realdata / "audit_brats2024" / "PED" / "BraTS2024_PED-00266-000"
            / "BraTS2024_PED-00266-000_seg.nii.gz")
    ls = measure(path, MeasureOptions(compartments="audit"), "rano2-vol")
    assert ls.lesion_count == 0
    assert ls.compartment_volumes_mm3 == {"enhancing": 0.0, "nonenhancing": 21897.0,
                                          "edema": 0.0}
    r = compare(path, path, criteria="rano2-vol", options=MeasureOptions(compartments="audit"))
    assert (r.category, r.reason_code) == ("NE", "no_baseline_disease")
    assert "the mask holds nonenhancing 21897.0 mm3" in r.reason


def test_a_pd_scan_whose_targets_shrank_is_not_a_responder():
    # targets -75% but a non-target grows to PD on the same scan: PD, and not a >=20% responder
    res = evaluate_series([mask(TARGET, nontarget(4)), mask(SHRUNK, nontarget(13))], [0, 56])
    assert res.timepoints[1].category == "PD"
    assert res.subject.best_percent_change == pytest.approx(-75.0)  # the waterfall bar
    assert res.subject.responder_20pct is False
    assert res.subject.time_to_responder_20pct_days is None
    # the same shrinkage a scan earlier counts
    res = evaluate_series([mask(TARGET, nontarget(4)), mask(SHRUNK, nontarget(4)),
                           mask(SHRUNK, nontarget(13))], [0, 56, 112])
    assert res.subject.responder_20pct is True
    assert res.subject.time_to_responder_20pct_days == 56


def test_rano2_refuses_a_multi_label_mask_without_a_convention():
    data = brats2021_mask()
    with pytest.raises(MaskError, match=r"rano2-vol measures the enhancing compartment but the "
                                        r"mask holds 3 labels \(1, 2, 4\).*--compartments"):
        measure(mask_from_array(data, AFFINE), criteria="rano2-vol")
    # a binary (enhancing-only) mask, or labels chosen by hand, are measured as they are
    assert measure(mask_from_array((data == 4).astype(np.uint8), AFFINE),
                   criteria="rano2-vol").lesion_count == 1
    assert measure(mask_from_array(data, AFFINE), MeasureOptions(labels="4"),
                   "rano2-vol").lesion_count == 1


def test_cr_of_the_enhancing_compartment_says_what_remains():
    data = brats2021_mask()
    after = np.where(data == 4, 0, data).astype(np.uint8)  # enhancing gone, necrosis + oedema left
    res = evaluate_series([mask_from_array(data, AFFINE), mask_from_array(after, AFFINE)],
                          [0, 56], criteria="rano2-vol",
                          options=MeasureOptions(compartments="brats2021"))
    t1 = res.timepoints[1]
    assert t1.category == "CR"
    assert "no lesion left in the measured compartment(s); the mask still holds nonenhancing" \
        in t1.reason


def test_a_scan_during_radiotherapy_is_worded_so():
    res = rano2([mask(TARGET), mask(GROWN)], [0, 30], radiotherapy_end_days=60)
    assert "during radiotherapy (30 days before its end)" in res.timepoints[1].reason
    res = rano2([mask(TARGET), mask(GROWN)], None, radiotherapy_end_days=60)
    assert res.timepoints[1].category == "PD"
    assert "radiotherapy confirmation rule not applied" in res.timepoints[1].reason
