"""Issue 11 contract: non-target progression, the new-lesion floor, full measurability,
post-progression, RANO 2.0 and tumour compartments (from the issue text and its interface spec).

Every mask is a small synthetic box/ball written with nibabel to tmp_path; every expected number
is derived by hand in the test. Axial slices are perpendicular to k (the affines are diagonal, so
k is superior-inferior). Diameters, unless said otherwise, are voxel-corner Feret diameters: an
a x b mm rectangle on a slice measures sqrt(a**2 + b**2).
"""

from __future__ import annotations

import json
import math

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from helpers import read_text_table, run_cli
from scipy.spatial.distance import pdist

import cnsvol
from cnsvol import (
    CriteriaError,
    MeasureOptions,
    compare,
    evaluate_series,
    find_lesions,
    get_criteria,
)

PRESET_NAMES = ("lin2009", "tbcrc022", "rano-bm-vol", "rano2-vol")


def save(folder, name, data, spacing):
    """Write ``data`` ([i, j, k]) as a NIfTI with a diagonal affine of ``spacing`` mm."""
    aff = np.diag([*spacing, 1.0])
    aff[:3, 3] = (-20.0, -15.0, 7.0)  # origin away from 0
    path = folder / f"{name}.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.uint8), aff), str(path))
    return str(path)


def boxes(shape, *regions, label=1):
    data = np.zeros(shape, np.uint8)
    for r in regions:
        data[r] = label
    return data


def series(tmp_path, datas, spacing, days, **kw):
    paths = [save(tmp_path, f"t{n}", d, spacing) for n, d in enumerate(datas)]
    return evaluate_series(paths, days, **kw)


# --------------------------------------------------------------------------------------------
# 1. non-target progression (1 x 1 x 2 mm grid, 2 mm3 per voxel)

G1, S1 = (44, 44, 20), (1.0, 1.0, 2.0)
TARGET = np.s_[2:22, 2:22, 2:12]          # 20x20x10 vox = 20x20x20 mm, 8000 mm3, measurable
TARGET_SHRUNK = np.s_[2:22, 2:22, 2:5]    # 20x20x3 vox: -70% (PR under every preset)
NT_SMALL = np.s_[30:34, 30:34, 10:12]     # 4x4x4 mm = 64 mm3; axial sqrt(32) = 5.66 mm (< 6)
NT_BIG = np.s_[26:38, 26:38, 8:14]        # 12x12x12 mm = 1728 mm3, contains NT_SMALL; 16.97 mm


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_growing_small_nontarget_is_pd_under_every_preset(tmp_path, preset):
    assert boxes(G1, NT_SMALL).sum() * 2 == 64 and boxes(G1, NT_BIG).sum() * 2 == 1728
    res = series(tmp_path, [boxes(G1, TARGET, NT_SMALL), boxes(G1, TARGET_SHRUNK, NT_BIG)],
                 S1, [0, 56], criteria=preset)
    t1 = res.timepoints[1]
    assert t1.percent_change_vs_baseline == pytest.approx(-70.0)  # targets alone shrink
    # the non-target started below 6 mm (5.66) and reached >= 10 mm (16.97): progression
    assert t1.nontarget_progression is True
    assert t1.category == "PD"
    assert "non-target" in t1.reason.lower()
    assert res.subject.best_response == "PD" and res.subject.progression_days == 56


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_small_nontarget_that_stays_small_is_not_pd(tmp_path, preset):
    res = series(tmp_path, [boxes(G1, TARGET, NT_SMALL), boxes(G1, TARGET_SHRUNK, NT_SMALL)],
                 S1, [0, 56], criteria=preset)
    t1 = res.timepoints[1]
    assert t1.nontarget_progression is False and t1.category != "PD"


NT_MED = np.s_[30:37, 30:37, 10:12]   # 7x7 mm, 2 slices: axial sqrt(98) = 9.90 (non-measurable, >= 6)


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize(
    "grown, progresses",
    [
        (np.s_[28:39, 28:39, 10:12], True),   # 11x11: sqrt(242) = 15.56, +5.66 mm >= 5
        (np.s_[29:38, 29:38, 10:12], False),  # 9x9: sqrt(162) = 12.73, +2.83 mm (>= 10 but < +5)
    ],
)
def test_medium_nontarget_needs_5mm_growth(tmp_path, preset, grown, progresses):
    res = series(tmp_path, [boxes(G1, TARGET, NT_MED), boxes(G1, TARGET_SHRUNK, grown)],
                 S1, [0, 56], criteria=preset)
    t1 = res.timepoints[1]
    assert t1.nontarget_progression is progresses
    assert (t1.category == "PD") is progresses


