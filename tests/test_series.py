"""Longitudinal response of one subject (cnsvol.evaluate_series / compare), from hand counts.

All masks are boxes on a 1 x 1 x 1.5 mm grid (1.5 mm3 per voxel, shape 40 x 44 x 30, origin
away from 0), so volumes are voxel counts x 1.5 and percent changes are ratios of voxel counts.
Axial slices are perpendicular to k; the in-plane longest diameter of an a x b box (voxel-corner
Feret) is sqrt(a**2 + b**2) mm.

The standard target ``T`` is 10 x 10 x 10 voxels (1000 voxels, 1500 mm3, axial diameter
sqrt(200) = 14.1 mm: measurable); ``target(n)`` keeps its 10 x 10 footprint over n slices
(100 n voxels), so ``target(5)`` is exactly -50% and ``target(14)`` exactly +40%.
Expected categories follow the rules in the docstrings of cnsvol.series, cnsvol.tracking and
cnsvol.criteria, and the presets table of DESIGN.md.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cnsvol import ClinicalStatus, MeasureOptions, compare, evaluate_series, mask_from_array
from cnsvol.response.criteria import PRESETS, with_overrides
from cnsvol.lesions.geometry import sphere_equivalent_diameter_mm

SPACING = (1.0, 1.0, 1.5)
SHAPE = (40, 44, 30)
ORIGIN = (-20.0, -22.0, -21.0)
VOX = 1.5
AFFINE = np.diag([*SPACING, 1.0])
AFFINE[:3, 3] = ORIGIN


def mask(*boxes, clear=()):
    data = np.zeros(SHAPE, dtype=np.uint8)
    for box in boxes:
        data[box] = 1
    for box in clear:
        data[box] = 0
    return mask_from_array(data, AFFINE)


def target(n_slices: int):
    return np.s_[5:15, 5:15, 5 : 5 + n_slices]


T = target(10)
EMPTY = ()


def new_box(a: int, b: int):
    """A new lesion far from T (i 28.., j 30..): a x b voxels in-plane over 2 slices."""
    return np.s_[28 : 28 + a, 30 : 30 + b, 20:22]


def run(follow_ups, *, days=None, baseline=(T,), criteria="lin2009", clinical=None, **kw):
    masks = [mask(*baseline)] + [mask(*boxes) for boxes in follow_ups]
    days = days if days is not None else [56 * i for i in range(len(masks))]
    return evaluate_series(masks, days, criteria=criteria, clinical=clinical, **kw)


def rows_of(result, track_id):
    return [r for r in result.tracks if r.track_id == track_id]


# --------------------------------------------------------------------------------------------
# 1. shrinkage and growth, inclusive thresholds


@pytest.mark.parametrize(
    "follow, voxels, category, code, responder",
    [
        ((target(5),), 500, "PR", "partial_response", True),  # -50% exactly
        ((target(5), np.s_[5:6, 5:6, 10:11]), 501, "SD", "stable_disease", True),  # -49.9%
        ((np.s_[5:15, 5:16, 5:10],), 550, "SD", "stable_disease", True),  # -45%
        ((target(8),), 800, "SD", "stable_disease", True),  # -20% exactly
        ((np.s_[5:15, 5:14, 5:14],), 810, "SD", "stable_disease", False),  # -19%
        ((target(13),), 1300, "SD", "stable_disease", False),  # +30%
        ((target(13), np.s_[5:15, 5:14, 18:19]), 1390, "SD", "stable_disease", False),  # +39%
        ((target(14),), 1400, "PD", "progression", False),  # +40% exactly
    ],
)
def test_lin2009_categories_and_responder_flag(follow, voxels, category, code, responder):
    res = run([follow])
    t1 = res.timepoints[1]
    pct = (voxels - 1000) / 1000 * 100
    assert t1.target_volume_mm3 == pytest.approx(voxels * VOX)
    assert t1.percent_change_vs_baseline == pytest.approx(pct)
    assert t1.percent_change_vs_nadir == pytest.approx(pct)
    assert (t1.category, t1.reason_code) == (category, code)
    assert res.subject.responder_20pct is responder
    assert res.subject.best_percent_change == pytest.approx(pct)
    assert res.subject.best_response == category
    assert res.subject.objective_response is (category == "PR")
    assert res.subject.time_to_response_days == (56 if category == "PR" else None)
    assert res.subject.progression_days == (56 if category == "PD" else None)


def test_baseline_row_is_the_reference():
    res = run([(target(5),)])
    t0 = res.timepoints[0]
    assert t0.reason_code == "baseline"
    assert t0.percent_change_vs_baseline == pytest.approx(0.0)
    assert t0.percent_change_vs_nadir is None
    assert t0.target_volume_mm3 == pytest.approx(1500.0)
    assert [t.days_from_baseline for t in res.timepoints] == [0, 56]


@pytest.mark.parametrize(
    "follow, category",
    [
        ((target(3),), "PR"),  # -70%
        ((target(3), np.s_[5:15, 5:10, 8:9]), "PR"),  # 350 voxels: -65% exactly
        ((target(4),), "SD"),  # -60%: PR under lin2009, not under RANO-BM
    ],
)
def test_rano_response_needs_65_percent(follow, category):
    assert run([follow], criteria="rano-bm-vol").timepoints[1].category == category


# --------------------------------------------------------------------------------------------
# 2. split, merge, complex, new, resolved: tracks


def test_split_is_one_track_with_two_lesions():
    res = run([(np.s_[5:15, 5:15, 5:10], np.s_[5:15, 5:15, 12:15])])  # 500 + 300 voxels
    assert [c.status for c in res.matchings[0].correspondences] == ["split"]
    assert {r.track_id for r in res.tracks} == {1}
    base, follow = rows_of(res, 1)
    assert (base.status, base.lesion_ids) == ("baseline", (1,))
    assert (follow.status, follow.lesion_ids) == ("split", (1, 2))
    assert follow.volume_mm3 == pytest.approx(800 * VOX)
    assert follow.percent_change_vs_baseline == pytest.approx(-20.0)
    assert follow.is_target
    t1 = res.timepoints[1]
    assert t1.new_lesions == 0 and t1.lesion_count == 2
    assert t1.percent_change_vs_baseline == pytest.approx(-20.0)
    assert t1.category == "SD"


def test_merge_is_one_track_from_the_first_timepoint():
    res = run([(T,)], baseline=(np.s_[5:15, 5:15, 5:10], np.s_[5:15, 5:15, 12:15]))
    assert [c.status for c in res.matchings[0].correspondences] == ["merged"]
    assert {r.track_id for r in res.tracks} == {1}
    base, follow = rows_of(res, 1)
    assert (base.status, base.lesion_ids) == ("baseline", (1, 2))
    assert base.volume_mm3 == pytest.approx(800 * VOX)
    assert (follow.status, follow.lesion_ids) == ("merged", (1,))
    assert follow.percent_change_vs_baseline == pytest.approx(25.0)
    assert res.timepoints[1].percent_change_vs_baseline == pytest.approx(25.0)


def test_two_to_two_chain_is_one_complex_track():
    rest = (slice(4, 16), slice(4, 14))
    res = run(
        [((slice(6, 15), *rest), (slice(17, 27), *rest))],  # 1080 and 1200 voxels
        baseline=((slice(2, 10), *rest), (slice(12, 22), *rest)),  # 960 and 1200 voxels
    )
    assert [c.status for c in res.matchings[0].correspondences] == ["complex"]
    base, follow = rows_of(res, 1)
    assert base.lesion_ids == (1, 2) and follow.lesion_ids == (1, 2)
    assert follow.status == "complex"
    assert follow.volume_mm3 == pytest.approx(2280 * VOX)
    assert res.timepoints[1].percent_change_vs_baseline == pytest.approx((2280 - 2160) / 21.6)


def test_new_lesion_is_a_new_track_and_pd_under_lin2009():
    res = run([(T, new_box(4, 4))])
    assert [(r.track_id, r.timepoint, r.status) for r in res.tracks] == [
        (1, "T0", "baseline"), (1, "T1", "matched"), (2, "T1", "new"),
    ]
    new_row = rows_of(res, 2)[0]
    assert new_row.percent_change_vs_baseline is None and not new_row.is_target
    t1 = res.timepoints[1]
    assert t1.new_lesions == 1 and t1.equivocal_new_lesions == 0
    assert (t1.category, t1.reason_code) == ("PD", "progression")
    assert "new lesion" in t1.reason
    # the new lesion counts in the total, not in the target sum
    assert t1.target_volume_mm3 == pytest.approx(1500.0)
    assert t1.total_volume_mm3 == pytest.approx((1000 + 32) * VOX)
    assert t1.percent_change_vs_baseline == pytest.approx(0.0)


def test_complete_disappearance_is_resolved_and_cr():
    res = run([EMPTY])
    base, gone = rows_of(res, 1)
    assert (gone.status, gone.lesion_ids, gone.volume_mm3) == ("resolved", (), 0.0)
    assert gone.percent_change_vs_baseline == pytest.approx(-100.0)
    t1 = res.timepoints[1]
    assert (t1.category, t1.reason_code) == ("CR", "complete_response")
    assert t1.percent_change_vs_baseline == pytest.approx(-100.0)
    assert res.subject.best_response == "CR" and res.subject.objective_response


def test_compare_reports_the_split_track():
    r = compare(mask(T), mask(np.s_[5:15, 5:15, 5:10], np.s_[5:15, 5:15, 12:15]), days=56)
    (pair,) = r.track_pairs()
    assert pair["status"] == "split"
    assert pair["baseline_lesion_ids"] == [1] and pair["followup_lesion_ids"] == [1, 2]
    assert pair["percent_change"] == pytest.approx(-20.0)
    assert r.percent_change == pytest.approx(-20.0)
    assert r.responder_20pct is True and r.category == "SD"


# --------------------------------------------------------------------------------------------
# 3. new lesions and the presets' size floors (lin2009 5 mm, cnsvol default; 6 mm; 5 mm)


@pytest.mark.parametrize(
    "criteria, a, b, is_pd",
    [
        ("lin2009", 1, 1, False),  # 1.41 mm: a speck, equivocal
        ("lin2009", 3, 3, False),  # 4.24 mm < 5: equivocal
        ("lin2009", 4, 3, True),  # exactly 5.0 mm: the floor is inclusive
        ("tbcrc022", 5, 4, True),  # sqrt(41) = 6.40 mm >= 6
        ("tbcrc022", 4, 4, False),  # sqrt(32) = 5.66 mm < 6: equivocal
        ("tbcrc022", 3, 3, False),
        ("rano-bm-vol", 4, 4, True),  # 5.66 mm >= 5
        ("rano-bm-vol", 4, 3, True),  # exactly 5.0 mm: the floor is inclusive
        ("rano-bm-vol", 3, 3, False),  # sqrt(18) = 4.24 mm < 5: equivocal
    ],
)
def test_new_lesion_floor_per_preset(criteria, a, b, is_pd):
    res = run([(T, new_box(a, b))], criteria=criteria)
    t1 = res.timepoints[1]
    assert t1.new_lesions == 1
    assert t1.equivocal_new_lesions == (0 if is_pd else 1)
    if is_pd:
        assert (t1.category, t1.reason_code) == ("PD", "progression")
        assert res.subject.progression_days == 56
    else:
        # equivocal on the last scan: not PD, waiting for the next scan
        assert t1.category == "SD"
        assert "equivocal" in t1.reason and "to be confirmed on a later scan" in t1.reason
        assert res.subject.progression_days is None


def test_new_lesion_diameter_is_measured_as_documented():
    res = run([(T, new_box(4, 3))], criteria="rano-bm-vol")
    small = res.lesion_sets[1].by_id()[2]
    assert small.longest_diameter_mm == pytest.approx(5.0)
    assert res.lesion_sets[0].lesions[0].longest_diameter_mm == pytest.approx(math.sqrt(200))


@pytest.mark.parametrize("criteria, a", [("rano-bm-vol", 3), ("tbcrc022", 4), ("lin2009", 1)])
def test_equivocal_new_lesion_that_persists_and_grows_is_pd_dated_back(criteria, a):
    # a x a x 2 voxels at T1, one voxel larger each way at T2 (still below the floor for
    # rano-bm-vol 3 -> 4: 5.66 mm >= 5 reaches it; it grows in every case)
    res = run([(T, new_box(a, a)), (T, new_box(a + 1, a + 1))], criteria=criteria)
    t1, t2 = res.timepoints[1:]
    assert t1.equivocal_new_lesions == 1
    assert (t1.category, t1.reason_code) == ("PD", "progression")
    assert "equivocal" in t1.reason and "confirmed by growth at T2" in t1.reason
    assert (t2.category, t2.reason_code) == ("PD", "post_progression")
    assert res.subject.progression_days == 56
    assert res.subject.best_response == "PD"


@pytest.mark.parametrize("criteria, a", [("rano-bm-vol", 3), ("tbcrc022", 4), ("lin2009", 1)])
def test_equivocal_new_lesion_that_persists_unchanged_stays_equivocal(criteria, a):
    res = run([(T, new_box(a, a)), (T, new_box(a, a)), (T, new_box(a, a))], criteria=criteria)
    assert [t.category for t in res.timepoints[1:]] == ["SD", "SD", "SD"]
    assert [t.equivocal_new_lesions for t in res.timepoints[1:]] == [1, 0, 0]
    assert "not confirmed by growth" in res.timepoints[1].reason
    assert res.subject.progression_days is None


def test_equivocal_new_lesion_confirmed_two_scans_later_is_dated_back_to_first_sight():
    # 1 voxel at T1, unchanged at T2, 2 x 2 x 2 at T3: progression dated back to T1 (day 56)
    res = run([(T, new_box(1, 1)), (T, new_box(1, 1)), (T, new_box(2, 2))], criteria="lin2009")
    assert [t.category for t in res.timepoints[1:]] == ["PD", "PD", "PD"]
    assert [t.reason_code for t in res.timepoints[1:]] == [
        "progression", "post_progression", "post_progression"]
    assert "confirmed by growth at T3" in res.timepoints[1].reason
    assert res.subject.progression_days == 56


def test_equivocal_new_lesion_that_is_gone_next_scan_is_not_pd():
    res = run([(T, new_box(3, 3)), (T,)], criteria="rano-bm-vol")
    t1, t2 = res.timepoints[1:]
    assert (t1.category, t2.category) == ("SD", "SD")
    assert "not confirmed" in t1.reason
    assert res.subject.progression_days is None
    assert [r.status for r in rows_of(res, 2)] == ["new", "resolved"]


# --------------------------------------------------------------------------------------------
# 4. progression is measured from the nadir


def test_progression_vs_nadir_after_a_response():
    # 1000 -> 400 (PR, -60%) -> 600: +50% vs nadir 400 although -40% vs baseline
    res = run([(target(4),), (target(6),)], days=[0, 42, 84])
    t1, t2 = res.timepoints[1:]
    assert (t1.category, t2.category) == ("PR", "PD")
    assert t1.percent_change_vs_baseline == pytest.approx(-60.0)
    assert t1.percent_change_vs_nadir == pytest.approx(-60.0)
    assert t2.percent_change_vs_baseline == pytest.approx(-40.0)
    assert t2.percent_change_vs_nadir == pytest.approx(50.0)
    assert t2.reason_code == "progression" and "nadir" in t2.reason
    s = res.subject
    assert (s.best_response, s.objective_response) == ("PR", True)
    assert s.time_to_response_days == 42 and s.progression_days == 84
    assert s.best_percent_change == pytest.approx(-60.0) and s.responder_20pct


def test_growth_below_40_percent_of_nadir_is_not_progression():
    res = run([(target(4),), (np.s_[5:15, 5:15, 5:10], np.s_[5:15, 5:10, 10:11])])  # 550 vox
    t2 = res.timepoints[2]
    assert t2.percent_change_vs_nadir == pytest.approx(37.5)
    assert t2.category == "SD"


def test_best_response_looks_only_up_to_the_first_pd():
    # PD at T1 (+40%), then -60% at T2: the later shrinkage does not count
    res = run([(target(14),), (target(4),)])
    assert [t.category for t in res.timepoints[1:]] == ["PD", "PD"]
    t2 = res.timepoints[2]
    assert (t2.reason_code, t2.post_progression) == ("post_progression", True)
    assert "after progression at T1; this scan alone: PR" in t2.reason
    assert res.timepoints[1].post_progression is False
    assert res.subject.best_response == "PD"
    assert res.subject.best_percent_change == pytest.approx(40.0)
    assert res.subject.responder_20pct is False
    assert res.subject.progression_days == 56


def test_progression_reference_baseline_is_honoured():
    # Criteria docstring: PD when the target sum increased by progression_increase_pct vs
    # progression_reference ("nadir" or "baseline"). vs baseline, 1000 -> 400 -> 600 is -40%.
    crit = with_overrides(PRESETS["lin2009"], name="lin2009-baseline",
                          progression_reference="baseline")
    res = run([(target(4),), (target(6),)], criteria=crit)
    assert res.timepoints[2].category == "SD"


# --------------------------------------------------------------------------------------------
# 5. RANO-BM: confirmation, and the per-lesion growth condition for PD

PR_RANO = (target(3),)  # -70%


def test_rano_pr_confirmed_28_days_later():
    res = run([PR_RANO, PR_RANO], days=[0, 56, 84], criteria="rano-bm-vol")
    t1, t2 = res.timepoints[1:]
    assert (t1.category, t1.confirmed, t1.confirmed_category) == ("PR", True, "PR")
    assert (t2.category, t2.confirmed) == ("PR", False)  # nothing after it
    s = res.subject
    assert (s.best_response, s.objective_response, s.time_to_response_days) == ("PR", True, 56)


def test_rano_pr_27_days_later_is_not_confirmed():
    res = run([PR_RANO, PR_RANO], days=[0, 56, 83], criteria="rano-bm-vol")
    assert res.timepoints[1].confirmed is False
    assert res.subject.best_response == "SD" and not res.subject.objective_response


def test_rano_pr_at_the_last_scan_is_unconfirmed_and_counts_as_sd():
    res = run([PR_RANO], days=[0, 56], criteria="rano-bm-vol")
    t1 = res.timepoints[1]
    assert (t1.category, t1.confirmed, t1.confirmed_category) == ("PR", False, None)
    assert "unconfirmed" in t1.reason
    s = res.subject
    assert (s.best_response, s.objective_response) == ("SD", False)
    assert s.time_to_response_days is None
    assert s.responder_20pct is True  # the -70% reduction is still reported


def test_rano_pr_then_pr_14_days_later_then_sd_is_unconfirmed():
    res = run([PR_RANO, PR_RANO, (target(7),)], days=[0, 56, 70, 98], criteria="rano-bm-vol")
    assert [t.category for t in res.timepoints[1:]] == ["PR", "PR", "SD"]
    assert [t.confirmed for t in res.timepoints[1:]] == [False, False, None]
    assert res.subject.best_response == "SD" and not res.subject.objective_response


def test_lin2009_needs_no_confirmation():
    res = run([PR_RANO], days=[0, 56], criteria="lin2009")
    assert res.timepoints[1].confirmed is None
    assert res.subject.best_response == "PR" and res.subject.objective_response


def test_rano_cr_confirmed_by_a_pr_on_steroids_is_confirmed_as_pr():
    # T1: everything gone, off steroids: CR. T2: still gone, 2 mg (below baseline 4 mg, so not
    # an increase): PR because CR needs being off steroids. T1 is confirmed at the worse level.
    res = run([EMPTY, EMPTY], days=[0, 56, 84], criteria="rano-bm-vol",
              clinical=[{"steroid_dose_mg": 4}, {"steroid_dose_mg": 0}, {"steroid_dose_mg": 2}])
    t1, t2 = res.timepoints[1:]
    assert (t1.category, t2.category) == ("CR", "PR")
    assert (t1.confirmed, t1.confirmed_category) == (True, "PR")
    assert res.subject.best_response == "PR"


# five targets of 10 x 10 x 10 voxels, far apart
SPOTS = [np.s_[i0 : i0 + 10, j0 : j0 + 10] for j0 in (1, 14) for i0 in (1, 14, 27)][:5]


def spots(*slices_per_spot):
    return tuple((*spot, np.s_[k0:k1]) for spot, (k0, k1) in zip(SPOTS, slices_per_spot))


RANO_BASE = spots(*[(2, 12)] * 5)  # 5 x 1000 voxels


def test_growth_rule_preconditions_by_hand():
    d = sphere_equivalent_diameter_mm
    assert d(1800 * VOX) - d(1000 * VOX) < 5.0  # +80% volume: +3.1 mm
    assert d(2800 * VOX) - d(1000 * VOX) >= 5.0  # +180% volume: +5.8 mm
    assert (1.2**3 - 1) * 100 == pytest.approx(72.8)


def test_rano_sum_increase_without_a_lesion_growing_5mm_is_not_pd():
    grown = spots(*[(2, 20)] * 5)  # every target +80%: the sum +80%, each diameter +3.1 mm
    rano = run([grown], baseline=RANO_BASE, criteria="rano-bm-vol")
    t1 = rano.timepoints[1]
    assert t1.percent_change_vs_nadir == pytest.approx(80.0)
    assert t1.category == "SD"
    assert "no lesion grew" in t1.reason
    assert run([grown], baseline=RANO_BASE, criteria="lin2009").timepoints[1].category == "PD"


def test_rano_sum_increase_with_one_lesion_growing_5mm_is_pd():
    grown = spots((1, 29), *[(2, 17)] * 4)  # 2800 + 4 x 1500 = 8800 voxels: +76%
    t1 = run([grown], baseline=RANO_BASE, criteria="rano-bm-vol").timepoints[1]
    assert t1.percent_change_vs_nadir == pytest.approx(76.0)
    assert (t1.category, t1.reason_code) == ("PD", "progression")


def test_rano_one_lesion_growing_without_the_sum_increase_is_not_pd():
    grown = spots((1, 29), *[(2, 12)] * 4)  # 6800 voxels: +36%
    t1 = run([grown], baseline=RANO_BASE, criteria="rano-bm-vol").timepoints[1]
    assert t1.percent_change_vs_nadir == pytest.approx(36.0)
    assert t1.category == "SD"


def test_rano_counts_at_most_five_targets():
    # a sixth measurable lesion (the smallest) is not a target: its growth is not in the sum
    sixth = np.s_[27:37, 14:24, 2:11]  # 900 voxels
    res = run([(*RANO_BASE, np.s_[27:37, 14:24, 2:29])], baseline=(*RANO_BASE, sixth),
              criteria="rano-bm-vol")
    assert res.timepoints[0].target_volume_mm3 == pytest.approx(5000 * VOX)
    assert res.timepoints[1].percent_change_vs_baseline == pytest.approx(0.0)
    assert res.timepoints[1].total_volume_mm3 == pytest.approx((5000 + 2700) * VOX)
    assert sum(r.is_target for r in res.tracks if r.timepoint == "T0") == 5


# --------------------------------------------------------------------------------------------
# 6. clinical modifiers

STEROID_UP = ({"steroid_dose_mg": 4}, {"steroid_dose_mg": 8})
NEURO_WORSE = ({"neuro_status": "stable"}, {"neuro_status": "worse"})
EXTRACNS = ({"extracns_progression": False}, {"extracns_progression": True})


@pytest.mark.parametrize(
    "criteria, clinical, category, code, word",
    [
        # lin2009 counts a steroid increase as progression; PD reasons take priority over PR
        ("lin2009", STEROID_UP, "PD", "progression", "steroid"),
        ("tbcrc022", STEROID_UP, "SD", "response_blocked", "steroid"),
        ("rano-bm-vol", STEROID_UP, "SD", "response_blocked", "steroid"),
        ("lin2009", NEURO_WORSE, "PD", "progression", "neurologic"),
        ("rano-bm-vol", NEURO_WORSE, "PD", "progression", "neurologic"),
        ("tbcrc022", NEURO_WORSE, "SD", "response_blocked", "neurologic"),
        ("lin2009", EXTRACNS, "PD", "progression", "extra-CNS"),
        ("tbcrc022", EXTRACNS, "SD", "response_blocked", "extra-CNS"),
        ("rano-bm-vol", EXTRACNS, "PR", "partial_response", None),  # scored independently
        ("lin2009", ({"steroid_dose_mg": 8}, {"steroid_dose_mg": 4}), "PR", "partial_response",
         None),
        ("lin2009", ({"steroid_dose_mg": 4}, {"steroid_dose_mg": 4}), "PR", "partial_response",
         None),
        ("lin2009", ({"neuro_status": "stable"}, {"neuro_status": "improved"}), "PR",
         "partial_response", None),
    ],
)
def test_clinical_modifiers_on_a_volumetric_pr(criteria, clinical, category, code, word):
    res = run([(target(3),)], criteria=criteria, clinical=list(clinical))  # -70%
    t1 = res.timepoints[1]
    assert (t1.category, t1.reason_code) == (category, code)
    if word:
        assert word in t1.reason
    assert not t1.volumetric_only and "volumetric-only" not in t1.reason


@pytest.mark.parametrize(
    "criteria, category", [("rano-bm-vol", "SD"), ("tbcrc022", "SD"), ("lin2009", "PD")]
)
def test_steroid_increase_alone_on_stable_disease(criteria, category):
    res = run([(T,)], criteria=criteria, clinical=[ClinicalStatus(steroid_dose_mg=4.0),
                                                   ClinicalStatus(steroid_dose_mg=8.0)])
    assert res.timepoints[1].category == category


def test_rano_cr_on_steroids_is_pr():
    on = run([EMPTY], criteria="rano-bm-vol",
             clinical=[{"steroid_dose_mg": 4}, {"steroid_dose_mg": 2}]).timepoints[1]
    assert on.category == "PR" and "steroid" in on.reason
    off = run([EMPTY], criteria="rano-bm-vol",
              clinical=[{"steroid_dose_mg": 4}, {"steroid_dose_mg": 0}]).timepoints[1]
    assert off.category == "CR"
    lin = run([EMPTY], criteria="lin2009",
              clinical=[{"steroid_dose_mg": 4}, {"steroid_dose_mg": 2}]).timepoints[1]
    assert lin.category == "CR"  # lin2009 has no off-steroids condition


def test_without_clinical_data_the_category_is_volumetric_only():
    t1 = run([(target(5),)]).timepoints[1]
    assert t1.volumetric_only and "volumetric-only" in t1.reason
    t1 = run([(target(5),)], clinical=[None, {"neuro_status": "stable"}]).timepoints[1]
    assert not t1.volumetric_only and "volumetric-only" not in t1.reason


def test_clinical_status_is_validated():
    with pytest.raises(ValueError, match="neuro_status"):
        ClinicalStatus(neuro_status="better")
    with pytest.raises(ValueError, match="steroid_dose_mg"):
        ClinicalStatus(steroid_dose_mg=-1.0)


# --------------------------------------------------------------------------------------------
# 7. measurement noise: the half-voxel shell

BIG = np.s_[5:25, 5:25, 5:21]  # 20 x 20 x 16 = 6400 voxels
# exposed faces 2 (20*20 + 20*16 + 20*16) = 2080; band = 2080 x 1.5 / 2 = 1560 mm3
BIG_BAND = 2080 * VOX / 2


def test_min_detectable_change_of_a_box_is_exposed_faces_times_half_a_voxel():
    res = run([(BIG,)], baseline=(BIG,))
    (les,) = res.lesion_sets[0].lesions
    assert les.min_detectable_change_mm3 == pytest.approx(BIG_BAND)
    assert res.timepoints[0].min_detectable_change_mm3 == pytest.approx(BIG_BAND)


@pytest.mark.parametrize(
    "clear, faces",
    [
        ((), 2080),
        ((np.s_[5:6, 5:6, 5:6],), 2080),  # a corner voxel off: 3 faces lost, 3 exposed
        ((np.s_[15:16, 15:16, 5:6],), 2084),  # a dent in a face: 1 face lost, 5 exposed
        # a whole edge row off: the j-k cross-section loses a corner square, so its perimeter
        # (72) is unchanged and its area drops by 1: 2 x 319 + 72 x 20 = 2078
        ((np.s_[5:25, 5:6, 5:6],), 2078),
    ],
)
def test_min_detectable_change_hand_counts(clear, faces):
    m = mask(BIG, clear=clear)
    res = evaluate_series([m, m], [0, 56])
    (les,) = res.lesion_sets[0].lesions
    assert les.min_detectable_change_mm3 == pytest.approx(faces * VOX / 2)


def test_min_detectable_change_on_a_0p5_0p8_1p2_grid():
    data = np.zeros((30, 20, 12), np.uint8)
    data[3:17, 4:14, 2:8] = 1  # 14 x 10 x 6: faces 2 (140 + 60 + 84) = 568
    aff = np.diag([0.5, 0.8, 1.2, 1.0])
    m = mask_from_array(data, aff)
    res = evaluate_series([m, m], [0, 56])
    assert res.lesion_sets[0].lesions[0].min_detectable_change_mm3 == pytest.approx(
        568 * 0.48 / 2
    )


def test_a_few_voxels_on_a_big_lesion_is_within_measurement_error():
    res = evaluate_series([mask(BIG), mask(BIG, clear=[np.s_[5:10, 5:6, 5:6]])], [0, 56])
    t1 = res.timepoints[1]
    assert t1.target_volume_mm3 == pytest.approx(6395 * VOX)  # -7.5 mm3 vs a 1560 mm3 band
    assert t1.within_measurement_error is True
    assert rows_of(res, 1)[1].within_measurement_error is True
    assert t1.category == "SD"


def test_a_large_change_is_not_within_measurement_error():
    res = evaluate_series([mask(BIG), mask(np.s_[5:25, 5:25, 5:13])], [0, 56])  # -50%
    t1 = res.timepoints[1]
    assert t1.percent_change_vs_baseline == pytest.approx(-50.0)
    assert t1.within_measurement_error is False
    assert rows_of(res, 1)[1].within_measurement_error is False
    assert t1.category == "PR" and "measurement error" not in t1.reason


def test_pd_call_inside_the_band_says_so():
    # a thin measurable lesion 10 x 10 x 2 (band 280 faces x 0.75 = 210 mm3) growing to
    # 10 x 10 x 3 (band 320 x 0.75 = 240 mm3): +50%, but only +150 mm3 < 240 mm3
    res = run([(np.s_[5:15, 5:15, 5:8],)], baseline=(np.s_[5:15, 5:15, 5:7],))
    t1 = res.timepoints[1]
    assert t1.percent_change_vs_baseline == pytest.approx(50.0)
    assert t1.category == "PD"
    assert t1.within_measurement_error is True
    assert "within measurement error" in t1.reason
    assert t1.min_detectable_change_mm3 == pytest.approx(240.0)
    assert res.timepoints[0].min_detectable_change_mm3 == pytest.approx(210.0)


def test_band_of_the_change_vs_baseline_uses_only_the_two_scans_involved():
    # T0: 10 x 10 x 10 box, 600 faces -> band 450 mm3.
    # T1 (nadir): split into five 10 x 10 x 1 slabs at k 5, 7, 9, 11, 13 (500 voxels, -50%),
    #   5 x 240 faces -> band 900 mm3.
    # T2: one 10 x 10 x 6 box (600 voxels): 440 faces -> band 330 mm3.
    # Change T2 vs baseline: -400 voxels = -600 mm3, larger than max(450, 330): not within the
    # measurement error. (The nadir's 900 mm3 band is not one of the two sums involved.)
    slabs = tuple(np.s_[5:15, 5:15, k : k + 1] for k in (5, 7, 9, 11, 13))
    res = run([slabs, (target(6),)])
    t0, t1, t2 = res.timepoints
    assert (t0.min_detectable_change_mm3, t1.min_detectable_change_mm3,
            t2.min_detectable_change_mm3) == pytest.approx((450.0, 900.0, 330.0))
    assert t2.percent_change_vs_baseline == pytest.approx(-40.0)
    assert t2.within_measurement_error is False


# --------------------------------------------------------------------------------------------
# 8. edge cases: empty or non-measurable baseline


def _finite_or_none(tp) -> bool:
    return all(
        v is None or not isinstance(v, float) or math.isfinite(v) for v in tp.to_dict().values()
    )


def test_empty_baseline_and_follow_up_is_ne_no_baseline_disease():
    res = run([EMPTY], baseline=EMPTY)
    t1 = res.timepoints[1]
    assert (t1.category, t1.reason_code) == ("NE", "no_baseline_disease")
    assert t1.percent_change_vs_baseline is None and t1.percent_change_vs_nadir is None
    assert res.timepoints[0].percent_change_vs_baseline is None
    assert all(_finite_or_none(t) for t in res.timepoints)
    s = res.subject
    assert (s.best_response, s.best_percent_change, s.responder_20pct) == ("NE", None, None)
    assert s.objective_response is False and s.progression_days is None


def test_new_disease_on_an_empty_baseline_is_pd_new_disease():
    res = run([(T,)], baseline=EMPTY)
    t1 = res.timepoints[1]
    assert (t1.category, t1.reason_code) == ("PD", "new_disease")
    assert t1.percent_change_vs_baseline is None and t1.new_lesions == 1
    assert all(_finite_or_none(t) for t in res.timepoints)
    assert res.subject.progression_days == 56
    assert [r.status for r in res.tracks] == ["new"]


def test_equivocal_new_disease_on_an_empty_baseline_is_ne_new_disease():
    t1 = run([(new_box(2, 2),)], baseline=EMPTY, criteria="rano-bm-vol").timepoints[1]
    assert (t1.category, t1.reason_code) == ("NE", "new_disease")


SMALL = np.s_[5:8, 5:8, 5:8]  # 3 x 3 in-plane: 4.24 mm, not measurable; 27 voxels


def test_baseline_with_only_non_measurable_lesions_is_ne_no_measurable_disease():
    res = run([(SMALL,)], baseline=(SMALL,))
    t1 = res.timepoints[1]
    assert (t1.category, t1.reason_code) == ("NE", "no_measurable_disease")
    assert t1.percent_change_vs_baseline is None and t1.percent_change_vs_nadir is None
    assert t1.total_volume_mm3 == pytest.approx(27 * VOX)
    assert t1.target_volume_mm3 == 0.0
    assert all(_finite_or_none(t) for t in res.timepoints)
    assert not res.lesion_sets[0].lesions[0].measurable


def test_new_lesion_on_a_non_measurable_baseline_is_pd_progression():
    t1 = run([(SMALL, new_box(4, 4))], baseline=(SMALL,)).timepoints[1]
    assert (t1.category, t1.reason_code) == ("PD", "progression")


# --------------------------------------------------------------------------------------------
# 11. track identities over several timepoints

A0, A1, A2 = np.s_[3:15, 3:15, 3:13], np.s_[3:15, 3:15, 3:10], np.s_[3:15, 3:15, 3:9]
B0, B1 = np.s_[25:33, 25:33, 3:9], np.s_[25:33, 25:33, 3:7]
C = np.s_[25:31, 3:9, 18:24]  # 216 voxels, far from B (centroids ~33 mm apart)


def test_track_ids_persist_and_a_new_lesion_elsewhere_is_a_new_track():
    res = run([(A1, B1), (A2, C), (A2, C)], baseline=(A0, B0))
    by_track = {tid: [(r.timepoint, r.lesion_ids, r.status) for r in rows_of(res, tid)]
                for tid in (1, 2, 3)}
    assert by_track[1] == [("T0", (1,), "baseline"), ("T1", (1,), "matched"),
                           ("T2", (1,), "matched"), ("T3", (1,), "matched")]
    assert by_track[2] == [("T0", (2,), "baseline"), ("T1", (2,), "matched"),
                           ("T2", (), "resolved")]
    assert by_track[3] == [("T2", (2,), "new"), ("T3", (2,), "matched")]
    assert {r.track_id for r in res.tracks} == {1, 2, 3}
    assert [r.volume_mm3 for r in rows_of(res, 1)] == pytest.approx(
        [1440 * VOX, 1008 * VOX, 864 * VOX, 864 * VOX]
    )
    assert all(r.is_target for r in rows_of(res, 2)) and not any(
        r.is_target for r in rows_of(res, 3)
    )
    assert [t.new_lesions for t in res.timepoints] == [0, 0, 1, 0]


def test_a_lesion_that_vanishes_and_comes_back_is_a_new_track():
    res = run([(A0,), (A0, B0)], baseline=(A0, B0))
    assert [(r.timepoint, r.status) for r in rows_of(res, 2)] == [
        ("T0", "baseline"), ("T1", "resolved"),
    ]
    assert [(r.timepoint, r.status, r.lesion_ids) for r in rows_of(res, 3)] == [
        ("T2", "new", (2,)),
    ]
    assert res.timepoints[2].new_lesions == 1
    assert res.timepoints[2].category == "PD"


def test_track_ids_do_not_depend_on_lesion_order_in_storage():
    # the same series with every mask stored with i reversed (affine adjusted)
    plain = run([(A1, B1), (A2, C)], baseline=(A0, B0))
    flip = np.diag([-1.0, 1.0, 1.5, 1.0])
    flip[:3, 3] = (ORIGIN[0] + SHAPE[0] - 1, ORIGIN[1], ORIGIN[2])
    masks = []
    for boxes in [(A0, B0), (A1, B1), (A2, C)]:
        data = np.zeros(SHAPE, np.uint8)
        for b in boxes:
            data[b] = 1
        masks.append(mask_from_array(data[::-1], flip))
    flipped = evaluate_series(masks, [0, 56, 112])
    key = [(r.track_id, r.timepoint, r.lesion_ids, r.status, round(r.volume_mm3, 6))
           for r in plain.tracks]
    assert key == [(r.track_id, r.timepoint, r.lesion_ids, r.status, round(r.volume_mm3, 6))
                   for r in flipped.tracks]
    assert not flipped.matchings[0].resampled  # every mask is on the same (flipped) grid


def test_new_lesion_that_later_merges_still_counts_as_new_where_it_appeared():
    # T1: A and a new lesion N (3 voxels from A: separate); T2: A has grown over N (one lesion).
    n_box = np.s_[18:22, 5:9, 3:6]
    two = run([(A0, n_box)], baseline=(A0,))
    assert two.timepoints[1].new_lesions == 1 and two.timepoints[1].category == "PD"
    three = run([(A0, n_box), (np.s_[3:22, 3:15, 3:13],)], baseline=(A0,))
    assert [c.status for c in three.matchings[0].correspondences] == ["matched", "new"]
    # T1's assessment must not change because a later scan exists
    assert three.timepoints[1].new_lesions == 1
    assert three.timepoints[1].category == "PD"


def test_track_with_a_matched_and_a_resolved_piece_is_complex():
    # T0: one lesion; T1: split in two pieces; T2: one piece stays, the other is gone.
    res = run([(np.s_[5:15, 5:15, 5:10], np.s_[5:15, 5:15, 12:15]), (np.s_[5:15, 5:15, 5:10],)])
    statuses = [c.status for c in res.matchings[1].correspondences]
    assert statuses == ["matched", "resolved"]
    assert [r.status for r in rows_of(res, 1)] == ["baseline", "split", "complex"]


def test_days_and_clinical_lengths_are_validated():
    with pytest.raises(ValueError, match="increase"):
        run([(T,), (T,)], days=[0, 56, 56])
    with pytest.raises(ValueError, match="one per timepoint"):
        run([(T,)], clinical=[None])
    with pytest.raises(ValueError, match="at least 2"):
        evaluate_series([mask(T)], [0])


def test_measure_options_reach_the_series():
    # instance labels: two touching boxes stored with labels 1 and 2 are two lesions
    data = np.zeros(SHAPE, np.uint8)
    data[5:15, 5:15, 5:10] = 1
    data[5:15, 5:15, 10:15] = 2
    m = mask_from_array(data, AFFINE)
    res = evaluate_series([m, m], [0, 56], options=MeasureOptions(instance_labels=True))
    assert res.lesion_sets[0].lesion_count == 2
    assert evaluate_series([m, m], [0, 56]).lesion_sets[0].lesion_count == 1


def test_sums_over_no_lesion_are_float_zeros():
    """An empty baseline (or a follow-up where every target is gone) sums to 0.0 mm3, a float
    like every other volume, so that a table column never mixes 0 and 0.0."""
    empty_base = run([(T,)], baseline=EMPTY)
    gone = run([EMPTY])
    for result in (empty_base, gone):
        for t in result.timepoints:
            d = t.to_dict()
            for key in ("total_volume_mm3", "target_volume_mm3", "min_detectable_change_mm3"):
                assert isinstance(d[key], float), (key, d[key])
    assert empty_base.timepoints[0].to_dict()["target_volume_mm3"] == 0.0
    assert gone.timepoints[1].to_dict()["target_volume_mm3"] == 0.0


def test_an_equivocal_speck_one_voxel_larger_is_not_confirmed():
    # 1 x 1 x 2 voxels (band: 10 exposed faces x half a voxel = 5 voxel volumes) -> 1 x 2 x 2
    # (+2 voxels, inside the band; 2.24 mm, below the floor): not growth, not PD
    grown = np.s_[28:29, 30:32, 20:22]
    res = run([(T, new_box(1, 1)), (T, grown)], criteria="lin2009")
    assert [t.category for t in res.timepoints[1:]] == ["SD", "SD"]
    assert res.subject.progression_days is None
    # 1 x 1 x 2 -> 2 x 3 x 2 (+10 voxels, beyond the band; 3.6 mm, still below 5 mm): confirmed
    res = run([(T, new_box(1, 1)), (T, np.s_[28:30, 30:33, 20:22])], criteria="lin2009")
    assert res.timepoints[1].category == "PD" and res.subject.progression_days == 56