def test_user_criteria_can_disable_the_nontarget_rule(tmp_path):
    f = tmp_path / "nont.toml"
    f.write_text('extends = "lin2009"\nnontarget_progression_growth_mm = "none"\n')
    crit = get_criteria(str(f))
    assert crit.nontarget_progression_growth_mm is None
    res = series(tmp_path, [boxes(G1, TARGET, NT_SMALL), boxes(G1, TARGET_SHRUNK, NT_BIG)],
                 S1, [0, 56], criteria=crit)
    assert res.timepoints[1].nontarget_progression is False
    assert res.timepoints[1].category == "PR"  # -70% of the targets, rule disabled


# --------------------------------------------------------------------------------------------
# 2. the new-lesion floor (0.9 x 0.9 x 3 mm grid, 2.43 mm3 per voxel)

G9, S9 = (40, 40, 16), (0.9, 0.9, 3.0)
VOX9 = 0.9 * 0.9 * 3.0
CUBE = np.s_[5:15, 5:15, 3:13]   # 1000 voxels; 9x9 mm in plane: longest = perpendicular = 12.73
SPECK = np.s_[30:31, 30:31, 8:9]  # one voxel: axial diameter sqrt(0.81 + 0.81) = 1.27 mm
SPECK_GROWN = np.s_[29:32, 29:32, 8:10]  # 18 voxels containing the speck; 3.82 mm (still < 5)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_one_stray_voxel_is_equivocal_not_pd(tmp_path, preset):
    a = save(tmp_path, "a", boxes(G9, CUBE), S9)
    b = save(tmp_path, "b", boxes(G9, CUBE, SPECK), S9)
    r = compare(a, b, criteria=preset)
    assert r.followup.total_volume_mm3 == pytest.approx(1001 * VOX9)
    assert r.percent_change == pytest.approx(0.0)
    assert r.category == "SD"  # 1.27 mm is below every preset's floor (5, 6, 5, 10 mm)
    t1 = r.series.timepoints[1]
    assert t1.equivocal_new_lesions == 1
    assert "equivocal" in t1.reason.lower()


def test_speck_that_vanishes_is_never_pd(tmp_path):
    res = series(tmp_path, [boxes(G9, CUBE), boxes(G9, CUBE, SPECK), boxes(G9, CUBE)],
                 S9, [0, 56, 112], criteria="lin2009")
    assert [t.category for t in res.timepoints[1:]] == ["SD", "SD"]
    assert res.timepoints[1].equivocal_new_lesions == 1
    assert res.subject.progression_days is None


def test_speck_that_persists_and_grows_is_pd_dated_back(tmp_path):
    res = series(tmp_path, [boxes(G9, CUBE), boxes(G9, CUBE, SPECK), boxes(G9, CUBE, SPECK_GROWN)],
                 S9, [0, 56, 112], criteria="lin2009")
    # confirmed (larger volume on the next scan, 18 > 1 voxels): PD at the scan that first showed it
    assert res.timepoints[1].category == "PD"
    assert res.timepoints[2].category == "PD"
    assert res.subject.progression_days == 56
    assert res.subject.best_response == "PD"


def test_speck_that_persists_unchanged_stays_equivocal(tmp_path):
    res = series(tmp_path, [boxes(G9, CUBE), boxes(G9, CUBE, SPECK), boxes(G9, CUBE, SPECK)],
                 S9, [0, 56, 112], criteria="lin2009")
    assert [t.category for t in res.timepoints[1:]] == ["SD", "SD"]
    assert res.subject.progression_days is None


# --------------------------------------------------------------------------------------------
# 3. measurability

def lesions_under(path, preset, convention="corners"):
    c = get_criteria(preset)
    return find_lesions(
        cnsvol.read_mask(path),
        measurable_min_diameter_mm=c.measurable_min_diameter_mm,
        measurable_min_perpendicular_mm=c.measurable_min_perpendicular_mm,
        measurable_min_slices=c.measurable_min_slices,
        diameter_convention=convention,
    ).lesions


def test_one_slice_line(tmp_path):
    # 12x1x1 voxels of 1 mm: longest sqrt(144 + 1) = 12.04; the longest chord perpendicular to
    # that diagonal inside a 12 x 1 rectangle is b * D / a = 1 * 12.04 / 12 = 1.003 mm; 1 slice
    path = save(tmp_path, "line", boxes((20, 8, 5), np.s_[2:14, 3:4, 2:3]), (1.0, 1.0, 1.0))
    (les,) = lesions_under(path, "rano-bm-vol")
    assert les.longest_diameter_mm == pytest.approx(math.sqrt(145))
    assert les.perpendicular_diameter_mm == pytest.approx(math.sqrt(145) / 12, abs=0.25)
    assert les.axial_slice_count == 1
    assert les.measurable is False            # perpendicular < 5 and slices < 2
    (les,) = lesions_under(path, "lin2009")
    assert les.measurable is True             # lin2009: only the 10 mm longest diameter
    # and the criteria are applied by compare(): nothing measurable at baseline under RANO-BM
    r = compare(path, path, criteria="rano-bm-vol")
    assert (r.category, r.reason_code) == ("NE", "no_measurable_disease")
    assert compare(path, path, criteria="lin2009").category == "SD"


def test_thin_plate_on_one_slice(tmp_path):
    # 15x15x1 voxels of 1 mm: longest = perpendicular = the two diagonals, 15 * sqrt(2) = 21.21
    path = save(tmp_path, "plate", boxes((20, 20, 5), np.s_[2:17, 2:17, 2:3]), (1.0, 1.0, 1.0))
    (les,) = lesions_under(path, "rano-bm-vol")
    assert les.longest_diameter_mm == pytest.approx(15 * math.sqrt(2))
    assert les.perpendicular_diameter_mm == pytest.approx(15 * math.sqrt(2), abs=0.25)
    assert les.axial_slice_count == 1
    assert les.measurable is False            # one slice only
    assert lesions_under(path, "lin2009")[0].measurable is True


def test_box_perpendicular_and_slices_anisotropic(tmp_path):
    # 12x6x4 voxels at 1 x 1 x 3 mm: 4 axial slices; axial longest = diagonal of 12 x 6 mm,
    # D = sqrt(180) = 13.42; 3D = sqrt(12^2 + 6^2 + 12^2) = 18; the longest chord perpendicular to
    # the diagonal of an a x b rectangle runs edge to edge across b: b * D / a = 6 * 13.42 / 12
    # = 6.708 mm (>= 5: measurable under RANO-BM; < 10: not under RANO 2.0)
    path = save(tmp_path, "box", boxes((20, 12, 8), np.s_[2:14, 3:9, 2:6]), (1.0, 1.0, 3.0))
    (les,) = lesions_under(path, "rano-bm-vol")
    assert les.axial_slice_count == 4
    assert les.longest_diameter_mm == pytest.approx(math.sqrt(180))
    assert les.max_diameter_3d_mm == pytest.approx(18.0)
    assert les.perpendicular_diameter_mm == pytest.approx(6 * math.sqrt(180) / 12, abs=0.25)
    assert les.measurable is True
    assert lesions_under(path, "rano2-vol")[0].measurable is False
    # centres: the rectangle between voxel centres is 11 x 5 mm -> sqrt(146) = 12.08
    (les,) = lesions_under(path, "lin2009", "centres")
    assert les.longest_diameter_mm == pytest.approx(math.sqrt(146))


def ball_9mm():
    """Voxels (1 mm) whose centres lie within 4.5 mm of the centre of voxel (8, 8, 8)."""
    i, j, k = np.indices((17, 17, 17)) - 8
    return ((i * i + j * j + k * k) <= 4.5**2).astype(np.uint8)


def brute_diameters(data, convention):
    """(axial longest, 3D longest) by brute force over voxel corners or centres (1 mm grid)."""
    idx = np.argwhere(data > 0).astype(float)
    half = (-0.5, 0.5) if convention == "corners" else (0.0,)
    offs = np.array([[a, b, c] for a in half for b in half for c in half])
    pts = np.unique((idx[:, None, :] + offs[None]).reshape(-1, 3), axis=0)
    axial = 0.0
    for k in np.unique(idx[:, 2]):  # one axial slice: its voxels' in-plane corners / centres
        ij = idx[idx[:, 2] == k][:, :2]
        flat = np.unique((ij[:, None, :] + offs[None, :, :2]).reshape(-1, 2), axis=0)
        if len(flat) > 1:
            axial = max(axial, pdist(flat).max())
    return axial, pdist(pts).max()


def test_ball_under_both_diameter_conventions(tmp_path):
    data = ball_9mm()
    path = save(tmp_path, "ball", data, (1.0, 1.0, 1.0))
    ax_c, d3_c = brute_diameters(data, "corners")
    ax_m, d3_m = brute_diameters(data, "centres")
    # sanity of the hand derivation: (4, 2, 0) is inside (16 + 4 = 20 <= 20.25): centres
    # 2 * sqrt(20) = 8.944; its outer corner (4.5, 2.5, 0.5) gives 2 * sqrt(26.75) = 10.34 in 3D
    assert ax_m == pytest.approx(2 * math.sqrt(20)) and d3_m == pytest.approx(2 * math.sqrt(20))
    assert d3_c == pytest.approx(2 * math.sqrt(26.75)) and ax_c == pytest.approx(2 * math.sqrt(26.5))
    mask = cnsvol.read_mask(path)
    (corn,) = find_lesions(mask, diameter_convention="corners").lesions
    (cent,) = find_lesions(mask, diameter_convention="centres").lesions
    assert corn.longest_diameter_mm == pytest.approx(ax_c)
    assert corn.max_diameter_3d_mm == pytest.approx(d3_c)
    assert cent.longest_diameter_mm == pytest.approx(ax_m)
    assert cent.max_diameter_3d_mm == pytest.approx(d3_m)
    assert corn.axial_slice_count == cent.axial_slice_count == 9
    assert corn.measurable is True and cent.measurable is False  # 10 mm rule
    # the convention reaches compare() through MeasureOptions
    r = compare(path, path, options=MeasureOptions(diameter_convention="centres"))
    assert r.reason_code == "no_measurable_disease"
    assert compare(path, path, options=MeasureOptions(diameter_convention="corners")).category == "SD"


# --------------------------------------------------------------------------------------------
# 4. post-progression (lin2009, 1 x 1 x 2 mm grid)

T_BIG = np.s_[2:22, 2:22, 2:20]  # 20x20x18 = 7200 voxels: +80% vs 4000 -> PD
NEW = np.s_[30:38, 30:38, 4:8]   # a new lesion of 8x8 mm (11.3 mm diagonal), above every floor


@pytest.mark.parametrize(
    "t1, t2",
    [
        ((T_BIG,), (T_BIG,)),          # t2 at the t1 size (+80% vs nadir)
        ((T_BIG,), (TARGET,)),         # t2 back to baseline: a naive call would be SD
        ((TARGET, NEW), (TARGET, NEW)),  # new lesion at t1, merely "matched" at t2
    ],
)
def test_timepoints_after_first_pd_stay_pd(tmp_path, t1, t2):
    res = series(tmp_path, [boxes(G1, TARGET), boxes(G1, *t1), boxes(G1, *t2)], S1,
                 [0, 56, 112], criteria="lin2009")
    first, after = res.timepoints[1], res.timepoints[2]
    assert first.category == "PD" and first.post_progression is False
    assert first.reason_code != "post_progression"
    assert after.category == "PD" and after.post_progression is True
    assert after.reason_code == "post_progression"
    assert res.subject.progression_days == 56


def test_best_response_ignores_post_progression(tmp_path):
    # 4000 -> 1600 (-60%: PR) -> 7200 (+350% vs nadir: PD) -> 2000 (+25% vs nadir, naive SD)
    masks = [boxes(G1, TARGET), boxes(G1, np.s_[2:22, 2:22, 2:6]), boxes(G1, T_BIG),
             boxes(G1, np.s_[2:22, 2:22, 2:7])]
    res = series(tmp_path, masks, S1, [0, 56, 112, 168], criteria="lin2009")
    assert [t.category for t in res.timepoints[1:]] == ["PR", "PD", "PD"]
    assert [t.post_progression for t in res.timepoints[1:]] == [False, False, True]
    assert res.subject.best_response == "PR" and res.subject.progression_days == 112


# --------------------------------------------------------------------------------------------
# 5. RANO 2.0 (0.9 x 0.9 x 3 mm grid). Target 20x20x10 voxels = 18 x 18 x 30 mm (measurable:
# 25.5 mm longest and perpendicular, 10 slices), 4000 voxels.

R_T = np.s_[4:24, 4:24, 3:13]
R_SHRUNK = np.s_[4:24, 4:24, 3:6]   # 1200 voxels: -70% (>= 65%: PR)
R_BIG = np.s_[4:32, 4:32, 3:13]     # 28x28x10 = 7840 voxels: +96% (>= 40%: PD)


def rano2(tmp_path, regions, days, **kw):
    return series(tmp_path, [boxes(G9, *r) for r in regions], S9, days, criteria="rano2-vol", **kw)


def test_rano2_single_pr_is_not_a_best_response(tmp_path):
    res = rano2(tmp_path, [(R_T,), (R_SHRUNK,)], [0, 56])
    assert res.timepoints[1].percent_change_vs_baseline == pytest.approx(-70.0)
    assert res.timepoints[1].confirmed is False
    assert res.subject.best_response != "PR"


@pytest.mark.parametrize("day2, confirmed", [(84, True), (83, False)])  # >= 28 days later
def test_rano2_pr_confirmed_28_days_later(tmp_path, day2, confirmed):
    res = rano2(tmp_path, [(R_T,), (R_SHRUNK,), (R_SHRUNK,)], [0, 56, day2])
    assert res.timepoints[1].confirmed is confirmed
    assert (res.subject.best_response == "PR") is confirmed


def test_rano2_pd_within_12_weeks_of_radiotherapy_confirmed_is_dated_back(tmp_path):
    # radiotherapy ended on day 10: scans up to day 94 need confirmation
    res = rano2(tmp_path, [(R_T,), (R_BIG,), (R_BIG,)], [0, 28, 112], radiotherapy_end_days=10)
    assert res.timepoints[1].category == "PD"
    assert res.subject.progression_days == 28


def test_rano2_pd_within_12_weeks_unconfirmed_is_not_pd(tmp_path):
    res = rano2(tmp_path, [(R_T,), (R_BIG,), (R_T,)], [0, 28, 112], radiotherapy_end_days=10)
    t1 = res.timepoints[1]
    assert t1.category == "SD" and t1.reason_code == "progression_unconfirmed"
    assert "radiotherapy" in t1.reason.lower()
    assert res.timepoints[2].category != "PD"
    assert res.subject.progression_days is None


@pytest.mark.parametrize("day, pd_now", [(94, False), (95, True)])  # window: day <= 10 + 84
def test_rano2_radiotherapy_window_boundary(tmp_path, day, pd_now):
    res = rano2(tmp_path, [(R_T,), (R_BIG,)], [0, day], radiotherapy_end_days=10)
    assert (res.timepoints[1].category == "PD") is pd_now
    a, b = save(tmp_path, "a", boxes(G9, R_T), S9), save(tmp_path, "b", boxes(G9, R_BIG), S9)
    r = compare(a, b, criteria="rano2-vol", days=day, radiotherapy_end_days=10)
    assert (r.category == "PD") is pd_now


def test_radiotherapy_window_only_under_rano2(tmp_path):
    res = series(tmp_path, [boxes(G9, R_T), boxes(G9, R_BIG)], S9, [0, 28],
                 criteria="lin2009", radiotherapy_end_days=10)
    assert res.timepoints[1].category == "PD"  # lin2009: radiotherapy_confirmation_days None
    assert rano2(tmp_path, [(R_T,), (R_BIG,)], [0, 28]).timepoints[1].category == "PD"  # no RT date


@pytest.mark.parametrize("dose, cr", [(4.0, False), (0.0, True)])
def test_rano2_cr_needs_steroids_off(tmp_path, dose, cr):
    clinical = [{"steroid_dose_mg": dose, "neuro_status": "stable"}] * 3
    res = rano2(tmp_path, [(R_T,), (), ()], [0, 56, 112], clinical=clinical)
    assert (res.timepoints[1].category == "CR") is cr
    assert (res.subject.best_response == "CR") is cr


# --------------------------------------------------------------------------------------------
# 6. compartments (0.9 x 0.9 x 3 mm grid): three/four touching slabs, one component

SLAB_A = np.s_[10:14, 10:16, 4:7]   # 4x6x3 = 72 voxels
SLAB_B = np.s_[14:20, 10:16, 4:7]   # 6x6x3 = 108
SLAB_C = np.s_[20:30, 10:16, 4:7]   # 10x6x3 = 180
SLAB_D = np.s_[30:32, 10:16, 4:7]   # 2x6x3 = 36

CONVENTIONS = {
    # name: ({label: slab}, {compartment: voxels}) -- every compartment of the convention
    "brats2021": ({1: SLAB_A, 4: SLAB_B, 2: SLAB_C},
                  {"nonenhancing": 72, "enhancing": 108, "edema": 180}),
    "brats2023": ({1: SLAB_A, 3: SLAB_B, 2: SLAB_C, 4: SLAB_D},
                  {"nonenhancing": 72, "enhancing": 108, "edema": 180, "cavity": 36}),
    "lumiere": ({2: SLAB_A, 1: SLAB_B, 3: SLAB_C},
                {"nonenhancing": 72, "enhancing": 108, "edema": 180}),
}


def labelled(spec):
    data = np.zeros(G9, np.uint8)
    for label, region in spec.items():
        data[region] = label
    return data


@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
def test_compartment_volumes_sum_to_whole_tumour(tmp_path, convention):
    spec, voxels = CONVENTIONS[convention]
    data = labelled(spec)
    path = save(tmp_path, "glioma", data, S9)
    expected = {name: n * VOX9 for name, n in voxels.items()}
    whole = np.count_nonzero(data) * VOX9
    res = evaluate_series([path, path], [0, 56], options=MeasureOptions(compartments=convention))
    # with a convention the lesions are the tumour core (enhancing + non-enhancing), never the
    # oedema or a cavity, unless the criteria name other compartments (after the new-user trial:
    # a whole-tumour lesion under lin2009 / RANO-BM measured oedema as lesion)
    core = (voxels["enhancing"] + voxels["nonenhancing"]) * VOX9
    for tp in res.timepoints:
        assert tp.total_volume_mm3 == pytest.approx(core)
        assert set(tp.compartment_volumes_mm3) == set(expected)
        for name, vol in expected.items():
            assert tp.compartment_volumes_mm3[name] == pytest.approx(vol)
        assert sum(tp.compartment_volumes_mm3.values()) == pytest.approx(whole)
    (les,) = res.lesion_sets[0].lesions
    assert set(les.compartment_volumes_mm3) == set(expected)
    assert les.compartment_volumes_mm3 == pytest.approx(expected)
    # the library frames: one column per compartment, empty where the convention has none
    tps, lesf = res.timepoints_frame(), res.lesions_frame()
    for name in ("enhancing", "nonenhancing", "edema", "cavity"):
        col = f"{name}_volume_mm3"
        for frame in (tps, lesf):
            value = frame[col].iloc[0]
            if name in expected:
                assert float(value) == pytest.approx(expected[name])
            else:
                assert pd.isna(value)


def test_no_convention_means_no_compartments(tmp_path):
    path = save(tmp_path, "glioma", labelled(CONVENTIONS["brats2021"][0]), S9)
    (les,) = find_lesions(cnsvol.read_mask(path)).lesions
    assert les.compartment_volumes_mm3 == {}


def test_rano2_measures_enhancing_disease_only(tmp_path):
    # brats2021: ET (4) 12x12x3 = 432 voxels (10.8 mm sides: 15.3 mm both diagonals, 3 slices:
    # measurable under RANO 2.0) with edema (2) beside it, 10x12x3 = 360 voxels. Follow-up:
    # ET 12x3x3 = 108 voxels (-75%) while the edema grows to 18x12x3 = 648 voxels.
    base = labelled({4: np.s_[5:17, 5:17, 4:7], 2: np.s_[17:27, 5:17, 4:7]})
    follow = labelled({4: np.s_[5:17, 5:8, 4:7], 2: np.s_[17:35, 5:17, 4:7]})
    res = series(tmp_path, [base, follow], S9, [0, 56], criteria="rano2-vol",
                 options=MeasureOptions(compartments="brats2021"))
    t0, t1 = res.timepoints
    assert t0.target_volume_mm3 == pytest.approx(432 * VOX9)
    assert t1.target_volume_mm3 == pytest.approx(108 * VOX9)
    assert t1.percent_change_vs_baseline == pytest.approx(-75.0)
    assert t1.category != "PD"  # edema growth is not the response measure
    (les,) = res.lesion_sets[0].lesions  # one enhancing component, the edema attached to it
    assert les.volume_mm3 == pytest.approx(432 * VOX9)
    assert les.compartment_volumes_mm3["enhancing"] == pytest.approx(432 * VOX9)
    assert les.compartment_volumes_mm3["edema"] == pytest.approx(360 * VOX9)
    assert les.compartment_volumes_mm3.get("nonenhancing", 0.0) == pytest.approx(0.0)


def write_manifest(folder, rows, extra=""):
    head = "subject_id,timepoint,days_from_baseline,mask_path" + (f",{extra}" if extra else "")
    (folder / "manifest.csv").write_text("\n".join([head, *rows]) + "\n")
    return str(folder / "manifest.csv")


@pytest.mark.slow
def test_run_tables_carry_compartments_and_measurability(tmp_path):
    data = labelled(CONVENTIONS["brats2021"][0])
    save(tmp_path, "g0", data, S9)
    save(tmp_path, "g1", data, S9)
    man = write_manifest(tmp_path, ["S1,baseline,0,g0.nii.gz", "S1,week8,56,g1.nii.gz"])
    out = tmp_path / "out"
    code = run_cli(["run", man, "--out", str(out), "--compartments", "brats2021",
                    "--diameter-convention", "corners", "--jobs", "1", "--quiet", "--no-qc"])
    assert code == 0
    expected = {"nonenhancing": 72, "enhancing": 108, "edema": 180}
    for table in ("lesions.csv", "timepoints.csv"):
        frame = read_text_table(out / table)
        for name in ("enhancing", "nonenhancing", "edema"):
            assert float(frame[f"{name}_volume_mm3"].iloc[0]) == pytest.approx(expected[name] * VOX9)
        assert frame["cavity_volume_mm3"].iloc[0] == ""
    lesions = read_text_table(out / "lesions.csv")
    assert int(lesions["axial_slice_count"].iloc[0]) == 3
    assert float(lesions["perpendicular_diameter_mm"].iloc[0]) > 0


@pytest.mark.slow
def test_run_reads_radiotherapy_end_days_from_the_manifest(tmp_path):
    save(tmp_path, "r0", boxes(G9, R_T), S9)
    save(tmp_path, "r1", boxes(G9, R_BIG), S9)
    man = write_manifest(tmp_path, ["S1,baseline,0,r0.nii.gz,10", "S1,week4,28,r1.nii.gz,10"],
                         extra="radiotherapy_end_days")
    out = tmp_path / "out"
    code = run_cli(["run", man, "--out", str(out), "--criteria", "rano2-vol", "--jobs", "1",
                    "--quiet", "--no-qc"])
    assert code == 0
    tps = read_text_table(out / "timepoints.csv")
    row = tps[tps["timepoint"] == "week4"].iloc[0]
    assert (row["category"], row["reason_code"]) == ("SD", "progression_unconfirmed")


# --------------------------------------------------------------------------------------------
# 7. criteria fields

EXPECTED_FIELDS = {
    # slices, perpendicular, nt growth, nt small below, nt small reach, new floor, RT days, compartments
    "lin2009": (1, 0.0, 5.0, 6.0, 10.0, 5.0, None, None),
    "tbcrc022": (1, 0.0, 5.0, 6.0, 10.0, 6.0, None, None),
    "rano-bm-vol": (2, 5.0, 5.0, 6.0, 10.0, 5.0, None, None),
    "rano2-vol": (2, 10.0, 5.0, 6.0, 10.0, 10.0, 84, ("enhancing",)),
}


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_presets_carry_the_new_fields(preset):
    c = get_criteria(preset)
    assert preset in cnsvol.PRESETS
    got = (c.measurable_min_slices, c.measurable_min_perpendicular_mm,
           c.nontarget_progression_growth_mm, c.nontarget_progression_small_below_mm,
           c.nontarget_progression_small_reach_mm, c.new_lesion_min_diameter_mm,
           c.radiotherapy_confirmation_days,
           None if c.response_compartments is None else tuple(c.response_compartments))
    assert got == EXPECTED_FIELDS[preset]


def test_rano2_thresholds():
    c = get_criteria("rano2-vol")
    assert (c.response_decrease_pct, c.progression_increase_pct) == (65.0, 40.0)
    assert c.progression_reference == "nadir"
    assert c.confirmation_min_days == 28 and c.cr_requires_off_steroids is True
    assert c.measurable_min_diameter_mm == 10.0
    assert "Wen" in c.source and "2023" in c.source


def test_user_toml_sets_the_new_fields(tmp_path):
    f = tmp_path / "glioma.toml"
    f.write_text(
        'extends = "rano-bm-vol"\nmeasurable_min_slices = 3\nmeasurable_min_perpendicular_mm = 7.5\n'
        'nontarget_progression_growth_mm = 4\nnontarget_progression_small_below_mm = 5\n'
        'nontarget_progression_small_reach_mm = 12\nradiotherapy_confirmation_days = 56\n'
        'response_compartments = ["enhancing", "nonenhancing"]\n'
    )
    c = cnsvol.load_criteria_file(f)
    assert c.measurable_min_slices == 3 and c.measurable_min_perpendicular_mm == 7.5
    assert c.nontarget_progression_growth_mm == 4.0
    assert (c.nontarget_progression_small_below_mm, c.nontarget_progression_small_reach_mm) == (5.0, 12.0)
    assert c.radiotherapy_confirmation_days == 56
    assert tuple(c.response_compartments) == ("enhancing", "nonenhancing")
    assert c.max_target_lesions == 5  # inherited from rano-bm-vol


def test_user_toml_measurability_reaches_the_call(tmp_path):
    # the one-slice line of test_one_slice_line becomes measurable once slices 1 / perpendicular 0
    path = save(tmp_path, "line", boxes((20, 8, 5), np.s_[2:14, 3:4, 2:3]), (1.0, 1.0, 1.0))
    f = tmp_path / "loose.toml"
    f.write_text('extends = "rano-bm-vol"\nmeasurable_min_slices = 1\n'
                 'measurable_min_perpendicular_mm = 0\n')
    assert compare(path, path, criteria=str(f)).category == "SD"


@pytest.mark.parametrize(
    "field, value",
    [
        ("measurable_min_slices", "1.5"),
        ("measurable_min_slices", "-1"),
        ("measurable_min_perpendicular_mm", '"five"'),
        ("measurable_min_perpendicular_mm", "-1"),
        ("nontarget_progression_growth_mm", "-5"),
        ("nontarget_progression_small_below_mm", "true"),
        ("nontarget_progression_small_reach_mm", '"ten"'),
        ("radiotherapy_confirmation_days", '"twelve weeks"'),
        ("radiotherapy_confirmation_days", "-84"),
        ("response_compartments", '["tumour"]'),  # not a compartment name
        ("response_compartments", "3"),
    ],
)
def test_bad_new_fields_are_refused_naming_the_field(tmp_path, field, value):
    f = tmp_path / "bad.toml"
    f.write_text(f'extends = "lin2009"\n{field} = {value}\n')
    with pytest.raises(CriteriaError, match=field):
        cnsvol.load_criteria_file(f)


# --------------------------------------------------------------------------------------------
# 8. the command line

def test_cli_volumes_diameter_convention_and_compartments(tmp_path, capsys):
    box = save(tmp_path, "box", boxes((20, 12, 8), np.s_[2:14, 3:9, 2:6]), (1.0, 1.0, 3.0))
    capsys.readouterr()
    assert run_cli(["volumes", box, "--format", "json", "--diameter-convention", "centres"]) == 0
    (les,) = json.loads(capsys.readouterr().out)["lesions"]
    assert les["longest_diameter_mm"] == pytest.approx(math.sqrt(146))  # 11 x 5 mm centres
    assert les["axial_slice_count"] == 4 and "perpendicular_diameter_mm" in les
    assert run_cli(["volumes", box, "--format", "json"]) == 0
    (les,) = json.loads(capsys.readouterr().out)["lesions"]
    assert les["longest_diameter_mm"] == pytest.approx(math.sqrt(180))  # corners by default
    assert les["perpendicular_diameter_mm"] == pytest.approx(6 * math.sqrt(180) / 12, abs=0.25)

    glioma = save(tmp_path, "glioma", labelled(CONVENTIONS["brats2021"][0]), S9)
    assert run_cli(["volumes", glioma, "--format", "json", "--compartments", "brats2021"]) == 0
    (les,) = json.loads(capsys.readouterr().out)["lesions"]
    assert les["compartment_volumes_mm3"]["enhancing"] == pytest.approx(108 * VOX9)
    assert les["compartment_volumes_mm3"]["nonenhancing"] == pytest.approx(72 * VOX9)


def test_cli_bogus_diameter_convention_is_a_usage_error(tmp_path, capsys):
    box = save(tmp_path, "box", boxes((20, 12, 8), np.s_[2:14, 3:9, 2:6]), (1.0, 1.0, 3.0))
    assert run_cli(["volumes", box, "--diameter-convention", "bogus"]) == 2
    assert run_cli(["volumes", box, "--compartments", "bogus"]) == 2


def test_cli_compare_and_track_take_the_convention(tmp_path, capsys):
    ball = save(tmp_path, "ball", ball_9mm(), (1.0, 1.0, 1.0))
    capsys.readouterr()
    assert run_cli(["compare", ball, ball, "--format", "json", "--diameter-convention", "centres"]) == 0
    assert json.loads(capsys.readouterr().out)["reason_code"] == "no_measurable_disease"  # 8.94 mm
    assert run_cli(["compare", ball, ball, "--format", "json", "--diameter-convention", "corners"]) == 0
    assert json.loads(capsys.readouterr().out)["category"] == "SD"  # 10.3 mm
    assert run_cli(["track", ball, ball, "--days", "0,56", "--format", "json",
                    "--diameter-convention", "centres"]) == 0
